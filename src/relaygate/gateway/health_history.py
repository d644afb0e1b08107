"""Health check results kept in the database, written off the caller's path (``store.health_checks``).

What it owns: :class:`HealthLog`, a worker's writer of check rows. ``GET /health`` with ``model`` or ``model_id``
hands it one row for the model it checked, a background round one row per deployment checked (written only
when its status changed or an hour after its last row: LiteLLM's rule, decided in the insert itself, so every
worker of every instance can hand the same round in). It never delays an answer or a round: rows wait in a
bounded backlog (:data:`BACKLOG` batches; past it a batch is dropped and counted) and one task per worker
writes them, one transaction a batch, and deletes the rows past the retention at most once an hour. A
database that fails costs a warning a minute (``health_history_dropped`` counts what was lost), never an error
to a caller. Without a database nothing is kept, as in LiteLLM.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from relaygate.store.health_checks import CheckRow, latest_by_model, prune, save_checks

log = logging.getLogger("relaygate")

BACKGROUND = "background_health_check"
"""``checked_by`` of a background round's rows (LiteLLM's, without a shared health check manager)."""
BACKLOG = 64
"""Batches waiting for the database at most, per worker."""
WARN_EVERY = 60.0
"""Seconds between two warnings about rows not written."""
HUB_TTL = 5.0
"""Seconds a worker reuses the stored checks it read for the public model hub (:meth:`HealthLog.stored_latest`):
the hub answers anyone, and a read per anonymous request would let anyone load the database."""
PRUNE_EVERY = 3600.0
"""Seconds between two deletions of the rows past the retention, per worker (after a write)."""

__all__ = ["BACKGROUND", "BACKLOG", "HUB_TTL", "CheckRow", "HealthLog", "log_of"]


class HealthLog:
    """One worker's writer of health check rows (see the module docstring)."""

    __slots__ = ("gw", "_pending", "_task", "_warned_at", "_pruned_at", "written", "dropped", "_hub", "_hub_lock")

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self._pending: collections.deque[tuple[list[CheckRow], bool]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._warned_at = -WARN_EVERY
        self._pruned_at = -PRUNE_EVERY
        self.written = 0
        self.dropped = 0
        self._hub: tuple[float, tuple[str, ...], dict[str, dict[str, Any]]] | None = None
        self._hub_lock = asyncio.Lock()

    def submit(self, rows: list[CheckRow], *, only_changes: bool = False) -> None:
        """Queue ``rows`` (one transaction); never waits. Nothing happens without a database."""
        if not rows or self.gw.store is None:
            return
        if len(self._pending) >= BACKLOG:
            self._lost(len(rows), "the backlog is full")
            return
        self._pending.append((rows, only_changes))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            rows, only_changes = self._pending.popleft()
            store = self.gw.store
            if store is None:
                self._lost(len(rows), "the database is gone")
                continue
            try:
                self.written += await save_checks(store, rows, only_changes=only_changes)
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY:  # the retention (an indexed range delete)
                    self._pruned_at = time.monotonic()
                    await prune(store)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(len(rows), f"{type(exc).__name__}: {exc}")

    def _lost(self, n: int, why: str) -> None:
        self.dropped += n
        counter = getattr(self.gw, "metrics", None)
        if counter is not None:
            counter.count("health_history_dropped", n)
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("health check history: %d row(s) not written (%s); %d lost on this worker so far", n,
                        why, self.dropped)

    async def stored_latest(self, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The newest stored check of each model name of ``names`` (``store.health_checks.latest_by_model``),
        read at most every :data:`HUB_TTL` seconds by this worker (one read at a time; the others wait for
        it); {} without a database or when it fails (logged as a row loss is, at most once a minute)."""
        store = self.gw.store
        if store is None or not names:
            return {}
        async with self._hub_lock:
            now = time.monotonic()
            held = self._hub
            if held is not None and held[1] == names and now - held[0] < HUB_TTL:
                return held[2]
            try:
                found = await latest_by_model(store, names)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                found = {}
                if now - self._warned_at >= WARN_EVERY:
                    self._warned_at = now
                    log.warning("health check history: not read for the model hub (%s: %s)", type(exc).__name__,
                                exc)
            self._hub = (now, names, found)
            return found

    async def flush(self) -> None:
        """Wait for the queued rows to be written (tests, shutdown)."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)


def log_of(gw: Any) -> HealthLog:
    """The gateway's health check writer (made on first use)."""
    hl = getattr(gw, "health_log", None)
    if hl is None:
        hl = HealthLog(gw)
        gw.health_log = hl
    return hl
