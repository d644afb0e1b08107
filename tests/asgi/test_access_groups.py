"""LiteLLM's model access groups: ``model_info.access_groups`` on deployments, keys granted a group by name
in their ``models``; the grant is expanded when the key is built, so requests, ``/v1/models`` and
``/model/info`` all see the group's models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate.auth import access_groups
from relaygate.config import from_litellm
from relaygate.config.errors import ConfigError
from tests.asgi.conftest import call, make_gateway

CONFIG: dict[str, Any] = {
    "model_list": [
        {"model_name": "fast", "litellm_params": {"model": "mock/x"}, "model_info": {"access_groups": ["beta"]}},
        {"model_name": "smart", "litellm_params": {"model": "mock/y"},
         "model_info": {"access_groups": ["beta", "paid"]}},
        {"model_name": "other", "litellm_params": {"model": "mock/z"}},
        {"model_name": "mock/*", "litellm_params": {"model": "mock/*"}, "model_info": {"access_groups": ["wild"]}},
    ],
    "general_settings": {"master_key": "sk-m"},
    "relaygate_keys": [{"key": "sk-beta", "models": ["beta"]}, {"key": "sk-paid", "models": ["paid", "other"]},
                       {"key": "sk-wild", "models": ["wild"]}, {"key": "sk-all", "models": []}],
}


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def test_groups_are_read_from_model_info_without_a_warning() -> None:
    cfg = from_litellm(CONFIG, "<test>")
    assert access_groups(cfg) == {"beta": ("fast", "smart"), "paid": ("smart",), "wild": ("mock/*",)}
    assert not [w for w in cfg.warnings if "access_groups" in w]
    bad = {"model_list": [{"model_name": "a", "litellm_params": {"model": "mock/x"},
                           "model_info": {"access_groups": "beta"}}]}
    with pytest.raises(ConfigError, match="access_groups"):
        from_litellm(bad, "<test>")


def test_a_key_granted_a_group_may_call_its_models_only() -> None:
    async def main() -> None:
        gw = make_gateway(CONFIG)
        for key, model, status in (("sk-beta", "fast", 200), ("sk-beta", "smart", 200), ("sk-beta", "other", 401),
                                   ("sk-paid", "smart", 200), ("sk-paid", "other", 200), ("sk-paid", "fast", 401),
                                   ("sk-wild", "mock/anything", 200), ("sk-wild", "fast", 401),
                                   ("sk-all", "fast", 200)):
            r = await call(gw, "POST", "/v1/chat/completions", chat(model), {"authorization": f"Bearer {key}"})
            assert r.status == status, (key, model, r.body)
        r = await call(gw, "POST", "/v1/chat/completions", chat("beta"), {"authorization": "Bearer sk-beta"})
        assert r.status == 400  # a group name is not a model

    asyncio.run(main())


def test_v1_models_and_model_info_follow_the_groups() -> None:
    async def main() -> None:
        gw = make_gateway(CONFIG)

        async def ids(key: str, query: str = "") -> list[str]:
            r = await call(gw, "GET", "/v1/models" + query, None, {"authorization": f"Bearer {key}"})
            assert r.status == 200, r.body
            return [m["id"] for m in r.json()["data"]]

        assert await ids("sk-beta") == ["fast", "smart"]
        assert await ids("sk-beta", "?only_model_access_groups=true") == ["beta"]
        assert await ids("sk-beta", "?include_model_access_groups=true") == ["fast", "smart", "beta"]
        assert await ids("sk-m", "?only_model_access_groups=True") == ["beta", "paid", "wild"]
        assert await ids("sk-all", "?only_model_access_groups=true") == ["beta", "paid", "wild"]
        assert await ids("sk-wild", "?return_wildcard_routes=true") == ["mock/*"]
        r = await call(gw, "GET", "/model/info", None, {"authorization": "Bearer sk-paid"})
        assert [d["model_name"] for d in r.json()["data"]] == ["smart", "other"]
        assert r.json()["data"][0]["model_info"]["access_groups"] == ["beta", "paid"]
        r = await call(gw, "GET", "/model_group/info", None, {"authorization": "Bearer sk-beta"})
        assert [g["model_group"] for g in r.json()["data"]] == ["fast", "smart"]

    asyncio.run(main())
