"""Token-bucket and concurrency arithmetic for rate limits: the in-process limiter and the reference for
the Redis Lua script in ``relaygate.limits.redis``.

What it owns: the meaning of a limit. A :class:`Bucket` is either a token bucket (``kind == "t"``: rpm or
tpm; ``capacity`` tokens, refilled continuously at ``rate`` tokens per second, so ``rpm=N`` admits a burst
of N and then N per minute) or a concurrency counter (``kind == "p"``: max_parallel_requests). One request
checks all of its buckets at once (:meth:`LocalBuckets.acquire`): either every bucket admits and each is
charged, or none is charged and the verdict names the first bucket that refused and how long until it
would admit.

Invariants (the Lua script keeps the same ones; ``tests/limits`` runs both against the same cases):
- A token bucket admits while it holds at least one token, then pays the whole cost. A tpm bucket can so
  go into debt (a large prompt is admitted while budget is left, as LiteLLM does), never below
  ``-capacity``. Reconciliation (:meth:`LocalBuckets.adjust`) gives back the estimate minus the real
  usage, clamped to ``[-capacity, capacity]``.
- A concurrency counter admits while ``count + 1 <= capacity``; ``adjust`` with ``-1`` releases a slot and
  never takes the count below zero.
- Nothing here reads a clock: ``now`` is passed in (seconds, any monotonic origin).

Leases (:class:`LeaseBook`, the local half of the Redis limiter). A worker does not ask Redis per request:
it takes a *lease* of ``L`` units from the shared bucket in one Lua call and spends it here with pure
arithmetic. The shared state of one bucket is its level ``g`` and one record per worker ``o_w`` (units
leased and not yet reported spent, with its own expiry). The Lua script keeps ``g + sum(o_w) <= capacity``:
refill stops at ``capacity - sum(o_w)``, a lease moves units from ``g`` to ``o_w``, a report of spent
units removes them from ``o_w``. Locally ``held = o_w - unreported`` (units this worker may still spend);
after every reply ``held`` is recomputed from the record Redis returned, so a lost or expired record, a
Redis restart or a call that timed out after Redis ran it all correct themselves on the next call.

Tolerance (W workers, lease cap ``Lmax = max(1, capacity * LEASE_SHARE)`` per bucket and worker):
- Over-admission of rpm/tpm: none. Every unit is taken from the shared bucket before it is spent and
  ``g + sum(held) <= capacity`` at all times, so in any window of T seconds at most
  ``capacity + rate * T`` units are admitted, the exact token bucket's own bound. Two qualifications,
  both from the tpm *debt* rule rather than from leasing: a worker holding at least one unit may admit a
  request costing more than it holds (as the exact bucket does when its level is >= 1), so up to W
  requests (not one) can start a debt at the same moment; and the debt is charged globally at the
  worker's next report (<= ``SYNC_INTERVAL`` of the Redis limiter). Give-backs from reconciliation are
  credited to the local lease only up to what this worker spent since its last report (so held never
  exceeds its record) and otherwise returned to the shared bucket, clamped at its cap.
- Under-admission: a request refused by one worker could have been served by units another worker holds:
  at most ``(W - 1) * Lmax`` per bucket at any moment, ``W * Lmax`` counting this worker's own remainder
  below one request's cost. Idle leases go back to the shared bucket after ``LEASE_IDLE`` seconds and on
  shutdown; a crashed worker's lease is lost (for a token bucket, as if spent), its record expires after
  the lease TTL.
- max_parallel_requests: slots are leased the same way: ``sum(slots_w) <= capacity`` always, so the global
  concurrency never exceeds the limit; a worker keeps at most ``2 * M`` idle slots
  (``M = floor(capacity * LEASE_SHARE)``), so under-admission is at most ``W * 2 * M`` slots. With
  ``M == 0`` (capacity < ``1 / LEASE_SHARE``) no spare slot is held: every acquire and every release is
  its own Redis exchange, i.e. exact, which is what small concurrency limits need.
"""

from __future__ import annotations

from typing import Sequence

PREFIX = "{relaygate}:"
"""Every limiter key starts with this Redis Cluster hash tag, so all buckets of any request (key, team,
user and deployment buckets together) live in one slot and one Lua call can touch them all."""


_DESCRIPTORS = {("key", False): b"api_key", ("team", False): b"team", ("user", False): b"user",
                ("team_member", False): b"team_member", ("key", True): b"model_per_key",
                ("team", True): b"model_per_team"}
"""(bucket scope, a per-model bucket) -> LiteLLM's rate-limit descriptor key."""


class Bucket:
    """One limit. ``scope`` (key/team/user/deployment) and ``unit`` (requests/tokens/parallel) are for
    error messages and headers; ``key`` is the storage key (hash-tagged for Redis Cluster)."""

    __slots__ = ("key", "kind", "capacity", "rate", "scope", "unit", "owner", "model", "wire", "limit", "named")

    def __init__(self, key: str, kind: str, capacity: float, rate: float, scope: str, unit: str,
                 owner: str = "", model: bool = False) -> None:
        if kind not in ("t", "p"):
            raise ValueError("kind must be 't' (token bucket) or 'p' (parallel)")
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.key = key
        self.kind = kind
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.scope = scope
        self.unit = unit
        self.owner = owner
        self.model = model
        """A per-model limit of a key or team (``model_rpm_limit`` / ``model_tpm_limit``): its refusal is one the
        router's fallbacks may answer. Said here, not read from ``key`` (an id may contain anything)."""
        self.wire = b""
        """Cache for the Redis limiter: this bucket's constant arguments, encoded once."""
        self.limit = b"%d" % capacity
        """The capacity as an ``x-ratelimit-limit-*`` header value."""
        desc = _DESCRIPTORS.get((scope, model)) if kind == "t" else None
        self.named: tuple[bytes, bytes] | None = (
            b"x-ratelimit-%s-limit-%s" % (desc, unit.encode()), b"x-ratelimit-%s-remaining-%s" % (desc, unit.encode())
        ) if desc is not None else None
        """LiteLLM's v3 limiter's own header names for this bucket (``x-ratelimit-api_key-limit-requests`` and
        ``-remaining-requests``; ``team``, ``user``, ``team_member``, ``model_per_key``, ``model_per_team``); None for a
        deployment's or a parallel bucket."""

    @classmethod
    def per_minute(cls, key: str, limit: int, scope: str, unit: str, owner: str = "", model: bool = False) -> Bucket:
        return cls(key, "t", limit, limit / 60.0, scope, unit, owner, model)

    @classmethod
    def parallel(cls, key: str, limit: int, scope: str, owner: str = "") -> Bucket:
        return cls(key, "p", limit, 0.0, scope, "parallel", owner)

    def __repr__(self) -> str:
        return f"Bucket({self.key!r}, {self.kind!r}, {self.capacity:g}, {self.rate:g})"


class Verdict:
    """The answer for one request: ``fail`` is the index of the refusing bucket or -1 when admitted.

    ``remaining[i]`` is what bucket ``i`` holds after the decision (tokens, or free parallel slots);
    ``reset[i]`` seconds until bucket ``i`` is full again, except for the refusing bucket where it is the
    wait until it would admit (the ``retry-after``).
    """

    __slots__ = ("fail", "remaining", "reset", "degraded")

    def __init__(self, fail: int, remaining: list[float], reset: list[float], degraded: bool = False) -> None:
        self.fail = fail
        self.remaining = remaining
        self.reset = reset
        self.degraded = degraded

    @property
    def ok(self) -> bool:
        return self.fail < 0


def refill(tokens: float, ts: float, now: float, capacity: float, rate: float) -> float:
    """Tokens in a bucket last seen holding ``tokens`` at ``ts``."""
    if now > ts:
        tokens += (now - ts) * rate
    return tokens if tokens < capacity else capacity


def time_to_full(tokens: float, capacity: float, rate: float) -> float:
    if tokens >= capacity or rate <= 0:
        return 0.0
    return (capacity - tokens) / rate


def wait_for_one(tokens: float, rate: float) -> float:
    """Seconds until a bucket holding ``tokens`` (< 1) holds one."""
    if rate <= 0:
        return 60.0
    return (1.0 - tokens) / rate


PARALLEL_RETRY = 1.0
"""Retry-after for a full concurrency counter: slots free as responses end, so a short wait."""


class LocalBuckets:
    """In-process buckets: exact for one worker, the fallback when Redis is unreachable."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        # token bucket: [tokens, ts]; parallel counter: [count, 0.0]
        self.state: dict[str, list[float]] = {}

    def acquire(self, buckets: Sequence[Bucket], costs: Sequence[float], now: float) -> Verdict:
        n = len(buckets)
        state = self.state
        levels = [0.0] * n
        fail = -1
        for i in range(n):
            b = buckets[i]
            st = state.get(b.key)
            if b.kind == "t":
                level = b.capacity if st is None else refill(st[0], st[1], now, b.capacity, b.rate)
                levels[i] = level
                if fail < 0 and costs[i] > 0 and level < 1.0:
                    fail = i
            else:
                level = 0.0 if st is None else st[0]
                levels[i] = level
                if fail < 0 and level + 1.0 > b.capacity:
                    fail = i
        remaining = [0.0] * n
        reset = [0.0] * n
        for i in range(n):
            b = buckets[i]
            level = levels[i]
            if b.kind == "t":
                if fail < 0:
                    level -= costs[i]
                    if level < -b.capacity:
                        level = -b.capacity
                st = state.get(b.key)
                if st is None:
                    state[b.key] = [level, now]
                else:
                    st[0] = level
                    st[1] = now
                remaining[i] = level
                reset[i] = wait_for_one(level, b.rate) if i == fail else time_to_full(level, b.capacity, b.rate)
            else:
                if fail < 0:
                    level += 1.0
                    st = state.get(b.key)
                    if st is None:
                        state[b.key] = [level, 0.0]
                    else:
                        st[0] = level
                remaining[i] = b.capacity - level
                reset[i] = PARALLEL_RETRY if i == fail else 0.0
        return Verdict(fail, remaining, reset)

    def adjust(self, buckets: Sequence[Bucket], deltas: Sequence[float], now: float) -> None:
        """Give back (``delta > 0``) or take (``< 0``) tokens; ``-1`` on a counter releases a slot."""
        state = self.state
        for b, d in zip(buckets, deltas):
            if not d:
                continue
            st = state.get(b.key)
            if b.kind == "t":
                level = b.capacity if st is None else refill(st[0], st[1], now, b.capacity, b.rate)
                level += d
                if level > b.capacity:
                    level = b.capacity
                elif level < -b.capacity:
                    level = -b.capacity
                if st is None:
                    state[b.key] = [level, now]
                else:
                    st[0] = level
                    st[1] = now
            elif st is not None:
                level = st[0] + d
                st[0] = level if level > 0 else 0.0

    def clear(self) -> None:
        self.state.clear()


LEASE_SHARE = 0.05
"""A worker's lease on one bucket is at most this share of the bucket's capacity (``Lmax``)."""
REFILL_PERIOD = 0.5
"""A lease is sized to last about this long at the worker's observed spending rate (then capped)."""
LEASE_IDLE = 2.0
"""Seconds without local use after which a worker gives its lease back."""


class Held:
    """This worker's lease on one bucket.

    Token bucket: ``held`` units may be spent now (negative: a tpm debt not yet reported), ``unreported``
    units were spent (net of give-backs) since the last report, ``target`` is the adaptive lease size.
    Concurrency counter: ``held`` slots are leased, ``inflight`` of them are in use.
    ``g``/``o``/``seen``: the shared level, the sum of every worker's record and when Redis said so.
    """

    __slots__ = ("bucket", "held", "unreported", "inflight", "target", "lmax", "need", "due", "spent",
                 "mark", "mark_t", "rate", "g", "o", "seen", "last_use", "last_op", "own")

    def __init__(self, bucket: Bucket, now: float) -> None:
        self.bucket = bucket
        self.held = 0.0
        self.unreported = 0.0
        self.inflight = 0
        if bucket.kind == "t":
            self.lmax = max(1.0, bucket.capacity * LEASE_SHARE)
            self.target = 1.0
        else:
            self.lmax = float(int(bucket.capacity * LEASE_SHARE))
            self.target = self.lmax
        self.need = 0.0
        self.due = False
        self.spent = 0.0
        self.mark = 0.0
        self.mark_t = now
        self.rate = 0.0
        self.g = bucket.capacity
        self.o = 0.0
        self.seen = now
        self.last_use = now
        self.last_op = now
        self.own = 0.0

    def level(self, now: float) -> float:
        """The shared level extrapolated to ``now`` (refill stops at ``capacity - o``)."""
        b = self.bucket
        g = self.g
        top = b.capacity - self.o
        if g < top and now > self.seen:
            g += (now - self.seen) * b.rate
            if g > top:
                g = top
        return g

    def remaining(self, now: float) -> float:
        """What the limit still allows as this worker sees it: shared level plus its own lease (others'
        leases are counted as spent)."""
        if self.bucket.kind == "t":
            return self.level(now) + self.held
        return self.g + self.held - self.inflight


class LeaseOp:
    """One bucket's part of a Lua call: report ``spent``, return ``ret``, ask for ``want``.

    Token bucket: ``want`` units more. Concurrency counter: ``want`` is the absolute slot count wanted."""

    __slots__ = ("h", "spent", "ret", "want")

    def __init__(self, h: Held, spent: float, ret: float, want: float) -> None:
        self.h = h
        self.spent = spent
        self.ret = ret
        self.want = want


class LeaseBook:
    """Local leases of one worker: admission by arithmetic, and the ops the next Redis call must carry."""

    __slots__ = ("leases", "due", "returns")

    def __init__(self) -> None:
        self.leases: dict[str, Held] = {}
        self.due: list[Held] = []
        """Leases to refill, report or return in the next call (each at most once: ``Held.due``)."""
        self.returns: list[tuple[Bucket, float]] = []
        """Give-backs larger than this worker's unreported spending: they go to the shared bucket."""

    def _get(self, b: Bucket, now: float) -> Held:
        h = self.leases.get(b.key)
        if h is None:
            h = self.leases[b.key] = Held(b, now)
        elif h.bucket is not b:
            h.bucket = b  # the same key rebuilt (e.g. a wildcard group): the latest limits apply
        return h

    def _mark(self, h: Held) -> None:
        if not h.due:
            h.due = True
            self.due.append(h)

    def acquire(self, buckets: Sequence[Bucket], costs: Sequence[float], now: float,
                final: bool = False) -> Verdict | None:
        """Admit from local leases: a verdict, or ``None`` when a lease must be refilled first (those leases
        are then due, with the request's need). ``final`` (after a refill): a bucket still short refuses,
        and a token bucket holding at least one unit admits into debt, as the exact bucket does.

        One pass that charges as it goes; a short bucket (rare: a lease ran out) undoes the charges."""
        leases = self.leases
        n = len(buckets)
        remaining = [0.0] * n
        reset = [0.0] * n
        for i in range(n):
            b = buckets[i]
            h = leases.get(b.key)
            if h is None or h.bucket is not b:
                h = self._get(b, now)
            h.last_use = now
            if b.kind == "t":
                c = costs[i]
                held = h.held
                if c > 0 and held < c and not (final and held >= 1.0):
                    return self._short(buckets, costs, now, i, final, remaining, reset)
                held -= c
                if held < -b.capacity:
                    held = -b.capacity
                h.held = held
                h.unreported += c
                h.spent += c
                if held + held < h.target and not h.due:
                    h.due = True
                    self.due.append(h)
                g = h.g
                top = b.capacity - h.o
                if g < top:
                    g += (now - h.seen) * b.rate
                    if g > top:
                        g = top
                left = g + held
                remaining[i] = left
                if left < b.capacity:
                    reset[i] = (b.capacity - left) / b.rate
            else:
                inflight = h.inflight + 1
                if inflight > h.held:
                    return self._short(buckets, costs, now, i, final, remaining, reset)
                h.inflight = inflight
                if h.held - inflight < h.target * 0.5 and not h.due:
                    h.due = True
                    self.due.append(h)
                remaining[i] = h.g + h.held - inflight
        return Verdict(-1, remaining, reset)

    def _short(self, buckets: Sequence[Bucket], costs: Sequence[float], now: float, at: int, final: bool,
               remaining: list[float], reset: list[float]) -> Verdict | None:
        """Bucket ``at`` cannot pay: undo the charges of the buckets before it, then either mark every short
        lease due (``None``) or, when ``final``, refuse naming bucket ``at``."""
        leases = self.leases
        for i in range(at):
            h = leases[buckets[i].key]
            if buckets[i].kind == "t":
                c = costs[i]
                h.held += c
                h.unreported -= c
                h.spent -= c
            else:
                h.inflight -= 1
        if final:
            for i in range(len(buckets)):
                b = buckets[i]
                h = self._get(b, now)
                remaining[i] = h.remaining(now)
                if b.kind == "p":
                    reset[i] = PARALLEL_RETRY if i == at else 0.0
                elif i == at:
                    g = h.level(now)
                    reset[i] = wait_for_one(g, b.rate) if g < 1.0 else 1.0
                else:
                    reset[i] = time_to_full(remaining[i], b.capacity, b.rate)
            return Verdict(at, remaining, reset)
        for i in range(at, len(buckets)):
            b = buckets[i]
            h = self._get(b, now)
            if b.kind == "t":
                c = costs[i]
                if c <= 0 or h.held >= c:
                    continue
                h.need += c
            elif h.inflight + 1 <= h.held:
                continue
            else:
                h.need += 1.0
            self._mark(h)
        return None

    def decide(self, buckets: Sequence[Bucket], costs: Sequence[float], now: float) -> Verdict:
        """:meth:`acquire` with ``final``: always a verdict."""
        v = self.acquire(buckets, costs, now, True)
        assert v is not None
        return v

    def adjust(self, buckets: Sequence[Bucket], deltas: Sequence[float], now: float) -> None:
        """Reconciliation (``delta > 0`` gives units back, ``< 0`` takes more) on the local lease first;
        ``-1`` on a concurrency counter releases a slot (spare slots beyond ``2 * M`` are returned)."""
        for b, d in zip(buckets, deltas):
            if not d:
                continue
            h = self.leases.get(b.key)
            if h is None:
                if b.kind == "t" and d > 0:
                    self.returns.append((b, d))
                continue
            if b.kind == "t":
                if d > 0:
                    room = h.unreported if h.unreported > 0 else 0.0
                    if h.held + room > h.lmax:
                        room = h.lmax - h.held if h.held < h.lmax else 0.0
                    local = d if d < room else room
                    h.held += local
                    h.unreported -= local
                    if d > local:
                        self.returns.append((b, d - local))
                else:
                    h.held += d
                    h.unreported -= d
                    if h.held < -b.capacity:
                        h.held = -b.capacity
            else:
                h.inflight += int(d)
                if h.inflight < 0:
                    h.inflight = 0
                if h.held - h.inflight > 2.0 * h.lmax:
                    self._mark(h)

    def ops(self, now: float, sweep: bool) -> list[LeaseOp]:
        """The leases the next call must carry (due ones; with ``sweep`` also reports, renewals and idle
        returns of every lease), with the local side of each op already applied."""
        out: list[LeaseOp] = []
        due, self.due = self.due, []
        for h in due:
            h.due = False
            out.append(self._op(h, now, False))
        if sweep:
            for key, h in list(self.leases.items()):
                if h.due:
                    continue
                idle = now - h.last_use > LEASE_IDLE and h.inflight == 0 and h.need == 0
                if idle:
                    if h.own == 0 and h.held == 0 and h.unreported == 0:
                        del self.leases[key]
                        continue
                    out.append(self._op(h, now, True))
                elif h.unreported or now - h.last_op > REFILL_PERIOD:
                    out.append(self._op(h, now, False))
        if self.returns:
            # a give-back the local lease could not take: ``spent=-d, ret=d`` gives the shared level ``d``
            # and leaves this worker's record as it is
            by_key = {op.h.bucket.key: op for op in out}
            for b, d in self.returns:
                op = by_key.get(b.key)
                if op is None:
                    known = self.leases.get(b.key)
                    if known is not None:
                        op = self._op(known, now, False)
                    else:
                        op = LeaseOp(Held(b, now), 0.0, 0.0, 0.0)
                    by_key[b.key] = op
                    out.append(op)
                op.spent -= d
                op.ret += d
            self.returns = []
        return out

    def release_all(self) -> list[LeaseOp]:
        """Ops that give every lease back (shutdown)."""
        self.due = []
        return [self._op(h, h.last_op, True) for h in self.leases.values()]

    def _op(self, h: Held, now: float, release: bool) -> LeaseOp:
        b = h.bucket
        h.last_op = now
        if b.kind == "p":
            if release:
                want = float(h.inflight)
            else:
                want = h.inflight + h.need + h.lmax
                if want < h.held and h.held - h.inflight <= 2.0 * h.lmax:
                    want = h.held
            if want < h.held:
                h.held = want  # shrink before Redis hears of it: never more in use than leased
            h.need = 0.0
            return LeaseOp(h, 0.0, 0.0, want)
        dt = now - h.mark_t
        if dt > 0.05:
            r = (h.spent - h.mark) / dt
            h.rate = r if h.rate == 0 else 0.5 * (h.rate + r)
            h.mark = h.spent
            h.mark_t = now
        spent = h.unreported
        h.unreported = 0.0
        if release:
            ret = h.held if h.held > 0 else 0.0
            h.held -= ret
            h.need = 0.0
            return LeaseOp(h, spent, ret, 0.0)
        target = h.rate * REFILL_PERIOD
        if target < 1.0:
            target = 1.0
        if target > h.lmax:
            target = h.lmax
        h.target = target
        have = h.held if h.held > 0 else 0.0
        want = target + h.need - have
        h.need = 0.0
        return LeaseOp(h, spent, 0.0, want if want > 0 else 0.0)

    def applied(self, op: LeaseOp, own: float, g: float, o: float, now: float) -> None:
        """Redis answered ``op``: this worker's record is now ``own``, the shared level ``g``, the sum of
        all records ``o``."""
        h = op.h
        h.own = own
        h.g = g
        h.o = o
        h.seen = now
        if h.bucket.kind == "t":
            h.held = own - h.unreported
        else:
            h.held = own

    def clear(self) -> None:
        self.leases.clear()
        self.due = []
        self.returns = []
