"""The shared level of the response cache: Redis (one server, a Sentinel-managed master or a Redis Cluster),
reached over the limiter's minimal RESP client.

What it owns: GET with a deadline on the request path, SET off it, and staying out of the way when Redis is
down. Where each command goes is :mod:`relaygate.limits.topology`'s business (one node; the master the
sentinels name, re-asked on every reconnect; or the cluster node owning the key's slot). Invariants:

- A request waits for Redis at most ``timeout`` seconds (a per-call deadline on one pipelined connection per
  node; a late reply discards the connection, as ``limits.resp`` does everywhere). Any failure — refused,
  reset, timed out, an error reply — is a **miss**, never an error for the client.
- After a failure the *node* is down for ``retry_after`` seconds: lookups routed to it skip Redis at once (no
  connect attempt per request), one warning is logged per outage of that node (not per request) and
  ``failures`` counts every skipped or failed call; the first call after the pause reconnects (single
  flight). On a cluster the other primaries keep serving their slots.
- Cluster redirections are not failures: ``MOVED`` repoints the slot and the command is retried once on the
  named node (a full slot-map refresh runs meanwhile), ``ASK`` is retried once with ``ASKING`` on the named
  node; a second redirection is a miss. A ``READONLY`` reply (a master demoted under us) is a failure, so the
  node reconnects — through the sentinels when they manage it.
- Stores never delay a request: :meth:`set` appends to a bounded queue (``max_pending``; overflow dropped and
  counted) that one task writes in pipelined batches of ``SET key value PX ttl``, one pipeline per node.
- Keys are the cache keys as given (``<namespace>:<hash>``, LiteLLM's shape); :meth:`flush` deletes only
  this gateway's namespace with ``SCAN`` + ``UNLINK`` on every primary, never ``FLUSHALL`` on a Redis other
  systems share. Multi-key commands are split by hash slot on a cluster (no ``CROSSSLOT``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from relaygate import events
from relaygate.limits.resp import RedisAddress, RespConnection, RespError, encode
from relaygate.limits.topology import Cluster, Node, Sentinel, Single, Topology, key_slot, redirection

if TYPE_CHECKING:
    from relaygate.config.cache import CacheSettings

log = logging.getLogger("relaygate.cache")
_ASKING = encode(("ASKING",))
_KEYLESS = frozenset({"PING", "INFO", "MODULE", "FT._LIST", "SCAN", "DBSIZE", "ROLE"})
"""Commands whose second word is not a key: any node (a cluster: its first primary) answers them."""
_FAILURES = (OSError, TimeoutError, ConnectionError, RespError)


def namespace_marker(configured: str | None, own: str) -> str:
    """The key marking that requests of the cache configured with namespace ``configured`` stored entries in
    their own namespace ``own`` (``<own>:<sha256>``): what ``/cache/flushall`` reads to delete them too."""
    return f"relaygate:cache:namespaces:{configured or ''}:{own}"


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisCache:
    """One worker's connection to the shared cache (see the module docstring)."""

    def __init__(self, addr: RedisAddress | Topology, *, timeout: float = 0.05, connect_timeout: float = 1.0,
                 retry_after: float = 5.0, max_pending: int = 10_000, batch: int = 256) -> None:
        self.topology = addr if isinstance(addr, Topology) else Single(addr)
        self.cluster = self.topology.cluster
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry_after = retry_after
        self.batch = batch
        self._pending: deque[tuple[str, bytes, int]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.failures = 0
        self.dropped = 0
        self.outages = 0
        self.redirects = 0

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> RedisCache:
        """The Redis level ``settings`` describe: a cluster (``redis_startup_nodes``), a sentinel-managed master
        (``service_name`` + ``sentinel_nodes``) or one server (``url`` / ``host`` / ``port``)."""
        topology: Topology
        tls = settings.redis_tls
        if settings.redis_startup_nodes:
            topology = Cluster(list(settings.redis_startup_nodes), password=settings.redis_password,
                               username=settings.redis_username, tls=tls)
        elif settings.redis_sentinel_nodes and settings.redis_service_name:
            topology = Sentinel(list(settings.redis_sentinel_nodes), settings.redis_service_name,
                                password=settings.redis_password, username=settings.redis_username,
                                db=settings.redis_db, sentinel_password=settings.redis_sentinel_password, tls=tls)
        else:
            addr = RedisAddress.from_settings(settings.redis_url, settings.redis_host, settings.redis_port,
                                              settings.redis_password, tls)
            if not settings.redis_url and (settings.redis_username or settings.redis_db):
                addr = RedisAddress(addr.host, addr.port, addr.password, settings.redis_username, settings.redis_db,
                                    addr.tls)
            topology = Single(addr)
        return cls(topology, timeout=settings.redis_timeout)  # cache_params.socket_timeout, else 50 ms

    def describe(self) -> str:
        """Where the cache is (addresses only, never a password)."""
        return self.topology.describe()

    @property
    def addr(self) -> str:
        return self.describe()

    # -- failures ---------------------------------------------------------------------------------------

    @property
    def _down_until(self) -> float:
        """The pause of the whole level (one server or the sentinels' master; 0 for a cluster, whose nodes
        pause one by one)."""
        return 0.0 if self.cluster else self.topology.node_for(None).down_until  # type: ignore[union-attr]

    @_down_until.setter
    def _down_until(self, value: float) -> None:
        for node in self.topology.primaries():
            node.down_until = value

    @property
    def down(self) -> bool:
        return asyncio.get_running_loop().time() < self._down_until

    quiet = False
    """A connection test's level (``cache.settings_api``): a failure is only counted and kept in
    :attr:`last_failure`, never logged or told as an outage."""
    last_failure = ""

    def _failed(self, node: Node, what: str, exc: BaseException | str) -> None:
        self.failures += 1
        node.drop()
        loop = asyncio.get_running_loop()
        detail = exc if isinstance(exc, str) else f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"
        self.last_failure = f"{what}: {detail}"
        if loop.time() >= node.down_until and not self.quiet:
            self.outages += 1
            where = node.name if self.cluster else self.describe()
            log.warning("response cache: redis %s unavailable (%s: %s); serving without it for %.0f s",
                        where, what, detail, self.retry_after)
            events.outage("redis", f"response cache at {where}: {what}")
        node.down_until = loop.time() + self.retry_after
        self.topology.failed(node)

    async def _node(self, key: str | None) -> Node:
        """The node for ``key``; ``LookupError`` when a cluster's slot map cannot be read."""
        node = self.topology.node_for(key)
        if node is None:
            if not await self.topology.ready(self.connect_timeout):
                self.failures += 1
                raise LookupError("redis cluster: no slot map")
            node = self.topology.node_for(key)
            if node is None:
                self.failures += 1
                raise LookupError("redis cluster: slot not served")
        return node

    async def _conn(self, node: Node) -> RespConnection:
        """``node``'s connection, or ``LookupError`` (paused, or the connect failed: counted, logged)."""
        conn = node.conn
        if conn is not None and not conn.closed:
            return conn
        if node.down_until and asyncio.get_running_loop().time() < node.down_until:
            self.failures += 1
            raise LookupError("redis down")
        try:
            return await node.connection(self.connect_timeout)
        except _FAILURES as exc:
            self._failed(node, "connect", exc)
            raise LookupError("connect") from None

    async def _send(self, node: Node, what: str, wire: bytes, asking: bool = False) -> Any:
        conn = node.conn
        if conn is None or conn.closed:
            conn = await self._conn(node)
        loop = asyncio.get_running_loop()
        try:
            if asking:
                conn.call_raw(_ASKING).add_done_callback(_consume)
            return await conn.request(wire, loop.time() + self.timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._failed(node, what, exc)
            raise LookupError(what) from None

    async def _call(self, what: str, *args: Any) -> Any:
        """One command's reply, routed by its key (``args[1]``); raises ``LookupError`` on any failure
        (already counted and logged)."""
        key = args[1] if len(args) > 1 and what not in _KEYLESS else None
        node = self.topology.node_for(key)
        if node is None:
            node = await self._node(key)
        return await self._on(node, what, encode(args))

    async def _on(self, node: Node, what: str, wire: bytes) -> Any:
        """``wire`` on ``node``, following one cluster redirection."""
        reply = await self._send(node, what, wire)
        if type(reply) is RespError:
            moved = redirection(reply) if self.cluster else None
            if moved is not None:
                self.redirects += 1
                kind, slot, name = moved
                assert isinstance(self.topology, Cluster)
                if kind == "MOVED":
                    node = self.topology.moved(slot, name)
                    reply = await self._send(node, what, wire)
                else:
                    node = self.topology.node_at(name)
                    reply = await self._send(node, what, wire, asking=True)
                if type(reply) is RespError and redirection(reply) is not None:  # redirected twice: a miss
                    self.failures += 1
                    raise LookupError(what)
            if isinstance(reply, RespError):
                self._failed(node, what, str(reply))
                raise LookupError(what)
        return reply

    # -- the request path -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The stored answer, or None (absent, or Redis unavailable: a miss either way)."""
        try:
            reply = await self._call("GET", "GET", key)
        except LookupError:
            return None
        return reply if isinstance(reply, bytes) else None

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The stored answers of ``keys``, in their order (None for each absent one; every one None when
        Redis is unavailable), one ``MGET`` per hash slot."""
        if not keys:
            return []
        groups = self._by_slot(keys)
        replies = await asyncio.gather(*(self._call("MGET", "MGET", *group) for group in groups),
                                       return_exceptions=True)
        got: dict[str, bytes] = {}
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, list):
                got.update((k, v) for k, v in zip(group, reply, strict=False) if isinstance(v, bytes))
            elif isinstance(reply, BaseException) and not isinstance(reply, LookupError):
                raise reply
        return [got.get(k) for k in keys]

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
                n = min(len(pending), self.batch)
                groups: dict[Node, list[tuple[str, bytes, int]]] = {}
                for item in (pending.popleft() for _ in range(n)):
                    try:
                        node = await self._node(item[0])
                    except LookupError:  # no slot map: what waits is dropped (a cache may forget)
                        self.dropped += 1
                        continue
                    groups.setdefault(node, []).append(item)
                await asyncio.gather(*(self._write(node, items) for node, items in groups.items()))

    async def _write(self, node: Node, items: list[tuple[str, bytes, int]]) -> None:
        """One pipeline of SETs on ``node``; redirected ones are sent again where they belong."""
        try:
            conn = await self._conn(node)
        except LookupError:  # down: dropped
            self.dropped += len(items)
            return
        futs = [conn.call("SET", k, v, "PX", ms) for k, v, ms in items]
        try:
            replies = await asyncio.wait_for(asyncio.gather(*futs), self.timeout * 20)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._failed(node, "SET", exc)
            return
        for item, reply in zip(items, replies):
            if type(reply) is RespError:
                if self.cluster and redirection(reply) is not None:
                    try:
                        await self._on(node, "SET", encode(("SET", item[0], item[1], "PX", item[2])))
                    except LookupError:
                        pass
                elif str(reply).startswith("READONLY"):
                    self._failed(node, "SET", str(reply))
                    return

    # -- management (the /cache/* routes) ---------------------------------------------------------------

    async def _primaries(self) -> list[Node]:
        if not await self.topology.ready(self.connect_timeout):
            raise LookupError("redis cluster: no slot map")
        return self.topology.primaries()

    async def ping_nodes(self) -> dict[str, bool]:
        """``PING`` on every primary: ``{"host:port": answered}`` (one entry unless a cluster)."""
        try:
            nodes = await self._primaries()
        except LookupError:
            return {self.describe(): False}

        async def one(node: Node) -> bool:
            try:
                return await self._send(node, "PING", encode(("PING",))) in (b"PONG", "PONG")
            except LookupError:
                return False

        found = await asyncio.gather(*(one(n) for n in nodes))
        return {(n.name if self.cluster else self.describe()): ok for n, ok in zip(nodes, found)}

    async def ping(self) -> bool:
        """Whether every primary answers ``PING``."""
        return all((await self.ping_nodes()).values())

    def _by_slot(self, keys: list[Any]) -> list[list[Any]]:
        if not self.cluster:
            return [keys]
        groups: dict[int, list[Any]] = {}
        for k in keys:
            groups.setdefault(key_slot(k if isinstance(k, bytes) else str(k).encode()), []).append(k)
        return list(groups.values())

    async def _multi(self, command: str, keys: list[Any]) -> int:
        """``command`` (DEL / UNLINK) over ``keys``, one call per hash slot; the number removed."""
        replies = await asyncio.gather(*(self._call(command, command, *group) for group in self._by_slot(keys)),
                                       return_exceptions=True)
        for r in replies:
            if isinstance(r, BaseException):
                raise LookupError(command) from r
        return sum(r for r in replies if isinstance(r, int))

    async def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        return await self._multi("DEL", keys)

    async def flush(self, namespace: str | None) -> int:
        """Delete every key of ``namespace`` (``<namespace>:*``) on every primary; without a namespace, every key
        this cache could have written (64 hex characters), so other data in the same Redis survives. The
        namespaces requests gave of their own (``cache.namespace``), which this cache marked when it stored
        in them (:func:`namespace_marker`), are deleted too, and their marks with them."""
        deleted = await self._scan_unlink(f"{namespace}:*" if namespace else "[0-9a-f]" * 64)
        prefix = namespace_marker(namespace, "")
        marks: list[bytes] = []
        await self._scan_unlink(_glob_escape(prefix) + "*", marks)
        for mark in marks:
            own = mark[len(prefix.encode()):].decode(errors="replace")
            if own:
                deleted += await self._scan_unlink(_glob_escape(own + ":") + "*")
        if marks:
            await self._multi("UNLINK", marks)
        return deleted

    async def _scan_unlink(self, pattern: str, collect: list[bytes] | None = None) -> int:
        """SCAN every primary for ``pattern`` and UNLINK what it finds (``collect``: gather the keys instead)."""
        deleted = 0
        for node in await self._primaries():
            cursor: Any = b"0"
            while True:
                reply = await self._send(node, "SCAN", encode(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)))
                if not isinstance(reply, list) or len(reply) != 2:
                    self._failed(node, "SCAN", str(reply))
                    raise LookupError("SCAN")
                cursor, keys = reply[0], reply[1]
                if keys:
                    if collect is not None:
                        collect.extend(k if isinstance(k, bytes) else str(k).encode() for k in keys)
                    else:
                        deleted += await self._multi("UNLINK", keys)
                if cursor in (b"0", 0):
                    break
        return deleted

    async def info_nodes(self) -> dict[str, dict[str, str]]:
        """``INFO`` of every primary, by ``host:port``; ``LookupError`` when one does not answer."""
        out: dict[str, dict[str, str]] = {}
        for node in await self._primaries():
            reply = await self._on(node, "INFO", encode(("INFO",)))
            text = reply.decode() if isinstance(reply, bytes) else str(reply)
            fields: dict[str, str] = {}
            for line in text.splitlines():
                if ":" in line and not line.startswith("#"):
                    k, _, v = line.partition(":")
                    fields[k] = v
            a = node.addr
            out[f"{a.host}:{a.port}"] = fields
        return out

    async def info(self) -> dict[str, str]:
        """``INFO`` of the server (a cluster: of its first primary; :meth:`info_nodes` has them all)."""
        nodes = await self.info_nodes()
        return next(iter(nodes.values())) if nodes else {}

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except (asyncio.CancelledError, Exception):
                pass
        self.topology.close()


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


__all__ = ["RedisCache"]
