"""A translated Responses stream closes each item before the next kind of item starts, as OpenAI streams
(clients such as LangChain build one content block per item from that order: an item left open while the
next one streams came back to them as a second reasoning block)."""

from __future__ import annotations

import re

import orjson

from relaygate.providers.responses_api import ResponsesStream


def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


def events(out: bytes) -> list[tuple[str, dict[str, object]]]:
    return [(m.group(1).decode(), orjson.loads(m.group(2))) for m in re.finditer(rb"event: (\S+)\ndata: (.*)\n\n", out)]


def test_reasoning_is_done_before_the_message_starts_and_the_message_before_a_call() -> None:
    s = ResponsesStream("m", 1, {"reasoning": {"effort": "low", "summary": "auto"}})
    out = s.feed(chunk({"reasoning_content": "think"}) + chunk({"thinking_blocks": [
        {"type": "thinking", "thinking": "", "signature": "sig"}]}) + chunk({"content": "hi"})
        + chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]})
        + chunk({}, "tool_calls") + b"data: [DONE]\n\n")
    evs = events(out)
    kinds = [(k, e.get("output_index")) for k, e in evs if k.startswith("response.output_item.")]
    assert kinds == [("response.output_item.added", 0), ("response.output_item.done", 0),
                     ("response.output_item.added", 1), ("response.output_item.done", 1),
                     ("response.output_item.added", 2), ("response.output_item.done", 2)]
    assert [e["sequence_number"] for _, e in evs] == list(range(len(evs)))
    reasoning_done = next(e for k, e in evs if k == "response.output_item.done")
    assert reasoning_done["item"]["encrypted_content"]  # the signature arrived before the item closed
    final = evs[-1][1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]


def test_reasoning_after_text_is_a_new_item() -> None:
    s = ResponsesStream("m", 1, {})
    out = s.feed(chunk({"content": "a"}) + chunk({"reasoning_content": "b"}) + chunk({"content": "c"})
                 + chunk({}, "stop")) + s.close()
    final = events(out)[-1][1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "reasoning", "message"]
