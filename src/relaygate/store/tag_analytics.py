"""LiteLLM's user agent analytics over the daily tag rollup (``rg_daily_spend`` rows of ``entity_type = 'tag'``).

What it owns: the queries behind ``/tag/distinct``, ``/tag/dau``, ``/tag/wau``, ``/tag/mau``, ``/tag/summary``
and ``/tag/user-agent/per-user-analytics`` (``management.tag_analytics``), read as LiteLLM reads its
``LiteLLM_DailyTagSpend`` table joined to its keys: a tag's active users are the distinct ``user_id`` of the
keys that made its requests (a key without a user counts in no active-user figure; ``/tag/summary`` still
counts its requests). Days are the rollup's UTC ``YYYY-MM-DD`` text in both dialects, so every bound and
period is computed here and compared as text; a tag filter matches the tags containing it, case-insensitively
and literally (``%`` and ``_`` in it match themselves, where LiteLLM's ``ILIKE`` reads them as wildcards), or
exactly the tags listed. Sans business rules: the routes choose the periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaygate.store.base import Store

__all__ = ["MAX_TAGS", "Periods", "active_users", "distinct_tags", "per_user", "summary"]

MAX_TAGS = 250
"""Tags ``/tag/distinct`` lists at most (LiteLLM's)."""

Periods = Sequence[tuple[str, str]]
"""``(first day, last day)`` of each period, both included, the first period the most recent."""


def _tag_filter(store: Store, tag: str | None, tags: Sequence[str] | None) -> tuple[str, list[Any]]:
    if tags:
        return f" AND d.entity_id IN ({', '.join('?' * len(tags))})", list(tags)
    if tag:
        like = "ILIKE" if store.dialect == "postgres" else "LIKE"  # SQLite's LIKE ignores ASCII case already
        escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f" AND d.entity_id {like} ? ESCAPE '\\'", [f"%{escaped}%"]
    return "", []


async def distinct_tags(store: Store) -> list[str]:
    """The user agent tags (``User-Agent: ...``) and the tags without a ``:``, most days x keys x models first."""
    sql = ("SELECT d.entity_id AS tag, COUNT(*) AS usage_count FROM rg_daily_spend d WHERE d.entity_type = 'tag' "
           "AND (d.entity_id LIKE 'User-Agent:%' OR d.entity_id NOT LIKE '%:%') GROUP BY d.entity_id "
           f"ORDER BY usage_count DESC, d.entity_id LIMIT {MAX_TAGS}")
    async with store._read() as c:
        return [r["tag"] for r in await c.fetch(sql, [])]


async def active_users(store: Store, periods: Periods, *, tag: str | None = None,
                       tags: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per tag and period, the distinct users of the keys that used the tag: ``{"tag", "period",
    "active_users"}`` (``period``: the index in ``periods``), oldest period first, most users first."""
    if not periods:
        return []
    case = " ".join(f"WHEN d.day >= ? THEN {i}" for i in range(len(periods)))
    args: list[Any] = [first for first, _ in periods]
    where, more = _tag_filter(store, tag, tags)
    sql = (f"SELECT d.entity_id AS tag, CASE {case} END AS period, COUNT(DISTINCT k.user_id) AS active_users "
           "FROM rg_daily_spend d JOIN rg_keys k ON k.token = d.api_key "
           f"WHERE d.entity_type = 'tag' AND d.day >= ? AND d.day <= ? AND k.user_id IS NOT NULL{where} "
           "GROUP BY d.entity_id, period ORDER BY period DESC, active_users DESC, d.entity_id")
    args += [periods[-1][0], periods[0][1], *more]
    async with store._read() as c:
        rows = await c.fetch(sql, args)
    return [{"tag": r["tag"], "period": int(r["period"]), "active_users": int(r["active_users"])} for r in rows]


async def summary(store: Store, first: str, last: str, *, tag: str | None = None,
                  tags: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per tag over the days ``first`` to ``last`` (included): unique users, requests (successful, failed),
    tokens and spend in USD; the most requests first."""
    where, more = _tag_filter(store, tag, tags)
    sql = ("SELECT d.entity_id AS tag, COUNT(DISTINCT k.user_id) AS unique_users, SUM(d.requests) AS total, "
           "SUM(d.failed) AS failed, SUM(d.prompt_tokens + d.completion_tokens) AS tokens, "
           "SUM(d.spend_nanos) AS nanos FROM rg_daily_spend d LEFT JOIN rg_keys k ON k.token = d.api_key "
           f"WHERE d.entity_type = 'tag' AND d.day >= ? AND d.day <= ?{where} GROUP BY d.entity_id "
           "ORDER BY total DESC, d.entity_id")
    async with store._read() as c:
        rows = await c.fetch(sql, [first, last, *more])
    out = []
    for r in rows:
        total, failed = int(r["total"] or 0), int(r["failed"] or 0)
        out.append({"tag": r["tag"], "unique_users": int(r["unique_users"] or 0), "total_requests": total,
                    "successful_requests": total - failed, "failed_requests": failed,
                    "total_tokens": int(r["tokens"] or 0), "total_spend": int(r["nanos"] or 0) / 1e9})
    return out


async def per_user(store: Store, first: str, last: str, *, page: int, page_size: int, tag: str | None = None,
                   tags: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Per user of the keys that used the tags over ``first`` to ``last``: their e-mail, a user agent tag they
    used, requests, tokens and spend; the most successful requests first, one page of them, and how many users
    there are."""
    where, more = _tag_filter(store, tag, tags)
    base = ("FROM rg_daily_spend d JOIN rg_keys k ON k.token = d.api_key "
            f"WHERE d.entity_type = 'tag' AND d.day >= ? AND d.day <= ? AND k.user_id IS NOT NULL{where}")
    args = [first, last, *more]
    sql = ("SELECT u.user_id, u.user_agent, u.total, u.failed, u.tokens, u.nanos, usr.user_email FROM ("
           "SELECT k.user_id AS user_id, MIN(d.entity_id) AS user_agent, SUM(d.requests) AS total, "
           "SUM(d.failed) AS failed, SUM(d.prompt_tokens + d.completion_tokens) AS tokens, "
           f"SUM(d.spend_nanos) AS nanos {base} GROUP BY k.user_id) AS u "
           "LEFT JOIN rg_users usr ON usr.user_id = u.user_id "
           "ORDER BY u.total - u.failed DESC, u.user_id LIMIT ? OFFSET ?")
    async with store._read() as c:
        count = await c.fetch(f"SELECT COUNT(DISTINCT k.user_id) AS n {base}", args)
        rows = await c.fetch(sql, [*args, page_size, (page - 1) * page_size])
    out = []
    for r in rows:
        total, failed = int(r["total"] or 0), int(r["failed"] or 0)
        out.append({"user_id": r["user_id"], "user_email": r["user_email"], "user_agent": r["user_agent"],
                    "successful_requests": total - failed, "failed_requests": failed, "total_requests": total,
                    "total_tokens": int(r["tokens"] or 0), "spend": int(r["nanos"] or 0) / 1e9})
    return out, int(count[0]["n"] or 0) if count else 0
