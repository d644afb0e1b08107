"""Media and auxiliary endpoints: images, audio, moderations, rerank.

``/v1/images/generations``, ``/v1/moderations``, ``/v1/audio/speech`` and ``/v1/rerank`` take JSON with a
``model`` (a model group, routed, retried and failed over like chat); ``/v1/audio/transcriptions`` (and
``/v1/audio/translations``) take ``multipart/form-data`` whose ``model`` field names the group. Each
deployment's adapter decides whether it can serve the endpoint (:func:`media_request`): the
OpenAI-compatible family forwards the body to the same path under its ``api_base`` (Azure under its
deployment URL with ``api-version``), Cohere serves rerank at ``/v2/rerank``; other providers answer a 400
naming the model. The model field is swapped for the upstream's name; everything else passes through.
``/v1/audio/speech`` streams the upstream's binary audio back chunk by chunk with its content type.

Limitation: request bodies are read whole (bounded by ``max_request_body_bytes``) because the upstream
transport sends ``bytes`` bodies; a multipart upload is therefore held in memory once, never copied
further.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import body as body_edit
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.providers.azure import AzureProvider
from relaygate.providers.base import Provider
from relaygate.providers.cohere import CohereProvider
from relaygate.providers.openai import OpenAIProvider
from relaygate.router import RouteContext
from relaygate.upstream.base import UpstreamRequest

if TYPE_CHECKING:
    from relaygate.asgi import Gateway, Receive, Scope, Send
    from relaygate.router import Target

log = logging.getLogger("relaygate")

PATHS = {"images": "/images/generations", "speech": "/audio/speech", "transcriptions": "/audio/transcriptions",
         "translations": "/audio/translations", "moderations": "/moderations", "rerank": "/rerank",
         "image_edits": "/images/edits"}
_MULTIPART = frozenset({"transcriptions", "translations", "image_edits"})
_JSON = (b"content-type", b"application/json")


# ------------------------------------------------------------------------------------ multipart


def boundary_of(ctype: str) -> bytes:
    for part in ctype.split(";"):
        k, _, v = part.strip().partition("=")
        if k.lower() == "boundary" and v:
            return v.strip('"').encode()
    raise errors.BadRequest("multipart/form-data request without a boundary")


def multipart_field(body: bytes, boundary: bytes, name: str) -> tuple[int, int] | None:
    """(start, end) offsets of the value of the form field ``name`` (a small text field) in ``body``."""
    delim = b"--" + boundary
    needle = b'name="' + name.encode() + b'"'
    pos = 0
    while True:
        i = body.find(delim, pos)
        if i < 0:
            return None
        head_start = i + len(delim)
        if body[head_start:head_start + 2] == b"--":
            return None
        head_end = body.find(b"\r\n\r\n", head_start)
        if head_end < 0:
            return None
        nxt = body.find(b"\r\n" + delim, head_end + 4)
        if nxt < 0:
            return None
        head = body[head_start:head_end]
        if needle in head and b"filename=" not in head:
            return head_end + 4, nxt
        pos = nxt + 2


def _multipart_model(body: bytes, ctype: str) -> tuple[str, tuple[int, int]]:
    b = boundary_of(ctype)
    span = multipart_field(body, b, "model")
    if span is None:
        raise errors.BadRequest("model: form field required", param="model")
    return body[span[0]:span[1]].decode().strip(), span


# --------------------------------------------------------------------------------------- adapters


def media_request(p: Provider, kind: str, body: bytes, ctype: str, model: str, upstream: str,
                  span: tuple[int, int] | None) -> UpstreamRequest:
    """The upstream request for a media endpoint, or a 400 if the deployment's provider has none."""
    if kind == "rerank" and isinstance(p, CohereProvider):
        req = orjson.loads(body)
        req.pop("model", None)
        return p.rerank_request(req, upstream)
    if isinstance(p, OpenAIProvider):
        path = PATHS[kind]
        url = p.path_url(path) if isinstance(p, AzureProvider) else f"{p.api_base}{path}"
        headers = [h for h in p.static_headers if h[0].lower() != "content-type"]
        headers.append(("Content-Type", ctype))
        if span is not None:
            new = body[:span[0]] + upstream.encode() + body[span[1]:] if model != upstream else body
        else:
            new = body_edit.set_fields(body, {"model": upstream}) if model != upstream else body
        return UpstreamRequest("POST", url, headers, new)
    raise errors.BadRequest(f"{p.name} model `{upstream}` does not support /v1{PATHS[kind]}", param="model")


# --------------------------------------------------------------------------------------- handler


def make_handler(kind: str) -> Any:
    async def handler(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
        await _media(gw, scope, receive, send, kind)

    handler.__name__ = f"media_{kind}"
    return handler


async def _media(gw: Gateway, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
    from relaygate import asgi

    t0 = time.perf_counter()
    key = gw._check_auth(scope)
    ctype = "application/json"
    for k, v in scope["headers"]:
        if k == b"content-type":
            ctype = v.decode("latin-1")
    body = await gw._read_body(receive, gw.max_body)
    span: tuple[int, int] | None = None
    if kind in _MULTIPART:
        if not ctype.lower().startswith("multipart/form-data"):
            raise errors.BadRequest(f"/v1{PATHS[kind]} expects multipart/form-data")
        model, span = _multipart_model(body, ctype)
    else:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
        m = obj.get("model") if isinstance(obj, dict) else None
        if not isinstance(m, str) or not m:
            raise errors.BadRequest("Invalid request body: Object missing required field `model`", param="model")
        model = m
        ctype = "application/json"
    group = gw.router.resolve(model, f"/v1{PATHS[kind]}")
    auth = getattr(gw, "auth", None)
    if key is not None and auth is not None:
        auth.check_model(key, model)
    ctx = RouteContext(stream=kind == "speech", key=key)
    timer = asgi.Timer()

    async def attempt(target: Target) -> Any:
        p = target.provider
        if p.local:
            raise errors.BadRequest(f"{p.name} model `{target.upstream_model}` does not support /v1{PATHS[kind]}",
                                    param="model")
        req = media_request(p, kind, body, ctype, model, target.upstream_model, span)
        t = time.perf_counter()
        try:
            resp = await gw.transport.send(req, gw.timeouts(target, kind == "speech", None))
            if resp.status >= 400:
                data = await resp.read()
                raise p.map_error(resp.status, data, asgi._retry_after(resp.header(b"retry-after")))
            if kind == "speech":
                return resp
            return await resp.read(), resp.header(b"content-type") or b"application/json"
        finally:
            timer.wait += time.perf_counter() - t

    result, lease = await gw.router.run(group, ctx, attempt)
    total = time.perf_counter() - t0
    headers = gw._headers(lease, group, call_id=_call_id(scope), ctx=ctx, total=total, wait=timer.wait)
    if kind != "speech":
        data, rtype = result
        headers += [(b"content-type", rtype), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        lease.finish(True, 0)
        gw.metrics.observe(lease.target.dep.model_name, lease.target.dep.id, 200, total, total - timer.wait, 0, 0)
        return
    resp = result
    ok = False
    try:
        headers.append((b"content-type", resp.header(b"content-type") or b"application/octet-stream"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in resp:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        ok = True
    except (OSError, RuntimeError, asyncio.CancelledError, GatewayError) as exc:
        await resp.aclose()
        if isinstance(exc, asyncio.CancelledError):
            raise
        if isinstance(exc, GatewayError):
            log.warning("speech stream from %s broke: %s", lease.target.dep.id, exc.message)
    finally:
        lease.finish(ok, 0)
        gw.metrics.observe(lease.target.dep.model_name, lease.target.dep.id, 200 if ok else 599,
                           time.perf_counter() - t0, max(0.0, total - timer.wait), 0, 0)


def _call_id(scope: Scope) -> bytes:
    for k, v in scope["headers"]:
        if k == b"x-litellm-call-id":
            return bytes(v[:128])
    import uuid

    return str(uuid.uuid4()).encode()
