"""Where a Redis command goes: one server, the master a set of Sentinels names, or a Redis Cluster's slot owner.

What it owns: the *addressing* half of talking to Redis, on top of :mod:`relaygate.limits.resp` (one pipelined
connection per server, no redis-py on the request path). A user of this module (the response cache's Redis
level) asks :meth:`Topology.node_for` for the :class:`Node` that serves a key, awaits that node's connection
and sends the command; what a failure means (a miss, a pause, a warning) stays with that user. Three shapes:

- :class:`Single`: one address (``host``/``port`` or ``url``), one node.
- :class:`Sentinel` (LiteLLM's ``service_name`` + ``sentinel_nodes`` + ``sentinel_password``): one node whose
  address is asked of the sentinels, in the order given, first that answers, with ``SENTINEL
  get-master-addr-by-name <service>`` *every time the node connects* — after any failure the node reconnects,
  so a failover (which moves the master, and whose reconfiguration kills the old master's client
  connections) is followed without a restart; while connected, the sentinels are asked again every
  ``watch_every`` seconds (off the request path), because a live old master is demoted only when a sentinel
  next looks at it (~10 s later) and would take writes meanwhile. A connection is used only once ``ROLE``
  says ``master``, so a stale answer from a sentinel that has not seen the failover yet is a failed connect,
  never writes to a replica. Sentinels are authenticated with ``sentinel_password``; the master with
  ``password`` (LiteLLM: ``sentinel_password`` when no ``password`` is given). TLS settings apply to the
  master, not to the sentinels (redis-py's ``master_for`` connection arguments, which LiteLLM passes).
- :class:`Cluster` (LiteLLM's ``redis_startup_nodes``): the slot map is read with ``CLUSTER SLOTS`` from any
  node that answers (the known primaries first, then the startup nodes); a key's slot is CRC16 (XMODEM,
  ``binascii.crc_hqx``, C speed) of the key or of its ``{hash tag}``, mod 16384; one node (one pipelined
  connection) per primary. ``MOVED <slot> <host:port>`` points that slot at the named node at once
  (:meth:`Cluster.moved`) and the caller retries there once while a full refresh runs (single flight);
  ``ASK`` is a one-off redirection (``ASKING`` + the command on the named node, map unchanged). A node that
  fails also asks for a refresh (a replica may have been promoted), at most one per ``refresh_every`` seconds.

TLS (``config.redis_tls``): a topology's settings go to every node it makes (a cluster node met in a
``MOVED`` too). Invariants: nodes are created once per address and reused (their connection survives refreshes); every
connect is bounded by one timeout including AUTH, the sentinel question and the ``ROLE`` check; nothing here
logs per request.
"""

from __future__ import annotations

import asyncio
from binascii import crc_hqx
from typing import Any

from relaygate.config.redis_tls import RedisTls
from relaygate.limits.resp import RedisAddress, RespConnection, RespError, connect, encode

SLOTS = 16384


def key_slot(key: bytes) -> int:
    """Redis Cluster's hash slot of ``key``: CRC16 of the first non-empty ``{...}`` section, else of the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc_hqx(key, 0) & 0x3FFF


def _addr_text(host: Any, port: Any) -> str:
    h = host.decode() if isinstance(host, bytes) else str(host)
    return f"{h}:{int(port)}"


def parse_slots(reply: Any, asked_host: str) -> list[tuple[int, int, str]]:
    """``CLUSTER SLOTS`` -> ``[(first slot, last slot, "host:port" of the primary), ...]``. An empty or ``?``
    host means "the address you asked" (Redis 7 ``cluster-preferred-endpoint-type``). Raises ``ValueError`` on
    a reply of another shape."""
    if not isinstance(reply, list):
        raise ValueError(f"CLUSTER SLOTS: unexpected reply {reply!r}")
    out = []
    for entry in reply:
        if not isinstance(entry, list) or len(entry) < 3 or not isinstance(entry[2], list) or len(entry[2]) < 2:
            raise ValueError(f"CLUSTER SLOTS: unexpected entry {entry!r}")
        host, port = entry[2][0], entry[2][1]
        if host in (b"", b"?", None):
            host = asked_host
        out.append((int(entry[0]), int(entry[1]), _addr_text(host, port)))
    return out


class NodeDown(ConnectionError):
    """A node could not be reached or is not usable (no master known, not a master)."""


class Node:
    """One Redis server: its pipelined connection, made on demand (single flight), and its pause after a
    failure (``down_until``, event-loop time; kept by the user of the node)."""

    __slots__ = ("addr", "name", "conn", "_connecting", "down_until")

    def __init__(self, addr: RedisAddress, name: str | None = None) -> None:
        self.addr = addr
        self.name = name or f"{addr.host}:{addr.port}"
        self.conn: RespConnection | None = None
        self._connecting: asyncio.Future[RespConnection] | None = None
        self.down_until = 0.0

    async def _open(self, timeout: float) -> RespConnection:
        return await connect(self.addr, timeout)

    async def connection(self, timeout: float) -> RespConnection:
        """The open connection, or a new one within ``timeout``; raises ``OSError`` / ``TimeoutError`` /
        ``ConnectionError`` / :class:`RespError` when it cannot be had."""
        conn = self.conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is not None:  # single flight
            return await asyncio.shield(self._connecting)
        fut: asyncio.Future[RespConnection] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._connecting = fut
        try:
            self.conn = conn = await self._open(timeout)
            fut.set_result(conn)
            return conn
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError("connect cancelled"))
            raise
        finally:
            self._connecting = None

    def drop(self) -> None:
        """Discard the connection (the next call reconnects)."""
        if self.conn is not None:
            self.conn.abort()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __repr__(self) -> str:
        return f"{'rediss' if self.addr.tls is not None else 'redis'}://{self.name}/{self.addr.db}"


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class Topology:
    """The base: one node, whatever its address (see the module docstring)."""

    kind = "single"
    cluster = False

    def __init__(self, node: Node) -> None:
        self.node = node

    def node_for(self, key: str | bytes | None) -> Node | None:
        """The node serving ``key`` (any node for None); None only while a cluster has no slot map."""
        return self.node

    def primaries(self) -> list[Node]:
        return [self.node]

    async def ready(self, timeout: float) -> bool:
        """Whether routing can work now (a cluster reads its slot map first)."""
        return True

    def failed(self, node: Node) -> None:
        """``node`` failed: the topology may have changed."""

    def describe(self) -> str:
        return repr(self.node)

    def close(self) -> None:
        for node in self.primaries():
            node.close()


class Single(Topology):
    """One Redis server."""

    def __init__(self, addr: RedisAddress) -> None:
        super().__init__(Node(addr))


class _MasterNode(Node):
    __slots__ = ("sentinels", "service", "sentinel_password", "watch_every", "_watch", "_timeout", "switches",
                 "_retired")

    def __init__(self, sentinels: list[tuple[str, int]], service: str, password: str | None,
                 username: str | None, db: int, sentinel_password: str | None, watch_every: float,
                 tls: RedisTls | None = None) -> None:
        super().__init__(RedisAddress("0.0.0.0", 0, password, username, db, tls), f"sentinel:{service}")
        self.sentinels = sentinels
        self.service = service
        self.sentinel_password = sentinel_password
        self.watch_every = watch_every
        self._watch: asyncio.Task[None] | None = None
        self._timeout = 1.0
        self.switches = 0
        self._retired: list[RespConnection] = []

    async def _open(self, timeout: float) -> RespConnection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._timeout = timeout
        host, port = await self.master(timeout)
        self.addr = self.addr.at(host, port)
        conn = await connect(self.addr, max(deadline - loop.time(), 0.001))
        try:
            role = await conn.request(encode(("ROLE",)), deadline)
            if not isinstance(role, list) or not role or role[0] not in (b"master", "master"):
                raise NodeDown(f"{host}:{port} named by the sentinels for {self.service!r} is not a master "
                               f"(ROLE {role!r})")
        except BaseException:
            conn.abort()
            raise
        if self.watch_every > 0 and (self._watch is None or self._watch.done()):
            self._watch = loop.create_task(self._watch_loop())
        return conn

    async def _watch_loop(self) -> None:
        """Ask the sentinels every ``watch_every`` seconds; when they name another master, the connection is
        retired (new calls reconnect there; replies already owed still arrive): a failover whose old master
        lives on (demoted only ~10 s later, when a sentinel next looks at it) is followed within the period."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.watch_every)
            conn = self.conn
            if conn is None or conn.closed:
                continue
            try:
                host, port = await self.master(self._timeout)
            except (NodeDown, OSError, TimeoutError, ConnectionError):
                continue
            if (host, port) != (self.addr.host, self.addr.port) and self.conn is conn:
                self.conn = None
                self.switches += 1
                self._retired.append(conn)
                loop.call_later(max(self._timeout, 1.0), self._retire, conn)

    def _retire(self, conn: RespConnection) -> None:
        conn.close()
        if conn in self._retired:
            self._retired.remove(conn)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for conn in self._retired:
            conn.close()
        self._retired.clear()
        super().close()

    async def master(self, timeout: float) -> tuple[str, int]:
        """The master's address as the first sentinel that answers names it."""
        errors = []
        loop = asyncio.get_running_loop()
        per = max(timeout / max(len(self.sentinels), 1), 0.05)
        for host, port in self.sentinels:
            conn = None
            try:
                conn = await connect(RedisAddress(host, port, self.sentinel_password), per)
                reply = await conn.request(encode(("SENTINEL", "get-master-addr-by-name", self.service)),
                                           loop.time() + per)
            except (OSError, TimeoutError, ConnectionError, RespError) as exc:
                errors.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
                continue
            finally:
                if conn is not None:
                    conn.close()
            if isinstance(reply, list) and len(reply) == 2 and all(isinstance(v, bytes) for v in reply):
                return reply[0].decode(), int(reply[1])
            errors.append(f"{host}:{port}: knows no master {self.service!r} ({reply!r})")
        raise NodeDown(f"no sentinel named a master for {self.service!r}: " + "; ".join(errors))


class Sentinel(Topology):
    """The master of ``service`` as the sentinels name it (see the module docstring)."""

    kind = "sentinel"

    def __init__(self, sentinels: list[tuple[str, int]], service: str, *, password: str | None = None,
                 username: str | None = None, db: int = 0, sentinel_password: str | None = None,
                 watch_every: float = 1.0, tls: RedisTls | None = None) -> None:
        super().__init__(_MasterNode(sentinels, service, password if password is not None else sentinel_password,
                                     username, db, sentinel_password, watch_every, tls))

    def describe(self) -> str:
        node = self.node
        assert isinstance(node, _MasterNode)
        where = f"{node.addr.host}:{node.addr.port}" if node.addr.port else "not resolved yet"
        return f"sentinel service {node.service!r} (master {where})"

    @property
    def master(self) -> str | None:
        """The master's ``host:port`` the last connect used (None before the first)."""
        a = self.node.addr
        return f"{a.host}:{a.port}" if a.port else None


class Cluster(Topology):
    """A Redis Cluster's primaries and slot map (see the module docstring)."""

    kind = "cluster"
    cluster = True

    def __init__(self, startup: list[tuple[str, int]], *, password: str | None = None, username: str | None = None,
                 refresh_every: float = 1.0, tls: RedisTls | None = None) -> None:
        self.startup = startup
        self.password = password
        self.username = username
        self.tls = tls
        self.refresh_every = refresh_every
        self.nodes: dict[str, Node] = {}
        self.slots: list[Node | None] = [None] * SLOTS
        self._primaries: list[Node] = []
        self._refreshing: asyncio.Task[bool] | None = None
        self._last_refresh = -1e9
        self.refreshes = 0
        self.timeout = 1.0

    def node_at(self, name: str) -> Node:
        """The node for ``host:port`` (made once)."""
        node = self.nodes.get(name)
        if node is None:
            host, _, port = name.rpartition(":")
            node = self.nodes[name] = Node(RedisAddress(host, int(port), self.password, self.username, tls=self.tls))
        return node

    def node_for(self, key: str | bytes | None) -> Node | None:
        if key is None:
            return self._primaries[0] if self._primaries else None
        return self.slots[key_slot(key.encode() if isinstance(key, str) else key)]

    def primaries(self) -> list[Node]:
        return list(self._primaries)

    def apply(self, ranges: list[tuple[int, int, str]]) -> None:
        """Install a slot map (``parse_slots``'s shape)."""
        slots: list[Node | None] = [None] * SLOTS
        primaries: dict[str, Node] = {}
        for first, last, name in ranges:
            node = primaries.get(name) or self.node_at(name)
            primaries[name] = node
            slots[first:last + 1] = [node] * (last - first + 1)
        self.slots = slots
        self._primaries = sorted(primaries.values(), key=lambda n: n.name)

    def moved(self, slot: int, name: str) -> Node:
        """A ``MOVED``: the slot is served by ``name`` from now on; a full refresh is started."""
        node = self.slots[slot] = self.node_at(name)
        if node not in self._primaries:
            self._primaries.append(node)
        self.refresh_soon(force=True)
        return node

    def failed(self, node: Node) -> None:
        self.refresh_soon()

    def refresh_soon(self, force: bool = False) -> None:
        """Start a background refresh unless one runs or one ran under ``refresh_every`` ago (a tenth of it
        when ``force``d by a ``MOVED``: a resharding moving many slots costs a few refreshes, not one each)."""
        if self._refreshing is not None and not self._refreshing.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_refresh < (self.refresh_every / 10 if force else self.refresh_every):
            return
        self._refreshing = loop.create_task(self._refresh(self.timeout))

    async def ready(self, timeout: float) -> bool:
        if self._primaries:
            return True
        self.timeout = timeout
        if self._refreshing is None or self._refreshing.done():
            loop = asyncio.get_running_loop()
            if loop.time() - self._last_refresh < self.refresh_every:
                return False  # the last attempt found nobody: wait before asking again
            self._refreshing = loop.create_task(self._refresh(timeout))
        return await asyncio.shield(self._refreshing)

    async def _refresh(self, timeout: float) -> bool:
        """Read the slot map from the first node that answers, all within ``timeout``; False when none did."""
        loop = asyncio.get_running_loop()
        self._last_refresh = loop.time()
        deadline = loop.time() + timeout
        candidates = [n.name for n in self._primaries] + [f"{h}:{p}" for h, p in self.startup]
        seen = set()
        for name in candidates:
            if name in seen:
                continue
            if loop.time() >= deadline:
                return False
            seen.add(name)
            node = self.node_at(name)
            try:
                conn = await node.connection(deadline - loop.time())
                reply = await conn.request(encode(("CLUSTER", "SLOTS")), deadline)
                if isinstance(reply, RespError):
                    raise reply
                ranges = parse_slots(reply, node.addr.host)
            except (OSError, TimeoutError, ConnectionError, RespError, ValueError):
                node.drop()
                continue
            if ranges:
                self.apply(ranges)
                self.refreshes += 1
                return True
        return False

    def describe(self) -> str:
        names = ", ".join(n.name for n in self._primaries) or "slot map not read yet"
        return f"redis cluster ({names})"

    def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for node in self.nodes.values():
            node.close()


def redirection(err: RespError) -> tuple[str, int, str] | None:
    """``MOVED 3999 127.0.0.1:6381`` / ``ASK ...`` -> ``(kind, slot, "host:port")``; None for other errors."""
    text = str(err)
    if not (text.startswith("MOVED ") or text.startswith("ASK ")):
        return None
    parts = text.split()
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), parts[2]
    except ValueError:
        return None


__all__ = ["SLOTS", "Cluster", "Node", "NodeDown", "Sentinel", "Single", "Topology", "key_slot", "parse_slots",
           "redirection"]
