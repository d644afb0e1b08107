"""Cached answers in and out: a finished chat stream assembled into one answer to store, and a stored
answer rendered again as a unary body or as an SSE stream.

What it owns: the shapes. Invariants:

- What is stored is always a complete ``chat.completion`` / ``text_completion`` / embeddings body, whatever
  the request that produced it streamed or not; a stream is stored only once :class:`StreamAssembler` saw its
  finish reason for every choice (never a partial or failed stream: ``complete`` stays False).
- A hit gets a fresh ``id`` and ``created`` (the client sees a new completion, as OpenAI would give it), the
  stored ``model``, ``choices`` and ``usage`` unchanged (the usage is what the original call consumed; the
  gateway prices a hit at 0 elsewhere).
- A stream hit is a proper chat-completions SSE stream: a role chunk, the content in pieces of at most
  :data:`PIECE` characters, reasoning and refusals likewise, each tool call as a start chunk with its whole
  arguments, the finish chunk, the usage chunk when the request asked ``stream_options.include_usage``, then
  ``data: [DONE]`` — what the openai SDK parses into the same text as the original stream.

Sans IO: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import orjson

from relaygate.core import _ext
from relaygate.core.assemble import StreamAssembler

PIECE = 256
"""Characters of content per chunk when a stored answer is streamed."""
_DONE = b"data: [DONE]\n\n"
_top_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode
_compiled = _ext.compiled("cachefast")
_splice: Callable[[bytes, str, int, str | None], bytes | None] | None = \
    _compiled.fresh if _compiled is not None else None


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), PIECE):
        yield text[i:i + PIECE]


def _top(answer: bytes) -> dict[str, Any] | None:
    """A stored answer's top level, its values as raw bytes (None: not a JSON object)."""
    try:
        obj: dict[str, Any] = _top_decoder.decode(answer)
    except (msgspec.DecodeError, RecursionError):
        return None
    return obj


def fresh(answer: bytes, rid: str, created: int, model: str | None = None) -> bytes:
    """A stored unary answer with a new ``id`` and ``created`` (embeddings, which have neither, keep theirs)
    and, given ``model``, that model name (the one the client asked for). Only the top level is decoded: the
    choices are copied as stored, not decoded and encoded again (~1 µs less a hit of 1 KB). The compiled
    splice (``relaygate.core._cachefast_c.fresh``) gives the same bytes without decoding at all (1.1 -> 0.4 µs
    for a 1.3 KB answer in a tight loop); what it leaves (None) is done here, as its pure twin."""
    if _splice is not None and (body := _splice(answer, rid, created, model)) is not None:
        return body
    return fresh_decoded(answer, rid, created, model)


def fresh_decoded(answer: bytes, rid: str, created: int, model: str | None = None) -> bytes:
    """:func:`fresh` by decoding the top level and encoding it again: the compiled splice's pure twin."""
    obj = _top(answer)
    if obj is None:
        return answer
    if "id" in obj:
        obj["id"] = rid
        obj["created"] = created
    if model is not None and "model" in obj:
        obj["model"] = model
    return _encode(obj)


def fresh_id(answer: bytes, rid: str) -> bytes:
    """A stored answer with only its ``id`` made new (a rerank's: Cohere's shape has no ``created`` or
    ``model`` to stamp, and adding them would change the shape)."""
    obj = _top(answer)
    if obj is None or "id" not in obj:
        return answer
    obj["id"] = rid
    return _encode(obj)


def chat_stream(answer: bytes, rid: str, created: int, include_usage: bool,
                model: str | None = None) -> Iterator[bytes]:
    """A stored ``chat.completion`` as ``chat.completion.chunk`` SSE frames, ``[DONE]`` last."""
    obj = orjson.loads(answer)
    model = model if model is not None else obj.get("model")
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    fp = obj.get("system_fingerprint")
    if fp is not None:
        head["system_fingerprint"] = fp

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _frame({**head, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]})

    for choice in obj.get("choices") or ():
        i = choice.get("index", 0)
        msg = choice.get("message") or {}
        yield chunk(i, {"role": msg.get("role") or "assistant", "content": ""})
        for field in ("reasoning_content", "content", "refusal"):
            text = msg.get(field)
            if isinstance(text, str):
                for piece in _pieces(text):
                    yield chunk(i, {field: piece})
        for n, call in enumerate(msg.get("tool_calls") or ()):
            yield chunk(i, {"tool_calls": [{"index": n, "id": call.get("id"), "type": "function",
                                            "function": call.get("function") or {}}]})
        yield chunk(i, {}, choice.get("finish_reason") or "stop")
    if include_usage and obj.get("usage") is not None:
        yield _frame({**head, "choices": [], "usage": obj["usage"]})
    yield _DONE


def completion_stream(answer: bytes, rid: str, created: int, include_usage: bool,
                      model: str | None = None) -> Iterator[bytes]:
    """A stored ``text_completion`` as legacy-completions SSE frames, ``[DONE]`` last."""
    obj = orjson.loads(answer)
    head = {"id": rid, "object": "text_completion", "created": created,
            "model": model if model is not None else obj.get("model")}
    for choice in obj.get("choices") or ():
        i = choice.get("index", 0)
        for piece in _pieces(choice.get("text") or ""):
            yield _frame({**head, "choices": [{"index": i, "text": piece, "logprobs": None,
                                               "finish_reason": None}]})
        yield _frame({**head, "choices": [{"index": i, "text": "", "logprobs": None,
                                           "finish_reason": choice.get("finish_reason") or "stop"}]})
    if include_usage and obj.get("usage") is not None:
        yield _frame({**head, "choices": [], "usage": obj["usage"]})
    yield _DONE


__all__ = ["PIECE", "StreamAssembler", "chat_stream", "completion_stream", "fresh", "fresh_decoded", "fresh_id"]
