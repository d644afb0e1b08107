"""LiteLLM's cache settings API (``cache.settings_api``) on SQLite and a real PostgreSQL, with a real
redis-server: the page's fields and the cache served; a connection test that reaches the server and one that
cannot; settings stored (their password sealed), served by this gateway at once and by another on its next
sync, answered masked, a masked password kept; what needs ``store_model_in_db`` and the admin; bad settings."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import User, open_store
from relaygate.store.sealing import PREFIX
from relaygate.store.settings import read_settings
from tests.conftest import RedisServer, dead_port
from tests.management.conftest import MASTER, Env, api_error, run_pair
from tests.store.conftest import db_url  # noqa: F401  (both backends)


def _gateway(store_model_in_db: bool = True) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": MASTER, "store_model_in_db": store_model_in_db},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 60}},
    }, "<test>"))


def _run(url: str, body: Any, store_model_in_db: bool = True) -> None:
    run_pair(url, lambda: _gateway(store_model_in_db), body)


async def _hit(env: Env, text: str) -> bool:
    r = await env.call("POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    assert r.status == 200, r.body
    return "x-litellm-cache-key" in r.headers


def test_settings_page_test_and_save(db_url: str, redis_server: RedisServer) -> None:  # noqa: F811
    async def body(env: Env, other: Env) -> None:
        page = await env.ok("GET", "/cache/settings")
        assert page["current_values"]["type"] == "local" and page["current_values"]["ttl"] == 60
        names = [f["field_name"] for f in page["fields"]]
        assert {"redis_type", "host", "port", "password", "redis_startup_nodes", "sentinel_nodes"} <= set(names)
        assert set(page["redis_type_descriptions"]) == {"node", "cluster", "sentinel"}

        good = {"type": "redis", "host": "127.0.0.1", "port": str(redis_server.port), "namespace": "ui"}
        assert (await env.ok("POST", "/cache/settings/test", {"cache_settings": good}))["status"] == "success"
        dead = await env.ok("POST", "/cache/settings/test", {"cache_settings": {**good, "port": str(dead_port())}})
        assert dead["status"] == "failed" and "PING" in dead["error"]
        bad = await env.ok("POST", "/cache/settings/test", {"cache_settings": {"type": "redis", "port": "x",
                                                                                "host": "h"}})
        assert bad["status"] == "failed" and "port" in bad["error"]

        await _hit(env, "before")
        saved = await env.ok("POST", "/cache/settings", {"cache_settings": {**good, "redis_type": "node",
                                                                              "password": "redis-secret-1"}})
        assert saved["status"] == "success" and saved["settings"]["password"] == "********"
        stored = (await read_settings(env.store))["cache_settings"]
        assert stored["password"] != "redis-secret-1" and stored["password"].startswith(PREFIX)  # sealed
        # this gateway serves it at once: redis-server has no password set, so AUTH fails and the level is down:
        # store it again without the password (a masked one would keep the stored one)
        kept = await env.ok("POST", "/cache/settings", {"cache_settings": {**good, "password": "********"}})
        assert kept["settings"]["password"] == "********"
        stored = (await read_settings(env.store))["cache_settings"]
        assert "password" in stored  # the masked value kept the stored password
        await env.ok("POST", "/cache/settings", {"cache_settings": good})  # left out: kept, as LiteLLM
        assert "password" in (await read_settings(env.store))["cache_settings"]
        await env.ok("POST", "/cache/settings", {"cache_settings": {**good, "password": None}})  # cleared
        assert "password" not in (await read_settings(env.store))["cache_settings"]
        cache = env.gw.response_cache
        assert cache is not None and cache.redis is not None and cache.settings.namespace == "ui"
        page = await env.ok("GET", "/cache/settings")
        assert page["current_values"]["type"] == "redis" and page["current_values"]["redis_type"] == "node"
        assert not await _hit(env, "q1") and await _hit(env, "q1")
        await asyncio.sleep(0.3)  # the store reaches Redis off the request path
        assert other.gw.response_cache is not None and other.gw.response_cache.redis is None  # not yet synced
        assert await other.gw.sync_models()
        assert await _hit(other, "q1")  # from Redis: the other gateway serves the stored settings now
        assert "redis-secret-1" not in orjson.dumps(await env.ok("GET", "/cache/settings")).decode()

    _run(db_url, body)


def test_a_masked_password_stands_for_the_config_files(db_url: str, redis_server: RedisServer) -> None:  # noqa: F811
    """The page shows the file's Redis password masked; saving the page with it unchanged keeps that password."""
    async def main() -> None:
        gw = Gateway(from_litellm({
            "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
            "general_settings": {"master_key": MASTER, "store_model_in_db": True},
            "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "host": "127.0.0.1",
                                                                 "port": redis_server.port, "password": "file-pw"}},
        }, "<test>"))
        store = await open_store(db_url)
        gw.store = store
        gw.runtime.use_store(store)
        env = Env(gw, store)
        try:
            page = await env.ok("GET", "/cache/settings")
            assert page["current_values"]["password"] == "********" and "file-pw" not in str(page)
            await env.ok("POST", "/cache/settings", {"cache_settings": {**page["current_values"], "namespace": "n2"}})
            assert gw.response_cache is not None and gw.response_cache.settings.redis_password == "file-pw"
            assert gw.response_cache.settings.namespace == "n2"
        finally:
            if gw.response_cache is not None:
                await gw.response_cache.aclose()
            gw.store = None
            await store.close()

    asyncio.run(main())


def test_what_saving_needs(db_url: str) -> None:  # noqa: F811
    async def body(env: Env, other: Env) -> None:
        api_error(await env.call("POST", "/cache/settings", {"cache_settings": {"type": "redis", "host": "h"}}),
                  400, "store_model_in_db")

    _run(db_url, body, store_model_in_db=False)

    async def checked(env: Env, other: Env) -> None:
        api_error(await env.call("POST", "/cache/settings", {"cache_settings": {"type": "redis", "port": "x",
                                                                                "host": "h"}}), 400, "port")
        api_error(await env.call("POST", "/cache/settings", {"cache_settings": {"type": "memcached"}}), 400,
                  "memcached")
        api_error(await env.call("POST", "/cache/settings", {"cache_settings": "redis"}), 400, "cache_settings")
        await env.store.create_user(User(user_id="u-1", user_role="internal_user"))
        key = (await env.ok("POST", "/key/generate", {"user_id": "u-1"}))["key"]
        assert (await env.call("GET", "/cache/settings", key=key)).status == 401
        assert (await env.call("POST", "/cache/settings", {"cache_settings": {}}, key=key)).status == 401
        assert "cache_settings" not in await read_settings(env.store)

    _run(db_url, checked)
