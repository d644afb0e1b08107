"""A minimal Redis client for the limiter: RESP2 over one ``asyncio.Protocol`` connection.

Why not redis-py: without hiredis its asyncio client spends tens of microseconds of Python per command,
which at 8,000 requests/s per core is a large share of the budget. The limiter needs four commands
(EVALSHA, EVAL, PING, AUTH/SELECT), pipelined in order on one connection, so this is a small
encoder, a reply parser and a FIFO of futures. Replies are ``int``, ``bytes``, ``None``, ``list`` or a
:class:`RespError` instance (error replies are values, not exceptions, so a pipelined batch keeps going).

Deadlines: :meth:`RespConnection.request` waits for a reply until a deadline (event-loop time). A reply
that did not come in time, or a wait that was cancelled, *discards the connection* (aborted at once, every
other pending command fails with ``ConnectionError``): its FIFO still owes that reply, every later command
would wait behind it, and a connection is never reused once a reply has been given up on. :func:`connect`
bounds the TCP connect, the TLS handshake (``rediss://``, ``ssl: true``: ``config.redis_tls``), AUTH and
SELECT together by one timeout (a server hung by SIGSTOP still completes TCP handshakes from its listen
backlog).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

from relaygate import service_metrics as services
from relaygate.config.redis_tls import RedisTls, tls_for_url


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete(Exception):
    pass


def encode(args: tuple[Any, ...] | list[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, int):
            b = b"%d" % a
        else:
            b = repr(float(a)).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos`` -> (value, next position); raises ``_Incomplete``."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1:end])
    pos = end + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 36:  # '$'
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return bytes(buf[pos:pos + n]), pos + n + 2
    if kind == 42:  # '*'
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            v, pos = parse(buf, pos)
            items.append(v)
        return items, pos
    if kind == 43:  # '+'
        return line, pos
    if kind == 45:  # '-'
        return RespError(line.decode("utf-8", "replace")), pos
    raise RespError(f"protocol error: unexpected byte {kind!r}")


_COMMANDS = frozenset({"connect", "evalsha", "eval", "get", "set", "del", "unlink", "mget", "hgetall", "hset", "hdel",
                       "expire", "pexpire", "ping", "auth", "select", "hello", "cluster", "asking", "module",
                       "ft.create", "ft.search", "ft._list", "ft.info", "scan", "incrbyfloat", "sentinel",
                       "client", "info", "publish", "subscribe"})


_ANSWERED = ("NOSCRIPT", "MOVED", "ASK")
"""Error replies that are the protocol's normal course (a script not cached yet, a cluster's redirection):
answered calls, not failures."""


def command_name(wire: bytes) -> str:
    """The command of one RESP-encoded request, lower case, for a failure's ``function_name`` label: one of
    relaygate's own commands, else ``other`` (never more text from the wire)."""
    try:
        if wire[:1] != b"*":
            return "other"
        i = wire.index(b"\r\n") + 2
        j = wire.index(b"\r\n", i)
        if wire[i:i + 1] != b"$":
            return "other"
        n = int(wire[i + 1:j])
    except ValueError:
        return "other"
    name = wire[j + 2:j + 2 + min(n, 32)].decode("ascii", "replace").lower() if n <= 32 else ""
    return name if name in _COMMANDS else "other"


class RespConnection(asyncio.Protocol):
    """One connection; :meth:`call` writes a command and returns a future for its reply (FIFO)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf.extend(data)
        pos = 0
        while pos < len(buf) and self.waiters:
            try:
                value, pos2 = parse(buf, pos)
            except _Incomplete:
                break
            pos = pos2
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(value)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        err = ConnectionError(f"redis connection lost: {exc}" if exc else "redis connection closed")
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(err)

    def call(self, *args: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            fut.set_exception(ConnectionError("redis connection closed"))
            return fut
        self.waiters.append(fut)
        self.transport.write(encode(args))
        return fut

    def call_raw(self, wire: bytes) -> asyncio.Future[Any]:
        """Like :meth:`call` for a command already RESP-encoded by the caller."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            fut.set_exception(ConnectionError("redis connection closed"))
            return fut
        self.waiters.append(fut)
        self.transport.write(wire)
        return fut

    async def request(self, wire: bytes, deadline: float) -> Any:
        """Send ``wire`` (one RESP-encoded command) and return its reply; ``TimeoutError`` when the reply has
        not arrived at loop time ``deadline``. A timeout or a cancellation discards the connection. Timed as a
        ``redis`` call when LiteLLM's service families are on (``relaygate.service_metrics``; an error reply
        other than :data:`_ANSWERED` counts as a failed call)."""
        svc = services.active
        if svc is None:
            return await self._request(wire, deadline)
        t0 = time.perf_counter()
        try:
            reply = await self._request(wire, deadline)
        except Exception as exc:
            svc.failed("redis", exc, command_name(wire))
            raise
        if type(reply) is RespError and not str(reply).startswith(_ANSWERED):
            svc.failed("redis", "ResponseError", command_name(wire))
        else:
            svc.ok("redis", time.perf_counter() - t0)
        return reply

    async def _request(self, wire: bytes, deadline: float) -> Any:
        fut = self.call_raw(wire)
        handle = asyncio.get_running_loop().call_at(deadline, self._expire, fut)
        try:
            return await fut
        except BaseException:  # timed out, cancelled (even with the reply in), or lost: never reused
            self.abort()
            raise
        finally:
            handle.cancel()

    def _expire(self, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            fut.set_exception(TimeoutError("redis call timed out"))
            self.abort()

    def abort(self) -> None:
        """Discard the connection now (no flush of unsent bytes); every pending command fails."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        if self.waiters:
            err = ConnectionError("redis connection discarded")
            while self.waiters:
                fut = self.waiters.popleft()
                if not fut.done():
                    fut.set_exception(err)

    def close(self) -> None:
        """Close the connection. Over TLS it is dropped at once (``abort``): a TLS close waits for the peer's
        close_notify on the event loop, and a loop that stops first (a worker's shutdown) leaves the socket
        open behind it; Redis needs no close_notify."""
        t = self.transport
        if t is not None and not self.closed:
            if t.get_extra_info("sslcontext") is not None:
                t.abort()
            else:
                t.close()
        self.closed = True


class RedisAddress:
    __slots__ = ("host", "port", "password", "username", "db", "tls")

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, password: str | None = None,
                 username: str | None = None, db: int = 0, tls: RedisTls | None = None) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.username = username
        self.db = db
        self.tls = tls
        """TLS settings (``config.redis_tls``); None: plaintext."""

    @classmethod
    def from_settings(cls, url: str | None, host: str | None, port: int | None,
                      password: str | None, tls: RedisTls | None = None) -> RedisAddress:
        """The server a URL (``redis://`` or ``rediss://``, with redis-py's TLS query options) or a host
        names; ``tls``: TLS asked for elsewhere (``ssl: true``, ``REDIS_SSL``), which a URL's own options
        refine (``config.redis_tls.tls_for_url``)."""
        if url:
            u = urlsplit(url)
            if u.scheme not in ("redis", "rediss", ""):
                raise ValueError(f"unsupported redis url scheme {u.scheme!r} (redis:// or rediss://)")
            db = int(u.path.lstrip("/") or 0) if u.path not in ("", "/") else 0
            return cls(u.hostname or "127.0.0.1", u.port or 6379,
                       unquote(u.password) if u.password else password,
                       unquote(u.username) if u.username else None, db, tls_for_url(url, tls, "redis url"))
        return cls(host or "127.0.0.1", int(port or 6379), password, tls=tls)

    def at(self, host: str, port: int) -> RedisAddress:
        """The same credentials, database and TLS at another server (a cluster node, a sentinels' master)."""
        return RedisAddress(host, port, self.password, self.username, self.db, self.tls)

    def __repr__(self) -> str:  # never the password
        return f"{'rediss' if self.tls is not None else 'redis'}://{self.host}:{self.port}/{self.db}"


@functools.lru_cache(maxsize=16)
def ssl_context(tls: RedisTls) -> ssl.SSLContext:
    """The client context for ``tls`` (made once per settings: loading CAs costs milliseconds)."""
    ctx = ssl.create_default_context(cafile=tls.ca_certs)
    if tls.certfile:
        ctx.load_cert_chain(tls.certfile, tls.keyfile)
    ctx.check_hostname = tls.check_hostname and tls.cert_reqs != "none"
    ctx.verify_mode = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL,
                       "none": ssl.CERT_NONE}[tls.cert_reqs]
    return ctx


async def connect(addr: RedisAddress, timeout: float) -> RespConnection:
    """A ready connection (authenticated, database selected) within ``timeout`` seconds in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tls = addr.tls
    if tls is None:
        opening = loop.create_connection(RespConnection, addr.host, addr.port)
    else:  # the handshake is inside the same timeout, and gives up first: asyncio then drops the socket,
        # where a cancellation mid-handshake would start a TLS close the loop may never finish
        opening = loop.create_connection(RespConnection, addr.host, addr.port, ssl=ssl_context(tls),
                                         server_hostname=addr.host, ssl_handshake_timeout=max(timeout * 0.8, 0.001))
    try:
        _, conn = await asyncio.wait_for(opening, timeout)
    except Exception as exc:  # refused, unreachable, timed out: a failed Redis call (observe: prometheus_system)
        svc = services.active
        if svc is not None:
            svc.failed("redis", exc, "connect")
        raise
    try:
        if addr.password:
            args = ("AUTH", addr.username, addr.password) if addr.username else ("AUTH", addr.password)
            r = await conn.request(encode(args), deadline)
            if isinstance(r, RespError):
                raise r
        if addr.db:
            r = await conn.request(encode(("SELECT", addr.db)), deadline)
            if isinstance(r, RespError):
                raise r
    except BaseException:
        conn.abort()
        raise
    return conn
