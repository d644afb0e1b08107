"""The Redis limiter: shared limits for every worker and instance, spent locally from leases.

Design (and why):
- Leasing, not a round trip per request. Each worker takes a lease of units from a shared bucket in one
  Lua call and spends it with pure arithmetic (:class:`relaygate.core.ratelimit.LeaseBook`, whose module
  essay states the invariants and the tolerance). A lease is sized to last ``REFILL_PERIOD`` at the
  worker's observed rate, capped at ``LEASE_SHARE`` of the limit; when half of it is spent the next one is
  fetched in the background while requests keep being admitted from the remainder. A request that does
  not fit in the local leases waits for the next call, which fetches for all of its buckets at once.
- One Lua script (:data:`SCRIPT`) per call, at most one call in flight per worker (requests and leases
  due meanwhile go together in the next one). Per bucket it refills the shared level, drops expired
  worker records, applies this worker's report (units spent since its last call, units returned), grants
  what was asked and answers ``own,level,sum_of_records``. Cooldowns shared between workers ride along.
  The script reads the clock with Redis ``TIME``, so workers' clocks never matter.
- Storage: one hash per bucket under the bucket's key (field ``=``: ``level:ts_ms``; field per worker id:
  ``units:expires_ms``). A worker record lives ``lease_ttl`` seconds unless renewed (every active lease is
  reported at least every ``SYNC_INTERVAL``), so a crashed worker's units and parallel slots come back
  after the TTL however busy the others are. All keys share the hash tag ``{relaygate}`` (one Redis
  Cluster slot per call).
- Where Redis is (``limits.topology``): one server, the master the sentinels name (reconnects ask them
  again; the sentinel watch retires a connection to a demoted master), or the Redis Cluster node owning the
  ``{relaygate}`` slot (a ``MOVED`` repoints it and the call is retried there once; an ``ASK`` is followed
  once with ``ASKING``). The connection is the topology node's, so the single-server path is what it was.
- Headers: ``remaining`` is an estimate: the shared level as last seen (refilled since, up to its cap)
  plus this worker's own lease; leases held by other workers count as spent.
- Failure: a call that errors or takes longer than ``redis_timeout`` marks Redis down. With
  ``on_redis_failure: local`` (default) requests are then answered by in-process buckets (exact per
  worker, so N workers admit up to N times a limit while Redis is away), a warning is logged once per
  outage and ``redis_limiter_down`` is counted in the worker's metrics; with ``reject`` they get 503. A
  background probe reconnects with exponential backoff (0.2 s .. ``PROBE_MAX``), not per request; on
  success the leases start afresh (units leased before the outage expire with their records).
- The timeout bounds every request, not only every call. A call (connect, AUTH, SELECT, EVALSHA and a
  NOSCRIPT retry together) has one deadline; a connection whose reply was given up on is discarded, never
  reused (``resp.RespConnection.request``), so a late reply can never be read as the answer to a later
  call. A request that waits for a call (issued it, joined a batch, or queued behind one in flight) has its
  own deadline of ``redis_timeout`` from its arrival: past it, it is answered as during an outage
  (in-process limits, or 503; counted as ``redis_limiter_request_timeout``). Going down answers every
  waiting request at once. Only requests that miss the local lease wait, so only they pay for the
  deadline (one timer, ~1 us); a request admitted from its lease never touches Redis or a timer.
- A request that is no longer waiting (answered by its deadline, or cancelled because its client went
  away) is never charged to a lease: its units and parallel slots stay available, so nothing abandoned
  during an outage is taken from the limit after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from typing import Any, Sequence

from relaygate import events
from relaygate.core.errors import GatewayError
from relaygate.core.ratelimit import PREFIX, Bucket, LeaseBook, LeaseOp, Verdict
from relaygate.limits import CooldownSink, Limiter
from relaygate.limits.resp import RedisAddress, RespConnection, RespError, encode
from relaygate.limits.topology import Cluster, Node, Single, Topology, redirection

log = logging.getLogger("relaygate.limits")

COOLDOWN_KEY = PREFIX + "cooldowns"
_TAG = b"{relaygate}"
"""The hash tag of every limiter key: the one cluster slot the limiter's calls go to."""
_ASKING = encode(("ASKING",))
LEASE_TTL = 10.0
"""Seconds a worker's record (units or slots it holds) lives in Redis without being renewed."""
SYNC_INTERVAL = 0.5
"""Seconds between calls that report every lease and fetch cooldowns, when nothing else needed Redis."""
PROBE_MAX = 1.0
"""Longest wait between two reconnect attempts while Redis is down (from 0.2 s, doubling): with
``on_redis_failure: reject`` it is how long a worker may still refuse after Redis is back."""

# KEYS: bucket keys..., cooldown zset (last)
# ARGV: wid, ttl_ms, nops, (keyidx kind cap rate_ms spent ret want)*nops, ncool, (dep_id seconds)*ncool
# returns {"own,level,records;own,level,records;...", dep_id, ms, dep_id, ms, ...}
SCRIPT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wid = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
local i = 4
for n = 1, tonumber(ARGV[3]) do
  local key = KEYS[tonumber(ARGV[i])]
  local kind = ARGV[i + 1]
  local cap = tonumber(ARGV[i + 2]); local rate = tonumber(ARGV[i + 3])
  local spent = tonumber(ARGV[i + 4]); local ret = tonumber(ARGV[i + 5]); local want = tonumber(ARGV[i + 6])
  i = i + 7
  local h = redis.call('HGETALL', key)
  local tok = cap; local ts = now; local own = 0; local others = 0; local dead = {}
  for j = 1, #h, 2 do
    local f = h[j]; local v = h[j + 1]
    local sep = string.find(v, ':', 1, true)
    local a = tonumber(string.sub(v, 1, sep - 1)); local b = tonumber(string.sub(v, sep + 1))
    if f == '=' then tok = a; ts = b
    elseif b <= now then dead[#dead + 1] = f
    elseif f == wid then own = a
    else others = others + a end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  if kind == 't' then
    local top = cap - others - own
    if tok < top and now > ts then
      tok = tok + (now - ts) * rate
      if tok > top then tok = top end
    end
    own = own - spent - ret
    tok = tok + ret
    if own < 0 then tok = tok + own; own = 0 end
    top = cap - others - own
    if tok > top then tok = top end
    if tok < -cap then tok = -cap end
    if want > 0 and tok > 0 then
      local g = want
      if g > tok then g = tok end
      tok = tok - g; own = own + g
    end
    redis.call('HSET', key, '=', string.format('%.17g', tok) .. ':' .. now)
    local life = ttl
    if rate > 0 and tok < cap then life = life + math.ceil((cap - tok) / rate) end
    redis.call('PEXPIRE', key, life + 1000)
    out[n] = string.format('%.17g,%.17g,%.17g', own, tok, others + own)
  else
    if want < own then own = want
    elseif want > own then
      local free = cap - others - own
      if free > 0 then
        if want - own < free then own = want else own = own + free end
      end
    end
    out[n] = string.format('%d,%d,%d', own, cap - others - own, others + own)
  end
  if own > 0 then
    redis.call('HSET', key, wid, string.format('%.17g', own) .. ':' .. (now + ttl))
    if kind ~= 't' then redis.call('PEXPIRE', key, ttl + 1000) end
  elseif own == 0 and #h > 0 then
    redis.call('HDEL', key, wid)
  end
end
local ckey = KEYS[#KEYS]
local ncool = tonumber(ARGV[i]); i = i + 1
for c = 1, ncool do
  redis.call('ZADD', ckey, 'GT', now + math.floor(tonumber(ARGV[i + 1]) * 1000), ARGV[i])
  i = i + 2
end
redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
local reply = {table.concat(out, ';')}
local cz = redis.call('ZRANGE', ckey, 0, -1, 'WITHSCORES')
for c = 1, #cz, 2 do
  reply[#reply + 1] = cz[c]
  reply[#reply + 1] = string.format('%d', tonumber(cz[c + 1]) - now)
end
if #cz > 0 then redis.call('PEXPIRE', ckey, 3600000) end
return reply
"""

SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


_INTS = [_bulk(b"%d" % i) for i in range(1024)]


def _bulk_int(i: int) -> bytes:
    return _INTS[i] if 0 <= i < 1024 else _bulk(b"%d" % i)


def _bulk_num(x: float) -> bytes:
    i = int(x)
    return _bulk_int(i) if i == x else _bulk(repr(float(x)).encode())


def _static(b: Bucket) -> bytes:
    """kind, capacity, rate per ms of a bucket, RESP-encoded once (cached on the bucket)."""
    w = b.wire
    if not w:
        w = b.wire = _bulk(b.kind.encode()) + _bulk_num(b.capacity) + _bulk(repr(b.rate / 1000.0).encode())
    return w


class _Pending:
    __slots__ = ("buckets", "costs", "future", "tries")

    def __init__(self, buckets: Sequence[Bucket], costs: Sequence[float], future: asyncio.Future[Verdict]) -> None:
        self.buckets = buckets
        self.costs = costs
        self.future = future
        self.tries = 0


class RedisDown(GatewayError):
    """``on_redis_failure: reject`` while Redis is unreachable (no fallback group could do better)."""

    status = 503
    type = "service_unavailable"
    final = True


class RedisLimiter(Limiter):
    shared = True

    def __init__(self, addr: RedisAddress | Topology, *, timeout: float = 0.5, on_failure: str = "local",
                 metrics: Any = None, lease_ttl: float = LEASE_TTL) -> None:
        super().__init__()
        self.topology = addr if isinstance(addr, Topology) else Single(addr)
        self.addr = addr
        self.timeout = timeout
        self.reject = on_failure == "reject"
        self.metrics = metrics
        self.lease_ttl = lease_ttl
        self.wid = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        """This worker's record name in every bucket hash."""
        self._head = _bulk(self.wid.encode()) + _bulk_int(int(lease_ttl * 1000))
        self.book = LeaseBook()
        self.conn: RespConnection | None = None
        self.node: Node | None = None
        """The topology node ``conn`` belongs to."""
        self.down = False
        self.pending: list[_Pending] = []
        self.cooldowns: list[tuple[str, float]] = []
        self._syncs: list[asyncio.Future[None]] = []
        self._sink: CooldownSink | None = None
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_sweep = 0.0
        self.calls = 0
        self.batched = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._ensure_pump()

    def _ensure_pump(self) -> asyncio.Event:
        wake = self._wake
        task = self._pump_task
        if wake is None or task is None or task.done():
            wake = self._wake = asyncio.Event()
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        return wake

    async def aclose(self) -> None:
        """Stop the pump, give every lease back (one call, best effort), close the connection."""
        self._closed = True
        for task in (self._pump_task, self._probe_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        for p in self.pending:
            if not p.future.done():
                p.future.set_result(self._local(p))
        self.pending.clear()
        if not self.down and self.book.leases:
            ops = self.book.release_all()
            try:
                await self._call(ops, [])
            except (OSError, TimeoutError, RespError, ValueError):
                pass
        self.book.clear()
        if self.conn is not None:
            self.conn.close()
        self.topology.close()
        for f in self._syncs:
            if not f.done():
                f.set_result(None)

    # -- interface ------------------------------------------------------------------------------

    async def acquire(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        if self.down:
            if self.reject:
                raise RedisDown("Rate limiter unavailable: Redis is not reachable")
            v = self.buckets.acquire(buckets, costs, self.clock())
            v.degraded = True
            return v
        book = self.book
        verdict = book.acquire(buckets, costs, self.clock())
        if verdict is not None:
            if book.due:
                self._ensure_pump().set()
            return verdict
        wake = self._ensure_pump()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Verdict] = loop.create_future()
        p = _Pending(buckets, costs, fut)
        self.pending.append(p)
        wake.set()
        deadline = loop.call_later(self.timeout, self._give_up, p)
        try:
            return await fut
        finally:
            deadline.cancel()

    def adjust(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        if self.down:
            self.buckets.adjust(buckets, deltas, self.clock())
            return
        book = self.book
        book.adjust(buckets, deltas, self.clock())
        if book.due and self._wake is not None:
            self._wake.set()

    async def sync(self) -> None:
        """Report every lease and fetch cooldowns now; returns after that call (tests, shutdown paths)."""
        if self.down or self._closed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs.append(fut)
        self._last_sweep = 0.0
        self._ensure_pump().set()
        await fut

    def share_cooldown(self, dep_id: str, seconds: float) -> None:
        if not self.down:
            self.cooldowns.append((dep_id, seconds))
            if self._wake is not None:
                self._wake.set()

    def on_cooldowns(self, sink: CooldownSink) -> None:
        self._sink = sink

    # -- the pump -------------------------------------------------------------------------------

    def _local(self, p: _Pending) -> Verdict:
        v = self.buckets.acquire(p.buckets, p.costs, self.clock())
        v.degraded = True
        return v

    def _fail(self, p: _Pending) -> None:
        """Answer ``p`` as during an outage: in-process limits, or 503 with ``reject``."""
        if p.future.done():
            return
        if self.reject:
            p.future.set_exception(RedisDown("Rate limiter unavailable: Redis is not reachable"))
        else:
            p.future.set_result(self._local(p))

    def _give_up(self, p: _Pending) -> None:
        """``p`` waited ``redis_timeout`` for Redis: it is answered now; a late reply never charges it."""
        if not p.future.done():
            if self.metrics is not None:
                self.metrics.count("redis_limiter_request_timeout")
            self._fail(p)

    def _idle(self) -> bool:
        return not (self.pending or self.book.due or self.book.returns or self.cooldowns or self._syncs)

    async def _pump(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        book = self.book
        while not self._closed:
            if self._idle():
                wake.clear()
                tick = loop.call_later(SYNC_INTERVAL, wake.set)
                await wake.wait()
                tick.cancel()
            if self.down:  # the probe wakes the pump when Redis is back
                wake.clear()
                await wake.wait()
                continue
            now = self.clock()
            sweep = now - self._last_sweep >= SYNC_INTERVAL
            if sweep:
                self._last_sweep = now
            batch, self.pending = self.pending, []
            syncs, self._syncs = self._syncs, []
            ops = book.ops(now, sweep)
            cools, self.cooldowns = self.cooldowns, []
            if not (ops or cools or batch or sweep):
                continue
            try:
                reply = await self._call(ops, cools)
                self._deliver(ops, batch, reply)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(self._local(p))
                raise
            except (OSError, TimeoutError, RespError, ValueError, IndexError) as exc:
                self._went_down(exc)
                for p in batch:
                    self._fail(p)
            _done(syncs)

    async def _call(self, ops: list[LeaseOp], cools: list[tuple[str, float]]) -> Any:
        # RESP is written directly: each bucket's static part (kind, capacity, rate) is encoded once
        keys: dict[str, int] = {}
        parts: list[bytes] = [self._head, _bulk_int(len(ops))]
        for op in ops:
            b = op.h.bucket
            idx = keys.setdefault(b.key, len(keys) + 1)
            parts += (_bulk_int(idx), _static(b), _bulk_num(op.spent), _bulk_num(op.ret), _bulk_num(op.want))
        parts.append(_bulk_int(len(cools)))
        for dep_id, seconds in cools:
            parts += (_bulk(dep_id.encode()), _bulk_num(seconds))
        klist = list(keys)
        klist.append(COOLDOWN_KEY)
        nargs = 4 + 7 * len(ops) + 2 * len(cools)
        head = encode(("EVALSHA", SHA, len(klist), *klist))
        body = b"".join(parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = self.conn
        if conn is None or conn.closed:
            conn = self.conn = await self._connect(deadline)
        self.calls += 1
        count = 3 + len(klist) + nargs
        wire = b"*%d\r\n" % count + head[head.index(b"\r\n") + 2:] + body
        reply = await conn.request(wire, deadline)
        if type(reply) is RespError and self.topology.cluster:
            conn, reply = await self._redirected(reply, conn, wire, deadline)
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            head = encode(("EVAL", SCRIPT, len(klist), *klist))
            wire = b"*%d\r\n" % count + head[head.index(b"\r\n") + 2:] + body
            reply = await conn.request(wire, deadline)
        if isinstance(reply, RespError):
            raise reply
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], bytes):
            raise ValueError(f"unexpected limiter reply {reply!r:.80}")
        return reply

    async def _node(self, deadline: float) -> Node:
        """The node the limiter's slot lives on (a cluster reads its slot map first)."""
        topo = self.topology
        node = topo.node_for(_TAG)
        if node is None:
            await topo.ready(max(deadline - asyncio.get_running_loop().time(), 0.001))
            node = topo.node_for(_TAG)
            if node is None:
                raise ConnectionError("redis cluster: no node serves the limiter's slot")
        return node

    async def _connect(self, deadline: float) -> RespConnection:
        node = self.node = await self._node(deadline)
        return await node.connection(max(deadline - asyncio.get_running_loop().time(), 0.001))

    async def _redirected(self, err: RespError, conn: RespConnection, wire: bytes,
                          deadline: float) -> tuple[RespConnection, Any]:
        """A cluster's ``MOVED`` (the slot repointed, the call sent there and kept there) or ``ASK`` (sent
        once to the named node after ``ASKING``); any other error reply is given back as it is."""
        moved = redirection(err)
        if moved is None:
            return conn, err
        kind, slot, name = moved
        topo = self.topology
        assert isinstance(topo, Cluster)
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
        if kind == "MOVED":
            node = self.node = topo.moved(slot, name)
            conn = self.conn = await node.connection(remaining)
            return conn, await conn.request(wire, deadline)
        other = await topo.node_at(name).connection(remaining)
        other.call_raw(_ASKING).add_done_callback(_consume)
        return conn, await other.request(wire, deadline)

    def _deliver(self, ops: list[LeaseOp], batch: list[_Pending], reply: list[Any]) -> None:
        now = self.clock()
        book = self.book
        if ops:
            for op, row in zip(ops, reply[0].split(b";")):
                own, g, o = row.split(b",")
                book.applied(op, float(own), float(g), float(o), now)
        if len(reply) > 1 and self._sink is not None:
            self._sink([(reply[j].decode("utf-8", "replace"), int(reply[j + 1]) / 1000.0)
                        for j in range(1, len(reply) - 1, 2)])
        again = False
        for p in batch:
            if p.future.done():  # answered by its deadline, or its client went away: never charged
                continue
            self.batched += 1
            v = book.decide(p.buckets, p.costs, now)
            if v.fail >= 0 and p.tries == 0:
                h = book.leases.get(p.buckets[v.fail].key)
                # units left in the shared bucket but taken from this worker's lease during the call
                if h is not None and h.level(now) >= 1.0 and book.acquire(p.buckets, p.costs, now) is None:
                    p.tries = 1
                    self.pending.append(p)
                    again = True
                    continue
            if not p.future.done():
                p.future.set_result(v)
        if (again or book.due) and self._wake is not None:
            self._wake.set()

    # -- outage ---------------------------------------------------------------------------------

    def _where(self) -> str:
        return repr(self.addr) if isinstance(self.addr, RedisAddress) else self.topology.describe()

    def _went_down(self, exc: BaseException) -> None:
        if self.conn is not None:
            self.conn.abort()
            self.conn = None
        node = self.node
        if node is not None:
            node.drop()
            self.topology.failed(node)
        self.book.clear()
        if self.down:
            return
        self.down = True
        self.buckets.clear()
        waiting, self.pending = self.pending, []
        for p in waiting:  # queued behind the failed call: answered now, not when Redis is back
            self._fail(p)
        syncs, self._syncs = self._syncs, []
        _done(syncs)
        mode = "rejecting requests (503)" if self.reject else "using in-process limits"
        log.warning("redis limiter at %s unavailable (%s: %s): %s until it is back", self._where(),
                    type(exc).__name__, exc, mode)
        if self.metrics is not None:
            self.metrics.count("redis_limiter_down")
        events.outage("redis", f"limiter at {self._where()}: {type(exc).__name__}: {exc}; {mode}")
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        delay = 0.2
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(delay)
            conn: RespConnection | None = None
            try:
                deadline = loop.time() + self.timeout
                node = self.node = await self._node(deadline)
                node.drop()
                conn = await node.connection(self.timeout)
                pong = await conn.request(encode(("PING",)), deadline)
                if isinstance(pong, RespError):
                    raise pong
            except (OSError, TimeoutError, RespError):
                if conn is not None:
                    conn.abort()
                delay = min(delay * 2.0, PROBE_MAX)
                continue
            except BaseException:
                if conn is not None:
                    conn.abort()
                raise
            self.conn = conn
            self.book.clear()
            self.down = False
            log.warning("redis limiter at %s is back: shared limits restored", self._where())
            if self.metrics is not None:
                self.metrics.count("redis_limiter_recovered")
            if self._wake is not None:
                self._wake.set()
            return


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _done(futs: list[asyncio.Future[None]]) -> None:
    for f in futs:
        if not f.done():
            f.set_result(None)

