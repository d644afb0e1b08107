"""OpenAI Responses API wire shapes for the mock upstream and the tests' upstreams: a Response object and
its SSE event stream, shaped as OpenAI sends them.

What it owns: the bytes of ``POST /v1/responses`` answers, nothing of timing or sockets (``bench.mock``).
An answer is described by a :class:`Answer` (text pieces, optional reasoning with a summary and
``encrypted_content``, function calls with their argument fragments, usage, status). The stream follows
OpenAI's order: ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, its parts and deltas (``response.reasoning_summary_part.added`` /
``response.reasoning_summary_text.delta`` / ``.done`` / ``response.reasoning_summary_part.done`` for
reasoning, ``response.content_part.added`` / ``response.output_text.delta`` / ``.done`` /
``response.content_part.done`` for a message, ``response.function_call_arguments.delta`` / ``.done``),
``response.output_item.done``, and last ``response.completed`` (or ``response.incomplete``) with the whole
Response and its usage. Every event carries ``sequence_number``.

As ``bench.shapes`` does for the other APIs, a stream is returned as *groups*: ``groups[i]`` is written at
``ttft + i * chunk_gap``; each delta event starts a group, the preamble rides with the first one and the
closing events with the last, so a client sees as many arrivals as there are deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.shapes import Gen

__all__ = ["Answer", "from_gen", "pieces", "response_object", "response_body", "response_stream", "usage_of"]


@dataclass(slots=True)
class Answer:
    """What a Responses upstream answers."""

    rid: str
    model: str
    created: int
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    encrypted: str = ""
    calls: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (call id, name, argument pieces)
    input_tokens: int = 10
    cached_tokens: int = 0
    output_tokens: int = 5
    reasoning_tokens: int = 0
    status: str = "completed"


def pieces(text: str, n: int) -> list[str]:
    """``text`` in ``n`` pieces of near-equal length (fewer when it is shorter), for argument deltas."""
    n = max(1, min(n, len(text)))
    step, extra = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        end = pos + step + (1 if i < extra else 0)
        out.append(text[pos:end])
        pos = end
    return out


def from_gen(gen: Gen) -> Answer:
    """The mock's answer (``bench.shapes.Gen``: text pieces, or a call to the first tool) as a Response."""
    calls = [(gen.tool[0], gen.tool[1], pieces(gen.tool[2], len(gen.pieces)))] if gen.tool is not None else []
    return Answer(rid=gen.rid.removeprefix("chatcmpl-"), model=gen.model, created=gen.created,
                  text=[] if calls else gen.pieces, calls=calls, input_tokens=gen.prompt_tokens,
                  output_tokens=gen.completion_tokens)


def usage_of(a: Answer) -> dict[str, Any]:
    return {"input_tokens": a.input_tokens, "input_tokens_details": {"cached_tokens": a.cached_tokens},
            "output_tokens": a.output_tokens, "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
            "total_tokens": a.input_tokens + a.output_tokens}


def _items(a: Answer, done: bool) -> list[dict[str, Any]]:
    """The output items, finished (``done``) or as ``response.output_item.added`` shows them."""
    out: list[dict[str, Any]] = []
    status = "completed" if done else "in_progress"
    if a.reasoning or a.encrypted:
        item: dict[str, Any] = {"id": f"rs_{a.rid}", "type": "reasoning",
                                "summary": [{"type": "summary_text", "text": "".join(a.reasoning)}]
                                if done and a.reasoning else []}
        if a.encrypted and done:
            item["encrypted_content"] = a.encrypted
        out.append(item)
    if a.text:
        out.append({"id": f"msg_{a.rid}", "type": "message", "role": "assistant", "status": status,
                    "content": [{"type": "output_text", "text": "".join(a.text), "annotations": [],
                                 "logprobs": []}] if done else []})
    for i, (cid, name, args) in enumerate(a.calls):
        out.append({"id": f"fc_{a.rid}_{i}", "type": "function_call", "status": status, "call_id": cid,
                    "name": name, "arguments": "".join(args) if done else ""})
    return out


def response_object(a: Answer, done: bool = True) -> dict[str, Any]:
    status = a.status if done else "in_progress"
    return {"id": f"resp_{a.rid}", "object": "response", "created_at": a.created, "status": status,
            "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": None, "max_output_tokens": None, "model": a.model,
            "output": _items(a, True) if done else [], "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "store": False, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage_of(a) if done else None, "user": None, "metadata": {}}


def response_body(a: Answer) -> bytes:
    return orjson.dumps(response_object(a))


def response_stream(a: Answer) -> list[bytes]:
    """The SSE event stream of ``a`` in groups (see the module docstring)."""
    seq = 0

    def ev(kind: str, fields: dict[str, Any]) -> bytes:
        nonlocal seq
        data = orjson.dumps({"type": kind, "sequence_number": seq, **fields})
        seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    groups: list[bytes] = []
    pending = [ev("response.created", {"response": response_object(a, False)}),
               ev("response.in_progress", {"response": response_object(a, False)})]

    def delta(frame: bytes) -> None:
        groups.append(b"".join(pending) + frame)
        pending.clear()

    added, final = _items(a, False), _items(a, True)
    for index, (item, whole) in enumerate(zip(added, final)):
        where = {"item_id": item["id"], "output_index": index}
        pending.append(ev("response.output_item.added", {"output_index": index, "item": item}))
        if item["type"] == "reasoning":
            if a.reasoning:
                pending.append(ev("response.reasoning_summary_part.added", {
                    **where, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}))
                for piece in a.reasoning:
                    delta(ev("response.reasoning_summary_text.delta", {**where, "summary_index": 0, "delta": piece}))
                text = "".join(a.reasoning)
                pending.append(ev("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}))
                pending.append(ev("response.reasoning_summary_part.done", {
                    **where, "summary_index": 0, "part": {"type": "summary_text", "text": text}}))
        elif item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            pending.append(ev("response.content_part.added", {**where, "content_index": 0, "part": part}))
            for piece in a.text:
                delta(ev("response.output_text.delta", {**where, "content_index": 0, "delta": piece, "logprobs": []}))
            pending.append(ev("response.output_text.done", {**where, "content_index": 0,
                                                            "text": "".join(a.text), "logprobs": []}))
            pending.append(ev("response.content_part.done", {**where, "content_index": 0,
                                                             "part": whole["content"][0]}))
        else:
            for piece in a.calls[index - len(added) + len(a.calls)][2]:
                delta(ev("response.function_call_arguments.delta", {**where, "delta": piece}))
            pending.append(ev("response.function_call_arguments.done", {**where, "arguments": whole["arguments"]}))
        pending.append(ev("response.output_item.done", {"output_index": index, "item": whole}))
    kind = "response.incomplete" if a.status == "incomplete" else "response.completed"
    pending.append(ev(kind, {"response": response_object(a)}))
    if groups:
        groups[-1] += b"".join(pending)
    else:
        groups.append(b"".join(pending))
    return groups
