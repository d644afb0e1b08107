"""Spend per hour, key, model and team from the spend logs: what the CloudZero export (``observe.cloudzero``) sends.

What it owns: :func:`hourly_usage`, one grouped read of ``rg_spend_logs`` between two instants (an hour's text key
``YYYY-MM-DDTHH``, UTC, per ``store.activity.bucket_sql``; spend summed in integer nano-USD, so the sums are the
rows' exactly), and the labels it is sent with: each key's alias, each team's alias, each user's email, read from
their rows now (a key renamed since is sent under its new alias, as LiteLLM joins its key table). Both dialects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relaygate.store.activity import bucket_sql
from relaygate.store.base import Store
from relaygate.store.spend import NANOS
from relaygate.store.tables import SPEND_LOGS

__all__ = ["hourly_usage"]

_SLICE = 500


async def _labels(store: Store, sql: str, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with store._read() as c:
        for i in range(0, len(ids), _SLICE):
            part = ids[i:i + _SLICE]
            for row in await c.fetch(sql.format(marks=", ".join("?" * len(part))), part):
                out[row["id"]] = row["label"]
    return out


async def hourly_usage(store: Store, start: datetime, end: datetime, limit: int | None = None) -> list[dict[str, Any]]:
    """The spend rows with ``start <= start_time < end`` summed per hour, key, model group, model, provider, team
    and user (newest hour first; at most ``limit`` groups), each with ``hour``, ``api_key``, ``model_group``,
    ``model``, ``provider``, ``team_id``, ``user_id``, ``spend`` (USD), ``prompt_tokens``, ``completion_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``requests``, ``failed``, and ``key_alias``, ``team_alias``,
    ``user_email`` from the entities' rows."""
    dialect = store.dialect
    hour = bucket_sql(dialect, "hour")
    args: list[Any] = [SPEND_LOGS.to_db("start_time", start, dialect), SPEND_LOGS.to_db("start_time", end, dialect)]
    sql = (f"SELECT {hour} AS hour, s.api_key, s.model_group, s.model, s.custom_llm_provider AS provider, s.team_id, "
           "s.user_id, SUM(s.spend_nanos) AS nanos, SUM(s.prompt_tokens) AS prompt_tokens, "
           "SUM(s.completion_tokens) AS completion_tokens, SUM(COALESCE(s.cache_read_tokens, 0)) AS cache_read_tokens, "
           "SUM(COALESCE(s.cache_write_tokens, 0)) AS cache_write_tokens, COUNT(*) AS requests, "
           "SUM(CASE WHEN s.status = 'failure' THEN 1 ELSE 0 END) AS failed FROM rg_spend_logs s "
           "WHERE s.start_time >= ? AND s.start_time < ? "
           "GROUP BY 1, s.api_key, s.model_group, s.model, s.custom_llm_provider, s.team_id, s.user_id "
           "ORDER BY 1 DESC, s.api_key, s.model")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    async with store._read() as c:
        rows = [dict(r) for r in await c.fetch(sql, args)]
    keys = sorted({r["api_key"] for r in rows if r["api_key"]})
    teams = sorted({r["team_id"] for r in rows if r["team_id"]})
    users = sorted({r["user_id"] for r in rows if r["user_id"]})
    aliases = await _labels(store, "SELECT token AS id, key_alias AS label FROM rg_keys WHERE token IN ({marks})", keys)
    team_aliases = await _labels(store, "SELECT team_id AS id, team_alias AS label FROM rg_teams "
                                        "WHERE team_id IN ({marks})", teams)
    emails = await _labels(store, "SELECT user_id AS id, user_email AS label FROM rg_users WHERE user_id IN ({marks})",
                           users)
    for r in rows:
        r["spend"] = int(r.pop("nanos") or 0) / NANOS
        for name in ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "requests",
                     "failed"):
            r[name] = int(r[name] or 0)
        r["key_alias"] = aliases.get(r["api_key"])
        r["team_alias"] = team_aliases.get(r["team_id"])
        r["user_email"] = emails.get(r["user_id"])
    return rows
