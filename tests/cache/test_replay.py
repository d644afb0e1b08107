"""Stored answers in and out: a stream assembled, an answer replayed as a body or a stream, and the two
round-trip."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from relaygate.cache.replay import PIECE, StreamAssembler, chat_stream, completion_stream, fresh

ANSWER = {"id": "chatcmpl-orig", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024",
          "system_fingerprint": "fp_1",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Spam. " * 100,
                                               "tool_calls": [{"id": "call_1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                       "logprobs": None, "finish_reason": "tool_calls"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 200, "total_tokens": 212}}


def payloads(frames: list[bytes]) -> list[bytes]:
    assert frames[-1] == b"data: [DONE]\n\n"
    out = []
    for f in frames[:-1]:
        assert f.startswith(b"data: ") and f.endswith(b"\n\n")
        out.append(f[6:-2])
    return out


def test_fresh_replaces_id_and_created_only() -> None:
    got = orjson.loads(fresh(orjson.dumps(ANSWER), "chatcmpl-new", 99))
    assert got["id"] == "chatcmpl-new" and got["created"] == 99
    assert {**got, "id": ANSWER["id"], "created": 1} == ANSWER
    emb = orjson.dumps({"object": "list", "data": [{"embedding": [0.1]}], "model": "e"})
    assert fresh(emb, "x", 1) == emb


def test_chat_stream_frames_and_usage() -> None:
    frames = list(chat_stream(orjson.dumps(ANSWER), "chatcmpl-new", 5, include_usage=True))
    objs = [orjson.loads(p) for p in payloads(frames)]
    assert all(o["id"] == "chatcmpl-new" and o["created"] == 5 and o["object"] == "chat.completion.chunk"
               for o in objs)
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [o["choices"][0]["delta"].get("content") for o in objs[1:] if o["choices"]]
    text = "".join(c for c in contents if c)
    assert text == ANSWER["choices"][0]["message"]["content"]
    assert max(len(c) for c in contents if c) <= PIECE
    assert objs[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert objs[-1]["choices"] == [] and objs[-1]["usage"] == ANSWER["usage"]
    no_usage = list(chat_stream(orjson.dumps(ANSWER), "x", 5, include_usage=False))
    assert all(b'"usage"' not in f for f in no_usage)


def test_stream_round_trip_through_the_assembler() -> None:
    asm = StreamAssembler()
    for p in payloads(list(chat_stream(orjson.dumps(ANSWER), "chatcmpl-orig", 1, include_usage=True))):
        asm.feed(p)
    assert asm.complete
    got = orjson.loads(asm.answer(1))
    assert got == ANSWER


def test_an_unfinished_or_broken_stream_is_never_complete() -> None:
    frames = payloads(list(chat_stream(orjson.dumps(ANSWER), "x", 1, include_usage=False)))
    asm = StreamAssembler()
    for p in frames[:-1]:  # the finish chunk never came
        asm.feed(p)
    assert not asm.complete
    asm = StreamAssembler()
    for p in frames:
        asm.feed(p)
    asm.feed(b"{not json")
    assert not asm.complete
    assert not StreamAssembler().complete


def test_completion_stream() -> None:
    answer = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "text": "abc" * 200, "logprobs": None, "finish_reason": "length"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    objs = [orjson.loads(p) for p in payloads(list(completion_stream(orjson.dumps(answer), "cmpl-2", 3, True)))]
    assert "".join(o["choices"][0]["text"] for o in objs if o["choices"]) == "abc" * 200
    assert objs[-2]["choices"][0]["finish_reason"] == "length" and objs[-1]["usage"]["total_tokens"] == 3


@given(st.lists(st.text(max_size=600), min_size=1, max_size=3))
def test_any_text_round_trips(texts: list[str]) -> None:
    answer = {"id": "a", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                           "finish_reason": "stop"} for i, t in enumerate(texts)]}
    asm = StreamAssembler()
    for p in payloads(list(chat_stream(orjson.dumps(answer), "a", 1, include_usage=False))):
        asm.feed(p)
    got = orjson.loads(asm.answer(1))
    assert [c["message"]["content"] or "" for c in got["choices"]] == texts
