"""LiteLLM 1.110's failed request analytics: ``GET /gateway/errors/activity?start_date=&end_date=``.

The proxy admin and its viewer only (deployment-wide; anyone else LiteLLM's 403). ``start_date`` /
``end_date`` are UTC days (``YYYY-MM-DD``, both included; another spelling is a 400), by default the 30 days
to today. The answer is LiteLLM's ``RequestErrorActivityResponse``: ``total_successful_requests``,
``total_failed_requests``, ``by_date`` (each day's successes, failures, ``client_errors`` (4xx),
``server_errors`` (5xx) and ``by_status_code``), ``by_status_code`` over the range (most failures first), and
``by_key``, ``by_team``, ``by_user``, ``by_model`` (the 25 callers of each kind with the most failures: their
requests, failures and the status they failed with most; keys labelled by alias, teams by alias, users by
e-mail). Counted from the spend logs (``store.error_activity``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, bad_request, forbidden, route
from relaygate.store import error_activity as q

__all__ = ["add_routes"]

LOOKBACK_DAYS = 30


def _date(ctx: Ctx, name: str, default: str) -> str:
    value = ctx.query.get(name) or default
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()  # strftime drops a year's zeros
    except ValueError:
        raise bad_request(f"{name} must be a date, YYYY-MM-DD: got {value!r}", name) from None


def _by_status(rows: list[dict[str, Any]]) -> list[dict[str, int]]:
    counts: dict[int, int] = {}
    for r in rows:
        if r["failed"] and r["status_code"] is not None:
            counts[int(r["status_code"])] = counts.get(int(r["status_code"]), 0) + r["requests"]
    return [{"status_code": code, "failed_requests": n}
            for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


async def activity(ctx: Ctx) -> Any:
    if not ctx.caller.reads_all:
        raise forbidden("Only proxy admin roles can view failed requests across the deployment")
    today = datetime.now(UTC)
    first = _date(ctx, "start_date", (today - timedelta(days=LOOKBACK_DAYS)).strftime("%Y-%m-%d"))
    last = _date(ctx, "end_date", today.strftime("%Y-%m-%d"))
    rows = await q.by_day(ctx.store, first, last)
    days = []
    for day in sorted({r["day"] for r in rows}):
        mine = [r for r in rows if r["day"] == day]
        failed = [r for r in mine if r["failed"]]
        days.append({"date": day, "successful_requests": sum(r["requests"] for r in mine if not r["failed"]),
                     "failed_requests": sum(r["requests"] for r in failed),
                     "client_errors": sum(r["requests"] for r in failed if 400 <= (r["status_code"] or 0) <= 499),
                     "server_errors": sum(r["requests"] for r in failed if 500 <= (r["status_code"] or 0) <= 599),
                     "by_status_code": _by_status(mine)})
    out: dict[str, Any] = {
        "total_successful_requests": sum(d["successful_requests"] for d in days),
        "total_failed_requests": sum(d["failed_requests"] for d in days),
        "by_date": days, "by_status_code": _by_status(rows)}
    for kind in q.KINDS:
        out[f"by_{kind}"] = await q.entities(ctx.store, kind, first, last)
    return out


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/gateway/errors/activity", activity)
