"""LiteLLM's cost tracking settings changed through the API (``management.cost_settings``) on SQLite and a real
PostgreSQL: each ``PATCH`` answers LiteLLM's shape, is checked as the file's value is, is served at once (the
next request is charged with it), is read back by its ``GET``, outlives the worker (another gateway on the
same database starts with it), and needs the admin and ``store_model_in_db``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.asgi.conftest import call
from tests.budgets.conftest import COST, MASTER, gateway, upstream
from tests.store.conftest import db_url  # noqa: F401  (both backends)

AUTH = {"authorization": f"Bearer {MASTER}"}
STORED = {"general_settings": {"store_model_in_db": True}}


async def patch(gw: Any, name: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    r = await call(gw, "PATCH", f"/config/{name}", body, headers=headers or AUTH)
    assert r.status == status, r.body
    return r.json()


async def get(gw: Any, name: str) -> Any:
    r = await call(gw, "GET", f"/config/{name}", headers=AUTH)
    assert r.status == 200, r.body
    return r.json()


async def charged(gw: Any, model: str = "m") -> tuple[int, dict[str, str]]:
    r = await call(gw, "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                   headers=AUTH)
    return r.status, r.headers


def test_patch_is_served_at_once_read_back_and_kept(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up:
            async with gateway(db_url, up, **STORED) as gw:
                assert await get(gw, "cost_discount_config") == {"values": {}}
                status, h = await charged(gw)
                assert status == 200 and float(h["x-litellm-response-cost"]) == pytest.approx(COST)
                out = await patch(gw, "cost_discount_config", {"openai": 0.5})
                assert out == {"message": "Cost discount configuration updated successfully", "status": "success",
                               "values": {"openai": 0.5}}
                assert await get(gw, "cost_discount_config") == {"values": {"openai": 0.5}}
                status, h = await charged(gw)
                assert float(h["x-litellm-response-cost"]) == pytest.approx(COST * 0.5)
                assert float(h["x-litellm-response-cost-discount-amount"]) == pytest.approx(COST * 0.5)
                out = await patch(gw, "cost_margin_config", {"global": {"fixed_amount": 0.001}})
                assert out["status"] == "success" and out["values"] == {"global": {"fixed_amount": 0.001}}
                status, h = await charged(gw)
                assert float(h["x-litellm-response-cost"]) == pytest.approx(COST * 0.5 + 0.001)
                # the whole value is replaced, not merged (as LiteLLM)
                await patch(gw, "cost_discount_config", {"anthropic": 0.2})
                status, h = await charged(gw)
                assert float(h["x-litellm-response-cost"]) == pytest.approx(COST + 0.001)
                assert await patch(gw, "block_requests_for_models_without_pricing", {"enabled": True}) == {
                    "enabled": True}
                assert await get(gw, "block_requests_for_models_without_pricing") == {"enabled": True}
                assert (await charged(gw))[0] == 200  # m is priced
                # checked as the file's values are: a 400 naming the entry, nothing stored
                for name, body, words in (
                        ("cost_discount_config", {"openai": 1.5}, "cost_discount_config.openai"),
                        ("cost_discount_config", {"openai/": 0.1}, "model pattern for openai/ cannot be empty"),
                        ("cost_discount_config", b"[0.1]", "expected an object of discounts"),
                        ("cost_margin_config", {"openai": {}}, "cannot be empty"),
                        ("cost_margin_config", {"openai": {"fixed_amount": -1}}, "non-negative"),
                        ("cost_margin_config", {"openai": 11}, "between 0 and 10"),
                        ("block_requests_for_models_without_pricing", {"enabled": "yes"}, "expected true or false"),
                        ("block_requests_for_models_without_pricing", {}, '{"enabled": true}'),
                        # provider names nobody serves nor prices (a typo matches nothing): LiteLLM's refusal
                        ("cost_discount_config", {"anthropic": 0.1, "opneai": 0.1, "nosuch/gpt-*": 0.1},
                         "Invalid provider(s): opneai, nosuch."),
                        ("cost_margin_config", {"global": 0.1, "antropic": 0.1}, "Invalid provider(s): antropic.")):
                    err = (await patch(gw, name, body, 400))["error"]
                    assert words in err["message"], (body, err)
                await patch(gw, "cost_margin_config", b"{not json", 400)
                # providers the cost map prices or an adapter serves, unused here, are accepted
                await patch(gw, "cost_discount_config", {"vertex_ai/claude-*": 0.2, "bedrock": 0.1, "ollama": 0.5})
                await patch(gw, "cost_discount_config", {"anthropic": 0.2})
                assert await get(gw, "cost_discount_config") == {"values": {"anthropic": 0.2}}
                # the admin only: a key of an internal user gets LiteLLM's admin-route refusal
                r = await call(gw, "POST", "/key/generate", {"key_alias": "someone"}, headers=AUTH)
                assert r.status == 200, r.body
                other = {"authorization": f"Bearer {r.json()['key']}"}
                err = (await patch(gw, "cost_discount_config", {"openai": 0.9}, 401, other))["error"]
                assert "Only proxy admin" in err["message"]
            # another gateway on the same database (another instance, a restart) starts with what was stored
            async with gateway(db_url, up, **STORED) as again:
                assert await get(again, "cost_discount_config") == {"values": {"anthropic": 0.2}}
                assert await get(again, "cost_margin_config") == {"values": {"global": {"fixed_amount": 0.001}}}
                assert await get(again, "block_requests_for_models_without_pricing") == {"enabled": True}
                status, h = await charged(again)
                assert float(h["x-litellm-response-cost"]) == pytest.approx(COST + 0.001)

    asyncio.run(main())


def test_patch_needs_store_model_in_db(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            err = (await patch(gw, "cost_discount_config", {"openai": 0.5}, 400))["error"]
            assert "store_model_in_db" in err["message"] and err["param"] == "store_model_in_db"
            assert await get(gw, "cost_discount_config") == {"values": {}}

    asyncio.run(main())
