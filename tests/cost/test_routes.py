"""Every answer priced from the usage its provider returned, through the in-process app with its real
transport against a local upstream answering in each provider's shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
import pytest

from relaygate.cost import PICO, pico_of
from relaygate.providers.bedrock import encode_frame
from relaygate.sinks import CompletionRecord
from tests.asgi.conftest import call, make_gateway

MSG = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 10}


def usd(*terms: tuple[int, str]) -> int:
    return int(sum(Decimal(n) * Decimal(p) / Decimal(1_000_000) for n, p in terms) * PICO)


class Upstream:
    """Answers each request with the next (status, content type, body) of ``answers`` (the last repeats)."""

    def __init__(self, answers: list[tuple[int, bytes, bytes]]) -> None:
        self.answers = answers
        self.paths: list[str] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.paths.append(head.split(b" ", 2)[1].decode())
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                status, ctype, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, ctype, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def upstream(*answers: tuple[int, bytes, bytes]) -> AsyncIterator[Upstream]:
    up = Upstream(list(answers))
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield up
    finally:
        server.close()


def gateway(params: dict[str, Any], **top: Any) -> tuple[Any, list[CompletionRecord]]:
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"api_key": "k", **params}}], **top})
    records: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: list[CompletionRecord]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return gw, records


JSON, SSE = b"application/json", b"text/event-stream"


def sse(*objs: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(o) + b"\n\n" for o in objs)
    return out + (b"data: [DONE]\n\n" if done else b"")


def oa_chat(usage: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "x",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                      "finish_reason": "stop"}], "usage": usage})


def oa_stream(usage: dict[str, Any] | None) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "x",
             "choices": [{"index": 0, "delta": {"content": "hello world again"}, "finish_reason": None}]}
    objs: list[Any] = [chunk]
    if usage is not None:
        objs.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "x", "choices": [],
                     "usage": usage})
    return sse(*objs)


async def run(params: dict[str, Any], answers: list[tuple[int, bytes, bytes]], body: dict[str, Any],
              path: str = "/v1/chat/completions", **top: Any) -> tuple[Any, CompletionRecord]:
    async with upstream(*answers) as up:
        params = {**params, "api_base": params.get("api_base", "").replace("{up}", up.url) or up.url}
        gw, records = gateway(params, **top)
        r = await call(gw, "POST", path, {"model": "m", **body})
        assert r.status == 200, r.body
        gw.completions.drain_now()
        await gw.aclose()
        assert len(records) == 1
        return r, records[0]


OA_USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 600}}
GPT4O = usd((400, "2.5"), (600, "1.25"), (200, "10"))


@pytest.mark.parametrize("stream", [False, True])
def test_openai_passthrough(stream: bool) -> None:
    answer = (200, SSE, oa_stream(OA_USAGE)) if stream else (200, JSON, oa_chat(OA_USAGE))
    r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == GPT4O and rec.cache_read_tokens == 600 and not rec.cost_estimated
    if not stream:
        assert r.headers["x-litellm-response-cost"] == str(GPT4O / PICO)


@pytest.mark.parametrize("stream", [False, True])
def test_azure(stream: bool) -> None:
    answer = (200, SSE, oa_stream(OA_USAGE)) if stream else (200, JSON, oa_chat(OA_USAGE))
    _, rec = asyncio.run(run({"model": "azure/gpt-4o", "api_base": "{up}", "api_version": "2024-10-21"},
                             [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == GPT4O


ANT_USAGE = {"input_tokens": 500, "output_tokens": 100, "cache_read_input_tokens": 300,
             "cache_creation_input_tokens": 200}
SONNET = usd((500, "3"), (300, "0.3"), (200, "3.75"), (100, "15"))


def ant_message() -> bytes:
    return orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "x",
                         "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                         "usage": ANT_USAGE})


def ant_stream(usage: dict[str, Any] = ANT_USAGE) -> bytes:
    """An Anthropic stream whose ``message_start`` carries ``usage`` (its output tokens made 1)."""
    events = [("message_start", {"type": "message_start", "message": {
                  "id": "msg_1", "type": "message", "role": "assistant", "model": "x", "content": [],
                  "usage": {**usage, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "hi"}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 100}}),
              ("message_stop", {"type": "message_stop"})]
    return b"".join(b"event: " + e.encode() + b"\ndata: " + orjson.dumps(o) + b"\n\n" for e, o in events)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic(stream: bool, path: str) -> None:
    answer = (200, SSE, ant_stream()) if stream else (200, JSON, ant_message())
    _, rec = asyncio.run(run({"model": "anthropic/claude-sonnet-4-5-20250929"}, [answer],
                             {**MSG, "stream": stream}, path=path))
    assert pico_of(rec.cost) == SONNET, (rec.prompt_tokens, rec.cache_read_tokens, rec.cache_write_tokens)


GEM_USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 150, "thoughtsTokenCount": 50,
             "cachedContentTokenCount": 400, "totalTokenCount": 1200}


@pytest.mark.parametrize("stream", [False, True])
def test_gemini(stream: bool) -> None:
    obj = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP",
                           "index": 0}], "usageMetadata": GEM_USAGE, "modelVersion": "gemini-2.5-flash"}
    answer = (200, SSE, sse(obj, done=False)) if stream else (200, JSON, orjson.dumps(obj))
    _, rec = asyncio.run(run({"model": "gemini/gemini-2.5-flash"}, [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == usd((600, "0.3"), (400, "0.03"), (200, "2.5"))


@pytest.mark.parametrize("stream", [False, True])
def test_cohere(stream: bool) -> None:
    usage = {"billed_units": {"input_tokens": 700, "output_tokens": 80}, "tokens": {"input_tokens": 700,
                                                                                    "output_tokens": 80}}
    if stream:
        events = [{"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}},
                  {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "hi"}}}},
                  {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}]
        answer = (200, SSE, b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
                                     for e in events))
    else:
        answer = (200, JSON, orjson.dumps({"id": "c1", "finish_reason": "COMPLETE", "message": {
            "role": "assistant", "content": [{"type": "text", "text": "hi"}]}, "usage": usage}))
    _, rec = asyncio.run(run({"model": "cohere_chat/command-r-08-2024"}, [answer], {**MSG, "stream": stream}))
    assert (rec.prompt_tokens, rec.completion_tokens) == (700, 80)
    assert rec.cost > 0 and pico_of(rec.cost) == usd((700, "0.15"), (80, "0.6"))


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_with_deployment_prices(stream: bool) -> None:
    done = {"model": "llama3", "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
            "done": True, "done_reason": "stop", "prompt_eval_count": 40, "eval_count": 12}
    if stream:
        first = {**done, "message": {"role": "assistant", "content": "hi"}, "done": False}
        del first["prompt_eval_count"], first["eval_count"], first["done_reason"]
        answer = (200, b"application/x-ndjson", orjson.dumps(first) + b"\n" + orjson.dumps(done) + b"\n")
    else:
        answer = (200, JSON, orjson.dumps({**done, "message": {"role": "assistant", "content": "hi"}}))
    _, rec = asyncio.run(run({"model": "ollama_chat/llama3", "input_cost_per_token": 0.000001,
                              "output_cost_per_token": 0.000003}, [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == usd((40, "1"), (12, "3"))


def test_retried_request_priced_once() -> None:
    fail = (500, JSON, b'{"error": {"message": "boom", "type": "server_error"}}')
    _, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [fail, (200, JSON, oa_chat(OA_USAGE))], MSG,
                             router_settings={"num_retries": 2, "retry_after": 0}))
    assert rec.retries == 1 and pico_of(rec.cost) == GPT4O


def test_failure_costs_zero() -> None:
    async def main() -> CompletionRecord:
        async with upstream((500, JSON, b'{"error": {"message": "boom"}}')) as up:
            gw, records = gateway({"model": "openai/gpt-4o", "api_base": up.url},
                                  router_settings={"num_retries": 0})
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", **MSG})
            assert r.status >= 500 and "x-litellm-response-cost" not in r.headers
            gw.completions.drain_now()
            await gw.aclose()
            return records[0]

    assert asyncio.run(main()).cost == 0.0


def test_stream_without_usage_is_estimated_and_marked() -> None:
    _, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [(200, SSE, oa_stream(None))], {**MSG, "stream": True}))
    assert rec.cost_estimated and rec.completion_tokens > 0 and rec.prompt_tokens > 0
    assert pico_of(rec.cost) == usd((rec.prompt_tokens, "2.5"), (rec.completion_tokens, "10"))


def test_a_stream_record_carries_its_answering_calls_time_to_first_frame() -> None:
    """``api_ttft`` (LiteLLM's time to first token: from the answering call's start) is set for a real
    upstream stream and is at most ``ttft`` (from the request's arrival)."""
    _, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [(200, SSE, oa_stream(OA_USAGE))], {**MSG, "stream": True}))
    assert rec.api_ttft is not None and rec.ttft is not None and 0.0 < rec.api_ttft <= rec.ttft


def test_unknown_model_zero_without_the_cost_header() -> None:
    """LiteLLM (``cost_headers``) sends no cost header for a 0 from a model nobody priced: "0.0" would say the
    answer was free. A priced model's answer that costs 0 keeps it (:func:`test_zero_usage_priced_model`)."""
    r, rec = asyncio.run(run({"model": "openai/not-a-priced-model"}, [(200, JSON, oa_chat(OA_USAGE))], MSG))
    assert rec.cost == 0.0 and "x-litellm-response-cost" not in r.headers, r.headers


def test_zero_usage_priced_model() -> None:
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [(200, JSON, oa_chat(usage))], MSG))
    assert rec.cost == 0.0 and r.headers["x-litellm-response-cost"] == "0.0", r.headers


def test_image_and_rerank_units() -> None:
    img = (200, JSON, b'{"created": 1, "data": [{"url": "http://x/1.png"}, {"url": "http://x/2.png"}]}')
    _, rec = asyncio.run(run({"model": "openai/dall-e-3"}, [img], {"prompt": "a cat", "n": 2},
                             path="/v1/images/generations"))
    assert rec.cost > 0 and pico_of(rec.cost) % 2 == 0
    rr = (200, JSON, b'{"id": "r", "results": [{"index": 0, "relevance_score": 0.9}],'
                     b' "meta": {"billed_units": {"search_units": 1}}}')
    _, rec = asyncio.run(run({"model": "cohere/rerank-v3.5"}, [rr], {"query": "q", "documents": ["a"]},
                             path="/v1/rerank"))
    assert pico_of(rec.cost) == 2_000_000_000  # 0.002 USD a search


def test_cost_in_streaming_usage() -> None:
    """``litellm_settings.include_cost_in_streaming_usage``: the usage chunk carries ``usage.cost`` (USD),
    equal to the record's cost; off by default. (A client that does not ask for usage gets no usage chunk: the
    gateway asked the upstream for it and keeps it, ``providers.openai``.)"""
    answer = (200, SSE, oa_stream(OA_USAGE))
    asked = {**MSG, "stream": True, "stream_options": {"include_usage": True}}
    r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [answer], asked,
                             litellm_settings={"include_cost_in_streaming_usage": True}))
    frames = [orjson.loads(line[6:]) for line in r.body.split(b"\n\n") if line.startswith(b"data: {")]
    usage = [f["usage"] for f in frames if f.get("usage")]
    assert len(usage) == 1 and usage[0]["cost"] == GPT4O / PICO == rec.cost
    assert usage[0]["prompt_tokens"] == 1000  # the rest of the usage object unchanged
    r, _ = asyncio.run(run({"model": "openai/gpt-4o"}, [answer], asked))
    assert b'"cost"' not in r.body
    r, rec = asyncio.run(run({"model": "openai/gpt-4o"}, [answer], {**MSG, "stream": True},
                             litellm_settings={"include_cost_in_streaming_usage": True}))
    assert b'"usage"' not in r.body and rec.cost == GPT4O / PICO  # not asked: none sent, priced all the same


BEDROCK_USAGE = {"inputTokens": 500, "outputTokens": 100, "cacheReadInputTokens": 300, "cacheWriteInputTokens": 200,
                 "totalTokens": 1100}
EVENTSTREAM = b"application/vnd.amazon.eventstream"


def _bedrock_event(name: str, obj: dict[str, Any]) -> bytes:
    return encode_frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                        orjson.dumps(obj))


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_converse(stream: bool) -> None:
    """Converse's usage (``inputTokens`` excludes the cache reads and writes, as Anthropic's) is priced with
    the catalog's Bedrock entry: the same prices as Anthropic's API for this model."""
    if stream:
        answer = (200, EVENTSTREAM, b"".join([
            _bedrock_event("messageStart", {"role": "assistant"}),
            _bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
            _bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
            _bedrock_event("messageStop", {"stopReason": "end_turn"}),
            _bedrock_event("metadata", {"usage": BEDROCK_USAGE, "metrics": {"latencyMs": 12}})]))
    else:
        answer = (200, JSON, orjson.dumps({
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
            "usage": BEDROCK_USAGE, "metrics": {"latencyMs": 12}}))
    _, rec = asyncio.run(run({"model": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"}, [answer],
                             {**MSG, "stream": stream}))
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cache_read_tokens, rec.cache_write_tokens) == (
        1000, 100, 300, 200)
    assert pico_of(rec.cost) == SONNET


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_without_cache_tokens(stream: bool) -> None:
    usage = {"inputTokens": 1234, "outputTokens": 56, "totalTokens": 1290}
    if stream:
        answer = (200, EVENTSTREAM, b"".join([
            _bedrock_event("messageStart", {"role": "assistant"}),
            _bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
            _bedrock_event("messageStop", {"stopReason": "end_turn"}),
            _bedrock_event("metadata", {"usage": usage})]))
    else:
        answer = (200, JSON, orjson.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
                                           "stopReason": "end_turn", "usage": usage}))
    _, rec = asyncio.run(run({"model": "bedrock/amazon.nova-pro-v1:0"}, [answer], {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == usd((1234, "0.8"), (56, "3.2"))


def test_bedrock_titan_embedding() -> None:
    answer = (200, JSON, orjson.dumps({"embedding": [0.1, 0.2], "inputTextTokenCount": 7}))
    _, rec = asyncio.run(run({"model": "bedrock/amazon.titan-embed-text-v2:0"}, [answer], {"input": "hello there"},
                             path="/v1/embeddings"))
    assert rec.prompt_tokens == 7
    assert pico_of(rec.cost) == usd((7, "0.02"))


AUDIO_USAGE = {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 400},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 250}}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_audio_tokens_priced_at_audio_rates(stream: bool) -> None:
    """``*_tokens_details.audio_tokens`` are part of prompt / completion tokens and priced at the audio
    rates (gpt-4o-audio-preview: 40 and 80 USD per 1M against 2.5 and 10 for text), as LiteLLM."""
    answer = (200, SSE, oa_stream(AUDIO_USAGE)) if stream else (200, JSON, oa_chat(AUDIO_USAGE))
    _, rec = asyncio.run(run({"model": "openai/gpt-4o-audio-preview", "api_base": "{up}/v1"}, [answer],
                             {**MSG, "stream": stream}))
    assert pico_of(rec.cost) == usd((600, "2.5"), (400, "40"), (50, "10"), (250, "80"))


def test_gemini_audio_input_tokens() -> None:
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 700}, {"modality": "AUDIO", "tokenCount": 300}]}
    obj = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP",
                           "index": 0}], "usageMetadata": usage}
    r, rec = asyncio.run(run({"model": "gemini/gemini-2.5-flash"}, [(200, JSON, orjson.dumps(obj))], MSG))
    assert orjson.loads(r.body)["usage"]["prompt_tokens_details"]["audio_tokens"] == 300
    assert pico_of(rec.cost) == usd((700, "0.3"), (300, "1"), (100, "2.5"))
