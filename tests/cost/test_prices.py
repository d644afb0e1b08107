"""Price tables against the shipped catalog: exact integer arithmetic, tiers, cache tokens, deployment
overrides, units, unknown models."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from relaygate.catalog import Catalog
from relaygate.config import from_litellm
from relaygate.cost import PICO, Pricer, PriceTable, details, pico_of, to_pico, usd
from relaygate.metrics import Metrics

CAT = Catalog.load(None)


def table(provider: str, model: str) -> PriceTable:
    return PriceTable(CAT.lookup(provider, model))


def exact(*terms: tuple[int, str]) -> int:
    """pico-USD of sum(tokens x USD-per-1M-tokens), computed in Decimal."""
    total = sum(Decimal(n) * Decimal(per_m) / Decimal(1_000_000) for n, per_m in terms)
    assert total * PICO == int(total * PICO)
    return int(total * PICO)


def test_pico_conversion_is_exact() -> None:
    assert to_pico(2.5e-06) == 2_500_000
    assert to_pico(7.5e-08) == 75_000
    assert to_pico(0.000015) == 15_000_000
    assert pico_of(usd(123_456_789_012)) == 123_456_789_012
    t = table("openai", "gpt-4o-mini")
    assert t.tokens(1234, 567) == exact((1234, "0.15"), (567, "0.6"))


def test_openai_cache_read_priced_apart() -> None:
    t = table("openai", "gpt-4o")
    assert t.tokens(1000, 200, cache_read=600) == exact((400, "2.5"), (600, "1.25"), (200, "10"))


def test_anthropic_cache_write_and_read_and_tier() -> None:
    t = table("anthropic", "claude-sonnet-4-5-20250929")
    assert t.tokens(1000, 100, cache_read=300, cache_write=200) == exact(
        (500, "3"), (300, "0.3"), (200, "3.75"), (100, "15"))
    # above 200k prompt tokens the tier's prices apply to every token of the request
    assert t.tokens(250_000, 100, cache_read=50_000) == exact((200_000, "6"), (50_000, "0.6"), (100, "22.5"))
    assert t.tokens(200_000, 100) == exact((200_000, "3"), (100, "15"))  # "above": strictly more


def test_reasoning_tokens_are_output() -> None:
    t = table("gemini", "gemini-2.5-flash")
    assert t.tokens(100, 50, reasoning=30) == exact((100, "0.3"), (50, "2.5"))


def test_deployment_override_wins_and_base_model() -> None:
    cfg = from_litellm({"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                               "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}},
        {"model_name": "b", "litellm_params": {"model": "azure/my-deploy", "api_key": "k", "api_base": "http://x"},
         "model_info": {"base_model": "azure/gpt-4o-mini"}},
    ]}, "<t>")
    pr = Pricer(cfg, CAT)
    a, b = cfg.deployments
    assert pr.table(a).tokens(10, 10) == exact((10, "1"), (10, "2"))
    assert pr.table(b).tokens(10, 10) == exact((10, "0.15"), (10, "0.6"))


def test_units() -> None:
    img = table("openai", "dall-e-3")
    assert img.known and img.images(2) == 2 * img.per_image
    if img.image_by:
        key = next(iter(img.image_by))
        quality, _, size = key.rpartition("/")
        assert img.images(1, size, quality) == img.image_by[key]
    whisper = table("openai", "whisper-1")
    assert whisper.seconds(12.5) == to_pico(0.0001 * 12.5) or whisper.seconds(12.5) == 125 * whisper.per_second // 10
    tts = table("openai", "tts-1")
    assert tts.characters(1000) == 1000 * to_pico(0.000015)


def test_unknown_model_costs_zero_warns_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    cfg = from_litellm({"model_list": [
        {"model_name": "u", "litellm_params": {"model": "openai/no-such-model-xyz", "api_key": "k"}},
        {"model_name": "m", "litellm_params": {"model": "mock/echo"}}]}, "<t>")
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, "relaygate.cost"):
        pr = Pricer(cfg, CAT, metrics)
        Pricer(cfg, CAT, metrics)  # a reload: no second warning
    assert [r.message for r in caplog.records if "no-such-model-xyz" in r.message] and \
        len([r for r in caplog.records if "no-such-model-xyz" in r.message]) == 1
    u, m = cfg.deployments
    assert pr.table(u).tokens(100, 100) == 0 and not pr.table(u).known
    assert pr.table(m).tokens(100, 100) == 0  # the mock is free, silently
    assert metrics.events.get("cost_unknown_model") == 2  # each request priced 0 for want of a price
    assert not pr.priced(u) and not pr.priced(m)  # asked again (the cost header): not counted again
    assert metrics.events.get("cost_unknown_model") == 2


def test_details_both_shapes() -> None:
    oa = b'{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},' \
         b'"completion_tokens_details":{"reasoning_tokens":2},"cache_creation_input_tokens":3}}'
    d = details(oa)
    assert (d.cache_read, d.cache_write, d.reasoning, d.prompt_extra) == (4, 3, 2, 0)
    an = b'{"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":4,"cache_creation_input_tokens":3}}'
    d = details(an)
    assert (d.cache_read, d.cache_write, d.prompt_extra) == (4, 3, 7)
    assert details(b'{"usage":{"prompt_tokens":1,"completion_tokens":1}}').cache_read == 0


def test_audio_tokens_at_audio_rates_else_text_rates() -> None:
    a = table("openai", "gpt-4o-audio-preview")
    assert a.tokens(1000, 300, audio_in=400, audio_out=250) == exact((600, "2.5"), (400, "40"), (50, "10"),
                                                                     (250, "80"))
    t = table("openai", "gpt-4o")  # no audio prices: audio tokens cost what text tokens cost
    assert t.tokens(1000, 300, audio_in=400, audio_out=250) == t.tokens(1000, 300)
    d = details(b'{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"audio_tokens":4},'
                b'"completion_tokens_details":{"audio_tokens":3}}}')
    assert (d.audio_in, d.audio_out, d.cache_read) == (4, 3, 0)
