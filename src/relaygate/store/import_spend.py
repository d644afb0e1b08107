"""Moving LiteLLM's spend history: ``LiteLLM_SpendLogs`` copied into relaygate's spend logs
(``relaygate db import-litellm --spend-logs``), and LiteLLM's daily spend tables into the daily rollup
(``--daily-spend``).

What it owns: :func:`spend_log_of`, one LiteLLM spend row as relaygate's :class:`SpendLog` (the same columns
under the same names, mostly: ``user`` -> ``user_id``, ``startTime`` -> ``start_time`` ...; the key alias,
cache token counts and an error's status code read from LiteLLM's ``metadata``), and
:func:`import_spend_logs`, which streams the table through a server-side cursor, oldest first, in chunks of
``chunk`` rows, each written in its own transaction by the spend sink's writer (``store.spend``): memory stays
bounded whatever the table's size, and an interrupted import is completed by running it again.

Idempotent: rows are keyed by ``request_id``, a row already stored is not written again, and only the rows
inserted are added to the spend counters (``rg_spend_totals``, which the reporting routes sum), so the rows
and the counters agree after any number of runs. The keys', users' and teams' own ``spend`` columns are left
alone: they came from LiteLLM with the identity import and already hold that spend.

:func:`import_daily_spend` copies LiteLLM's five daily tables (``LiteLLM_DailyUserSpend``, ``DailyTeamSpend``,
``DailyTagSpend``, ``DailyOrganizationSpend``, ``DailyEndUserSpend``) into the daily rollup (``store.daily``),
summed by the database per day, entity, key, model group, model and provider (LiteLLM's rows are also split by
MCP tool and endpoint, which the rollup does not keep). It is for the days LiteLLM kept no spend logs of (its
``disable_spend_logs``, or logs its retention deleted): **a day the rollup already has is left as it is**, so
running it after ``--spend-logs`` (whose rows fill the rollup) or twice counts nothing twice, and a day
relaygate already served keeps relaygate's own sums. Each day is written in its own transaction, its
presence checked inside it: an interrupted copy is completed by running it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from relaygate.store.base import Store
from relaygate.store.daily import Daily
from relaygate.store.importer import connect_litellm
from relaygate.store.records import SpendLog
from relaygate.store.spend import NANOS, add_daily, write_spend

__all__ = ["DAILY_TABLES", "import_daily_spend", "import_spend_logs", "spend_log_of"]

_decode = msgspec.json.decode


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _decode(value)
        except msgspec.DecodeError:
            return None
    return value


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def spend_log_of(row: dict[str, Any]) -> SpendLog:
    """One ``LiteLLM_SpendLogs`` row (as asyncpg returns it) as relaygate's spend row."""
    found = _json(row.get("metadata"))
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    usage: dict[str, Any] = meta["usage_object"] if isinstance(meta.get("usage_object"), dict) else {}
    details: dict[str, Any] = (usage["prompt_tokens_details"] if isinstance(usage.get("prompt_tokens_details"), dict)
                               else {})
    cache_read = _int(usage.get("cache_read_input_tokens")) or _int(details.get("cached_tokens"))
    failed = row.get("status") == "failure"
    code = 200
    if failed:
        info: dict[str, Any] = meta["error_information"] if isinstance(meta.get("error_information"), dict) else {}
        raw = str(info.get("error_code") or "")
        code = int(raw) if raw.isdigit() and 100 <= int(raw) <= 599 else 500
    tags = _json(row.get("request_tags"))
    messages = _json(row.get("messages"))
    response = _json(row.get("response"))
    request = _json(row.get("proxy_server_request"))
    spend = row.get("spend")
    cost = float(spend) if isinstance(spend, int | float) and not isinstance(spend, bool) and spend > 0 else 0.0
    alias = meta.get("user_api_key_alias")
    return SpendLog(
        request_id=str(row["request_id"]), call_type=str(row.get("call_type") or ""),
        api_key=row.get("api_key") or None, key_alias=alias if isinstance(alias, str) else None,
        spend=cost, spend_nanos=round(cost * NANOS), total_tokens=_int(row.get("total_tokens")),
        prompt_tokens=_int(row.get("prompt_tokens")), completion_tokens=_int(row.get("completion_tokens")),
        cache_read_tokens=cache_read, cache_write_tokens=_int(usage.get("cache_creation_input_tokens")),
        start_time=_utc(row.get("startTime")), end_time=_utc(row.get("endTime")),
        completion_start_time=_utc(row.get("completionStartTime")), model=row.get("model") or "",
        model_group=row.get("model_group") or "", model_id=row.get("model_id") or "",
        custom_llm_provider=row.get("custom_llm_provider") or "", user_id=row.get("user") or None,
        team_id=row.get("team_id") or None, organization_id=row.get("organization_id") or None,
        end_user=row.get("end_user") or None,
        request_tags=[t for t in tags if isinstance(t, str) and t] if isinstance(tags, list) else [],
        status="failure" if failed else "success", status_code=code,
        cache_hit=str(row.get("cache_hit") or "").lower() == "true", metadata=meta,
        messages=messages if isinstance(messages, list) else ([messages] if messages else []),
        response=response if isinstance(response, dict) else ({"content": response} if response else {}),
        requester_ip_address=row.get("requester_ip_address") or None,
        proxy_server_request=request if isinstance(request, dict) else {})


async def import_spend_logs(source_url: str, store: Store, *, chunk: int = 2000,
                            connect_timeout: float = 10.0) -> tuple[int, int]:
    """Copy ``LiteLLM_SpendLogs`` at ``source_url`` into ``store`` (module docstring): ``(read, new)``, both 0
    when the database has no such table."""
    conn = await connect_litellm(source_url, connect_timeout)
    read = new = 0
    try:
        if await conn.fetchval("SELECT to_regclass($1)", '"LiteLLM_SpendLogs"') is None:
            return 0, 0
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            batch: list[SpendLog] = []
            async for row in conn.cursor('SELECT * FROM "LiteLLM_SpendLogs" ORDER BY "startTime", request_id',
                                         prefetch=chunk):
                batch.append(spend_log_of(dict(row)))
                if len(batch) >= chunk:
                    new += await write_spend(store, batch, entity_spend=False)
                    read += len(batch)
                    batch = []
            if batch:
                new += await write_spend(store, batch, entity_spend=False)
                read += len(batch)
    finally:
        await conn.close()
    return read, new


DAILY_TABLES = (("user", "LiteLLM_DailyUserSpend", "user_id"), ("team", "LiteLLM_DailyTeamSpend", "team_id"),
                ("tag", "LiteLLM_DailyTagSpend", "tag"),
                ("organization", "LiteLLM_DailyOrganizationSpend", "organization_id"),
                ("customer", "LiteLLM_DailyEndUserSpend", "end_user_id"))
"""LiteLLM's daily tables: the rollup's entity kind, the table, its entity column."""


def _daily_select(kind: str, table: str, column: str) -> str:
    return (f"SELECT date AS day, '{kind}' AS kind, \"{column}\" AS ident, COALESCE(api_key, '') AS api_key, "
            "COALESCE(model_group, '') AS model_group, COALESCE(model, '') AS model, "
            "COALESCE(custom_llm_provider, '') AS provider, SUM(spend) AS spend, SUM(prompt_tokens) AS prompt, "
            "SUM(completion_tokens) AS completion, SUM(cache_read_input_tokens) AS cache_read, "
            "SUM(cache_creation_input_tokens) AS cache_write, SUM(api_requests) AS requests, "
            f"SUM(failed_requests) AS failed FROM \"{table}\" WHERE \"{column}\" IS NOT NULL AND \"{column}\" <> '' "
            "AND date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' GROUP BY 1, 2, 3, 4, 5, 6, 7")


async def _write_day(store: Store, day: str, daily: Daily) -> bool:
    """One day's sums into the rollup, unless it has that day already (checked in the same transaction)."""
    async with store._transaction() as c:
        if await c.fetch("SELECT 1 AS one FROM rg_daily_spend WHERE day = ? LIMIT 1", [day]):
            return False
        await add_daily(c, daily, store.dialect)
    return True


async def import_daily_spend(source_url: str, store: Store, *, connect_timeout: float = 10.0) -> tuple[int, int]:
    """Copy LiteLLM's daily spend tables at ``source_url`` into ``store``'s daily rollup (module docstring):
    ``(days copied, days skipped because the rollup had them)``; ``(0, 0)`` without any such table."""
    conn = await connect_litellm(source_url, connect_timeout)
    copied = skipped = 0
    try:
        parts = [_daily_select(kind, table, column) for kind, table, column in DAILY_TABLES
                 if await conn.fetchval("SELECT to_regclass($1)", f'"{table}"') is not None]
        if not parts:
            return 0, 0
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            day: str | None = None
            daily: Daily = {}
            async for row in conn.cursor(" UNION ALL ".join(parts) + " ORDER BY 1", prefetch=2000):
                if row["day"] != day:
                    if day is not None:
                        if await _write_day(store, day, daily):
                            copied += 1
                        else:
                            skipped += 1
                    day, daily = row["day"], {}
                k = (row["day"], row["kind"], row["ident"], row["api_key"], row["model_group"], row["model"],
                     row["provider"])
                spend = float(row["spend"] or 0.0)
                sums = [round(spend * NANOS) if spend > 0 else 0, *(_int(int(row[c] or 0)) for c in (
                    "prompt", "completion", "cache_read", "cache_write", "requests", "failed"))]
                got = daily.get(k)
                daily[k] = sums if got is None else [a + b for a, b in zip(got, sums, strict=True)]
            if day is not None:
                if await _write_day(store, day, daily):
                    copied += 1
                else:
                    skipped += 1
    finally:
        await conn.close()
    return copied, skipped
