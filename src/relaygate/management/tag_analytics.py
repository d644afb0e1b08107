"""LiteLLM's user agent analytics routes (its UI's "User Agent Activity"), from the daily tag rollup.

Every route is the proxy admin's and its viewer's (``store.tag_analytics`` runs the queries); LiteLLM's
answers:

- ``GET /tag/distinct``: ``{"results": [{"tag"}]}``, the ``User-Agent: ...`` tags and the tags without a ``:``
  (at most 250, the most used first).
- ``GET /tag/dau``, ``/tag/wau``, ``/tag/mau`` (``tag_filter``: tags containing it; ``tag_filters``, repeated:
  exactly those, and it wins): ``{"results": [{"tag", "active_users", "date", "period_start", "period_end"}]}``,
  the distinct users of the keys that used each tag per day over the last 7 days, per 7-day week over the last
  7 weeks (``date`` ``Week <n> (<Mon DD>)``, week 7 the latest) and per 30-day month over the last 7
  (``Month <n> (<Mon>)``), each period ending on tomorrow (UTC), as LiteLLM's; the days' ``period_start`` /
  ``period_end`` are null, the weeks' and months' PostgreSQL's text of those midnights, as LiteLLM's.
- ``GET /tag/summary?start_date=&end_date=`` (``YYYY-MM-DD``, both included; another spelling is a 400):
  ``{"results": [{"tag", "unique_users", "total_requests", "successful_requests", "failed_requests",
  "total_tokens", "total_spend"}]}``, the most requests first.
- ``GET /tag/user-agent/per-user-analytics`` (``page``, ``page_size`` 1-1000, default 50): per user over the
  last 30 days, ``{"results": [{"user_id", "user_email", "user_agent", "successful_requests", "failed_requests",
  "total_requests", "total_tokens", "spend"}], "total_count", "page", "page_size", "total_pages"}``, the most
  successful requests first.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.store import tag_analytics as q

__all__ = ["add_routes"]

DAYS, WEEKS, MONTHS = 7, 7, 7
"""Periods each active-users route shows (LiteLLM's ``MAX_DAYS``, ``MAX_WEEKS``, ``MAX_MONTHS``)."""
_FMT = "%Y-%m-%d"


def _end() -> datetime:
    """Tomorrow's UTC midnight: the last day every LiteLLM period includes."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _filters(ctx: Ctx) -> dict[str, Any]:
    raw = urllib.parse.parse_qs((ctx.scope.get("query_string") or b"").decode("latin-1"))
    tags = [t for t in raw.get("tag_filters", []) if t]
    return {"tag": ctx.query.get("tag_filter") or None, "tags": tags or None}


async def _periods(ctx: Ctx, length: int, count: int, label: Any) -> dict[str, Any]:
    admin_only(ctx, read=True)
    end = _end()
    periods = [((end - timedelta(days=length * i + length - 1)).strftime(_FMT), (end - timedelta(days=length * i))
                .strftime(_FMT)) for i in range(count)]
    rows = await q.active_users(ctx.store, periods, **_filters(ctx))
    results = []
    for r in rows:
        first, last = periods[r["period"]]
        results.append({"tag": r["tag"], "active_users": r["active_users"], **label(r["period"], first, last)})
    return {"results": results}


def _day(i: int, first: str, last: str) -> dict[str, Any]:
    return {"date": last, "period_start": None, "period_end": None}


def _midnight(day: str) -> str:
    return f"{day} 00:00:00"


def _week(i: int, first: str, last: str) -> dict[str, Any]:
    return {"date": f"Week {WEEKS - i} ({datetime.strptime(first, _FMT).strftime('%b %d')})",
            "period_start": _midnight(first), "period_end": _midnight(last)}


def _month(i: int, first: str, last: str) -> dict[str, Any]:
    return {"date": f"Month {MONTHS - i} ({datetime.strptime(first, _FMT).strftime('%b')})",
            "period_start": _midnight(first), "period_end": _midnight(last)}


async def distinct(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return {"results": [{"tag": t} for t in await q.distinct_tags(ctx.store)]}


async def dau(ctx: Ctx) -> Any:
    return await _periods(ctx, 1, DAYS + 1, _day)  # LiteLLM's range: the 7 days before tomorrow, and tomorrow


async def wau(ctx: Ctx) -> Any:
    return await _periods(ctx, 7, WEEKS, _week)


async def mau(ctx: Ctx) -> Any:
    return await _periods(ctx, 30, MONTHS, _month)


def _date(ctx: Ctx, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise bad_request(f"{name} is required (YYYY-MM-DD)", name)
    try:
        return datetime.strptime(value, _FMT).date().isoformat()  # strftime drops a year's leading zeros
    except ValueError:
        raise bad_request(f"Invalid date format. Use YYYY-MM-DD: {name}={value!r}", name) from None


async def summary(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    first, last = _date(ctx, "start_date"), _date(ctx, "end_date")
    return {"results": await q.summary(ctx.store, first, last, **_filters(ctx))}


async def per_user(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    page = ctx.int_arg("page", 1, 1, 2**31 - 1)
    size = ctx.int_arg("page_size", 50, 1, 1000)
    end = _end()
    rows, total = await q.per_user(ctx.store, (end - timedelta(days=30)).strftime(_FMT), end.strftime(_FMT),
                                   page=page, page_size=size, **_filters(ctx))
    return {"results": rows, "total_count": total, "page": page, "page_size": size,
            "total_pages": (total + size - 1) // size}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path, handler in (("/tag/distinct", distinct), ("/tag/dau", dau), ("/tag/wau", wau), ("/tag/mau", mau),
                          ("/tag/summary", summary), ("/tag/user-agent/per-user-analytics", per_user)):
        route(t, gw, "GET", path, handler)
