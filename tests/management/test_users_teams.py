"""/user/* and /team/* on both backends: shapes, atomic multi-row writes, validation, 404s."""

from __future__ import annotations

import pytest

from relaygate.store import hash_token
from tests.management.conftest import Env, run


def test_user_lifecycle(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "t1", "team_alias": "one"})
        out = await env.ok("POST", "/user/new", {"user_id": "u1", "user_email": "u1@x.io", "models": ["gpt-a"],
                                                  "teams": ["t1"], "key_alias": "u1-key", "max_budget": 5})
        assert out["user_id"] == "u1" and out["user_role"] == "internal_user" and out["teams"] == ["t1"]
        assert out["key"].startswith("sk-") and out["token"] == hash_token(out["key"])
        assert (await env.call("GET", "/v1/models", key=out["key"])).status == 200
        info = await env.ok("GET", "/user/info?user_id=u1")
        assert info["user_info"]["max_budget"] == 5 and [k["key_alias"] for k in info["keys"]] == ["u1-key"]
        assert [t["team_id"] for t in info["teams"]] == ["t1"] and out["key"] not in str(info)
        assert (await env.ok("GET", "/user/info", key=out["key"]))["user_id"] == "u1"
        upd = await env.ok("POST", "/user/update", {"user_id": "u1", "user_role": "internal_user_viewer"})
        assert upd["data"]["user_role"] == "internal_user_viewer"
        listed = await env.ok("GET", "/user/list?role=internal_user_viewer")
        assert listed["total"] == 1 and listed["users"][0]["user_id"] == "u1"
        no_key = await env.ok("POST", "/user/new", {"user_id": "u2", "auto_create_key": False})
        assert no_key["key"] is None
        r = await env.call("POST", "/user/delete", {"user_ids": ["u1", "nobody"]})
        assert r.status == 404 and r.json()["error"]["param"] == "user_id"
        assert (await env.ok("POST", "/user/delete", {"user_ids": ["u1", "u2"]})) == 2
        assert (await env.store.list_keys()).total == 0
        assert (await env.store.get_team("t1")).members_with_roles == []
        assert (await env.call("GET", "/v1/models", key=out["key"])).status == 401

    run(db_url, body)


def test_user_validation_nothing_half_written(db_url: str) -> None:
    async def body(env: Env) -> None:
        for bad, param in (({"user_role": "root"}, "user_role"), ({"max_budget": "x"}, "max_budget"),
                           ({"teams": ["missing"]}, "team_id"), ({"duration": "zz"}, "duration"),
                           ({"models": [1]}, "models")):
            r = await env.call("POST", "/user/new", {"user_id": "v", **bad})
            assert r.status in (400, 404), (bad, r.body)
            assert r.json()["error"]["param"] == param, (bad, r.body)
        await env.ok("POST", "/key/generate", {"key_alias": "taken"})
        r = await env.call("POST", "/user/new", {"user_id": "v", "key_alias": "taken"})
        assert r.status == 400 and r.json()["error"]["param"] == "key_alias"
        assert (await env.store.list_users()).total == 0 and (await env.store.list_keys()).total == 1
        await env.ok("POST", "/user/new", {"user_id": "v"})
        r = await env.call("POST", "/user/new", {"user_id": "v"})
        assert r.status == 400 and r.json()["error"]["param"] == "user_id"
        for method, path, payload in (("GET", "/user/info?user_id=nobody", None),
                                      ("POST", "/user/update", {"user_id": "nobody", "max_budget": 1})):
            r = await env.call(method, path, payload)
            assert r.status == 404 and r.json()["error"]["type"] == "not_found_error", r.body

    run(db_url, body)


def test_team_lifecycle_and_members(db_url: str) -> None:
    async def body(env: Env) -> None:
        team = await env.ok("POST", "/team/new", {"team_id": "t", "team_alias": "alpha", "models": ["gpt-a"],
                                                   "tpm_limit": 100, "max_budget": 10,
                                                   "members_with_roles": [{"role": "admin", "user_id": "ann"}]})
        assert team["members_with_roles"] == [{"user_id": "ann", "user_email": None, "role": "admin"}]
        assert (await env.store.get_user("ann")).teams == ["t"]
        added = await env.ok("POST", "/team/member_add", {"team_id": "t", "member": [{"role": "user", "user_id": "ben"}],
                                                          "max_budget_in_team": 2})
        assert [m["user_id"] for m in added["members_with_roles"]] == ["ann", "ben"]
        assert added["updated_team_memberships"][0]["litellm_budget_table"] == {"max_budget": 2,
                                                                                 "budget_duration": None}
        upd = await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ben", "role": "admin",
                                                           "max_budget_in_team": 3})
        assert upd == {"team_id": "t", "user_id": "ben", "user_email": None, "max_budget_in_team": 3, "tpm_limit": None,
                       "rpm_limit": None, "budget_duration": None, "allowed_models": None,
                       "temp_budget_increase": None, "temp_budget_expiry": None, "model_max_budget": None}
        info = await env.ok("GET", "/team/info?team_id=t")
        assert {m["user_id"]: m["role"] for m in info["team_memberships"]} == {"ann": "admin", "ben": "admin"}
        key = (await env.ok("POST", "/key/generate", {"team_id": "t", "models": ["gpt-a"]}))["key"]
        r = await env.call("POST", "/key/generate", {"team_id": "t", "models": ["gpt-b"]})
        assert r.status == 403  # a team key stays within the team's models
        r = await env.call("POST", "/key/generate", {"team_id": "t", "tpm_limit": 1000})
        assert r.status == 403
        assert (await env.ok("POST", "/team/update", {"team_id": "t", "team_alias": "beta"}))["data"]["team_alias"] == "beta"
        assert (await env.ok("POST", "/team/block", {"team_id": "t"}))["blocked"] is True
        assert (await env.ok("POST", "/team/unblock", {"team_id": "t"}))["blocked"] is False
        assert [x["team_id"] for x in await env.ok("GET", "/team/list")] == ["t"]
        assert [x["team_id"] for x in await env.ok("GET", "/team/list?user_id=ben")] == ["t"]
        left = await env.ok("POST", "/team/member_delete", {"team_id": "t", "user_id": "ben"})
        assert [m["user_id"] for m in left["members_with_roles"]] == ["ann"]
        r = await env.call("POST", "/team/delete", {"team_ids": ["t", "nope"]})
        assert r.status == 404 and (await env.store.get_team("t")).team_id == "t"
        assert (await env.ok("POST", "/team/delete", {"team_ids": ["t"]})) == {"deleted_teams": ["t"]}
        assert (await env.call("GET", "/v1/models", key=key)).status == 401

    run(db_url, body)


def test_team_validation(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "t", "team_alias": "a"})
        for path, bad, param in (
                ("/team/new", {"team_alias": "a"}, "team_alias"),
                ("/team/new", {"team_id": "t"}, "team_id"),
                ("/team/new", {"members_with_roles": [{"role": "boss", "user_id": "x"}]}, "members_with_roles"),
                ("/team/new", {"tpm_limit": -1}, "tpm_limit"),
                ("/team/update", {"team_id": "t", "models": "gpt-a"}, "models"),
                ("/team/update", {"models": []}, "team_id"),
                ("/team/member_add", {"team_id": "t", "member": {"role": "owner", "user_id": "x"}}, "member"),
                ("/team/member_add", {"team_id": "t"}, "member"),
                ("/team/member_update", {"team_id": "t", "user_id": "x", "role": "owner"}, "role"),
                ("/team/delete", {"team_ids": "t"}, "team_ids")):
            r = await env.call("POST", path, bad)
            assert r.status == 400, (path, bad, r.body)
            assert r.json()["error"]["param"] == param, (path, bad, r.body)
        assert (await env.store.list_teams()).total == 1 and (await env.store.list_users()).total == 0
        for method, path, payload in (("GET", "/team/info?team_id=nope", None),
                                      ("POST", "/team/update", {"team_id": "nope", "team_alias": "z"}),
                                      ("POST", "/team/block", {"team_id": "nope"}),
                                      ("POST", "/team/member_add", {"team_id": "nope", "member": {"user_id": "x"}}),
                                      ("POST", "/team/member_delete", {"team_id": "t", "user_id": "x"}),
                                      ("POST", "/team/member_update", {"team_id": "t", "user_id": "x", "role": "user"})):
            r = await env.call(method, path, payload)
            assert r.status == 404, (path, r.body)
            assert r.json()["error"]["type"] == "not_found_error"

    run(db_url, body)


def test_new_internal_users_get_litellms_defaults(db_url: str) -> None:
    """``max_internal_user_budget`` / ``internal_user_budget_duration`` and ``default_internal_user_params``
    complete a new ``internal_user`` given none (LiteLLM's ``/user/new``); other roles and given values stay."""
    settings = {"max_internal_user_budget": 10.0, "internal_user_budget_duration": "30d",
                "default_internal_user_params": {"models": ["gpt-a"], "tpm_limit": 1000, "user_role": "proxy_admin"}}

    async def body(env: Env) -> None:
        plain = await env.ok("POST", "/user/new", {"user_id": "iu", "auto_create_key": False})
        assert plain["user_role"] == "internal_user" and plain["max_budget"] == 10.0
        assert plain["budget_duration"] == "30d" and plain["budget_reset_at"] is not None
        assert plain["models"] == ["gpt-a"] and plain["tpm_limit"] == 1000
        own = await env.ok("POST", "/user/new", {"user_id": "iu2", "max_budget": 2.0, "models": ["gpt-b"],
                                                 "auto_create_key": False})
        assert own["max_budget"] == 2.0 and own["models"] == ["gpt-b"] and own["budget_duration"] == "30d"
        empty = await env.ok("POST", "/user/new", {"user_id": "iu3", "models": [], "auto_create_key": False})
        assert empty["models"] == ["gpt-a"]  # an empty list takes the default, as LiteLLM's
        admin = await env.ok("POST", "/user/new", {"user_id": "ad", "user_role": "proxy_admin",
                                                   "auto_create_key": False})
        assert admin["max_budget"] is None and admin["budget_duration"] is None and admin["models"] == []
        stored = await env.store.get_user("iu")
        assert stored.max_budget == 10.0 and stored.budget_duration == "30d"

    run(db_url, body, settings)


def test_new_teams_get_litellms_defaults(db_url: str) -> None:
    """``default_team_params`` completes a ``/team/new`` that gives none of its fields (an explicit null
    ``budget_duration`` stays: a budget that never resets); given values stay; the first
    ``default_team_settings`` entry's ``max_budget`` is the older fallback. Bad defaults stop the config."""
    settings = {"default_team_params": {"max_budget": 25.0, "budget_duration": "30d", "tpm_limit": 5000,
                                        "rpm_limit": 50, "team_member_permissions": ["/key/generate"]}}

    async def body(env: Env) -> None:
        plain = await env.ok("POST", "/team/new", {"team_id": "t1"})
        assert plain["max_budget"] == 25.0 and plain["budget_duration"] == "30d"
        assert plain["budget_reset_at"] is not None and plain["tpm_limit"] == 5000 and plain["rpm_limit"] == 50
        assert plain["team_member_permissions"] == ["/key/generate"]
        own = await env.ok("POST", "/team/new", {"team_id": "t2", "max_budget": 3.0, "rpm_limit": 7,
                                                 "budget_duration": None})
        assert own["max_budget"] == 3.0 and own["rpm_limit"] == 7 and own["tpm_limit"] == 5000
        assert own["budget_duration"] is None and own["budget_reset_at"] is None
        stored = await env.store.get_team("t1")
        assert stored.max_budget == 25.0 and stored.budget_duration == "30d"

    run(db_url, body, settings)

    async def legacy(env: Env) -> None:
        assert (await env.ok("POST", "/team/new", {"team_id": "t3"}))["max_budget"] == 9.0

    run(db_url, legacy, {"default_team_settings": [{"team_id": "x", "max_budget": 9.0}]})
    from relaygate.config import from_litellm
    from relaygate.config.errors import ConfigError

    for bad, why in (({"max_budget": "lots"}, "max_budget"), ({"budget_duration": "monthly"}, "budget_duration"),
                     ({"team_member_permissions": "/key/generate"}, "team_member_permissions")):
        with pytest.raises(ConfigError, match=f"default_team_params.{why}"):
            from_litellm({"model_list": [], "litellm_settings": {"default_team_params": bad}}, "c.yaml")


def test_team_model_add_and_delete(db_url: str) -> None:
    """LiteLLM's ``/team/model/add`` and ``/team/model/delete``: the team's list changed in order, without
    repeats; the team's keys may use a model added at once, and no longer one taken off."""
    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "t", "models": ["gpt-a"]})
        plain = await env.ok("POST", "/key/generate", {"team_id": "t"})  # no models: the team's, as they change
        assert plain["models"] == []
        named = (await env.ok("POST", "/key/generate", {"team_id": "t", "models": ["all-team-models"]}))["key"]
        r = await env.call("POST", "/key/generate", {"models": ["all-team-models"]})
        assert r.status == 400 and r.json()["error"]["param"] == "models"  # without a team it would be every model
        chat = {"model": "gpt-b", "messages": [{"role": "user", "content": "hi"}]}
        for key in (plain["key"], named):
            assert (await env.call("POST", "/v1/chat/completions", chat, key=key)).status == 401
        team = await env.ok("POST", "/team/model/add", {"team_id": "t", "models": ["gpt-b", "gpt-a", "gpt-b"]})
        assert team["team_id"] == "t" and team["models"] == ["gpt-a", "gpt-b"]
        for key in (plain["key"], named):
            assert (await env.call("POST", "/v1/chat/completions", chat, key=key)).status == 200
        team = await env.ok("POST", "/team/model/delete", {"team_id": "t", "models": ["gpt-b", "gpt-z"]})
        assert team["models"] == ["gpt-a"]
        for key in (plain["key"], named):
            assert (await env.call("POST", "/v1/chat/completions", chat, key=key)).status == 401
        for bad in ({"team_id": "t", "models": []}, {"team_id": "t"}, {"team_id": "t", "models": [""]}):
            assert (await env.call("POST", "/team/model/add", bad)).status == 400, bad
        assert (await env.call("POST", "/team/model/add", {"team_id": "nope", "models": ["gpt-a"]})).status == 404

    run(db_url, body)
