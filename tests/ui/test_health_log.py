"""``gateway.health_history.HealthLog`` on a real SQLite store: rows written off the caller's path, a full
backlog dropped and counted, a database that fails costs one warning and counts, never an exception, and the
retention runs after a write at most hourly."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from relaygate.gateway.health_history import BACKLOG, HealthLog
from relaygate.metrics import Metrics
from relaygate.store import open_store
from relaygate.store.health_checks import RETENTION, CheckRow, history, save_checks


def _row(name: str) -> CheckRow:
    return CheckRow(name, None, 1, 0, None, 1.0, "tester")


def test_rows_are_written_dropped_when_the_backlog_is_full_and_failures_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'h.db'}")
        gw = SimpleNamespace(store=store, metrics=Metrics())
        hl = HealthLog(gw)
        old = datetime.now(UTC) - RETENTION - timedelta(days=2)
        await save_checks(store, [_row("ancient")], now=old)
        hl.submit([_row("a")])
        await hl.flush()
        assert [r["model_name"] for r in await history(store)] == ["a"]  # written, and the old row pruned
        for i in range(BACKLOG + 5):  # submitted without a yield: the backlog fills
            hl.submit([_row(f"m{i}")])
        await hl.flush()
        assert hl.dropped == 5 and gw.metrics.events["health_history_dropped"] == 5
        assert len(await history(store, limit=1000)) == 1 + BACKLOG
        await save_checks(store, [_row("ancient")], now=old)
        hl.submit([_row("b")])
        await hl.flush()
        assert len(await history(store, model="ancient")) == 1  # pruned at most once an hour
        await store.close()  # the database goes away under it
        with caplog.at_level(logging.WARNING, logger="relaygate"):
            hl.submit([_row("c")])
            hl.submit([_row("d")])
            await hl.flush()
        assert hl.dropped == 7
        warnings = [r for r in caplog.records if "health check history" in r.getMessage()]
        assert len(warnings) == 1  # once a minute, not per batch
        gw.store = None
        hl.submit([_row("e")])  # without a database nothing is queued
        assert hl.dropped == 7

    asyncio.run(main())
