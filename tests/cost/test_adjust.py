"""Provider discounts and margins (LiteLLM's ``cost_discount_config`` / ``cost_margin_config``): the rules that pick
a deployment's discount and margin, their checks at start-up, and what a request is charged and told, through the
in-process app with its real transport against a local upstream."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.loader import from_litellm
from relaygate.cost import PICO, pico_of
from relaygate.cost.adjust import Adjustment, adjustment_for, breakdown, resolve_discount, resolve_margin
from relaygate.observe.otel_attrs import request_attributes
from relaygate.sinks.spend import spend_row
from tests.asgi.conftest import call
from tests.cost.test_routes import GPT4O, JSON, MSG, OA_USAGE, SSE, gateway, oa_chat, oa_stream, upstream

# -- which discount and margin apply -------------------------------------------------------------------------------

DISCOUNTS = {"vertex_ai": 0.05, "vertex_ai/claude-*": 0.2, "vertex_ai/claude-3-5-*": 0.3,
             "vertex_ai/gemini-2.5-pro": 0.4, "openai": 0.01}


@pytest.mark.parametrize(("provider", "model", "want"), [
    ("vertex_ai", "gemini-2.5-pro", 0.4),  # the exact model wins over every glob and the provider
    ("vertex_ai", "vertex_ai/gemini-2.5-pro", 0.4),  # the provider prefix is not part of the model
    ("vertex_ai", "claude-3-5-sonnet", 0.3),  # the glob with the most literal characters
    ("vertex_ai", "claude-opus-4", 0.2),
    ("vertex_ai", "gemini-1.5-flash", 0.05),  # no model key matches: the provider's
    ("openai", "gpt-4o", 0.01),
    ("anthropic", "claude-3-5-sonnet", None),  # another provider's patterns never apply
    ("", "gpt-4o", None),
    ("openai", None, 0.01),
])
def test_discount_resolution(provider: str, model: str | None, want: float | None) -> None:
    assert resolve_discount(DISCOUNTS, provider, model) == want


def test_discount_globs_and_prefixes() -> None:
    # a name that still carries the provider prefix only matches a pattern with a slash in it
    assert resolve_discount({"p/*": 0.5}, "p", "p/p/x") == 0.5  # as x (its prefixes taken off)
    assert resolve_discount({"p/*/x": 0.5}, "p", "p/p/x") == 0.5
    # ties between equally specific globs: the first in the config
    assert resolve_discount({"p/a*": 0.1, "p/*b": 0.2}, "p", "ab") == 0.1
    # bracket sets count as no literal character
    assert resolve_discount({"p/m[0-9]*": 0.1, "p/m1*": 0.2}, "p", "m1x") == 0.2
    assert resolve_discount({"p/M*": 0.1}, "p", "m1") is None  # case-sensitive, as LiteLLM's fnmatchcase


def test_margin_resolution() -> None:
    margins: dict[str, Any] = {"openai": 0.1, "global": {"percentage": 0.08, "fixed_amount": 0.0005}}
    assert resolve_margin(margins, "openai") == (0.1, 0.0)
    assert resolve_margin(margins, "anthropic") == (0.08, 0.0005)
    assert resolve_margin({"openai": {"fixed_amount": 0.001}}, "openai") == (0.0, 0.001)
    assert resolve_margin({"openai": 0.1}, "anthropic") is None
    assert adjustment_for({}, {"openai": 0.1}, "anthropic", "claude") is None


def test_adjustment_arithmetic() -> None:
    # LiteLLM's order: the discount off the list price, then the percentage on what is left, then the fixed amount
    adj = Adjustment(0.1, 0.2, 0.001)
    charged, parts = adj.apply(10 * PICO // 1000)  # 0.01 USD
    assert parts == (10_000_000_000, 1_000_000_000, 1_800_000_000 + 1_000_000_000, 0.2, 0.1, 1_000_000_000)
    assert charged == 10_000_000_000 - 1_000_000_000 + 2_800_000_000  # 0.0118 USD
    assert Adjustment(0.0, 0.0, 0.0).apply(123) == (123, (123, 0, 0, 0.0, 0.0, 0))
    assert breakdown(parts) == {"total_cost": 0.0118, "original_cost": 0.01, "discount_percent": 0.1,
                                "discount_amount": 0.001, "margin_percent": 0.2, "margin_fixed_amount": 0.001,
                                "margin_total_amount": 0.0028}


# -- start-up checks -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "words"), [
    ({"cost_discount_config": {"openai": 1.5}}, "cost_discount_config.openai: must be between 0 and 1"),
    ({"cost_discount_config": {"openai": "ten"}}, "cost_discount_config"),
    ({"cost_discount_config": {"openai/": 0.1}}, "model pattern for openai/ cannot be empty"),
    ({"cost_discount_config": {"/gpt-4o": 0.1}}, "names no provider"),
    ({"cost_margin_config": {"openai": 11}}, "cost_margin_config.openai: must be between 0 and 10"),
    ({"cost_margin_config": {"openai": {}}}, "cannot be empty"),
    ({"cost_margin_config": {"openai": {"fixed_amount": -1}}}, "fixed_amount: expected a non-negative number"),
    ({"cost_margin_config": {"openai": {"percent": 0.1}}}, "unknown field(s) percent"),
    ({"cost_margin_config": {"openai": [0.1]}}, "cost_margin_config"),
])
def test_bad_settings_stop_startup(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as got:
        from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}}],
                      "litellm_settings": settings}, "<test>")
    assert words in str(got.value)


def test_settings_are_read_not_ignored() -> None:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}}],
                        "litellm_settings": {"cost_discount_config": {"openai": 0.1},
                                             "cost_margin_config": {"global": {"percentage": 0.05}}}}, "<test>")
    assert cfg.general.cost_discount_config == {"openai": 0.1}
    assert cfg.general.cost_margin_config == {"global": {"percentage": 0.05}}
    assert not any("cost_" in w for w in cfg.warnings)


# -- what a request is charged -------------------------------------------------------------------------------------

ADJUSTED = {"litellm_settings": {"cost_discount_config": {"openai": 0.1, "openai/gpt-4o-mini": 0.5},
                                 "cost_margin_config": {"openai": {"percentage": 0.2, "fixed_amount": 0.001}}}}


def charged(list_pico: int, discount: float = 0.1, percentage: float = 0.2, fixed: str = "0.001") -> int:
    after = list_pico - round(list_pico * discount)
    return after + round(after * percentage) + int(Decimal(fixed) * PICO)


async def ask(params: dict[str, Any], answer: tuple[int, bytes, bytes], body: dict[str, Any],
              **top: Any) -> tuple[Any, Any]:
    async with upstream(answer) as up:
        gw, records = gateway({**params, "api_base": up.url}, **top)
        r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", **body})
        assert r.status == 200, r.body
        gw.completions.drain_now()
        await gw.aclose()
        assert len(records) == 1
        return r, records[0]


def test_a_unary_answer_is_charged_and_told_its_parts() -> None:
    r, rec = asyncio.run(ask({"model": "openai/gpt-4o"}, (200, JSON, oa_chat(OA_USAGE)), MSG, **ADJUSTED))
    want = charged(GPT4O)
    assert pico_of(rec.cost) == want  # what the spend logs, budgets and counters take
    h = r.headers
    assert h["x-litellm-response-cost"] == str(want / PICO)
    assert h["x-litellm-response-cost-original"] == str(GPT4O / PICO)
    assert h["x-litellm-response-cost-discount-amount"] == str(round(GPT4O * 0.1) / PICO)
    after = GPT4O - round(GPT4O * 0.1)
    assert h["x-litellm-response-cost-margin-amount"] == str((round(after * 0.2) + PICO // 1000) / PICO)
    assert h["x-litellm-response-cost-margin-percent"] == "0.2"
    # LiteLLM's cost_breakdown: the spend log's metadata and OpenTelemetry's gen_ai.cost.* read it
    cb = rec.extra["cost_breakdown"]
    assert cb["total_cost"] == want / PICO and cb["original_cost"] == GPT4O / PICO
    assert (cb["discount_percent"], cb["margin_percent"], cb["margin_fixed_amount"]) == (0.1, 0.2, 0.001)
    row = spend_row(rec)
    assert row.metadata["cost_breakdown"] == cb and row.spend == want / PICO
    attrs, _, _ = request_attributes(rec, None, message_logging=False, redact_key_info=False)
    assert attrs["gen_ai.cost.total_cost"] == want / PICO and attrs["gen_ai.cost.discount_amount"] == cb[
        "discount_amount"]


def test_a_stream_is_charged_the_same() -> None:
    _, rec = asyncio.run(ask({"model": "openai/gpt-4o"}, (200, SSE, oa_stream(OA_USAGE)),
                             {**MSG, "stream": True}, **ADJUSTED))
    assert pico_of(rec.cost) == charged(GPT4O)
    assert rec.extra["cost_breakdown"]["original_cost"] == GPT4O / PICO


def test_the_model_key_beats_the_provider_key() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    mini = int((Decimal(1000) * Decimal("0.15") + Decimal(200) * Decimal("0.6")) / Decimal(1_000_000) * PICO)
    _, rec = asyncio.run(ask({"model": "openai/gpt-4o-mini"}, (200, JSON, oa_chat(usage)), MSG, **ADJUSTED))
    assert pico_of(rec.cost) == charged(mini, discount=0.5)


def test_without_settings_nothing_changes() -> None:
    r, rec = asyncio.run(ask({"model": "openai/gpt-4o"}, (200, JSON, oa_chat(OA_USAGE)), MSG))
    assert pico_of(rec.cost) == GPT4O
    assert "x-litellm-response-cost-original" not in r.headers
    assert not (isinstance(rec.extra, dict) and "cost_breakdown" in rec.extra)
    assert "cost_breakdown" not in spend_row(rec).metadata


def test_a_model_nobody_priced_gets_no_margin() -> None:
    r, rec = asyncio.run(ask({"model": "openai/no-such-model-anywhere"}, (200, JSON, oa_chat(OA_USAGE)), MSG,
                             litellm_settings={"cost_margin_config": {"global": {"fixed_amount": 0.5}}}))
    assert rec.cost == 0.0
    assert "x-litellm-response-cost" not in r.headers and "x-litellm-response-cost-original" not in r.headers


def test_another_providers_deployment_is_left_alone() -> None:
    r, rec = asyncio.run(ask({"model": "openai/gpt-4o"}, (200, JSON, oa_chat(OA_USAGE)), MSG,
                             litellm_settings={"cost_discount_config": {"vertex_ai": 0.5},
                                               "cost_margin_config": {"anthropic": 0.5}}))
    assert pico_of(rec.cost) == GPT4O and "x-litellm-response-cost-original" not in r.headers


def test_the_settings_are_readable_by_the_admin() -> None:
    async def go() -> None:
        gw, _ = gateway({"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9"},
                        general_settings={"master_key": "sk-admin"}, **ADJUSTED)
        try:
            admin = {"authorization": "Bearer sk-admin"}
            r = await call(gw, "GET", "/config/cost_discount_config", headers=admin)
            assert r.status == 200 and r.json() == {"values": {"openai": 0.1, "openai/gpt-4o-mini": 0.5}}
            r = await call(gw, "GET", "/config/cost_margin_config", headers=admin)
            assert r.json() == {"values": {"openai": {"percentage": 0.2, "fixed_amount": 0.001}}}
            r = await call(gw, "GET", "/config/cost_margin_config", headers={"authorization": "Bearer sk-wrong"})
            assert r.status == 401
        finally:
            await gw.aclose()

    asyncio.run(go())
