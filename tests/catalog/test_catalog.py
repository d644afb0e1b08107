"""The shipped model catalog: its file is valid and covers every served provider's main models, lookups by
provider and by LiteLLM-style names, safe dated-id fallback, tiers, the LiteLLM cost-map override and a
deployment's own model_info / prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaygate.catalog import Catalog, CatalogError, default_catalog, override_path_from_env, reset_default
from relaygate.catalog.entry import FLAGS, MODES
from relaygate.config import from_litellm
from relaygate.config.env import PROVIDERS

CATALOG = default_catalog()


def test_the_file_is_ours_dated_and_every_entry_is_valid() -> None:
    data = Catalog.shipped_data()
    assert data["format"] == "relaygate-model-catalog" and data["version"] == 1
    assert len(data["source_date"]) == 10 and data["source_date"].startswith("20")
    for provider, section in data["providers"].items():
        assert provider in PROVIDERS, provider  # every section is a provider relaygate serves
        for model in section["models"]:
            e = CATALOG.lookup(provider, model)
            assert e is not None and e.mode in MODES and e.supports <= set(FLAGS), (provider, model)
            if e.mode in ("chat", "completion", "responses"):
                assert e.prices["input_cost_per_token"] >= 0 and "output_cost_per_token" in e.prices, model
                assert e.max_input_tokens and e.max_output_tokens, model


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4.1-nano"), ("openai", "gpt-5"), ("openai", "gpt-5-mini"), ("openai", "gpt-5-nano"),
    ("openai", "o1"), ("openai", "o3"), ("openai", "o3-mini"), ("openai", "o4-mini"),
    ("openai", "text-embedding-3-small"), ("openai", "dall-e-3"), ("openai", "gpt-image-1"),
    ("openai", "whisper-1"), ("openai", "tts-1"), ("openai", "omni-moderation-latest"),
    ("azure", "gpt-4o"), ("azure", "gpt-35-turbo"), ("text-completion-openai", "gpt-3.5-turbo-instruct"),
    ("anthropic", "claude-3-haiku-20240307"), ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-3-7-sonnet-20250219"), ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-opus-4-1-20250805"), ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-haiku-4-5-20251001"), ("gemini", "gemini-1.5-pro"), ("gemini", "gemini-2.0-flash"),
    ("gemini", "gemini-2.5-pro"), ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-flash-lite"),
    ("gemini", "gemini-embedding-001"), ("vertex_ai", "gemini-2.5-flash"), ("vertex_ai", "text-embedding-005"),
    ("vertex_ai_beta", "gemini-2.0-flash"), ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
    ("bedrock", "meta.llama3-1-70b-instruct-v1:0"), ("bedrock", "amazon.nova-pro-v1:0"),
    ("bedrock", "amazon.titan-embed-text-v2:0"), ("bedrock", "cohere.command-r-plus-v1:0"),
    ("cohere", "command-r-plus"), ("cohere_chat", "command-r"), ("cohere", "embed-english-v3.0"),
    ("cohere", "rerank-v3.5"), ("mistral", "mistral-large-latest"), ("mistral", "mistral-embed"),
    ("groq", "llama-3.3-70b-versatile"), ("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner"),
    ("xai", "grok-4"), ("xai", "grok-3-mini"), ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ("fireworks_ai", "accounts/fireworks/models/llama-v3p3-70b-instruct"),
])
def test_main_models_of_every_provider_are_known(provider: str, model: str) -> None:
    assert CATALOG.lookup(provider, model) is not None


def test_prices_and_limits_in_litellm_units() -> None:
    e = CATALOG.lookup("openai", "gpt-4o")
    assert e is not None and e.max_input_tokens == 128000 and e.max_output_tokens == 16384
    assert e.prices["input_cost_per_token"] == 2.5e-06 and e.prices["output_cost_per_token"] == 1e-05
    assert e.prices["cache_read_input_token_cost"] == 1.25e-06
    assert {"function_calling", "vision", "prompt_caching", "response_schema"} <= e.supports
    info = e.info()
    assert info["litellm_provider"] == "openai" and info["mode"] == "chat" and info["max_tokens"] == 16384
    assert info["supports_vision"] is True and info["supports_reasoning"] is False
    assert CATALOG.lookup("openai", "whisper-1").prices == {"input_cost_per_second": 0.0001}  # type: ignore[union-attr]
    assert CATALOG.lookup("openai", "tts-1").prices["input_cost_per_character"] == 1.5e-05  # type: ignore[union-attr]
    assert CATALOG.lookup("cohere", "rerank-v3.5").prices["input_cost_per_query"] == 0.002  # type: ignore[union-attr]
    dalle = CATALOG.lookup("openai", "dall-e-3")
    assert dalle is not None and dalle.prices["output_cost_per_image"] == 0.04
    assert dalle.image_prices["hd/1024x1792"] == 0.12
    assert CATALOG.lookup("openai", "text-embedding-3-small").output_vector_size == 1536  # type: ignore[union-attr]


def test_tiers_above_200k_tokens() -> None:
    e = CATALOG.lookup("anthropic", "claude-sonnet-4-5-20250929")
    assert e is not None
    assert e.prices_at(200000)["input_cost_per_token"] == 3e-06
    high = e.prices_at(200001)
    assert high["input_cost_per_token"] == 6e-06 and high["output_cost_per_token"] == 2.25e-05
    assert high["cache_read_input_token_cost"] == 6e-07
    assert e.info()["input_cost_per_token_above_200k_tokens"] == 6e-06
    g = CATALOG.lookup("gemini", "gemini-1.5-pro")
    assert g is not None and g.prices_at(128001)["output_cost_per_token"] == 1e-05


def test_provider_spellings_and_litellm_names() -> None:
    c = CATALOG
    assert c.lookup("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0").model == (  # type: ignore[union-attr]
        "anthropic.claude-3-5-haiku-20241022-v1:0")
    assert c.lookup("bedrock", "converse/eu.anthropic.claude-3-haiku-20240307-v1:0") is not None
    assert c.lookup("vertex_ai", "claude-3-5-sonnet-v2@20241022").model == "claude-3-5-sonnet-20241022"  # type: ignore[union-attr]
    assert c.lookup("gemini", "models/gemini-2.0-flash") is not None
    assert c.lookup_name("gpt-4o") is c.lookup("openai", "gpt-4o")
    assert c.lookup_name("openai/gpt-4o") is c.lookup("openai", "gpt-4o")
    assert c.lookup_name("anthropic/claude-3-5-haiku-latest").model == "claude-3-5-haiku-20241022"  # type: ignore[union-attr]
    assert c.lookup_name("bedrock/anthropic.claude-3-haiku-20240307-v1:0") is not None
    assert c.lookup_name("claude-opus-4-1").provider == "anthropic"  # type: ignore[union-attr]
    assert c.lookup_name("gemini/gemini-2.5-pro").provider == "gemini"  # type: ignore[union-attr]


def test_dated_ids_fall_back_only_where_safe() -> None:
    c = CATALOG
    assert c.lookup("openai", "gpt-4.1-2026-01-01").model == "gpt-4.1"  # type: ignore[union-attr]
    old = c.lookup("openai", "gpt-4o-2024-05-13")  # an older snapshot with its own price wins over the base
    assert old is not None and old.prices["input_cost_per_token"] == 5e-06
    assert c.lookup("openai", "gpt-5-chat-latest-2099-01-01") is None  # `exact` entries take no dated ids
    assert c.lookup("cohere", "command-r-2099-01-01") is None


def test_unknown_models_are_none_never_an_error() -> None:
    for provider, model in (("ollama", "llama3"), ("hosted_vllm", "my/model"), ("openai", "my-finetune"),
                            ("nope", "x"), ("bedrock", ""), ("openai", "")):
        assert CATALOG.lookup(provider, model) is None
    assert CATALOG.lookup_name("ollama/llama3") is None and CATALOG.lookup_name("") is None


def test_litellm_cost_map_override(tmp_path: Path) -> None:
    cost_map = {
        "sample_spec": {"litellm_provider": "one of ..."},
        "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 1000, "max_output_tokens": 10,
                   "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "supports_vision": True},
        "gemini/my-gemini": {"litellm_provider": "gemini", "max_tokens": 8192, "input_cost_per_token": 3e-07,
                             "input_cost_per_token_above_128k_tokens": 6e-07, "output_cost_per_token": 1e-06},
        "my-bare-model": {"litellm_provider": "vertex_ai-language-models", "input_cost_per_token": 1e-07},
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(cost_map))
    c = Catalog.load(str(path))
    e = c.lookup("openai", "gpt-4o")
    assert e is not None and e.origin == "override" and e.prices["input_cost_per_token"] == 1e-06
    assert e.max_input_tokens == 1000 and e.supports == {"vision"}
    assert c.lookup("azure", "gpt-4o") is e  # azure reads the openai section, override first
    g = c.lookup_name("gemini/my-gemini")
    assert g is not None and g.prices_at(200000)["input_cost_per_token"] == 6e-07 and g.max_output_tokens == 8192
    assert c.lookup("vertex_ai", "my-bare-model") is not None
    assert c.lookup("openai", "gpt-4o-mini") is CATALOG.lookup("openai", "gpt-4o-mini") or \
        c.lookup("openai", "gpt-4o-mini").origin == "catalog"  # type: ignore[union-attr]
    assert override_path_from_env({"LITELLM_MODEL_COST_MAP_URL": f"file://{path}"}) == str(path)
    assert override_path_from_env({"LITELLM_MODEL_COST_MAP_URL": str(path)}) == str(path)
    assert override_path_from_env({"LITELLM_MODEL_COST_MAP_URL": "https://example.com/x.json"}) is None
    assert override_path_from_env({}) is None
    with pytest.raises(CatalogError):
        Catalog.load(str(tmp_path / "missing.json"))


def test_default_catalog_reads_the_env_override_and_survives_a_bad_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"my-model": {"litellm_provider": "openai", "input_cost_per_token": 4e-06}}))
    monkeypatch.setenv("LITELLM_MODEL_COST_MAP_URL", str(path))
    reset_default()
    try:
        assert default_catalog().lookup("openai", "my-model") is not None
        path.write_text("{not json")
        reset_default()
        assert default_catalog().lookup("openai", "my-model") is None  # logged, shipped catalog serves
        assert default_catalog().lookup("openai", "gpt-4o") is not None
    finally:
        monkeypatch.delenv("LITELLM_MODEL_COST_MAP_URL")
        reset_default()


def test_a_deployment_overrides_the_catalog() -> None:
    cfg = from_litellm({"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o"},
         "model_info": {"max_input_tokens": 64000, "supports_vision": False, "supports_reasoning": True}},
        {"model_name": "b", "litellm_params": {"model": "azure/my-eu-deploy", "api_base": "https://x.example.com",
                                               "api_key": "k"},
         "model_info": {"base_model": "azure/gpt-4o-mini"}},
        {"model_name": "c", "litellm_params": {"model": "openai/gpt-4o", "input_cost_per_token": 1e-06,
                                               "output_cost_per_token": 2e-06}},
        {"model_name": "d", "litellm_params": {"model": "hosted_vllm/llama", "api_base": "http://h:1/v1",
                                               "input_cost_per_second": 0.001}, "model_info": {"max_tokens": 4096}},
        {"model_name": "e", "litellm_params": {"model": "ollama/llama3"}},
    ]}, "<test>")
    a, b, c, d, e = (CATALOG.for_deployment(dep) for dep in cfg.deployments)
    assert a is not None and a.max_input_tokens == 64000 and a.max_output_tokens == 16384
    assert "vision" not in a.supports and "reasoning" in a.supports and "function_calling" in a.supports
    assert a.prices["input_cost_per_token"] == 2.5e-06 and a.origin == "deployment"
    assert b is not None and b.model == "gpt-4o-mini" and b.prices["input_cost_per_token"] == 1.5e-07
    assert c is not None and c.prices == {  # LiteLLM's router keeps the catalog's service-tier prices
        "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "input_cost_per_token_priority": 4.25e-06,
        "output_cost_per_token_priority": 1.7e-05, "cache_read_input_token_cost_priority": 2.125e-06}
    assert c.max_input_tokens == 128000  # the catalog's limits stay
    assert d is not None and d.prices == {"input_cost_per_second": 0.001} and d.max_output_tokens == 4096
    assert e is None
    assert CATALOG.lookup("openai", "gpt-4o").max_input_tokens == 128000  # type: ignore[union-attr]


def test_the_data_file_is_package_data() -> None:
    """``include-package-data`` is off: the data file must be named in pyproject's package-data."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    conf = tomllib.loads((root / "pyproject.toml").read_text())
    assert "models.json" in conf["tool"]["setuptools"]["package-data"]["relaygate.catalog"]
    assert (root / "src" / "relaygate" / "catalog" / "models.json").is_file()


def test_service_tier_and_1h_cache_write_prices_in_litellm_names() -> None:
    """``service_tiers`` and ``cache_write_1h`` of our format leave the catalog under LiteLLM's keys, with
    LiteLLM 1.110's figures; ``/model/info`` shows them as LiteLLM does."""
    e = CATALOG.lookup("openai", "gpt-4o-2024-11-20")
    assert e is not None
    assert (e.prices["input_cost_per_token_priority"], e.prices["output_cost_per_token_priority"],
            e.prices["cache_read_input_token_cost_priority"]) == (4.25e-06, 1.7e-05, 2.125e-06)
    assert "input_cost_per_token_flex" not in e.prices  # gpt-4o has no flex price
    nano = CATALOG.lookup("openai", "gpt-5-nano")
    assert nano is not None and nano.prices["cache_read_input_token_cost_flex"] == 2.5e-09
    assert not any(k.endswith("_priority") for k in nano.prices)
    sonnet = CATALOG.lookup("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None and sonnet.prices["cache_creation_input_token_cost_above_1hr"] == 6e-06
    info = sonnet.info()
    assert info["cache_creation_input_token_cost_above_1hr_above_200k_tokens"] == 1.2e-05
    assert CATALOG.lookup("openai", "gpt-4o").info()["input_cost_per_token_priority"] == 4.25e-06  # type: ignore[union-attr]
    haiku = CATALOG.lookup("anthropic", "claude-3-5-haiku-20241022")  # no 1-hour price in LiteLLM's map
    assert haiku is not None and "cache_creation_input_token_cost_above_1hr" not in haiku.prices


def test_an_extending_provider_keeps_only_the_service_tiers_it_lists() -> None:
    """Azure reads OpenAI's section but prices its service tiers itself: LiteLLM's ``azure/gpt-5`` has the
    priority prices and no flex ones, ``azure/gpt-4o`` none."""
    gpt5, gpt4o = CATALOG.lookup("azure", "gpt-5-2025-08-07"), CATALOG.lookup("azure", "gpt-4o")
    assert gpt5 is not None and gpt5.prices["input_cost_per_token_priority"] == 2.5e-06
    assert not any(k.endswith("_flex") for k in gpt5.prices)
    assert gpt4o is not None and not any(k.endswith("_priority") for k in gpt4o.prices)
    assert gpt4o.prices["input_cost_per_token"] == 2.5e-06 and gpt4o.max_input_tokens == 128000
    assert CATALOG.lookup("vertex_ai", "claude-haiku-4-5@20251001").prices[  # type: ignore[union-attr]
        "cache_creation_input_token_cost_above_1hr"] == 2e-06


@pytest.mark.parametrize(("raw", "message"), [
    ({"per_mtok": {"input": 1}, "service_tiers": {"turbo": {"input": 2}}}, "unknown service tier"),
    ({"per_mtok": {"input": 1}, "service_tiers": {"priority": {"output_audio": 2}}}, "not a price a service"),
    ({"per_mtok": {"input": 1}, "service_tiers": {"priority": {"input": -1}}}, "expected a price"),
    ({"per_mtok": {"input": 1}, "service_tiers": ["priority"]}, "expected an object"),
])
def test_bad_service_tiers_name_the_entry(raw: dict[str, object], message: str) -> None:
    data = {"format": "relaygate-model-catalog", "version": 1, "providers": {"openai": {"models": {"m": raw}}}}
    with pytest.raises(CatalogError, match=message) as exc:
        Catalog(data)
    assert "openai/m" in str(exc.value)
    bad = {"format": "relaygate-model-catalog", "version": 1, "providers": {
        "openai": {"models": {}}, "azure": {"extends": ["openai"], "inherit_service_tiers": {"m": ["turbo"]},
                                           "models": {}}}}
    with pytest.raises(CatalogError, match=r"azure\.inherit_service_tiers\.m"):
        Catalog(bad)


def test_a_deployment_keeps_the_catalog_service_tiers_only_with_token_prices() -> None:
    """LiteLLM's router copies the catalog's service-tier prices into a deployment that gives
    ``input_cost_per_token`` / ``output_cost_per_token`` and not those; its own tier prices win."""
    cfg = from_litellm({"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-5", "input_cost_per_token": 1e-06,
                                               "output_cost_per_token_flex": 4e-06}},
        {"model_name": "b", "litellm_params": {"model": "openai/gpt-5", "input_cost_per_second": 0.001}},
    ]}, "<test>")
    a, b = (CATALOG.for_deployment(dep) for dep in cfg.deployments)
    assert a is not None and a.prices["output_cost_per_token_flex"] == 4e-06
    assert a.prices["input_cost_per_token_flex"] == 6.25e-07 and a.prices["input_cost_per_token_priority"] == 2.5e-06
    assert b is not None and b.prices == {"input_cost_per_second": 0.001}
