"""Per-origin connection pools of the ``upstream.h1`` transport.

An :class:`OriginPool` holds the connections to one origin (scheme, host, port): idle ones LIFO (the
warmest is reused, the coldest expire first, after ``keepalive_expiry`` seconds, checked whenever the
pool is touched), a bound on open plus connecting connections (``max_connections_per_origin``), and the
waiters that receive a released connection directly, or the slot of a closed one.

Before an idle connection is handed out, it must still be usable: not closed, not closing, and its socket
not readable (:meth:`relaygate.upstream.h1._Conn.dropped`): an idle keep-alive socket that has something
to read holds the upstream's FIN, a reset, or stray bytes the event loop has not processed yet, so it is
closed before anything is written on it. Nothing else is ever retried: see ``upstream.h1``.

A pool may be pinned (``connect_to``): it connects to that address instead of resolving ``host``, while
the ``Host`` header, TLS SNI and certificate verification keep ``host``. The media fetch uses this to
connect to exactly the address its SSRF guard checked (``upstream.calls``).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from typing import TYPE_CHECKING

from relaygate.core.errors import UpstreamConnectError, UpstreamTimeout
from relaygate.upstream.base import Timeouts

if TYPE_CHECKING:
    from relaygate.upstream.h1 import H1Transport, _Conn

__all__ = ["OriginPool"]


class OriginPool:
    """Connections to one origin (or, pinned, to one address of it)."""

    def __init__(self, owner: H1Transport, scheme: str, host: str, port: int, host_header: str,
                 connect_to: str | None = None) -> None:
        self.loop = owner.loop
        self.conn_class = owner.conn_class
        self.scheme = scheme
        self.host = host
        self.connect_host = connect_to or host
        self.family = owner.family
        self.port = port
        self.host_header = host_header
        self.ssl: _ssl.SSLContext | None = owner.ssl_context() if scheme == "https" else None
        self.keepalive_expiry = owner.keepalive_expiry
        self.max = owner.max_connections_per_origin
        self.high_water = owner.high_water
        self.low_water = owner.low_water
        self.max_body: int = owner.max_response_bytes
        self.idle: deque[_Conn] = deque()
        self.size = 0  # open + connecting connections
        self.conns: set[_Conn] = set()
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()

    def take_idle(self, max_idle: float | None = None) -> _Conn | None:
        """The warmest usable idle connection, or None. With ``max_idle``, only one idle at most that
        long; if the warmest is colder and the pool is full, the coldest is closed to free a slot."""
        idle = self.idle
        if not idle:
            return None
        now = self.loop.time()
        expiry = self.keepalive_expiry
        while idle:
            conn = idle[-1]
            if conn.closed or conn.transport.is_closing():  # type: ignore[union-attr]
                idle.pop()
                continue
            if conn.dropped():
                idle.pop()
                conn.abort()
                continue
            age = now - conn.idle_since
            if age > expiry:
                idle.pop()
                conn.abort()
                continue
            if max_idle is not None and age > max_idle:
                if self.max is not None and self.size >= self.max:
                    idle.popleft().abort()  # connection_lost passes the slot to the waiter acquire() queues
                return None
            idle.pop()
            return conn
        return None

    def release(self, conn: _Conn) -> None:
        now = self.loop.time()
        conn.idle_since = now
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        idle = self.idle
        idle.append(conn)
        expiry = self.keepalive_expiry
        while idle and now - idle[0].idle_since > expiry:
            idle.popleft().abort()

    def discard(self, conn: _Conn) -> None:
        """A connection closed: forget it and pass its slot on."""
        if conn not in self.conns:
            return
        self.conns.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        self._free_slot()

    def _free_slot(self) -> None:
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)  # the slot passes to the waiter, size unchanged
                return
        self.size -= 1

    async def acquire(self, timeouts: Timeouts, total_deadline: float, fresh: bool) -> _Conn:
        if not fresh:
            conn = self.take_idle()
            if conn is not None:
                return conn
        if self.max is not None and self.size >= self.max:
            fut: asyncio.Future[_Conn | None] = self.loop.create_future()
            self.waiters.append(fut)
            try:
                got = await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    got = fut.result()
                    if got is None:
                        self._free_slot()
                    else:
                        self.release(got)
                else:
                    try:
                        self.waiters.remove(fut)
                    except ValueError:
                        pass
                raise
            if got is not None:
                return got
        else:
            self.size += 1
        try:
            return await self._connect(timeouts, total_deadline)
        except BaseException:
            self._free_slot()
            raise

    async def _connect(self, timeouts: Timeouts, total_deadline: float) -> _Conn:
        loop = self.loop
        deadline = min(loop.time() + timeouts.connect, total_deadline)
        phase = "connect" if deadline < total_deadline else "total"
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: self.conn_class(self),
                    self.connect_host,
                    self.port,
                    family=self.family,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {phase} timeout connecting to {self.host}:{self.port}", phase=phase
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to upstream {self.host}:{self.port}: {exc}") from None
        self.conns.add(conn)
        return conn

    def close_all(self) -> None:
        for conn in list(self.conns):
            conn.abort()
        self.idle.clear()
        for w in self.waiters:
            if not w.done():
                w.set_exception(UpstreamConnectError("transport closed"))
        self.waiters.clear()
