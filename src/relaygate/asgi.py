"""The ASGI shell: routes, lifespan, bodies, JSON and SSE responses, errors.

Granian calls :data:`app` (one instance per worker process). Everything that decides lives elsewhere:
request views in ``core.views``, routing in ``router``, translation in ``providers``, bytes on the wire to
upstreams in ``upstream``. This module only moves bytes between them and the client, in this order:

    route dict -> auth -> read body (size limit) -> decode view -> resolve model group -> router.run(attempt)
    -> provider builds the upstream request -> transport -> JSON body, or SSE frames as they arrive

Invariants:
- Every failure becomes an OpenAI-format error body (``GatewayError.body``) with its status; an
  unexpected exception is a 500 with a generic message and one log line with the traceback. The worker
  never dies on a request.
- A stream is never buffered: each upstream chunk is re-framed and sent as it arrives. Before the first
  token, SSE comment keepalives are sent every ``stream_keepalive_interval`` seconds (a timer that costs
  nothing unless it fires). Once bytes went to the client, a failure ends the stream with an error frame;
  it is never retried.
- A client that goes away mid-stream closes the upstream response, which closes (not pools) its
  connection, cancelling the upstream request.
- Secrets (keys, auth headers, bodies) are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Awaitable, Callable

import orjson

from relaygate import __version__
from relaygate.auth import Principal, PrincipalResolver
from relaygate.config.model import Config
from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.core.views import AnyView, decode_view
from relaygate.http.routes import RouteTable
from relaygate.logs import RateLimitedLog
from relaygate.metrics import METRICS_DIR_ENV, Metrics
from relaygate.providers.base import (
    SHAPE_ERRORS,
    Call,
    Provider,
    stream_head_error,
    translate_upstream,
)
from relaygate.relay import Exchange, Receive, Scope, Send, StreamStart, first_frame, stream_shape_error
from relaygate.relay import retry_after as _retry_after
from relaygate.reqio import BodyLimits, Overrides, body_ended_early, check_declared_length, read_body
from relaygate.reqio import new_call_id as _call_id
from relaygate.router import Lease, ModelGroup, RouteContext, Router, Target
from relaygate.sinks import CompletionQueue, CompletionRecord, MetricsSink, Outcome
from relaygate.upstream.base import Timeouts, Transport, UpstreamRequest
from relaygate.upstream.calls import FANOUT_CONCURRENCY, fetch_media, gather, refresh_token, send_read
from relaygate.upstream.factory import make_transport
from relaygate.watch import ClientGone as _ClientGone
from relaygate.watch import DisconnectWatch as _DisconnectWatch
from relaygate.watch import Keepalive

log = logging.getLogger("relaygate")
fail_log = RateLimitedLog(log)


_VERSION = __version__.encode()
_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_KEEPALIVE_HEAD = [(b"x-litellm-version", _VERSION), *_SSE_HEADERS]  # shared, never mutated

LLM_ROUTES: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/completions": "completions",
    "/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
}
_ENDPOINT_SUFFIXES = (("/chat/completions", "chat"), ("/completions", "completions"), ("/embeddings", "embeddings"))


def _ratelimit_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.startswith(b"x-ratelimit-")]


class Gateway:
    """One worker's gateway: config, router, transport, metrics; an ASGI app for HTTP scopes."""

    def __init__(self, config: Config, transport: Transport | None = None) -> None:
        self.config = config
        self.metrics = Metrics.for_config(config, os.environ.get(METRICS_DIR_ENV))
        self.router = Router(config, metrics=self.metrics)
        self.principals = PrincipalResolver.from_config(config)
        # every exchange ends as one completion record; the sinks (metrics today) drain them off the request path
        self.completions = CompletionQueue(on_event=self.metrics.count)
        self.completions.add_sink(MetricsSink(self.metrics))
        self.transport = transport if transport is not None else make_transport(config)
        s = config.server
        self.max_body = s.max_request_body_bytes
        self.body_limits = BodyLimits(s.max_request_body_bytes, s.body_read_timeout, s.min_body_rate)
        self.keepalive = s.stream_keepalive_interval
        self.watch_unary = s.cancel_on_disconnect
        self.allow_private_media = s.allow_private_media_urls
        self._timeouts: dict[tuple[str, bool], Timeouts] = {}
        self.routes = self._route_table()

    def _route_table(self) -> RouteTable:
        """Every route of the gateway, in one table (``http.routes``): static LLM paths are one dict lookup;
        the model-in-path forms (Azure's ``/openai/deployments/{model}/...``, ``/engines/{model}/...``) and
        ``/v1/models/{id}`` are parameterised; handlers from ``inbound`` (Anthropic, media) are added as is.
        Every handler takes ``(scope, receive, send, params)``."""
        from relaygate.inbound import ROUTES

        t = RouteTable()
        for path, endpoint in LLM_ROUTES.items():
            t.add("POST", path, lambda sc, rc, sd, _p, ep=endpoint: self._llm(sc, rc, sd, ep, None))
        for suffix, endpoint in _ENDPOINT_SUFFIXES:
            for prefix, param in (("/openai/deployments/", "{model:path}"), ("/engines/", "{model}"),
                                  ("/v1/engines/", "{model}")):
                t.add("POST", prefix + param + suffix,
                      lambda sc, rc, sd, p, ep=endpoint: self._llm(sc, rc, sd, ep, p["model"]))
        for path, handler in (("/v1/models", self._models), ("/models", self._models),
                              ("/health/liveliness", self._liveness), ("/health/liveness", self._liveness),
                              ("/health/readiness", self._readiness), ("/health", self._health),
                              ("/metrics", self._metrics), ("/", self._root)):
            t.add("GET", path, lambda sc, rc, sd, _p, h=handler: h(sc, rc, sd))
        for path in ("/v1/models/{model_id:path}", "/models/{model_id:path}"):
            t.add("GET", path, lambda sc, rc, sd, p: self._model_info(sc, rc, sd, p["model_id"]))
        for path, extra in ROUTES.items():
            t.add("POST", path, lambda sc, rc, sd, _p, h=extra: h(self, sc, rc, sd))
        return t

    async def aclose(self) -> None:
        await self.completions.aclose()
        await self.router.aclose()
        await self.transport.aclose()

    # -- plumbing -----------------------------------------------------------------------------------

    def timeouts(self, target: Target, stream: bool, override: float | None) -> Timeouts:
        """The deployment's timeouts; a client's ``override`` (validated by ``reqio``) can only shorten them."""
        key = (target.dep.id, stream)
        t = self._timeouts.get(key) if override is None else None
        if t is not None:
            return t
        dep, r, s = target.dep, self.config.router, self.config.server
        if stream:
            total = dep.stream_timeout or r.stream_timeout or dep.timeout or r.timeout or s.request_timeout
        else:
            total = dep.timeout or r.timeout or s.request_timeout
        if override is not None and override < total:
            total = override
        first_byte = min(s.first_byte_timeout, total) if s.first_byte_timeout else total
        idle = min(s.idle_timeout, total) if s.idle_timeout else total
        t = Timeouts(connect=min(s.connect_timeout, total), first_byte=first_byte, idle=idle,
                     total=None if stream else total)
        if override is None:
            self._timeouts[key] = t
        return t

    async def read_body(self, scope: Scope, receive: Receive, checked: bool = False) -> bytes:
        """The request body within the server's size, time and rate bounds (``reqio.read_body``); a declared
        ``Content-Length`` over the limit is a 413 before any byte is read (``checked``: already done)."""
        if not checked:
            check_declared_length(scope["headers"], self.max_body)
        return await read_body(receive, self.body_limits)

    @staticmethod
    async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        headers.append(_JSON)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_error(self, send: Send, exc: GatewayError, call_id: bytes | None = None) -> None:
        headers = [(b"x-litellm-version", _VERSION)]
        if call_id:
            headers.append((b"x-litellm-call-id", call_id))
        headers.extend(exc.headers)
        await self._send_json(send, exc.status, exc.body(), headers)

    def complete(self, ex: Exchange, status: int, outcome: Outcome, latency: float | None = None,
                 error: GatewayError | None = None) -> None:
        """The exchange ended: one completion record into the queue (never awaits; a second call is a no-op)."""
        if ex.done:
            return
        ex.done = True
        total = time.perf_counter() - ex.t0 if latency is None else latency
        overhead = total - ex.wait
        lease, who, ctx = ex.lease, ex.who, ex.ctx
        dep = lease.target.dep if lease is not None else None
        self.completions.put(CompletionRecord(
            ex.call_id.decode("latin-1"), ex.route, ex.stream, ex.model,
            dep.model_name if dep is not None else "", dep.id if dep is not None else "",
            dep.provider if dep is not None else "", dep.upstream_model if dep is not None else "",
            who.key_hash if who is not None else None, who.key_alias if who is not None else None,
            who.team_id if who is not None else None, who.user_id if who is not None else None,
            status, outcome, ex.prompt_tokens, ex.completion_tokens, 0, 0, total, ex.ttft,
            overhead if overhead > 0.0 else 0.0, 0.0, False,
            ctx.attempted_retries if ctx is not None else 0, ctx.attempted_fallbacks if ctx is not None else 0,
            time.time() - total, error.type if error is not None else ""))

    async def principal(self, scope: Scope) -> Principal:
        """Who the request is (``auth.PrincipalResolver``): a cache hit costs no await; 401 for a bad key.
        Hot paths inline ``resolve_cached(...) or await resolve(...)`` instead of calling this."""
        headers = scope["headers"]
        return self.principals.resolve_cached(headers) or await self.principals.resolve(headers)

    # -- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            route = self.routes.match(method, path)
            await route.handler(scope, receive, send, route.params)
        except GatewayError as exc:
            if exc.status >= 500:
                fail_log.warning("%s %s -> %d %s", method, path, exc.status, exc.message)
            await self._send_error(send, exc)
        except _ClientGone:
            await self._send_error(send, body_ended_early())
        except Exception:
            log.exception("internal error on %s %s", method, path)
            await self._send_error(send, GatewayError("Internal server error", status=500))

    # -- LLM endpoints ------------------------------------------------------------------------------

    async def _llm(self, scope: Scope, receive: Receive, send: Send, endpoint: str, path_model: str | None) -> None:
        ex = Exchange(b"", endpoint, time.perf_counter(), path_model or "")
        try:
            over = Overrides(scope["headers"], self.max_body)
            ex.call_id = over.call_id or _call_id()
            principals = self.principals
            who = ex.who = principals.resolve_cached(scope["headers"]) or await principals.resolve(scope["headers"])
            key = who.key
            body = await self.read_body(scope, receive, True)
            view = decode_view(endpoint, body)
            if view.num_retries is not None or view.timeout is not None:
                over.merge_body(view.num_retries, view.timeout)
            model = ex.model = path_model or view.model
            if not model:
                raise errors.BadRequest("Invalid request body: Object missing required field `model`",
                                        param="model")
            route = "/" + ("chat/completions" if endpoint == "chat" else endpoint)
            group = self.router.resolve(model, route)
            if key is not None:
                who.check_model(model)
                if view.fallbacks:
                    who.check_models(view.fallbacks)
            ctx = RouteContext(
                stream=bool(view.stream),
                num_retries=over.num_retries,
                fallbacks=view.fallbacks,
                timeout=over.timeout,
                key=key,
                messages=getattr(view, "messages", None),
            )
            ex.ctx = ctx
            if view.stream and endpoint != "embeddings":
                ex.stream = True
                await self.watched(receive, True, self._stream(send, endpoint, body, view, model, group, ctx, ex),
                                   ex)
            else:
                await self.watched(receive, self.watch_unary, self._unary(send, endpoint, body, view, model, group,
                                                                          ctx, ex), ex)
        except GatewayError as exc:
            if not ex.call_id:
                ex.call_id = _call_id()
            self.complete(ex, exc.status, Outcome.ERROR, error=exc)
            fail_log.warning("%s failed: %d %s (call_id=%s)", scope["path"], exc.status, exc.message,
                             ex.call_id.decode("latin-1"))
            await self._send_error(send, exc, ex.call_id)

    async def _media(self, provider: Provider, call: Call) -> dict[str, tuple[str, bytes]]:
        """Download what the adapter must send inline (image URLs), or nothing."""
        urls = provider.fetch_urls(call)
        return await fetch_media(urls, self.transport, self.allow_private_media) if urls else {}

    async def watched(self, receive: Receive, watch: bool, work: Awaitable[None], ex: Exchange) -> None:
        """Await ``work``; with ``watch``, a client disconnect cancels it (and so its upstream call).

        Granian swallows sends to a closed connection, so a disconnect is learnt from ``receive()``: the
        watch cancels this task, the upstream response is closed, which cancels that request too.
        """
        if not watch:
            await work
            return
        w = _DisconnectWatch(receive)
        try:
            await work
        except asyncio.CancelledError:
            if not w.gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.complete(ex, 499, Outcome.CLIENT_GONE)  # a stream that sent frames completed itself
        finally:
            w.stop()

    def unary_attempt(self, endpoint: str, body: bytes, view: AnyView, model: str, ctx: RouteContext,
                      timer: Exchange) -> Callable[[Target], Awaitable[tuple[bytes, list[tuple[bytes, bytes]]]]]:
        """The attempt function for ``router.run`` of a non-stream call: -> (OpenAI body, upstream headers)."""
        transport = self.transport
        now = time.time()  # the request's one wall-clock read: adapters stamp `created` and sign with it

        async def attempt(target: Target) -> tuple[bytes, list[tuple[bytes, bytes]]]:
            provider = target.provider
            if not provider.supports(endpoint):
                raise errors.BadRequest(f"{provider.name} does not support /{endpoint} (model={model})",
                                        param="model")
            call = Call(endpoint, body, view, model, target.upstream_model, now)
            if provider.token_source is not None:
                await refresh_token(provider.token_source, transport)
            if provider.hooks:
                return await self._hooked_unary(provider, call, target, ctx, timer)
            request = provider.build_request(call)
            t = time.perf_counter()
            try:
                resp = await (provider.transport or transport).send(request,
                                                                    self.timeouts(target, False, ctx.timeout))
                data = await resp.read()
            finally:
                timer.wait += time.perf_counter() - t
            if resp.status >= 400:
                raise provider.map_error(resp.status, data, _retry_after(resp.header(b"retry-after")))
            return translate_upstream(provider, provider.translate_response, call, data), resp.headers

        return attempt

    async def _hooked_unary(self, provider: Provider, call: Call, target: Target, ctx: RouteContext,
                            timer: Exchange) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A unary attempt for adapters with ``hooks``: download the media they must inline, send their
        request(s) (several concurrently, bounded), join the answers (``Provider.merge_responses``)."""
        t = time.perf_counter()
        try:
            requests = provider.build_requests(call, await self._media(provider, call))
            timeouts = self.timeouts(target, False, ctx.timeout)
            if len(requests) == 1:
                results = [await send_read(self.transport, requests[0], timeouts)]
            else:
                results = await gather([send_read(self.transport, r, timeouts) for r in requests],
                                        FANOUT_CONCURRENCY)
        finally:
            timer.wait += time.perf_counter() - t
        for resp, data in results:
            if resp.status >= 400:
                raise provider.map_error(resp.status, data, _retry_after(resp.header(b"retry-after")))
        merged = translate_upstream(provider, provider.merge_responses, call, [data for _, data in results])
        return merged, results[0][0].headers

    async def _unary(self, send: Send, endpoint: str, body: bytes, view: AnyView, model: str,
                     group: ModelGroup, ctx: RouteContext, ex: Exchange) -> None:
        attempt = self.unary_attempt(endpoint, body, view, model, ctx, ex)
        (data, up_headers), lease = await self.router.run(group, ctx, attempt)
        usage = tokens.extract_usage(data) if endpoint != "embeddings" or b'"usage"' in data else None
        prompt_t, completion_t = (usage[0], usage[1]) if usage else (0, 0)
        lease.finish(True, prompt_t + completion_t)
        ex.lease, ex.prompt_tokens, ex.completion_tokens = lease, prompt_t, completion_t
        total = time.perf_counter() - ex.t0
        headers = self._headers(lease, group, ex.call_id, ctx, total, ex.wait)
        if up_headers and not lease.headers:
            headers.extend(_ratelimit_headers(up_headers))
        await self._send_json(send, 200, data, headers)
        self.complete(ex, 200, Outcome.OK, total)

    def _headers(self, lease: Lease, group: ModelGroup, call_id: bytes, ctx: RouteContext, total: float,
                 wait: float) -> list[tuple[bytes, bytes]]:
        overhead = total - wait
        return [
            (b"x-litellm-call-id", call_id),
            *lease.target.headers,
            (b"x-litellm-version", _VERSION),
            (b"x-litellm-response-duration-ms", b"%.3f" % (total * 1000.0)),
            (b"x-litellm-overhead-duration-ms", b"%.3f" % ((overhead if overhead > 0.0 else 0.0) * 1000.0)),
            (b"x-litellm-attempted-retries", b"%d" % ctx.attempted_retries),
            (b"x-litellm-attempted-fallbacks", b"%d" % ctx.attempted_fallbacks),
            *lease.headers,
        ]

    def stream_attempt(self, endpoint: str, body: bytes, view: AnyView, model: str, ctx: RouteContext,
                       timer: Exchange) -> Callable[[Target], Awaitable[StreamStart]]:
        """The attempt function for ``router.run`` of a stream: returns once the first frame is ready, so a
        failure before the first byte can still be retried or fall back."""
        transport = self.transport
        now = time.time()

        async def attempt(target: Target) -> StreamStart:
            provider = target.provider
            if not provider.supports(endpoint):
                raise errors.BadRequest(f"{provider.name} does not support streaming /{endpoint}", param="model")
            call = Call(endpoint, body, view, model, target.upstream_model, now)
            t = time.perf_counter()
            if provider.token_source is not None:
                await refresh_token(provider.token_source, transport)
            if provider.hooks:
                (request,) = provider.build_requests(call, await self._media(provider, call))
            else:
                request = provider.build_request(call)
            resp = await (provider.transport or transport).send(request, self.timeouts(target, True, ctx.timeout))
            if resp.status >= 400:
                try:
                    data = await resp.read()
                finally:
                    timer.wait += time.perf_counter() - t
                raise provider.map_error(resp.status, data, _retry_after(resp.header(b"retry-after")))
            head_err = stream_head_error(provider, resp.header(b"content-type"))
            if head_err is not None:  # an HTML page where a stream was promised: 502, still retryable
                timer.wait += time.perf_counter() - t
                await resp.aclose()
                raise head_err
            translator = provider.stream_translator(call)
            chunks = resp.__aiter__()
            up_headers = resp.headers
            close = resp.aclose
            try:
                first = await first_frame(chunks, translator, close)
            finally:
                timer.wait += time.perf_counter() - t
            return StreamStart(chunks, translator, first, up_headers, close)

        return attempt

    async def _stream(self, send: Send, endpoint: str, body: bytes, view: AnyView, model: str,
                      group: ModelGroup, ctx: RouteContext, ex: Exchange) -> None:
        attempt = self.stream_attempt(endpoint, body, view, model, ctx, ex)
        await self.serve_stream(send, group, ctx, ex.call_id, ex.t0, ex, attempt, _openai_error_frame)

    async def serve_stream(self, send: Send, group: ModelGroup, ctx: RouteContext, call_id: bytes, t0: float,
                           timer: Exchange, attempt: Callable[[Target], Awaitable[StreamStart]],
                           error_frame: Callable[[GatewayError], bytes]) -> None:
        """Run a stream's attempts through the router, then relay its frames to the client as they come.

        Keepalives go out while the first frame is awaited; once the head went out, a failure is sent
        in-band as ``error_frame(exc)`` (the OpenAI or the Anthropic shape) and never retried. A stream that
        broke mid-way counts towards its deployment's cooldown; a client that went away does not.
        """
        ka = Keepalive(send, self.keepalive, _KEEPALIVE_HEAD) if self.keepalive > 0 else None
        try:
            start, lease = await self.router.run(group, ctx, attempt)
        except GatewayError as exc:
            if ka is None or not await ka.stop():
                raise
            # the head already went out with keepalives: the error becomes the stream's last frame
            fail_log.warning("stream failed before its first token: %d %s", exc.status, exc.message)
            await _send_quiet(send, error_frame(exc), False)
            return
        except BaseException:
            if ka is not None:
                await ka.stop()
            raise
        headers_sent = await ka.stop() if ka is not None else False
        total = time.perf_counter() - t0
        translator = start.translator
        ok = False
        gone = False
        broke: GatewayError | None = None
        try:
            if not headers_sent:
                headers = self._headers(lease, group, call_id, ctx, total, timer.wait)
                headers.extend(_SSE_HEADERS)
                if start.headers and not lease.headers:
                    headers.extend(_ratelimit_headers(start.headers))
                await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": start.first, "more_body": True})
            try:
                async for chunk in start.chunks:
                    out = translator.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = translator.close()
                ok = True
            except (GatewayError, *SHAPE_ERRORS) as exc:  # the upstream failed mid-stream: tell the client in-band
                if not isinstance(exc, GatewayError):
                    exc = stream_shape_error(exc)
                broke = exc
                fail_log.warning("stream from %s broke: %s", lease.target.dep.id, exc.message)
                tail = error_frame(exc)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except (OSError, RuntimeError, asyncio.CancelledError) as exc:
            # the client went away (a send failed, or the disconnect watch cancelled us): close upstream
            gone = True
            await start.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            usage = tokens.extract_usage(translator.last_data) if translator.last_data else None
            if usage:
                pt, ct = usage[0], usage[1]
            else:
                pt, ct = 0, int(getattr(translator, "content_tokens", 0))
            lease.finish(ok, pt + ct, broke)
            timer.lease, timer.prompt_tokens, timer.completion_tokens, timer.ttft = lease, pt, ct, total
            self.complete(timer, 200 if ok else 599,
                          Outcome.OK if ok else Outcome.CLIENT_GONE if gone else Outcome.STREAM_BROKEN, error=broke)

    # -- other routes -------------------------------------------------------------------------------

    async def _visible_models(self, scope: Scope) -> list[str]:
        """The model groups this request's key may use (every group for the master key)."""
        who = await self.principal(scope)
        names = self.router.public_models()
        return names if who.key is None else [n for n in names if who.allows(n)]

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = [{"id": name, "object": "model", "created": 1677610602, "owned_by": "openai"}
                for name in await self._visible_models(scope)]
        await self._send_json(send, 200, orjson.dumps({"data": data, "object": "list"}), [])

    async def _model_info(self, scope: Scope, receive: Receive, send: Send, model: str) -> None:
        if model not in await self._visible_models(scope):
            raise errors.NotFound(f"The model `{model}` does not exist", param="model", code="model_not_found")
        await self._send_json(send, 200, orjson.dumps(
            {"id": model, "object": "model", "created": 1677610602, "owned_by": "openai"}), [])

    async def _liveness(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_json(send, 200, b'"I\'m alive!"', [])

    async def _readiness(self, scope: Scope, receive: Receive, send: Send) -> None:
        from relaygate.core import _ext

        body = {"status": "healthy", "db": "Not connected", "cache": None, "litellm_version": __version__,
                "relaygate_version": __version__, "extensions": dict(_ext.LOADED),
                "transport": type(self.transport).__name__}
        await self._send_json(send, 200, orjson.dumps(body), [])

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_json(send, 200, orjson.dumps({"name": "relaygate", "version": __version__}), [])

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.principal(scope)
        self.completions.drain_now()  # every answer already sent is counted
        body = self.metrics.render()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/plain; version=0.0.4"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check every deployment (LiteLLM's ``/health`` shape): a cheap upstream call each, concurrently."""
        await self.principal(scope)
        targets = [t for g in self.router.groups.values() for t in g.targets]
        timeout = self.config.general.health_check_timeout

        async def check(target: Target) -> tuple[Target, str | None]:
            provider = target.provider
            try:
                req = provider.health_request() or await self._ping_request(target)
                timeouts = Timeouts(connect=timeout, first_byte=timeout, idle=timeout, total=timeout)
                resp = await (provider.transport or self.transport).send(req, timeouts)
                data = await resp.read()
            except GatewayError as exc:
                return target, exc.message
            except Exception as exc:  # one deployment's misconfiguration never fails the whole report
                log.exception("health check of deployment %s failed", target.dep.id)
                return target, f"health check failed: {type(exc).__name__}: {exc}"
            if resp.status >= 400:
                return target, provider.map_error(resp.status, data, None).message
            return target, None

        results = await asyncio.gather(*(check(t) for t in targets))
        healthy, unhealthy = [], []
        for target, err in results:
            entry: dict[str, Any] = {"model": target.dep.model, "model_name": target.dep.model_name,
                                     "model_id": target.dep.id}
            if target.provider.api_base:
                entry["api_base"] = target.provider.api_base
            if err is None:
                healthy.append(entry)
            else:
                entry["error"] = err
                unhealthy.append(entry)
        body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
        await self._send_json(send, 200, orjson.dumps(body), [])


    async def _ping_request(self, target: Target) -> UpstreamRequest:
        """For adapters with no cheap health endpoint: a one-token completion, as LiteLLM's health check makes."""
        provider = target.provider
        body = orjson.dumps({"model": target.upstream_model, "max_tokens": 1,
                             "messages": [{"role": "user", "content": "ping"}]})
        now = time.time()
        call = Call("chat" if provider.supports("chat") else "embeddings", body, decode_view("chat", body),
                    target.upstream_model, target.upstream_model, now)
        if call.endpoint == "embeddings":
            body = orjson.dumps({"model": target.upstream_model, "input": "ping"})
            call = Call("embeddings", body, decode_view("embeddings", body), target.upstream_model,
                        target.upstream_model, now)
        if provider.token_source is not None:
            await refresh_token(provider.token_source, self.transport)
        if provider.hooks:
            return provider.build_requests(call, {})[0]
        return provider.build_request(call)


def _openai_error_frame(exc: GatewayError) -> bytes:
    return b"data: " + exc.body() + b"\n\ndata: [DONE]\n\n"


async def _send_quiet(send: Send, body: bytes, more: bool) -> None:
    try:
        await send({"type": "http.response.body", "body": body, "more_body": more})
    except (OSError, RuntimeError):
        pass


# -------------------------------------------------------------------------------------------- the app


def _load_from_env() -> Config:
    from relaygate.config import default_config, load_config

    path = os.environ.get("RELAYGATE_CONFIG")
    return load_config(path) if path else default_config()


class App:
    """The ASGI entry point Granian imports (``relaygate.asgi:app``): lifespan plus a lazily built Gateway."""

    def __init__(self, config: Config | None = None) -> None:
        self._config = config
        self.gateway: Gateway | None = None
        self._flusher: asyncio.Task[None] | None = None

    def _build(self) -> Gateway:
        if self.gateway is None:
            from relaygate.logs import setup_worker_logging

            setup_worker_logging()
            config = self._config if self._config is not None else _load_from_env()
            self.gateway = Gateway(config)
            from relaygate.core import _ext

            log.info("worker %d ready: %d deployments, transport=%s, extensions: %s", os.getpid(),
                     len(config.deployments), type(self.gateway.transport).__name__, _ext.describe())
            for comp, err in _ext.FAILED.items():
                log.warning("compiled %s did not load, using the pure-Python twin: %s", comp, err)
        return self.gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        if scope["type"] == "http" and gw is not None:
            await gw(scope, receive, send)
            return
        if scope["type"] == "http":
            await self._build()(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    gw = self._build()
                    await gw.router.start()
                    gw.completions.start()
                    if gw.metrics.directory is not None:
                        gw.metrics.flush()
                        self._flusher = asyncio.ensure_future(gw.metrics.flush_forever())
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._flusher is not None:
                    self._flusher.cancel()
                if self.gateway is not None:
                    await self.gateway.completions.aclose()
                    self.gateway.metrics.flush()
                    await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = App()
