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
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from relaygate.config.litellm_general import size_bytes
from relaygate.service_metrics import histogram_lines
from relaygate.store import Store
from relaygate.store.spend import (
    count_spend_logs_before,
    delete_daily_before,
    delete_spend_logs_before,
    spend_log_cutoff,
    spend_logs_storage,
)

__all__ = ["BACKOFF", "BATCH", "BATCH_TIMEOUT", "BUCKETS", "BUDGET", "LOCK", "MAX_BATCHES", "MAX_FAILURES", "PAUSE",
           "REMAINING_CAP", "TABLE", "Bounds", "CleanupMetrics", "SizeRule", "bounds", "in_batches", "run",
           "run_daily_tags", "run_size", "size_rule"]

log = logging.getLogger("relaygate.sinks")

BATCH = 5_000
"""Rows one ``DELETE`` removes at most (a few tens of milliseconds of a database's write lock; LiteLLM's
default is 1,000): ``maximum_spend_logs_cleanup_batch_size``."""
MAX_BATCHES = 500
"""Batches one run deletes at most (LiteLLM's default): ``maximum_spend_logs_cleanup_max_batches``."""
PAUSE = 0.05
"""Seconds between two batches: the other writers' turn."""
BUDGET = 300.0
"""Seconds one run deletes for at most (LiteLLM's run budget); what is left waits for the next run:
``maximum_spend_logs_cleanup_run_budget``."""
BATCH_TIMEOUT = 30.0
"""Seconds one batch may take on PostgreSQL (its ``statement_timeout`` and ``lock_timeout``, never past the run's
budget; LiteLLM's default): ``maximum_spend_logs_cleanup_batch_timeout``."""
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


class Bounds(NamedTuple):
    """What one run may do: rows a batch, batches, seconds, seconds a batch (LiteLLM's cleanup bounds)."""

    batch: int = BATCH
    max_batches: int = MAX_BATCHES
    budget: float = BUDGET
    batch_timeout: float = BATCH_TIMEOUT


def _positive(settings: Any, name: str, default: Any, seconds: bool) -> Any:
    raw = getattr(settings, name, None)
    if raw is None:
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError("not a number")
        if seconds:
            from relaygate.sinks.spend import parse_duration  # (spend imports this module)

            value: Any = float(raw) if isinstance(raw, int | float) else parse_duration(str(raw).strip())
        else:
            value = int(raw)
        if not value > 0 or value == float("inf"):
            raise ValueError("not positive")
    except (TypeError, ValueError) as exc:
        log.warning("general_settings.%s: %r is not a positive %s (%s); the default %s holds", name, raw,
                    "duration" if seconds else "number", exc, default)
        return default
    return value


def bounds(settings: Any) -> Bounds:
    """The run's bounds from ``general_settings`` (``maximum_spend_logs_cleanup_batch_size``, ``..._max_batches``,
    ``..._run_budget``, ``..._batch_timeout``: numbers, durations as ``5m`` or seconds). As LiteLLM, a value that
    is not a positive number (or duration) is logged and its default holds, so a typo never removes the bound it
    sets."""
    return Bounds(_positive(settings, "maximum_spend_logs_cleanup_batch_size", BATCH, False),
                  _positive(settings, "maximum_spend_logs_cleanup_max_batches", MAX_BATCHES, False),
                  _positive(settings, "maximum_spend_logs_cleanup_run_budget", BUDGET, True),
                  _positive(settings, "maximum_spend_logs_cleanup_batch_timeout", BATCH_TIMEOUT, True))


class SizeRule(NamedTuple):
    """LiteLLM's size rule: above ``limit`` live bytes the oldest rows go until about ``target`` are left."""

    limit: int
    target: int


def size_rule(settings: Any) -> SizeRule | None:
    """The size rule of ``general_settings`` (None: no ``maximum_spend_logs_size``). A target that is not below the
    limit is logged and the limit is the target instead, as LiteLLM does (sizes were checked at load)."""
    limit = size_bytes(getattr(settings, "maximum_spend_logs_size", None), "maximum_spend_logs_size")
    if limit is None:
        return None
    target = size_bytes(getattr(settings, "maximum_spend_logs_cleanup_target_size", None),
                        "maximum_spend_logs_cleanup_target_size")
    if target is not None and target >= limit:
        log.warning("general_settings.maximum_spend_logs_cleanup_target_size (%d bytes) must be below "
                    "maximum_spend_logs_size (%d bytes): cleaning down to maximum_spend_logs_size instead",
                    target, limit)
    return SizeRule(limit, target if target is not None and target < limit else limit)


LOCK = "spend_logs_retention"
"""The store's job lock a run holds (``Store.job_lock``): one run at a time among every worker and instance."""


async def run(store: Store, period: float, metrics: CleanupMetrics | None = None,
              on_deleted: Callable[[int], None] | None = None, *, limits: Bounds = Bounds(), pause: float = PAUSE,
              backoff: float = BACKOFF) -> str:
    """One retention run (see the module docstring) within ``limits``, unless another process's run holds the job
    lock; its outcome: ``completed``, ``budget_exhausted``, ``batch_cap_reached``, ``aborted`` or
    ``skipped_locked``. ``on_deleted`` hears each batch's row count."""
    cutoff = datetime.now(UTC) - timedelta(seconds=period)
    return await _locked(store, metrics, "retention", lambda: _run(store, cutoff, metrics, on_deleted, limits,
                                                                    pause=pause, backoff=backoff))


async def run_size(store: Store, rule: SizeRule, metrics: CleanupMetrics | None = None,
                   on_deleted: Callable[[int], None] | None = None, *, limits: Bounds = Bounds(),
                   pause: float = PAUSE, backoff: float = BACKOFF) -> str:
    """One check of LiteLLM's size rule (``maximum_spend_logs_size``): when the spend logs hold more live bytes
    than ``rule.limit`` (``store.spend.spend_logs_storage``), the oldest rows are deleted, in batches within
    ``limits`` as a retention run's, until about ``rule.target`` bytes are left (the rows to go estimated from
    the average row's bytes, the cut made at a start time so rows of one instant go together). Under the job
    lock of the age rule: one cleanup at a time. Its outcome: ``under_limit`` (nothing to do, and nothing counted),
    else a retention run's."""
    return await _locked(store, metrics, "size rule", lambda: _run_size(store, rule, metrics, on_deleted, limits,
                                                                         pause=pause, backoff=backoff))


async def run_daily_tags(store: Store, period: float, on_deleted: Callable[[int], None] | None = None, *,
                         limits: Bounds = Bounds(), pause: float = PAUSE, backoff: float = BACKOFF) -> str:
    """LiteLLM's ``maximum_daily_tag_spend_retention_period``: the daily rollup's tag rows of days that ended more
    than ``period`` ago deleted in batches within ``limits``, under the cleanup's job lock (the tag budgets read
    the counters, never these rows: only the tag activity views lose their old days). Its outcome, as a
    retention run's."""
    day = (datetime.now(UTC) - timedelta(seconds=period)).date().isoformat()

    async def job() -> str:
        deadline = time.monotonic() + limits.budget

        def delete(limit: int) -> Awaitable[int]:
            return delete_daily_before(store, "tag", day, limit,
                                       min(limits.batch_timeout, max(1.0, deadline - time.monotonic())))

        outcome, deleted = await in_batches(delete, "daily tag spend", (lambda n, _s: on_deleted(n)) if on_deleted
                                            is not None else None, batch=limits.batch, pause=pause,
                                            budget=limits.budget, backoff=backoff, max_batches=limits.max_batches)
        if deleted or outcome != "completed":
            log.info("daily tag spend retention: deleted %d row(s) of days before %s (%s)", deleted, day, outcome)
        return outcome

    return await _locked(store, None, "daily tag spend retention", job)


async def _locked(store: Store, metrics: CleanupMetrics | None, what: str,
                  job: Callable[[], Awaitable[str]]) -> str:
    try:
        async with store.job_lock(LOCK) as mine:
            if not mine:  # another worker or instance runs it now: once is enough
                if metrics is not None:
                    metrics.ran("skipped_locked", None)
                return "skipped_locked"
            return await job()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the lock itself could not be taken, or the size not measured: the database is down
        log.warning("spend logs %s: not run (%s: %s)", what, type(exc).__name__, exc)
        if metrics is not None:
            metrics.ran("aborted", None)
        return "aborted"


async def _delete_before(store: Store, cutoff: datetime, metrics: CleanupMetrics | None,
                         on_deleted: Callable[[int], None] | None, limits: Bounds, *, pause: float,
                         backoff: float) -> tuple[str, int]:
    """The rows started before ``cutoff`` deleted in batches within ``limits`` (:func:`in_batches`)."""
    deadline = time.monotonic() + limits.budget

    def delete(limit: int) -> Awaitable[int]:  # a batch runs past the run's budget by a second at most
        timeout = min(limits.batch_timeout, max(1.0, deadline - time.monotonic()))
        return delete_spend_logs_before(store, cutoff, limit, timeout)

    def done(n: int, seconds: float) -> None:
        if metrics is not None:
            metrics.batch(n, seconds)
        if on_deleted is not None and n:
            on_deleted(n)

    return await in_batches(delete, "spend logs", done, metrics.failed if metrics is not None else None,
                            batch=limits.batch, pause=pause, budget=limits.budget, backoff=backoff,
                            max_batches=limits.max_batches)


async def _run(store: Store, cutoff: datetime, metrics: CleanupMetrics | None,
               on_deleted: Callable[[int], None] | None, limits: Bounds, *, pause: float, backoff: float) -> str:
    outcome, deleted = await _delete_before(store, cutoff, metrics, on_deleted, limits, pause=pause, backoff=backoff)
    remaining: int | None = None
    try:
        remaining = await count_spend_logs_before(store, cutoff, REMAINING_CAP, limits.batch_timeout)
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


async def _run_size(store: Store, rule: SizeRule, metrics: CleanupMetrics | None,
                    on_deleted: Callable[[int], None] | None, limits: Bounds, *, pause: float, backoff: float) -> str:
    live, rows = await spend_logs_storage(store, limits.batch_timeout)
    if live <= rule.limit:
        log.debug("spend logs size rule: %d bytes, under maximum_spend_logs_size (%d)", live, rule.limit)
        return "under_limit"
    if rows <= 0:
        log.warning("spend logs size rule: %d bytes measured over maximum_spend_logs_size (%d) but no rows to delete",
                    live, rule.limit)
        return "under_limit"
    oldest = min(rows, math.ceil((live - rule.target) * rows / live))
    cutoff = await spend_log_cutoff(store, oldest, limits.batch_timeout)
    if cutoff is None:  # every row goes
        cutoff = datetime.now(UTC) + timedelta(days=1)
    outcome, deleted = await _delete_before(store, cutoff, metrics, on_deleted, limits, pause=pause, backoff=backoff)
    if metrics is not None:
        metrics.ran(outcome, None)
    log.info("spend logs size rule: %d bytes over maximum_spend_logs_size (%d bytes, %d rows): deleted %d of the "
             "oldest row(s), started before %s, for about %d bytes (%s)", live, rule.limit, rows, deleted,
             cutoff.isoformat(), rule.target, outcome)
    return outcome


async def in_batches(delete: Callable[[int], Awaitable[int]], what: str,
                     on_batch: Callable[[int, float], None] | None = None, on_failure: Callable[[], None] | None = None,
                     *, batch: int = BATCH, pause: float = PAUSE, budget: float = BUDGET,
                     backoff: float = BACKOFF, max_batches: int | None = None) -> tuple[str, int]:
    """Call ``delete(batch)`` (one transaction deleting at most ``batch`` rows, oldest first; how many) until
    it deletes fewer, pausing ``pause`` seconds between two, within ``budget`` seconds and ``max_batches``
    batches; a failure is retried after ``backoff``, :data:`MAX_FAILURES` in a row end it (one that ends
    past the budget, a statement the budget's timeout stopped, ends it as the budget does).
    ``(outcome, rows deleted)``: ``completed``, ``budget_exhausted``, ``batch_cap_reached`` or ``aborted``.
    ``on_batch(rows, seconds)`` hears each batch, ``on_failure()`` each failure; ``what`` names the rows in
    the log."""
    deadline = time.monotonic() + budget
    failures = 0
    deleted = 0
    batches = 0
    while True:
        t0 = time.perf_counter()
        try:
            n = await delete(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() >= deadline:
                log.info("%s retention: the run's time budget ended during a batch (%s)", what, type(exc).__name__)
                return "budget_exhausted", deleted
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
        batches += 1
        if n < batch:
            return "completed", deleted
        if time.monotonic() >= deadline:
            return "budget_exhausted", deleted
        if max_batches is not None and batches >= max_batches:
            return "batch_cap_reached", deleted
        await asyncio.sleep(pause)
