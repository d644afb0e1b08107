"""Rate limiters behind one interface: in-process (exact for one worker) and Redis (shared by workers).

The router calls :meth:`Limiter.acquire` once per attempt with every bucket the attempt must pay (the
deployment's rpm/tpm, and on the request's first attempt the key/team/user rpm/tpm/max_parallel buckets),
and :meth:`Limiter.adjust` when the response ended (tpm reconciliation with real usage, release of the
parallel slot). ``acquire`` answers a :class:`relaygate.core.ratelimit.Verdict`; ``adjust`` never waits.

:func:`make_limiter` picks Redis when ``router_settings`` names one (``redis_url`` or ``redis_host``),
else the in-process limiter. Without a ``redis_url``, the environment chooses the Redis topology as it does
for every Redis client LiteLLM builds: ``REDIS_CLUSTER_NODES`` (a JSON list of ``{"host", "port"}``) makes
it a Redis Cluster (the ``{relaygate}``-tagged keys live on one slot's primary, followed through MOVED and
ASK), else ``REDIS_SENTINEL_NODES`` (``[[host, port], ...]``) with ``REDIS_SERVICE_NAME`` (and
``REDIS_SENTINEL_PASSWORD`` for the sentinels) the master those sentinels name; ``limits.topology`` is
the routing, shared with the response cache's Redis level.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Sequence

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


def make_limiter(settings: RouterSettings, metrics: Any = None,
                 environ: Mapping[str, str] | None = None) -> Limiter:
    if settings.redis_url or settings.redis_host:
        from relaygate.config.redis_tls import tls_from_env
        from relaygate.limits.redis import RedisLimiter
        from relaygate.limits.resp import RedisAddress
        from relaygate.limits.topology import Topology

        env = os.environ if environ is None else environ
        addr = RedisAddress.from_settings(settings.redis_url, settings.redis_host, settings.redis_port,
                                          settings.redis_password, tls_from_env(env))
        if not settings.redis_url and settings.redis_db:
            addr.db = settings.redis_db
        target: RedisAddress | Topology = addr
        if not settings.redis_url:
            target = topology_from_env(env, settings.redis_password) or target
        return RedisLimiter(target, timeout=settings.redis_timeout, on_failure=settings.on_redis_failure,
                            metrics=metrics)
    return Limiter()


def topology_from_env(env: Mapping[str, str], password: str | None) -> Any:
    """A Redis Cluster (``REDIS_CLUSTER_NODES``) or a sentinel-managed master (``REDIS_SENTINEL_NODES`` and
    ``REDIS_SERVICE_NAME``) from the environment, LiteLLM's variables (``config.cache.env_topology``); None:
    neither is set. A malformed list is a ``CacheConfigError`` naming the variable (the config's validation
    reports it before any worker starts)."""
    from relaygate.config.cache import env_topology
    from relaygate.config.redis_tls import tls_from_env
    from relaygate.limits.topology import Cluster, Sentinel

    found = env_topology(env)
    if found is None:
        return None
    kind, nodes, service = found
    password = password or env.get("REDIS_PASSWORD") or None
    username = env.get("REDIS_USERNAME") or None
    tls = tls_from_env(env)
    if kind == "cluster":
        return Cluster(list(nodes), password=password, username=username, tls=tls)
    assert service is not None
    return Sentinel(list(nodes), service, password=password, username=username,
                    sentinel_password=env.get("REDIS_SENTINEL_PASSWORD") or None, tls=tls)
