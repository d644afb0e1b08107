"""Google's Gemini API served by the gateway: ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` and ``:countTokens`` (also under ``/v1`` and without a version), as LiteLLM's proxy
serves them.

The ``google-genai`` SDK works against the gateway unchanged (``http_options.base_url`` = the gateway; its key
goes in ``x-goog-api-key``, which the gateway reads as its own key header). The path's model names a model
group as on the OpenAI routes (a ``models/`` prefix is dropped), so authentication, routing, retries,
fallbacks, limits, budgets, usage and cost are the same. Every deployment gets the request translated to an
OpenAI chat request (``providers.google_api``) and goes through its own adapter — a ``gemini/`` or
``vertex_ai/`` deployment back to Gemini's own API — and the answer comes back as Gemini's
``GenerateContentResponse``; a stream (``streamGenerateContent``) as ``data:`` events (Google's ``alt=sse``
form, what the SDK asks; LiteLLM streams every request so, whatever ``alt`` says). ``countTokens`` answers
``{"totalTokens"}`` from the gateway's estimate of the translated request (the tokens its limits and budgets
reserve by). Errors are Google's ``{"error": {"code", "message", "status"}}`` with the same HTTP status; an
upstream failure after a stream started is one more event carrying the error.

Where it differs from LiteLLM: LiteLLM passes a request for a Gemini deployment natively; relaygate translates
every request, so a Gemini-only field without a chat counterpart (``cachedContent``, ``speechConfig``,
``mediaResolution``) is not sent (safety settings, thinking budgets and Gemini's own tools are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.views import decode_view
from relaygate.frontends.anthropic import _load, _shallow, send_shaped_error
from relaygate.http.body import read_body
from relaygate.http.respond import send_json
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope, Send
from relaygate.pipeline import Exchange, Frontend, StreamStart
from relaygate.pipeline.frontend import Answer, Attempt, stream, unary
from relaygate.providers.base import StreamTranslator, WrappedTranslator
from relaygate.providers.google_api import GeminiStream, error_body, openai_to_gemini, to_openai
from relaygate.upstream.base import Transport

if TYPE_CHECKING:
    from relaygate.config.model import Deployment
    from relaygate.router import Target

__all__ = ["ACTIONS", "GenerateContent", "routes"]

ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")


def routes() -> list[tuple[str, Frontend]]:
    """``(path, frontend)`` of every Gemini route (all POST)."""
    out: list[tuple[str, Frontend]] = []
    for action in ACTIONS:
        fe = GenerateContent(action)
        out += [(f"{prefix}/models/{{model:path}}:{action}", fe) for prefix in ("/v1beta", "/v1", "")]
    return out


class _ToGemini(WrappedTranslator):
    """An OpenAI-chunk translator followed by the OpenAI -> Gemini chunk translator."""

    def __init__(self, inner: StreamTranslator, out: GeminiStream) -> None:
        super().__init__(inner)
        self.out = out

    def feed(self, data: bytes) -> bytes:
        chunk = self.inner.feed(data)
        return self.out.feed(chunk) if chunk else b""

    def close(self) -> bytes:
        return self.out.feed(self.inner.close()) + self.out.close()


def _usage_of(data: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    um = obj.get("usageMetadata") if isinstance(obj, dict) else None
    return um if isinstance(um, dict) else None


class GenerateContent(Frontend):
    """One Gemini action (``generateContent``, ``streamGenerateContent`` or ``countTokens``)."""

    router_route = "/v1beta/models"
    keepalive = False  # no SSE comment frames: an SDK parsing Google's events need not skip them

    def __init__(self, action: str) -> None:
        self.action = action
        self.route = "count_tokens" if action == "countTokens" else "generate_content"
        self.direct = action == "countTokens"

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        model = params.get("model") or ""
        model = model[len("models/"):] if model.startswith("models/") else model
        if not model:
            raise errors.BadRequest("model: the path names no model", param="model")
        req = _load(await read_body(receive, ex.rt.body_limits))  # the JSON rules of every inbound API
        if self.action == "countTokens" and isinstance(req.get("generateContentRequest"), dict):
            req = req["generateContentRequest"]  # countTokens' other form
        ex.model = model
        ex.stream = self.action == "streamGenerateContent"
        chat = _shallow(to_openai, req, model, ex.stream)  # orjson's depth bound is the client's 400
        ctl = ex.control
        if ctl is None or "drop_params" not in ctl:  # the client sent Gemini's fields, not OpenAI's
            ex.control = {**(ctl or {}), "drop_params": True}
        ex.endpoint = "chat"
        ex.body = _shallow(orjson.dumps, chat)
        ex.view = decode_view("chat", ex.body)

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        inner = unary(transport, ex)
        model = ex.model

        async def attempt(target: Target) -> Answer:
            data, headers = await inner(target)
            return openai_to_gemini(data, model), headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        inner = stream(transport, ex)
        model = ex.model

        async def attempt(target: Target) -> StreamStart:
            start = await inner(target)
            inner_tr = start.translator
            tr = _ToGemini(inner_tr, GeminiStream(model, lambda: inner_tr.last_data))
            return StreamStart(start.chunks, tr, tr.out.feed(start.first), start.headers, start.close)

        return attempt

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        um = _usage_of(data)
        if um is None:
            return None
        return (int(um.get("promptTokenCount") or 0),
                int(um.get("candidatesTokenCount") or 0) + int(um.get("thoughtsTokenCount") or 0))

    def price(self, ex: Exchange, dep: Deployment, data: bytes) -> int:
        um = _usage_of(data) if data.startswith(b'{"candidates"') else None
        if um is not None:  # a Gemini answer: its cache and reasoning counts in OpenAI's terms
            data = orjson.dumps({"usage": {
                "prompt_tokens": ex.prompt_tokens, "completion_tokens": ex.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": int(um.get("cachedContentTokenCount") or 0)},
                "completion_tokens_details": {"reasoning_tokens": int(um.get("thoughtsTokenCount") or 0)}}})
        return super().price(ex, dep, data)

    def error_frame(self, exc: GatewayError) -> bytes:
        return b"data: " + error_body(exc) + b"\r\n\r\n"

    async def answer(self, transport: Transport, ex: Exchange, send: Send) -> None:
        chat = orjson.loads(ex.body)
        n = tokens.estimate_messages_tokens(orjson.dumps(chat.get("messages") or []))
        if chat.get("tools"):
            n += tokens.estimate_tokens(orjson.dumps(chat["tools"]))
        await send_json(send, 200, orjson.dumps({"totalTokens": max(1, n)}))

    async def send_error(self, send: Send, exc: GatewayError, call_id: bytes | None) -> None:
        await send_shaped_error(send, exc, error_body(exc), call_id)
