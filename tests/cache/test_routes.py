"""The ``/cache/*`` management routes in LiteLLM's shapes (in-process gateway, a real redis-server).

Shown here: ``/cache/ping`` gives ``litellm_cache_params`` as a JSON *string* and, for a Redis cache,
``health_check_cache_params`` (host, port, redis_kwargs, namespace, redis_version: LiteLLM's
``HealthCheckCacheParams``) without any password; ``/cache/redis/info`` gives ``clients`` (``CLIENT LIST``
parsed as redis-py's ``client_list()``) with ``num_clients`` its length, and where ``CLIENT LIST`` is refused
(an ACL, a managed Redis) LiteLLM's ``-1`` and message, without pausing the cache's Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relaygate.cache.redis import RedisCache
from relaygate.cache.routes import CLIENT_LIST_UNAVAILABLE, parse_client_list
from relaygate.limits.resp import RedisAddress
from tests.asgi.conftest import call, make_gateway
from tests.conftest import RedisServer

pytestmark = pytest.mark.redis

MASTER = "sk-master-cache-routes"
H = {"authorization": f"Bearer {MASTER}"}


def gateway(cache_params: dict[str, Any]) -> Any:
    return make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                         "general_settings": {"master_key": MASTER},
                         "litellm_settings": {"cache": True, "cache_params": cache_params}})


async def limited_user(server: RedisServer) -> str:
    """A Redis user with a password that may do everything but ``CLIENT`` (as managed Redis restricts it);
    its URL."""
    admin = RedisCache(RedisAddress.from_settings(server.url, None, None, None))
    reply = await admin._call("ACL", "ACL", "SETUSER", "limited", "on", ">s3cret-pw", "~*", "&*", "+@all", "-client")
    assert reply in (b"OK", "OK")
    await admin.aclose()
    return f"redis://limited:s3cret-pw@127.0.0.1:{server.port}/0"


def test_ping_in_litellms_shape(redis_server: RedisServer) -> None:
    async def main() -> None:
        gw = gateway({"type": "redis", "url": await limited_user(redis_server), "namespace": "rt", "ttl": 30})
        try:
            r = await call(gw, "GET", "/cache/ping", headers=H)
            assert r.status == 200, r.body
            assert "s3cret" not in r.body.decode()
            body = r.json()
            assert body["status"] == "healthy" and body["cache_type"] == "redis" and body["ping_response"] is True
            assert body["set_cache_response"] == "success"
            params = body["litellm_cache_params"]
            assert isinstance(params, str)  # LiteLLM's CachePingResponse: a JSON string
            decoded = orjson.loads(params)
            assert decoded["type"] == "redis" and decoded["namespace"] == "rt" and decoded["ttl"] == 30
            health = body["health_check_cache_params"]
            assert set(health) == {"host", "port", "redis_kwargs", "namespace", "redis_version"}
            version = (await gw.runtime.cache.redis.info())["redis_version"]
            assert (health["host"], health["port"], health["namespace"], health["redis_version"]) == (
                "127.0.0.1", redis_server.port, "rt", version)
            assert health["redis_kwargs"] == {"host": "127.0.0.1", "port": redis_server.port, "db": 0,
                                              "username": "limited"}
        finally:
            await gw.runtime.cache.aclose()

        gw = gateway({"type": "local"})
        body = (await call(gw, "GET", "/cache/ping", headers=H)).json()
        assert body["cache_type"] == "local" and body["health_check_cache_params"] is None  # LiteLLM: Redis only
        assert orjson.loads(body["litellm_cache_params"])["type"] == "local"

    asyncio.run(main())


def test_redis_info_lists_the_clients(redis_server: RedisServer) -> None:
    async def main() -> None:
        gw = gateway({"type": "redis", "url": redis_server.url})
        try:
            r = await call(gw, "GET", "/cache/redis/info", headers=H)
            assert r.status == 200, r.body
            body = r.json()
            assert set(body) == {"num_clients", "clients", "info"}
            assert body["num_clients"] == len(body["clients"]) >= 1
            assert all({"id", "addr", "cmd"} <= set(c) for c in body["clients"])
            assert any(c["cmd"] == "client|list" for c in body["clients"])  # this route's own connection
            assert "redis_version" in body["info"]
        finally:
            await gw.runtime.cache.aclose()

    asyncio.run(main())


def test_redis_info_where_client_list_is_refused(redis_server: RedisServer) -> None:
    async def main() -> None:
        gw = gateway({"type": "redis", "url": await limited_user(redis_server)})
        cache = gw.runtime.cache
        try:
            body = (await call(gw, "GET", "/cache/redis/info", headers=H)).json()
            assert body["num_clients"] == -1 and body["clients"] == [CLIENT_LIST_UNAVAILABLE]
            assert "redis_version" in body["info"]
            # an error reply to the management route does not pause the cache's Redis: it keeps storing
            assert cache.redis.failures == 0 and not cache.redis.down
            cache.redis.set("probe", b"stored", 60)
            for _ in range(100):
                if await cache.redis.get("probe") == b"stored":
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the store never reached Redis")
        finally:
            await cache.aclose()

    asyncio.run(main())


def test_parse_client_list_as_redis_py() -> None:
    text = ("id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 name= db=0 cmd=client|list\n"
            "id=4 addr=/tmp/redis sock/redis.sock:0 fd=9 name=a=b cmd=get\n")
    assert parse_client_list(text.encode()) == [
        {"id": "3", "addr": "127.0.0.1:5000", "laddr": "127.0.0.1:6379", "name": "", "db": "0",
         "cmd": "client|list"},
        {"id": "4", "addr": "/tmp/redis sock/redis.sock:0", "fd": "9", "name": "a=b", "cmd": "get"}]
    assert parse_client_list(b"") == []
