"""JWT route permissions and claims (``auth.jwt_routes``): LiteLLM's ``admin_allowed_routes`` /
``team_allowed_routes`` with its defaults and route groups, ``org_id_jwt_field`` and ``end_user_id_jwt_field``.

The route sets are checked directly (group names, literal paths, templates, ``*`` prefixes); the rest through
the gateway called in-process with a real SQLite store and a real JWKS served over HTTP (``test_jwt_auth``'s
server and signer): an admin token is refused on the LLM routes by default and allowed when its list names
``openai_routes``; a team token is refused on ``/key/generate`` and allowed on ``/v1/models``, ``/model/info``
and chat; custom lists are honoured on the LLM, management and operational routes; an organization claim must
exist, its budget applies and spend logs carry it; an end user claim is the request's customer (spend logs,
blocked customers, customer budgets). A virtual key and the master key answer exactly as with JWT auth off.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaygate.auth.jwt_routes import ADMIN_DEFAULT, GROUPS, TEAM_DEFAULT, JWTAccess, RouteSet, expand
from relaygate.core.errors import GatewayError
from relaygate.store import Budget, Customer, Organization, Team, User
from tests.asgi.conftest import Reply, call
from tests.ui.test_jwt_auth import MASTER, Env, JWKSServer, Signer, _error, run


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Signer]:
    from tests.ui.test_jwt_auth import AUD

    server = JWKSServer()
    k = Signer("routes-1")
    server.keys = [k.jwk()]
    monkeypatch.setenv("JWT_PUBLIC_KEY_URL", server.url)
    monkeypatch.setenv("JWT_AUDIENCE", AUD)
    try:
        yield k
    finally:
        server.close()


def _h(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _post(env: Env, token: str, path: str, body: dict[str, Any]) -> Reply:
    return await call(env.gw, "POST", path, body, headers=_h(token))


# -- route sets -----------------------------------------------------------------------------------------


def test_route_sets_match_groups_literals_templates_and_prefixes() -> None:
    admin = RouteSet(ADMIN_DEFAULT)
    for path in ("/key/generate", "/key/list", "/team/new", "/team/eng-1", "/spend/logs", "/global/spend",
                 "/health", "/v1/models", "/model/info", "/key/abc/regenerate", "/key/list/"):
        assert admin.allows(path), path
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/organization/new",
                 "/global/spend/reset", "/team/a/b", "/key/generatex"):
        assert not admin.allows(path), path
    team = RouteSet(TEAM_DEFAULT)
    for path in ("/v1/chat/completions", "/chat/completions", "/openai/deployments/gpt/chat/completions",
                 "/engines/x/embeddings", "/v1/responses/resp_1/input_items", "/v1/models", "/key/info",
                 "/v1/messages", "/v1/messages/count_tokens", "/mcp/tools/list", "/v1/rag/query"):
        assert team.allows(path), path
    for path in ("/key/generate", "/team/new", "/spend/logs", "/global/spend", "/model/new",
                 "/v1beta/models/gemini-pro:generateContent", "/user/new"):
        assert not team.allows(path), path
    google = RouteSet(["google_routes"])
    assert google.allows("/v1beta/models/gemini-1.5-pro:generateContent")
    assert google.allows("/v1beta/models/tuned/with/slashes:streamGenerateContent")  # {model_name:path}
    assert not google.allows("/v1beta/models/gemini-pro:somethingElse")
    custom = RouteSet(["/v1/chat/completions", "/internal/*", "info_routes", "not_a_group"])
    assert custom.allows("/v1/chat/completions") and custom.allows("/internal/a/b") and custom.allows("/team/info")
    assert not custom.allows("/v1/completions") and not custom.allows("/internal")
    assert custom.allows("not_a_group") and not custom.allows("/not_a_group")  # an unknown name is a literal route
    literal = RouteSet(["/team/{team_id}"])  # a template outside a group is a literal path, as LiteLLM's
    assert literal.allows("/team/{team_id}") and not literal.allows("/team/eng")
    # the refusal lists the routes with each group expanded (LiteLLM's get_actual_routes)
    assert expand(["info_routes", "/x"]) == [*GROUPS["info_routes"], "/x"]
    with pytest.raises(GatewayError) as exc:
        JWTAccess(custom, "Team").check("/v1/completions")
    assert exc.value.status == 401 and exc.value.message.startswith(
        "Authentication Error, Team not allowed to access this route. Route=/v1/completions, Allowed Routes=["
        "'/v1/chat/completions', '/internal/*', '/key/info'")
    JWTAccess(None, "Team").check("/anything")  # no list: every route


# -- admin tokens ---------------------------------------------------------------------------------------


def test_admin_token_default_routes(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        admin = signer.token(scope="litellm_proxy_admin")
        r = await env.chat(admin)
        assert r.status == 401, r.body
        e = _error(r)
        assert e["type"] == "auth_error" and e["message"].startswith(
            "Authentication Error, Admin not allowed to access this route. Route=/v1/chat/completions, "
            "Allowed Routes=['/user/new'")
        for path in ("/key/list", "/spend/logs", "/global/spend", "/v1/models", "/model/info", "/health",
                     "/routes"):  # /routes: one of LiteLLM's public routes, in no list
            r = await env.get(admin, path)
            assert r.status == 200, (path, r.body)
        assert (await _post(env, admin, "/team/new", {"team_id": "eng"})).status == 200
        # not in management_routes by LiteLLM's lists: an organization, the cache
        r = await _post(env, admin, "/organization/new", {"organization_alias": "acme"})
        assert r.status == 401 and "Admin not allowed" in _error(r)["message"]
        r = await call(env.gw, "POST", "/v1/embeddings", {"model": "gpt-a", "input": "x"}, headers=_h(admin))
        assert r.status == 401 and "Route=/v1/embeddings" in _error(r)["message"]
        # routes that resolve their caller themselves check it too: files, stored responses, pass-through
        for path in ("/v1/files", "/v1/responses/resp_abc", "/openai/v1/models"):
            r = await env.get(admin, path)
            assert r.status == 401 and f"Route={path}," in _error(r)["message"], (path, r.body)

    run(tmp_path, body)


def test_admin_token_with_openai_routes(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        admin = signer.token(scope="litellm_proxy_admin")
        assert (await env.chat(admin, "gpt-c")).status == 200
        assert (await env.get(admin, "/key/list")).status == 200
        r = await env.get(admin, "/global/spend")  # global_spend_tracking_routes: not in this list
        assert r.status == 401 and "Route=/global/spend" in _error(r)["message"]

    run(tmp_path, body, admin_allowed_routes=["openai_routes", "management_routes"])


# -- team tokens ----------------------------------------------------------------------------------------


def test_team_token_default_routes(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng", models=["gpt-a"]))
        t = signer.token(team="eng", sub="alice")
        assert (await env.chat(t)).status == 200
        r = await env.get(t, "/v1/models")
        assert r.status == 200 and [m["id"] for m in r.json()["data"]] == ["gpt-a"], r.body
        assert (await env.get(t, "/model/info")).status == 200
        r = await _post(env, t, "/key/generate", {"team_id": "eng"})
        assert r.status == 401, r.body
        e = _error(r)
        assert e["type"] == "auth_error" and e["message"].startswith(
            "Authentication Error, Team not allowed to access this route. Route=/key/generate, Allowed Routes=[")
        for path in ("/spend/logs", "/global/spend", "/user/list"):
            r = await env.get(t, path)
            assert r.status == 401 and "Team not allowed" in _error(r)["message"], (path, r.body)
        p = env.gw.runtime.principals.cache.stale(hashlib.sha256(t.encode()).hexdigest())
        assert p is not None and p.jwt is not None and p.jwt.holder == "Team" and p.role == "internal_user"

    run(tmp_path, body)


def test_team_token_custom_routes(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng", models=["gpt-a"]))
        await env.store.create_user(User(user_id="alice", user_role="internal_user"))
        t = signer.token(team="eng", sub="alice")
        assert (await env.chat(t)).status == 200  # a literal path
        r = await call(env.gw, "POST", "/v1/embeddings", {"model": "gpt-a", "input": "x"}, headers=_h(t))
        assert r.status == 401 and "Route=/v1/embeddings" in _error(r)["message"]
        r = await env.get(t, "/v1/models")  # not listed: the operational routes check too
        assert r.status == 401 and "Route=/v1/models" in _error(r)["message"]
        r = await _post(env, t, "/key/generate", {"team_id": "eng", "models": ["gpt-a"]})  # by a prefix
        assert r.status != 401 or "not allowed to access this route" not in _error(r)["message"], r.body
        assert (await env.get(t, "/spend/logs")).status == 200  # a group name

    run(tmp_path, body, team_allowed_routes=["/v1/chat/completions", "/key/*", "spend_tracking_routes"])


def test_user_only_token_has_no_route_list(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        await env.store.create_user(User(user_id="bob", user_role="internal_user_viewer"))
        t = signer.token(sub="bob")
        assert (await env.chat(t)).status == 200
        p = env.gw.runtime.principals.cache.stale(hashlib.sha256(t.encode()).hexdigest())
        assert p is not None and p.jwt is None and p.role == "internal_user_viewer"  # the user's own role
        r = await _post(env, t, "/key/generate", {})  # its role's rule, not a route list, refuses it
        assert r.status == 401 and "Your role=internal_user_viewer" in _error(r)["message"], r.body

    run(tmp_path, body)


# -- organization and end user claims -------------------------------------------------------------------


async def _spend_rows(env: Env, want: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(200):
        r = await env.get(MASTER, "/spend/logs")
        assert r.status == 200, r.body
        data = r.json()
        rows = data if isinstance(data, list) else data.get("data", [])
        if len(rows) >= want:
            break
        await asyncio.sleep(0.05)
    return rows


def test_org_and_end_user_claims(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        await env.store.create_organization(Organization(organization_id="acme"))
        await env.store.create_team(Team(team_id="eng"))
        t = signer.token(team="eng", sub="alice", org="acme", customer="cust-7")
        for _ in range(2):
            assert (await env.chat(t)).status == 200
        # the body's user does not override the token's end user
        r = await call(env.gw, "POST", "/v1/chat/completions",
                       {"model": "gpt-a", "user": "someone-else", "messages": [{"role": "user", "content": "x"}]},
                       headers=_h(t))
        assert r.status == 200
        rows = await _spend_rows(env, 3)
        assert len(rows) == 3 and all(row["organization_id"] == "acme" and row["end_user"] == "cust-7"
                                      and row["team_id"] == "eng" for row in rows), rows
        r = await env.chat(signer.token(team="eng", org="ghost-org"))
        assert r.status == 401 and _error(r)["message"] == (
            "Authentication Error, Organization doesn't exist in db. Organization=ghost-org. Create organization "
            "via `/organization/new` call.")

    run(tmp_path, body, org_id_jwt_field="org", end_user_id_jwt_field="customer")


def test_org_and_end_user_budgets_and_blocked_end_user(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng"))
        await env.store.create_budget(Budget(budget_id="tight", max_budget=0.5))
        await env.store.create_organization(Organization(organization_id="broke-org", budget_id="tight", spend=1.0))
        await env.store.create_customer(Customer(user_id="broke-cust", budget_id="tight", spend=1.0))
        await env.gw.budgets.refresh()
        r = await env.chat(signer.token(team="eng", org="broke-org"))
        assert r.status == 422 and "Budget has been exceeded" in _error(r)["message"], r.body
        r = await env.chat(signer.token(team="eng", customer="broke-cust"))
        assert r.status == 422 and _error(r)["message"] == (
            "ExceededBudget: End User=broke-cust over budget. Spend=1.0, Budget=0.5"), r.body
        ok = signer.token(team="eng", customer="fine-cust")
        assert (await env.chat(ok)).status == 200
        r = await _post(env, MASTER, "/customer/block", {"user_ids": ["fine-cust"]})
        assert r.status == 200, r.body
        r = await env.chat(ok)  # a cached principal: the end user is checked per request
        assert r.status == 400 and _error(r)["message"] == "User blocked from making LLM API Calls. User=fine-cust"

    run(tmp_path, body, org_id_jwt_field="org", end_user_id_jwt_field="customer")


def test_admin_token_org_claim_is_attributed(tmp_path: Path, signer: Signer) -> None:
    async def body(env: Env) -> None:
        admin = signer.token(scope="litellm_proxy_admin", org="acme")  # LiteLLM checks no org for an admin
        assert (await env.chat(admin)).status == 200
        rows = await _spend_rows(env, 1)
        assert [row["organization_id"] for row in rows] == ["acme"], rows

    run(tmp_path, body, org_id_jwt_field="org", admin_allowed_routes=["openai_routes", "spend_tracking_routes"])


# -- keys are untouched ---------------------------------------------------------------------------------


def test_virtual_key_and_master_key_as_before(tmp_path: Path, signer: Signer) -> None:
    """The same calls with a virtual key and the master key answer the same with JWT auth on and off."""

    async def calls(env: Env) -> list[tuple[str, int, Any]]:
        out: list[tuple[str, int, Any]] = []
        r = await _post(env, MASTER, "/key/generate", {"models": ["gpt-a"], "key_alias": "plain"})
        out.append(("generate", r.status, sorted(r.json())))
        key = r.json()["key"]
        await env.store.create_user(User(user_id="carol", user_role="internal_user"))
        r = await _post(env, MASTER, "/key/generate", {"user_id": "carol", "key_alias": "carol-key"})
        carol = r.json()["key"]
        for who, token in (("key", key), ("carol", carol), ("master", MASTER)):
            for model in ("gpt-a", "gpt-c"):
                r = await env.chat(token, model)
                out.append((f"{who} chat {model}", r.status, r.json().get("error", {}).get("message")))
            for path in ("/v1/models", "/model/info", "/key/info", "/spend/logs", "/global/spend",
                         "/user/list", "/health"):
                r = await env.get(token, path)
                out.append((f"{who} {path}", r.status, r.json() if path == "/v1/models" else None))
            r = await _post(env, token, "/key/generate", {"key_alias": f"by-{who}"})
            out.append((f"{who} generate", r.status, r.json().get("error", {}).get("message")))
            p = env.gw.runtime.principals.resolve_cached([(b"authorization", f"Bearer {token}".encode())])
            assert p is not None and p.jwt is None
        return out

    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = run(tmp_path / "on", calls)
    off = run(tmp_path / "off", calls, enable=False)
    assert on == off
    assert [s for name, s, _ in on if name.endswith("chat gpt-a")] == [200, 200, 200]
    assert dict((n, s) for n, s, _ in on)["key chat gpt-c"] == 401


# -- settings -------------------------------------------------------------------------------------------


def test_settings_are_checked_at_load() -> None:
    from relaygate.auth.jwt_auth import JWTSettings
    from relaygate.config import ConfigError, from_litellm, from_native

    def yaml(**jwtauth: Any) -> Any:
        return from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                             "general_settings": {"enable_jwt_auth": True, "litellm_jwtauth": jwtauth}}, "<t>")

    with pytest.raises(ConfigError) as exc:
        yaml(admin_allowed_routes="openai_routes")
    assert "general_settings.litellm_jwtauth.admin_allowed_routes" in str(exc.value)
    with pytest.raises(ConfigError):
        yaml(team_allowed_routes=["openai_routes", 3])
    with pytest.raises(ConfigError) as exc:
        from_native({"models": [{"name": "m", "model": "mock/echo"}],
                     "auth": {"litellm_jwtauth": {"org_id_jwt_field": ["org"]}}}, "<t>")
    assert "auth.litellm_jwtauth.org_id_jwt_field" in str(exc.value)
    config = yaml(team_allowed_routes=["openai_routes", "info-routes", "/v1/x"], admin_allowed_routes=None)
    assert any("'info-routes' is neither" in w for w in config.warnings), config.warnings
    s = JWTSettings(config.general.litellm_jwtauth, {})
    assert s.team_allowed_routes == ("openai_routes", "info-routes", "/v1/x")
    assert s.admin_allowed_routes == ADMIN_DEFAULT  # null: the default, as LiteLLM's settings model has it
    s = JWTSettings({"team_allowed_routes": None}, {})
    assert s.team_allowed_routes == ("openai_routes", "info_routes")  # LiteLLM's allowed_routes_check for None
    assert JWTSettings({}, {}).team_allowed_routes == TEAM_DEFAULT
