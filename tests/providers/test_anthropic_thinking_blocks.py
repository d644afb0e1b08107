"""Claude's signed thinking through chat translation: answers keep every ``thinking`` block with its
``signature`` and every ``redacted_thinking`` block as ``thinking_blocks`` (unary and stream, fed whole,
byte by byte and at random splits), the Responses API carries them in a reasoning item's
``encrypted_content`` and back, and a chat request sends them first in the assistant turn."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.providers import responses_api as ra
from relaygate.providers.anthropic import AnthropicStream, to_anthropic
from relaygate.providers.messages_responses import thinking_blocks
from relaygate.providers.params import build

from .conftest import call, chat, collect, feed_all, frames, normalize, provider, three_ways

THOUGHT = "The user wants Paris' weather: call the tool."
SIGNED = {"type": "thinking", "thinking": THOUGHT, "signature": "EqMBCkYIBxgCKkBsig=="}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlx"}
CALL = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}


def _ev(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **obj}) + b"\n\n"


def _delta(index: int, **delta: Any) -> bytes:
    return _ev("content_block_delta", {"index": index, "delta": delta})


STREAM = b"".join([
    _ev("message_start", {"message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                                      "content": [], "usage": {"input_tokens": 40, "output_tokens": 1}}}),
    _ev("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    _delta(0, type="thinking_delta", thinking=THOUGHT[:20]),
    _delta(0, type="thinking_delta", thinking=THOUGHT[20:]),
    _delta(0, type="signature_delta", signature=SIGNED["signature"]),
    _ev("content_block_stop", {"index": 0}),
    _ev("content_block_start", {"index": 1, "content_block": REDACTED}),
    _ev("content_block_stop", {"index": 1}),
    _ev("content_block_start", {"index": 2, "content_block": {**CALL, "input": {}}}),
    _delta(2, type="input_json_delta", partial_json='{"city": "Paris"}'),
    _ev("content_block_stop", {"index": 2}),
    _ev("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
    _ev("message_stop", {}),
])


def _stream() -> AnthropicStream:
    return AnthropicStream(call(chat([{"role": "user", "content": "weather?"}], stream=True), "claude-x"))


def _blocks_of(out: bytes) -> list[dict[str, Any]]:
    """The ``thinking_blocks`` deltas of an OpenAI chunk stream, in order."""
    return [b for f in frames(out) if f != "[DONE]" for ch in f["choices"]
            for b in ch["delta"].get("thinking_blocks") or ()]


def _answer(content: list[dict[str, Any]], stop: str = "tool_use") -> dict[str, Any]:
    body = orjson.dumps({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                         "content": content, "stop_reason": stop, "usage": {"input_tokens": 40, "output_tokens": 30}})
    out = provider("anthropic/claude-x").translate_response(call(chat([{"role": "user", "content": "x"}])), body)
    msg: dict[str, Any] = orjson.loads(out)["choices"][0]["message"]
    return msg


# ------------------------------------------------------------------------------------------------- unary


def test_unary_keeps_signed_and_redacted_blocks() -> None:
    msg = _answer([SIGNED, REDACTED, {"type": "text", "text": "Checking."}, CALL])
    assert msg["thinking_blocks"] == [SIGNED, REDACTED]
    assert msg["reasoning_content"] == THOUGHT and msg["content"] == "Checking."
    assert msg["tool_calls"][0]["id"] == "toolu_01A"


def test_unary_without_thinking_has_no_field() -> None:
    msg = _answer([{"type": "text", "text": "hi"}], "end_turn")
    assert msg == {"role": "assistant", "content": "hi"}


def test_unary_redacted_only() -> None:
    msg = _answer([REDACTED, CALL])
    assert msg["thinking_blocks"] == [REDACTED] and "reasoning_content" not in msg


# ------------------------------------------------------------------------------------------------ stream


EXPECTED = [{"type": "thinking", "thinking": "", "signature": SIGNED["signature"]}, REDACTED]


def test_stream_keeps_signature_and_redacted_data_whole_and_bytewise() -> None:
    out = three_ways(_stream, STREAM)
    assert _blocks_of(out) == EXPECTED
    got = collect(frames(out))
    assert got["reasoning"] == THOUGHT and got["finish"] == "tool_calls"
    assert got["tools"] == [{"id": "toolu_01A", "name": "get_weather", "arguments": '{"city": "Paris"}'}]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=25))
def test_stream_random_splits_keep_the_blocks(splits: list[int]) -> None:
    out = feed_all(_stream, STREAM, splits)
    assert _blocks_of(out) == EXPECTED
    assert normalize(out) == normalize(feed_all(_stream, STREAM))


def test_stream_without_thinking_sends_no_blocks() -> None:
    plain = b"".join([
        STREAM[: STREAM.index(b"event: content_block_start")],
        _ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        _delta(0, type="text_delta", text="hi"),
        _ev("content_block_stop", {"index": 0}),
        _ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        _ev("message_stop", {}),
    ])
    out = three_ways(_stream, plain)
    assert b"thinking_blocks" not in out and collect(frames(out))["content"] == "hi"


def test_stream_empty_signature_and_data_send_nothing() -> None:
    quiet = STREAM.replace(SIGNED["signature"].encode(), b"").replace(REDACTED["data"].encode(), b"")
    assert _blocks_of(feed_all(_stream, quiet)) == []


# --------------------------------------------------------------------------------------- chat request side


def test_chat_request_sends_thinking_blocks_first() -> None:
    req = chat([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "thinking_blocks": [SIGNED, REDACTED],
         "tool_calls": [{"id": "toolu_01A", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "20C"}])
    msgs = to_anthropic(req, "claude-x")["messages"]
    assert msgs[1] == {"role": "assistant", "content": [SIGNED, REDACTED, {"type": "text", "text": "Checking."},
                                                         CALL]}
    assert msgs[2]["content"][0]["type"] == "tool_result"


TOOL_TURN = [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
             {"role": "tool", "tool_call_id": "toolu_01A", "content": "20C"}]


def test_reasoning_effort_turns_thinking_on_only_when_the_tool_turn_can_lead_with_it() -> None:
    rules = build("anthropic", "claude-sonnet-4-5", False, (), frozenset())
    bare = {"reasoning_effort": "low", "messages": [dict(m) for m in TOOL_TURN]}
    rules.apply(bare)
    assert "thinking" not in bare and "reasoning_effort" not in bare
    signed = {"reasoning_effort": "low", "messages": [dict(m) for m in TOOL_TURN]}
    signed["messages"][1]["thinking_blocks"] = [SIGNED]
    rules.apply(signed)
    assert signed["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    later = {"reasoning_effort": "low", "messages": [*TOOL_TURN, {"role": "assistant", "content": "20C."},
                                                     {"role": "user", "content": "thanks"}]}
    rules.apply(later)  # an earlier tool turn is no longer the one Anthropic checks
    assert later["thinking"] == {"type": "enabled", "budget_tokens": 1024}


# ----------------------------------------------------------------------------------- Responses round trip


def _next_turn(reasoning: dict[str, Any], fc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Anthropic messages of the tool loop's next request: every output item sent back, as OpenAI's
    stateless pattern does (``store: false``, ``include: ["reasoning.encrypted_content"]``)."""
    req = ra.to_chat({"model": "claude", "reasoning": {"effort": "low"}, "input": [
        {"role": "user", "content": "weather?"}, reasoning, fc,
        {"type": "function_call_output", "call_id": fc["call_id"], "output": "20C"}]}, "claude-x")
    msgs: list[dict[str, Any]] = to_anthropic(req, "claude-x")["messages"]
    return msgs


def test_responses_round_trip_unary() -> None:
    body = provider("anthropic/claude-x").translate_response(
        call(chat([{"role": "user", "content": "x"}])),
        orjson.dumps({"id": "msg_01", "model": "claude-x", "content": [SIGNED, REDACTED, CALL],
                      "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}))
    ech = ra.echo({"model": "claude", "input": "weather?"}, None)
    reasoning, fc = orjson.loads(ra.chat_to_response(body, "claude", 1, ech))["output"]
    assert reasoning["type"] == "reasoning" and thinking_blocks(reasoning["encrypted_content"]) == [SIGNED, REDACTED]
    sent = _next_turn(reasoning, fc)
    assert sent[1]["content"] == [SIGNED, REDACTED, CALL]


def test_responses_round_trip_stream() -> None:
    chunks = feed_all(_stream, STREAM)
    ech = ra.echo({"model": "claude", "input": "weather?", "stream": True}, None)
    rs = ra.ResponsesStream("claude", 1, ech)
    out = b"".join(rs.feed(f + b"\n\n") for f in chunks.split(b"\n\n") if f) + rs.close()
    final = [orjson.loads(b.split(b"data: ", 1)[1]) for b in out.split(b"\n\n") if b"response.completed" in b][-1]
    reasoning, fc = final["response"]["output"]
    assert thinking_blocks(reasoning["encrypted_content"]) == [SIGNED, REDACTED]
    assert _next_turn(reasoning, fc)[1]["content"] == [SIGNED, REDACTED, CALL]
