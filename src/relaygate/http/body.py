"""Reading a request body, with limits (size, time, rate).

What it owns, for every POST route alike:

- :func:`read_body` reads a whole request body within three bounds: ``max_request_body_bytes`` (a declared
  ``Content-Length`` over it is a 413 before a byte is read; a chunked body is counted as it arrives),
  ``body_read_timeout`` seconds plus one second per ``min_body_rate`` bytes received (a body trickled on
  purpose holds its connection and task for no longer: 408), and a client that goes away
  (:class:`ClientGone`). No timer is armed per request: a read that must wait registers
  its deadline with one per-worker sweeper that runs every ``SWEEP_INTERVAL`` (0.1 s) while any read waits
  (Granian's ``receive()`` is never already resolved when called, so a per-request timer would cost every
  request ~2 µs).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable
from typing import Any

from relaygate.core import errors
from relaygate.http.types import Message, Receive


class ClientGone(Exception):
    """The client went away before its request body arrived (``http.disconnect`` from ``receive()``)."""


def too_large(size: int, limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"Request size is too large. Request size is {size / 1048576:.2f} MB. "
        f"Max size is {limit / 1048576:.2f} MB", code="413")


def declared_length(value: bytes, limit: int) -> int:
    """A ``Content-Length`` header's value, checked against ``limit`` (413) before the body is read."""
    try:
        n = int(value)
    except ValueError:
        raise errors.BadRequest("Invalid Content-Length header") from None
    if n < 0:
        raise errors.BadRequest("Invalid Content-Length header")
    if n > limit:
        raise too_large(n, limit)
    return n


def check_declared_length(headers: Iterable[tuple[bytes, bytes]], limit: int) -> None:
    for k, v in headers:
        if k == b"content-length":
            declared_length(v, limit)
            return


class BodyLimits:
    """The server's body bounds, built once per worker."""

    __slots__ = ("max_bytes", "timeout", "min_rate")

    def __init__(self, max_bytes: int, timeout: float, min_rate: int) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.min_rate = min_rate

    def deadline(self, start: float, received: int) -> float:
        return start + self.timeout + (received / self.min_rate if self.min_rate > 0 else math.inf)


def _body_timeout(limits: BodyLimits, received: int) -> errors.GatewayError:
    return errors.GatewayError(
        f"Request timeout: the request body did not arrive in time ({received} bytes received; a body must "
        f"arrive within {limits.timeout:g} s plus 1 s per {limits.min_rate} bytes)",
        status=408, type="timeout", code="408")


#: how often the body deadlines of a worker are checked while some body read waits (their precision)
SWEEP_INTERVAL = 0.1


class _Sweeper:
    """Cancels body reads that passed their deadline: one timer per worker while any read waits, not one
    timer per request (arming and cancelling a timer per request costs ~1.5-3 µs; this costs a dict set
    and delete)."""

    __slots__ = ("loop", "waiting", "expired", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[asyncio.Task[Any], tuple[float, Awaitable[Message]]] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.handle: asyncio.TimerHandle | None = None

    def _sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        for task, (deadline, pending) in list(self.waiting.items()):
            # a receive() that already resolved wakes its task normally: cancelling now would land later
            if deadline <= now and not (asyncio.isfuture(pending) and pending.done()):
                del self.waiting[task]
                self.expired.add(task)
                task.cancel()
        if self.waiting:
            self.handle = self.loop.call_later(SWEEP_INTERVAL, self._sweep)


_sweeper: _Sweeper | None = None


def _sweeper_for(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    global _sweeper
    sw = _sweeper
    if sw is None or sw.loop is not loop:
        sw = _sweeper = _Sweeper(loop)
    return sw


async def next_message(receive: Receive, limits: BodyLimits, start: float, received: int) -> Message:
    """The next ``receive()`` message of a body whose reading began at ``start`` (loop time) and has
    ``received`` bytes so far: 408 past the body's deadline, :class:`ClientGone` on a disconnect.

    The wait is registered with the worker's sweeper (no timer per request); on this hot path that is a
    dict set and delete, and one coroutine frame."""
    pending = receive()
    if asyncio.isfuture(pending) and pending.done():
        msg: Message = pending.result()
    else:
        loop = asyncio.get_running_loop()
        deadline = limits.deadline(start, received)
        if deadline <= loop.time():
            if asyncio.iscoroutine(pending):
                pending.close()
            raise _body_timeout(limits, received)
        task = asyncio.current_task()
        assert task is not None
        sw = _sweeper
        if sw is None or sw.loop is not loop:
            sw = _sweeper_for(loop)
        sw.waiting[task] = (deadline, pending)
        if sw.handle is None:
            sw.handle = loop.call_later(SWEEP_INTERVAL, sw._sweep)
        try:
            msg = await pending
        except asyncio.CancelledError:
            if task in sw.expired:
                sw.expired.discard(task)
                task.uncancel()
                raise _body_timeout(limits, received) from None
            raise
        finally:
            sw.waiting.pop(task, None)
    if msg["type"] == "http.disconnect":
        raise ClientGone()
    return msg


async def read_body(receive: Receive, limits: BodyLimits) -> bytes:
    """The whole request body, within the size, time and rate bounds (413 / 408), or :class:`ClientGone`."""
    start = asyncio.get_running_loop().time()
    limit = limits.max_bytes
    msg = await next_message(receive, limits, start, 0)
    chunk: bytes = msg.get("body", b"")
    if not msg.get("more_body", False):  # the whole body in one message: the common case
        if len(chunk) > limit:
            raise too_large(len(chunk), limit)
        return chunk
    parts = [chunk]
    size = len(chunk)
    while True:
        if size > limit:
            raise too_large(size, limit)
        msg = await next_message(receive, limits, start, size)
        chunk = msg.get("body", b"")
        size += len(chunk)
        parts.append(chunk)
        if not msg.get("more_body", False):
            if size > limit:
                raise too_large(size, limit)
            return b"".join(parts)


def body_ended_early() -> errors.BadRequest:
    """What a client gets when ``receive()`` said ``http.disconnect`` before the body was whole: Granian says
    so for a malformed chunked framing too, and a client that really left never sees the answer."""
    return errors.BadRequest("Invalid request body: the body ended before it was complete "
                             "(connection closed, or malformed chunked framing)")
