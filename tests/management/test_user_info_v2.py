"""LiteLLM's ``GET /v2/user/info`` on both backends: the user row alone (team ids, no keys), for the user itself,
the proxy admin and its viewer, and an admin of one of its teams; anyone else gets the 404 a missing user gets."""

from __future__ import annotations

from tests.management.conftest import Env, api_error, run


def test_the_user_row_for_who_may_see_it(db_url: str) -> None:
    async def body(env: Env) -> None:
        mine = await env.user("u-self", max_budget=3.0)
        boss = await env.user("u-boss")
        stranger = await env.user("u-stranger")
        viewer = await env.user("u-viewer", "proxy_admin_viewer")
        await env.ok("POST", "/user/update", {"user_id": "u-self", "max_budget": 7.5, "user_email": "s@example.com",
                                              "metadata": {"team": "blue"}})
        await env.ok("POST", "/team/new", {"team_id": "t-v2", "members_with_roles": [
            {"role": "admin", "user_id": "u-boss"}, {"role": "user", "user_id": "u-self"}]})

        out = await env.ok("GET", "/v2/user/info", key=mine)  # its own, without user_id
        assert out["user_id"] == "u-self" and out["max_budget"] == 7.5 and out["user_email"] == "s@example.com"
        assert out["teams"] == ["t-v2"] and out["metadata"] == {"team": "blue"} and out["spend"] == 0.0
        assert set(out) == {"user_id", "user_email", "user_alias", "user_role", "spend", "max_budget", "tpm_limit",
                            "rpm_limit", "models", "budget_duration", "budget_reset_at", "metadata", "created_at",
                            "updated_at", "teams", "model_max_budget", "sso_user_id", "object_permission"}
        for key in (None, viewer, boss):  # the master key, the viewer, the admin of a team it is in
            shown = await (env.ok("GET", "/v2/user/info?user_id=u-self") if key is None else
                           env.ok("GET", "/v2/user/info?user_id=u-self", key=key))
            assert shown == out
        r = await env.call("GET", "/v2/user/info?user_id=u-self", key=stranger)
        api_error(r, 404, "User not found: u-self")
        api_error(await env.call("GET", "/v2/user/info?user_id=u-none"), 404, "User not found: u-none")
        api_error(await env.call("GET", "/v2/user/info?user_id=u-none", key=stranger), 404, "User not found: u-none")
        api_error(await env.call("GET", "/v2/user/info?user_id=u-boss", key=mine), 404, "User not found")
        api_error(await env.call("GET", "/v2/user/info"), 400, "user_id is required")

    run(db_url, body)


def test_available_roles_for_any_key(db_url: str) -> None:
    """LiteLLM's ``GET /user/available_roles``: the four roles ``user_role`` takes, in LiteLLM's words, for any
    valid key; a bad key is the 401 of every route."""
    async def body(env: Env) -> None:
        plain = await env.user("u-roles")
        for key in (None, plain):
            out = await (env.ok("GET", "/user/available_roles") if key is None else
                         env.ok("GET", "/user/available_roles", key=key))
            assert list(out) == ["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]
            assert out["internal_user"] == {"description": "view/create/delete their own keys, view their own spend",
                                            "ui_label": "Internal User (Create/Delete/View)"}
        r = await env.call("GET", "/user/available_roles", key="sk-not-a-key")
        assert r.status == 401

    run(db_url, body)
