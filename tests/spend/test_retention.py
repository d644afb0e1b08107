"""Spend-log retention in batches (``sinks.retention``), on SQLite and PostgreSQL: oldest first, within its
budget, a failing database ends the run, counters untouched, and LiteLLM's cleanup families rendered."""

from __future__ import annotations

import asyncio
import time

from relaygate.metrics import Metrics
from relaygate.sinks import retention
from relaygate.sinks.retention import Bounds, CleanupMetrics, bounds
from relaygate.sinks.spend import SpendSink
from relaygate.store import Store, open_store
from relaygate.store.spend import read_spend_logs
from tests.observe.test_prometheus_dashboard import parse_exposition
from tests.spend.conftest import run
from tests.spend.helpers import record

DAY = 86400.0


async def _totals(store: Store) -> list[tuple[str, str, int]]:
    async with store._read() as c:
        rows = await c.fetch("SELECT entity_type, entity_id, spend_nanos FROM rg_spend_totals", [])
    return sorted((r["entity_type"], r["entity_id"], int(r["spend_nanos"])) for r in rows)


def _value(text: str, name: str, **labels: str) -> float:
    scrape = parse_exposition(text)
    return sum(v for lab, v in zip(scrape.samples.get(name, []), scrape.values.get(name, []), strict=True)
               if all(lab.get(k) == x for k, x in labels.items()))


async def _fill(store: Store, old: int, new: int) -> None:
    now = time.time()
    sink = SpendSink(store, spacing=0.0)
    # the old rows a second apart, oldest first by start time (not by insertion: reversed)
    await sink.handle([record(i, cost=0.01, start=now - 40 * DAY - i) for i in range(old)] +
                      [record(old + i, cost=0.01) for i in range(new)])
    assert sink.written == old + new


def test_a_run_deletes_expired_rows_in_batches_oldest_first(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 12, 3)
        before = await _totals(store)
        m = CleanupMetrics()
        heard: list[int] = []
        assert await retention.run(store, 30 * DAY, m, heard.append, limits=Bounds(batch=5), pause=0.0) == "completed"
        assert heard == [5, 5, 2]
        assert len(await read_spend_logs(store)) == 3
        assert await _totals(store) == before  # retention removes log rows, never spend
        assert (m.deleted, m.failures, m.runs, m.remaining, sum(m.counts)) == (12, 0, {"completed": 1}, 0, 3)

    run(db_url, body)


def test_a_run_stops_at_its_budget_and_the_next_one_goes_on(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 12, 0)
        m = CleanupMetrics()
        assert await retention.run(store, 30 * DAY, m, limits=Bounds(batch=4, budget=0.0), pause=0.0) == "budget_exhausted"
        assert (m.deleted, m.remaining) == (4, 8)
        ids = {r.request_id for r in await read_spend_logs(store)}
        assert ids == {f"call-{i}" for i in range(8)}  # the four oldest (call-8 .. call-11) went first
        assert await retention.run(store, 30 * DAY, m, limits=Bounds(batch=4), pause=0.0) == "completed"
        assert (m.deleted, m.remaining, m.runs) == (12, 0, {"budget_exhausted": 1, "completed": 1})

    run(db_url, body)


def test_a_run_stops_at_its_batch_cap(db_url: str) -> None:
    """``maximum_spend_logs_cleanup_max_batches``: a run deletes that many batches at most (LiteLLM's outcome
    ``batch_cap_reached``), the next goes on."""
    async def body(store: Store) -> None:
        await _fill(store, 10, 0)
        m = CleanupMetrics()
        assert await retention.run(store, 30 * DAY, m, limits=Bounds(batch=3, max_batches=2), pause=0.0) == \
            "batch_cap_reached"
        assert (m.deleted, m.remaining) == (6, 4)
        assert await retention.run(store, 30 * DAY, m, limits=Bounds(batch=3, max_batches=2), pause=0.0) == \
            "completed"
        assert (m.deleted, m.runs) == (10, {"batch_cap_reached": 1, "completed": 1})

    run(db_url, body)


def test_a_batch_behind_a_lock_gives_up_on_postgresql(db_url: str) -> None:
    """``maximum_spend_logs_cleanup_batch_timeout``: on PostgreSQL each batch runs with that
    ``statement_timeout`` and ``lock_timeout``, so a batch waiting on another transaction's lock fails (counted)
    instead of holding its connection; failures in a row end the run, which does not hang."""
    import asyncpg

    if not db_url.startswith("postgres"):
        return  # SQLite has one writer and its busy timeout: the batch's size bounds it

    async def main() -> None:
        store = await open_store(db_url)
        other = await asyncpg.connect(db_url)
        try:
            await _fill(store, 5, 0)
            tx = other.transaction()
            await tx.start()
            await other.execute("LOCK TABLE rg_spend_logs IN ACCESS EXCLUSIVE MODE")
            m = CleanupMetrics()
            t0 = time.monotonic()
            outcome = await asyncio.wait_for(
                retention.run(store, 30 * DAY, m, limits=Bounds(batch_timeout=0.2), backoff=0.0), 20)
            assert outcome == "aborted" and m.failures == retention.MAX_FAILURES and m.deleted == 0
            assert time.monotonic() - t0 < 10
            await tx.rollback()
            assert await retention.run(store, 30 * DAY, m, pause=0.0) == "completed" and m.deleted == 5
        finally:
            await other.close()
            await store.close()

    asyncio.run(main())


def test_bounds_from_general_settings() -> None:
    """LiteLLM's knobs, numbers or durations; a value that is not positive keeps the default (logged)."""
    from types import SimpleNamespace

    assert bounds(SimpleNamespace()) == Bounds(retention.BATCH, retention.MAX_BATCHES, retention.BUDGET,
                                               retention.BATCH_TIMEOUT)
    given = SimpleNamespace(maximum_spend_logs_cleanup_batch_size=1000, maximum_spend_logs_cleanup_max_batches="20",
                            maximum_spend_logs_cleanup_run_budget="5m", maximum_spend_logs_cleanup_batch_timeout=12)
    assert bounds(given) == Bounds(1000, 20, 300.0, 12.0)
    wrong = SimpleNamespace(maximum_spend_logs_cleanup_batch_size=0, maximum_spend_logs_cleanup_max_batches="many",
                            maximum_spend_logs_cleanup_run_budget="inf", maximum_spend_logs_cleanup_batch_timeout=True)
    assert bounds(wrong) == Bounds()


def test_a_failing_database_ends_the_run_aborted(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 3, 0)
        async with store._transaction() as c:  # every batch fails (and the probe after the run)
            await c.execute("DROP TABLE rg_spend_logs" + (" CASCADE" if store.dialect == "postgres" else ""), [])
        m = CleanupMetrics()
        outcome = await asyncio.wait_for(retention.run(store, 30 * DAY, m, backoff=0.0), 10)
        assert outcome == "aborted"
        assert (m.failures, m.deleted, m.runs, m.remaining) == (retention.MAX_FAILURES, 0, {"aborted": 1}, None)

    run(db_url, body)


def test_a_closed_store_is_not_run(db_url: str) -> None:
    async def main() -> None:
        store = await open_store(db_url)
        await store.close()
        m = CleanupMetrics()
        assert await asyncio.wait_for(retention.run(store, 30 * DAY, m, backoff=0.0), 10) == "aborted"
        assert m.runs == {"aborted": 1} and m.deleted == 0

    asyncio.run(main())


def test_one_run_at_a_time_among_processes_on_the_database(db_url: str) -> None:
    """Two stores on one database stand for two workers (or two instances): while one holds the job lock, the
    other's run is skipped at once (LiteLLM's ``skipped_locked``); after it, the other runs."""
    async def main() -> None:
        a, b = await open_store(db_url), await open_store(db_url)
        try:
            await _fill(a, 4, 0)
            m = CleanupMetrics()
            async with a.job_lock(retention.LOCK) as mine:
                assert mine
                assert await retention.run(b, 30 * DAY, m, pause=0.0) == "skipped_locked"
                async with b.job_lock(retention.LOCK) as theirs:
                    assert not theirs
            assert await retention.run(b, 30 * DAY, m, pause=0.0) == "completed"
            assert (m.runs, m.deleted) == ({"skipped_locked": 1, "completed": 1}, 4)
            async with a.job_lock(retention.LOCK) as again:  # released when the run ended
                assert again
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_litellms_cleanup_families_summed_over_workers() -> None:
    a, b = CleanupMetrics(), CleanupMetrics()
    a.batch(5000, 0.02)
    a.batch(10, 0.003)
    a.ran("completed", 0)
    b.batch(5000, 0.2)
    b.failed()
    b.ran("budget_exhausted", 700)
    m = Metrics()
    assert b"litellm_spend_log_cleanup" not in m.render()  # retention not configured: no families
    m.cleanup = a
    text = "\n".join(a.render([a.snapshot(), b.snapshot()])) + "\n"
    scrape = parse_exposition(text)
    assert scrape.types == {"litellm_spend_log_cleanup_rows_deleted": "counter",
                            "litellm_spend_log_cleanup_batch_duration_seconds": "histogram",
                            "litellm_spend_log_cleanup_batch_failures": "counter",
                            "litellm_spend_log_cleanup_rows_remaining": "gauge",
                            "litellm_spend_log_cleanup_runs": "counter"}
    assert _value(text, "litellm_spend_log_cleanup_rows_deleted_total", table="rg_spend_logs") == 10010
    assert _value(text, "litellm_spend_log_cleanup_batch_duration_seconds_count") == 3
    assert _value(text, "litellm_spend_log_cleanup_batch_duration_seconds_bucket", le="0.005") == 1
    assert _value(text, "litellm_spend_log_cleanup_batch_duration_seconds_bucket", le="0.025") == 2
    assert _value(text, "litellm_spend_log_cleanup_batch_failures_total") == 1
    assert _value(text, "litellm_spend_log_cleanup_rows_remaining") == 700  # the highest worker's
    assert _value(text, "litellm_spend_log_cleanup_runs_total", outcome="completed") == 1
    assert _value(text, "litellm_spend_log_cleanup_runs_total", outcome="budget_exhausted") == 1
    assert b"litellm_spend_log_cleanup_runs_total" in m.render()
