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
handler reads the upload only until :class:`~relaygate.frontends.multipart.FieldFinder` has found the
``model`` field (at most :data:`MODEL_PREFIX` bytes; clients send it before the file), then hands the
transport an :class:`Upload` that yields that prefix, with the model swapped and ``Content-Length``
adjusted, followed by each ``receive()`` piece as the client sends it. The transport's write backpressure
(``upstream.base``) reaches the client through ``receive()``, so the gateway holds about one socket
buffer of an upload whatever its size. ``max_request_body_bytes`` is enforced while streaming (a 413; the
upstream request is aborted) and a client that goes away mid-upload aborts it too. An upload that fits
in its first pieces is sent as ``bytes`` like any body.

A streamed upload can be sent once: until its first byte went out, the router may retry and fall back as
usual; after that, a failure is final and goes to the client (it is kept from the router as
:class:`~relaygate.pipeline.frontend.Spent`, so it does not count towards the deployment's cooldown
either).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.cache.form import read_form
from relaygate.core import body as body_edit
from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL, check_duplicate_keys
from relaygate.frontends.multipart import FieldFinder, boundary_of
from relaygate.http.body import BodyLimits, declared_length, next_message, read_body, too_large
from relaygate.http.routes import Params
from relaygate.http.types import Headers, Receive, Scope
from relaygate.pipeline import Exchange, Frontend, StreamStart, control, require_model
from relaygate.pipeline.exchange import upstream_error
from relaygate.pipeline.frontend import Answer, Attempt, Spent
from relaygate.providers.base import MEDIA_PATHS, Provider, StreamTranslator
from relaygate.upstream.base import Transport, UpstreamRequest

if TYPE_CHECKING:
    from relaygate.config.model import Deployment
    from relaygate.router import Target

log = logging.getLogger("relaygate")

PATHS = MEDIA_PATHS
_MULTIPART = frozenset({"transcriptions", "translations", "image_edits"})
_JSON = (b"content-type", b"application/json")
_CONTROL = frozenset(CONTROL_KEYS) | frozenset(TYPED_CONTROL)
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


async def _read_multipart(limits: BodyLimits, scope: Scope, receive: Receive,
                          ctype: str) -> tuple[str, bytes, tuple[int, int], Upload | None]:
    """Read until the ``model`` field is known -> (model, body so far, its span, the upload if more comes)."""
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


# -------------------------------------------------------------------------------------- frontend


class _State:
    __slots__ = ("ctype", "span", "upload", "form")

    def __init__(self, ctype: str, span: tuple[int, int] | None, upload: Upload | None) -> None:
        self.ctype = ctype
        self.span = span
        self.upload = upload
        self.form: dict[str, Any] | None = None
        """A cached route's upload fields, its file as a hash (``cache.form``): the cache key's material."""


async def _cached_upload(ex: Exchange, ctype: str, body: bytes, span: tuple[int, int],
                         upload: Upload | None) -> tuple[bytes, tuple[int, int], dict[str, Any] | None]:
    """A multipart upload of a route the response cache serves: read whole (within the body limit) and taken
    apart (``cache.form``): the body without the ``cache`` control fields (honoured as the request's cache
    controls), the model's span in it, the key material (None: not cached, a ``stream`` one or a body that
    is not well-formed multipart)."""
    if upload is not None:
        stream, _ = upload.body(upload.prefix[span[0]:span[1]])
        body = b"".join([piece async for piece in stream])
    boundary = boundary_of(ctype)
    form = read_form(body, boundary)
    if form is None:
        return body, span, None
    if form.controls is not None:
        ex.control = {**(ex.control or {}), "cache": form.controls}
        if form.body is not body:
            body = form.body
            finder = FieldFinder(boundary, "model", len(body) + 1)
            finder.feed(body)
            span = finder.end()
    streamed = str(form.fields.get("stream", "")).lower() in ("true", "1")
    return body, span, None if streamed else form.fields


class _Audio(StreamTranslator):
    """Binary audio goes to the client as the upstream sends it."""

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""


class Media(Frontend):
    """One instance per kind (``images``, ``speech``, ``transcriptions`` ...; see ``MEDIA_PATHS``)."""

    keepalive = False  # an SSE comment in an audio stream would corrupt it

    def __init__(self, kind: str) -> None:
        self.route = kind
        self.router_route = f"/v1{PATHS[kind]}"

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        kind = self.route
        ctype = "application/json"
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v.decode("latin-1")
        span: tuple[int, int] | None = None
        upload: Upload | None = None
        form: dict[str, Any] | None = None
        if kind in _MULTIPART:
            if not ctype.lower().startswith("multipart/form-data"):
                raise errors.BadRequest(f"/v1{PATHS[kind]} expects multipart/form-data")
            model, body, span, upload = await _read_multipart(ex.rt.body_limits, scope, receive, ctype)
            cache = ex.rt.cache
            if cache is not None and kind in cache.routes:  # its key needs the whole upload
                body, span, form = await _cached_upload(ex, ctype, body, span, upload)
                upload = None
        else:
            body = await read_body(receive, ex.rt.body_limits)
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
            check_duplicate_keys(body)
            model = require_model(obj.get("model") if isinstance(obj, dict) else None)
            ctype = "application/json"
            ex.stream = kind == "speech"
            found = {k: obj[k] for k in _CONTROL.intersection(obj)} if isinstance(obj, dict) else None
            if found:  # LiteLLM's control fields: honoured, and never sent on
                control.apply(ex, found)
                body = body_edit.drop_fields(body, found)
        ex.model, ex.body, ex.stream = model, body, kind == "speech"
        ex.state = _State(ctype, span, upload)
        if form is not None:
            ex.state.form = form

    def _send(self, transport: Transport, ex: Exchange, stream: bool) -> Attempt[Any]:
        kind, body, model, st = self.route, ex.body, ex.model, ex.state
        upload = st.upload

        async def attempt(target: Target) -> Any:
            p = target.provider
            req = media_request(p, kind, body, st.ctype, model, target.upstream_model, st.span, upload)
            ctx = ex.ctx
            t = time.perf_counter()
            try:
                resp = await (p.transport or transport).send(
                    req, ex.rt.timeouts(target, stream, ctx.timeout if ctx is not None else None))
                if resp.status >= 400:
                    data = await resp.read()
                    raise upstream_error(p, resp, data)
                if stream:
                    return StreamStart(resp.__aiter__(), _Audio(), b"", resp.headers, resp.aclose)
                return await resp.read(), resp.headers
            except GatewayError as exc:
                if upload is not None and upload.started:
                    raise Spent(exc) from None
                raise
            finally:
                ex.wait += time.perf_counter() - t

        return attempt

    def body_pending(self, ex: Exchange) -> bool:
        return ex.state.upload is not None

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        return self._send(transport, ex, False)

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        return self._send(transport, ex, True)

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        return None

    def price(self, ex: Exchange, dep: Deployment, data: bytes) -> int:
        """pico-USD of a media answer, by the unit its model is priced in (LiteLLM's rules): images
        (``output_cost_per_image``, by quality and size), characters of the speech ``input``
        (``input_cost_per_character``), seconds of transcribed audio (the answer's ``duration``), search
        units of a rerank (``input_cost_per_query``, 1 when the answer does not say); else the answer's
        token usage (``gpt-image-1``, ``gpt-4o-transcribe``). Moderations are free."""
        table = ex.rt.prices.table(dep)
        kind = self.route
        if ex.rt.track_remaining and kind in ("images", "image_edits"):  # Prometheus on: images generated
            ex.labels = (0, 0, 0, data.count(b'"url"') + data.count(b'"b64_json"'), None)
        if not table.known or kind == "moderations":
            return 0
        req = _json_or_none(ex.body) if kind in ("images", "speech") else None
        if kind in ("images", "image_edits") and (table.per_image or table.image_by):
            n = data.count(b'"url"') + data.count(b'"b64_json"')
            size = str(req.get("size") or "") if req else ""
            quality = str(req.get("quality") or "") if req else ""
            return table.images(n, size, quality)
        if kind == "speech" and table.per_character:
            text = req.get("input") if req else None
            return table.characters(len(text)) if isinstance(text, str) else 0
        if kind in ("transcriptions", "translations") and table.per_second:
            answer = _json_or_none(data)
            duration = answer.get("duration") if answer else None
            if isinstance(duration, (int, float)) and not isinstance(duration, bool):
                return table.seconds(float(duration))
        if kind == "rerank" and table.per_query:
            answer = _json_or_none(data)
            units = ((answer.get("meta") or {}).get("billed_units") or {}).get("search_units") if answer else None
            return table.queries(units if isinstance(units, int) and units >= 0 else 1)
        usage = tokens.extract_usage(data) if data else None
        if usage:
            ex.prompt_tokens, ex.completion_tokens = usage[0], usage[1]
            return table.tokens(usage[0], usage[1])
        return 0

    def price_stream(self, ex: Exchange, dep: Deployment, last: bytes, had_usage: bool) -> int:
        return self.price(ex, dep, b"")  # speech: priced by the request's characters, never estimated

    def content_type(self, upstream_headers: Headers) -> bytes:
        return _header(upstream_headers, b"content-type") or b"application/json"

    def stream_head(self, start: StreamStart) -> Headers:
        return [(b"content-type", _header(start.headers, b"content-type") or b"application/octet-stream")]

    def error_frame(self, exc: GatewayError) -> bytes:
        return b""  # audio has no in-band error: the stream ends short (and the record says it broke)


def _json_or_none(data: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _header(headers: Headers, name: bytes) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


