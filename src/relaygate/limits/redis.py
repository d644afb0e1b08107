"""The Redis limiter: token buckets shared by every worker and instance, one Lua call per batch.

Design (and why):
- One Lua script (:data:`SCRIPT`) does everything atomically: releases and reconciliations queued since
  the last call, then, in order, each queued request's all-or-nothing check of its buckets, then cooldown
  sharing. It reads the clock with Redis ``TIME``, so workers' clocks never matter.
- Batching instead of leasing: each worker keeps at most one script call in flight; requests arriving
  while it is out are queued and go together in the next call (Nagle-style). Under load a call carries
  many requests, so Redis and Python cost per request shrinks with load, while the limit stays exact
  (no tokens held back by a worker, no over-admission beyond the token bucket's own definition). The
  price is one loopback round trip of added latency per request, and some queueing when Redis is slow.
- All keys share the hash tag ``{relaygate}`` so one call's keys live in one Redis Cluster slot.
- Failure: a call that errors or takes longer than ``redis_timeout`` marks Redis down. With
  ``on_redis_failure: local`` (default) requests are then answered by in-process buckets (exact per
  worker, so N workers admit up to N times a limit while Redis is away), a warning is logged once per
  outage and ``redis_limiter_down`` is counted in the worker's metrics; with ``reject`` they get 503. A
  background probe reconnects with exponential backoff (0.2 s .. 5 s), not per request; on success the
  shared buckets take over again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Sequence

from relaygate.core.errors import GatewayError
from relaygate.core.ratelimit import PREFIX, Bucket, Verdict
from relaygate.limits import CooldownSink, Limiter
from relaygate.limits.resp import RedisAddress, RespConnection, RespError, connect, encode

log = logging.getLogger("relaygate.limits")

COOLDOWN_KEY = PREFIX + "cooldowns"
PARALLEL_TTL_MS = 600_000
SYNC_INTERVAL = 0.5
"""Seconds between idle calls that only fetch cooldowns (when no request needed Redis meanwhile)."""

# ARGV: nadj, (keyidx kind cap rate_ms delta)*nadj, nreq, (nb, (keyidx kind cap rate_ms cost)*nb)*nreq,
#       ncool, (dep_id seconds)*ncool      KEYS: bucket keys..., cooldown zset (last)
# returns one string "cooldowns;req1;req2..." (cheap to parse: two splits): cooldowns = "dep=ms,dep=ms",
# reqN = "fail(-1|0-based),floor(level_1),reset_ms_1,..."
SCRIPT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level_of(key, cap, rate)
  local v = redis.call('GET', key)
  if not v then return cap end
  local sep = string.find(v, ':', 1, true)
  local tok = tonumber(string.sub(v, 1, sep - 1))
  local ts = tonumber(string.sub(v, sep + 1))
  if now > ts then tok = tok + (now - ts) * rate end
  if tok > cap then tok = cap end
  return tok
end
local function store(key, tok, cap, rate)
  local ttl = 1000
  if rate > 0 and tok < cap then ttl = math.ceil((cap - tok) / rate) + 1000 end
  redis.call('SET', key, tostring(tok) .. ':' .. now, 'PX', ttl)
end
local i = 1
local nadj = tonumber(ARGV[i]); i = i + 1
for a = 1, nadj do
  local key = KEYS[tonumber(ARGV[i])]
  local kind = ARGV[i + 1]
  local cap = tonumber(ARGV[i + 2]); local rate = tonumber(ARGV[i + 3]); local d = tonumber(ARGV[i + 4])
  i = i + 5
  if kind == 't' then
    local tok = level_of(key, cap, rate) + d
    if tok > cap then tok = cap elseif tok < -cap then tok = -cap end
    store(key, tok, cap, rate)
  else
    local c = tonumber(redis.call('GET', key) or '0') + d
    if c <= 0 then redis.call('DEL', key) else redis.call('SET', key, c, 'PX', __PTTL__) end
  end
end
local out = {}
local nreq = tonumber(ARGV[i]); i = i + 1
for r = 1, nreq do
  local nb = tonumber(ARGV[i]); i = i + 1
  local base = i
  local lv = {}
  local fail = -1
  for b = 1, nb do
    local key = KEYS[tonumber(ARGV[i])]
    local kind = ARGV[i + 1]
    local cap = tonumber(ARGV[i + 2]); local cost = tonumber(ARGV[i + 4])
    if kind == 't' then
      lv[b] = level_of(key, cap, tonumber(ARGV[i + 3]))
      if fail < 0 and cost > 0 and lv[b] < 1 then fail = b - 1 end
    else
      lv[b] = tonumber(redis.call('GET', key) or '0')
      if fail < 0 and lv[b] + 1 > cap then fail = b - 1 end
    end
    i = i + 5
  end
  local res = {tostring(fail)}
  i = base
  for b = 1, nb do
    local key = KEYS[tonumber(ARGV[i])]
    local kind = ARGV[i + 1]
    local cap = tonumber(ARGV[i + 2]); local rate = tonumber(ARGV[i + 3]); local cost = tonumber(ARGV[i + 4])
    i = i + 5
    local tok = lv[b]
    if kind == 't' then
      if fail < 0 then
        tok = tok - cost
        if tok < -cap then tok = -cap end
        store(key, tok, cap, rate)
      end
      res[#res + 1] = string.format('%d', math.floor(tok))
      if b - 1 == fail then
        res[#res + 1] = string.format('%d', math.ceil((1 - tok) / rate))
      elseif tok < cap then
        res[#res + 1] = string.format('%d', math.ceil((cap - tok) / rate))
      else
        res[#res + 1] = '0'
      end
    else
      if fail < 0 then
        tok = redis.call('INCR', key)
        redis.call('PEXPIRE', key, __PTTL__)
      end
      res[#res + 1] = string.format('%d', cap - tok)
      if b - 1 == fail then res[#res + 1] = '1000' else res[#res + 1] = '0' end
    end
  end
  out[r + 1] = table.concat(res, ',')
end
local ckey = KEYS[#KEYS]
local ncool = tonumber(ARGV[i]); i = i + 1
for c = 1, ncool do
  redis.call('ZADD', ckey, 'GT', now + math.floor(tonumber(ARGV[i + 1]) * 1000), ARGV[i])
  i = i + 2
end
redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
local cool = {}
local cz = redis.call('ZRANGE', ckey, 0, -1, 'WITHSCORES')
for c = 1, #cz, 2 do
  cool[#cool + 1] = cz[c] .. '=' .. string.format('%d', tonumber(cz[c + 1]) - now)
end
if #cz > 0 then redis.call('PEXPIRE', ckey, 3600000) end
out[1] = table.concat(cool, ',')
return table.concat(out, ';')
""".replace("__PTTL__", str(PARALLEL_TTL_MS))

SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_SCRIPT_BYTES = SCRIPT.encode()


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
    __slots__ = ("buckets", "costs", "future")

    def __init__(self, buckets: Sequence[Bucket], costs: Sequence[float], future: asyncio.Future[Verdict]) -> None:
        self.buckets = buckets
        self.costs = costs
        self.future = future


class RedisDown(GatewayError):
    """``on_redis_failure: reject`` while Redis is unreachable (no fallback group could do better)."""

    status = 503
    type = "service_unavailable"
    no_fallback = True


class RedisLimiter(Limiter):
    shared = True

    def __init__(self, addr: RedisAddress, *, timeout: float = 0.5, on_failure: str = "local",
                 metrics: Any = None) -> None:
        super().__init__()
        self.addr = addr
        self.timeout = timeout
        self.reject = on_failure == "reject"
        self.metrics = metrics
        self.conn: RespConnection | None = None
        self.down = False
        self.pending: list[_Pending] = []
        self.adjusts: list[tuple[Bucket, float]] = []
        self.cooldowns: list[tuple[str, float]] = []
        self._sink: CooldownSink | None = None
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self.calls = 0
        self.batched = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._ensure_pump()

    def _ensure_pump(self) -> asyncio.Event:
        wake = self._wake
        if wake is None or self._pump_task is None:
            wake = self._wake = asyncio.Event()
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        return wake

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._pump_task, self._probe_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.conn is not None:
            self.conn.close()
        for p in self.pending:
            if not p.future.done():
                p.future.set_result(self._local(p))
        self.pending.clear()

    # -- interface ------------------------------------------------------------------------------

    async def acquire(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        if self.down:
            if self.reject:
                raise RedisDown("Rate limiter unavailable: Redis is not reachable")
            v = self.buckets.acquire(buckets, costs, self.clock())
            v.degraded = True
            return v
        wake = self._ensure_pump()
        fut: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(buckets, costs, fut))
        wake.set()
        return await fut

    def adjust(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        if self.down:
            self.buckets.adjust(buckets, deltas, self.clock())
            return
        for b, d in zip(buckets, deltas):
            if d:
                self.adjusts.append((b, d))
        if self._wake is not None and len(self.adjusts) > 256:
            self._wake.set()

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

    async def _pump(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not self.pending:
                wake.clear()
                tick = loop.call_later(SYNC_INTERVAL, wake.set)
                await wake.wait()
                tick.cancel()
            if self.down:
                await asyncio.sleep(SYNC_INTERVAL)
                continue
            batch, self.pending = self.pending, []
            adjusts, self.adjusts = self.adjusts, []
            cools, self.cooldowns = self.cooldowns, []
            try:
                reply = await self._call(batch, adjusts, cools)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(self._local(p))
                raise
            except (OSError, TimeoutError, RespError, ValueError, IndexError) as exc:
                self._went_down(exc)
                now = self.clock()
                for b, d in adjusts:
                    self.buckets.adjust((b,), (d,), now)
                for p in batch:
                    if self.reject:
                        if not p.future.done():
                            p.future.set_exception(RedisDown("Rate limiter unavailable: Redis is not reachable"))
                    elif not p.future.done():
                        p.future.set_result(self._local(p))
                continue
            self._deliver(batch, reply)

    async def _call(self, batch: list[_Pending], adjusts: list[tuple[Bucket, float]],
                    cools: list[tuple[str, float]]) -> Any:
        # RESP is written directly: each bucket's static part (kind, capacity, rate) is encoded once
        keys: dict[str, int] = {}
        parts: list[bytes] = [_bulk_int(len(adjusts))]
        for b, d in adjusts:
            idx = keys.setdefault(b.key, len(keys) + 1)
            parts += (_bulk_int(idx), _static(b), _bulk_num(d))
        parts.append(_bulk_int(len(batch)))
        nargs = 2 + 3 * len(adjusts)
        for p in batch:
            parts.append(_bulk_int(len(p.buckets)))
            nargs += 1 + 3 * len(p.buckets)
            for b, c in zip(p.buckets, p.costs):
                idx = keys.setdefault(b.key, len(keys) + 1)
                parts += (_bulk_int(idx), _static(b), _bulk_num(c))
        parts.append(_bulk_int(len(cools)))
        nargs += 1 + 2 * len(cools)
        for dep_id, seconds in cools:
            parts += (_bulk(dep_id.encode()), _bulk_num(seconds))
        klist = list(keys)
        klist.append(COOLDOWN_KEY)
        # each _static() is 3 arguments
        nargs += 2 * (len(adjusts) + sum(len(p.buckets) for p in batch))
        head = encode(("EVALSHA", SHA, len(klist), *klist))
        body = b"".join(parts)
        conn = self.conn
        if conn is None or conn.closed:
            conn = self.conn = await connect(self.addr, self.timeout)
        self.calls += 1
        self.batched += len(batch)
        count = 3 + len(klist) + nargs
        wire = b"*%d\r\n" % count + head[head.index(b"\r\n") + 2:] + body
        reply = await self._with_timeout(conn.call_raw(wire))
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            head = encode(("EVAL", SCRIPT, len(klist), *klist))
            wire = b"*%d\r\n" % count + head[head.index(b"\r\n") + 2:] + body
            reply = await self._with_timeout(conn.call_raw(wire))
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def _with_timeout(self, fut: asyncio.Future[Any]) -> Any:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(self.timeout, _expire, fut)
        try:
            return await fut
        finally:
            handle.cancel()

    def _deliver(self, batch: list[_Pending], reply: bytes) -> None:
        rows = reply.split(b";")
        cool = rows[0]
        if cool and self._sink is not None:
            entries = []
            for item in cool.split(b","):
                dep_id, _, ms = item.rpartition(b"=")
                entries.append((dep_id.decode(), int(ms) / 1000.0))
            self._sink(entries)
        for p, row in zip(batch, rows[1:]):
            vals = row.split(b",")
            n = len(p.buckets)
            remaining = [0.0] * n
            reset = [0.0] * n
            for j in range(n):
                remaining[j] = float(vals[1 + 2 * j])
                reset[j] = int(vals[2 + 2 * j]) / 1000.0
            if not p.future.done():
                p.future.set_result(Verdict(int(vals[0]), remaining, reset))

    # -- outage ---------------------------------------------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.down:
            return
        self.down = True
        self.buckets.clear()
        mode = "rejecting requests (503)" if self.reject else "using in-process limits"
        log.warning("redis limiter at %r unavailable (%s: %s): %s until it is back", self.addr,
                    type(exc).__name__, exc, mode)
        if self.metrics is not None:
            self.metrics.count("redis_limiter_down")
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        delay = 0.2
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                conn = await connect(self.addr, self.timeout)
                pong = await self._with_timeout(conn.call("PING"))
                if isinstance(pong, RespError):
                    raise pong
            except (OSError, TimeoutError, RespError):
                delay = min(delay * 2.0, 5.0)
                continue
            self.conn = conn
            self.down = False
            log.warning("redis limiter at %r is back: shared limits restored", self.addr)
            if self.metrics is not None:
                self.metrics.count("redis_limiter_recovered")
            if self._wake is not None:
                self._wake.set()
            return


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("redis call timed out"))

