"""``GET /gateway/errors/activity`` (``management.error_activity``) on SQLite and a real PostgreSQL server: spend
rows written by the spend writer, read back as LiteLLM's failed request analytics (totals, per day with 4xx /
5xx shares and statuses, the callers the failures land on with their labels and top status), the date range,
bad dates, and callers that are not the admin's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from relaygate.sinks.record import Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import hash_token
from relaygate.store.spend import write_spend_values
from tests.management.conftest import Env, api_error, run
from tests.spend.helpers import record


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def test_failed_request_analytics(db_url: str) -> None:
    async def body(env: Env) -> None:
        key = await env.user("u1", key_alias="k-one")
        await env.ok("POST", "/user/update", {"user_id": "u1", "user_email": "u1@example.com"})
        await env.ok("POST", "/team/new", {"team_id": "t1", "team_alias": "Team One"})
        h = hash_token(key)
        now = time.time()
        plan = [  # (days ago, status, team, model group)
            (0, 200, "t1", "gpt"), (0, 429, "t1", "gpt"), (0, 429, "t1", "gpt"), (0, 500, None, "gpt"),
            (1, 200, None, "other"), (1, 401, None, "other"), (45, 500, "t1", "gpt"),  # the last: out of range
        ]
        rows = []
        for i, (ago, status, team, group) in enumerate(plan):
            r = record(i, key=h, user="u1", team=team, start=now - ago * 86400,
                       outcome=Outcome.OK if status == 200 else Outcome.ERROR)
            r.status, r.model_group = status, group
            rows.append(spend_values(r, env.store.dialect))
        assert await write_spend_values(env.store, rows) == len(rows)

        a = await env.ok("GET", "/gateway/errors/activity")
        assert a["total_successful_requests"] == 2 and a["total_failed_requests"] == 4
        assert a["by_status_code"] == [{"status_code": 429, "failed_requests": 2},
                                       {"status_code": 401, "failed_requests": 1},
                                       {"status_code": 500, "failed_requests": 1}]
        days = {d["date"]: d for d in a["by_date"]}
        assert list(days) == sorted(days) == [_day(1), _day(0)]
        today = days[_day(0)]
        assert today["successful_requests"] == 1 and today["failed_requests"] == 3
        assert today["client_errors"] == 2 and today["server_errors"] == 1
        assert days[_day(1)]["client_errors"] == 1 and days[_day(1)]["server_errors"] == 0
        assert a["by_key"] == [{"id": h, "label": "k-one", "api_requests": 6, "failed_requests": 4,
                                "top_status_code": 429, "top_status_code_requests": 2}]
        assert a["by_team"] == [{"id": "t1", "label": "Team One", "api_requests": 3, "failed_requests": 2,
                                 "top_status_code": 429, "top_status_code_requests": 2}]
        assert a["by_user"][0]["label"] == "u1@example.com" and a["by_user"][0]["failed_requests"] == 4
        assert [(m["id"], m["failed_requests"], m["label"]) for m in a["by_model"]] == [("gpt", 3, None),
                                                                                        ("other", 1, None)]
        wide = await env.ok("GET", f"/gateway/errors/activity?start_date={_day(60)}&end_date={_day(0)}")
        assert wide["total_failed_requests"] == 5
        one = await env.ok("GET", f"/gateway/errors/activity?start_date={_day(1)}&end_date={_day(1)}")
        assert one["total_failed_requests"] == 1 and one["by_team"] == []
        api_error(await env.call("GET", "/gateway/errors/activity?start_date=yesterday"), 400, "start_date")
        edge = await env.ok("GET", "/gateway/errors/activity?start_date=0001-01-01&end_date=9999-12-31")
        assert edge["total_failed_requests"] == 5
        api_error(await env.call("GET", "/gateway/errors/activity", key=key), 403, "Only proxy admin roles")

    run(db_url, body)
