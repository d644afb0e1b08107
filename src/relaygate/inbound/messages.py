"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API served by the gateway.

The official ``anthropic`` SDK works against the gateway unchanged (``base_url`` = the gateway). Auth is
the gateway's (``x-api-key`` or ``Authorization: Bearer``). The request's ``model`` names a model group
as on the OpenAI routes, so routing, retries, fallbacks and limits are the same:

* a deployment on ``anthropic/`` receives the client's bytes natively (model swapped, ``anthropic-beta``
  forwarded) and its answer, body or event stream, goes back untouched;
* every other deployment gets the request translated to OpenAI's shape
  (:func:`relaygate.providers.messages_api.to_openai`) and goes through the gateway's own attempt
  functions (so each provider's adapter applies), and the OpenAI answer is translated back: a body with
  ``openai_to_message``, a stream with ``MessagesStream``, which emits Anthropic's exact event sequence.

Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` with the same status;
an upstream failure after the stream started becomes an ``event: error`` frame.

Streams behave as on the OpenAI routes (``watch.Keepalive`` and ``watch.DisconnectWatch``, through the
shell's ``serve_stream``, not copied): SSE comment keepalives (``: keepalive``, which SSE clients ignore) every
``stream_keepalive_interval`` seconds while waiting for the first event, a failure after keepalives went
out ends the stream with an ``event: error`` frame, and a client disconnect cancels the stream and
closes the upstream connection.
``count_tokens`` asks an ``anthropic/`` deployment when the group has one and otherwise estimates.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import orjson

from relaygate.core import body as body_edit
from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.sse import SSEDecoder
from relaygate.core.views import ChatView, check_duplicate_keys, decode_view
from relaygate.providers.base import StreamTranslator, empty_stream_error, stream_head_error
from relaygate.providers.messages_api import MessagesStream, error_body, openai_to_message, to_openai
from relaygate.relay import Exchange, Receive, Scope, Send, Services, StreamStart, first_frame, retry_after
from relaygate.reqio import body_ended_early, call_id_of
from relaygate.router import RouteContext
from relaygate.sinks import Outcome
from relaygate.watch import ClientGone

if TYPE_CHECKING:
    from relaygate.router import Target

log = logging.getLogger("relaygate")
T = TypeVar("T")

_JSON = (b"content-type", b"application/json")
_FORWARD = (b"anthropic-beta",)


async def send_anthropic_error(send: Send, exc: GatewayError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(exc)
    hs = [*(headers or []), *exc.headers, _JSON, (b"content-length", str(len(body)).encode())]
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
    """An ``anthropic/`` upstream's events go to the client untouched; usage is read on the side."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._in = 0
        self._out = 0
        self._events = 0
        self.content_tokens = 0

    def feed(self, data: bytes) -> bytes:
        for event, payload in self._sse.feed(data):
            self._watch(event, payload)
        return data

    def close(self) -> bytes:
        for event, payload in self._sse.close():
            self._watch(event, payload)
        if not self._events:  # an empty 200 (or one of no events) is no answer: 502 / an error event
            raise empty_stream_error("anthropic")
        return b""

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
                self.last_data = b'{"usage":{"input_tokens":%d,"output_tokens":%d}}' % (self._in, self._out)
        elif event == b"message_stop":
            self.done = True


class _ToMessages(StreamTranslator):
    """An OpenAI-chunk translator followed by the OpenAI -> Anthropic event translator."""

    def __init__(self, inner: StreamTranslator, out: MessagesStream) -> None:
        self.inner = inner
        self.out = out

    @property
    def last_data(self) -> bytes:  # type: ignore[override]
        return self.inner.last_data

    @property
    def content_tokens(self) -> int:
        return int(getattr(self.inner, "content_tokens", 0))

    def feed(self, data: bytes) -> bytes:
        chunk = self.inner.feed(data)
        return self.out.feed(chunk) if chunk else b""

    def close(self) -> bytes:
        return self.out.feed(self.inner.close()) + self.out.close()


def _native_body(body: bytes, model: str, upstream: str) -> bytes:
    return body if model == upstream else body_edit.set_fields(body, {"model": upstream})


async def messages(gw: Services, scope: Scope, receive: Receive, send: Send) -> None:
    await _handle(gw, scope, receive, send, count=False)


async def count_tokens(gw: Services, scope: Scope, receive: Receive, send: Send) -> None:
    await _handle(gw, scope, receive, send, count=True)


async def _handle(gw: Services, scope: Scope, receive: Receive, send: Send, count: bool) -> None:
    t0 = time.perf_counter()
    call_id = _call_id(scope)
    ex = Exchange(call_id, "count_tokens" if count else "messages", t0)
    try:
        who = ex.who = await gw.principal(scope)
        key = who.key
        body = await gw.read_body(scope, receive)
        req = _load(body)
        model = req.get("model")
        if not isinstance(model, str) or not model:
            raise errors.BadRequest("model: Field required", param="model")
        ex.model = model
        group = gw.router.resolve(model, "/v1/messages")
        who.check_model(model)
        fwd = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k in _FORWARD]
        if count:
            await _count(gw, send, req, body, model, group, fwd)
            return
        oa = _shallow(to_openai, req, model)
        if "max_tokens" not in req:
            raise errors.BadRequest("max_tokens: Field required", param="max_tokens")
        oa_body = _shallow(orjson.dumps, oa)
        view = decode_view("chat", oa_body)
        assert isinstance(view, ChatView)
        stream = bool(req.get("stream"))
        ctx = ex.ctx = RouteContext(stream=stream, key=key, messages=view.messages)
        ex.stream = stream
        if stream:
            await gw.watched(receive, True, _stream(gw, send, body, oa_body, view, model, group, ctx, call_id, t0,
                                                    ex, fwd, _shallow(_estimate, req)), ex)
        else:
            await gw.watched(receive, gw.watch_unary, _unary(gw, send, body, oa_body, view, model, group, ctx,
                                                             call_id, t0, ex, fwd), ex)
    except GatewayError as exc:
        gw.complete(ex, exc.status, Outcome.ERROR, error=exc)
        if exc.status >= 500:
            log.warning("%s failed: %d %s", scope["path"], exc.status, exc.message)
        await send_anthropic_error(send, exc, [(b"x-litellm-call-id", call_id)])
    except ClientGone:
        await send_anthropic_error(send, body_ended_early(), [(b"x-litellm-call-id", call_id)])


def _call_id(scope: Scope) -> bytes:
    return call_id_of(scope["headers"])


async def _native_send(gw: Services, target: Target, body: bytes, model: str, fwd: list[tuple[str, str]],
                       stream: bool, timeout: float | None, count: bool = False) -> Any:
    p = target.provider
    req = p.native_request(_native_body(body, model, target.upstream_model), fwd, count_tokens=count)
    resp = await gw.transport.send(req, gw.timeouts(target, stream, timeout))
    if resp.status >= 400:
        data = await resp.read()
        raise p.map_error(resp.status, data, retry_after(resp.header(b"retry-after")))
    if stream:
        head_err = stream_head_error(p, resp.header(b"content-type"))
        if head_err is not None:
            await resp.aclose()
            raise head_err
    return resp


async def _unary(gw: Services, send: Send, body: bytes, oa_body: bytes, view: Any, model: str, group: Any,
                 ctx: RouteContext, call_id: bytes, t0: float, timer: Exchange, fwd: list[tuple[str, str]]) -> None:
    inner = gw.unary_attempt("chat", oa_body, view, model, ctx, timer)

    async def attempt(target: Target) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if target.provider.native_messages:
            t = time.perf_counter()
            try:
                resp = await _native_send(gw, target, body, model, fwd, False, ctx.timeout)
                data = await resp.read()
            finally:
                timer.wait += time.perf_counter() - t
            return target.provider.native_response(data), resp.headers
        data, headers = await inner(target)
        return openai_to_message(data, model), headers

    (data, _up), lease = await gw.router.run(group, ctx, attempt)
    usage = tokens.extract_usage(data)
    pt, ct = (usage[0], usage[1]) if usage else (0, 0)
    lease.finish(True, pt + ct)
    timer.lease, timer.prompt_tokens, timer.completion_tokens = lease, pt, ct
    total = time.perf_counter() - t0
    headers = gw._headers(lease, group, call_id, ctx, total, timer.wait)
    headers.append(_JSON)
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})
    gw.complete(timer, 200, Outcome.OK, total)


async def _stream(gw: Services, send: Send, body: bytes, oa_body: bytes, view: Any, model: str, group: Any,
                  ctx: RouteContext, call_id: bytes, t0: float, timer: Exchange, fwd: list[tuple[str, str]],
                  estimate: int) -> None:
    inner = gw.stream_attempt("chat", oa_body, view, model, ctx, timer)

    async def attempt(target: Target) -> StreamStart:
        if not target.provider.native_messages:
            start = await inner(target)
            tr = _ToMessages(start.translator, MessagesStream(model, estimate))
            return StreamStart(start.chunks, tr, tr.out.feed(start.first), start.headers, start.close)
        t = time.perf_counter()
        try:
            resp = await _native_send(gw, target, body, model, fwd, True, ctx.timeout)
            translator = _Native()
            chunks = resp.__aiter__()
            first = await first_frame(chunks, translator, resp.aclose)
        finally:
            timer.wait += time.perf_counter() - t
        return StreamStart(chunks, translator, first, resp.headers, resp.aclose)

    await gw.serve_stream(send, group, ctx, call_id, t0, timer, attempt, _error_event)


def _error_event(exc: GatewayError) -> bytes:
    return b"event: error\ndata: " + error_body(exc) + b"\n\n"


async def _count(gw: Services, send: Send, req: dict[str, Any], body: bytes, model: str, group: Any,
                 fwd: list[tuple[str, str]]) -> None:
    for target in group.targets:
        if target.provider.native_messages:
            try:
                resp = await _native_send(gw, target, body, model, fwd, False, None, count=True)
                data = target.provider.native_response(await resp.read())
            except GatewayError as exc:
                log.info("count_tokens upstream failed (%s); estimating", exc.message)
                break
            await _json(send, data)
            return
    await _json(send, orjson.dumps({"input_tokens": _shallow(_estimate, req)}))


async def _json(send: Send, data: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [_JSON, (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})

