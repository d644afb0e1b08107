"""Deployment choice and upstream URLs (``files.choose``), without IO: LiteLLM's sources of ``model`` /
``target_model_names`` / ``custom_llm_provider`` in their order, the key's allow-list, Azure's URL forms."""

from __future__ import annotations

import asyncio

import pytest

from relaygate.auth.resolver import Principal
from relaygate.config import from_litellm
from relaygate.core import errors
from relaygate.files.choose import Where, by_id, choose, headers_for, url_for
from relaygate.runtime import Runtime

VKEY = "sk-choose-key"


def runtime() -> Runtime:
    return Runtime.build(from_litellm({
        "model_list": [
            {"model_name": "chat", "litellm_params": {"model": "anthropic/claude-x", "api_key": "a"}},
            {"model_name": "oai", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-o",
                                                     "api_base": "http://up.test/v1"}},
            {"model_name": "az", "litellm_params": {"model": "azure/dep-one", "api_key": "az-k",
                                                    "api_base": "https://r.openai.azure.com/",
                                                    "api_version": "2024-10-21"}},
            {"model_name": "az1", "litellm_params": {"model": "azure/dep2", "api_key": "az-k",
                                                     "api_base": "https://r.openai.azure.com/openai/v1"}},
        ],
        "general_settings": {"master_key": "sk-m"},
        "relaygate_keys": [{"key": VKEY, "models": ["az"]}],
    }, "<test>"))


def who(rt: Runtime, key: str) -> Principal:
    p: Principal = asyncio.run(rt.principals.resolve([(b"authorization", f"Bearer {key}".encode())]))
    return p


def test_sources_in_litellm_order() -> None:
    hdrs = [(b"x-litellm-model", b"from-header"), (b"custom-llm-provider", b"Azure")]
    assert Where.read(None, hdrs, {"model": "from-query"}, {"model": "from-field"}).model == "from-field"
    assert Where.read(None, hdrs, {"model": "from-query"}, {}).model == "from-query"
    w = Where.read(None, hdrs, {}, {})
    assert (w.model, w.provider) == ("from-header", "azure")
    w = Where.read("openai", hdrs, {"custom_llm_provider": "x"}, {})
    assert w.provider == "openai"
    assert Where.read(None, [], {"custom_llm_provider": "x"}, {"custom_llm_provider": "y"}).provider == "x"
    assert Where.read(None, [], {}, {"target_model_names": " oai ,oai"}).model == "oai"
    with pytest.raises(errors.BadRequest) as ei:
        Where.read(None, [], {}, {"target_model_names": "oai,az"})
    assert ei.value.param == "target_model_names"


def test_choice_and_allow_list() -> None:
    rt = runtime()
    master, key = who(rt, "sk-m"), who(rt, VKEY)
    assert choose(rt.router, master, Where("oai")).dep.model_name == "oai"
    assert choose(rt.router, master, Where(None, None)).dep.model_name == "oai"  # default provider: openai
    assert choose(rt.router, master, Where(None, "azure")).dep.model_name == "az"
    assert choose(rt.router, key, Where(None, "azure")).dep.model_name == "az"
    with pytest.raises(errors.GatewayError) as ei:
        choose(rt.router, key, Where("oai"))
    assert (ei.value.status, ei.value.type) == (401, "key_model_access_denied")
    with pytest.raises(errors.BadRequest):  # its allow-list holds no openai deployment
        choose(rt.router, key, Where(None, "openai"))
    with pytest.raises(errors.BadRequest) as ei:
        choose(rt.router, master, Where("chat"))
    assert ei.value.param == "model"
    with pytest.raises(errors.BadRequest):
        choose(rt.router, master, Where(None, "bedrock"))
    with pytest.raises(errors.BadRequest):
        choose(rt.router, master, Where("no-such-group"))


def test_urls_and_headers() -> None:
    rt = runtime()
    master = who(rt, "sk-m")
    oai = choose(rt.router, master, Where("oai"))
    assert url_for(oai, "/files") == "http://up.test/v1/files"
    assert url_for(oai, "/files", {"limit": 5, "after": None}) == "http://up.test/v1/files?limit=5"
    assert ("Authorization", "Bearer sk-o") in headers_for(oai)
    az = choose(rt.router, master, Where("az"))
    assert url_for(az, "/batches/b%2F1") == "https://r.openai.azure.com/openai/batches/b%2F1?api-version=2024-10-21"
    assert ("api-key", "az-k") in headers_for(az, "application/json")
    assert ("Content-Type", "application/json") in headers_for(az, "application/json")
    az1 = choose(rt.router, master, Where("az1"))
    assert url_for(az1, "/files") == "https://r.openai.azure.com/openai/v1/files"
    assert by_id(rt.router, az.dep.id) is az and by_id(rt.router, "nope") is None
