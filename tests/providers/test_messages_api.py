"""Anthropic Messages API as inbound format: request to OpenAI, OpenAI body and chunks back to Anthropic."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.messages_api import MessagesStream, error_body, openai_to_message, to_openai


def test_request_to_openai() -> None:
    req = {"model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "sys"}],
           "stop_sequences": ["Z"], "temperature": 0.3, "metadata": {"user_id": "u"},
           "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
           "tool_choice": {"type": "any", "disable_parallel_tool_use": True}, "stream": True,
           "messages": [
               {"role": "user", "content": [{"type": "text", "text": "look"},
                                            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                         "data": "iVBO"}}]},
               {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                                                 {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "res"},
                                            {"type": "text", "text": "and?"}]}]}
    out = to_openai(req, "claude")
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "tu1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "tu1", "content": "res"},
        {"role": "user", "content": "and?"}]
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                              "description": "d"}}]
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["stop"] == ["Z"] and out["user"] == "u" and out["max_tokens"] == 100
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_openai_body_to_message() -> None:
    body = orjson.dumps({"id": "chatcmpl-1", "model": "gpt-x", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "hi", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 2}"}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55,
                  "prompt_tokens_details": {"cached_tokens": 20}}})
    out = orjson.loads(openai_to_message(body, "m"))
    assert out == {"id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                   "content": [{"type": "text", "text": "hi"},
                               {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 2}}],
                   "stop_reason": "tool_use", "stop_sequence": None,
                   "usage": {"input_tokens": 30, "output_tokens": 5, "cache_read_input_tokens": 20}}


def test_error_body_shape() -> None:
    assert orjson.loads(error_body(errors.RateLimited("slow down"))) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                                     "model": "gpt-x", "choices": [{"index": 0, "delta": delta,
                                                                    "finish_reason": finish}]}) + b"\n\n"


CHUNKS = b"".join([
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Let me "}),
    _chunk({"content": "check ✓"}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
    _chunk({}, "tool_calls"),
    b"data: " + orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
                              "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9,
                                                       "total_tokens": 21}}) + b"\n\n",
    b"data: [DONE]\n\n",
])


def _events(out: bytes) -> list[tuple[str, Any]]:
    res = []
    for block in out.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        obj = orjson.loads(data[6:])
        assert obj["type"] == name[7:].decode()
        res.append((obj["type"], obj))
    return res


def _run(splits: list[int] | None = None) -> bytes:
    s = MessagesStream("claude", input_tokens=10)
    out = []
    prev = 0
    for cut in sorted(set(splits or [])) + [len(CHUNKS)]:
        if cut > prev:
            out.append(s.feed(CHUNKS[prev:cut]))
            prev = cut
    out.append(s.close())
    return b"".join(out)


def test_stream_exact_event_sequence() -> None:
    ev = _events(_run())
    assert [e[0] for e in ev] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    start = ev[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-9" and start["model"] == "gpt-x" and start["usage"]["input_tokens"] == 10
    assert ev[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert ev[4][1]["delta"] == {"type": "text_delta", "text": "check ✓"}
    assert ev[6][1] == {"type": "content_block_start", "index": 1,
                        "content_block": {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}}
    assert "".join(e[1]["delta"]["partial_json"] for e in ev[7:9]) == "{\"x\": 1}"
    assert ev[10][1]["content_block"]["name"] == "g" and ev[10][1]["index"] == 2
    assert ev[13][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                         "usage": {"input_tokens": 12, "output_tokens": 9}}
    assert _run(list(range(1, len(CHUNKS)))) == _run()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CHUNKS)), max_size=25))
def test_stream_random_splits(splits: list[int]) -> None:
    assert _run(splits) == _run()


def test_stream_without_done_or_usage_still_closes() -> None:
    s = MessagesStream("claude", 7)
    out = s.feed(_chunk({"content": "hi"})) + s.close()
    ev = _events(out)
    assert [e[0] for e in ev][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert ev[-2][1]["usage"] == {"input_tokens": 7, "output_tokens": 0}
    empty = _events(MessagesStream("claude").close())
    assert [e[0] for e in empty] == ["message_start", "ping", "message_delta", "message_stop"]
