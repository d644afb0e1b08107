"""``make_limiter``'s Redis topology from the environment, as LiteLLM picks it for every Redis client: a
cluster from ``REDIS_CLUSTER_NODES``, a sentinel-managed master from ``REDIS_SENTINEL_NODES`` +
``REDIS_SERVICE_NAME``, one server otherwise; a ``redis_url`` always wins; a malformed list stops startup
with the variable named. (The cluster and sentinel behaviour itself, against real servers, is in
``tests/cache/test_redis_cluster.py`` and ``test_redis_sentinel.py``.)"""

from __future__ import annotations

import pytest

from relaygate.config.cache import CacheConfigError
from relaygate.config.model import RouterSettings
from relaygate.limits import Limiter, make_limiter
from relaygate.limits.redis import RedisLimiter
from relaygate.limits.topology import Cluster, Sentinel, Single

CLUSTER = '[{"host": "10.0.0.1", "port": 7001}, {"host": "10.0.0.2", "port": "7002"}]'


def limiter(env: dict[str, str], **settings: object) -> RedisLimiter:
    made = make_limiter(RouterSettings(**settings), environ=env)  # type: ignore[arg-type]
    assert isinstance(made, RedisLimiter)
    return made


def test_no_redis_is_in_process_whatever_the_environment() -> None:
    assert type(make_limiter(RouterSettings(), environ={"REDIS_CLUSTER_NODES": CLUSTER})) is Limiter


def test_one_server_by_default() -> None:
    assert isinstance(limiter({}, redis_host="127.0.0.1").topology, Single)


def test_cluster_from_the_environment() -> None:
    topo = limiter({"REDIS_CLUSTER_NODES": CLUSTER, "REDIS_PASSWORD": "pw"}, redis_host="10.0.0.1").topology
    assert isinstance(topo, Cluster)
    assert topo.startup == [("10.0.0.1", 7001), ("10.0.0.2", 7002)] and topo.password == "pw"


def test_sentinel_from_the_environment() -> None:
    env = {"REDIS_SENTINEL_NODES": '[["10.0.0.5", 26379]]', "REDIS_SERVICE_NAME": "mymaster",
           "REDIS_SENTINEL_PASSWORD": "spw"}
    topo = limiter(env, redis_host="10.0.0.1", redis_password="mpw").topology
    assert isinstance(topo, Sentinel) and "mymaster" in topo.describe()


def test_a_url_wins() -> None:
    topo = limiter({"REDIS_CLUSTER_NODES": CLUSTER}, redis_url="redis://127.0.0.1:6379/0").topology
    assert isinstance(topo, Single)


@pytest.mark.parametrize(("env", "named"), [
    ({"REDIS_CLUSTER_NODES": "not json"}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": '[{"host": "h", "port": 0}]'}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_SENTINEL_NODES": '[["h", 26379]]'}, "REDIS_SERVICE_NAME"),
])
def test_malformed_is_a_clear_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(CacheConfigError, match=named):
        limiter(env, redis_host="127.0.0.1")


def test_the_config_check_reports_it_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaygate.config.loader import validate
    from relaygate.config.model import Config

    config = Config(router=RouterSettings(redis_host="127.0.0.1"))
    assert validate(config) == []
    monkeypatch.setenv("REDIS_CLUSTER_NODES", "[1, 2]")
    [problem] = validate(config)
    assert problem.startswith("router_settings.redis_host: REDIS_CLUSTER_NODES:")
    assert validate(Config(router=RouterSettings(redis_url="redis://127.0.0.1:6379/0"))) == []  # a url wins


@pytest.mark.redis
def test_router_redis_db_is_the_limiters_and_the_layers_database(redis_server: object) -> None:
    """``router_settings.redis_db`` (LiteLLM's): the limiter's buckets and the redis-py layers' URL use it."""
    import asyncio

    import redis

    from relaygate.config.model import Config
    from relaygate.core.ratelimit import Bucket
    from relaygate.gateway.announce import redis_url_of as _redis_url

    port = redis_server.port  # type: ignore[attr-defined]
    lim = limiter({}, redis_host="127.0.0.1", redis_port=port, redis_db=5)
    bucket = Bucket.per_minute("{relaygate}:db5:k", 10, "key", "requests")

    async def main() -> bool:
        await lim.start()
        try:
            return (await lim.acquire((bucket,), (1.0,))).ok
        finally:
            await lim.aclose()

    assert asyncio.run(main())
    for db, found in ((5, True), (0, False)):
        r = redis.Redis(host="127.0.0.1", port=port, db=db)
        try:
            assert bool(r.keys("{relaygate}:db5:*")) is found
        finally:
            r.close()
    url = _redis_url(Config(router=RouterSettings(redis_host="127.0.0.1", redis_port=port, redis_db=5)))
    assert url == f"redis://127.0.0.1:{port}/5"
