"""Failed request analytics from the spend logs (LiteLLM 1.110's ``/gateway/errors/activity``).

What it owns: the reads behind ``management.error_activity``. Every request the gateway answered on its LLM
routes has a spend-log row (``status`` ``success`` / ``failure`` and its ``status_code``, a refused key's and an
unknown model's too), so the day-by-day totals, the failures per HTTP status and the callers the failures land
on are counted from the rows of the days asked (UTC days, both bounds included; the spend logs' time index
bounds the scan). LiteLLM keeps dedicated daily counters for this; relaygate reads the rows it already keeps,
so the figures cover what the retention kept (``maximum_spend_logs_retention_period``) and nothing when
``disable_spend_logs`` is on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from relaygate.store import tables as t
from relaygate.store.base import Store

__all__ = ["ENTITY_LIMIT", "KINDS", "by_day", "entities"]

ENTITY_LIMIT = 25
"""Callers of each kind listed at most, the most failures first (LiteLLM's)."""
_LAST_DAY = datetime(9999, 12, 30)
KINDS = {"key": "api_key", "team": "team_id", "user": "user_id", "model": "model_group"}
"""A caller kind -> its spend-log column."""


def _bounds(store: Store, first: str, last: str) -> list[Any]:
    start = datetime.strptime(first, "%Y-%m-%d")
    end = min(datetime.strptime(last, "%Y-%m-%d"), _LAST_DAY) + timedelta(days=1)  # 9999-12-31 has no next day
    return [t.SPEND_LOGS.to_db("start_time", at, store.dialect) for at in (start, end)]


def _day(store: Store) -> str:
    return "substr(start_time, 1, 10)" if store.dialect == "sqlite" else \
        "to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


async def by_day(store: Store, first: str, last: str) -> list[dict[str, Any]]:
    """``{"day", "failed", "status_code", "requests"}`` per day, outcome and status (successes: ``failed``
    false, their status codes summed as one row each)."""
    sql = (f"SELECT {_day(store)} AS day, status = 'failure' AS failed, status_code, COUNT(*) AS requests "
           "FROM rg_spend_logs WHERE start_time >= ? AND start_time < ? GROUP BY 1, 2, 3")
    async with store._read() as c:
        rows = await c.fetch(sql, _bounds(store, first, last))
    return [{"day": r["day"], "failed": bool(r["failed"]), "status_code": r["status_code"],
             "requests": int(r["requests"])} for r in rows]


_LABELS = {"key": ("rg_keys", "token", "key_alias"), "team": ("rg_teams", "team_id", "team_alias"),
           "user": ("rg_users", "user_id", "user_email")}


async def entities(store: Store, kind: str, first: str, last: str) -> list[dict[str, Any]]:
    """The :data:`ENTITY_LIMIT` callers of ``kind`` with the most failures over the days: ``{"id", "label",
    "api_requests", "failed_requests", "top_status_code", "top_status_code_requests"}``, the most failures
    first (then by id); ``label`` the key's alias, the team's alias or the user's e-mail."""
    col = KINDS[kind]
    bounds = _bounds(store, first, last)
    async with store._read() as c:
        failed = await c.fetch(
            f"SELECT {col} AS id, status_code, COUNT(*) AS n FROM rg_spend_logs WHERE start_time >= ? AND "
            f"start_time < ? AND status = 'failure' AND {col} IS NOT NULL AND {col} <> '' GROUP BY 1, 2", bounds)
        per: dict[str, list[tuple[int, int]]] = {}
        for r in failed:
            per.setdefault(r["id"], []).append((int(r["n"]), int(r["status_code"] or 0)))
        top = sorted(per, key=lambda i: (-sum(n for n, _ in per[i]), i))[:ENTITY_LIMIT]
        if not top:
            return []
        marks = ", ".join("?" * len(top))
        counts = {r["id"]: int(r["n"]) for r in await c.fetch(
            f"SELECT {col} AS id, COUNT(*) AS n FROM rg_spend_logs WHERE start_time >= ? AND start_time < ? AND "
            f"{col} IN ({marks}) GROUP BY 1", [*bounds, *top])}
        labels: dict[str, Any] = {}
        if kind in _LABELS:
            table, pk, label = _LABELS[kind]
            labels = {r["id"]: r["label"] for r in await c.fetch(
                f"SELECT {pk} AS id, {label} AS label FROM {table} WHERE {pk} IN ({marks})", top)}
    out = []
    for ident in top:
        n_top, code = max(per[ident], key=lambda x: (x[0], -x[1]))
        out.append({"id": ident, "label": labels.get(ident), "api_requests": counts.get(ident, 0),
                    "failed_requests": sum(n for n, _ in per[ident]), "top_status_code": code or None,
                    "top_status_code_requests": n_top})
    return out
