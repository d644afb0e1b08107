"""Hostile values on the spend, budget, tag, daily activity and cache admin routes never get a 5xx, on SQLite and
PostgreSQL: seeded random requests (GET, POST, DELETE) with query fields of control characters, kilobytes,
impossible and out-of-range dates, SQL, huge and negative numbers, and JSON bodies of every type where the route
reads fields; against stored spend rows, a budget and a tag. Every error is JSON."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

from relaygate.sinks.spend import spend_values
from relaygate.store.spend import write_spend_values
from tests.management.conftest import Env, run
from tests.spend.helpers import record

ROUTES = (
    "/budget/new", "/budget/update", "/budget/info", "/budget/list", "/budget/settings", "/budget/delete",
    "/cache/ping", "/cache/delete", "/cache/flushall", "/cache/stats",
    "/global/activity", "/global/activity/cache_hits", "/global/activity/exceptions",
    "/global/activity/exceptions/deployment", "/global/activity/model", "/global/activity/overview",
    "/global/all_end_users", "/global/spend", "/global/spend/all_tag_names", "/global/spend/end_users",
    "/global/spend/keys", "/global/spend/logs", "/global/spend/models", "/global/spend/provider",
    "/global/spend/report", "/global/spend/tags", "/global/spend/teams", "/spend/calculate", "/spend/keys",
    "/spend/logs", "/spend/logs/v2", "/spend/logs/ui", "/spend/logs/ui/call-1", "/spend/tags", "/spend/users",
    "/tag/new", "/tag/update", "/tag/info", "/tag/list", "/tag/delete", "/tag/distinct", "/tag/summary",
    "/tag/dau", "/tag/wau", "/tag/mau", "/tag/user-agent/per-user-analytics",
    "/user/daily/activity", "/user/daily/activity/aggregated", "/user/daily/activity/aggregated/users",
    "/team/daily/activity", "/tag/daily/activity", "/customer/daily/activity", "/organization/daily/activity",
)
FIELDS = ("start_date", "end_date", "page", "page_size", "limit", "api_key", "user_id", "team_id", "key", "tags",
          "model", "request_id", "timezone", "group_by", "budget_id", "end_user", "min_spend", "max_spend",
          "sort_by", "sort_order", "model_id", "organization_id", "customer_id", "tag", "tag_name", "top_n",
          "api_key_alias", "team_ids", "user_ids", "exclude_team_ids", "status_filter")
VALUES = ("", "0", "-1", "1e309", "NaN", "99999999999999999999999", "2024-13-45", "2024-02-30", "9999-12-31",
          "0001-01-01", "2026-12-07T00:00:00Z", "'; DROP TABLE rg_keys;--", "\x00", "a" * 5000, "[]", "{}",
          "null", "true", "../../etc/passwd", "x,y,,", "\u202e\u2028", "2026-12-01", "Europe/Nowhere", "+14:00",
          "desc", "asc", "1", "5000000", "%", "_", "\\")
BODY_FIELDS = (*FIELDS, "max_budget", "budget_duration", "tpm_limit", "rpm_limit", "soft_budget", "model_max_budget",
               "keys", "description", "name", "models", "spend", "completion_response", "messages",
               "budget_reset_at", "model_info", "max_parallel_requests")


def _value(rnd: random.Random) -> Any:
    return rnd.choice([rnd.choice(VALUES), rnd.randrange(-10**12, 10**12), rnd.random() * 1e308, None, True, False,
                       [rnd.choice(VALUES)], {"a": rnd.choice(VALUES)}, 10**30, -0.0, [], {}])


def test_hostile_values_get_no_5xx(db_url: str) -> None:
    async def body(env: Env) -> None:
        rows = [spend_values(record(i, cost=0.001 * i, key=f"k{i % 3}", team="t1" if i % 2 else None,
                                    user=f"u{i % 4}", customer="c1" if i % 5 == 0 else None,
                                    tags=["a", "b"] if i % 3 else None), env.store.dialect) for i in range(40)]
        assert await write_spend_values(env.store, rows) == 40
        await env.ok("POST", "/budget/new", {"budget_id": "b1", "max_budget": 10})
        await env.ok("POST", "/tag/new", {"name": "a", "description": "x"})
        methods = {}  # the method each route takes: GET, else POST (a wrong one now and then, too)
        for path in ROUTES:
            methods[path] = "POST" if (await env.call("GET", path)).status == 405 else "GET"
        assert set(methods.values()) == {"GET", "POST"}
        rnd = random.Random(20261207)
        bad: list[Any] = []
        statuses: dict[int, int] = {}
        for _ in range(700):
            path = rnd.choice(ROUTES)
            query = urlencode({rnd.choice(FIELDS): rnd.choice(VALUES) for _ in range(rnd.randrange(0, 4))})
            method = methods[path] if rnd.random() < 0.9 else rnd.choice(("GET", "POST", "DELETE", "PATCH"))
            data = json.dumps({rnd.choice(BODY_FIELDS): _value(rnd) for _ in range(rnd.randrange(0, 5))}).encode() \
                if method != "GET" else None
            r = await env.call(method, f"{path}?{query}" if query else path, data)
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status >= 500:
                bad.append((method, path, query[:80], data[:120] if data else None, r.status, r.body[:200]))
            elif r.status >= 400:
                try:
                    assert isinstance(json.loads(r.body), dict)
                except (ValueError, AssertionError):
                    bad.append(("not a JSON object", method, path, r.status, r.body[:200]))
        assert bad == [], bad[:5]
        assert statuses.get(200, 0) > 250 and statuses.get(400, 0) > 100, statuses  # the routes did their work

    run(db_url, body, litellm_settings={"cache": True, "cache_params": {"type": "local"}})
