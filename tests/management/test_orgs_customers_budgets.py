"""/organization/*, /customer/* (and /end_user/*), /budget/* on both backends: shapes, validation naming the
field, 404s in LiteLLM's shape, nothing half-written, blocked customers refused on LLM routes."""

from __future__ import annotations

from typing import Any

from tests.management.conftest import Env, api_error, run

CHAT = {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}


async def _bad(env: Env, method: str, path: str, body: Any, status: int, param: str) -> None:
    before = await env.store.change_version()
    r = await env.call(method, path, body)
    assert r.status == status, (path, body, r.status, r.body)
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == str(status), (path, body, err)
    assert await env.store.change_version() == before, (path, body, "written")


def test_budget_lifecycle(db_url: str) -> None:
    async def body(env: Env) -> None:
        b = await env.ok("POST", "/budget/new", {"budget_id": "free", "max_budget": 10, "rpm_limit": 5,
                                                  "budget_duration": "30d"})
        assert b["budget_id"] == "free" and b["max_budget"] == 10 and b["budget_reset_at"] is not None
        generated = await env.ok("POST", "/budget/new", {"tpm_limit": 100})
        assert len(generated["budget_id"]) == 36
        assert (await env.ok("POST", "/budget/update", {"budget_id": "free", "max_budget": 20}))["max_budget"] == 20
        assert [x["budget_id"] for x in await env.ok("POST", "/budget/info", {"budgets": ["free"]})] == ["free"]
        assert {x["budget_id"] for x in await env.ok("GET", "/budget/list")} == {"free", generated["budget_id"]}
        for path, payload, status, param in (
                ("/budget/new", {"budget_id": "free"}, 400, "budget_id"),
                ("/budget/new", {"max_budget": -1}, 400, "max_budget"),
                ("/budget/new", {"max_budget": "x"}, 400, "max_budget"),
                ("/budget/new", {"budget_duration": "soon"}, 400, "budget_duration"),
                ("/budget/new", {"model_max_budget": {"gpt-a": {"max_budget": "lots"}}}, 400, "model_max_budget"),
                ("/budget/update", {"max_budget": 1}, 400, "budget_id"),
                ("/budget/update", {"budget_id": "nope", "max_budget": 1}, 404, "budget_id"),
                ("/budget/info", {"budgets": []}, 400, "budgets"),
                ("/budget/info", {"budgets": ["nope"]}, 404, "budget_id"),
                ("/budget/delete", {"id": "nope"}, 404, "budget_id"),
                ("/budget/delete", {}, 400, "id")):
            await _bad(env, "POST", path, payload, status, param)
        await env.ok("POST", "/customer/new", {"user_id": "c1", "budget_id": "free"})
        await _bad(env, "POST", "/budget/delete", {"id": "free"}, 400, "id")  # still used
        await env.ok("POST", "/customer/delete", {"user_ids": ["c1"]})
        assert (await env.ok("POST", "/budget/delete", {"id": "free"}))["budget_id"] == "free"
        assert [x["budget_id"] for x in await env.ok("GET", "/budget/list")] == [generated["budget_id"]]

    run(db_url, body)


def test_customer_lifecycle_and_blocking(db_url: str) -> None:
    async def body(env: Env) -> None:
        c = await env.ok("POST", "/customer/new", {"user_id": "acme", "alias": "Acme", "max_budget": 3,
                                                    "allowed_model_region": "eu", "default_model": "gpt-a"})
        assert c["user_id"] == "acme" and c["litellm_budget_table"]["max_budget"] == 3 and not c["blocked"]
        info = await env.ok("GET", "/end_user/info?end_user_id=acme")
        assert info["alias"] == "Acme" and info["budget_id"] == c["budget_id"]
        upd = await env.ok("POST", "/customer/update", {"user_id": "acme", "max_budget": 9, "alias": "A"})
        assert upd["alias"] == "A" and upd["litellm_budget_table"]["max_budget"] == 9
        assert upd["budget_id"] == c["budget_id"]  # the customer's budget row updated, not a new one
        assert [x["user_id"] for x in await env.ok("GET", "/customer/list")] == ["acme"]
        for path, payload, status, param in (
                ("/customer/new", {"user_id": "acme"}, 400, "user_id"),
                ("/customer/new", {}, 400, "user_id"),
                ("/customer/new", {"user_id": "x", "allowed_model_region": "mars"}, 400, "allowed_model_region"),
                ("/customer/new", {"user_id": "x", "default_model": "nope"}, 400, "default_model"),
                ("/customer/new", {"user_id": "x", "max_budget": -2}, 400, "max_budget"),
                ("/customer/new", {"user_id": "x", "budget_id": "nope"}, 404, "budget_id"),
                ("/customer/new", {"user_id": "x", "blocked": "yes"}, 400, "blocked"),
                ("/customer/update", {"user_id": "nope", "alias": "n"}, 404, "user_id"),
                ("/customer/delete", {"user_ids": ["acme", "nope"]}, 404, "user_ids"),
                ("/customer/delete", {"user_ids": []}, 400, "user_ids"),
                ("/customer/unblock", {"user_ids": ["nope"]}, 404, "user_ids"),
                ("/customer/block", {}, 400, "user_ids")):
            await _bad(env, "POST", path, payload, status, param)
        await _bad(env, "GET", "/customer/info?end_user_id=nope", None, 404, "end_user_id")
        await _bad(env, "GET", "/customer/info", None, 400, "end_user_id")

        assert (await env.call("POST", "/v1/chat/completions", {**CHAT, "user": "acme"})).status == 200
        blocked = await env.ok("POST", "/customer/block", {"user_ids": ["acme", "newcomer"]})
        assert [b["user_id"] for b in blocked["blocked_users"]] == ["acme", "newcomer"]
        assert (await env.store.get_customer("newcomer")).blocked  # created, as LiteLLM's upsert
        r = await env.call("POST", "/v1/chat/completions", {**CHAT, "user": "acme"})
        assert r.status == 400 and "User blocked" in r.json()["error"]["message"]
        r = await env.call("POST", "/v1/chat/completions", CHAT, key="sk-master-test-key")
        assert r.status == 200  # no customer named: served
        unblocked = await env.ok("POST", "/end_user/unblock", {"user_ids": ["acme"]})
        assert unblocked["blocked_users"] == ["newcomer"]
        assert (await env.call("POST", "/v1/chat/completions", {**CHAT, "user": "acme"})).status == 200
        out = await env.ok("POST", "/customer/delete", {"user_ids": ["acme", "newcomer"]})
        assert out["deleted_customers"] == 2 and (await env.store.list_customers()).total == 0

    run(db_url, body)


def test_organization_lifecycle(db_url: str) -> None:
    async def body(env: Env) -> None:
        org = await env.ok("POST", "/organization/new", {"organization_alias": "Org One", "organization_id": "o1",
                                                          "models": ["gpt-a"], "max_budget": 50, "tpm_limit": 9})
        assert org["organization_id"] == "o1" and org["litellm_budget_table"]["max_budget"] == 50
        await env.ok("POST", "/team/new", {"team_id": "ot", "organization_id": "o1"})
        await env.ok("POST", "/key/generate", {"team_id": "ot", "key_alias": "org-team-key"})
        await env.ok("POST", "/user/new", {"user_id": "boss", "auto_create_key": False})
        boss_key = (await env.ok("POST", "/key/generate", {"user_id": "boss"}))["key"]
        added = await env.ok("POST", "/organization/member_add", {
            "organization_id": "o1", "member": [{"role": "org_admin", "user_id": "boss"},
                                                {"role": "internal_user", "user_id": "fresh-user"}],
            "max_budget_in_organization": 5})
        assert [u["user_id"] for u in added["updated_users"]] == ["boss", "fresh-user"]
        assert (await env.store.get_user("fresh-user")).user_role == "internal_user"  # created
        assert all(m["budget_id"] for m in added["updated_organization_memberships"])
        info = await env.ok("GET", "/organization/info?organization_id=o1")
        assert {m["user_id"] for m in info["members"]} == {"boss", "fresh-user"}
        assert [t["team_id"] for t in info["teams"]] == ["ot"]
        # an org_admin manages its organization's members, not the organization itself
        await env.ok("POST", "/organization/member_add", {"organization_id": "o1", "member": {"user_id": "m3"}},
                     key=boss_key)
        upd = await env.ok("PATCH", "/organization/member_update", {"organization_id": "o1", "user_id": "m3",
                                                                    "role": "internal_user_viewer",
                                                                    "max_budget_in_organization": 2}, key=boss_key)
        assert upd["user_role"] == "internal_user_viewer" and upd["litellm_budget_table"]["max_budget"] == 2
        assert (await env.call("PATCH", "/organization/update", {"organization_id": "o1", "models": []},
                               key=boss_key)).status == 401
        assert (await env.ok("DELETE", "/organization/member_delete", {"organization_id": "o1", "user_id": "m3"},
                             key=boss_key))["user_id"] == "m3"
        assert [o["organization_id"] for o in await env.ok("GET", "/organization/list", key=boss_key)] == ["o1"]
        upd_org = await env.ok("PATCH", "/organization/update", {"organization_id": "o1", "max_budget": 70,
                                                                 "metadata": {"a": 1}})
        assert upd_org["litellm_budget_table"]["max_budget"] == 70 and upd_org["budget_id"] == org["budget_id"]
        await env.ok("POST", "/organization/update", {"organization_id": "o1", "metadata": {"b": 2}})
        assert (await env.store.get_organization("o1")).metadata == {"a": 1, "b": 2}
        assert [o["organization_id"] for o in await env.ok("GET", "/organization/list?org_alias=one")] == ["o1"]
        assert await env.ok("GET", "/organization/list?org_alias=zzz") == []
        assert len(await env.ok("POST", "/organization/info", {"organizations": ["o1"]})) == 1
        for method, path, payload, status, param in (
                ("POST", "/organization/new", {"models": []}, 400, "organization_alias"),
                ("POST", "/organization/new", {"organization_alias": "x", "organization_id": "o1"}, 400,
                 "organization_id"),
                ("POST", "/organization/new", {"organization_alias": "x", "max_budget": -1}, 400, "max_budget"),
                ("POST", "/organization/new", {"organization_alias": "x", "budget_id": "nope"}, 404, "budget_id"),
                ("PATCH", "/organization/update", {"organization_id": "nope", "models": []}, 404, "organization_id"),
                ("PATCH", "/organization/update", {"models": []}, 400, "organization_id"),
                ("POST", "/organization/member_add", {"organization_id": "o1", "member": {"role": "god",
                                                                                         "user_id": "z"}},
                 400, "member"),
                ("POST", "/organization/member_add", {"organization_id": "o1", "member": {"user_id": "boss"}},
                 400, "member"),
                ("POST", "/organization/member_add", {"organization_id": "nope", "member": {"user_id": "z"}},
                 404, "organization_id"),
                ("PATCH", "/organization/member_update", {"organization_id": "o1", "user_id": "nope"}, 404,
                 "user_id"),
                ("DELETE", "/organization/member_delete", {"organization_id": "o1", "user_id": "nope"}, 404,
                 "user_id"),
                ("DELETE", "/organization/delete", {"organization_ids": ["o1", "nope"]}, 404, "organization_ids")):
            await _bad(env, method, path, payload, status, param)
        await _bad(env, "GET", "/organization/info?organization_id=nope", None, 404, "organization_id")
        deleted = await env.ok("DELETE", "/organization/delete", {"organization_ids": ["o1"]})
        assert deleted[0]["organization_id"] == "o1"
        assert (await env.store.list_teams()).total == 0
        assert [k.key_alias for k in (await env.store.list_keys()).items] == [None]  # boss's own key stays
        assert await env.store.list_organization_members("o1") == []

    run(db_url, body)


def test_budget_settings_lists_the_editable_fields(db_url: str) -> None:
    """LiteLLM's ``/budget/settings`` (its admin UI's budget editor): each field with its type, description and
    the row's value; a budget that does not exist has none."""
    async def body(env: Env) -> None:
        await env.ok("POST", "/budget/new", {"budget_id": "b-set", "max_budget": 5, "rpm_limit": 7,
                                             "budget_duration": "30d"})
        out = await env.ok("GET", "/budget/settings?budget_id=b-set")
        by = {f["field_name"]: f for f in out}
        assert list(by) == ["max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
                            "budget_duration", "model_max_budget"]
        assert (by["max_budget"]["field_value"], by["rpm_limit"]["field_value"], by["budget_duration"]["field_value"],
                by["soft_budget"]["field_value"]) == (5, 7, "30d", None)
        assert by["max_budget"] == {"field_name": "max_budget", "field_type": "Float", "field_value": 5,
                                    "field_description": "Requests will fail if this budget (in USD) is exceeded.",
                                    "stored_in_db": True, "field_default_value": None}
        assert all(f["field_value"] is None for f in await env.ok("GET", "/budget/settings?budget_id=nope"))
        api_error(await env.call("GET", "/budget/settings"), 400, "budget_id is required")

    run(db_url, body)
