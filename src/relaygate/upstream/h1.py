"""The fast upstream transport: pooled keep-alive HTTP/1.1 over ``asyncio.Protocol``.

This module owns the sockets to providers. It implements :class:`relaygate.upstream.base.Transport`
(read that docstring for the contract) with as little Python per request as possible: a request on a
pooled connection is one ``build_request`` call, one ``transport.write``, one future awaited for the
head, and the compiled :class:`relaygate.core.http1.ResponseParser` turning socket bytes into events
inside ``data_received``. No task is created per request, no ``wait_for`` wraps anything, nothing logs.

Pools are per origin (scheme, host, port), or per origin and address for a request pinned to an address
(``UpstreamRequest.connect_to``); :mod:`relaygate.upstream.h1_pool` holds them: idle connections LIFO,
``keepalive_expiry``, ``max_connections_per_origin`` and the waiters queued behind it.

Timeouts use one ``loop.call_at`` timer per exchange that checks, when it fires, which deadline passed:
``first_byte`` (request written -> head), ``idle`` (gap between body bytes, measured from the last
``data_received``; a connection paused for backpressure is not idle), ``total`` (whole exchange); if none
did (the deadline moved), it re-arms. ``connect`` bounds TCP and TLS set-up with ``asyncio.timeout``:
that path is already expensive. A timeout closes the connection and raises
:class:`~relaygate.core.errors.UpstreamTimeout` with its ``phase``.

Invariants: a connection is reused only after its response ended, neither side said
``Connection: close``, and no stray byte followed the response; a broken connection never returns to a
pool. A request is written at most once: a connection that dies after its request was written is the
caller's error (502), however early, since the upstream may have received and acted on it. Only a
connection proven dead before anything was written is skipped: before an idle connection is reused, its
socket is polled (one ``poll(0)`` syscall, ~0.6 µs), and one that is readable (the upstream's FIN, a
reset or stray bytes the loop has not processed yet) is closed instead. Cancelling the awaiting task,
or ``aclose()`` before the body ended, closes the connection, which is how a client disconnect cancels
upstream generation. The response object, its backpressure and the cap on bodies read whole
(``max_response_bytes``) live in :mod:`relaygate.upstream.h1_response`.

Streamed request bodies (an async iterable instead of ``bytes``) are written piece by piece as the
iterable yields them, chunk-framed unless the length is known. Backpressure runs the other way too: the
socket's write buffer is bounded by ``high_water`` (``set_write_buffer_limits``) and, while the transport
has paused writing, the next piece is not pulled until ``resume_writing``; so the gateway holds at most
``high_water`` plus one piece of an upload whatever the upstream's reading speed. While the body is being
sent, ``first_byte`` does not run (it starts when the last piece is written); instead an upstream that
stops reading for ``idle`` seconds is a timeout. A large upload lost to a keep-alive race costs the most,
so a streamed body goes only on a connection idle for at most :data:`STREAM_REUSE_IDLE` seconds (well
under any server's keep-alive timeout) or on a fresh one. An
upstream that answers before the body ended stops the sending, and its connection is closed afterwards.
"""

from __future__ import annotations

import asyncio
import select
import ssl as _ssl
from collections.abc import AsyncIterable
from typing import Any

from relaygate.core.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from relaygate.core.http1 import END, ResponseParser, build_request, build_request_head
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1_pool import OriginPool
from relaygate.upstream.h1_response import DEFAULT_MAX_RESPONSE_BYTES, H1Response, ResponseTooLarge

__all__ = ["HIGH_WATER", "LOW_WATER", "STREAM_REUSE_IDLE", "H1Response", "H1Transport", "ResponseTooLarge"]

#: Unread body bytes above which a connection stops reading from its socket.
HIGH_WATER = 256 * 1024
#: Unread body bytes below which a paused connection reads again.
LOW_WATER = 64 * 1024
#: A streamed request body is sent only on a connection idle at most this long (or a fresh one).
STREAM_REUSE_IDLE = 2.0
#: Pools kept without any connection before the table is swept of them (on a pool miss only): clients
#: choose the hosts of the image URLs the gateway fetches, so the table must not grow with them.
MAX_EMPTY_POOLS = 256

_IDLE = 0
_WAIT_HEAD = 1
_BODY = 2

_INF = float("inf")


class _Conn(asyncio.Protocol):
    """One upstream connection: parser, timer, current response."""

    def __init__(self, pool: OriginPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.high_water = pool.high_water
        self.low_water = pool.low_water
        self.max_body: int = pool.max_body
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.phase = _IDLE
        self.closed = False
        self.paused = False
        self.got_bytes = False
        self.poller: select.poll | None = None
        self.keep_alive = True
        self.idle_since = 0.0
        self.resp: H1Response | None = None
        self.head_fut: asyncio.Future[H1Response] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.armed_at = _INF
        self.total_deadline = _INF
        self.first_byte_deadline = _INF
        self.idle_timeout = _INF
        self.first_byte_timeout = _INF
        self.last_activity = 0.0
        self.sending = False  # a streamed request body is being written
        self.write_paused = False
        self.write_paused_at = 0.0
        self.drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.poller = select.poll()
            self.poller.register(sock.fileno(), select.POLLIN)
        transport.set_write_buffer_limits(self.high_water, self.low_water)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_at = now = self.loop.time()
        if self.sending:
            due = now + self.idle_timeout
            if due < self.armed_at:
                self._arm(due)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        w = self.drain_waiter
        if w is not None:
            self.drain_waiter = None
            if not w.done():
                w.set_result(None)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == _IDLE:
            self.abort()  # unsolicited bytes: this connection cannot be trusted
            return
        self.got_bytes = True
        try:
            events = self.parser.feed(data)
        except UpstreamProtocolError as exc:
            self._fail(exc)
            return
        for ev in events:
            if type(ev) is bytes:
                self.resp._feed(ev)  # type: ignore[union-attr]
            elif ev is END:
                self._end()
            else:
                self._head(ev)
        if self.phase == _BODY:
            self.last_activity = self.loop.time()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self._wake_drain()
        self.pool.discard(self)
        phase = self.phase
        if phase == _WAIT_HEAD:
            self.phase = _IDLE
            fut = self.head_fut
            self.head_fut = None
            if fut is None or fut.done():
                return
            if not self.got_bytes:
                detail = f": {exc!r}" if exc is not None else ""
                fut.set_exception(UpstreamConnectError(
                    f"upstream closed the connection before responding{detail}; the request is not re-sent"))
                return
            try:
                self.parser.feed_eof()
            except UpstreamProtocolError as perr:
                fut.set_exception(perr)
            else:  # pragma: no cover - feed_eof never completes a head
                fut.set_exception(UpstreamConnectError("upstream closed the connection"))
        elif phase == _BODY:
            try:
                events = self.parser.feed_eof()
            except UpstreamProtocolError as perr:
                self.phase = _IDLE
                resp = self.resp
                self.resp = None
                if resp is not None:
                    resp._fail(perr)
                return
            for ev in events:
                if ev is END:
                    self._end()

    # -- exchange ------------------------------------------------------------------------------------

    def start(
        self, data: bytes, is_head: bool, timeouts: Timeouts, total_deadline: float, streaming: bool = False
    ) -> asyncio.Future[H1Response]:
        loop = self.loop
        now = loop.time()
        self.parser.reset(is_head)
        self.got_bytes = False
        self.resp = None
        fut: asyncio.Future[H1Response] = loop.create_future()
        self.head_fut = fut
        self.phase = _WAIT_HEAD
        self.total_deadline = total_deadline
        self.sending = streaming
        self.first_byte_deadline = _INF if streaming else now + timeouts.first_byte
        self.first_byte_timeout = timeouts.first_byte
        self.idle_timeout = timeouts.idle
        self._arm(min(self.first_byte_deadline, total_deadline))
        self.transport.write(data)  # type: ignore[union-attr]
        return fut

    async def send_body(self, body: AsyncIterable[bytes], length: int | None, fut: asyncio.Future[H1Response]) -> None:
        """Write a streamed body after the head ``start`` wrote; chunk-framed when ``length`` is None.

        Returns when the body was written, or early when the exchange ended first (the upstream answered
        or failed: ``fut`` is done, the connection will not be reused). Raises what the iterable raises,
        and :class:`UpstreamProtocolError` if it yields more or fewer bytes than ``length``.
        """
        transport = self.transport
        assert transport is not None
        chunked = length is None
        sent = 0
        async for piece in body:
            if fut.done() or self.closed:
                break
            n = len(piece)
            if not n:
                continue
            sent += n
            if chunked:
                transport.write(b"%x\r\n" % n)
                transport.write(piece)
                transport.write(b"\r\n")
            else:
                if sent > length:  # type: ignore[operator]
                    raise UpstreamProtocolError(f"request body longer than its Content-Length {length}")
                transport.write(piece)
            while self.write_paused and not self.closed and not fut.done():
                w = self.drain_waiter = self.loop.create_future()
                await w
        else:
            if not fut.done() and not self.closed:
                if chunked:
                    transport.write(b"0\r\n\r\n")
                elif sent != length:
                    raise UpstreamProtocolError(f"request body of {sent} bytes, Content-Length {length}")
                self._body_sent()
                return
        self.keep_alive = False  # the request is unfinished: this connection cannot carry another

    def _body_sent(self) -> None:
        self.sending = False
        if self.phase == _WAIT_HEAD:
            self.first_byte_deadline = due = self.loop.time() + self.first_byte_timeout
            if due < self.armed_at:
                self._arm(min(due, self.total_deadline))

    def drop_exchange(self) -> None:
        """The caller gives up on this exchange (its body failed): close without reporting to anyone."""
        self.phase = _IDLE
        self.sending = False
        fut = self.head_fut
        self.head_fut = None
        if fut is not None and not fut.done():
            fut.cancel()
        self.abort()

    def _head(self, head: Any) -> None:
        resp = self.resp = H1Response(self, head)
        self.keep_alive = head.keep_alive
        self.phase = _BODY
        self.last_activity = now = self.loop.time()
        due = min(self.total_deadline, now + self.idle_timeout)
        if due < self.armed_at:
            self._arm(due)
        fut = self.head_fut
        self.head_fut = None
        if fut is not None and not fut.done():
            fut.set_result(resp)

    def _end(self) -> None:
        self.phase = _IDLE
        self._cancel_timer()
        resp = self.resp
        self.resp = None
        if resp is not None:
            resp._finish()
        if self.paused:
            self.resume()
        if self.keep_alive and not self.sending and not self.closed and self.parser.buffered == 0:
            self.pool.release(self)
        else:
            self.abort()

    def _fail(self, exc: Exception) -> None:
        """Deliver ``exc`` to whoever waits on this exchange and close the connection."""
        phase = self.phase
        self.phase = _IDLE
        if phase == _WAIT_HEAD:
            fut = self.head_fut
            self.head_fut = None
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        elif phase == _BODY:
            resp = self.resp
            self.resp = None
            if resp is not None:
                resp._fail(exc)
        self.abort()

    # -- timers --------------------------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if when == _INF:
            self.timer = None
            self.armed_at = _INF
            return
        self.armed_at = when
        self.timer = self.loop.call_at(when, self._on_timer)

    def _idle_since(self) -> float:
        """Since when the exchange has been waiting on the upstream's idleness (inf: it is not)."""
        if self.phase == _BODY:
            return _INF if self.paused else self.last_activity
        return self.write_paused_at if self.sending and self.write_paused else _INF

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.armed_at = _INF

    def _on_timer(self) -> None:
        self.timer = None
        self.armed_at = _INF
        phase = self.phase
        if phase == _IDLE:
            return
        now = self.loop.time()
        if now >= self.total_deadline:
            which = "total"
        elif phase == _WAIT_HEAD and now >= self.first_byte_deadline:
            which = "first_byte"
        elif now >= self._idle_since() + self.idle_timeout:
            which = "idle"
        else:
            due = self.total_deadline
            if phase == _WAIT_HEAD:
                due = min(due, self.first_byte_deadline)
                if self.sending and self.write_paused:
                    due = min(due, self.write_paused_at + self.idle_timeout)
            elif self.paused:
                due = min(due, now + self.idle_timeout)
            else:
                due = min(due, self.last_activity + self.idle_timeout)
            self._arm(due)
            return
        self._fail(UpstreamTimeout(f"upstream {which.replace('_', '-')} timeout", phase=which))

    # -- flow control and closing ----------------------------------------------------------------------

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.last_activity = self.loop.time()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def dropped(self) -> bool:
        """The idle connection's socket is readable (EOF, reset, stray bytes) or gone: it cannot carry a
        request, and nothing was written on it yet."""
        return self.poller is None or bool(self.poller.poll(0))

    def abort(self) -> None:
        """Close now; pending bytes are dropped. ``connection_lost`` follows and updates the pool."""
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
        self._wake_drain()


def _abandon(conn: _Conn, fut: asyncio.Future[H1Response]) -> None:
    """The caller stopped waiting for ``fut`` (cancelled, most often by a client that left). If the response
    was already delivered, close the *response*: its connection may have finished the exchange and gone
    back to the pool, where another request now uses it, so aborting ``conn`` would fail that request
    ("closed before responding"). Otherwise the exchange still owns ``conn``: abort it."""
    if fut.done() and not fut.cancelled() and fut.exception() is None:
        fut.result()._abort()
    else:
        conn.abort()


class H1Transport:
    """Pooled keep-alive HTTP/1.1 client implementing :class:`relaygate.upstream.base.Transport`.

    ``max_connections_per_origin`` (None: unbounded) caps open connections per origin; ``keepalive_expiry``
    closes connections idle longer than that; ``ssl_context`` overrides the default verifying context for
    ``https`` origins; ``high_water`` / ``low_water`` bound unread body bytes per response;
    ``max_response_bytes`` caps a body read whole (``read()``; iteration is not capped); ``family``
    (``socket.AF_INET``: IPv4 only) the address family connections use (0: any).
    """

    def __init__(
        self,
        *,
        max_connections_per_origin: int | None = None,
        keepalive_expiry: float = 30.0,
        ssl_context: _ssl.SSLContext | None = None,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        family: int = 0,
    ) -> None:
        if max_connections_per_origin is not None and max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        if not 0 <= low_water <= high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        self.max_response_bytes = max_response_bytes
        self.family = family
        self.max_connections_per_origin = max_connections_per_origin
        self.keepalive_expiry = keepalive_expiry
        self.high_water = high_water
        self.low_water = low_water
        self._ssl = ssl_context
        self._pools: dict[str, tuple[OriginPool, int]] = {}
        self.conn_class: type[_Conn] = _Conn
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._closed = False

    def ssl_context(self) -> _ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _ssl.create_default_context()
        return self._ssl

    def _pool(self, url: str, connect_to: str | None = None) -> tuple[OriginPool, str]:
        """The pool for ``url``'s origin (pinned to the address ``connect_to`` if given) and the request
        target (path and query)."""
        i = url.find("://")
        start = i + 3
        j = url.find("/", start)
        if j < 0:
            j = url.find("?", start)
            if j < 0:
                j = len(url)
        key = url[:j] if connect_to is None else f"{url[:j]}\n{connect_to}"
        entry = self._pools.get(key)
        if entry is None:
            entry = self._new_pool(url, i, start, j, key, connect_to)
        pool, cut = entry
        target = url[cut:] or "/"
        if target[0] == "?":
            target = "/" + target
        return pool, target

    def _new_pool(self, url: str, i: int, start: int, j: int, key: str,
                  connect_to: str | None) -> tuple[OriginPool, int]:
        scheme = url[:i].lower() if i > 0 else ""
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported upstream URL {url[:60]!r}")
        authority = url[start:j]
        if "@" in authority or not authority:
            raise ValueError(f"unsupported upstream URL {url[:60]!r}")
        if authority.startswith("["):
            end = authority.find("]")
            if end < 0:
                raise ValueError(f"unsupported upstream URL {url[:60]!r}")
            host = authority[1:end]
            rest = authority[end + 1 :]
        else:
            host, _, rest = authority.partition(":")
            rest = ":" + rest if rest else ""
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else (443 if scheme == "https" else 80)
        if not host or not 0 < port < 65536:
            raise ValueError(f"unsupported upstream URL {url[:60]!r}")
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        pool = OriginPool(self, scheme, host, port, authority, connect_to)
        entry = (pool, j)
        if len(self._pools) >= MAX_EMPTY_POOLS:
            self._sweep()
        self._pools[key] = entry
        return entry

    def _sweep(self) -> None:
        """Forget pools without any connection or waiter. Safe at any time outside an await: an exchange
        holds a pool only while it counts in ``size`` (connecting or connected) or waits in ``waiters``."""
        pools = self._pools
        for key in [k for k, (pool, _) in pools.items() if pool.size == 0 and not pool.waiters]:
            del pools[key]

    def pool_count(self) -> int:
        """Pools in the table (stats and tests)."""
        return len(self._pools)

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> H1Response:
        """Send ``request``; return once the response head has arrived."""
        if self._closed:
            raise UpstreamConnectError("transport closed")
        if request.connect_to is None:
            pool, target = self._pool(request.url)
        else:
            pool, target = self._pool(request.url, request.connect_to)
        loop = self.loop
        total_deadline = loop.time() + timeouts.total if timeouts.total is not None else _INF
        method = request.method
        body = request.body
        if type(body) is not bytes:
            return await self._send_streamed(request, pool, target, timeouts, total_deadline)
        data = build_request(method, pool.host_header, target, request.headers, body)
        is_head = method == "HEAD"
        conn = pool.take_idle()
        if conn is None:
            conn = await pool.acquire(timeouts, total_deadline, False)
        fut = conn.start(data, is_head, timeouts, total_deadline)
        try:
            return await fut
        except BaseException:
            _abandon(conn, fut)
            raise

    async def _send_streamed(
        self, request: UpstreamRequest, pool: OriginPool, target: str, timeouts: Timeouts, total_deadline: float
    ) -> H1Response:
        length = request.content_length
        head = build_request_head(request.method, pool.host_header, target, request.headers, length)
        conn = pool.take_idle(STREAM_REUSE_IDLE)
        if conn is None:
            conn = await pool.acquire(timeouts, total_deadline, True)
        fut = conn.start(head, request.method == "HEAD", timeouts, total_deadline, True)
        try:
            await conn.send_body(request.body, length, fut)  # type: ignore[arg-type]
        except BaseException:
            conn.drop_exchange()
            raise
        try:
            return await fut
        except BaseException:
            _abandon(conn, fut)
            raise

    def write_buffered(self) -> int:
        """Request bytes written to connections but not yet taken by their sockets (stats and tests)."""
        return sum(
            c.transport.get_write_buffer_size()
            for pool, _ in self._pools.values()
            for c in pool.conns
            if c.transport is not None and not c.closed
        )

    def open_connections(self, origin: str | None = None) -> int:
        """Open connections (all origins, or the origin ``scheme://host[:port]``): for stats and tests."""
        if origin is not None:
            entry = self._pools.get(origin)
            return len(entry[0].conns) if entry is not None else 0
        return sum(len(pool.conns) for pool, _ in self._pools.values())

    def idle_connections(self) -> int:
        return sum(len(pool.idle) for pool, _ in self._pools.values())

    async def aclose(self) -> None:
        """Close every pooled and in-flight connection."""
        self._closed = True
        pools = [pool for pool, _ in self._pools.values()]
        self._pools.clear()
        for pool in pools:
            pool.close_all()
        await asyncio.sleep(0)  # let connection_lost callbacks run
