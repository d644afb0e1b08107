"""A bounded outbox with one sending task: what PagerDuty's incidents and the email notifications go through.

What it owns: :class:`Outbox`, which keeps items to send (at most ``limit``, the oldest given up past it), starts
its task on the first item put inside a running event loop (items put before wait), hands each item in turn to the
owner's ``deliver`` coroutine with the task's :class:`~relaygate.observe.post.Poster`, and on :meth:`Outbox.aclose`
lets the queue drain within a timeout, then stops. Every item given up — the queue full, the worker stopping
first, ``deliver`` raising — is told to the owner's ``drop`` (which counts and logs it), so nothing is lost
silently. ``deliver`` does its own retries; an exception out of it costs that item only.

Single-threaded: every method runs on the worker's event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Outbox"]

log = logging.getLogger("relaygate.alerting")

T = TypeVar("T")


class Outbox(Generic[T]):
    """Items sent one at a time by one task (see the module docstring)."""

    def __init__(self, name: str, limit: int, deliver: Callable[[T, Any], Awaitable[None]],
                 drop: Callable[[T, str], None], *, timeout: float = 10.0) -> None:
        self.name = name
        self.limit = limit
        self.deliver = deliver
        self.drop = drop
        self.timeout = timeout
        self.queue: deque[T] = deque()
        self.current: T | None = None
        """The item being delivered."""
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def put(self, item: T) -> None:
        if len(self.queue) >= self.limit:
            self.drop(self.queue.popleft(), "the queue is full")
        self.queue.append(item)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sent once a loop runs (the next item starts the task)
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"relaygate-{self.name}")
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        from relaygate.observe.post import Poster

        assert self._wake is not None
        poster = Poster(self.timeout, user_agent=f"relaygate-{self.name}")
        try:
            while True:
                if not self.queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self.current = self.queue.popleft()
                try:
                    await self.deliver(item, poster)
                except Exception as exc:  # a bug in deliver: this item only
                    log.exception("%s: an item could not be sent", self.name)
                    self.drop(item, type(exc).__name__)
                self.current = None
        finally:
            await poster.aclose()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued within ``timeout`` seconds, then stop; what is left is given up (``drop``)."""
        task = self._task
        if task is not None:
            deadline = time.monotonic() + timeout
            while (self.queue or self.current is not None) and not task.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.current is not None:
            current, self.current = self.current, None
            self.drop(current, "the worker stopped while it was being sent")
        while self.queue:
            self.drop(self.queue.popleft(), "the worker stopped first")
