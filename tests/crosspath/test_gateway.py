"""The cross paths through the gateway in-process, against the real local upstream: ``/v1/messages`` to
Responses-only OpenAI and Azure deployments (unary, stream, usage and cost), a native Anthropic stream cut
in the middle of an event, and ``/v1/responses`` to an ``anthropic/`` deployment with reasoning."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from bench.shapes_responses import Answer
from relaygate.frontends.anthropic import _Native
from relaygate.sinks import CompletionRecord
from tests.asgi.conftest import Reply, call
from tests.crosspath.conftest import AUTH, Upstream, gateway
from tests.crosspath.test_translate import events


def ask(up: Upstream, body: dict[str, Any], path: str = "/v1/messages",
        records: list[CompletionRecord] | None = None) -> Reply:
    async def go() -> Reply:
        async with gateway(up) as gw:
            q = gw.pipeline.completions
            put = q.put

            def keep(r: CompletionRecord) -> None:
                if records is not None:
                    records.append(r)
                put(r)

            q.put = keep  # type: ignore[method-assign]
            return await call(gw, "POST", path, body, AUTH)

    return asyncio.run(go())


MSG = {"model": "o3", "max_tokens": 4096, "system": "be brief", "messages": [{"role": "user", "content": "hi"}],
       "thinking": {"type": "enabled", "budget_tokens": 4096}, "temperature": 1}


def test_messages_to_responses_unary(upstream: Upstream) -> None:
    upstream.answer = Answer(rid="u1", model="o3-pro", created=1, text=["Hi ", "there"], reasoning=["hmm"],
                             encrypted="ENC", input_tokens=40, cached_tokens=8, output_tokens=6)
    r = ask(upstream, MSG)
    assert r.status == 200, r.body
    body = r.json()
    assert body["model"] == "o3" and [b["type"] for b in body["content"]] == ["thinking", "text"]
    assert body["content"][1]["text"] == "Hi there" and body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 32, "output_tokens": 6, "cache_read_input_tokens": 8}
    (sent,) = upstream.bodies("/v1/responses")
    assert sent["model"] == "o3-pro" and sent["instructions"] == "be brief" and sent["store"] is False
    assert sent["reasoning"] == {"effort": "high"} and "temperature" not in sent
    assert sent["input"] == [{"type": "message", "role": "user", "content": "hi"}]
    assert not upstream.bodies("/chat/completions")
    assert float(r.headers["x-litellm-response-cost"]) > 0


def test_messages_to_responses_stream(upstream: Upstream) -> None:
    upstream.answer = Answer(rid="s1", model="o3-pro", created=1, text=["a ", "b ", "c"],
                             calls=[("call_1", "f", ['{"x":', "1}"])], input_tokens=20, output_tokens=4)
    r = ask(upstream, {**MSG, "stream": True})
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.body)
    kinds = [k for k, _ in evs]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "error" not in kinds
    text = "".join(e["delta"].get("text", "") for k, e in evs if k == "content_block_delta")
    args = "".join(e["delta"].get("partial_json", "") for k, e in evs if k == "content_block_delta")
    assert text == "a b c" and orjson.loads(args) == {"x": 1}
    assert evs[-2][1]["delta"]["stop_reason"] == "tool_use" and evs[-2][1]["usage"]["output_tokens"] == 4
    assert upstream.bodies("/v1/responses")[0]["stream"] is True


def test_mode_from_model_info_and_azure(upstream: Upstream) -> None:
    assert ask(upstream, {**MSG, "model": "mine"}).status == 200
    assert upstream.bodies("/v1/responses")[-1]["model"] == "my-model"
    r = ask(upstream, {**MSG, "model": "az", "stream": True})
    assert r.status == 200 and events(r.body)[-1][0] == "message_stop"
    path, body = upstream.seen[-1]
    assert path == "/openai/responses" and body["model"] == "my-o3"


def test_upstream_error_in_anthropic_shape(upstream: Upstream) -> None:
    r = ask(upstream, {**MSG, "messages": [{"role": "user", "content": [{"type": "video"}]}]})
    assert r.status == 400 and r.json()["type"] == "error"
    assert not upstream.bodies("/v1/responses")


def test_native_feed_holds_partial_events() -> None:
    whole = b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n"
    n = _Native()
    assert n.feed(whole + b"event: message_delta\nda") == whole
    assert n.feed(b"ta: {}\n") == b""
    assert n.feed(b"\nevent: c\r\ndata: {}\r\n\r\nevent: d") == b"event: message_delta\ndata: {}\n\n" \
        b"event: c\r\ndata: {}\r\n\r\n"
    assert n.close() == b"event: d"  # a clean end flushes what was held


def test_native_stream_cut_mid_event(upstream: Upstream) -> None:
    upstream.cut = True
    r = ask(upstream, {"model": "claude", "max_tokens": 100, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    blocks = r.body.split(b"\n\n")
    assert blocks[-1] == b""
    for block in blocks[:-1]:  # every event is whole, the last one the error
        name, data = block.split(b"\n", 1)
        assert name.startswith(b"event: ") and orjson.loads(data[6:])["type"] == name[7:].decode()
    assert blocks[-2].startswith(b"event: error\n")


def test_responses_to_anthropic_with_reasoning(upstream: Upstream) -> None:
    req = {"model": "claude", "input": "2+2?", "reasoning": {"effort": "high", "summary": "auto"},
           "max_output_tokens": 8000}
    r = ask(upstream, req, "/v1/responses")
    assert r.status == 200, r.body
    out = r.json()["output"]
    assert out[0]["type"] == "reasoning" and out[0]["summary"] == [{"type": "summary_text",
                                                                     "text": "two plus two"}]
    assert out[1]["content"][0]["text"] == "The answer is 4"
    sent = upstream.bodies("/v1/messages")[-1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096} and sent["max_tokens"] == 8000
    r = ask(upstream, {**req, "stream": True}, "/v1/responses")
    kinds = [k for k, _ in events(r.body)]
    for k in ("response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
              "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"):
        assert k in kinds, k
    final = events(r.body)[-1][1]["response"]
    assert final["output"][0]["summary"][0]["text"] == "two plus two " and final["status"] == "completed"
    # without a summary asked for, the thinking is the reasoning item's content
    r = ask(upstream, {**req, "reasoning": {"effort": "low"}}, "/v1/responses")
    item = r.json()["output"][0]
    assert item["summary"] == [] and item["content"][0]["text"] == "two plus two"
    assert upstream.bodies("/v1/messages")[-1]["thinking"]["budget_tokens"] == 1024


def test_responses_stream_cut_mid_event(upstream: Upstream) -> None:
    upstream.answer = Answer(rid="c1", model="o3-pro", created=1, text=[f"w{i} " for i in range(10)])
    upstream.cut = True
    r = ask(upstream, {**MSG, "stream": True})
    assert r.status == 200
    evs = events(r.body)  # every event whole, parsed; the last one the error
    kinds = [k for k, _ in evs]
    assert kinds[0] == "message_start" and "content_block_delta" in kinds
    assert kinds[-1] == "error" and "message_stop" not in kinds
    assert evs[-1][1]["error"]["type"] in ("api_error", "overloaded_error")


def test_responses_replays_thinking_blocks_to_anthropic(upstream: Upstream) -> None:
    enc = orjson.dumps([{"type": "thinking", "thinking": "weigh it", "signature": "sig-1"}]).decode()
    r = ask(upstream, {"model": "claude", "reasoning": {"effort": "low"}, "max_output_tokens": 4000, "input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": enc},
        {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "20C"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]},
        "/v1/responses")
    assert r.status == 200, r.body
    sent = upstream.bodies("/v1/messages")[-1]["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"][0] == {
        "type": "thinking", "thinking": "weigh it", "signature": "sig-1"}
    assert sent[1]["content"][1]["type"] == "tool_use" and sent[2]["content"][0]["type"] == "tool_result"


def test_unary_and_stream_counted_alike(upstream: Upstream) -> None:
    upstream.answer = Answer(rid="p1", model="o3-pro", created=1, text=["a"], input_tokens=1000, cached_tokens=400,
                             output_tokens=100)
    recs: list[CompletionRecord] = []
    ask(upstream, MSG, records=recs)
    ask(upstream, {**MSG, "stream": True}, records=recs)
    unary, stream = recs
    assert (unary.prompt_tokens, unary.completion_tokens, unary.cache_read_tokens) == (600, 100, 400)
    assert (stream.prompt_tokens, stream.completion_tokens, stream.cache_read_tokens) == (600, 100, 400)
    assert unary.cost == stream.cost > 0
