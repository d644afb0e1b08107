"""A stored Anthropic ``message`` served again: as a body with a fresh id, or as the Messages SSE stream.

What it owns: the shapes of a ``/v1/messages`` cache hit (the answer stored is always the whole ``message``
object: a unary answer as it was sent, a stream's as ``core.assemble.MessagesAssembler`` rebuilt it from the
events the client got). Invariants:

- A hit is the stored message with a new ``id`` (``msg_`` ...) and the model name the client asked for;
  ``content``, ``stop_reason``, ``stop_sequence`` and ``usage`` unchanged (the usage the original call
  consumed; the gateway prices the hit at 0 elsewhere).
- A stream hit is Anthropic's event sequence, what the ``anthropic`` SDK accumulates into the same message:
  ``message_start`` (the message without content, ``output_tokens`` 1 as Anthropic sends it), ``ping``,
  per content block ``content_block_start`` / its deltas / ``content_block_stop`` (text in
  ``text_delta`` pieces of at most :data:`~relaygate.cache.replay.PIECE` characters, thinking in
  ``thinking_delta`` pieces then its ``signature_delta``, a tool call's input as one ``input_json_delta``;
  blocks of other kinds, redacted thinking or server tool results, whole in their start event), then
  ``message_delta`` with the stop reason and the whole usage, and ``message_stop``.

Sans IO: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from relaygate.cache.replay import PIECE


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), PIECE):
        yield text[i:i + PIECE]


def fresh_message(answer: bytes, rid: str, model: str | None) -> bytes:
    """A stored ``message`` with the id ``rid`` and, given ``model``, that model name."""
    obj = orjson.loads(answer)
    if not isinstance(obj, dict):
        return answer
    obj["id"] = rid
    if model is not None:
        obj["model"] = model
    return orjson.dumps(obj)


def _block(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block.get("type")
    delta = {"type": "content_block_delta", "index": index}
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        if "citations" in block:
            start["citations"] = block["citations"]
        yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        for piece in _pieces(str(block.get("text") or "")):
            yield _event("content_block_delta", {**delta, "delta": {"type": "text_delta", "text": piece}})
    elif kind == "thinking":
        yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        for piece in _pieces(str(block.get("thinking") or "")):
            yield _event("content_block_delta", {**delta, "delta": {"type": "thinking_delta", "thinking": piece}})
        if block.get("signature"):
            yield _event("content_block_delta", {**delta, "delta": {"type": "signature_delta",
                                                                    "signature": block["signature"]}})
    elif kind in ("tool_use", "server_tool_use"):
        yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            **{k: v for k, v in block.items() if k != "input"}, "input": {}}})
        args = block.get("input")
        if args:
            yield _event("content_block_delta", {**delta, "delta": {"type": "input_json_delta",
                                                                    "partial_json": orjson.dumps(args).decode()}})
    else:
        yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
    yield _event("content_block_stop", {"type": "content_block_stop", "index": index})


def message_stream(answer: bytes, rid: str, model: str | None) -> Iterator[bytes]:
    """A stored ``message`` as Anthropic's SSE events (see the module docstring)."""
    obj = orjson.loads(answer)
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
    start = {k: v for k, v in obj.items() if k not in ("content", "stop_reason", "stop_sequence", "usage")}
    start.update(id=rid, type="message", role=obj.get("role") or "assistant", content=[], stop_reason=None,
                 stop_sequence=None, usage={**usage, "output_tokens": 1})
    if model is not None:
        start["model"] = model
    yield _event("message_start", {"type": "message_start", "message": start})
    yield _event("ping", {"type": "ping"})
    for i, block in enumerate(obj.get("content") or ()):
        if isinstance(block, dict):
            yield from _block(i, block)
    yield _event("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": obj.get("stop_reason") or "end_turn", "stop_sequence": obj.get("stop_sequence")},
        "usage": usage})
    yield _event("message_stop", {"type": "message_stop"})


__all__ = ["fresh_message", "message_stream"]
