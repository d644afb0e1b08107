"""The stream assemblers exporters use for Anthropic Messages and OpenAI Responses streams (``core.assemble``):
fed whole, one frame at a time and split anywhere between frames, they give the same answer; a broken or
unfinished stream is never complete."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.assemble import MessagesAssembler, ResponsesAssembler, assembler_for


def sse(*events: dict[str, object]) -> bytes:
    return b"".join(b"event: " + str(e["type"]).encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


MESSAGES = sse(
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                                          "content": [], "stop_reason": None, "usage": {"input_tokens": 7}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "hel"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t1", "name": "f",
                                                                   "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
)
EXPECTED = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
            "usage": {"input_tokens": 7, "output_tokens": 9},
            "content": [{"type": "thinking", "thinking": "let me", "signature": "sig"},
                        {"type": "text", "text": "hello"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]}


def test_messages_whole() -> None:
    asm = MessagesAssembler()
    asm.feed_frames(MESSAGES)
    assert asm.complete and orjson.loads(asm.answer(0)) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(MESSAGES.split(b"\n\n")) - 1), max_size=6))
def test_messages_fed_in_groups_of_frames(cuts: list[int]) -> None:
    frames = [f + b"\n\n" for f in MESSAGES.split(b"\n\n") if f]
    asm = MessagesAssembler()
    edges = sorted({0, len(frames), *cuts})
    for a, b in itertools.pairwise(edges):
        asm.feed_frames(b"".join(frames[a:b]))
    assert asm.complete and orjson.loads(asm.answer(0)) == EXPECTED


def test_message_delta_without_usage() -> None:
    # an Anthropic-compatible upstream that leaves usage out of message_delta: the answer keeps the usage
    # message_start gave (this used to raise UnboundLocalError mid-stream)
    asm = MessagesAssembler()
    asm.feed_frames(MESSAGES.replace(b', "usage": {"output_tokens": 9}', b"").replace(b',"usage":{"output_tokens":9}', b""))
    answer = orjson.loads(asm.answer(0))
    assert asm.complete and answer["stop_reason"] == "tool_use" and answer["usage"] == {"input_tokens": 7}


def test_unfinished_or_broken_is_never_complete() -> None:
    asm = MessagesAssembler()
    asm.feed_frames(MESSAGES.rsplit(b"event: message_stop", 1)[0])
    assert not asm.complete
    asm = MessagesAssembler()
    asm.feed_frames(MESSAGES + b"data: {not json\n\n")
    assert not asm.complete


def test_responses_keeps_the_completed_response() -> None:
    asm = ResponsesAssembler()
    asm.feed_frames(sse({"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
                        {"type": "response.output_text.delta", "delta": "hi"}))
    assert not asm.complete
    asm.feed_frames(sse({"type": "response.completed", "response": {"id": "r", "status": "completed"}}))
    assert asm.complete and orjson.loads(asm.answer(0)) == {"id": "r", "status": "completed"}
    failed = ResponsesAssembler()
    failed.feed_frames(sse({"type": "response.failed", "response": {"id": "r", "status": "failed"}}))
    assert not failed.complete


def test_assembler_per_route() -> None:
    assert type(assembler_for("messages")) is MessagesAssembler
    assert type(assembler_for("responses")) is ResponsesAssembler
    assert assembler_for("chat") is not None and assembler_for("embeddings") is None
