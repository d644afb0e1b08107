"""LiteLLM's ``maximum_daily_tag_spend_retention_period`` (``sinks.retention.run_daily_tags``) on SQLite and
PostgreSQL: the daily rollup's tag rows of old days go in batches; its other rows, the spend logs and the counters
stay; and the task is scheduled even with the spend logs off (the rollup still moves then)."""

from __future__ import annotations

import asyncio
import time

from relaygate.config.model import GeneralSettings
from relaygate.metrics import Metrics
from relaygate.sinks import retention
from relaygate.sinks.retention import Bounds
from relaygate.sinks.spend import SpendSink
from relaygate.store import Store
from relaygate.store.spend import read_spend_logs
from tests.spend.conftest import run
from tests.spend.helpers import record
from tests.spend.test_retention import DAY, _totals


async def _daily(store: Store) -> list[tuple[str, str, str]]:
    async with store._read() as c:
        rows = await c.fetch("SELECT day, entity_type, entity_id FROM rg_daily_spend", [])
    return sorted((r["day"], r["entity_type"], r["entity_id"]) for r in rows)


def test_old_days_tag_rows_go_and_nothing_else(db_url: str) -> None:
    async def body(store: Store) -> None:
        now = time.time()
        sink = SpendSink(store, spacing=0.0)
        await sink.handle([record(i, cost=0.01, user="u1", tags=["a", "b", "c"], start=now - (40 + i) * DAY)
                           for i in range(4)] +
                          [record(10 + i, cost=0.01, user="u1", tags=["a", "new"]) for i in range(2)])
        before = await _daily(store)
        totals = await _totals(store)
        old_tags = [r for r in before if r[1] == "tag" and r[0] < before[-1][0]]
        assert len(old_tags) == 12  # four old days, three tags each
        heard: list[int] = []
        outcome = await retention.run_daily_tags(store, 30 * DAY, heard.append, limits=Bounds(batch=5), pause=0.0)
        assert outcome == "completed" and heard == [5, 5, 2]
        after = await _daily(store)
        assert after == [r for r in before if r not in old_tags]
        assert {r[2] for r in after if r[1] == "tag"} == {"a", "new"}  # today's tag rows stay
        assert {r for r in after if r[1] == "user"} == {r for r in before if r[1] == "user"}
        assert len(await read_spend_logs(store, limit=100)) == 6 and await _totals(store) == totals
        assert await retention.run_daily_tags(store, 30 * DAY, pause=0.0) == "completed"  # nothing left to do

    run(db_url, body)


def test_the_task_runs_with_the_spend_logs_off(db_url: str) -> None:
    async def body(store: Store) -> None:
        sink = SpendSink(store, spacing=0.0, log_rows=False)
        await sink.handle([record(0, cost=0.01, tags=["old"], start=time.time() - 40 * DAY),
                           record(1, cost=0.01, tags=["new"])])
        metrics = Metrics()
        settings = GeneralSettings(disable_spend_logs=True, maximum_daily_tag_spend_retention_period="30d",
                                   maximum_spend_logs_retention_period="1d", maximum_spend_logs_size="1GB")
        jobs = sink.cleanup_jobs(settings, metrics)
        assert len(jobs) == 1 and metrics.cleanup is None  # the spend-log rules have no rows to clean
        task = asyncio.ensure_future(jobs[0])
        for _ in range(100):
            if [r[2] for r in await _daily(store) if r[1] == "tag"] == ["new"]:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        assert [r[2] for r in await _daily(store) if r[1] == "tag"] == ["new"]
        assert sink.cleanup_jobs(GeneralSettings(maximum_daily_tag_spend_retention_period="soon"), metrics) == []

    run(db_url, body)
