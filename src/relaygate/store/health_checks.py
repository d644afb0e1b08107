"""Deployment health check history: ``rg_health_checks`` (LiteLLM's ``LiteLLM_HealthCheckTable``, step 14).

What it owns: writing check results (:func:`save_checks`, one transaction a call, never through the change
counter: a health check changes no configuration), reading them back newest first with LiteLLM's filters
(:func:`history`), the newest row per model (:func:`latest`, :func:`latest_by_model`), and the retention
(:func:`prune`).

A row is LiteLLM's: ``model_name``, ``model_id`` (NULL for a check of a model name), ``status`` (``healthy``
when at least one of the checked deployments answered, else ``unhealthy``), ``healthy_count`` /
``unhealthy_count``, the first failure's ``error_message`` (500 characters at most), ``response_time_ms``,
``details`` (JSON, unused by the writers here, as in LiteLLM), ``checked_by`` (the caller's user id, or
``background_health_check``) and ``checked_at``. A row that repeats the newest row of its model with the same
status within :data:`REFRESH` is not written when ``only_changes`` asks so (:func:`save_checks`), in the same
statement as the insert, so workers and instances that check together write one row per change, not one each
(two transactions racing can still both write: a duplicate row, never a lost one).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from relaygate.store import tables as t
from relaygate.store.base import Store

__all__ = ["ERROR_CHARS", "REFRESH", "RETENTION", "CheckRow", "history", "latest", "latest_by_model", "prune",
           "save_checks"]

ERROR_CHARS = 500
"""The longest ``error_message`` kept (LiteLLM's cut)."""
REFRESH = timedelta(hours=1)
"""A background round writes a model's unchanged status again once this long after its newest row (LiteLLM's
hourly refresh of a stable status)."""
RETENTION = timedelta(days=30)
"""Rows older than this are deleted (:func:`prune`, at most hourly after a write): LiteLLM keeps
every row forever, and a monitor calling ``/health?model=`` every few seconds grows its table without end."""
_COLUMNS = ("health_check_id", "model_name", "model_id", "status", "healthy_count", "unhealthy_count",
            "error_message", "response_time_ms", "details", "checked_by", "checked_at")
_SELECT = ", ".join(_COLUMNS)


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One result to write (see the module docstring)."""

    model_name: str
    model_id: str | None
    healthy_count: int
    unhealthy_count: int
    error_message: str | None
    response_time_ms: float | None
    checked_by: str | None

    @property
    def status(self) -> str:
        return "healthy" if self.healthy_count > 0 else "unhealthy"


def _at(store: Store, value: datetime) -> Any:
    """A time as the dialect stores it (ISO text in SQLite, ``timestamptz`` in PostgreSQL)."""
    return t.time_value(value, store.dialect)


_PG_TYPES = ("text", "text", "text", "text", "bigint", "bigint", "text", "double precision", "jsonb", "text",
             "timestamptz")
_INSERT = {  # a SELECT of parameters: PostgreSQL is told their types (it would take them for text)
    "sqlite": f"INSERT INTO rg_health_checks ({_SELECT}) SELECT {', '.join('?' * len(_COLUMNS))}",
    "postgres": f"INSERT INTO rg_health_checks ({_SELECT}) SELECT {', '.join(f'?::{k}' for k in _PG_TYPES)}",
}
_UNCHANGED = (" WHERE NOT EXISTS (SELECT 1 FROM (SELECT status, checked_at FROM rg_health_checks "
              "WHERE model_name = ? AND COALESCE(model_id, '') = ? ORDER BY checked_at DESC LIMIT 1) AS newest "
              "WHERE newest.status = ? AND newest.checked_at > ?)")


async def save_checks(store: Store, rows: Sequence[CheckRow], *, only_changes: bool = False,
                      now: datetime | None = None) -> int:
    """Write ``rows`` in one transaction; with ``only_changes`` a row whose model's newest row has its status
    and is younger than :data:`REFRESH` is left out. The number written."""
    if not rows:
        return 0
    now = now or datetime.now(UTC)
    at = _at(store, now)
    fresh = _at(store, now - REFRESH)
    insert = _INSERT[store.dialect]
    statements = []
    for row in rows:
        error = row.error_message[:ERROR_CHARS] if row.error_message else None
        args: list[Any] = [str(uuid.uuid4()), row.model_name, row.model_id, row.status, row.healthy_count,
                           row.unhealthy_count, error, row.response_time_ms, None, row.checked_by, at]
        if only_changes:
            statements.append((insert + _UNCHANGED, [*args, row.model_name, row.model_id or "", row.status, fresh]))
        else:
            statements.append((insert, args))
    async with store._transaction() as c:
        return int(await c.execute_each(statements))


async def prune(store: Store, now: datetime | None = None) -> int:
    """Delete the rows older than :data:`RETENTION`; how many."""
    cutoff = (now or datetime.now(UTC)) - RETENTION
    async with store._transaction() as c:
        return int(await c.execute("DELETE FROM rg_health_checks WHERE checked_at < ?", [_at(store, cutoff)]))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row in LiteLLM's ``convert_health_check_to_dict`` shape (``created_at`` is ``checked_at``: a row
    is written once, when it was checked)."""
    details = row.get("details")
    if isinstance(details, str):
        try:
            details = orjson.loads(details)
        except orjson.JSONDecodeError:
            details = None
    checked = _iso(row.get("checked_at"))
    return {"health_check_id": row["health_check_id"], "model_name": row["model_name"], "model_id": row["model_id"],
            "status": row["status"], "healthy_count": int(row["healthy_count"] or 0),
            "unhealthy_count": int(row["unhealthy_count"] or 0), "error_message": row["error_message"],
            "response_time_ms": row["response_time_ms"], "details": details, "checked_by": row["checked_by"],
            "checked_at": checked, "created_at": checked}


async def history(store: Store, *, model: str | None = None, status: str | None = None, limit: int = 100,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Rows newest first, of ``model`` (its name) and ``status`` when given (LiteLLM's ``/health/history``)."""
    where, args = [], []
    if model is not None:
        where.append("model_name = ?")
        args.append(model)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    sql = (f"SELECT {_SELECT} FROM rg_health_checks {'WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY checked_at DESC, health_check_id LIMIT ? OFFSET ?")
    async with store._read() as c:
        rows = await c.fetch(sql, [*args, limit, offset])
    return [as_json(r) for r in rows]


async def latest(store: Store) -> list[dict[str, Any]]:
    """The newest row of each ``(model_id, model_name)`` (LiteLLM's ``/health/latest``)."""
    sql = (f"SELECT {_SELECT} FROM (SELECT {_SELECT}, ROW_NUMBER() OVER (PARTITION BY COALESCE(model_id, ''), "
           "model_name ORDER BY checked_at DESC, health_check_id) AS rn FROM rg_health_checks) AS ranked "
           "WHERE rn = 1 ORDER BY model_name, model_id")
    async with store._read() as c:
        rows = await c.fetch(sql, [])
    return [as_json(r) for r in rows]


async def latest_by_model(store: Store, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The newest row of each of the model names ``names`` (whichever deployment or check wrote it), by name."""
    if not names:
        return {}
    sql = (f"SELECT {_SELECT} FROM (SELECT {_SELECT}, ROW_NUMBER() OVER (PARTITION BY model_name ORDER BY "
           f"checked_at DESC, health_check_id) AS rn FROM rg_health_checks WHERE model_name IN "
           f"({', '.join('?' * len(names))})) AS ranked WHERE rn = 1")
    async with store._read() as c:
        rows = await c.fetch(sql, list(names))
    return {r["model_name"]: as_json(r) for r in rows}
