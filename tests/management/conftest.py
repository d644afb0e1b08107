"""The management API in-process over both backends: ``db_url`` (SQLite file or a fresh database on the
session's real PostgreSQL, as tests/store), ``run(db_url, body)`` builds a gateway with a master key on a
store there and awaits ``body(env)``.

Keys made by ``/key/generate`` authenticate through the auth package's store lookup (``Runtime.use_store``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import Store, User, open_store
from tests.asgi.conftest import Reply, call
from tests.store.conftest import db_url  # noqa: F401  (the backend parametrisation)

T = TypeVar("T")
MASTER = "sk-master-test-key"


class Env:
    def __init__(self, gw: Gateway, store: Store) -> None:
        self.gw = gw
        self.store = store

    async def call(self, method: str, path: str, body: dict[str, Any] | bytes | None = None,
                   key: str = MASTER) -> Reply:
        return await call(self.gw, method, path, body, headers={"authorization": f"Bearer {key}"})

    async def ok(self, method: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER) -> Any:
        r = await self.call(method, path, body, key)
        assert r.status == 200, (method, path, r.status, r.body)
        return r.json()

    async def user(self, user_id: str, role: str = "internal_user", *, models: list[str] | None = None,
                   **key_fields: Any) -> str:
        """A user row (``role``, ``models``) and a key of its own made by the master key; the key."""
        await self.store.create_user(User(user_id=user_id, user_role=role, models=models or []))
        out = await self.ok("POST", "/key/generate", {"user_id": user_id, **key_fields})
        return str(out["key"])


def api_error(r: Reply, status: int, needle: str) -> None:
    """``r`` is LiteLLM's error shape with ``status`` and a message containing ``needle``."""
    assert r.status == status, (r.status, r.body)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == str(status), err
    assert needle in err["message"], err["message"]


def make_gateway(litellm_settings: dict[str, Any] | None = None,
                 model_list: list[dict[str, Any]] | None = None) -> Gateway:
    return Gateway(from_litellm({
        "model_list": model_list or [{"model_name": m, "litellm_params": {"model": "mock/echo"}}
                                     for m in ("gpt-a", "gpt-b", "gpt-c")],
        "general_settings": {"master_key": MASTER},
        **({"litellm_settings": litellm_settings} if litellm_settings else {}),
    }, "<test>"))


def run(url: str, body: Callable[[Env], Awaitable[T]], litellm_settings: dict[str, Any] | None = None,
        model_list: list[dict[str, Any]] | None = None) -> T:
    async def main() -> Any:
        gw = make_gateway(litellm_settings, model_list)
        store = await open_store(url)
        gw.store = store
        gw.runtime.use_store(store)  # the auth package's store-backed key lookup, as the lifespan does
        try:
            return await body(Env(gw, store))
        finally:
            gw.store = None
            await store.close()

    return asyncio.run(main())  # type: ignore[no-any-return]


def run_pair(url: str, make: Callable[[], Gateway], body: Callable[[Env, Env], Awaitable[None]]) -> None:
    """``body`` with two gateways of ``make()`` on one database (two workers or instances), each with its own
    store connection; their response caches are closed after."""
    async def main() -> None:
        gws = [make(), make()]
        stores = [await open_store(url) for _ in gws]
        for gw, store in zip(gws, stores, strict=True):
            gw.store = store
            gw.runtime.use_store(store)
        try:
            await body(Env(gws[0], stores[0]), Env(gws[1], stores[1]))
        finally:
            for gw in gws:
                if gw.response_cache is not None:
                    await gw.response_cache.aclose()
                gw.store = None
            for store in stores:
                await store.close()

    asyncio.run(main())


@pytest.fixture
def env_url(db_url: str) -> str:  # noqa: F811
    return db_url
