"""A virtual key's ``allowed_routes`` on every route (``auth.key_routes``), LiteLLM's ``key_type`` presets, and the
key fields relaygate refuses rather than drop (``management.key_extras``): in-process over SQLite and a real
PostgreSQL server, plus the matcher's rules."""

from __future__ import annotations

import pytest

from relaygate.auth.key_routes import KeyRoutes
from relaygate.core.errors import GatewayError
from tests.management.conftest import Env, api_error, run

CHAT = {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}


def test_matching_rules() -> None:
    r = KeyRoutes(["/v1/chat", "/v1/embed*", "info_routes", "", 7])  # type: ignore[list-item]
    assert r.entries == ["/v1/chat", "/v1/embed*", "info_routes"]
    assert r.allows("/v1/chat") and r.allows("/v1/chat/completions") and r.allows("/v1/chat/")
    assert not r.allows("/v1/chatter") and not r.allows("/chat/completions")
    assert r.allows("/v1/embeddings") and r.allows("/v1/embed")
    assert r.allows("/key/info") and r.allows("/v1/models")  # info_routes' members
    assert not r.allows("/key/generate") and not r.allows("/v1/completions")
    with pytest.raises(GatewayError) as refused:
        r.check("/v1/completions" + "x" * 500)
    assert refused.value.status == 403
    assert refused.value.message.startswith("Virtual key is not allowed to call this route. Only allowed to call "
                                            "routes: ['/v1/chat', '/v1/embed*', 'info_routes']. Tried to call route: ")
    assert len(refused.value.message) < 400  # the path is cut
    root = KeyRoutes(["/"])  # the root path alone, as LiteLLM matches it, not every path
    assert root.allows("/") and not root.allows("/v1/chat/completions")
    llm = KeyRoutes(["llm_api_routes"])
    assert llm.allows("/v1/chat/completions") and llm.allows("/chat/completions") and llm.allows("/v1/messages")
    assert not llm.allows("/key/info") and not llm.allows("/key/generate")


def test_allowed_routes_hold_on_every_route(db_url: str) -> None:
    async def body(env: Env) -> None:
        emb = (await env.ok("POST", "/key/generate", {"allowed_routes": ["/v1/embeddings"]}))["key"]
        api_error(await env.call("POST", "/v1/chat/completions", CHAT, key=emb), 403,
                  "Virtual key is not allowed to call this route")
        r = await env.call("POST", "/v1/embeddings", {"model": "gpt-a", "input": "x"}, key=emb)
        assert r.status != 403, r.body  # allowed (the mock's answer, whatever it is)
        api_error(await env.call("GET", "/key/info", key=emb), 403, "Tried to call route: /key/info")
        api_error(await env.call("GET", "/v1/models", key=emb), 403, "Tried to call route: /v1/models")
        r = await env.call("POST", "/v1/messages", {"model": "gpt-a", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"}]}, key=emb)  # refused in Anthropic's error shape
        assert r.status == 403 and r.json()["error"]["type"] == "permission_error", r.body
        assert "not allowed to call this route" in r.json()["error"]["message"]
        api_error(await env.call("GET", "/v1/files", key=emb), 403, "not allowed to call this route")

        llm = (await env.ok("POST", "/key/generate", {"key_type": "llm_api"}))
        assert llm["allowed_routes"] == ["llm_api_routes"]
        assert (await env.call("POST", "/v1/chat/completions", CHAT, key=llm["key"])).status == 200
        assert (await env.call("GET", "/v1/models", key=llm["key"])).status == 200
        api_error(await env.call("GET", "/key/info", key=llm["key"]), 403, "['llm_api_routes']")

        ro = await env.ok("POST", "/key/generate", {"key_type": "read_only", "allowed_routes": ["/anything"]})
        assert ro["allowed_routes"] == ["info_routes"]  # the preset replaces what was sent, as LiteLLM's
        assert (await env.call("GET", "/key/info", key=ro["key"])).status == 200
        api_error(await env.call("POST", "/v1/chat/completions", CHAT, key=ro["key"]), 403, "info_routes")
        plain = await env.ok("POST", "/key/generate", {"key_type": "default"})
        assert not plain.get("allowed_routes")
        assert (await env.call("POST", "/v1/chat/completions", CHAT, key=plain["key"])).status == 200
        api_error(await env.call("POST", "/key/generate", {"key_type": "root"}), 400, "key_type")
        api_error(await env.call("POST", "/key/update", {"key": plain["key"], "key_type": "llm_api"}), 400,
                  "key_type")

        # a key whose list is emptied calls everything again (its principal is read anew)
        await env.ok("POST", "/key/update", {"key": emb, "allowed_routes": []})
        assert (await env.call("POST", "/v1/chat/completions", CHAT, key=emb)).status == 200

    run(db_url, body)


def test_fields_of_features_relaygate_lacks_are_refused(db_url: str) -> None:
    async def body(env: Env) -> None:
        for field, value in (("tpd_limit", 1000), ("rpm_limit_type", "guaranteed_throughput"),
                             ("guardrails", ["pii"]), ("object_permission", {"mcp_servers": ["s1"]}),
                             ("auto_rotate", True), ("rotation_interval", "30d"),
                             ("allowed_passthrough_routes", ["/vertex_ai/*"]), ("access_group_ids", ["g1"])):
            api_error(await env.call("POST", "/key/generate", {field: value}), 400, f"{field}: not supported")
        # what asks for nothing passes: null, false, empty, LiteLLM's default limit type (as its UI sends them)
        out = await env.ok("POST", "/key/generate", {
            "tpd_limit": None, "guardrails": [], "object_permission": {}, "auto_rotate": False,
            "rpm_limit_type": "best_effort_throughput", "disable_global_guardrails": True, "send_invite_email": False})
        api_error(await env.call("POST", "/key/update", {"key": out["key"], "tag_rpm_limit": {"t": 5}}), 400,
                  "tag_rpm_limit")
        assert (await env.call("POST", "/v1/chat/completions", CHAT, key=out["key"])).status == 200

    run(db_url, body)


def test_team_fields_of_features_relaygate_lacks_are_refused(db_url: str) -> None:
    async def body(env: Env) -> None:
        for field, value in (("tags", ["prod"]), ("guardrails", ["pii"]), ("tpd_limit", 10),
                             ("team_member_key_duration", "30d"), ("enforced_file_expires_after", {"seconds": 60})):
            api_error(await env.call("POST", "/team/new", {"team_alias": f"t-{field}", field: value}), 400,
                      f"{field}: not supported")
        team = await env.ok("POST", "/team/new", {"team_alias": "quiet", "tags": [], "guardrails": None,
                                                  "tpm_limit_type": "best_effort_throughput",
                                                  "disable_global_guardrails": True})
        api_error(await env.call("POST", "/team/update", {"team_id": team["team_id"], "policies": ["p1"]}), 400,
                  "policies: not supported")
        await env.ok("POST", "/team/update", {"team_id": team["team_id"], "max_budget": 5, "policies": []})

    run(db_url, body)


def test_user_fields_of_features_relaygate_lacks_are_refused(db_url: str) -> None:
    async def body(env: Env) -> None:
        api_error(await env.call("POST", "/user/new", {"user_id": "u-g", "guardrails": ["pii"]}), 400, "guardrails")
        api_error(await env.call("POST", "/user/new", {"user_id": "u-o", "organizations": ["org-1"]}), 400,
                  "organizations: not supported")
        await env.ok("POST", "/user/new", {"user_id": "u-ok", "organizations": [], "tpd_limit": None})
        api_error(await env.call("POST", "/user/update", {"user_id": "u-ok", "tpd_limit": 5}), 400, "tpd_limit")

    run(db_url, body)


def test_org_customer_and_budget_fields_of_features_relaygate_lacks_are_refused(db_url: str) -> None:
    async def body(env: Env) -> None:
        api_error(await env.call("POST", "/organization/new", {"organization_alias": "o", "model_rpm_limit": {"m": 1}}),
                  400, "model_rpm_limit")
        api_error(await env.call("POST", "/customer/new", {"user_id": "c1", "models": ["gpt-a"]}), 400, "models")
        api_error(await env.call("POST", "/budget/new", {"budget_id": "b1", "tpd_limit": 100}), 400, "tpd_limit")
        await env.ok("POST", "/customer/new", {"user_id": "c2", "models": [], "object_permission": None})
        await env.ok("POST", "/budget/new", {"budget_id": "b2", "max_budget": 3, "allowed_models": []})

    run(db_url, body)
