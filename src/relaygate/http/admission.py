"""Per-worker admission control: LiteLLM 1.110's ``max_in_flight_requests_per_worker``.

What it owns: how many requests one worker serves at once, and what happens to the others. With
``general_settings.max_in_flight_requests_per_worker: N`` a worker serves at most N requests at a time (every
route but the probes and ``/metrics``, as LiteLLM exempts them); a request past that waits, first come first
served, in a queue of at most ``max_queued_requests_per_worker`` (N unless set; 0: no waiting) for at most
``admission_queue_timeout_seconds`` (1 s). A request that finds the queue full, or whose wait runs out, is
refused with LiteLLM's 503 ``overloaded_error`` (``Worker at capacity: <n> in-flight, <m> queued requests. Retry
later.``, ``retry-after: 1``) in the route's API shape, before anything is read or sent upstream. Counted as
LiteLLM's ``litellm_admission_admitted_requests`` / ``litellm_admission_queued_requests`` gauges and
``litellm_admission_rejected_requests_total{reason="queue_full"|"queue_timeout"}`` (with ``prometheus``).

Unlike ``global_max_parallel_requests`` (LLM calls only, refused at once with a 429), this bounds the whole
worker and lets a burst wait briefly instead of failing. Without the setting nothing here runs (the gateway
tests one attribute). Single-threaded: every method runs on the worker's event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque

from relaygate.core.errors import GatewayError

__all__ = ["EXEMPT", "Admission"]

EXEMPT = frozenset({"/health/liveliness", "/health/liveness", "/health/readiness", "/health/readiness/details",
                    "/health/backlog", "/health/drain", "/metrics", "/metrics/"})
"""Paths never held back (LiteLLM's ``_EXEMPT_PATHS``): an orchestrator's probes and the scraper."""


class Admission:
    """One worker's in-flight bound and wait queue (``general_settings``' three admission settings)."""

    __slots__ = ("admitted", "limit", "queue_max", "rejected", "timeout", "waiting")

    def __init__(self, limit: int, queue_max: int | None = None, timeout: float = 1.0) -> None:
        self.limit = limit
        self.queue_max = limit if queue_max is None else queue_max
        self.timeout = timeout
        self.admitted = 0
        """Requests being served now."""
        self.waiting: deque[asyncio.Future[bool]] = deque()
        """Requests waiting for a slot, oldest first (a future resolved True hands it a slot)."""
        self.rejected = {"queue_full": 0, "queue_timeout": 0}

    def configure(self, limit: int, queue_max: int | None, timeout: float) -> None:
        """New settings (a reload): requests already admitted keep their slots; a larger bound admits waiters."""
        self.limit, self.queue_max, self.timeout = limit, limit if queue_max is None else queue_max, timeout
        while self.waiting and self.admitted < self.limit:
            self._hand_over()

    def enter_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one (the common case: no await)."""
        if self.admitted < self.limit and not self.waiting:
            self.admitted += 1
            return True
        return False

    async def enter(self) -> bool:
        """Wait for a slot (after :meth:`enter_now` found none): True once admitted, False when refused (the
        reason counted). A waiter cancelled (its client gone) leaves the queue, and any slot it was handed."""
        if len(self.waiting) >= self.queue_max:
            self.rejected["queue_full"] += 1
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self.waiting.append(fut)
        timer = loop.call_later(self.timeout, self._expire, fut)
        try:
            got = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.leave()  # handed a slot just as it was cancelled: pass it on
            else:
                self._drop(fut)
            raise
        finally:
            timer.cancel()
        if not got:
            self.rejected["queue_timeout"] += 1
        return got

    def leave(self) -> None:
        """A served request ended: its slot goes to the oldest waiter, or back to the pool."""
        self.admitted -= 1
        if self.waiting:
            self._hand_over()

    def _hand_over(self) -> None:
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                self.admitted += 1
                fut.set_result(True)
                return

    def _expire(self, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            self._drop(fut)
            fut.set_result(False)

    def _drop(self, fut: asyncio.Future[bool]) -> None:
        try:
            self.waiting.remove(fut)
        except ValueError:
            pass

    def overloaded(self) -> GatewayError:
        """LiteLLM's refusal, naming what the worker holds now."""
        return GatewayError(f"Worker at capacity: {self.admitted} in-flight, {len(self.waiting)} queued requests. "
                            "Retry later.", status=503, type="overloaded_error", headers=[(b"retry-after", b"1")])
