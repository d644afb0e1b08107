"""LiteLLM's model analytics from the spend logs: the reads behind ``management.model_metrics``.

What it owns: four grouped reads of one model group's spend rows in a time range (the spend logs' time index
bounds the scan), each per deployment id and upstream model, which the routes turn into LiteLLM's shapes:

- :func:`latency_per_token`: per UTC day, the mean seconds per output token of the answers that were not
  cache hits (rows with output only; a day whose rows have none is left out, as LiteLLM's ``HAVING``);
- :func:`time_to_first_token`: the seconds from the request's start to its first streamed token, per UTC day
  (their mean) or, for one day, per request (the slowest :data:`MAX_REQUESTS`);
- :func:`slow_responses`: the requests, failed ones too, and those that lasted at least a threshold;
- :func:`exceptions`: the failures per error class (LiteLLM's ``error_information.error_class``).

Rows that were cache hits are left out of the first three (a hit says nothing about the deployment), as
LiteLLM's queries do, and failures out of the first two (LiteLLM keeps them, but a failure's tokens and
first chunk are not an answer's). ``api_key`` (a key's SHA-256 hex) and ``end_user`` narrow the rows when given.
"""

from __future__ import annotations

from typing import Any

from relaygate.store.activity import Scope, bucket_sql, elapsed_ms, error_field
from relaygate.store.base import Store

__all__ = ["MAX_REQUESTS", "exceptions", "latency_per_token", "slow_responses", "time_to_first_token"]

MAX_REQUESTS = 1000
"""Requests one day's time-to-first-token answer lists at most (the slowest): LiteLLM lists every one."""


def _where(store: Store, scope: Scope, group: str, api_key: str | None, end_user: str | None,
           hits: bool = False, answered: bool = False) -> tuple[str, list[Any]]:
    where, args = scope.where(store)
    where += " AND s.model_group = ?"
    args.append(group)
    if not hits:
        where += " AND NOT s.cache_hit"
    if answered:
        where += " AND s.status = 'success'"
    if api_key is not None:
        where += " AND s.api_key = ?"
        args.append(api_key)
    if end_user is not None:
        where += " AND s.end_user = ?"
        args.append(end_user)
    return where, args


async def latency_per_token(store: Store, scope: Scope, group: str, *, api_key: str | None = None,
                            end_user: str | None = None) -> list[dict[str, Any]]:
    """``{"deployment", "model", "day", "seconds", "n"}`` per deployment id, upstream model and UTC day: the mean
    seconds per output token of the ``n`` rows with output."""
    where, args = _where(store, scope, group, api_key, end_user, answered=True)
    lat = elapsed_ms(store.dialect, "s.end_time", "s.start_time")
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.model_id AS dep, s.model AS model, {bucket_sql(store.dialect, 'day')} AS day, "
            f"AVG(CASE WHEN s.completion_tokens > 0 THEN {lat} / 1000.0 / s.completion_tokens END) AS per_token, "
            "SUM(CASE WHEN s.completion_tokens > 0 THEN 1 ELSE 0 END) AS n "
            f"FROM rg_spend_logs s WHERE {where} AND s.end_time IS NOT NULL GROUP BY 1, 2, 3 "
            "HAVING SUM(s.completion_tokens) > 0 ORDER BY 3, 1, 2", args)
    return [{"deployment": r["dep"] or "", "model": r["model"] or "", "day": r["day"],
             "seconds": float(r["per_token"]), "n": int(r["n"])} for r in rows if r["per_token"] is not None]


async def time_to_first_token(store: Store, scope: Scope, group: str, *, per_request: bool
                              ) -> list[dict[str, Any]]:
    """``{"deployment", "model", "key", "seconds", "n"}``: the streamed answers' seconds to their first token,
    the mean of ``n`` per UTC day (``key`` the day), or with ``per_request`` each request's (``key`` its request
    id, ``n`` 1; the :data:`MAX_REQUESTS` slowest). Answers whose first token was their end (nothing streamed
    before it) are left out, as LiteLLM's query does."""
    where, args = _where(store, scope, group, None, None, answered=True)
    ttft = elapsed_ms(store.dialect, "s.completion_start_time", "s.start_time")
    where += " AND s.completion_start_time IS NOT NULL AND s.completion_start_time <> s.end_time"
    async with store._read() as c:
        if per_request:
            rows = await c.fetch(
                f"SELECT s.model_id AS dep, s.model AS model, s.request_id AS k, {ttft} / 1000.0 AS t, 1 AS n "
                f"FROM rg_spend_logs s WHERE {where} ORDER BY 4 DESC, 3 LIMIT {MAX_REQUESTS}", args)
        else:
            rows = await c.fetch(
                f"SELECT s.model_id AS dep, s.model AS model, {bucket_sql(store.dialect, 'day')} AS k, "
                f"AVG({ttft} / 1000.0) AS t, COUNT(*) AS n FROM rg_spend_logs s WHERE {where} "
                "GROUP BY 1, 2, 3 ORDER BY 3, 1, 2", args)
    return [{"deployment": r["dep"] or "", "model": r["model"] or "", "key": r["k"], "seconds": float(r["t"]),
             "n": int(r["n"])} for r in rows if r["t"] is not None]


async def slow_responses(store: Store, scope: Scope, group: str, threshold: float, *, api_key: str | None = None,
                         end_user: str | None = None) -> list[dict[str, Any]]:
    """``{"deployment", "model", "total", "slow"}`` per deployment id and upstream model: the requests, and those
    that lasted ``threshold`` seconds or more."""
    where, args = _where(store, scope, group, api_key, end_user)
    lat = elapsed_ms(store.dialect, "s.end_time", "s.start_time")
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.model_id AS dep, s.model AS model, COUNT(*) AS n, "
            f"SUM(CASE WHEN s.end_time IS NOT NULL AND {lat} >= ? THEN 1 ELSE 0 END) AS slow "
            f"FROM rg_spend_logs s WHERE {where} GROUP BY 1, 2", [threshold * 1000.0, *args])
    return [{"deployment": r["dep"] or "", "model": r["model"] or "", "total": int(r["n"]),
             "slow": int(r["slow"] or 0)} for r in rows]


async def exceptions(store: Store, scope: Scope, group: str, *, api_key: str | None = None
                     ) -> list[dict[str, Any]]:
    """``{"deployment", "model", "error_class", "count"}`` per deployment id, upstream model and error class of
    the group's failed requests (cache hits included: a hit does not fail); a failure without a class is
    ``Unknown``."""
    where, args = _where(store, scope, group, api_key, None, hits=True)
    klass = f"COALESCE(NULLIF({error_field(store.dialect, 'error_class')}, ''), 'Unknown')"
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.model_id AS dep, s.model AS model, {klass} AS klass, COUNT(*) AS n FROM rg_spend_logs s "
            f"WHERE {where} AND s.status = 'failure' GROUP BY 1, 2, 3", args)
    return [{"deployment": r["dep"] or "", "model": r["model"] or "", "error_class": str(r["klass"]),
             "count": int(r["n"])} for r in rows]
