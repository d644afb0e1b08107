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
"""

from __future__ import annotations

from typing import Sequence

PREFIX = "{relaygate}:"
"""Every limiter key starts with this Redis Cluster hash tag, so all buckets of any request (key, team,
user and deployment buckets together) live in one slot and one Lua call can touch them all."""


class Bucket:
    """One limit. ``scope`` (key/team/user/deployment) and ``unit`` (requests/tokens/parallel) are for
    error messages and headers; ``key`` is the storage key (hash-tagged for Redis Cluster)."""

    __slots__ = ("key", "kind", "capacity", "rate", "scope", "unit", "owner", "wire")

    def __init__(self, key: str, kind: str, capacity: float, rate: float, scope: str, unit: str,
                 owner: str = "") -> None:
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
        self.wire = b""
        """Cache for the Redis limiter: this bucket's constant arguments, encoded once."""

    @classmethod
    def per_minute(cls, key: str, limit: int, scope: str, unit: str, owner: str = "") -> "Bucket":
        return cls(key, "t", limit, limit / 60.0, scope, unit, owner)

    @classmethod
    def parallel(cls, key: str, limit: int, scope: str, owner: str = "") -> "Bucket":
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
