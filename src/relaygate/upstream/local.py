"""The local transport: an OpenAI-compatible mock upstream answered in-process, no network.

The built-in ``mock`` provider (``providers.mock``) is an adapter like any other: it builds an
:class:`~relaygate.upstream.base.UpstreamRequest` to ``local://mock/<OpenAI path>`` carrying the client's
body and its options as headers, and the shell sends it through the adapter's transport. This module is
that upstream: :class:`LocalTransport` answers with a :class:`LocalResponse` that behaves like an
``H1Response`` (status, lower-case header bytes, ``read``, ``async for``, ``aclose``), so the shell runs
one code path for every deployment. Streams are real SSE bodies whose chunks arrive with the configured
gaps.

Request headers (set by the adapter): ``x-mock-model`` (the ``model`` the answer names),
``x-mock-created`` (Unix seconds, the request's ``now``), ``x-mock-echo`` (``1``: answer the last user
message, or the prompt), ``x-mock-response`` (a fixed answer), ``x-mock-latency-ms`` (before a non-stream
answer's head, or before a stream's first chunk), ``x-mock-chunks``, ``x-mock-chunk-gap-ms``,
``x-mock-embedding-dim``. ``GET local://mock/health`` answers 200 at once.

Semantics kept from the mock it replaces: no timeouts apply (a latency longer than the deployment's
timeout still answers); a body the mock cannot read is a 400 with an OpenAI error body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.core.sse import frame
from relaygate.core.tokens import estimate_tokens
from relaygate.core.views import AnyView, ChatView, CompletionView, EmbeddingView, decode_view
from relaygate.upstream.base import Timeouts, UpstreamRequest

SCHEME = "local://"
ORIGIN = "local://mock"
DEFAULT_TEXT = "This is a mock response from relaygate's built-in mock provider."
_ENDPOINTS = {"/chat/completions": "chat", "/completions": "completions", "/embeddings": "embeddings"}
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream")]
_any = msgspec.json.Decoder(Any)
_encoder = msgspec.json.Encoder()

Steps = list[tuple[float, bytes]]


class LocalResponse:
    """An answer of the local upstream: ``(delay, bytes)`` steps played out as the body is read."""

    __slots__ = ("status", "headers", "_steps", "_gen")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], steps: Steps) -> None:
        self.status = status
        self.headers = headers
        self._steps = steps
        self._gen: AsyncIterator[bytes] | None = None

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._gen is None:
            self._gen = self._play()
        return self._gen

    async def _play(self) -> AsyncIterator[bytes]:
        steps, self._steps = self._steps, []
        for delay, data in steps:
            if delay > 0:
                await asyncio.sleep(delay)
            yield data

    async def aclose(self) -> None:
        self._steps = []
        gen, self._gen = self._gen, None
        if gen is not None:
            await gen.aclose()  # type: ignore[attr-defined]


class LocalTransport:
    """A :class:`~relaygate.upstream.base.Transport` for ``local://mock`` requests. Stateless."""

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> LocalResponse:
        path = request.url[len(ORIGIN):] if request.url.startswith(ORIGIN) else ""
        if request.method == "GET" and path == "/health":
            return LocalResponse(200, _JSON, [(0.0, b'{"status":"healthy"}')])
        endpoint = _ENDPOINTS.get(path)
        body = request.body
        if request.method != "POST" or endpoint is None or not isinstance(body, bytes):
            return _error(404, f"the mock upstream has no {request.method} {path or request.url}")
        opts = {k.lower(): v for k, v in request.headers}
        try:
            view = decode_view(endpoint, body)
            latency, steps = answer(endpoint, body, view, opts)
        except (GatewayError, ValueError, msgspec.MsgspecError) as exc:
            return _error(400, f"the mock upstream cannot read this request: {exc}")
        if view.stream and endpoint != "embeddings":
            steps[0] = (steps[0][0] + latency, steps[0][1])
            return LocalResponse(200, _SSE, steps)
        if latency > 0:
            await asyncio.sleep(latency)
        return LocalResponse(200, _JSON, steps)

    async def aclose(self) -> None:
        return None


#: the one local transport (it holds no state)
LOCAL = LocalTransport()


def _error(status: int, message: str) -> LocalResponse:
    body = _encoder.encode({"error": {"message": message, "type": "invalid_request_error", "code": status}})
    return LocalResponse(status, _JSON, [(0.0, body)])


# ------------------------------------------------------------------------------------------- answers


def _opt(opts: dict[str, str], name: str, default: float) -> float:
    value = opts.get(name)
    return float(value) if value else default


def answer(endpoint: str, body: bytes, view: AnyView, opts: dict[str, str]) -> tuple[float, Steps]:
    """(latency in seconds, the body as steps) for one mock request: one step for JSON, several for SSE."""
    latency = _opt(opts, "x-mock-latency-ms", 0.0) / 1000.0
    model = opts.get("x-mock-model", "mock")
    now = int(_opt(opts, "x-mock-created", 0.0))
    if isinstance(view, EmbeddingView):
        return latency, [(0.0, _embeddings(view, model, int(_opt(opts, "x-mock-embedding-dim", 8)) or 8))]
    text = _text(view, opts)
    rid = "chatcmpl-mock-" + hashlib.blake2s(body, digest_size=8).hexdigest()
    chat = isinstance(view, ChatView)
    if not view.stream:
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            obj = "text_completion"
        out = {"id": rid, "object": obj, "created": now, "model": model, "choices": [choice],
               "usage": _usage(view, text)}
        return latency, [(0.0, _encoder.encode(out))]
    gap = _opt(opts, "x-mock-chunk-gap-ms", 0.0) / 1000.0
    chunks = int(_opt(opts, "x-mock-chunks", 8)) or 8
    steps: Steps = []
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choice: dict[str, Any], **more: Any) -> bytes:
        return frame(_encoder.encode({"id": rid, "object": obj, "created": now, "model": model,
                                      "choices": [choice] if choice else [], **more}))

    if chat:
        steps.append((0.0, chunk({"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "finish_reason": None})))
    for i, part in enumerate(_split(text, chunks)):
        delay = gap if (chat or i) else 0.0
        if chat:
            c = {"index": 0, "delta": {"content": part}, "finish_reason": None}
        else:
            c = {"index": 0, "text": part, "finish_reason": None, "logprobs": None}
        steps.append((delay, chunk(c)))
    final = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else {
        "index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
    steps.append((0.0, chunk(final)))
    so = getattr(view, "stream_options", None)
    if so is not None and so.include_usage:
        steps.append((0.0, chunk({}, usage=_usage(view, text))))
    steps.append((0.0, b"data: [DONE]\n\n"))
    return latency, steps


def _text(view: AnyView, opts: dict[str, str]) -> str:
    fixed = opts.get("x-mock-response")
    if fixed is not None:
        return fixed
    if opts.get("x-mock-echo") == "1":
        if isinstance(view, ChatView):
            return _last_user_text(view) or DEFAULT_TEXT
        if isinstance(view, CompletionView):
            prompt = _any.decode(view.prompt)
            return prompt if isinstance(prompt, str) else DEFAULT_TEXT
    return DEFAULT_TEXT


def _last_user_text(view: ChatView) -> str:
    for raw in reversed(view.messages):
        msg = _any.decode(raw)
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _split(text: str, n: int) -> list[str]:
    if n <= 1 or not text:
        return [text]
    words = text.split(" ")
    per = max(1, -(-len(words) // n))
    parts = [" ".join(words[i:i + per]) for i in range(0, len(words), per)]
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _usage(view: AnyView, text: str) -> dict[str, int]:
    raw = b"".join(bytes(m) for m in view.messages) if isinstance(view, ChatView) else bytes(
        getattr(view, "prompt", b"") or getattr(view, "input", b""))
    p = estimate_tokens(raw)
    c = estimate_tokens(text)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def embedding_inputs(raw: bytes) -> list[Any] | None:
    """The inputs of an embeddings request's ``input`` (a string, a token array, or a list of either), or
    None when it is none of these."""
    try:
        inputs: Any = _any.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return None
    return inputs


def _embeddings(view: EmbeddingView, model: str, dim: int) -> bytes:
    inputs = embedding_inputs(view.input)
    if inputs is None:
        raise ValueError("`input` must be a string or a non-empty array")
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        seed = hashlib.blake2s(_encoder.encode(item), digest_size=32).digest()
        vec = [((b / 255.0) * 2.0 - 1.0) for b in (seed * (dim // 32 + 1))[:dim]]
        emb: Any = vec
        if view.encoding_format == "base64":
            emb = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens += estimate_tokens(item if isinstance(item, str) else str(item))
    return _encoder.encode({"object": "list", "data": data, "model": model,
                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
