"""LiteLLM's user agent analytics routes (``management.tag_analytics``) on SQLite and a real PostgreSQL server:
spend rows written by the spend writer (so the daily tag rollup is the one the gateway keeps), read back as
distinct tags, active users per day, week and month, a summary and per-user figures; filters, paging, bad
dates and a key that is not the admin's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from relaygate.sinks.record import Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import hash_token
from relaygate.store.spend import write_spend_values
from tests.management.conftest import Env, api_error, run
from tests.spend.helpers import record

UA = "User-Agent: curl/8.5"


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


async def _traffic(env: Env) -> dict[str, str]:
    k1 = await env.user("u1")
    k2 = await env.user("u2")
    await env.ok("POST", "/user/update", {"user_id": "u1", "user_email": "u1@example.com"})
    h1, h2 = hash_token(k1), hash_token(k2)
    now = time.time()
    rows = []
    plan = [  # (key, user, tags, days ago, failed)
        (h1, "u1", [UA, "plain"], 0, False), (h1, "u1", [UA], 0, True), (h2, "u2", [UA], 0, False),
        (h2, "u2", ["plain", "env:prod"], 3, False), (h1, "u1", [UA], 10, False), (h2, "u2", [UA], 40, False),
        ("no-such-key", None, [UA], 0, False),  # a key with no user: requests counted, no active user
    ]
    for i, (key, user, tags, ago, failed) in enumerate(plan):
        rows.append(record(i, key=key, user=user, tags=tags, cost=0.0 if failed else 0.25, prompt=100, completion=10,
                           start=now - ago * 86400, outcome=Outcome.ERROR if failed else Outcome.OK))
    assert await write_spend_values(env.store, [spend_values(r, env.store.dialect) for r in rows]) == len(rows)
    return {"k1": k1, "k2": k2}


def test_user_agent_analytics(db_url: str) -> None:
    async def body(env: Env) -> None:
        keys = await _traffic(env)
        tags = [r["tag"] for r in (await env.ok("GET", "/tag/distinct"))["results"]]
        assert UA in tags and "plain" in tags and "env:prod" not in tags

        dau = (await env.ok("GET", "/tag/dau"))["results"]
        today = {r["tag"]: r for r in dau if r["date"] == _day(0)}
        assert today[UA]["active_users"] == 2 and today["plain"]["active_users"] == 1
        assert today[UA]["period_start"] is None
        assert any(r["date"] == _day(3) and r["tag"] == "plain" for r in dau)
        assert all(r["date"] >= _day(7) for r in dau)  # the last 7 days (and tomorrow)
        only = (await env.ok("GET", "/tag/dau?tag_filter=CURL"))["results"]  # contains, any case
        assert {r["tag"] for r in only} == {UA}
        only = (await env.ok("GET", "/tag/dau?tag_filters=plain&tag_filters=nope&tag_filter=curl"))["results"]
        assert {r["tag"] for r in only} == {"plain"}  # the list wins
        assert (await env.ok("GET", "/tag/dau?tag_filter=%25"))["results"] == []  # a literal %, not a wildcard

        wau = (await env.ok("GET", "/tag/wau?tag_filters=" + UA.replace(" ", "%20")))["results"]
        weeks = {r["date"].split(" (")[0]: r for r in wau}
        assert weeks["Week 7"]["active_users"] == 2  # u1 and u2 within the last 7 days
        assert weeks["Week 6"]["active_users"] == 1  # u1, ten days ago
        w7 = weeks["Week 7"]
        assert w7["period_end"].endswith(" 00:00:00") and w7["period_start"] < w7["period_end"]
        assert [r["date"].split(" (")[0] for r in wau] == sorted(r["date"].split(" (")[0] for r in wau)
        mau = {r["date"].split(" (")[0]: r for r in (await env.ok("GET", "/tag/mau?tag_filter=curl"))["results"]}
        assert mau["Month 7"]["active_users"] == 2 and mau["Month 6"]["active_users"] == 1

        s = await env.ok("GET", f"/tag/summary?start_date={_day(5)}&end_date={_day(-1)}")
        by_tag = {r["tag"]: r for r in s["results"]}
        ua = by_tag[UA]
        assert ua["total_requests"] == 4 and ua["failed_requests"] == 1 and ua["successful_requests"] == 3
        assert ua["unique_users"] == 2 and ua["total_tokens"] == 440 and abs(ua["total_spend"] - 0.75) < 1e-9
        assert s["results"][0]["tag"] == UA  # the most requests first
        assert by_tag["plain"]["total_requests"] == 2
        api_error(await env.call("GET", "/tag/summary?start_date=2026-13-01&end_date=2026-12-01"), 400, "YYYY-MM-DD")
        api_error(await env.call("GET", "/tag/summary?end_date=2026-12-01"), 400, "start_date")
        wide = await env.ok("GET", "/tag/summary?start_date=0001-01-01&end_date=9999-12-31")
        assert {r["tag"]: r["total_requests"] for r in wide["results"]}[UA] == 6

        page = await env.ok("GET", "/tag/user-agent/per-user-analytics?page_size=1")
        assert page["total_count"] == 2 and page["total_pages"] == 2 and len(page["results"]) == 1
        first = page["results"][0]
        # summed over the tag rows, as LiteLLM sums them (a request with two tags counts in each): 3 successful
        # each in the last 30 days, so by user id
        assert first["user_id"] == "u1" and first["user_email"] == "u1@example.com"
        assert first["total_requests"] == 4 and first["failed_requests"] == 1 and first["successful_requests"] == 3
        assert first["user_agent"] in (UA, "plain")
        second = (await env.ok("GET", "/tag/user-agent/per-user-analytics?page_size=1&page=2"))["results"]
        assert [r["user_id"] for r in second] == ["u2"]
        api_error(await env.call("GET", "/tag/user-agent/per-user-analytics?page_size=0"), 400, "page_size")

        for path in ("/tag/distinct", "/tag/dau", "/tag/summary?start_date=2026-01-01&end_date=2026-01-02"):
            r = await env.call("GET", path, key=keys["k1"])
            assert r.status == 401, (path, r.status, r.body)

    run(db_url, body)
