"""Rate limiters behind one interface: in-process (exact for one worker) and Redis (shared by workers).

The router calls :meth:`Limiter.acquire` once per attempt with every bucket the attempt must pay (the
deployment's rpm/tpm, and on the request's first attempt the key/team/user rpm/tpm/max_parallel buckets),
and :meth:`Limiter.adjust` when the response ended (tpm reconciliation with real usage, release of the
parallel slot). ``acquire`` answers a :class:`relaygate.core.ratelimit.Verdict`; ``adjust`` never waits.

:func:`make_limiter` picks Redis when ``router_settings`` names one (``redis_url`` or ``redis_host``),
else the in-process limiter.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from relaygate.config.model import RouterSettings
from relaygate.core.ratelimit import Bucket, LocalBuckets, Verdict

CooldownSink = Callable[[list[tuple[str, float]]], None]


class Limiter:
    """In-process limiter (also the base class): pure arithmetic from ``core.ratelimit``."""

    shared = False

    def __init__(self) -> None:
        self.buckets = LocalBuckets()
        self.clock = time.monotonic

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def acquire(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        return self.buckets.acquire(buckets, costs, self.clock())

    def adjust(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        self.buckets.adjust(buckets, deltas, self.clock())

    def share_cooldown(self, dep_id: str, seconds: float) -> None:
        """Tell other workers/instances that ``dep_id`` is cooling down (no-op without Redis)."""
        return None

    def on_cooldowns(self, sink: CooldownSink) -> None:
        return None


def make_limiter(settings: RouterSettings, metrics: Any = None) -> Limiter:
    if settings.redis_url or settings.redis_host:
        from relaygate.limits.redis import RedisLimiter
        from relaygate.limits.resp import RedisAddress

        addr = RedisAddress.from_settings(settings.redis_url, settings.redis_host, settings.redis_port,
                                          settings.redis_password)
        return RedisLimiter(addr, timeout=settings.redis_timeout, on_failure=settings.on_redis_failure,
                            metrics=metrics)
    return Limiter()
