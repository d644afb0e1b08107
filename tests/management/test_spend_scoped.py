"""LiteLLM 1.110's scoped spend reports (``/key``, ``/user``, ``/team``, ``/organization/spend/report``) on both
backends, from spend logs written as the spend sink writes them: the rows' shape, the per-model lines, the range,
whose spend each caller may read, and the organization's teams."""

from __future__ import annotations

from datetime import UTC, datetime

from relaygate.store import hash_token
from relaygate.store.records import SpendLog
from relaygate.store.spend import write_spend
from tests.management.conftest import Env, api_error, run

DAYS = "start_date=2026-11-01&end_date=2026-11-03"


def row(i: int, key: str, model: str, usd: float, *, user: str | None = None, team: str | None = None,
        org: str | None = None, day: int = 2) -> SpendLog:
    at = datetime(2026, 11, day, 12, tzinfo=UTC)
    return SpendLog(request_id=f"r{i}", api_key=hash_token(key), model=model, spend=usd, spend_nanos=round(usd * 1e9),
                    prompt_tokens=10 * (i + 1), completion_tokens=i + 1, total_tokens=11 * (i + 1), user_id=user,
                    team_id=team, organization_id=org, start_time=at, end_time=at)


def test_scoped_spend_reports(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/organization/new", {"organization_id": "org-1", "organization_alias": "one"})
        await env.ok("POST", "/team/new", {"team_id": "t1", "organization_id": "org-1"})
        await env.ok("POST", "/team/new", {"team_id": "t2"})
        ann = await env.user("ann")
        ann_team = str((await env.ok("POST", "/key/generate", {"user_id": "ann", "team_id": "t1"}))["key"])
        bob = await env.user("bob")
        await write_spend(env.store, [
            row(0, ann, "gpt-a", 0.5, user="ann"), row(1, ann, "gpt-b", 0.25, user="ann"),
            row(2, ann_team, "gpt-a", 1.0, user="ann", team="t1"),  # no organization on the row: its team's
            row(3, bob, "gpt-a", 2.0, user="bob", team="t2"), row(4, bob, "gpt-a", 4.0, user="bob", org="org-1"),
            row(5, ann, "gpt-a", 8.0, user="ann", day=5)])  # outside the range
        mine = await env.ok("GET", f"/key/spend/report?{DAYS}", key=ann)
        assert mine == [{"api_key": hash_token(ann), "total_cost": 0.75, "total_input_tokens": 30,
                         "total_output_tokens": 3, "model_details": [
                             {"model": "gpt-a", "total_cost": 0.5, "total_input_tokens": 10, "total_output_tokens": 1},
                             {"model": "gpt-b", "total_cost": 0.25, "total_input_tokens": 20,
                              "total_output_tokens": 2}]}]
        assert await env.ok("GET", f"/key/spend/report?api_key={ann}&{DAYS}") == mine  # the admin names a key
        api_error(await env.call("GET", f"/key/spend/report?api_key={bob}&{DAYS}", key=ann), 403,
                  "Not authorized to view spend for a api_key other than your own")
        users = await env.ok("GET", f"/user/spend/report?{DAYS}", key=ann)
        assert [(r["api_key"], r["total_cost"]) for r in users] == [(hash_token(ann_team), 1.0),
                                                                    (hash_token(ann), 0.75)]
        api_error(await env.call("GET", f"/user/spend/report?internal_user_id=bob&{DAYS}", key=ann), 403,
                  "other than your own")
        team = await env.ok("GET", f"/team/spend/report?{DAYS}", key=ann_team)
        assert [(r["api_key"], r["total_cost"]) for r in team] == [(hash_token(ann_team), 1.0)]
        api_error(await env.call("GET", f"/team/spend/report?{DAYS}", key=ann), 400,
                  "No team_id associated with this API key")
        org = await env.ok("GET", f"/organization/spend/report?organization_id=org-1&{DAYS}")
        assert [(r["api_key"], r["total_cost"]) for r in org] == [(hash_token(bob), 4.0), (hash_token(ann_team), 1.0)]
        assert org[1]["model_details"] == [{"team_id": "t1", "model": "gpt-a", "total_cost": 1.0,
                                            "total_input_tokens": 30, "total_output_tokens": 3}]
        api_error(await env.call("GET", f"/organization/spend/report?organization_id=org-1&{DAYS}", key=ann), 403,
                  "not org_admin")
        await env.ok("POST", "/organization/member_add", {"organization_id": "org-1",
                                                          "member": {"user_id": "ann", "role": "org_admin"}})
        assert len(await env.ok("GET", f"/organization/spend/report?organization_id=org-1&{DAYS}", key=ann)) == 2
        for query, needle in (("", "Please provide start_date and end_date"),
                              ("start_date=2026-11-03&end_date=2026-11-01", "on or before end_date"),
                              ("start_date=2026-11-01&end_date=11/03/2026", "YYYY-MM-DD"),
                              ("start_date=2024-01-01&end_date=2026-01-01", "maximum is 366 days"),
                              ("start_date=9999-12-31&end_date=9999-12-31", "before 9999-12-31")):
            api_error(await env.call("GET", f"/key/spend/report?{query}", key=ann), 400, needle)

    run(db_url, body)
