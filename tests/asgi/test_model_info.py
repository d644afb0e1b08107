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


def test_catalog_fills_model_info_and_the_deployment_wins() -> None:
    async def main() -> None:
        gw = make_gateway({"model_list": [
            {"model_name": "c", "litellm_params": {"model": "anthropic/claude-sonnet-4-5-20250929", "api_key": "k"}},
            {"model_name": "az", "litellm_params": {"model": "azure/my-deploy", "api_key": "k",
                                                    "api_base": "https://x.example.com", "api_version": "2024-10-21"},
             "model_info": {"base_model": "azure/gpt-4o-mini", "max_input_tokens": 1000}},
            {"model_name": "local", "litellm_params": {"model": "ollama/llama3"}},
            {"model_name": "emb", "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": "k"}}],
            "general_settings": {"master_key": "sk-m"}})
        r = await call(gw, "GET", "/model/info", None, H)
        by_name = {d["model_name"]: d["model_info"] for d in r.json()["data"]}
        c = by_name["c"]
        assert c["max_input_tokens"] == 200000 and c["max_output_tokens"] == 64000 and c["mode"] == "chat"
        assert c["input_cost_per_token"] == 3e-06 and c["cache_creation_input_token_cost"] == 3.75e-06
        assert c["input_cost_per_token_above_200k_tokens"] == 6e-06
        assert c["supports_reasoning"] is True and c["supports_vision"] is True
        assert "thinking" in c["supported_openai_params"] and "logit_bias" not in c["supported_openai_params"]
        az = by_name["az"]
        assert az["input_cost_per_token"] == 1.5e-07 and az["max_input_tokens"] == 1000  # model_info wins
        local = by_name["local"]
        assert local["max_input_tokens"] is None and local["input_cost_per_token"] == 0.0
        assert by_name["emb"]["mode"] == "embedding" and by_name["emb"]["output_vector_size"] == 1536
        r = await call(gw, "GET", "/model_group/info", None, H)
        groups = {g["model_group"]: g for g in r.json()["data"]}
        assert groups["c"]["max_input_tokens"] == 200000 and groups["c"]["supports_reasoning"] is True
        assert groups["c"]["output_cost_per_token"] == 1.5e-05 and groups["c"]["mode"] == "chat"
        assert groups["local"]["supports_vision"] is False and groups["local"]["mode"] == "chat"
        assert groups["local"]["max_input_tokens"] is None
        assert groups["emb"]["mode"] == "embedding"

    asyncio.run(main())


def test_v1_models_items_are_openai_shaped_with_litellm_query_params() -> None:
    async def main() -> None:
        gw = make_gateway({"model_list": [
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}},
            {"model_name": "b", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "k"}},
            {"model_name": "openai/*", "litellm_params": {"model": "openai/*", "api_key": "k"}}],
            "router_settings": {"fallbacks": [{"a": ["b"]}]},
            "general_settings": {"master_key": "sk-m"}})
        r = await call(gw, "GET", "/v1/models", None, H)
        body = r.json()
        assert body["object"] == "list"
        assert body["data"][0] == {"id": "a", "object": "model", "created": 1677610602, "owned_by": "openai"}
        assert [m["id"] for m in body["data"]] == ["a", "b"]
        r = await call(gw, "GET", "/v1/models?return_wildcard_routes=true", None, H)
        assert [m["id"] for m in r.json()["data"]] == ["a", "b", "openai/*"]
        r = await call(gw, "GET", "/v1/models?include_metadata=true", None, H)
        assert r.json()["data"][0]["metadata"] == {"fallbacks": ["b"]}
        assert r.json()["data"][1]["metadata"] == {"fallbacks": []}
        r = await call(gw, "GET", "/models/", None, H)  # a trailing slash is served like the path without it
        assert r.status == 200 and [m["id"] for m in r.json()["data"]] == ["a", "b"]

    asyncio.run(main())


def test_supported_openai_params_and_token_counter() -> None:
    """LiteLLM's ``/utils/supported_openai_params`` (a group the key may use, or provider/model) and
    ``/utils/token_counter`` (the gateway's own estimate, said as such)."""
    from relaygate.core import tokens
    from relaygate.providers.params import supported_openai_params

    async def main() -> None:
        gw = gateway()
        r = await call(gw, "GET", "/utils/supported_openai_params?model=gpt-4o", None, H)
        assert r.status == 200 and r.json() == {"supported_openai_params": supported_openai_params("openai",
                                                                                                   "gpt-4o")}
        assert "temperature" in r.json()["supported_openai_params"]
        r = await call(gw, "GET", "/utils/supported_openai_params?model=openai/o3-mini", None, H)
        assert "top_p" not in r.json()["supported_openai_params"]  # o-series: LiteLLM drops it
        r = await call(gw, "GET", "/utils/supported_openai_params?model=gpt-4o", None,
                       {"authorization": "Bearer sk-only-emb"})
        assert r.status == 400  # a group the key may not use is not named to it
        r = await call(gw, "GET", "/utils/supported_openai_params", None, H)
        assert r.status == 400 and r.json()["error"]["param"] == "model"

        messages = [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]
        r = await call(gw, "POST", "/utils/token_counter", {"model": "gpt-4o", "messages": messages}, H)
        body = r.json()
        import orjson
        assert body == {"total_tokens": tokens.estimate_messages_tokens(orjson.dumps(messages)),
                        "request_model": "gpt-4o", "model_used": "gpt-4o", "tokenizer_type": "relaygate_estimate",
                        "original_response": None}
        assert 8 <= body["total_tokens"] <= 20
        r = await call(gw, "POST", "/utils/token_counter", {"model": "emb", "prompt": "hello world"}, H)
        assert r.json()["total_tokens"] == tokens.estimate_tokens("hello world")
        assert r.json()["model_used"] == "text-embedding-3-small"
        gem = {"model": "x", "contents": [{"role": "user", "parts": [{"text": "hello"}, {"text": "world"}]}]}
        assert (await call(gw, "POST", "/utils/token_counter", gem, H)).json()["total_tokens"] > 0
        for bad in (b"{", b"[]", {"messages": messages}, {"model": "gpt-4o"}):
            r = await call(gw, "POST", "/utils/token_counter", bad, H)
            assert r.status == 400, bad
        r = await call(gw, "POST", "/utils/token_counter", {"model": "gpt-4o", "prompt": "x"},
                       {"authorization": "Bearer nope"})
        assert r.status == 401

    asyncio.run(main())


def test_transform_request_shows_what_would_be_sent_without_credentials() -> None:
    """LiteLLM's ``/utils/transform_request``: the upstream URL, body and headers the gateway would send to
    the group's first deployment, credentials masked; nothing is sent."""
    async def main() -> None:
        gw = make_gateway({"model_list": [
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5",
                                                        "api_key": "sk-ant-secret-1",
                                                        "api_base": "http://127.0.0.1:9/anthropic"}},
            {"model_name": "gem", "litellm_params": {"model": "gemini/gemini-2.5-flash", "api_key": "AIza-secret-2",
                                                     "api_base": "http://127.0.0.1:9/gemini"}},
            {"model_name": "emb", "litellm_params": {"model": "openai/text-embedding-3-small",
                                                     "api_key": "sk-secret-3", "api_base": "http://127.0.0.1:9/v1"}},
            {"model_name": "wild/*", "litellm_params": {"model": "openai/*", "api_key": "sk-secret-4",
                                                        "api_base": "http://127.0.0.1:9/v1"}}],
            "general_settings": {"master_key": "sk-m"}})
        req = {"model": "claude", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "hi"}],
               "max_tokens": 50, "num_retries": 2}
        r = await call(gw, "POST", "/utils/transform_request", {"call_type": "completion", "request_body": req}, H)
        assert r.status == 200, r.body
        out = r.json()
        assert out["raw_request_api_base"].startswith("http://127.0.0.1:9/anthropic")
        assert out["raw_request_body"]["system"] and out["raw_request_body"]["max_tokens"] == 50
        assert "num_retries" not in out["raw_request_body"]  # a control field, never sent on
        assert out["raw_request_headers"]["x-api-key"] == "***" and b"secret" not in r.body
        r = await call(gw, "POST", "/utils/transform_request",
                       {"call_type": "completion", "request_body": {**req, "model": "gem"}}, H)
        assert r.status == 200 and b"secret" not in r.body and "contents" in r.json()["raw_request_body"]
        r = await call(gw, "POST", "/utils/transform_request",
                       {"call_type": "embedding", "request_body": {"model": "emb", "input": ["a"]}}, H)
        assert r.json()["raw_request_body"]["input"] == ["a"] and r.json()["raw_request_headers"]["Authorization"] == "***"
        for bad in ({"call_type": "completion"}, {"call_type": "nope", "request_body": req},
                    {"call_type": "completion", "request_body": {**req, "model": "unknown"}}, b"{"):
            r = await call(gw, "POST", "/utils/transform_request", bad, H)
            assert r.status == 400, (bad, r.body)
        r = await call(gw, "POST", "/utils/transform_request",
                       {"call_type": "completion", "request_body": {**req, "model": "wild/*"}}, H)
        assert r.status in (200, 400, 404) and b"secret" not in r.body  # a pattern: never a 500, never a secret

    asyncio.run(main())


def test_utils_model_info_is_the_catalogs_entry() -> None:
    """LiteLLM's ``/utils/model_info``: any model the catalog prices, served here or not; a 404 for others."""
    from relaygate.catalog import default_catalog

    async def main() -> None:
        gw = gateway()
        r = await call(gw, "GET", "/utils/model_info?model=gpt-4o-mini&custom_llm_provider=openai", None, H)
        assert r.status == 200, r.body
        body = r.json()
        entry = default_catalog().lookup("openai", "gpt-4o-mini")
        assert entry is not None
        assert body["model"] == "gpt-4o-mini" and body["custom_llm_provider"] == "openai"
        info = body["model_info"]
        assert info["key"] == entry.model and info["litellm_provider"] == "openai"
        assert info["input_cost_per_token"] == entry.prices["input_cost_per_token"] > 0
        assert info["max_input_tokens"] == entry.max_input_tokens and "temperature" in info["supported_openai_params"]
        r = await call(gw, "GET", "/utils/model_info?model=anthropic/claude-3-5-haiku-20241022", None,
                       {"authorization": "Bearer sk-only-emb"})  # any valid key: the catalog is no secret
        assert r.status == 200 and r.json()["custom_llm_provider"] == "anthropic"
        r = await call(gw, "GET", "/utils/model_info?model=no-such-model%0d%0a", None, H)
        assert r.status == 404
        assert r.json()["error"]["message"] == ("model=no-such-model\r\n, custom_llm_provider=None is not in the "
                                                "model cost map")
        r = await call(gw, "GET", "/utils/model_info", None, H)
        assert r.status == 400 and r.json()["error"]["param"] == "model"
        r = await call(gw, "GET", "/utils/model_info?model=gpt-4o", None, {"authorization": "Bearer sk-wrong"})
        assert r.status == 401
    asyncio.run(main())
