"""Service tiers (OpenAI's ``priority`` / ``flex`` ...) and Anthropic's 1-hour cache writes, priced as
LiteLLM 1.110 prices them: the tables, the tier an answer is billed at, and whole requests through the
in-process app (``test_routes.run``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relaygate.catalog import Catalog
from relaygate.config import from_litellm
from relaygate.cost import DEFAULT_TIER, PICO, Pricer, PriceTable, details, pico_of, requested_tier
from relaygate.cost.usage import NONE
from tests.cost.test_routes import JSON, MSG, SSE, ant_stream, run, sse, usd

CAT = Catalog.load(None)


def table(provider: str, model: str) -> PriceTable:
    return PriceTable(CAT.lookup(provider, model))


# -- the tables ---------------------------------------------------------------------------------------------

GPT4O_DEFAULT = usd((400, "2.5"), (600, "1.25"), (200, "10"))
GPT4O_PRIORITY = usd((400, "4.25"), (600, "2.125"), (200, "17"))


def test_gpt4o_at_default_priority_and_flex() -> None:
    t = table("openai", "gpt-4o")
    assert GPT4O_DEFAULT == 3_750_000_000 and GPT4O_PRIORITY == 6_375_000_000
    assert t.tokens(1000, 200, cache_read=600) == GPT4O_DEFAULT
    assert t.tokens(1000, 200, cache_read=600, service_tier=DEFAULT_TIER) == GPT4O_DEFAULT
    assert t.tokens(1000, 200, cache_read=600, service_tier="priority") == GPT4O_PRIORITY
    assert t.tokens(1000, 200, cache_read=600, service_tier="flex") == GPT4O_DEFAULT  # gpt-4o has no flex price


def test_gpt5_flex_and_priority() -> None:
    t = table("openai", "gpt-5")
    assert t.tokens(1000, 200, cache_read=600, service_tier="flex") == usd((400, "0.625"), (600, "0.0625"),
                                                                           (200, "5")) == 1_287_500_000
    assert t.tokens(1000, 200, cache_read=600, service_tier="priority") == usd((400, "2.5"), (600, "0.25"),
                                                                               (200, "20")) == 5_150_000_000


def test_a_missing_tier_price_falls_back_as_litellm() -> None:
    """A tier the model has no price for costs the standard prices (gpt-5-nano has flex, not priority); a
    price the tier lacks is the standard one, and a cache price neither has is the tier's input price
    (gpt-4o-2024-05-13: priority input and output only, no cache price at all), as LiteLLM's
    ``get_cost_per_unit`` / ``_get_token_base_cost``."""
    nano = table("openai", "gpt-5-nano")
    assert nano.tokens(1000, 200, cache_read=600, service_tier="priority") == nano.tokens(1000, 200, cache_read=600)
    assert nano.tokens(1000, 200, cache_read=600, service_tier="flex") == usd((400, "0.025"), (600, "0.0025"),
                                                                              (200, "0.2")) == 51_500_000
    old = table("openai", "gpt-4o-2024-05-13")
    assert old.tokens(1000, 200, cache_read=600, service_tier="priority") == usd((1000, "8.75"), (200, "26.25"))


def test_deployment_overrides_of_tier_prices() -> None:
    """A deployment's ``*_priority`` / ``*_flex`` prices (``litellm_params`` or ``model_info``, LiteLLM's
    key names) win; the catalog's tier prices it does not give stay when it gives token prices (LiteLLM's
    router), and a tier price it lacks falls back to its own standard price."""
    cfg = from_litellm({"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                               "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002,
                                               "input_cost_per_token_priority": 0.000003}},
        {"model_name": "b", "litellm_params": {"model": "openai/my-model", "api_key": "k"},
         "model_info": {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000004,
                        "input_cost_per_token_flex": 0.0000005}},
    ]}, "<t>")
    pr = Pricer(cfg, CAT)
    a, b = (pr.table(dep) for dep in cfg.deployments)
    assert a.tokens(1000, 200) == usd((1000, "1"), (200, "2"))
    assert a.tokens(1000, 200, cache_read=600, service_tier="priority") == usd((400, "3"), (600, "2.125"),
                                                                               (200, "17"))
    assert b.tokens(1000, 200, service_tier="flex") == usd((1000, "0.5"), (200, "4"))
    assert b.tokens(1000, 200, service_tier="priority") == b.tokens(1000, 200) == usd((1000, "1"), (200, "4"))


SONNET_1H = usd((500, "3"), (300, "0.3"), (300, "3.75"), (400, "6"), (100, "15"))


def test_anthropic_1h_cache_writes() -> None:
    """Of 700 cache-write tokens 400 are kept 1 hour (6 USD per 1M on claude-sonnet-4-5 against 3.75);
    a model without a 1-hour price bills them at its cache-write price; above 200k prompt tokens the tier's
    1-hour price (12) applies."""
    s = table("anthropic", "claude-sonnet-4-5-20250929")
    assert SONNET_1H == 6_615_000_000
    assert s.tokens(1500, 100, cache_read=300, cache_write=700, cache_write_1h=400) == SONNET_1H
    assert s.tokens(1500, 100, cache_read=300, cache_write=700) == usd((500, "3"), (300, "0.3"), (700, "3.75"),
                                                                       (100, "15"))
    assert s.tokens(250_000, 100, cache_write=700, cache_write_1h=400) == usd(
        (249_300, "6"), (300, "7.5"), (400, "12"), (100, "22.5"))
    assert table("anthropic", "claude-haiku-4-5").tokens(1500, 100, cache_write=700, cache_write_1h=400) == usd(
        (800, "1"), (300, "1.25"), (400, "2"), (100, "5"))
    h = table("anthropic", "claude-3-5-haiku-20241022")
    assert h.tokens(1500, 100, cache_write=700, cache_write_1h=400) == usd((800, "0.8"), (700, "1"), (100, "4"))


def test_models_without_tier_prices_have_no_tier_tables() -> None:
    assert table("openai", "gpt-4o-mini-tts").service == {} and table("anthropic", "claude-3-5-haiku").service == {}
    assert set(table("openai", "o4-mini").service) == {"priority", "flex"}


# -- the tier an answer is billed at -------------------------------------------------------------------------

OA_BODY = (b'{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":200,'
           b'"prompt_tokens_details":{"cached_tokens":600,"audio_tokens":0}},"service_tier":"%s","system_fingerprint":"f"}')


@pytest.mark.parametrize(("served", "tier"), [("priority", "priority"), ("flex", "flex"), ("fast", "priority"),
                                              ("Priority", "priority"), ("default", DEFAULT_TIER),
                                              ("standard", DEFAULT_TIER), ("auto", ""), ("scale", "")])
def test_the_answer_names_the_tier(served: str, tier: str) -> None:
    d = details(OA_BODY % served.encode(), True)
    assert (d.service_tier, d.cache_read) == (tier, 600)
    assert details(OA_BODY % served.encode()).service_tier == ""  # not read for a model without tier prices


def test_tier_read_only_when_the_model_has_tier_prices() -> None:
    """An answer with no count worth a decode costs what it did (``NONE``, no decode) unless the model has
    service-tier prices; a stream chunk carries ``service_tier`` before its usage."""
    plain = b'{"usage":{"prompt_tokens":10,"completion_tokens":5},"service_tier":"priority"}'
    assert details(plain) is NONE and details(b'{"usage":{"prompt_tokens":1,"completion_tokens":1}}', True) is NONE
    assert details(plain, True).service_tier == "priority"
    chunk = b'{"id":"c","object":"chat.completion.chunk","service_tier":"flex","choices":[],"usage":{"prompt_tokens":3}}'
    assert details(chunk, True).service_tier == "flex"
    assert details(b'{"id":"c","service_tier":"flex","choices":[]}', True).service_tier == "flex"  # no usage


def test_anthropic_usage_tier_and_1h_counts_in_both_shapes() -> None:
    an = (b'{"usage":{"input_tokens":500,"output_tokens":100,"cache_read_input_tokens":300,'
          b'"cache_creation_input_tokens":700,"cache_creation":{"ephemeral_5m_input_tokens":300,'
          b'"ephemeral_1h_input_tokens":400},"service_tier":"standard"}}')
    d = details(an, True)
    assert (d.cache_write, d.cache_write_1h, d.prompt_extra, d.service_tier) == (700, 400, 1000, DEFAULT_TIER)
    oa = (b'{"usage":{"prompt_tokens":1500,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":300,'
          b'"cache_creation_token_details":{"ephemeral_5m_input_tokens":300,"ephemeral_1h_input_tokens":400}},'
          b'"cache_creation_input_tokens":700}}')
    d = details(oa)
    assert (d.cache_read, d.cache_write, d.cache_write_1h, d.prompt_extra) == (300, 700, 400, 0)


def test_the_request_decides_when_the_answer_names_no_tier() -> None:
    assert requested_tier(b'{"model":"m","service_tier":"priority"}') == "priority"
    assert requested_tier(b'{"model":"m","service_tier":"FAST"}') == "priority"
    for body in (b'{"service_tier":"auto"}', b'{"service_tier":"default"}', b'{"service_tier":7}', b'{"m":1}',
                 b'{"messages":[{"content":"{\\"service_tier\\":\\"flex\\"}"}]}', b'not json "service_tier"'):
        assert requested_tier(body) == "", body


# -- whole requests -------------------------------------------------------------------------------------------

OA_USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}


def oa_chat(tier: str | None, usage: dict[str, Any] = OA_USAGE) -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                         "finish_reason": "stop"}], "usage": usage}
    if tier is not None:
        body["service_tier"] = tier
    return orjson.dumps(body)


def oa_stream(tier: str | None, usage: dict[str, Any] | None = OA_USAGE) -> bytes:
    """OpenAI's chunks, each with ``service_tier`` (as OpenAI sends them), the usage chunk last."""
    head: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    if tier is not None:
        head["service_tier"] = tier
    objs: list[Any] = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello world"}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    if usage is not None:
        objs.append({**head, "choices": [], "usage": usage})
    return sse(*objs)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("served", "asked", "expected"), [
    ("default", None, GPT4O_DEFAULT), ("priority", None, GPT4O_PRIORITY), ("flex", "flex", GPT4O_DEFAULT),
    (None, "priority", GPT4O_PRIORITY), ("default", "priority", GPT4O_DEFAULT), ("auto", "priority", GPT4O_PRIORITY),
    (None, None, GPT4O_DEFAULT)])
def test_openai_priced_at_the_served_tier(stream: bool, served: str | None, asked: str | None,
                                          expected: int) -> None:
    answer = (200, SSE, oa_stream(served)) if stream else (200, JSON, oa_chat(served))
    body = {**MSG, "stream": stream, **({"service_tier": asked} if asked else {})}
    r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [answer], body))
    assert pico_of(rec.cost) == expected and rec.cache_read_tokens == 600
    if not stream:
        assert r.headers["x-litellm-response-cost"] == str(expected / PICO)


def test_stream_without_usage_estimated_at_the_served_tier() -> None:
    _, rec = asyncio.run(run({"model": "openai/gpt-5-nano"}, [(200, SSE, oa_stream("flex", None))],
                             {**MSG, "stream": True}))
    assert rec.cost_estimated and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    assert pico_of(rec.cost) == usd((rec.prompt_tokens, "0.025"), (rec.completion_tokens, "0.2"))


@pytest.mark.parametrize("stream", [False, True])
def test_deployment_tier_price_through_the_app(stream: bool) -> None:
    answer = (200, SSE, oa_stream("priority")) if stream else (200, JSON, oa_chat("priority"))
    _, rec = asyncio.run(run({"model": "openai/gpt-4o", "input_cost_per_token": 0.000001,
                              "output_cost_per_token": 0.000002, "input_cost_per_token_priority": 0.000003},
                             [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == usd((400, "3"), (600, "2.125"), (200, "17"))


ANT_USAGE = {"input_tokens": 500, "output_tokens": 100, "cache_read_input_tokens": 300,
             "cache_creation_input_tokens": 700,
             "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
             "service_tier": "standard"}


def ant_message() -> bytes:
    return orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "x",
                         "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": ANT_USAGE})




@pytest.mark.parametrize(("path", "stream"), [("/v1/messages", False), ("/v1/messages", True),
                                             ("/v1/chat/completions", False), ("/v1/chat/completions", True)])
def test_anthropic_1h_cache_writes_through_the_app(path: str, stream: bool) -> None:
    answer = (200, SSE, ant_stream(ANT_USAGE)) if stream else (200, JSON, ant_message())
    _, rec = asyncio.run(run({"model": "anthropic/claude-sonnet-4-5-20250929"}, [answer],
                             {**MSG, "stream": stream}, path=path))
    assert rec.cache_write_tokens == 700
    assert pico_of(rec.cost) == SONNET_1H, (rec.prompt_tokens, rec.cache_read_tokens, rec.cache_write_tokens)


def test_the_requested_tier_is_read_from_the_parsed_view_when_it_has_the_field() -> None:
    """A chat request's view carries ``service_tier`` (no second look at the body); a view without the field
    (or none) falls back to the body."""
    from relaygate.core.views import decode_view

    view = decode_view("chat", b'{"model":"m","messages":[],"service_tier":"flex"}')
    assert requested_tier(b"", view) == "flex"  # the body is not read
    assert requested_tier(b'{"service_tier":"priority"}', object()) == "priority"
    plain = decode_view("chat", b'{"model":"m","messages":[]}')
    assert requested_tier(b'{"service_tier":"priority"}', plain) == ""  # the view says none


RESP_USAGE = {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200,
              "input_tokens_details": {"cached_tokens": 600}, "output_tokens_details": {"reasoning_tokens": 0}}


def oa_response(tier: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                           "model": "gpt-4o-2024-08-06", "usage": RESP_USAGE,
                           "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                                       "content": [{"type": "output_text", "text": "hi", "annotations": []}]}]}
    if tier is not None:
        out["service_tier"] = tier
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_a_native_response_is_priced_at_the_tier_it_names(stream: bool) -> None:
    """OpenAI's Responses API answered natively: the Response's ``service_tier`` prices it, as a chat answer's
    does (the request asked ``auto``: LiteLLM bills the tier served)."""
    resp = oa_response("priority")
    if stream:
        events = [("response.created", {**resp, "status": "in_progress", "usage": None}),
                  ("response.completed", resp)]
        body = b"".join(b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(
            {"type": name, "sequence_number": i, "response": r})) for i, (name, r) in enumerate(events))
        answer = (200, SSE, body)
    else:
        answer = (200, JSON, orjson.dumps(resp))
    _r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [answer],
                              {"input": "hi", "service_tier": "auto", "stream": stream}, path="/v1/responses"))
    assert pico_of(rec.cost) == GPT4O_PRIORITY and rec.cache_read_tokens == 600, (rec.cost, stream)
    _r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [(200, JSON, orjson.dumps(oa_response(None)))],
                              {"input": "hi"}, path="/v1/responses"))
    assert pico_of(rec.cost) == GPT4O_DEFAULT
