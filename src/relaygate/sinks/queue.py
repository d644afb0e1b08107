"""The per-worker completion queue: records in from the request path, batches out to sinks, never blocking.

What it owns: the hand-off between the request path and everything that consumes completion records.
:meth:`CompletionQueue.put` is the only call the request path makes; it never awaits, never blocks and
never raises. The rest happens on the event loop after the current callbacks have run:

- **Bounded, drop-oldest.** Records wait in a ``deque`` of ``maxsize``. When it is full the oldest record
  is dropped (the newest facts are worth more to metrics and logs) and :attr:`CompletionQueue.dropped`
  counts it. Drops are reported through ``on_event`` (a counter such as ``Metrics.count``) and logged at
  most once per ``log_interval`` seconds.
- **Drain on the loop, woken only from empty.** ``put`` arms the drain only when none is pending: with
  ``delay`` > 0 (default 1 ms) a ``loop.call_later(delay)`` timer, else a ``loop.call_soon``; every
  record put meanwhile joins the same batch. The drain is a plain loop callback, not a Task (a Task woken
  through a future costs a future callback plus a task step on top of the handle). Freshness: a record
  reaches the sinks at most ``delay`` (plus one loop iteration) after ``put``. Cost: one wake-up costs
  ~1.5 µs on this machine whatever the batch, so it is paid once per ``delay`` under load instead of once
  per request; ``delay=0`` trades that for next-iteration delivery (batches are then only the requests
  that completed in one loop iteration). A batch holds at most ``batch_size`` records; a larger backlog
  is drained over further loop iterations (``call_soon``), so it never holds the loop for long.
- **Two kinds of sinks** (:class:`Sink`, :class:`AsyncSink`, told apart by whether ``handle`` is a
  coroutine function). A sync sink (metrics, counters) is called in the drain with each batch: it must be
  cheap. An async sink (a database, Langfuse or OTLP over httpx) never runs in the drain: each gets its
  own bounded buffer and its own task (:class:`_AsyncRunner`), so a slow or hung exporter only fills its
  own buffer (drop-oldest, counted per sink) and never delays the other sinks nor the request path. The
  first drop is logged at once; the number dropped is logged when the sink has caught up (a batch handled
  without new drops) and at close, so every lost record is in a log line as well as in the counter. A
  sink that waits to gather larger batches may define ``hurry()``: it is called whenever its buffer is
  half full, and at close (before each batch from then on), and the sink must then write without waiting.
  With ``linger`` > 0 (the gateway's queue: :data:`LINGER`) a woken task waits that long for more records
  before it takes a batch, unless a full batch or half its buffer is there (or comes meanwhile) or it is
  closing (or starts to meanwhile): an
  exporter's per-batch costs (the task's wake-up, its ``handle`` call, its bookkeeping) are then paid once per
  ``linger`` instead of once per drain, at the price of records reaching it that much later. A sink that gathers
  its own batches (Langfuse's, the spend sink) says ``linger = 0.0``: it takes each batch at once.
- **Sinks cannot kill the drain.** An exception from a sink is counted (``sink_error:<name>``) and logged
  with its traceback at most once per ``log_interval`` seconds per sink (the log line says how many were
  suppressed); the drain and the runner go on with the next batch.
- **Lifecycle.** :meth:`CompletionQueue.start` (app lifespan startup, inside the running loop) binds the
  loop, starts the async runners and drains anything put before it. :meth:`CompletionQueue.aclose`
  (lifespan shutdown) drains what is left to every sink, lets each async runner finish its buffer within
  ``timeout`` (then cancels it) and closes sinks that have ``aclose()``/``close()``. Records put before
  ``start`` outside a running loop wait (bounded); the first ``put`` inside a running loop starts a queue
  nobody started (an app driven without its lifespan). Records put after ``aclose`` are counted as
  dropped.

Single-threaded by design: every method is called on the worker's event loop thread (one loop per
worker, no locks). Batches are shared between sinks as read-only ``Sequence`` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from relaygate.logs import Every
from relaygate.sinks.record import CompletionRecord

__all__ = ["LINGER", "AsyncSink", "CompletionQueue", "OnEvent", "Sink"]

log = logging.getLogger("relaygate.sinks")

OnEvent = Callable[[str, int], None]
"""``(event, n)``: a counter to report drops and sink errors to (``Metrics.count`` fits)."""

LINGER = 0.02
"""The gateway's ``linger`` (seconds): records reach an exporter, the spend sink or a callback up to 20 ms later,
in batches ~20x larger at a worker's few thousand requests a second. With the ``otel`` exporter it took ~6 µs of
CPU off each request (2026-12-06, a ``sitecustomize`` lingering 20 ms in an ``otel`` gateway paired with off, three
rounds: 71.8% -> 74.4% of off). The spend sink, which spaces its writes itself, showed no difference; it and
Langfuse's, which gathers within its flush interval, take their batches at once (``linger = 0.0``). Metrics and the
budget guard are sync sinks: they are not delayed."""
DROPPED_EVENT = "completion_dropped"
"""Event counted for records dropped by the main queue; per async sink it is ``sink_dropped:<name>``."""


@runtime_checkable
class Sink(Protocol):
    """A cheap in-process consumer, called in the drain callback with each batch (must not block)."""

    def handle(self, batch: Sequence[CompletionRecord]) -> None: ...


@runtime_checkable
class AsyncSink(Protocol):
    """An IO consumer (database, HTTP exporter): runs in its own task with its own bounded buffer."""

    async def handle(self, batch: Sequence[CompletionRecord]) -> None: ...


def _failed(name: str, errlog: Every, on_event: OnEvent | None, n: int) -> None:
    """A sink raised on a batch of ``n``: count it, and log the traceback at most once per interval."""
    if on_event is not None:
        on_event(f"sink_error:{name}", 1)
    suppressed = errlog.ready(time.monotonic())
    if suppressed is not None:
        log.exception("sink %s failed on a batch of %d (%d failure(s) not logged since the last)",
                      name, n, suppressed)


def _name_of(sink: object) -> str:
    name = getattr(sink, "name", None)
    return name if isinstance(name, str) and name else type(sink).__name__


class _SyncEntry:
    __slots__ = ("sink", "name", "handle", "errors", "errlog")

    def __init__(self, sink: Sink, name: str, log_interval: float) -> None:
        self.sink = sink
        self.name = name
        self.handle = sink.handle
        self.errors = 0
        self.errlog = Every(log_interval)


class _AsyncRunner:
    """One async sink's bounded buffer (drop-oldest) and the task that feeds it batches."""

    def __init__(self, sink: AsyncSink, name: str, maxsize: int, batch_size: int, log_interval: float,
                 on_event: OnEvent | None, linger: float = 0.0) -> None:
        self.sink = sink
        self.linger = linger
        """Seconds a woken task waits for a larger batch (see the module docstring)."""
        self.name = name
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.buffer: deque[CompletionRecord] = deque(maxlen=maxsize)
        self.dropped = 0
        self.errors = 0
        self.errlog = Every(log_interval)
        self.droplog = Every(log_interval)
        self.sumlog = Every(log_interval)
        self.unreported = 0
        """Records dropped since the last summary line (the first drop's warning cannot know the total)."""
        self.on_event = on_event
        self.hurry: Callable[[], None] | None = getattr(sink, "hurry", None)
        """The sink's optional ``hurry()``: called when the buffer is half full (a sink that waits to batch
        more writes must write now, before records are dropped)."""
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.handling = 0
        """Records in the batch the sink is handling now (lost, and counted, if it is cancelled)."""
        self._wake: asyncio.Event | None = None
        self._lingering: asyncio.Future[None] | None = None
        """The linger being waited out (:meth:`_linger`), None otherwise."""

    def start(self) -> None:
        self._wake = asyncio.Event()
        if self.buffer:
            self._wake.set()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"relaygate-sink-{self.name}")

    def offer(self, batch: Sequence[CompletionRecord]) -> None:
        """Append a batch (dropping the oldest past the bound) and wake the task. Never blocks."""
        buf = self.buffer
        over = len(buf) + len(batch) - self.maxsize
        if over > 0:
            self.dropped += over
            self.unreported += over
            if self.on_event is not None:
                self.on_event(f"sink_dropped:{self.name}", over)
            suppressed = self.droplog.ready(time.monotonic())
            if suppressed is not None:
                log.warning("sink %s is behind: dropped %d oldest record(s) (%d total; %d warning(s) suppressed)",
                            self.name, over, self.dropped, suppressed)
        buf.extend(batch)
        if self.hurry is not None and 2 * len(buf) >= self.maxsize:
            self.hurry()
        if self._lingering is not None and self._full():
            _release(self._lingering)
        if self._wake is not None:
            self._wake.set()

    def _full(self) -> bool:
        """A full batch, or half the buffer, is waiting: take it now."""
        n = len(self.buffer)
        return n >= self.batch_size or 2 * n >= self.maxsize

    async def _linger(self) -> None:
        """Wait ``linger`` seconds for a larger batch; :meth:`offer` (a full batch) and :meth:`aclose` end it early."""
        loop = asyncio.get_running_loop()
        fut = self._lingering = loop.create_future()
        timer = loop.call_later(self.linger, _release, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._lingering = None

    async def _run(self) -> None:
        assert self._wake is not None
        buf, wake = self.buffer, self._wake
        while True:
            if not buf:
                if self.closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            if self.linger and not self._full() and not self.closing:
                await self._linger()
            n = min(len(buf), self.batch_size)
            batch = [buf.popleft() for _ in range(n)]
            self.handling = n
            dropped = self.dropped
            if self.closing and self.hurry is not None:
                self.hurry()  # closing: nothing waits for a larger batch
            try:
                await self.sink.handle(batch)
            except Exception:
                self.errors += 1
                _failed(self.name, self.errlog, self.on_event, n)
            self.handling = 0
            if self.unreported and self.dropped == dropped and self.sumlog.ready(time.monotonic()) is not None:
                self.report()

    def report(self) -> None:
        """Log how many records were dropped since the last report: once a batch was handled without new
        drops (the sink caught up), at most once per interval (the count carries over), and at close."""
        log.warning("sink %s: %d record(s) dropped while it was behind (%d in total)", self.name, self.unreported,
                    self.dropped)
        self.unreported = 0

    async def aclose(self, timeout: float) -> None:
        """Let the task finish the buffer (within ``timeout``), then stop it and close the sink."""
        self.closing = True
        if self.hurry is not None:
            self.hurry()  # a sink waiting to gather a larger batch writes what it holds now
        if self._lingering is not None:
            _release(self._lingering)
        task = self.task
        if task is not None:
            assert self._wake is not None
            self._wake.set()
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                left = len(self.buffer) + self.handling
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if left:
                    self.dropped += left
                    if self.on_event is not None:
                        self.on_event(f"sink_dropped:{self.name}", left)
                    log.warning("sink %s did not finish within %.1f s at shutdown: %d record(s) dropped",
                                self.name, timeout, left)
                self.buffer.clear()
        if self.unreported:
            self.report()
        await _close_sink(self.sink, self.name)


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _close_sink(sink: object, name: str) -> None:
    try:
        aclose = getattr(sink, "aclose", None)
        if aclose is not None:
            await aclose()
            return
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    except Exception:
        log.exception("sink %s failed to close", name)


class CompletionQueue:
    """One worker's bounded completion queue; :meth:`put` is the request path's only call."""

    def __init__(self, maxsize: int = 10_000, *, delay: float = 0.001, batch_size: int = 512,
                 sink_buffer: int = 10_000, log_interval: float = 60.0, on_event: OnEvent | None = None,
                 linger: float = 0.0) -> None:
        if maxsize < 1 or batch_size < 1 or sink_buffer < 1:
            raise ValueError("maxsize, batch_size and sink_buffer must be at least 1")
        if delay < 0 or linger < 0:
            raise ValueError("delay and linger must be >= 0")
        self.linger = linger
        """Seconds an async sink's woken task waits for a larger batch (0: it takes what is there)."""
        self.maxsize = maxsize
        self.delay = delay
        """Seconds the first record of a batch waits for others (0: drain on the next loop iteration)."""
        self.batch_size = batch_size
        self.sink_buffer = sink_buffer
        self.log_interval = log_interval
        self.on_event = on_event
        self.dropped = 0
        """Records dropped by this queue (full, or put after :meth:`aclose`)."""
        self.on_drop: Callable[[CompletionRecord], None] | None = None
        """Told of each record dropped when the queue is full, before it goes (must not raise): the budget
        guard releases what the request held (``budgets.holds``)."""
        self._records: deque[CompletionRecord] = deque(maxlen=maxsize)
        self._sync: list[_SyncEntry] = []
        self._runners: list[_AsyncRunner] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # True while a drain is scheduled, and after close: put() then schedules nothing
        self._pending = False
        self._closed = False
        self._reported = 0
        self._droplog = Every(log_interval)

    # -- configuration ------------------------------------------------------------------------------

    def add_sink(self, sink: Sink | AsyncSink, *, name: str | None = None, buffer: int | None = None,
                 batch_size: int | None = None) -> None:
        """Register a sink (before or after :meth:`start`). ``name`` defaults to the sink's ``name``
        attribute or class name; ``buffer`` and ``batch_size`` apply to async sinks."""
        label = name or _name_of(sink)
        if inspect.iscoroutinefunction(sink.handle):
            runner = _AsyncRunner(sink, label, buffer or self.sink_buffer,  # type: ignore[arg-type]
                                  batch_size or self.batch_size, self.log_interval, self.on_event,
                                  getattr(sink, "linger", self.linger))
            self._runners.append(runner)
            if self._loop is not None and not self._closed:
                runner.start()
        else:
            self._sync.append(_SyncEntry(sink, label, self.log_interval))  # type: ignore[arg-type]

    @property
    def sinks(self) -> list[str]:
        return [e.name for e in self._sync] + [r.name for r in self._runners]

    def stats(self) -> dict[str, int]:
        """Counters for logs and tests: queue drops and depth, and per sink its errors (and, for async
        sinks, drops and buffered records)."""
        out = {"dropped": self.dropped, "queued": len(self._records)}
        for e in self._sync:
            out[f"sink_error:{e.name}"] = e.errors
        for r in self._runners:
            out[f"sink_error:{r.name}"] = r.errors
            out[f"sink_dropped:{r.name}"] = r.dropped
            out[f"sink_buffered:{r.name}"] = len(r.buffer)
        return out

    def offer_to(self, sink: object, batch: Sequence[CompletionRecord]) -> bool:
        """Hand ``batch`` to the one installed ``sink`` (not the queue: no other sink sees it), as its records are
        handed to it (an async sink's bounded buffer and task; a sync sink at once); False when not installed.
        ``/health/services`` sends its test record so."""
        for r in self._runners:
            if r.sink is sink:
                r.offer(batch)
                return True
        for e in self._sync:
            if e.sink is sink:
                e.sink.handle(batch)
                return True
        return False

    def pending(self, name: str) -> int:
        """Records the async sink ``name`` has not finished with: in its buffer and in the batch it handles
        (0 for a sink not installed)."""
        for r in self._runners:
            if r.name == name:
                return len(r.buffer) + r.handling
        return 0

    # -- hot path -----------------------------------------------------------------------------------

    def put(self, record: CompletionRecord) -> None:
        """Queue ``record`` for the sinks. Never awaits, blocks or raises; a full queue drops its oldest."""
        records = self._records
        if len(records) == self.maxsize:
            self.dropped += 1  # the deque's maxlen drops the oldest on append
            if self.on_drop is not None:
                self.on_drop(records[0])
        records.append(record)
        if not self._pending:
            self._pending = True
            self._schedule()

    # -- drain --------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_closed():  # its loop ended (an app driven by several asyncio.run calls):
            loop = self._loop = None              # bind again to the running one; put() never raises
        if loop is None:  # put() before start(): start on the running loop, if there is one
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                self._pending = False  # no loop (sync code): the records wait; the next put tries again
                return
            self.start()
            return
        if self.delay:
            loop.call_later(self.delay, self._drain)
        else:
            loop.call_soon(self._drain)

    def _take(self) -> list[CompletionRecord]:
        records = self._records
        if len(records) <= self.batch_size:
            batch = list(records)
            records.clear()
            return batch
        popleft = records.popleft
        return [popleft() for _ in range(self.batch_size)]

    def _deliver(self, batch: list[CompletionRecord]) -> None:
        for entry in self._sync:
            try:
                entry.handle(batch)
            except Exception:
                self._sink_failed(entry, len(batch))
        for runner in self._runners:
            runner.offer(batch)

    def _sink_failed(self, entry: _SyncEntry, n: int) -> None:
        entry.errors += 1
        _failed(entry.name, entry.errlog, self.on_event, n)

    def _report_drops(self) -> None:
        new = self.dropped - self._reported
        if new <= 0:
            return
        self._reported = self.dropped
        if self.on_event is not None:
            self.on_event(DROPPED_EVENT, new)
        suppressed = self._droplog.ready(time.monotonic())
        if suppressed is not None:
            log.warning("completion queue full: dropped %d oldest record(s) (%d total; %d warning(s) suppressed)",
                        new, self.dropped, suppressed)

    def _drain(self) -> None:
        """One batch to every sink; reschedules itself while records remain (loop callback).

        Written out inline (no helper calls) because at low load it runs once per request."""
        if self._closed:
            return
        if self.dropped != self._reported:
            self._report_drops()
        records = self._records
        if len(records) <= self.batch_size:
            batch = list(records)
            records.clear()
        else:
            popleft = records.popleft
            batch = [popleft() for _ in range(self.batch_size)]
        for entry in self._sync:
            try:
                entry.handle(batch)
            except Exception:
                self._sink_failed(entry, len(batch))
        for runner in self._runners:
            runner.offer(batch)
        if records:
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]
        else:
            self._pending = False

    def drain_now(self) -> int:
        """Deliver everything waiting, synchronously (shutdown, tests); returns the number of records."""
        n = 0
        self._report_drops()
        while self._records:
            batch = self._take()
            n += len(batch)
            self._deliver(batch)
        return n

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running loop and start the async sinks' tasks (lifespan startup).

        Idempotent on the same loop. A queue not started by then starts itself at the first ``put`` made
        inside a running loop (an app driven without its lifespan, as in-process tests do)."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("CompletionQueue is closed")
        if self._loop is not None:
            if self._loop is not loop:
                raise RuntimeError("CompletionQueue already started on another event loop")
            return
        self._loop = loop
        for runner in self._runners:
            runner.start()
        if self._records:
            self._pending = True
            self._schedule()
        else:
            self._pending = False

    async def aclose(self, timeout: float = 5.0) -> None:
        """Deliver what is left, let async sinks finish (each within ``timeout``), close every sink.

        After this, :meth:`put` keeps nothing: each record is counted in :attr:`dropped`."""
        if self._closed:
            return
        self.drain_now()
        self._closed = True
        self._pending = True
        self._records = _Discard(self)
        await asyncio.gather(*(r.aclose(timeout) for r in self._runners))
        for entry in self._sync:
            await _close_sink(entry.sink, entry.name)


class _Discard(deque[CompletionRecord]):
    """The queue's store after :meth:`CompletionQueue.aclose`: counts each record put as dropped."""

    def __init__(self, queue: CompletionQueue) -> None:
        super().__init__(maxlen=0)
        self._queue = queue

    def append(self, record: CompletionRecord) -> None:
        self._queue.dropped += 1
