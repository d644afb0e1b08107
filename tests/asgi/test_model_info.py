"""LiteLLM's ``/model/info`` and ``/model_group/info`` from the config: model_info, prices, limits; no
credentials; a virtual key sees only its groups."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.asgi.conftest import call, make_gateway

H = {"authorization": "Bearer sk-m"}


def gateway() -> Any:
    return make_gateway({"model_list": [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-secret-upstream",
                                                    "rpm": 100, "input_cost_per_token": 2.5e-06},
         "model_info": {"id": "dep-1", "max_input_tokens": 128000, "mode": "chat", "supports_vision": True,
                        "output_cost_per_token": 1e-05}},
        {"model_name": "gpt-4o", "litellm_params": {"model": "azure/gpt4o-eu", "api_key": "az-secret",
                                                    "api_base": "https://eu.example.com", "api_version": "2024-10-21",
                                                    "rpm": 50}},
        {"model_name": "emb", "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": "sk-e"},
         "model_info": {"mode": "embedding"}}],
        "general_settings": {"master_key": "sk-m"},
        "relaygate_keys": [{"key": "sk-only-emb", "models": ["emb"]}]})


def test_model_info_shows_the_config_without_credentials() -> None:
    async def main() -> None:
        gw = gateway()
        for path in ("/model/info", "/v1/model/info", "/v2/model/info"):
            r = await call(gw, "GET", path, None, H)
            assert r.status == 200, r.body
            data = r.json()["data"]
            assert [d["model_name"] for d in data] == ["gpt-4o", "gpt-4o", "emb"]
            assert b"secret" not in r.body and b"sk-e" not in r.body
        first = data[0]
        assert first["model_info"]["id"] == "dep-1" and first["model_info"]["max_input_tokens"] == 128000
        assert first["model_info"]["input_cost_per_token"] == 2.5e-06
        assert first["model_info"]["output_cost_per_token"] == 1e-05
        assert first["litellm_params"] == {"model": "openai/gpt-4o", "rpm": 100}
        assert data[1]["litellm_params"]["api_base"] == "https://eu.example.com"
        r = await call(gw, "GET", "/model/info?litellm_model_id=dep-1", None, H)
        assert [d["model_info"]["id"] for d in r.json()["data"]] == ["dep-1"]
        r = await call(gw, "GET", "/model/info", None, {"authorization": "Bearer sk-only-emb"})
        assert [d["model_name"] for d in r.json()["data"]] == ["emb"]
        r = await call(gw, "GET", "/model/info", None, {"authorization": "Bearer nope"})
        assert r.status == 401

    asyncio.run(main())


def test_model_group_info_sums_a_group_up() -> None:
    async def main() -> None:
        gw = gateway()
        r = await call(gw, "GET", "/model_group/info", None, H)
        groups = {g["model_group"]: g for g in r.json()["data"]}
        g = groups["gpt-4o"]
        assert g["providers"] == ["azure", "openai"] and g["rpm"] == 150 and g["tpm"] is None
        assert g["max_input_tokens"] == 128000 and g["supports_vision"] is True and g["mode"] == "chat"
        assert g["input_cost_per_token"] == 2.5e-06
        assert groups["emb"]["mode"] == "embedding"
        r = await call(gw, "GET", "/model_group/info?model_group=emb", None, H)
        assert [g["model_group"] for g in r.json()["data"]] == ["emb"]

    asyncio.run(main())
