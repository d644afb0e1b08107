"""A stored Responses API ``response`` served again: as a body with fresh ids, or as its SSE event sequence.

What it owns: the shapes of a ``/v1/responses`` cache hit (the answer stored is always the final Response
object: a unary answer as it was sent, a stream's from its ``response.completed`` event, as
``core.assemble.ResponsesAssembler`` keeps it). Invariants:

- A hit is a new response: a fresh ``resp_`` id and ``created_at``, and the output items the gateway named
  after the stored response (``msg_`` / ``fc_`` / ``rs_`` + its 32 hex digits + place, the translation's
  ids, which ``frontends.responses_state.response_of`` maps back to their response) renamed after the new
  one, so an ``item_reference`` to a hit's item finds the hit; items an upstream named keep their ids.
  ``output``, ``status`` and ``usage`` are unchanged (the usage the original call consumed; the gateway
  prices the hit at 0 elsewhere); the request-side fields that are not in the key (``store``,
  ``previous_response_id``, ``metadata``, ``user``) are this request's (:func:`fresh_response`'s ``echo``).
- A stream hit is the Responses event sequence numbered from 0 (``sequence_number``), what the openai
  SDK parses as the original: ``response.created`` and ``response.in_progress`` (the response
  ``in_progress``, no output), per output item ``response.output_item.added``, its parts and deltas
  (message text in ``response.output_text.delta`` pieces of at most :data:`~relaygate.cache.replay.PIECE`
  characters and refusals in ``response.refusal.delta``, a function call's arguments, reasoning summaries
  and text), ``response.output_item.done``; then ``response.completed`` (``response.incomplete`` for an
  incomplete one) with the whole response.

Sans IO: objects in, bytes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from relaygate.cache.replay import PIECE

ECHOED = ("store", "previous_response_id", "metadata", "user")
"""Request fields a Response object repeats that are not in the cache key: a hit shows this request's."""


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), PIECE):
        yield text[i:i + PIECE]


def fresh_response(answer: bytes, rid: str, created: int, model: str | None,
                   echo: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored Response object as a new response ``rid`` (see the module docstring); None when the
    stored answer is not an object."""
    obj = orjson.loads(answer)
    if not isinstance(obj, dict):
        return None
    old = str(obj.get("id") or "")[5:]
    obj["id"], obj["created_at"] = rid, created
    if len(old) == 32:
        for item in obj.get("output") or ():
            iid = item.get("id") if isinstance(item, dict) else None
            if isinstance(iid, str) and old in iid:
                item["id"] = iid.replace(old, rid[5:], 1)
    if model is not None:
        obj["model"] = model
    if echo:
        for k in ECHOED:
            if k in echo:
                obj[k] = echo[k]
    obj["background"] = False
    return obj


class _Events:
    __slots__ = ("seq", "out")

    def __init__(self) -> None:
        self.seq = 0
        self.out: list[bytes] = []

    def __call__(self, kind: str, **fields: Any) -> None:
        payload = orjson.dumps({"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")


def _message(ev: _Events, i: int, item: dict[str, Any]) -> None:
    iid = item.get("id")
    ev("response.output_item.added", output_index=i, item={**item, "status": "in_progress", "content": []})
    for j, part in enumerate(item.get("content") or ()):
        if not isinstance(part, dict):
            continue
        where = {"item_id": iid, "output_index": i, "content_index": j}
        kind = part.get("type")
        if kind == "output_text":
            ev("response.content_part.added", **where, part={**part, "text": "", "annotations": []})
            text = str(part.get("text") or "")
            for piece in _pieces(text):
                ev("response.output_text.delta", **where, delta=piece, logprobs=[])
            ev("response.output_text.done", **where, text=text, logprobs=part.get("logprobs") or [])
        elif kind == "refusal":
            ev("response.content_part.added", **where, part={**part, "refusal": ""})
            text = str(part.get("refusal") or "")
            for piece in _pieces(text):
                ev("response.refusal.delta", **where, delta=piece)
            ev("response.refusal.done", **where, refusal=text)
        else:
            ev("response.content_part.added", **where, part=part)
        ev("response.content_part.done", **where, part=part)


def _reasoning(ev: _Events, i: int, item: dict[str, Any]) -> None:
    iid = item.get("id")
    ev("response.output_item.added", output_index=i,
       item={**item, "status": "in_progress", "summary": [], **({"content": []} if "content" in item else {})})
    _text_parts(ev, iid, i, item.get("summary"), "summary_index", "response.reasoning_summary_part",
                "response.reasoning_summary_text")
    _text_parts(ev, iid, i, item.get("content"), "content_index", "response.content_part",
                "response.reasoning_text")


def _text_parts(ev: _Events, iid: Any, i: int, parts: Any, index: str, part_event: str, text_event: str) -> None:
    """A reasoning item's summary or content parts: each part added, its text in deltas, done."""
    for k, part in enumerate(parts or ()):
        if not isinstance(part, dict):
            continue
        where = {"item_id": iid, "output_index": i, index: k}
        ev(part_event + ".added", **where, part={**part, "text": ""})
        text = str(part.get("text") or "")
        for piece in _pieces(text):
            ev(text_event + ".delta", **where, delta=piece)
        ev(text_event + ".done", **where, text=text)
        ev(part_event + ".done", **where, part=part)


def response_stream(obj: dict[str, Any]) -> Iterator[bytes]:
    """A Response object (already :func:`fresh_response`'d) as the Responses SSE events."""
    ev = _Events()
    start = {**obj, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    ev("response.created", response=start)
    ev("response.in_progress", response=start)
    for i, item in enumerate(obj.get("output") or ()):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            _message(ev, i, item)
        elif kind == "function_call":
            ev("response.output_item.added", output_index=i, item={**item, "status": "in_progress", "arguments": ""})
            args = str(item.get("arguments") or "")
            where = {"item_id": item.get("id"), "output_index": i}
            for piece in _pieces(args):
                ev("response.function_call_arguments.delta", **where, delta=piece)
            ev("response.function_call_arguments.done", **where, name=item.get("name"), arguments=args)
        elif kind == "reasoning":
            _reasoning(ev, i, item)
        else:
            ev("response.output_item.added", output_index=i, item=item)
        ev("response.output_item.done", output_index=i, item=item)
    ev("response.incomplete" if obj.get("status") == "incomplete" else "response.completed", response=obj)
    return iter(ev.out)


__all__ = ["ECHOED", "fresh_response", "response_stream"]
