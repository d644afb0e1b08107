"""LiteLLM's team member permissions on both backends: a plain member (role ``user``) uses a key route on its
team's keys only when the team grants it (``/key/info`` and ``/key/health`` always), the team's admin reads and
sets the grant (``/team/permissions_list``, ``/team/permissions_update``), a grant never reaches another
member's key, and a caller that left the team is refused."""

from __future__ import annotations

from typing import Any

from tests.management.conftest import Env, api_error, run


async def _team(env: Env) -> dict[str, str]:
    """Team ``tm`` with admin ``tadmin`` and plain members ``tuser`` and ``tother``; each one's own key."""
    keys = {u: await env.user(u) for u in ("tadmin", "tuser", "tother")}
    await env.ok("POST", "/team/new", {"team_id": "tm", "members_with_roles": [
        {"role": "admin", "user_id": "tadmin"}, {"role": "user", "user_id": "tuser"},
        {"role": "user", "user_id": "tother"}]})
    return keys


async def _grant(env: Env, key: str, routes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = await env.ok("POST", "/team/permissions_update",
                                       {"team_id": "tm", "team_member_permissions": routes}, key=key)
    return out


def test_members_use_only_the_routes_their_team_grants(db_url: str) -> None:
    async def body(env: Env) -> None:
        k = await _team(env)
        # the default: a member may not make team keys (LiteLLM 1.110), a personal key still
        r = await env.call("POST", "/key/generate", {"team_id": "tm"}, key=k["tuser"])
        api_error(r, 401, "Team member does not have permissions for endpoint: /key/generate")
        assert r.json()["error"]["type"] == "team_member_permission_error" and b"'/key/info'" in r.body
        await env.ok("POST", "/key/generate", {}, key=k["tuser"])

        listed = await env.ok("GET", "/team/permissions_list?team_id=tm", key=k["tadmin"])
        assert listed["team_id"] == "tm" and listed["team_member_permissions"] == ["/key/info", "/key/health"]
        assert "/key/generate" in listed["all_available_permissions"]
        api_error(await env.call("GET", "/team/permissions_list?team_id=tm", key=k["tuser"]), 403, "not proxy admin")
        api_error(await env.call("GET", "/team/permissions_list", key=k["tadmin"]), 400, "team_id")

        team = await _grant(env, k["tadmin"], ["/key/generate"])
        assert team["team_id"] == "tm" and team["team_member_permissions"] == ["/key/generate"]
        mine = (await env.ok("POST", "/key/generate", {"team_id": "tm"}, key=k["tuser"]))["key"]
        r = await env.call("POST", "/key/update", {"key": mine, "key_alias": "renamed"}, key=k["tuser"])
        api_error(r, 401, "permissions for endpoint: /key/update")
        r = await env.call("POST", "/key/regenerate", {"key": mine}, key=k["tuser"])
        api_error(r, 401, "permissions for endpoint: /key/regenerate")
        r = await env.call("POST", "/key/delete", {"keys": [mine]}, key=k["tuser"])
        api_error(r, 401, "permissions for endpoint: /key/delete")

        await _grant(env, k["tadmin"], ["/key/generate", "/key/update", "/key/{key_id}/regenerate", "/key/delete"])
        assert (await env.ok("POST", "/key/update", {"key": mine, "key_alias": "renamed"},
                             key=k["tuser"]))["key_alias"] == "renamed"
        mine = (await env.ok("POST", "/key/regenerate", {"key": mine}, key=k["tuser"]))["key"]
        # a grant is for the member's own team keys: another member's stays its own (and the team admin's)
        theirs = (await env.ok("POST", "/key/generate", {"team_id": "tm"}, key=k["tother"]))["key"]
        r = await env.call("POST", "/key/update", {"key": theirs, "key_alias": "mine now"}, key=k["tuser"])
        api_error(r, 403, "not allowed to change this key")
        await env.ok("POST", "/key/update", {"key": theirs, "key_alias": "by the admin"}, key=k["tadmin"])
        # blocking stays the team admin's whatever the grant
        r = await env.call("POST", "/key/block", {"key": mine}, key=k["tuser"])
        assert r.status == 403, r.body

        # a member that left the team: its old team key is refused to it
        await env.ok("POST", "/team/member_delete", {"team_id": "tm", "user_id": "tuser"}, key=k["tadmin"])
        r = await env.call("POST", "/key/update", {"key": mine, "key_alias": "after leaving"}, key=k["tuser"])
        api_error(r, 401, "does not belong to team tm")
        assert (await env.ok("POST", "/key/delete", {"keys": [theirs]}, key=k["tother"]))["deleted_keys"] == [theirs]

    run(db_url, body)


def test_only_the_admins_set_the_grant(db_url: str) -> None:
    async def body(env: Env) -> None:
        k = await _team(env)
        r = await env.call("POST", "/team/permissions_update", {"team_id": "tm", "team_member_permissions": [
            "/key/generate"]}, key=k["tuser"])
        api_error(r, 403, "Only the proxy admin or an admin of team=tm")
        for bad, needle in (({"team_id": "tm", "team_member_permissions": ["/key/everything"]}, "/key/everything"),
                            ({"team_id": "tm", "team_member_permissions": "/key/generate"}, "team_member_permissions"),
                            ({"team_id": "tm"}, "team_member_permissions"),
                            ({"team_member_permissions": []}, "team_id")):
            api_error(await env.call("POST", "/team/permissions_update", bad), 400, needle)
        api_error(await env.call("POST", "/team/permissions_update", {"team_id": "nope",
                                                                      "team_member_permissions": []}), 404, "nope")
        listed = await env.ok("GET", "/team/permissions_list?team_id=tm")
        assert listed["team_member_permissions"] == ["/key/info", "/key/health"]  # nothing stored by the refusals
        await _grant(env, k["tadmin"], ["/key/update", "/key/update"])  # the proxy admin's and the team admin's
        assert (await env.ok("GET", "/team/info?team_id=tm"))["team_info"]["team_member_permissions"] == [
            "/key/update"]

    run(db_url, body)
