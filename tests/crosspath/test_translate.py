"""Messages <-> Responses translation in-process (``providers.messages_responses``): the request both ways of
thinking, the unary answer, and the stream fed whole, one byte at a time and at random split points."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.shapes_responses import Answer, response_body, response_object, response_stream
from relaygate.core import errors
from relaygate.providers import messages_responses as mr

TOOL = {"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_request_shape() -> None:
    sig = mr.pack_signature("rs_1", "ENC1")
    req: dict[str, Any] = {
        "model": "o3", "max_tokens": 2000, "system": [{"type": "text", "text": "be brief"},
                                                      {"type": "text", "text": "be kind"}],
        "temperature": 0.2, "metadata": {"user_id": "u" * 80}, "tools": [TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "stream": True,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"},
                 "title": "a.pdf"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "look it up", "signature": sig},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": [
                {"type": "text", "text": "20C"}, {"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and tomorrow?"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "claude's", "signature": "native"},
                                              {"type": "redacted_thinking", "data": mr.pack_signature("rs_2", "E2")},
                                              {"type": "text", "text": "ok"}]},
        ]}
    out = mr.to_responses(req, "o3-pro")
    assert out["model"] == "o3-pro" and out["instructions"] == "be brief\nbe kind" and out["store"] is False
    assert out["max_output_tokens"] == 2000 and "temperature" not in out  # a reasoning model takes no sampling
    assert out["reasoning"] == {"effort": "medium"} and out["include"] == ["reasoning.encrypted_content"]
    assert out["tools"] == [{"type": "function", "name": "get_weather", "parameters": TOOL["input_schema"],
                             "strict": False, "description": "Weather in a city"}]
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["user"] == "u" * 64 and out["stream"] is True
    items = out["input"]
    assert items[0] == {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,UERG", "filename": "a.pdf"}]}
    assert items[1] == {"type": "reasoning", "id": "rs_1", "encrypted_content": "ENC1",
                        "summary": [{"type": "summary_text", "text": "look it up"}]}
    assert items[2] == {"type": "message", "role": "assistant", "content": "Let me check."}
    assert items[3] == {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                        "arguments": '{"city":"Paris"}'}
    assert items[4] == {"type": "function_call_output", "call_id": "call_1", "output": "20C\nsunny"}
    assert items[5] == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and tomorrow?"}]}
    # Claude's own signature is never sent to OpenAI; a redacted block of ours is replayed
    assert items[6] == {"type": "reasoning", "id": "rs_2", "encrypted_content": "E2", "summary": []}
    assert items[7] == {"type": "message", "role": "assistant", "content": "ok"} and len(items) == 8


@pytest.mark.parametrize(("thinking", "effort"), [
    ({"type": "enabled", "budget_tokens": 1024}, "low"), ({"type": "enabled", "budget_tokens": 2048}, "medium"),
    ({"type": "enabled", "budget_tokens": 4096}, "high"), ({"type": "enabled", "budget_tokens": 32000}, "high"),
    ({"type": "enabled", "budget_tokens": 500}, "minimal"), ({"type": "adaptive"}, "medium"),
    ({"type": "disabled"}, None), (None, None)])
def test_thinking_budget_to_effort(thinking: Any, effort: str | None) -> None:
    assert mr.effort_of(thinking) == effort


def test_chat_model_keeps_sampling_and_bad_blocks_are_400() -> None:
    out = mr.to_responses({"model": "m", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
                           "messages": [{"role": "user", "content": "hi"}]}, "gpt-4o")
    assert out["temperature"] == 0.5 and out["top_p"] == 0.9 and "include" not in out and "reasoning" not in out
    for bad in ({"type": "video"}, {"type": "image", "source": {"type": "file", "file_id": "f"}}):
        with pytest.raises(errors.BadRequest):
            mr.to_responses({"model": "m", "messages": [{"role": "user", "content": [bad]}]}, "o3-pro")
    with pytest.raises(errors.BadRequest):
        mr.effort_of({"type": "enabled", "budget_tokens": "lots"})
    assert mr.unpack_signature("garbage") is None and mr.unpack_signature("rgrs1:!!!") is None


def _answer(**kw: Any) -> Answer:
    base: dict[str, Any] = {"rid": "r1", "model": "o3-pro", "created": 1, "text": ["Hello ", "world"],
                            "reasoning": ["think ", "hard"], "encrypted": "ENC", "input_tokens": 30,
                            "cached_tokens": 10, "output_tokens": 8, "reasoning_tokens": 3}
    return Answer(**{**base, **kw})


def test_unary_answer() -> None:
    body = orjson.loads(mr.response_to_message(response_body(_answer(calls=[("call_9", "get_weather",
                                                                               ['{"city":', '"Rome"}'])])), "o3"))
    assert body["model"] == "o3" and body["type"] == "message" and body["id"].startswith("msg_")
    think, text, tool = body["content"]
    assert think["type"] == "thinking" and think["thinking"] == "think hard"
    assert mr.unpack_signature(think["signature"]) == ("rs_r1", "ENC")
    assert text == {"type": "text", "text": "Hello world"}
    assert tool == {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Rome"}}
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {"input_tokens": 20, "output_tokens": 8, "cache_read_input_tokens": 10}


def test_unary_variants() -> None:
    r = response_object(_answer(reasoning=[], status="incomplete"))
    body = orjson.loads(mr.response_to_message(orjson.dumps(r), "o3"))
    assert body["content"][0]["type"] == "redacted_thinking" and body["stop_reason"] == "max_tokens"
    # a server that sends the reasoning as content (vLLM) and no summary
    r["output"][0] = {"type": "reasoning", "id": "rs_v", "summary": [],
                      "content": [{"type": "reasoning_text", "text": "raw thoughts"}]}
    body = orjson.loads(mr.response_to_message(orjson.dumps(r), "o3"))
    assert body["content"][0] == {"type": "thinking", "thinking": "raw thoughts", "signature": ""}
    with pytest.raises(errors.UpstreamProtocolError):
        mr.response_to_message(b"<html>", "o3")
    failed = {**r, "status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    with pytest.raises(errors.GatewayError) as ei:
        mr.response_to_message(orjson.dumps(failed), "o3")
    assert ei.value.status == 429 and "slow down" in ei.value.message


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            assert name.startswith(b"event: ") and data.startswith(b"data: "), block
            obj = orjson.loads(data[6:])
            assert obj["type"] == name[7:].decode()
            out.append((obj["type"], obj))
    return out


def run(stream: bytes, splits: list[int] | None = None) -> bytes:
    tr = mr.ResponsesToMessages("o3", 42)
    out = []
    pos = 0
    for cut in [*(splits or []), len(stream)]:
        out.append(tr.feed(stream[pos:cut]))
        pos = cut
    out.append(tr.close())
    assert tr.done
    return b"".join(out)


STREAM = b"".join(response_stream(_answer(calls=[("call_1", "get_weather", ['{"city":', '"Oslo"}']),
                                                 ("call_2", "get_time", ['{}'])])))


def check(out: bytes) -> None:
    evs = events(out)
    kinds = [k for k, _ in evs]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 42 and evs[0][1]["message"]["model"] == "o3"
    blocks: dict[int, dict[str, Any]] = {}
    open_: set[int] = set()
    for kind, e in evs:
        if kind == "content_block_start":
            assert e["index"] == len(blocks) and not open_
            blocks[e["index"]] = dict(e["content_block"])
            open_.add(e["index"])
        elif kind == "content_block_delta":
            assert e["index"] in open_
            b, d = blocks[e["index"]], e["delta"]
            key = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
                   "input_json_delta": "partial"}[d["type"]]
            b[key] = b.get(key, "") + d[key if key != "partial" else "partial_json"]
        elif kind == "content_block_stop":
            open_.remove(e["index"])
    assert not open_
    assert [b["type"] for b in blocks.values()] == ["thinking", "text", "tool_use", "tool_use"]
    assert blocks[0]["thinking"] == "think hard" and mr.unpack_signature(blocks[0]["signature"]) == ("rs_r1", "ENC")
    assert blocks[1]["text"] == "Hello world"
    assert (blocks[2]["id"], blocks[2]["name"], orjson.loads(blocks[2]["partial"])) == (
        "call_1", "get_weather", {"city": "Oslo"})
    assert (blocks[3]["id"], orjson.loads(blocks[3]["partial"])) == ("call_2", {})
    delta = evs[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 20, "output_tokens": 8, "cache_read_input_tokens": 10}


def test_stream_whole_and_byte_by_byte() -> None:
    whole = run(STREAM)
    check(whole)
    assert run(STREAM, list(range(1, len(STREAM)))) == whole


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=40))
def test_stream_random_splits(cuts: list[int]) -> None:
    check(run(STREAM, sorted(set(cuts))))


def test_stream_usage_and_estimate() -> None:
    tr = mr.ResponsesToMessages("o3")
    tr.feed(STREAM[: len(STREAM) // 2])
    assert tr.content_tokens > 0 and tr.last_data == b""
    tr.feed(STREAM[len(STREAM) // 2:])
    assert orjson.loads(tr.last_data)["usage"] == {"input_tokens": 20, "output_tokens": 8,
                                                   "cache_read_input_tokens": 10}


def test_stream_incomplete_and_reasoning_without_summary() -> None:
    evs = events(run(b"".join(response_stream(_answer(reasoning=[], status="incomplete")))))
    starts = [e["content_block"] for k, e in evs if k == "content_block_start"]
    assert starts[0]["type"] == "redacted_thinking" and mr.unpack_signature(starts[0]["data"]) == ("rs_r1", "ENC")
    assert evs[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_stream_failures() -> None:
    frames = response_stream(_answer())
    failed = b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed","error":' \
             b'{"code":"server_error","message":"boom"}}}\n\n'
    tr = mr.ResponsesToMessages("o3")
    tr.feed(frames[0])
    with pytest.raises(errors.GatewayError) as ei:
        tr.feed(failed)
    assert ei.value.status == 500 and "boom" in ei.value.message
    with pytest.raises(errors.GatewayError) as ei:
        mr.ResponsesToMessages("o3").feed(b'data: {"type":"error","code":"rate_limit_exceeded","message":"later"}\n\n')
    assert ei.value.status == 429
    with pytest.raises(errors.UpstreamProtocolError):
        mr.ResponsesToMessages("o3").close()
    with pytest.raises(errors.UpstreamProtocolError):  # a delta that is not a string
        mr.ResponsesToMessages("o3").feed(b'event: response.output_text.delta\ndata: {"delta":5}\n\n')
    # an upstream that ends without its final event: the message is closed, the stop reason end_turn
    evs = events(run(b"".join(frames[:-1])))
    assert evs[-2][1]["delta"]["stop_reason"] == "end_turn" and evs[-1][0] == "message_stop"


BLOCKS = [{"type": "thinking", "thinking": "weigh it", "signature": "sig-1"}, {"type": "redacted_thinking", "data": "D"}]


def test_thinking_blocks_in_encrypted_content_both_ways() -> None:
    from relaygate.providers import responses_api as ra

    enc = mr.encrypted_content([*BLOCKS, {"type": "thinking", "thinking": "unsigned"}])
    assert enc is not None and mr.thinking_blocks(enc) == BLOCKS
    assert mr.thinking_blocks("gAAAAB-openai-blob") is None and mr.thinking_blocks("[1, 2]") is None
    chat = ra.to_chat({"input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": enc},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "20C"}]}, "claude")
    assistant = chat["messages"][1]
    assert assistant["thinking_blocks"] == BLOCKS and assistant["tool_calls"][0]["id"] == "c1"
    ech = ra.echo({"model": "m", "input": "x"}, None)
    body = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "ok", "reasoning_content": "weigh it",
                                                  "thinking_blocks": BLOCKS}, "finish_reason": "stop"}]})
    item = orjson.loads(ra.chat_to_response(body, "m", 1, ech))["output"][0]
    assert item["type"] == "reasoning" and mr.thinking_blocks(item["encrypted_content"]) == BLOCKS
    frames = [b"data: " + orjson.dumps({"choices": [{"delta": d}]}) + b"\n\n" for d in (
        {"reasoning_content": "weigh ", "thinking_blocks": [{"type": "thinking", "thinking": "weigh "}]},
        {"reasoning_content": "it", "thinking_blocks": [{"type": "thinking", "thinking": "it", "signature": "sig-1"}]},
        {"thinking_blocks": [{"type": "redacted_thinking", "data": "D"}]}, {"content": "ok"})]
    s = ra.ResponsesStream("m", 1, ech)
    out = b"".join(s.feed(f) for f in frames) + s.close()
    final = events(out)[-1][1]["response"]
    assert mr.thinking_blocks(final["output"][0]["encrypted_content"]) == BLOCKS
