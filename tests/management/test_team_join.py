"""LiteLLM's available teams on both backends: ``default_internal_user_params.available_teams`` lists teams an
internal user joins by itself (``/team/available``, then ``/team/member_add`` naming itself as a ``user``); it
may not add anyone else, make itself an admin or set its own member budget, nor join a team not listed."""

from __future__ import annotations

from tests.management.conftest import Env, api_error, run

SETTINGS = {"default_internal_user_params": {"available_teams": ["open-team", "not-made-yet"]}}


def test_a_user_joins_an_available_team_by_itself(db_url: str) -> None:
    async def body(env: Env) -> None:
        ann = await env.user("ann")
        await env.user("bob")
        for team_id in ("open-team", "closed-team"):
            await env.ok("POST", "/team/new", {"team_id": team_id})
        listed = await env.ok("GET", "/team/available", key=ann)
        assert [t["team_id"] for t in listed] == ["open-team"]  # a listed team not made yet is left out

        for member, extra, needle in (
                ({"user_id": "ann", "role": "admin"}, {}, "cannot assign 'admin' role"),
                ({"user_id": "bob", "role": "user"}, {}, "can only add the caller"),
                ({"user_id": "ann", "role": "user"}, {"max_budget_in_team": 100.0}, "admin-only"),
                ({"user_id": "ann", "role": "user"}, {"budget_duration": "1d"}, "admin-only")):
            r = await env.call("POST", "/team/member_add", {"team_id": "open-team", "member": member, **extra},
                               key=ann)
            api_error(r, 403, needle)
        r = await env.call("POST", "/team/member_add", {"team_id": "closed-team",
                                                        "member": {"user_id": "ann", "role": "user"}}, key=ann)
        api_error(r, 403, "Only the proxy admin or an admin of team=closed-team")
        team = (await env.ok("GET", "/team/info?team_id=open-team"))["team_info"]
        assert team["members_with_roles"] == []  # nothing written by the refusals

        await env.ok("POST", "/team/member_add", {"team_id": "open-team",
                                                  "member": [{"user_id": "ann", "role": "user"}]}, key=ann)
        team = (await env.ok("GET", "/team/info?team_id=open-team"))["team_info"]
        assert [(m["user_id"], m["role"]) for m in team["members_with_roles"]] == [("ann", "user")]
        assert await env.ok("GET", "/team/available", key=ann) == []  # joined: no longer offered
        r = await env.call("POST", "/team/member_add", {"team_id": "open-team",
                                                        "member": {"user_id": "ann", "role": "user"}}, key=ann)
        api_error(r, 400, "already a member")
        api_error(await env.call("GET", "/team/available"), 404, "User not found")  # the master key: no user

    run(db_url, body, litellm_settings=SETTINGS)


def test_no_available_teams_without_the_setting(db_url: str) -> None:
    async def body(env: Env) -> None:
        ann = await env.user("ann")
        await env.ok("POST", "/team/new", {"team_id": "open-team"})
        assert await env.ok("GET", "/team/available", key=ann) == []
        r = await env.call("POST", "/team/member_add", {"team_id": "open-team",
                                                        "member": {"user_id": "ann", "role": "user"}}, key=ann)
        api_error(r, 403, "Only the proxy admin or an admin of team=open-team")

    run(db_url, body)
