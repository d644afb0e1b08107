"""``GET /v2/team/list`` over both backends: filters, LiteLLM's sorting and pages, and who lists whose teams."""

from __future__ import annotations

from tests.management.conftest import Env, api_error, run


def test_v2_team_list(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice")
        nobody = await env.user("nobody")
        await env.ok("POST", "/organization/new", {"organization_id": "org1", "organization_alias": "o"})
        for tid, alias, extra in (("t-b", "Blue Team", {"organization_id": "org1"}), ("t-a", "red_team", {}),
                                  ("t-c", "green", {})):
            members = [{"role": "user", "user_id": "alice"}] if tid != "t-c" else []
            await env.ok("POST", "/team/new", {"team_id": tid, "team_alias": alias, "members_with_roles": members,
                                               **extra})
        out = await env.ok("GET", "/v2/team/list")
        assert set(out) == {"teams", "total", "page", "page_size", "total_pages"}
        assert out["page"] == 1 and out["page_size"] == 10 and out["total"] == len(out["teams"]) >= 3
        ours = [t["team_id"] for t in out["teams"] if t["team_id"] in ("t-a", "t-b", "t-c")]
        assert ours == ["t-c", "t-a", "t-b"]  # the newest first by default
        assert [t["team_id"] for t in (await env.ok("GET", "/v2/team/list?team_alias=TEAM&sort_by=team_id"))["teams"]] \
            == ["t-a", "t-b"]
        assert [t["team_id"] for t in (await env.ok("GET", "/v2/team/list?team_alias=d_t"))["teams"]] == ["t-a"]
        by_alias = await env.ok("GET", "/v2/team/list?sort_by=team_alias&sort_order=desc&team_alias=e")
        assert [t["team_alias"] for t in by_alias["teams"]] == ["red_team", "green", "Blue Team"]
        assert [t["team_id"] for t in (await env.ok("GET", "/v2/team/list?organization_id=org1"))["teams"]] == ["t-b"]
        paged = await env.ok("GET", "/v2/team/list?user_id=alice&sort_by=team_id&page=2&page_size=1")
        assert [t["team_id"] for t in paged["teams"]] == ["t-b"] and paged["total"] == 2 and paged["total_pages"] == 2
        mine = await env.ok("GET", "/v2/team/list", key=alice)  # a non-admin lists its own teams
        assert sorted(t["team_id"] for t in mine["teams"]) == ["t-a", "t-b"]
        assert (await env.ok("GET", "/v2/team/list", key=nobody))["teams"] == []
        api_error(await env.call("GET", "/v2/team/list?user_id=nobody", key=alice), 403, "only list your own teams")
        api_error(await env.call("GET", "/v2/team/list?user_id=ghost"), 404, "User not found, passed user_id=ghost")
        api_error(await env.call("GET", "/v2/team/list?user_id=alice&team_id=t-c"), 404,
               "User is not a member of team_id=t-c")
        api_error(await env.call("GET", "/v2/team/list?page_size=101"), 400, "page_size")

    run(db_url, body)
