"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API served by the gateway.

The official ``anthropic`` SDK works against the gateway unchanged (``base_url`` = the gateway). Auth is
the gateway's (``x-api-key`` or ``Authorization: Bearer``). The request's ``model`` names a model group
as on the OpenAI routes, so routing, retries, fallbacks and limits are the same:

* a deployment on ``anthropic/`` receives the client's bytes natively (model swapped, ``anthropic-beta``
  forwarded) and its answer, body or event stream, goes back untouched, in whole events only (an upstream
  that breaks off mid-event leaves no half event before the ``event: error`` frame);
* an ``openai/`` or ``azure/`` deployment of a model only the Responses API serves (the catalog's or the
  deployment's ``mode: responses``: o1-pro, o3-pro, gpt-5-pro, gpt-5-codex ...) gets the request translated
  to a Responses request at its ``/responses`` endpoint and the answer translated back
  (:mod:`relaygate.providers.messages_responses`);
* every other deployment gets the request translated to OpenAI's shape
  (:func:`relaygate.providers.messages_api.to_openai`) and goes through the gateway's own attempt
  functions (so each provider's adapter applies), and the OpenAI answer is translated back: a body with
  ``openai_to_message``, a stream with ``MessagesStream``, which emits Anthropic's exact event sequence.

Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` with the same status;
an upstream failure after the stream started becomes an ``event: error`` frame.

Everything else is the pipeline's, as on the OpenAI routes: authentication, per-request overrides
(``x-litellm-*`` headers; ``num_retries`` / ``timeout`` / ``fallbacks`` in the body, which are removed before
the body goes to a native upstream), allow-lists, limits, retries and fallbacks, the completion record, and
the stream relay (keepalives while waiting for the first event, a failure after keepalives went out ends
the stream with an ``event: error`` frame, a client disconnect closes the upstream connection).
``count_tokens`` asks an ``anthropic/`` deployment when the group has one and otherwise estimates (LiteLLM
1.110's ``litellm_count_source``: ``provider`` or ``local_estimate``, said in the answer).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import orjson

from relaygate.cache.calls import FinishWatch, finish_watch
from relaygate.core import body as body_edit
from relaygate.core import cache_points, errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.sse import SSEDecoder
from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL, check_duplicate_keys, decode_view
from relaygate.http.body import read_body
from relaygate.http.respond import VERSION
from relaygate.http.routes import Params
from relaygate.http.types import Headers, Receive, Scope, Send
from relaygate.pipeline import Exchange, Frontend, StreamStart, control, require_model
from relaygate.pipeline.exchange import first_frame
from relaygate.pipeline.frontend import Answer, Attempt, send_native, stream, unary
from relaygate.providers import messages_responses as mr
from relaygate.providers.base import StreamTranslator, WrappedTranslator, empty_stream_error
from relaygate.providers.messages_api import MessagesStream, error_body, openai_to_message, to_openai
from relaygate.upstream.base import Transport, UpstreamResponse

if TYPE_CHECKING:
    from relaygate.router import Target

log = logging.getLogger("relaygate")
T = TypeVar("T")

_JSON = (b"content-type", b"application/json")
_FORWARD = (b"anthropic-beta",)


async def send_anthropic_error(send: Send, exc: GatewayError, call_id: bytes | None = None) -> None:
    await send_shaped_error(send, exc, error_body(exc), call_id)


async def send_shaped_error(send: Send, exc: GatewayError, body: bytes, call_id: bytes | None = None) -> None:
    """``exc`` answered with ``body`` (its API's error shape), its status and headers, and the gateway's."""
    hs: Headers = [(b"x-litellm-version", VERSION)]
    if call_id:
        hs.append((b"x-litellm-call-id", call_id))
    hs += [*exc.headers, _JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": exc.status, "headers": hs})
    await send({"type": "http.response.body", "body": body})


def _load(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
    if not isinstance(obj, dict):
        raise errors.BadRequest("Invalid request body: expected a JSON object")
    check_duplicate_keys(body)
    return obj


def _shallow(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, where orjson refusing to write nesting deeper than its limit (254) is the client's
    400; ``orjson.loads`` took the body (up to 1024 levels), so this is where depth is bounded."""
    try:
        return fn(*args)
    except orjson.JSONEncodeError as exc:
        if "ecursion" not in str(exc):
            raise
        raise errors.BadRequest("Invalid request body: nested too deeply") from None


def _estimate(req: dict[str, Any]) -> int:
    n = tokens.estimate_messages_tokens(orjson.dumps(req.get("messages") or []))
    system = req.get("system")
    if system:
        n += tokens.estimate_messages_tokens(orjson.dumps([{"role": "system", "content": system}])) - 3
    if req.get("tools"):
        n += tokens.estimate_tokens(orjson.dumps(req["tools"]))
    return max(1, n)


class _Native(StreamTranslator):
    """An ``anthropic/`` upstream's events go to the client untouched, whole events only: the bytes after
    the last blank line wait for the rest of their event (or the end of the stream), so a stream that breaks
    off mid-event leaves no half event before the error event. Usage is read on the side."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._held = b""
        self._in = 0
        self._out = 0
        self._cache = (0, 0)
        self._1h = 0
        self._events = 0
        self.content_tokens = 0

    def feed(self, data: bytes) -> bytes:
        for event, payload in self._sse.feed(data):
            self._watch(event, payload)
        buf = self._held + data if self._held else data
        i, j = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
        end = max(i + 2 if i >= 0 else 0, j + 4 if j >= 0 else 0)
        if end == len(buf):
            self._held = b""
            return buf
        self._held = buf[end:]
        return buf[:end]

    def close(self) -> bytes:
        for event, payload in self._sse.close():
            self._watch(event, payload)
        if not self._events:  # an empty 200 (or one of no events) is no answer: 502 / an error event
            raise empty_stream_error("anthropic")
        held, self._held = self._held, b""
        return held

    def _watch(self, event: bytes | None, payload: bytes) -> None:
        self._events += 1
        if event == b"message_start" or event == b"message_delta":
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return
            u = (obj.get("message") or {}).get("usage") if event == b"message_start" else obj.get("usage")
            if isinstance(u, dict):
                self._in = int(u.get("input_tokens") or self._in) if "input_tokens" in u else self._in
                self._out = int(u.get("output_tokens") or 0) or self._out
                if "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:  # priced apart
                    self._cache = (int(u.get("cache_read_input_tokens") or 0),
                                   int(u.get("cache_creation_input_tokens") or 0))
                cc = u.get("cache_creation")
                if isinstance(cc, dict):  # the part of the cache writes kept 1 hour (priced apart)
                    self._1h = int(cc.get("ephemeral_1h_input_tokens") or 0)
                self.last_data = (b'{"usage":{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,'
                                  b'"cache_creation_input_tokens":%d,"cache_creation":{"ephemeral_1h_input_tokens":%d}}}'
                                  % (self._in, self._out, *self._cache, self._1h))
        elif event == b"message_stop":
            self.done = True


class _ToMessages(WrappedTranslator):
    """An OpenAI-chunk translator followed by the OpenAI -> Anthropic event translator."""

    def __init__(self, inner: StreamTranslator, out: MessagesStream, watch: FinishWatch | None = None) -> None:
        super().__init__(inner)
        self.out = out
        self.watch = watch
        """The response cache's watch of a miss's chat chunks (``cache.calls``); None: not stored."""

    def first(self, chunk: bytes) -> bytes:
        if self.watch is not None:
            self.watch.see(chunk)
        return self.out.feed(chunk)

    def feed(self, data: bytes) -> bytes:
        chunk = self.inner.feed(data)
        if not chunk:
            return b""
        if self.watch is not None:
            self.watch.see(chunk)
        return self.out.feed(chunk)

    def close(self) -> bytes:
        tail = self.inner.close()
        if self.watch is not None:
            self.watch.see(tail)
            self.watch.end()
        return self.out.feed(tail) + self.out.close()


def _native_body(body: bytes, model: str, upstream: str) -> bytes:
    return body if model == upstream else body_edit.set_fields(body, {"model": upstream})


_GATEWAY_FIELDS = frozenset(CONTROL_KEYS) | frozenset(TYPED_CONTROL)
"""Body fields LiteLLM reads for itself (``pipeline.control``); they never reach the upstream, except an
Anthropic-shaped ``metadata`` (``{"user_id": ...}``, what Claude Code sends), which Anthropic accepts."""


class _State:
    """What only this frontend keeps for a request: the client's body for a native upstream, the headers it
    forwards, the input-token estimate a translated stream starts with, and the Responses bodies."""

    __slots__ = ("native_body", "fwd", "estimate", "req", "responses")

    def __init__(self, native_body: bytes, fwd: list[tuple[str, str]], req: dict[str, Any]) -> None:
        self.native_body = native_body
        self.fwd = fwd
        self.req = req
        self.estimate = 0
        #: the Responses body per upstream model, built on a Responses-only deployment's first attempt
        self.responses: dict[str, bytes] = {}

    def responses_body(self, upstream_model: str) -> bytes:
        body = self.responses.get(upstream_model)
        if body is None:
            body = self.responses[upstream_model] = _shallow(orjson.dumps, mr.to_responses(self.req, upstream_model))
        return body


def _gateway_fields(ex: Exchange, req: dict[str, Any]) -> bool:
    """Take the gateway's own fields out of ``req`` into the exchange; True when there were any."""
    found = {k: req.pop(k) for k in _GATEWAY_FIELDS.intersection(req)}
    if not found:
        return False
    md = found.get("metadata")
    if isinstance(md, dict) and md.keys() <= {"user_id"}:
        req["metadata"] = md
    control.apply(ex, found)
    return True


class Messages(Frontend):
    """``POST /v1/messages``."""

    route = "messages"
    router_route = "/v1/messages"
    restamp = True

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        body = await read_body(receive, ex.rt.body_limits)
        req = _load(body)
        ex.model = model = require_model(req.get("model"), "model: Field required")
        ex.stream = bool(req.get("stream"))
        if _gateway_fields(ex, req):
            body = _shallow(orjson.dumps, req)
        fwd = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k in _FORWARD]
        state = ex.state = _State(body, fwd, req)
        oa = _shallow(to_openai, req, model)
        ctl = ex.control
        if ctl is None or "drop_params" not in ctl:
            # a translated request holds only what the client's own fields became: a parameter the target
            # cannot take is dropped, never a 400 naming an OpenAI parameter the client did not send
            ex.control = {**(ctl or {}), "drop_params": True}
        if "max_tokens" not in req:
            raise errors.BadRequest("max_tokens: Field required", param="max_tokens")
        ex.endpoint = "chat"
        ex.body = _shallow(orjson.dumps, oa)
        ex.view = decode_view("chat", ex.body)
        if ex.stream:
            state.estimate = _shallow(_estimate, req)

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        inner = unary(transport, ex)
        model = ex.model
        native = not control.mocked(ex)  # a mock answers in OpenAI's shape, translated like any other

        async def attempt(target: Target) -> Answer:
            if native and target.provider.native_messages:
                t = time.perf_counter()
                try:
                    resp = await _native_send(transport, ex, target, False)
                    data = await resp.read()
                finally:
                    ex.wait += time.perf_counter() - t
                return target.provider.native_response(data), resp.headers
            if native and _responses_only(ex, target):
                t = time.perf_counter()
                try:
                    resp = await _responses_send(transport, ex, target, False)
                    data = await resp.read()
                finally:
                    ex.wait += time.perf_counter() - t
                return mr.response_to_message(data, model), resp.headers
            data, headers = await inner(target)
            return openai_to_message(data, model), headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        inner = stream(transport, ex)
        model, estimate = ex.model, ex.state.estimate
        native = not control.mocked(ex)

        async def attempt(target: Target) -> StreamStart:
            if native and target.provider.native_messages:
                translator: StreamTranslator = _Native()
            elif native and _responses_only(ex, target):
                translator = mr.ResponsesToMessages(model, estimate)
            else:
                start = await inner(target)
                tr = _ToMessages(start.translator, MessagesStream(model, estimate), finish_watch(ex))
                return StreamStart(start.chunks, tr, tr.first(start.first), start.headers, start.close)
            t = time.perf_counter()
            try:
                send = _native_send if isinstance(translator, _Native) else _responses_send
                resp = await send(transport, ex, target, True)
                chunks = resp.__aiter__()
                first = await first_frame(chunks, translator, resp.aclose)
            finally:
                ex.wait += time.perf_counter() - t
            return StreamStart(chunks, translator, first, resp.headers, resp.aclose)

        return attempt

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        return tokens.extract_usage(data)

    def error_frame(self, exc: GatewayError) -> bytes:
        return b"event: error\ndata: " + error_body(exc) + b"\n\n"

    async def send_error(self, send: Send, exc: GatewayError, call_id: bytes | None) -> None:
        await send_anthropic_error(send, exc, call_id)


class CountTokens(Messages):
    """``POST /v1/messages/count_tokens``: an ``anthropic/`` deployment of the group is asked when there is
    one; otherwise (or when it fails) the gateway estimates."""

    route = "count_tokens"
    direct = True

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        body = await read_body(receive, ex.rt.body_limits)
        req = _load(body)
        ex.model = require_model(req.get("model"), "model: Field required")
        if _gateway_fields(ex, req):
            body = _shallow(orjson.dumps, req)
        fwd = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k in _FORWARD]
        ex.state = _State(body, fwd, req)

    async def answer(self, transport: Transport, ex: Exchange, send: Send) -> None:
        assert ex.group is not None
        for target in ex.group.targets:
            if target.provider.native_messages:
                try:
                    resp = await _native_send(transport, ex, target, False, count=True)
                    data = target.provider.native_response(await resp.read())
                except GatewayError as exc:
                    log.info("count_tokens upstream failed (%s); estimating", exc.message)
                    break
                await _json(send, _counted_by(data, "provider"))
                return
        await _json(send, orjson.dumps({"input_tokens": _shallow(_estimate, ex.state.req),
                                        "litellm_count_source": "local_estimate"}))


def _counted_by(data: bytes, source: str) -> bytes:
    """The upstream's count with LiteLLM 1.110's ``litellm_count_source`` (as it was when not an object)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    return orjson.dumps({**obj, "litellm_count_source": source}) if isinstance(obj, dict) else data


async def _native_send(transport: Transport, ex: Exchange, target: Target, stream: bool,
                       count: bool = False) -> UpstreamResponse:
    p = target.provider
    state: _State = ex.state
    body = _native_body(state.native_body, ex.model, target.upstream_model)
    points = (ex.control or {}).get(cache_points.FIELD) or target.dep.extra.get(cache_points.FIELD)
    if points is not None and not count:  # LiteLLM's cache_control_injection_points on /v1/messages
        obj = orjson.loads(body)
        if isinstance(obj, dict) and cache_points.inject_messages(obj, points):
            body = orjson.dumps(obj)
    req = p.native_request(body, state.fwd, count_tokens=count)
    return await send_native(transport, ex, target, req, stream)


def _responses_only(ex: Exchange, target: Target) -> bool:
    return mr.needs_responses(target.dep, target.provider, ex.rt.prices.catalog)


async def _responses_send(transport: Transport, ex: Exchange, target: Target, stream: bool) -> UpstreamResponse:
    """The request translated to the Responses API, sent to the deployment's ``/responses``."""
    state: _State = ex.state
    req = mr.responses_request(target.provider, state.responses_body(target.upstream_model))
    return await send_native(transport, ex, target, req, stream)


async def _json(send: Send, data: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [_JSON, (b"content-length", b"%d" % len(data))]})
    await send({"type": "http.response.body", "body": data})
