"""Provider wire shapes for the mock upstream: OpenAI, Anthropic Messages and Gemini bodies and SSE frames.

This module owns what the mock says, not when it says it: every function takes the decoded request (a dict)
and a :class:`Gen` describing the answer, and returns bytes. Timing, faults and the socket live in
``bench.mock``.

Streams are returned as *groups*: ``groups[i]`` is the bytes of SSE frames the mock writes at once, at time
``ttft + i * chunk_gap``. Group 0 carries the preamble (role chunk, ``message_start`` ...) together with the
first content delta; the last group carries the last delta plus the finish, usage and terminator frames. So
the number of groups equals the number of content chunks, and a client that sees fewer distinct arrivals
than ``chunks`` is looking at a buffering or merging middlebox.
"""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "Gen", "content_pieces", "openai_chat", "openai_chat_stream", "openai_completion",
    "openai_completion_stream", "openai_embeddings", "openai_models", "openai_error",
    "anthropic_message", "anthropic_stream", "anthropic_error", "gemini_generate", "gemini_stream",
    "gemini_error", "gemini_batch_embed", "tool_arguments",
]

_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi"
).split()


@dataclass(slots=True)
class Gen:
    """What to answer: ids, model, token counts and the content split into stream pieces."""

    rid: str
    model: str
    created: int
    prompt_tokens: int
    pieces: list[str]
    completion_tokens: int
    tool: tuple[str, str, str] | None = None  # (call id, function name, JSON arguments)


_piece_cache: dict[tuple[int, int, int], tuple[list[str], int]] = {}


def content_pieces(tokens: int, size_bytes: int, chunks: int) -> tuple[list[str], int]:
    """Split the mock's answer into ``chunks`` non-empty pieces. Returns (pieces, completion_tokens).

    With ``size_bytes > 0`` the text is exactly that many ASCII bytes, else it is ``tokens`` words.
    """
    key = (tokens, size_bytes, chunks)
    hit = _piece_cache.get(key)
    if hit is not None:
        return hit
    chunks = max(1, chunks)
    if size_bytes > 0:
        size_bytes = max(size_bytes, chunks)
        text = (" ".join(_WORDS) + " ") * (size_bytes // 400 + 1)
        text = text[:size_bytes]
        n_tokens = max(1, size_bytes // 4)
        step, extra = divmod(size_bytes, chunks)
        pieces, pos = [], 0
        for i in range(chunks):
            end = pos + step + (1 if i < extra else 0)
            pieces.append(text[pos:end])
            pos = end
    else:
        n_tokens = max(tokens, chunks, 1)
        words = [_WORDS[i % len(_WORDS)] + " " for i in range(n_tokens)]
        step, extra = divmod(n_tokens, chunks)
        pieces, pos = [], 0
        for i in range(chunks):
            end = pos + step + (1 if i < extra else 0)
            pieces.append("".join(words[pos:end]))
            pos = end
    result = (pieces, n_tokens)
    if len(_piece_cache) > 256:
        _piece_cache.clear()
    _piece_cache[key] = result
    return result


def _split(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text))) if text else 1
    step, extra = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        end = pos + step + (1 if i < extra else 0)
        out.append(text[pos:end])
        pos = end
    return out


def _example(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "mock"
    if schema.get("enum"):
        return schema["enum"][0]
    typ = schema.get("type", "string")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    typ = str(typ).lower()
    if typ == "object":
        props = schema.get("properties") or {}
        return {k: _example(v) for k, v in props.items()}
    if typ == "array":
        return [_example(schema.get("items", {}))]
    if typ == "integer":
        return 1
    if typ == "number":
        return 1.5
    if typ == "boolean":
        return True
    return "mock"


def tool_arguments(schema: Any) -> str:
    """A JSON object string that fits a JSON-schema ``parameters`` object (first enum value, 1, "mock" ...)."""
    value = _example(schema if isinstance(schema, dict) else {"type": "object"})
    if not isinstance(value, dict):
        value = {}
    return orjson.dumps(value).decode()


def now() -> int:
    return int(time.time())


# ---------------------------------------------------------------------------------------------- OpenAI


def _usage(gen: Gen) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "total_tokens": gen.prompt_tokens + gen.completion_tokens,
    }


def openai_chat(gen: Gen) -> bytes:
    if gen.tool is not None:
        call_id, name, args = gen.tool
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
        }
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": "".join(gen.pieces)}
        finish = "stop"
    return orjson.dumps({
        "id": gen.rid,
        "object": "chat.completion",
        "created": gen.created,
        "model": gen.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(gen),
        "system_fingerprint": "fp_mock",
    })


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def openai_chat_stream(gen: Gen, include_usage: bool) -> list[bytes]:
    head = {"id": gen.rid, "object": "chat.completion.chunk", "created": gen.created, "model": gen.model,
            "system_fingerprint": "fp_mock"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**head, "choices": [choice]})

    if gen.tool is not None:
        call_id, name, args = gen.tool
        first = {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}
        deltas = [{"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}
                  for frag in _split(args, len(gen.pieces))]
        finish = "tool_calls"
    else:
        first = {"role": "assistant", "content": ""}
        deltas = [{"content": p} for p in gen.pieces]
        finish = "stop"
    groups = [chunk(d) for d in deltas]
    groups[0] = chunk(first) + groups[0]
    tail = chunk({}, finish)
    if include_usage:
        tail += _sse({**head, "choices": [], "usage": _usage(gen)})
    groups[-1] += tail + b"data: [DONE]\n\n"
    return groups


def openai_completion(gen: Gen) -> bytes:
    return orjson.dumps({
        "id": gen.rid,
        "object": "text_completion",
        "created": gen.created,
        "model": gen.model,
        "choices": [{"text": "".join(gen.pieces), "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(gen),
    })


def openai_completion_stream(gen: Gen, include_usage: bool) -> list[bytes]:
    head = {"id": gen.rid, "object": "text_completion", "created": gen.created, "model": gen.model}

    def chunk(text: str, finish: str | None) -> bytes:
        return _sse({**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]})

    groups = [chunk(p, None) for p in gen.pieces]
    tail = chunk("", "stop")
    if include_usage:
        tail += _sse({**head, "choices": [], "usage": _usage(gen)})
    groups[-1] += tail + b"data: [DONE]\n\n"
    return groups


def openai_embeddings(req: dict[str, Any], model: str, dims: int) -> bytes:
    inputs = req.get("input", "")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    if not isinstance(inputs, list):
        inputs = [inputs]
    as_b64 = req.get("encoding_format") == "base64"
    want = req.get("dimensions")
    if want is not None:
        if not isinstance(want, int) or isinstance(want, bool) or not 1 <= want <= 8192:
            raise ValueError("dimensions must be an integer 1..8192")
        dims = want
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        size = len(item) if isinstance(item, (str, list)) else 1
        tokens += max(1, size // 4 if isinstance(item, str) else size)
        vec = [round(((i * 31 + j * 17 + size) % 1000) / 1000.0 - 0.5, 6) for j in range(dims)]
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return orjson.dumps({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def openai_models(models: list[str]) -> bytes:
    created = now()
    return orjson.dumps({
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "mock"} for m in models],
    })


_OPENAI_ERR = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def openai_error(status: int, message: str) -> bytes:
    typ, code = _OPENAI_ERR.get(status, ("server_error", None))
    return orjson.dumps({"error": {"message": message, "type": typ, "param": None, "code": code}})


# ------------------------------------------------------------------------------------------- Anthropic


def _a_usage(gen: Gen, output: int) -> dict[str, Any]:
    return {
        "input_tokens": gen.prompt_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_message(gen: Gen) -> bytes:
    if gen.tool is not None:
        call_id, name, args = gen.tool
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": call_id, "name": name,
                                          "input": orjson.loads(args)}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": "".join(gen.pieces)}]
        stop = "end_turn"
    return orjson.dumps({
        "id": gen.rid,
        "type": "message",
        "role": "assistant",
        "model": gen.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _a_usage(gen, gen.completion_tokens),
    })


def _event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def anthropic_stream(gen: Gen) -> list[bytes]:
    start = _event("message_start", {"type": "message_start", "message": {
        "id": gen.rid, "type": "message", "role": "assistant", "model": gen.model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": _a_usage(gen, 1)}})
    if gen.tool is not None:
        call_id, name, args = gen.tool
        block: dict[str, Any] = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": frag} for frag in _split(args, len(gen.pieces))]
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in gen.pieces]
        stop = "end_turn"
    groups = [_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
              for d in deltas]
    groups[0] = (start
                 + _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
                 + _event("ping", {"type": "ping"}) + groups[0])
    groups[-1] += (
        _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _event("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": gen.completion_tokens}})
        + _event("message_stop", {"type": "message_stop"})
    )
    return groups


_ANTHROPIC_ERR = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": _ANTHROPIC_ERR.get(status, "api_error"),
                                                    "message": message}})


# ---------------------------------------------------------------------------------------------- Gemini


def _g_usage(gen: Gen) -> dict[str, int]:
    return {
        "promptTokenCount": gen.prompt_tokens,
        "candidatesTokenCount": gen.completion_tokens,
        "totalTokenCount": gen.prompt_tokens + gen.completion_tokens,
    }


def _g_candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def gemini_generate(gen: Gen) -> bytes:
    if gen.tool is not None:
        parts: list[dict[str, Any]] = [{"functionCall": {"name": gen.tool[1], "args": orjson.loads(gen.tool[2])}}]
    else:
        parts = [{"text": "".join(gen.pieces)}]
    return orjson.dumps({
        "candidates": [_g_candidate(parts, "STOP")],
        "usageMetadata": _g_usage(gen),
        "modelVersion": gen.model,
        "responseId": gen.rid,
    })


def gemini_stream(gen: Gen, sse: bool) -> list[bytes]:
    """``sse``: ``data: {...}\\r\\n\\r\\n`` frames (``alt=sse``); else one streamed JSON array."""
    objs: list[dict[str, Any]] = []
    if gen.tool is not None:
        # Gemini sends a function call whole, in one chunk that also carries the finish reason.
        objs.append({"candidates": [_g_candidate(
            [{"functionCall": {"name": gen.tool[1], "args": orjson.loads(gen.tool[2])}}], "STOP")]})
    else:
        last = len(gen.pieces) - 1
        for i, p in enumerate(gen.pieces):
            objs.append({"candidates": [_g_candidate([{"text": p}], "STOP" if i == last else None)]})
    for o in objs:
        o["modelVersion"] = gen.model
        o["responseId"] = gen.rid
    objs[-1]["usageMetadata"] = _g_usage(gen)
    if sse:
        return [b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs]
    groups = [b"," + orjson.dumps(o) + b"\r\n" for o in objs]
    groups[0] = b"[" + groups[0][1:]
    groups[-1] += b"]"
    return groups


def gemini_batch_embed(req: dict[str, Any], dims: int) -> bytes:
    """``:batchEmbedContents``: one ``values`` vector per request (``outputDimensionality`` honoured)."""
    out = []
    for i, r in enumerate(req.get("requests") or ()):
        text = "".join(p.get("text", "") for p in ((r.get("content") or {}).get("parts") or ()))
        n = int(r.get("outputDimensionality") or dims)
        out.append({"values": [round(((i * 31 + j * 17 + len(text)) % 1000) / 1000.0 - 0.5, 6) for j in range(n)]})
    return orjson.dumps({"embeddings": out})


_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}


def gemini_error(status: int, message: str) -> bytes:
    return orjson.dumps({"error": {"code": status, "message": message,
                                   "status": _GEMINI_STATUS.get(status, "INTERNAL")}})
