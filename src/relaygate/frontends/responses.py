"""``POST /v1/responses`` (and ``/responses``): the OpenAI Responses API served by the gateway.

The official ``openai`` SDK's ``client.responses.create`` / ``client.responses.stream`` work against the
gateway unchanged. The request's ``model`` names a model group as on the chat routes, so authentication,
routing, retries, fallbacks, limits, usage and cost are the same:

* a deployment on ``openai/`` or ``azure/`` receives the client's bytes natively at its own ``/responses``
  endpoint (model swapped, the gateway's own fields removed, ``store`` forced off) and its answer, body or
  event stream, goes back untouched; built-in tools (``web_search``, ``file_search`` ...) work only there;
* every other deployment gets the request translated to a chat completions request
  (:func:`relaygate.providers.responses_api.to_chat`) through the gateway's own attempt functions (so each
  provider's adapter applies), and the chat answer is translated back: a body with ``chat_to_response``, a
  stream with ``ResponsesStream``, which emits the Responses event sequence with ``sequence_number``\\ s.

A request the translation cannot serve (a built-in tool, an unknown item type) fails with a 400 on a
translated deployment only. ``previous_response_id`` (conversation state) and ``background`` are a 400 for
every deployment: the gateway stores no responses yet. Errors are OpenAI's shape ``{"error": {...}}``; an
upstream failure after the stream started ends it with a ``response.failed`` event (translated) or an
``error`` event (native), numbered after the events already sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import body as body_edit
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.core.sse import SSEDecoder
from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL, check_duplicate_keys, decode_view
from relaygate.http.body import read_body
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope
from relaygate.pipeline import Exchange, Frontend, StreamStart, control, require_model
from relaygate.pipeline.exchange import first_frame, stream_shape_error, upstream_error
from relaygate.pipeline.frontend import Answer, Attempt, stream, unary
from relaygate.providers import responses_api as ra
from relaygate.providers.base import (
    SHAPE_ERRORS,
    StreamTranslator,
    WrappedTranslator,
    empty_stream_error,
    json_object,
    stream_head_error,
)
from relaygate.upstream.base import Transport, UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from relaygate.router import Target

NATIVE = frozenset({"openai", "azure"})
"""Providers whose upstream serves ``/responses`` itself."""
_GATEWAY_FIELDS = frozenset(CONTROL_KEYS) | frozenset(TYPED_CONTROL)
_FRAME = "relaygate_responses_frame"
"""The attribute a mid-stream error carries its rendered event on (``Responses.error_frame`` sends it)."""


def error_event(exc: GatewayError, seq: int) -> bytes:
    return b"event: error\ndata: " + orjson.dumps({
        "type": "error", "code": ra.error_code(exc.status), "message": exc.message, "param": exc.param,
        "sequence_number": seq}) + b"\n\n"


def _load(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
    if not isinstance(obj, dict):
        raise errors.BadRequest("Invalid request body: expected a JSON object")
    check_duplicate_keys(body)
    return obj


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        if "ecursion" not in str(exc):
            raise
        raise errors.BadRequest("Invalid request body: nested too deeply") from None


class _State:
    """What only this frontend keeps for a request: the body for a native upstream, the echo of the request
    the Response objects repeat, a translation error kept for translated deployments, and the chat-shaped
    usage of the unary answer that was sent (what the gateway counts and prices)."""

    __slots__ = ("native_body", "echo", "error", "usage", "created")

    def __init__(self, native_body: bytes, ech: dict[str, Any], error: GatewayError | None) -> None:
        self.native_body = native_body
        self.echo = ech
        self.error = error
        self.usage = b""
        self.created = int(time.time())


def _attach(exc: GatewayError, frame: bytes) -> GatewayError:
    setattr(exc, _FRAME, frame)
    return exc


class _ToResponses(WrappedTranslator):
    """A chat-chunk translator followed by the chat -> Responses event translator."""

    def __init__(self, inner: StreamTranslator, out: ra.ResponsesStream) -> None:
        super().__init__(inner)
        self.out = out

    @property
    def done(self) -> bool:  # type: ignore[override]
        return self.out.done

    def feed(self, data: bytes) -> bytes:
        try:
            chunk = self.inner.feed(data)
        except SHAPE_ERRORS as exc:
            raise self.fail(stream_shape_error(exc)) from None
        except GatewayError as exc:
            raise self.fail(exc) from None
        return self.out.feed(chunk) if chunk else b""

    def close(self) -> bytes:
        try:
            tail = self.inner.close()
        except GatewayError as exc:
            raise self.fail(exc) from None
        return self.out.feed(tail) + self.out.close()

    def fail(self, exc: GatewayError) -> GatewayError:
        return _attach(exc, self.out.failed(exc))


class _Native(StreamTranslator):
    """A native upstream's events go to the client untouched, whole events only (a stream that breaks
    off mid-event must not leave half an event before the error event); usage is read from the final
    event."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._held = b""
        self.events = 0
        self.content_tokens = 0

    def feed(self, data: bytes) -> bytes:
        for event, payload in self._sse.feed(data):
            self._watch(event, payload)
        buf = self._held + data if self._held else data
        i, j = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
        end = max(i + 2 if i >= 0 else 0, j + 4 if j >= 0 else 0)
        self._held = buf[end:]
        return buf[:end]

    def close(self) -> bytes:
        for event, payload in self._sse.close():
            self._watch(event, payload)
        if not self.events:
            raise empty_stream_error("the upstream")
        held, self._held = self._held, b""
        return held

    def fail(self, exc: GatewayError) -> GatewayError:
        return _attach(exc, error_event(exc, self.events))

    def _watch(self, event: bytes | None, payload: bytes) -> None:
        self.events += 1
        if event in (b"response.completed", b"response.incomplete", b"response.failed"):
            self.done = True
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return
            resp = obj.get("response") if isinstance(obj, dict) else None
            if isinstance(resp, dict):
                self.last_data = ra.chat_usage(resp.get("usage")) or self.last_data


async def _guarded(chunks: AsyncIterator[bytes], tr: _ToResponses | _Native) -> AsyncIterator[bytes]:
    """The upstream's chunks; a failure mid-stream leaves with its Responses-shaped event attached."""
    try:
        async for chunk in chunks:
            yield chunk
    except GatewayError as exc:
        raise tr.fail(exc) from None


def _native_url(target: Target) -> str:
    p = target.provider
    if p.name == "azure" and not getattr(p, "v1", False):
        return f"{p.api_base}/openai/responses?api-version={getattr(p, 'api_version', '')}"
    return f"{p.api_base}/responses"


class Responses(Frontend):
    """``POST /v1/responses`` and ``POST /responses``."""

    route = "responses"
    router_route = "/v1/responses"
    restamp = True

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        body = await read_body(receive, ex.rt.body_limits)
        req = _load(body)
        ex.model = model = require_model(req.get("model"), "model: Field required")
        ra.validate(req)
        ex.stream = bool(req.get("stream"))
        found = {k: req.pop(k) for k in _GATEWAY_FIELDS.intersection(req)}
        md = found.get("metadata")
        if found:
            control.apply(ex, found)
        native = dict(req)
        if isinstance(md, dict) and all(isinstance(v, str) for v in md.values()):
            native["metadata"] = md  # a Responses metadata (string values) is the upstream's too
        native["store"] = False
        error: GatewayError | None = None
        try:
            chat = ra.to_chat(req, model)
        except ra.Untranslatable as exc:  # only a native deployment can serve it
            error = exc
            chat = {"model": model, "messages": [{"role": "user", "content": ""}], "stream": ex.stream}
        ex.state = _State(_dumps(native), ra.echo(req, md), error)
        ctl = ex.control
        if ctl is None or "drop_params" not in ctl:
            ex.control = {**(ctl or {}), "drop_params": True}
        ex.endpoint = "chat"
        ex.body = _dumps(chat)
        ex.view = decode_view("chat", ex.body)

    def _native(self, ex: Exchange, target: Target) -> bool:
        return target.provider.name in NATIVE and not control.mocked(ex)

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        inner = unary(transport, ex)
        state: _State = ex.state
        model = ex.model

        async def attempt(target: Target) -> Answer:
            if self._native(ex, target):
                t = time.perf_counter()
                try:
                    resp = await _native_send(transport, ex, target, False)
                    data = await resp.read()
                finally:
                    ex.wait += time.perf_counter() - t
                data = json_object(data, target.provider.name)
                try:
                    state.usage = ra.chat_usage(orjson.loads(data).get("usage"))
                except (orjson.JSONDecodeError, AttributeError):
                    raise errors.UpstreamProtocolError(
                        f"{target.provider.name} answered /responses with a body that is not a Response") from None
                return data, resp.headers
            if state.error is not None:
                raise state.error
            data, headers = await inner(target)
            state.usage = data
            return ra.chat_to_response(data, model, state.created, state.echo), headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        inner = stream(transport, ex)
        state: _State = ex.state
        model = ex.model

        async def attempt(target: Target) -> StreamStart:
            if not self._native(ex, target):
                if state.error is not None:
                    raise state.error
                start = await inner(target)
                tr = _ToResponses(start.translator, ra.ResponsesStream(model, state.created, state.echo))
                return StreamStart(_guarded(start.chunks, tr), tr, tr.out.feed(start.first), start.headers,
                                   start.close)
            t = time.perf_counter()
            try:
                resp = await _native_send(transport, ex, target, True)
                native = _Native()
                chunks = resp.__aiter__()
                first = await first_frame(chunks, native, resp.aclose)
            finally:
                ex.wait += time.perf_counter() - t
            return StreamStart(_guarded(chunks, native), native, first, resp.headers, resp.aclose)

        return attempt

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        state: _State = ex.state
        return super().usage(ex, state.usage or data)

    def price(self, ex: Exchange, dep: Any, data: bytes) -> int:
        state: _State | None = ex.state
        return super().price(ex, dep, state.usage if state is not None and state.usage and not ex.stream else data)

    def error_frame(self, exc: GatewayError) -> bytes:
        frame = getattr(exc, _FRAME, None)
        return frame if isinstance(frame, bytes) else error_event(exc, 0)


async def _native_send(transport: Transport, ex: Exchange, target: Target, streaming: bool) -> UpstreamResponse:
    p = target.provider
    state: _State = ex.state
    body = state.native_body
    if ex.model != target.upstream_model:
        body = body_edit.set_fields(body, {"model": target.upstream_model})
    headers = [*p.media_headers(), ("Content-Type", "application/json")]
    ctx = ex.ctx
    resp = await (p.transport or transport).send(
        UpstreamRequest("POST", _native_url(target), headers, body),
        ex.rt.timeouts(target, streaming, ctx.timeout if ctx is not None else None))
    if resp.status >= 400:
        data = await resp.read()
        raise upstream_error(p, resp, data)
    if streaming:
        head_err = stream_head_error(p, resp.header(b"content-type"))
        if head_err is not None:
            await resp.aclose()
            raise head_err
    return resp
