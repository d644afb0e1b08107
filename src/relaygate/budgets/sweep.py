"""The budget reset sweep: the reset of an entity nobody used since its period ended, written anyway.

A budget check starts a new period the moment a request arrives after the boundary, and writes the reset back
(``BudgetGuard._reset``); an entity with no traffic would keep showing last period's ``spend`` in ``/key/info``,
``/team/info``, the UI and the budget gauges until its next request. LiteLLM's reset job rewrites them every
~10 minutes; this sweep does the same for relaygate's rows: keys, teams and users whose ``budget_reset_at`` has
passed, and budget rows (every organization, customer, tag and team member on one) whose has, get ``spend`` 0
and the end of the period holding now (and the keys' and teams' budget windows whose ``reset_at`` has passed,
that ``reset_at`` only) (``periods.period_at`` from their ``budget_reset_at``, with the
configured :class:`~relaygate.budgets.periods.Calendar`), by the same compare-and-set writes the guard uses, so
a worker's guard and a sweep resetting the same row for the same boundary write once and lose no spend.

Bounds: at most :data:`LIMIT` rows per table per run (the rest in the next run), one run at a time among every
worker and instance on the database (the store's job lock :data:`LOCK`), every :data:`EVERY` seconds with a
jitter so workers started together do not run together; a failure (the database down) is logged once per run
and the next run tries again. Nothing here is on a request's path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from relaygate.budgets.periods import Calendar, parse, period_at
from relaygate.service_metrics import timed
from relaygate.store import Store
from relaygate.store import tables as t

__all__ = ["EVERY", "LIMIT", "LOCK", "run", "sweep_forever"]

log = logging.getLogger("relaygate.budgets")

EVERY = 600.0
"""Seconds between two runs of a worker (LiteLLM's reset job: every 597-605 s)."""
LIMIT = 1_000
"""Rows per table one run resets at most."""
_WINDOW_PAGES = 10
"""Pages of :data:`LIMIT` keys (teams) with budget windows one run looks through at most."""
LOCK = "budget_reset_sweep"
"""The store's job lock a run holds (``Store.job_lock``)."""
_TABLES: tuple[tuple[str, t.Table[Any]], ...] = (("key", t.KEYS), ("team", t.TEAMS), ("user", t.USERS),
                                                 ("budget", t.BUDGETS))


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _due(store: Store, table: t.Table[Any], now: datetime) -> list[tuple[str, str, datetime]]:
    """(id, budget_duration, budget_reset_at) of the rows of ``table`` whose period has ended, oldest first."""
    pk = table.pk[0]
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {pk} AS id, budget_duration, budget_reset_at FROM {table.name} WHERE budget_duration IS NOT NULL "
            "AND budget_reset_at IS NOT NULL AND budget_reset_at <= ? ORDER BY budget_reset_at LIMIT ?",
            [table.to_db("budget_reset_at", now, store.dialect), LIMIT])
    out = []
    for row in rows:
        at = _when(row["budget_reset_at"])
        if at is not None and isinstance(row["budget_duration"], str):
            out.append((str(row["id"]), row["budget_duration"], at))
    return out


async def _windows(store: Store, kind: str, table: t.Table[Any], cal: Calendar, wall: float) -> int:
    """Move every passed ``reset_at`` of the key's or team's budget windows (``budget_limits``) to the end of
    the period holding now, as LiteLLM's reset job does, so ``/key/info`` shows when each resets next; the
    write is a compare-and-set on the windows as read (an admin's edit in between wins). What a window refuses
    does not depend on it: the guard steps its periods from any of its boundaries alike. How many rows moved."""
    pk, done, last = table.pk[0], 0, ""
    json_arg = "CAST(? AS JSONB)" if store.dialect == "postgres" else "?"
    for _ in range(_WINDOW_PAGES):
        async with store._read() as c:
            rows = await c.fetch(
                f"SELECT {pk} AS id, budget_limits FROM {table.name} WHERE {pk} > ? AND budget_limits IS NOT NULL "
                f"AND CAST(budget_limits AS TEXT) NOT IN ('[]', 'null', '') ORDER BY {pk} LIMIT ?", [last, LIMIT])
        for row in rows:
            raw = row["budget_limits"]
            windows = json.loads(raw) if isinstance(raw, str) else raw
            moved = _moved(windows, cal, wall) if isinstance(windows, list) else None
            if moved is None:
                continue
            async with store.write() as c:
                if await c.execute(f"UPDATE {table.name} SET budget_limits = ? WHERE {pk} = ? AND budget_limits = "
                                   f"{json_arg}", [json.dumps(moved), row["id"], raw if isinstance(raw, str)
                                                   else json.dumps(raw)]):
                    done += 1
                    log.info("budget windows reset: %s %s", kind, str(row["id"])[:24] if kind == "key" else row["id"])
        if len(rows) < LIMIT:
            break
        last = str(rows[-1]["id"])
    return done


def _moved(windows: list[Any], cal: Calendar, wall: float) -> list[Any] | None:
    """``windows`` with every passed ``reset_at`` moved to the end of the period holding ``wall``; None when
    none had passed."""
    out, changed = [], False
    for w in windows:
        at = _when(w.get("reset_at")) if isinstance(w, dict) else None
        if at is not None and at.timestamp() <= wall and isinstance(w.get("budget_duration"), str):
            try:
                end = period_at(parse(w["budget_duration"], cal), at.timestamp(), wall)[1]
            except ValueError:
                end = None
            if end is not None:
                w = {**w, "reset_at": datetime.fromtimestamp(end, UTC).isoformat()}
                changed = True
        out.append(w)
    return out if changed else None


async def run(store: Store, cal: Calendar, now: float | None = None) -> int | None:
    """One sweep; how many rows it reset (None: another process's run holds the lock)."""
    wall = time.time() if now is None else now
    at = datetime.fromtimestamp(wall, UTC)
    done = 0
    async with store.job_lock(LOCK) as mine:
        if not mine:
            return None
        for kind, table in _TABLES:
            for ident, text, reset_at in await _due(store, table, at):
                try:
                    duration = parse(text, cal)
                except ValueError:
                    continue  # the guard warns about it when the entity is used
                end = datetime.fromtimestamp(period_at(duration, reset_at.timestamp(), wall)[1], UTC)
                if kind == "budget":
                    reset = store.reset_budget_period(ident, end)
                else:
                    reset = store.reset_period(kind, ident, end)
                if await timed("reset_budget_job", "reset_budget", reset):
                    done += 1
                    log.info("budget reset: %s %s, next reset at %s", kind, ident[:24] if kind == "key" else ident,
                             end.isoformat())
        for kind, table in _TABLES[:2]:  # keys' and teams' budget windows
            done += await _windows(store, kind, table, cal, wall)
    return done


async def sweep_forever(store: Store, cal: Calendar, every: float = EVERY) -> None:
    """:func:`run` every ``every`` seconds (jittered by up to a tenth), the first run soon after start."""
    delay = random.uniform(min(1.0, every), max(1.0, every / 10))
    while True:
        await asyncio.sleep(delay)
        delay = every * random.uniform(0.95, 1.05)
        try:
            await run(store, cal)
        except Exception as exc:  # the database down: the next run tries again
            log.warning("budget reset sweep failed (%s: %s); the next one in %.0f s", type(exc).__name__, exc,
                        delay)
