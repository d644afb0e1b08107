"""Spend-log retention (``maximum_spend_logs_retention_period``): old rows deleted in batches, and LiteLLM's
metrics of its cleanup job.

What it owns: one run (:func:`run`) deletes the rows older than the period in batches of :data:`BATCH`, oldest
first, each its own transaction, with a pause between two (the spend sink's writes and the management API's get
the database in between: one statement over a day of rows held SQLite's only write lock for as long as it
ran); within a time budget (:data:`BUDGET`: the rest waits for the next run); one run at a time among all the
workers and instances on the database (the store's job lock, :data:`LOCK`: another's run makes this one
``skipped_locked``, LiteLLM's outcome for the same); a failed batch is retried after
:data:`BACKOFF`, and :data:`MAX_FAILURES` failures in a row end the run. After the run, the expired rows still
there are counted, up to :data:`REMAINING_CAP`. The counters (``spend_rows_deleted``) and entities' ``spend``
never change: retention removes log rows only.

:class:`CleanupMetrics` carries LiteLLM's families of the same job, with its names, types, labels and buckets,
so its dashboard row "Spend log cleanup job" and an alert on ``rows_remaining`` work unchanged:
``litellm_spend_log_cleanup_rows_deleted_total{table}``, ``litellm_spend_log_cleanup_batch_duration_seconds``
(histogram, ``table``), ``litellm_spend_log_cleanup_batch_failures_total{table}``,
``litellm_spend_log_cleanup_rows_remaining{table}`` (gauge: the highest of the workers') and
``litellm_spend_log_cleanup_runs_total{outcome}`` (``completed``, ``budget_exhausted``, ``aborted``,
``skipped_locked``). ``table`` is relaygate's, ``rg_spend_logs``. They exist only when retention is configured
(then in every worker's metrics snapshot, summed).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.service_metrics import histogram_lines
from relaygate.store import Store
from relaygate.store.spend import count_spend_logs_before, delete_spend_logs_before

__all__ = ["BACKOFF", "BATCH", "BUCKETS", "BUDGET", "LOCK", "MAX_FAILURES", "PAUSE", "REMAINING_CAP", "TABLE",
           "CleanupMetrics", "in_batches", "run"]

log = logging.getLogger("relaygate.sinks")

BATCH = 5_000
"""Rows one ``DELETE`` removes at most (a few tens of milliseconds of a database's write lock)."""
PAUSE = 0.05
"""Seconds between two batches: the other writers' turn."""
BUDGET = 300.0
"""Seconds one run deletes for at most (LiteLLM's run budget); what is left waits for the next run."""
BACKOFF = 0.5
"""Seconds after a failed batch before the next try."""
MAX_FAILURES = 3
"""Failed batches in a row that end a run (``aborted``)."""
REMAINING_CAP = 100_000
"""The most expired rows the after-run probe counts (LiteLLM's cap: the probe never scans a large table)."""
TABLE = "rg_spend_logs"
BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""LiteLLM's batch duration buckets."""


class CleanupMetrics:
    """One worker's cleanup counters (see the module docstring); a ``Metrics`` extension."""

    __slots__ = ("deleted", "failures", "counts", "sum", "remaining", "runs")

    def __init__(self) -> None:
        self.deleted = 0
        self.failures = 0
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.remaining: int | None = None
        self.runs: dict[str, int] = {}

    def batch(self, rows: int, seconds: float) -> None:
        self.deleted += rows
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def failed(self) -> None:
        self.failures += 1

    def ran(self, outcome: str, remaining: int | None) -> None:
        self.runs[outcome] = self.runs.get(outcome, 0) + 1
        if remaining is not None:
            self.remaining = remaining

    def snapshot(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "failures": self.failures, "counts": self.counts, "sum": self.sum,
                "remaining": self.remaining, "runs": self.runs}

    def render(self, parts: Sequence[dict[str, Any]], now: float | None = None) -> list[str]:
        counts = [0] * (len(BUCKETS) + 1)
        deleted = failures = 0
        total = 0.0
        remaining: int | None = None
        runs: dict[str, int] = {}
        for p in parts:
            deleted += p["deleted"]
            failures += p["failures"]
            total += p["sum"]
            for i, c in enumerate(p["counts"][:len(counts)]):
                counts[i] += c
            if p["remaining"] is not None:
                remaining = max(remaining or 0, p["remaining"])
            for outcome, n in p["runs"].items():
                runs[outcome] = runs.get(outcome, 0) + n
        lab = f'table="{TABLE}"'
        name = "litellm_spend_log_cleanup_batch_duration_seconds"
        out = ["# HELP litellm_spend_log_cleanup_rows_deleted Rows deleted by the spend-log retention cleanup job",
               "# TYPE litellm_spend_log_cleanup_rows_deleted counter",
               f"litellm_spend_log_cleanup_rows_deleted_total{{{lab}}} {float(deleted)!r}",
               f"# HELP {name} Wall-clock duration of one retention cleanup delete batch",
               f"# TYPE {name} histogram", *histogram_lines(name, lab, BUCKETS, counts, total),
               "# HELP litellm_spend_log_cleanup_batch_failures Retention cleanup delete batches that raised",
               "# TYPE litellm_spend_log_cleanup_batch_failures counter",
               f"litellm_spend_log_cleanup_batch_failures_total{{{lab}}} {float(failures)!r}",
               "# HELP litellm_spend_log_cleanup_rows_remaining Expired rows still awaiting deletion, counted up to "
               f"{REMAINING_CAP}",
               "# TYPE litellm_spend_log_cleanup_rows_remaining gauge"]
        if remaining is not None:
            out.append(f"litellm_spend_log_cleanup_rows_remaining{{{lab}}} {float(remaining)!r}")
        out += ["# HELP litellm_spend_log_cleanup_runs Retention cleanup runs, labelled by why the run ended",
                "# TYPE litellm_spend_log_cleanup_runs counter"]
        for outcome, n in sorted(runs.items()):
            out.append(f'litellm_spend_log_cleanup_runs_total{{outcome="{outcome}"}} {float(n)!r}')
        return out

    def cooled_down(self, dep_id: str, status: int) -> None:
        """(``Metrics`` tells its extensions of cooldowns; the cleanup job has none.)"""


LOCK = "spend_logs_retention"
"""The store's job lock a run holds (``Store.job_lock``): one run at a time among every worker and instance."""


async def run(store: Store, period: float, metrics: CleanupMetrics | None = None,
              on_deleted: Callable[[int], None] | None = None, *, batch: int = BATCH, pause: float = PAUSE,
              budget: float = BUDGET, backoff: float = BACKOFF) -> str:
    """One retention run (see the module docstring), unless another process's run holds the job lock; its
    outcome: ``completed``, ``budget_exhausted``, ``aborted`` or ``skipped_locked``. ``on_deleted`` hears
    each batch's row count."""
    try:
        async with store.job_lock(LOCK) as mine:
            if not mine:  # another worker or instance runs it now: once is enough
                if metrics is not None:
                    metrics.ran("skipped_locked", None)
                return "skipped_locked"
            return await _run(store, period, metrics, on_deleted, batch=batch, pause=pause, budget=budget,
                              backoff=backoff)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the lock itself could not be taken: the database is down
        log.warning("spend logs retention: not run (%s: %s)", type(exc).__name__, exc)
        if metrics is not None:
            metrics.ran("aborted", None)
        return "aborted"


async def _run(store: Store, period: float, metrics: CleanupMetrics | None,
               on_deleted: Callable[[int], None] | None, *, batch: int, pause: float, budget: float,
               backoff: float) -> str:
    cutoff = datetime.now(UTC) - timedelta(seconds=period)

    def done(n: int, seconds: float) -> None:
        if metrics is not None:
            metrics.batch(n, seconds)
        if on_deleted is not None and n:
            on_deleted(n)

    outcome, deleted = await in_batches(lambda limit: delete_spend_logs_before(store, cutoff, limit), "spend logs",
                                        done, metrics.failed if metrics is not None else None, batch=batch,
                                        pause=pause, budget=budget, backoff=backoff)
    remaining: int | None = None
    try:
        remaining = await count_spend_logs_before(store, cutoff, REMAINING_CAP)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("spend logs retention: the expired rows left could not be counted (%s: %s)",
                    type(exc).__name__, exc)
    if metrics is not None:
        metrics.ran(outcome, remaining)
    if deleted or outcome != "completed":
        log.info("spend logs retention: deleted %d row(s) older than %s (%s, %s expired left)", deleted,
                 cutoff.isoformat(), outcome, remaining if remaining is not None else "unknown")
    return outcome


async def in_batches(delete: Callable[[int], Awaitable[int]], what: str,
                     on_batch: Callable[[int, float], None] | None = None, on_failure: Callable[[], None] | None = None,
                     *, batch: int = BATCH, pause: float = PAUSE, budget: float = BUDGET,
                     backoff: float = BACKOFF) -> tuple[str, int]:
    """Call ``delete(batch)`` (one transaction deleting at most ``batch`` rows, oldest first; how many) until
    it deletes fewer, pausing ``pause`` seconds between two, within ``budget`` seconds; a failure is retried
    after ``backoff``, :data:`MAX_FAILURES` in a row end it. ``(outcome, rows deleted)``: ``completed``,
    ``budget_exhausted`` or ``aborted``. ``on_batch(rows, seconds)`` hears each batch, ``on_failure()`` each
    failure; ``what`` names the rows in the log."""
    deadline = time.monotonic() + budget
    failures = 0
    deleted = 0
    while True:
        t0 = time.perf_counter()
        try:
            n = await delete(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if on_failure is not None:
                on_failure()
            log.warning("%s retention: a batch failed (%s: %s)%s", what, type(exc).__name__, exc,
                        "; this run stops" if failures >= MAX_FAILURES else f"; again in {backoff:g} s")
            if failures >= MAX_FAILURES:
                return "aborted", deleted
            await asyncio.sleep(backoff)
            continue
        failures = 0
        deleted += n
        if on_batch is not None:
            on_batch(n, time.perf_counter() - t0)
        if n < batch:
            return "completed", deleted
        if time.monotonic() >= deadline:
            return "budget_exhausted", deleted
        await asyncio.sleep(pause)
