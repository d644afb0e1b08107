"""The daily spend rollup: spend, tokens and requests per UTC day, entity, key, model group, model and provider.

What it owns: ``rg_daily_spend`` (migration step 10) and its read by the daily activity routes
(``/user|team|tag|organization|customer/daily/activity``); the spend writer (``store.spend``) upserts it.
LiteLLM keeps the same sums in five tables (``LiteLLM_DailyUserSpend``, ``DailyTeamSpend``, ``DailyTagSpend``,
``DailyOrganizationSpend``, ``DailyEndUserSpend``); here they are one, told apart by ``entity_type``.

Invariants:

- **Written with the rows, from the rows.** :func:`~relaygate.store.spend.write_spend_values` adds exactly the
  spend rows it inserted (or, with ``disable_spend_logs``, every row of the batch), in the same transaction as
  the counters: for every day, entity and combination, the rollup equals the sum of its spend rows as long
  as retention has deleted none, and a retried batch adds nothing twice.
- **It outlives the rows.** Retention deletes spend logs, never rollup rows; with ``disable_spend_logs`` no row
  is written but the rollup still moves. The daily activity views therefore show what LiteLLM's show in
  both cases (they used to be computed from the spend logs, and were empty there).
- **One row per combination and day**, keyed by all seven columns (empty text for a missing key, model group,
  model or provider; a request without the entity is in no row of that kind; a request with several tags
  counts for each). A batch is summed per combination first, so a second's thousands of requests are a few
  hundred upserts, in key order (two writers never deadlock on PostgreSQL).
- **Days are UTC**, ``YYYY-MM-DD``, taken from the row's start time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relaygate.store.base import Store

__all__ = ["DAILY_COLUMNS", "DAILY_KINDS", "DAILY_UPSERT", "ID_MAX", "Daily", "bounded_id", "bounded_sql",
           "day_of", "read_daily"]

DAILY_KINDS = ("user", "team", "organization", "customer", "tag")
"""The entity kinds of the rollup (the daily activity routes' entities)."""

Daily = dict[tuple[str, str, str, str, str, str, str], list[int]]
"""``(day, entity_type, entity_id, api_key, model_group, model, provider)`` -> ``[spend_nanos, prompt_tokens,
completion_tokens, cache_read_tokens, cache_write_tokens, requests, failed]``."""

DAILY_COLUMNS = ("day", "entity_type", "entity_id", "api_key", "model_group", "model", "provider",
                 "spend_nanos", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens",
                 "requests", "failed", "updated_at")
"""``rg_daily_spend``'s columns in table order: the key's seven, the seven sums, ``updated_at``."""
DAILY_UPSERT = (f"ON CONFLICT ({', '.join(DAILY_COLUMNS[:7])}) DO UPDATE SET "
                + ", ".join(f"{c} = rg_daily_spend.{c} + excluded.{c}" for c in DAILY_COLUMNS[7:14])
                + ", updated_at = excluded.updated_at")
"""What an insert into the rollup does with a combination already there: its sums added."""


ID_MAX = 512
"""Characters of an entity id the counters and the daily rollup key by at most: a longer one (a client's ``user``
of kilobytes) is keyed by its digest (:func:`bounded_id`; SQLite connections have it as the SQL function
``rg_bounded_id``, PostgreSQL's expression is :func:`bounded_sql`: migration step 10 uses them). PostgreSQL
refuses a B-tree entry over ~2.7 kB, and one such id failed the whole batch's transaction, so every request of
that second lost its row."""


def bounded_id(ident: str) -> str:
    """``ident`` when it is at most :data:`ID_MAX` characters, else ``sha256:<hex of its UTF-8>``."""
    if len(ident) <= ID_MAX:
        return ident
    return "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def bounded_sql(dialect: str, expr: str) -> str:
    """SQL for :func:`bounded_id` of the text expression ``expr``."""
    if dialect == "sqlite":
        return f"rg_bounded_id({expr})"
    return (f"CASE WHEN length({expr}) > {ID_MAX} THEN 'sha256:' || encode(sha256(convert_to({expr}, 'UTF8')), "
            f"'hex') ELSE {expr} END")


def day_of(value: Any) -> str:
    """The UTC day (``YYYY-MM-DD``) of a spend row's start time: ISO text in UTC (as the spend sink and the
    SQLite store write it) or a ``datetime`` (naive: UTC)."""
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo is not None else value).strftime("%Y-%m-%d")
    return ""


async def read_daily(store: Store, start: datetime, end: datetime, entity: str, *, ids: Sequence[str] | None = None,
                     exclude: Sequence[str] | None = None, model: str | None = None,
                     api_key: str | None = None) -> list[dict[str, Any]]:
    """The rollup's rows of ``entity`` kind for the days from ``start`` (included) to ``end`` (excluded; both
    UTC midnights), only ``ids`` when given, never ``exclude``, of ``model`` (a model group or an upstream
    model) and ``api_key`` (a key's hash) when given, newest day first: ``day``, ``model_group``, ``model``,
    ``provider``, ``api_key``, ``entity``, ``spend_nanos``, ``prompt_tokens``, ``completion_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``requests``, ``failed``."""
    where = "entity_type = ? AND day >= ? AND day < ?"
    args: list[Any] = [entity, start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")]
    if ids:
        where += f" AND entity_id IN ({', '.join('?' * len(ids))})"
        args.extend(ids)
    if exclude:
        where += f" AND entity_id NOT IN ({', '.join('?' * len(exclude))})"
        args.extend(exclude)
    if model is not None:
        where += " AND (model_group = ? OR model = ?)"
        args.extend((model, model))
    if api_key is not None:
        where += " AND api_key = ?"
        args.append(api_key)
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {', '.join(DAILY_COLUMNS[:14])} FROM rg_daily_spend WHERE {where} "
                             "ORDER BY day DESC, entity_id, api_key, model_group, model, provider", args)
    return [{"day": r["day"], "model_group": r["model_group"], "model": r["model"], "provider": r["provider"],
             "api_key": r["api_key"], "entity": r["entity_id"], "spend_nanos": int(r["spend_nanos"] or 0),
             "prompt_tokens": int(r["prompt_tokens"] or 0), "completion_tokens": int(r["completion_tokens"] or 0),
             "cache_read_tokens": int(r["cache_read_tokens"] or 0),
             "cache_write_tokens": int(r["cache_write_tokens"] or 0), "requests": int(r["requests"] or 0),
             "failed": int(r["failed"] or 0)} for r in rows]
