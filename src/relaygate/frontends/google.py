"""Google's Gemini API served by the gateway: ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` and ``:countTokens`` (also under ``/v1`` and without a version), as LiteLLM's proxy
serves them.

The ``google-genai`` SDK works against the gateway unchanged (``http_options.base_url`` = the gateway; its key
goes in ``x-goog-api-key``, which the gateway reads as its own key header). The path's model names a model
group as on the OpenAI routes (a ``models/`` prefix is dropped), so authentication, routing, retries,
fallbacks, limits, budgets, usage and cost are the same. A ``gemini/`` deployment is sent the client's own
request at its own ``:generateContent`` / ``:streamGenerateContent`` / ``:countTokens`` (its key, its model; as
LiteLLM passes it), and its answer — body or events, whole events only — goes back as Google sent it, its
``usageMetadata`` priced. Every other deployment gets the request translated to an OpenAI chat request
(``providers.google_api``) through its own adapter, and the answer comes back as Gemini's
``GenerateContentResponse``; a stream as Gemini's ``data:`` events (``alt=sse``, what the SDK asks; LiteLLM
streams every request so, whatever ``alt`` says). ``countTokens`` is the ``gemini/`` deployment's own count,
else (or when it cannot answer) the gateway's estimate of the translated request. Errors are Google's
``{"error": {"code", "message", "status"}}`` with the same HTTP status; an upstream failure after a stream started
is one more event carrying the error. A translated request loses the Gemini-only fields without a chat
counterpart (``cachedContent``, ``speechConfig``); safety settings, thinking budgets and Gemini's own tools are
sent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.views import decode_view
from relaygate.frontends.anthropic import _gateway_fields, _load, _shallow, send_shaped_error
from relaygate.http.body import read_body
from relaygate.http.respond import send_json
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope, Send
from relaygate.pipeline import Exchange, Frontend, StreamStart, control
from relaygate.pipeline.exchange import first_frame
from relaygate.pipeline.frontend import Answer, Attempt, send_native, stream, unary
from relaygate.providers.base import StreamTranslator, WrappedTranslator, empty_stream_error
from relaygate.providers.google_api import GeminiStream, error_body, openai_to_gemini, to_openai
from relaygate.upstream.base import Transport, UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from relaygate.config.model import Deployment
    from relaygate.router import Target

__all__ = ["ACTIONS", "GenerateContent", "routes"]

log = logging.getLogger("relaygate")

ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")


def routes() -> list[tuple[str, Frontend]]:
    """``(path, frontend)`` of every Gemini route (all POST)."""
    out: list[tuple[str, Frontend]] = []
    for action in ACTIONS:
        fe = GenerateContent(action)
        out += [(f"{prefix}/models/{{model:path}}:{action}", fe) for prefix in ("/v1beta", "/v1", "")]
    return out


class _Native(StreamTranslator):
    """A ``gemini/`` upstream's events go to the client untouched, whole events only (an upstream that breaks off
    mid-event leaves no half event before the error event); each event's ``usageMetadata`` (Gemini repeats the
    running totals) is kept, in OpenAI's terms, as the usage the gateway prices."""

    def __init__(self) -> None:
        self._held = b""
        self._events = 0
        self.content_tokens = 0

    def feed(self, data: bytes) -> bytes:
        buf = self._held + data if self._held else data
        end = max(buf.rfind(b"\n\n") + 2, buf.rfind(b"\r\n\r\n") + 4, 0)
        self._held = buf[end:]
        whole = buf[:end]
        if whole:
            self._watch(whole)
        return whole

    def close(self) -> bytes:
        held, self._held = self._held, b""
        if held.strip():
            self._watch(held)
        if not self._events:  # an empty 200 is no answer: 502 / an error event
            raise empty_stream_error("gemini")
        return held

    def _watch(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            self._events += 1
            if b"usageMetadata" in line:
                um = _usage_of(line[5:].strip())
                if um is not None:
                    self.last_data = _chat_usage(um)
            if b'"text"' in line:
                self.content_tokens += max(1, len(line) // 16)


def _chat_usage(um: dict[str, Any]) -> bytes:
    """Gemini's ``usageMetadata`` as an OpenAI usage object (what the gateway's pricing reads)."""
    prompt, thoughts = int(um.get("promptTokenCount") or 0), int(um.get("thoughtsTokenCount") or 0)
    completion = int(um.get("candidatesTokenCount") or 0) + thoughts
    return orjson.dumps({"usage": {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(um.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts}}})


async def _native_send(transport: Transport, ex: Exchange, target: Target, action: str,
                       stream: bool) -> UpstreamResponse:
    """The client's own bytes to the ``gemini/`` deployment's ``:<action>`` (its key, its model)."""
    p: Any = target.provider
    url = p.url_stream if stream else p.url_unary if action == "generateContent" else p.url_unary.replace(
        ":generateContent", ":" + action)
    return await send_native(transport, ex, target, UpstreamRequest("POST", url, p.request_headers(),
                                                                    ex.state), stream)


def _native(ex: Exchange, target: Target) -> bool:
    return target.provider.name == "gemini" and not control.mocked(ex)


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
        raw = await read_body(receive, ex.rt.body_limits)
        req = _load(raw)  # the JSON rules of every inbound API
        ex.model = model
        ex.stream = self.action == "streamGenerateContent"
        changed = _gateway_fields(ex, req)  # LiteLLM's own fields (mock_response, fallbacks ...) never go upstream
        if self.action == "countTokens" and isinstance(req.get("generateContentRequest"), dict):
            req, changed = req["generateContentRequest"], True  # countTokens' other form
        ex.state = _shallow(orjson.dumps, req) if changed else raw  # what a gemini/ deployment is sent as it is
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
            if _native(ex, target):
                t = time.perf_counter()
                try:
                    resp = await _native_send(transport, ex, target, "generateContent", False)
                    return await resp.read(), resp.headers
                finally:
                    ex.wait += time.perf_counter() - t
            data, headers = await inner(target)
            return openai_to_gemini(data, model), headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        inner = stream(transport, ex)
        model = ex.model

        async def attempt(target: Target) -> StreamStart:
            if _native(ex, target):
                t = time.perf_counter()
                native = _Native()
                try:
                    resp = await _native_send(transport, ex, target, "streamGenerateContent", True)
                    chunks = resp.__aiter__()
                    first = await first_frame(chunks, native, resp.aclose)
                finally:
                    ex.wait += time.perf_counter() - t
                return StreamStart(chunks, native, first, resp.headers, resp.aclose)
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
        um = _usage_of(data) if b'"usageMetadata"' in data else None
        if um is not None:  # a Gemini answer: its cache and reasoning counts in OpenAI's terms
            data = _chat_usage(um)
        return super().price(ex, dep, data)

    def error_frame(self, exc: GatewayError) -> bytes:
        return b"data: " + error_body(exc) + b"\r\n\r\n"

    async def answer(self, transport: Transport, ex: Exchange, send: Send) -> None:
        assert ex.group is not None
        for target in ex.group.targets:  # a gemini/ deployment counts itself; else (or failing) the estimate
            if _native(ex, target):
                try:
                    resp = await _native_send(transport, ex, target, "countTokens", False)
                    await send_json(send, 200, await resp.read())
                    return
                except GatewayError as exc:
                    if exc.status in (400, 422):  # the request itself refused: the caller's error
                        raise
                    log.info("countTokens upstream failed (%s); estimating", exc.message)
                break
        chat = orjson.loads(ex.body)
        n = tokens.estimate_messages_tokens(orjson.dumps(chat.get("messages") or []))
        if chat.get("tools"):
            n += tokens.estimate_tokens(orjson.dumps(chat["tools"]))
        await send_json(send, 200, orjson.dumps({"totalTokens": max(1, n)}))

    async def send_error(self, send: Send, exc: GatewayError, call_id: bytes | None) -> None:
        await send_shaped_error(send, exc, error_body(exc), call_id)
