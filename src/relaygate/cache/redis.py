"""The shared level of the response cache: Redis, reached over the limiter's minimal RESP client.

What it owns: GET with a deadline on the request path, SET off it, and staying out of the way when Redis is
down. Invariants:

- A request waits for Redis at most ``timeout`` seconds (a per-call deadline on one pipelined connection;
  a late reply discards the connection, as ``limits.resp`` does everywhere). Any failure — refused, reset,
  timed out, an error reply — is a **miss**, never an error for the client.
- After a failure the cache is *down* for ``retry_after`` seconds: lookups skip Redis at once (no connect
  attempt per request), one warning is logged per outage (not per request) and ``failures`` counts every
  skipped or failed call; the first call after the pause reconnects (single-flight).
- Stores never delay a request: :meth:`set` appends to a bounded queue (``max_pending``; overflow dropped and
  counted) that one task writes in pipelined batches of ``SET key value PX ttl``.
- Keys are the cache keys as given (``<namespace>:<hash>``, LiteLLM's shape); :meth:`flush` deletes only
  this gateway's namespace with ``SCAN`` + ``UNLINK``, never ``FLUSHALL`` on a Redis other systems share.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from relaygate import events
from relaygate.limits.resp import RedisAddress, RespConnection, RespError, connect, encode

log = logging.getLogger("relaygate.cache")


class RedisCache:
    """One worker's connection to the shared cache (see the module docstring)."""

    def __init__(self, addr: RedisAddress, *, timeout: float = 0.05, connect_timeout: float = 1.0,
                 retry_after: float = 5.0, max_pending: int = 10_000, batch: int = 256) -> None:
        self.addr = addr
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry_after = retry_after
        self.batch = batch
        self._conn: RespConnection | None = None
        self._connecting: asyncio.Future[RespConnection | None] | None = None
        self._down_until = 0.0
        self._pending: deque[tuple[str, bytes, int]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.failures = 0
        self.dropped = 0
        self.outages = 0

    # -- connection -----------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return asyncio.get_running_loop().time() < self._down_until

    def _failed(self, what: str, exc: BaseException | str) -> None:
        self.failures += 1
        if self._conn is not None:
            self._conn.abort()
            self._conn = None
        loop = asyncio.get_running_loop()
        if loop.time() >= self._down_until:
            self.outages += 1
            log.warning("response cache: redis %r unavailable (%s: %s); serving without it for %.0f s",
                        self.addr, what, exc if isinstance(exc, str) else type(exc).__name__, self.retry_after)
            events.outage("redis", f"response cache at {self.addr!r}: {what}")
        self._down_until = loop.time() + self.retry_after

    async def _connection(self) -> RespConnection | None:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self.down:
            return None
        if self._connecting is not None:  # single flight
            return await asyncio.shield(self._connecting)
        fut: asyncio.Future[RespConnection | None] = asyncio.get_running_loop().create_future()
        self._connecting = fut
        try:
            self._conn = await connect(self.addr, self.connect_timeout)
            fut.set_result(self._conn)
            return self._conn
        except (OSError, TimeoutError, RespError, ConnectionError) as exc:
            self._failed("connect", exc)
            fut.set_result(None)
            return None
        finally:
            self._connecting = None

    async def _call(self, what: str, *args: Any) -> Any:
        """One command's reply; raises ``LookupError`` on any failure (already counted and logged)."""
        conn = await self._connection()
        if conn is None:
            self.failures += 1
            raise LookupError("redis down")
        loop = asyncio.get_running_loop()
        try:
            reply = await conn.request(encode(args), loop.time() + self.timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._failed(what, exc)
            raise LookupError(what) from None
        if isinstance(reply, RespError):
            self._failed(what, str(reply))
            raise LookupError(what)
        return reply

    # -- the request path -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The stored answer, or None (absent, or Redis unavailable: a miss either way)."""
        if self._down_until and self.down:
            self.failures += 1
            return None
        try:
            reply = await self._call("GET", "GET", key)
        except LookupError:
            return None
        return reply if isinstance(reply, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Queue a store (never awaits); the writer task sends it."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((key, value, max(1, int(ttl * 1000))))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        pending = self._pending
        while True:
            await self._wake.wait()
            self._wake.clear()
            while pending:
                conn = await self._connection()
                if conn is None:  # down: what waits is dropped (a cache may forget)
                    self.dropped += len(pending)
                    pending.clear()
                    break
                n = min(len(pending), self.batch)
                futs = [conn.call("SET", k, v, "PX", ms) for k, v, ms in (pending.popleft() for _ in range(n))]
                try:
                    await asyncio.wait_for(asyncio.gather(*futs), self.timeout * 20)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    self._failed("SET", exc)

    # -- management (the /cache/* routes) ---------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return await self._call("PING", "PING") in (b"PONG", "PONG")
        except LookupError:
            return False

    async def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        reply = await self._call("DEL", "DEL", *keys)
        return int(reply) if isinstance(reply, int) else 0

    async def flush(self, namespace: str | None) -> int:
        """Delete every key of ``namespace`` (``<namespace>:*``); without a namespace, every key this cache
        could have written (64 hex characters), so other data in the same Redis survives."""
        pattern = f"{namespace}:*" if namespace else "[0-9a-f]" * 64
        cursor, deleted = b"0", 0
        while True:
            reply = await self._call("SCAN", "SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            cursor, keys = reply[0], reply[1]
            if keys:
                r = await self._call("UNLINK", "UNLINK", *keys)
                deleted += int(r) if isinstance(r, int) else 0
            if cursor in (b"0", 0):
                return deleted

    async def info(self) -> dict[str, str]:
        reply = await self._call("INFO", "INFO")
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        out: dict[str, str] = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except (asyncio.CancelledError, Exception):
                pass
        if self._conn is not None:
            self._conn.close()
            self._conn = None


__all__ = ["RedisCache"]
