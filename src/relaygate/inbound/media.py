"""Media and auxiliary endpoints: images, audio, moderations, rerank.

``/v1/images/generations``, ``/v1/moderations``, ``/v1/audio/speech`` and ``/v1/rerank`` take JSON with a
``model`` (a model group, routed, retried and failed over like chat); ``/v1/audio/transcriptions`` (and
``/v1/audio/translations``) take ``multipart/form-data`` whose ``model`` field names the group. Each
deployment's adapter decides whether it can serve the endpoint (:func:`media_request`): the
OpenAI-compatible family forwards the body to the same path under its ``api_base`` (Azure under its
deployment URL with ``api-version``), Cohere serves rerank at ``/v2/rerank``; other providers answer a 400
naming the model. The model field is swapped for the upstream's name; everything else passes through.
``/v1/audio/speech`` streams the upstream's binary audio back chunk by chunk with its content type.

Multipart uploads (``transcriptions``, ``translations``, ``image_edits``) are streamed, not buffered: the
handler reads the upload only until :class:`~relaygate.inbound.multipart.FieldFinder` has found the
``model`` field (at most :data:`MODEL_PREFIX` bytes; clients send it before the file), then hands the
transport an :class:`Upload` that yields that prefix, with the model swapped and ``Content-Length``
adjusted, followed by each ``receive()`` piece as the client sends it. The transport's write backpressure
(``upstream.base``) reaches the client through ``receive()``, so the gateway holds about one socket
buffer of an upload whatever its size. ``max_request_body_bytes`` is enforced while streaming (a 413; the
upstream request is aborted) and a client that goes away mid-upload aborts it too. An upload that fits
in its first pieces is sent as ``bytes`` like any body.

A streamed upload can be sent once: until its first byte went out, the router may retry and fall back as
usual; after that, a failure is final and goes to the client (it is kept from the router as
:class:`_Spent`, so it does not count towards the deployment's cooldown either).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import body as body_edit
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.core.views import check_duplicate_keys
from relaygate.inbound.multipart import FieldFinder, boundary_of
from relaygate.logs import RateLimitedLog
from relaygate.providers.base import MEDIA_PATHS, Provider
from relaygate.relay import Exchange, Receive, Scope, Send, Services, retry_after
from relaygate.reqio import BodyLimits, call_id_of, declared_length, next_message, too_large
from relaygate.router import RouteContext
from relaygate.sinks import Outcome
from relaygate.upstream.base import UpstreamRequest

if TYPE_CHECKING:
    from relaygate.router import Target

log = logging.getLogger("relaygate")
fail_log = RateLimitedLog(log)

PATHS = MEDIA_PATHS
_MULTIPART = frozenset({"transcriptions", "translations", "image_edits"})
_JSON = (b"content-type", b"application/json")
#: How far into a multipart upload the ``model`` field is looked for (and the most held before streaming).
MODEL_PREFIX = 1024 * 1024


# ------------------------------------------------------------------------------------ multipart


class Upload:
    """A multipart upload being streamed: the prefix read so far (with the ``model`` value's span) and
    the rest still to come from ``receive()``. :meth:`body` can be iterated once."""

    __slots__ = ("length", "limits", "prefix", "receive", "span", "start", "started")

    def __init__(self, prefix: bytes, span: tuple[int, int], receive: Receive, limits: BodyLimits,
                 length: int | None, start: float) -> None:
        self.prefix = prefix
        self.span = span
        self.receive = receive
        self.limits = limits
        self.start = start  # loop time the body's reading began (the time and rate bounds run from it)
        self.length = length  # the client's Content-Length, if it sent one
        self.started = False

    def body(self, upstream: bytes) -> tuple[AsyncIterator[bytes], int | None]:
        """The upstream body with the model value set to ``upstream``, and its length if known."""
        s, e = self.span
        head = self.prefix[:s] + upstream + self.prefix[e:] if upstream != self.prefix[s:e] else self.prefix
        length = None if self.length is None else self.length - len(self.prefix) + len(head)
        return self._pieces(head), length

    async def _pieces(self, head: bytes) -> AsyncIterator[bytes]:
        if self.started:
            raise RuntimeError("a streamed upload can be sent once")
        self.started = True
        self.prefix = b""
        size = len(head)
        yield head
        receive, limits, start = self.receive, self.limits, self.start
        limit = limits.max_bytes
        while True:
            msg = await next_message(receive, limits, start, size)
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            if chunk:
                yield chunk
            if not msg.get("more_body", False):
                return


class _Spent(Exception):
    """A failure after a streamed upload began: final, so it bypasses the router's retries."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


async def _read_multipart(gw: Services, scope: Scope, receive: Receive,
                          ctype: str) -> tuple[str, bytes, tuple[int, int], Upload | None]:
    """Read until the ``model`` field is known -> (model, body so far, its span, the upload if more comes)."""
    limits = gw.body_limits
    limit = limits.max_bytes
    length: int | None = None
    for k, v in scope["headers"]:
        if k == b"content-length":
            length = declared_length(v, limit)
    start = asyncio.get_running_loop().time()
    finder = FieldFinder(boundary_of(ctype), "model", MODEL_PREFIX)
    found = False
    more = True
    while more:
        msg = await next_message(receive, limits, start, len(finder.buffered))
        more = msg.get("more_body", False)
        found = finder.feed(msg.get("body", b""))
        if len(finder.buffered) > limit:
            raise too_large(len(finder.buffered), limit)
        if found:
            break
    span = finder.end()
    body = bytes(finder.buffered)
    model = body[span[0]:span[1]].decode(errors="replace").strip()
    if not model:
        raise errors.BadRequest("model: form field required", param="model")
    return model, body, span, (Upload(body, span, receive, limits, length, start) if more else None)


# --------------------------------------------------------------------------------------- adapters


def media_request(p: Provider, kind: str, body: bytes, ctype: str, model: str, upstream: str,
                  span: tuple[int, int] | None, upload: Upload | None = None) -> UpstreamRequest:
    """The upstream request for a media endpoint, or a 400 if the deployment's provider has none.
    With ``upload``, the body streams from it (``body`` and ``span`` are then its prefix)."""
    if kind in p.media_translated:
        req = orjson.loads(body)
        req.pop("model", None)
        return p.media_request(kind, req, upstream)
    if kind in p.media_forward:
        url = p.media_url(PATHS[kind])
        headers = p.media_headers()
        headers.append(("Content-Type", ctype))
        if upload is not None:
            stream, length = upload.body(upstream.encode())
            return UpstreamRequest("POST", url, headers, stream, length)
        if span is not None:
            new = body[:span[0]] + upstream.encode() + body[span[1]:] if model != upstream else body
        else:
            new = body_edit.set_fields(body, {"model": upstream}) if model != upstream else body
        return UpstreamRequest("POST", url, headers, new)
    raise errors.BadRequest(f"{p.name} model `{upstream}` does not support /v1{PATHS[kind]}", param="model")


# --------------------------------------------------------------------------------------- handler


def make_handler(kind: str) -> Any:
    async def handler(gw: Services, scope: Scope, receive: Receive, send: Send) -> None:
        call_id = _call_id(scope)
        ex = Exchange(call_id, kind, time.perf_counter())
        try:
            await _media(gw, scope, receive, send, kind, ex)
        except GatewayError as exc:  # every answer carries the call id, errors too
            gw.complete(ex, exc.status, Outcome.ERROR, error=exc)
            fail_log.warning("%s failed: %d %s (call_id=%s)", scope["path"], exc.status, exc.message, call_id.decode())
            await gw._send_error(send, exc, call_id)

    handler.__name__ = f"media_{kind}"
    return handler


async def _media(gw: Services, scope: Scope, receive: Receive, send: Send, kind: str, ex: Exchange) -> None:
    t0, call_id = ex.t0, ex.call_id
    who = ex.who = await gw.principal(scope)
    key = who.key
    ctype = "application/json"
    for k, v in scope["headers"]:
        if k == b"content-type":
            ctype = v.decode("latin-1")
    span: tuple[int, int] | None = None
    upload: Upload | None = None
    if kind in _MULTIPART:
        if not ctype.lower().startswith("multipart/form-data"):
            raise errors.BadRequest(f"/v1{PATHS[kind]} expects multipart/form-data")
        model, body, span, upload = await _read_multipart(gw, scope, receive, ctype)
    else:
        body = await gw.read_body(scope, receive)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
        check_duplicate_keys(body)
        m = obj.get("model") if isinstance(obj, dict) else None
        if not isinstance(m, str) or not m:
            raise errors.BadRequest("Invalid request body: Object missing required field `model`", param="model")
        model = m
        ctype = "application/json"
    ex.model = model
    group = gw.router.resolve(model, f"/v1{PATHS[kind]}")
    who.check_model(model)
    ctx = ex.ctx = RouteContext(stream=kind == "speech", key=key)
    ex.stream = kind == "speech"
    timer = ex

    async def attempt(target: Target) -> Any:
        p = target.provider
        req = media_request(p, kind, body, ctype, model, target.upstream_model, span, upload)
        t = time.perf_counter()
        try:
            resp = await gw.transport.send(req, gw.timeouts(target, kind == "speech", None))
            if resp.status >= 400:
                data = await resp.read()
                raise p.map_error(resp.status, data, retry_after(resp.header(b"retry-after")))
            if kind == "speech":
                return resp
            return await resp.read(), resp.header(b"content-type") or b"application/json"
        except GatewayError as exc:
            if upload is not None and upload.started:
                raise _Spent(exc) from None
            raise
        finally:
            timer.wait += time.perf_counter() - t

    try:
        result, lease = await gw.router.run(group, ctx, attempt)
    except _Spent as spent:
        raise spent.error from None
    total = time.perf_counter() - t0
    headers = gw._headers(lease, group, call_id=call_id, ctx=ctx, total=total, wait=timer.wait)
    if kind != "speech":
        data, rtype = result
        headers += [(b"content-type", rtype), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        lease.finish(True, 0)
        ex.lease = lease
        gw.complete(ex, 200, Outcome.OK, total)
        return
    resp = result
    ex.lease = lease
    ok = gone = False
    broke: GatewayError | None = None
    try:
        headers.append((b"content-type", resp.header(b"content-type") or b"application/octet-stream"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in resp:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        ok = True
    except (OSError, RuntimeError, asyncio.CancelledError, GatewayError) as exc:
        await resp.aclose()
        if isinstance(exc, GatewayError):
            broke = exc
            log.warning("speech stream from %s broke: %s", lease.target.dep.id, exc.message)
        else:
            gone = True
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        lease.finish(ok, 0)
        ex.ttft = total
        outcome = Outcome.OK if ok else Outcome.CLIENT_GONE if gone else Outcome.STREAM_BROKEN
        gw.complete(ex, 200 if ok else 599, outcome, error=broke)


def _call_id(scope: Scope) -> bytes:
    return call_id_of(scope["headers"])
