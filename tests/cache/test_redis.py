"""The Redis level of the cache against a real redis-server: round trip, TTL, namespaced flush that spares
other data, and an outage that turns every call into a quick miss (one warning), then recovery."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relaygate.cache.redis import RedisCache
from relaygate.limits.resp import RedisAddress
from tests.conftest import RedisServer


def addr(server: RedisServer) -> RedisAddress:
    return RedisAddress.from_settings(server.url, None, None, None)


async def settled(cache: RedisCache, key: str) -> bytes | None:
    for _ in range(100):  # stores are queued: wait for the writer
        got = await cache.get(key)
        if got is not None:
            return got
        await asyncio.sleep(0.01)
    return None


def test_round_trip_ttl_delete_and_flush(redis_server: RedisServer) -> None:
    async def main() -> None:
        c = RedisCache(addr(redis_server))
        assert await c.ping()
        assert await c.get("ns:" + "a" * 64) is None
        c.set("ns:k1", b"\x00answer one", 60)
        c.set("ns:k2", b"answer two", 0.2)
        c.set("b" * 64, b"no namespace", 60)
        assert await settled(c, "ns:k1") == b"\x00answer one"
        assert await settled(c, "b" * 64) == b"no namespace"
        # several keys in one call (embeddings' inputs), absent ones None, repeats answered each time
        assert await c.get_many(["ns:k1", "ns:absent", "b" * 64, "ns:k1"]) == [
            b"\x00answer one", None, b"no namespace", b"\x00answer one"]
        assert await c.get_many([]) == []
        await asyncio.sleep(0.4)
        assert await c.get("ns:k2") is None  # expired in Redis (PX)
        other = await c._call("SET", "SET", "someone-elses-key", "keep")
        assert other in (b"OK", "OK")
        assert await c.delete(["ns:k1"]) == 1 and await c.get("ns:k1") is None
        c.set("ns:k3", b"x", 60)
        await settled(c, "ns:k3")
        assert await c.flush("ns") == 1
        assert await c.flush(None) == 1  # the 64-hex key only
        assert await c._call("GET", "GET", "someone-elses-key") == b"keep"
        info = await c.info()
        assert "redis_version" in info
        await c.aclose()

    asyncio.run(main())


def test_outage_is_a_miss_logged_once(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        c = RedisCache(addr(redis_server), retry_after=0.3, connect_timeout=0.3)
        c.set("k", b"v", 60)
        assert await settled(c, "k") == b"v"
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="relaygate.cache"):
            for _ in range(20):
                assert await c.get("k") is None
            assert await c.get_many(["k", "k9"]) == [None, None]  # a miss for every key, not an error
            c.set("k2", b"v2", 60)  # dropped, not queued forever
            await asyncio.sleep(0.05)
        warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(warnings) == 1 and c.failures >= 20
        assert not await c.ping()
        redis_server.start()
        await asyncio.sleep(0.35)  # the pause ends; the next call reconnects
        c.set("k3", b"back", 60)
        assert await settled(c, "k3") == b"back"
        await c.aclose()

    asyncio.run(main())


def test_flushall_reaches_the_namespaces_requests_gave(redis_server: RedisServer) -> None:
    """A request's own ``cache.namespace`` stores ``<ns>:<sha256>`` keys outside the configured namespace;
    ``/cache/flushall`` deletes them too (through the marks the cache left), and nothing else: another
    configured namespace's entries and other data in the same Redis survive."""
    from tests.asgi.conftest import call, make_gateway

    master = "sk-flush"
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": master},
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "url": redis_server.url,
                                                             "namespace": "cfg"}}})
    auth = {"authorization": f"Bearer {master}"}

    async def ask(namespace: str | None) -> bool:
        body: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "same"}]}
        if namespace:
            body["cache"] = {"namespace": namespace}
        r = await call(gw, "POST", "/v1/chat/completions", body, headers=auth)
        assert r.status == 200, r.body
        return "x-litellm-cache-key" in r.headers

    async def main() -> None:
        await gw.startup()
        try:
            c = gw.runtime.cache.redis
            assert c is not None
            assert await c._call("SET", "SET", "other-gateway:" + "a" * 64, "keep") in (b"OK", "OK")
            assert await c._call("SET", "SET", "someone-elses-key", "keep") in (b"OK", "OK")
            assert not await ask("tenant-a") and not await ask(None)
            for _ in range(200):  # stores are queued: wait for the writer to have sent all three
                if (await c._call("EXISTS", "EXISTS", "relaygate:cache:namespaces:cfg:tenant-a") == 1
                        and await c._call("KEYS", "KEYS", "cfg:*") and await c._call("KEYS", "KEYS", "tenant-a:*")):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the stores never reached Redis")
            assert await ask("tenant-a") and await ask(None)
            r = await call(gw, "POST", "/cache/flushall", {}, headers=auth)
            assert r.status == 200, r.body
            assert not await ask("tenant-a") and not await ask(None)  # gone from memory and Redis
            assert await c._call("GET", "GET", "other-gateway:" + "a" * 64) == b"keep"
            assert await c._call("GET", "GET", "someone-elses-key") == b"keep"
        finally:
            await gw.shutdown()

    asyncio.run(main())
