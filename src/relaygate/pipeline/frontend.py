"""What a frontend is to the pipeline: one client API's parse and render, nothing else.

A frontend (``relaygate.frontends``: ``openai``, ``anthropic``, ``media``; the Responses API will be one more)
subclasses :class:`Frontend`. The pipeline calls, in order:

1. :meth:`Frontend.parse` — read the request body (``http.body.read_body`` within the runtime's limits) and
   fill the exchange in the pipeline's terms: ``endpoint`` (what adapters are asked for), ``body``,
   ``view``, ``model``, ``stream``, ``fallbacks``, and body overrides through ``ex.over.merge_body``;
   frontend-only state goes in ``ex.state``. Malformed input is a ``BadRequest``.
2. :meth:`Frontend.unary` / :meth:`Frontend.streaming` — the attempt function the router calls per target.
   The defaults run the OpenAI attempts (:func:`unary`, :func:`stream`, below); a frontend wraps them to translate (the
   Anthropic one answers in Messages shape) or replaces them (a deployment speaking the API natively).
3. Rendering: :meth:`content_type` of a unary answer, :meth:`stream_head` of a stream, :meth:`error_frame` for
   a failure inside a stream, :meth:`send_error` for an error response (OpenAI's shape by default).

A frontend whose operation is not a routed call (Anthropic's ``count_tokens``) sets :attr:`direct`: after
authentication, parsing, model resolution and authorization the pipeline hands it the exchange instead of
running the attempt and relay stages (:meth:`answer`).

The attempts: what one try against one deployment does, for ``Router.run`` to call per target. An attempt
builds the upstream request with the deployment's adapter, sends it through the transport and
reads the answer, raising a ``GatewayError`` the router can retry or fail over on. The strategy follows the
adapter's declared capabilities, never its class:

- ``endpoints`` (``Provider.supports``): a deployment that cannot serve the endpoint is a 400 naming it;
- ``token_source``: an OAuth token is refreshed first (``upstream.calls.refresh_token`` through httpx,
  ``upstream.identity``);
- ``hooks``: the adapter may need media downloaded to inline (``fetch_urls`` -> ``upstream.calls.fetch_media``)
  and may split one call into several requests sent concurrently, bounded, and joined
  (``build_requests`` / ``merge_responses``: the fan-out strategy); otherwise one ``build_request``;
- ``transport``: an adapter answered in-process (the built-in mock's ``LocalTransport``) brings its own.

:func:`unary` returns ``(OpenAI-shaped body, upstream headers)``; :func:`stream` returns a
:class:`~relaygate.pipeline.exchange.StreamStart` once the first client frame is ready, so a failure before
the client saw a byte can still be retried. Time spent waiting on upstreams is added to ``Exchange.wait``.
Adapter code runs outside any ``except`` that would turn its bugs into a client error: a ``TypeError`` in
an adapter is a 500 with a traceback, and only ``translate_upstream`` maps an unreadable upstream answer
to a 502.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from relaygate.config.model import Deployment
from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.cost import details, requested_tier, tier_label, zero_cost
from relaygate.http.respond import send_error
from relaygate.http.routes import Params
from relaygate.http.types import Headers, Receive, Scope, Send
from relaygate.pipeline import control
from relaygate.pipeline.exchange import Exchange, StreamStart, first_frame, upstream_error
from relaygate.providers.base import Call, Provider, stream_head_error, translate_upstream
from relaygate.router import Target
from relaygate.upstream.base import Timeouts, Transport, UpstreamRequest, UpstreamResponse
from relaygate.upstream.calls import FANOUT_CONCURRENCY, fetch_media, gather, refresh_token, send_read
from relaygate.upstream.identity import identity_client

T = TypeVar("T")
Attempt = Callable[[Target], Awaitable[T]]
Answer = tuple[bytes, list[tuple[bytes, bytes]]]
"""A unary attempt's result: the body for the client and the upstream's headers."""


class Spent(Exception):
    """An attempt's failure that must reach the client as it is: not retried, not failed over, not counted
    against the deployment (a streamed upload whose first bytes already went out cannot be sent again).
    It is not a ``GatewayError``, so ``Router.run`` lets it through (refunding the attempt's limits); the
    pipeline answers ``error``."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def _unsupported(provider: Provider, ex: Exchange, stream: bool) -> errors.BadRequest:
    what = f"streaming /{ex.endpoint}" if stream else f"/{ex.endpoint} (model={ex.model})"
    return errors.BadRequest(f"{provider.name} does not support {what}", param="model")


async def _media(provider: Provider, call: Call, transport: Transport, ex: Exchange) -> dict[str, tuple[str, bytes]]:
    """Download what the adapter must send inline (image URLs), or nothing."""
    urls = provider.fetch_urls(call)
    return await fetch_media(urls, transport, ex.rt.allow_private_media) if urls else {}


_ORG_PROVIDERS = frozenset(("openai", "azure"))


def add_headers(ex: Exchange, provider: Provider, request: UpstreamRequest) -> None:
    """What the exchange adds to an upstream request: the OpenTelemetry ``traceparent`` (the provider joins
    the trace), the client's headers ``forward_client_headers_to_llm_api`` sends on, and its
    ``OpenAI-Organization`` (``forward_openai_org_id``, OpenAI and Azure only). A forwarded header never
    replaces one the adapter set (its auth, content type, ``anthropic-version`` ...). The adapter's header list
    may be shared: it is replaced, never changed in place."""
    extra: list[tuple[str, str]] = []
    over = ex.over
    if over is not None:
        if over.forward is not None:
            own = {k.lower() for k, _ in request.headers}
            extra.extend((k, v) for k, v in over.forward if k not in own)
        if over.org is not None and provider.name in _ORG_PROVIDERS:
            extra.append(("OpenAI-Organization", over.org))
    obs = ex.obs
    if obs is not None and obs.traceparent is not None:
        extra.append(("traceparent", obs.traceparent))
    if extra:
        request.headers = [*request.headers, *extra]


def unary(transport: Transport, ex: Exchange) -> Attempt[Answer]:
    """The attempt function of a non-stream call."""
    now = time.time()  # the request's one wall-clock read: adapters stamp `created` and sign with it
    endpoint, body, view, model, rt = ex.endpoint, ex.body, ex.view, ex.model, ex.rt
    assert view is not None

    async def attempt(target: Target) -> Answer:
        provider = target.provider
        if not provider.supports(endpoint):
            raise _unsupported(provider, ex, False)
        call = Call(endpoint, body, view, model, target.upstream_model, now,
                    provider.param_rules(target.upstream_model, ex.control) if endpoint == "chat" else None)
        tr = provider.transport or transport
        if provider.token_source is not None:
            await refresh_token(provider.token_source, identity_client(rt.config.server.http_proxy))
        ctx = ex.ctx
        timeouts = rt.timeouts(target, False, ctx.timeout if ctx is not None else None)
        if provider.hooks:
            return await _fan_out(provider, call, tr, timeouts, ex)
        request = provider.build_request(call)
        over = ex.over
        if ex.obs is not None or (over is not None and (over.forward is not None or over.org is not None)):
            add_headers(ex, provider, request)
        t = time.perf_counter()
        try:
            resp = await tr.send(request, timeouts)
            data = await resp.read()
        finally:
            ex.wait += time.perf_counter() - t
        if resp.status >= 400:
            raise upstream_error(provider, resp, data)
        return translate_upstream(provider, provider.translate_response, call, data), resp.headers

    if control.mocked(ex):
        async def with_mock(target: Target) -> Answer:
            answer = await control.unary(ex, target)
            return answer if answer is not None else await attempt(target)

        return with_mock
    return attempt


async def _fan_out(provider: Provider, call: Call, transport: Transport, timeouts: Timeouts, ex: Exchange) -> Answer:
    """A unary attempt for adapters with ``hooks``: download the media they must inline, send their
    request(s) (several concurrently, bounded), join the answers (``Provider.merge_responses``)."""
    t = time.perf_counter()
    try:
        requests = provider.build_requests(call, await _media(provider, call, transport, ex))
        for r in requests:
            add_headers(ex, provider, r)
        if len(requests) == 1:
            results = [await send_read(transport, requests[0], timeouts)]
        else:
            results = await gather([send_read(transport, r, timeouts) for r in requests],
                                   FANOUT_CONCURRENCY)
    finally:
        ex.wait += time.perf_counter() - t
    for resp, data in results:
        if resp.status >= 400:
            raise upstream_error(provider, resp, data)
    merged = translate_upstream(provider, provider.merge_responses, call, [data for _, data in results])
    return merged, results[0][0].headers


def stream(transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
    """The attempt function of a stream: returns once the first frame is ready."""
    now = time.time()
    endpoint, body, view, model, rt = ex.endpoint, ex.body, ex.view, ex.model, ex.rt
    assert view is not None

    async def attempt(target: Target) -> StreamStart:
        provider = target.provider
        if not provider.supports(endpoint):
            raise _unsupported(provider, ex, True)
        call = Call(endpoint, body, view, model, target.upstream_model, now,
                    provider.param_rules(target.upstream_model, ex.control) if endpoint == "chat" else None)
        call.usage_policy = rt.stream_usage  # always_include_stream_usage (providers.openai)
        tr = provider.transport or transport
        t = time.perf_counter()
        if provider.token_source is not None:
            await refresh_token(provider.token_source, identity_client(rt.config.server.http_proxy))
        if provider.hooks:
            (request,) = provider.build_requests(call, await _media(provider, call, tr, ex))
        else:
            request = provider.build_request(call)
        over = ex.over
        if ex.obs is not None or (over is not None and (over.forward is not None or over.org is not None)):
            add_headers(ex, provider, request)
        ctx = ex.ctx
        resp = await tr.send(request, rt.timeouts(target, True, ctx.timeout if ctx is not None else None))
        if resp.status >= 400:
            try:
                data = await resp.read()
            finally:
                ex.wait += time.perf_counter() - t
            raise upstream_error(provider, resp, data)
        head_err = stream_head_error(provider, resp.header(b"content-type"))
        if head_err is not None:  # an HTML page where a stream was promised: 502, still retryable
            ex.wait += time.perf_counter() - t
            await resp.aclose()
            raise head_err
        translator = provider.stream_translator(call)
        chunks = resp.__aiter__()
        try:
            first = await first_frame(chunks, translator, resp.aclose)
        finally:
            waited = time.perf_counter() - t
            ex.wait += waited
        ex.api_ttft = waited  # this attempt's own time to its first frame
        return StreamStart(chunks, translator, first, resp.headers, resp.aclose)

    if control.mocked(ex):
        async def with_mock(target: Target) -> StreamStart:
            start = await control.stream(ex, target)
            return start if start is not None else await attempt(target)

        return with_mock
    return attempt


async def send_native(transport: Transport, ex: Exchange, target: Target, request: UpstreamRequest,
                      stream: bool) -> UpstreamResponse:
    """Send a request a frontend built itself (a native body, a Responses request) with the deployment's
    timeouts; an error answer becomes the adapter's error, and a stream whose head is not an event stream a
    502 (still retryable)."""
    p = target.provider
    ctx = ex.ctx
    add_headers(ex, p, request)
    resp = await (p.transport or transport).send(
        request, ex.rt.timeouts(target, stream, ctx.timeout if ctx is not None else None))
    if resp.status >= 400:
        data = await resp.read()
        raise upstream_error(p, resp, data)
    if stream:
        head_err = stream_head_error(p, resp.header(b"content-type"))
        if head_err is not None:
            await resp.aclose()
            raise head_err
    return resp


SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
JSON = b"application/json"


class Frontend:
    route: str = "chat"
    """The operation's name (``Exchange.route``, the completion record's route)."""
    router_route: str = "/chat/completions"
    """The route named in ``Router.resolve``'s errors."""
    keepalive: bool = True
    restamp: bool = False
    batches: bool = False
    """A comma-separated ``model`` (``"a,b"``) asks every group once (LiteLLM's batch completion)."""
    """Answers carry the model name the client asked for in ``model`` (LiteLLM's behaviour since 1.81.7;
    the upstream's name stays in ``x-litellm-model-name``)."""
    """Whether SSE comment keepalives may go out while a stream waits for its first frame."""
    direct: bool = False
    """The operation is answered by :meth:`answer`, not routed (no attempt or relay stage)."""

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        raise NotImplementedError

    def body_pending(self, ex: Exchange) -> bool:
        """Whether the attempt still reads the request body from ``receive()`` (a streamed upload): then no
        disconnect watch may read it meanwhile; the upload itself notices a client that left."""
        return False

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        return unary(transport, ex)

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        return stream(transport, ex)

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        """(prompt, completion, ...) tokens of a unary answer, or None when it says none."""
        return tokens.extract_usage(data) if ex.endpoint != "embeddings" or b'"usage"' in data else None

    def price(self, ex: Exchange, dep: Deployment, data: bytes) -> int:
        """pico-USD of an answer of ``dep`` (``data``: the unary body, or a stream's last payload) from the
        exchange's prompt and completion tokens and the cache / reasoning counts ``data`` gives, which are
        kept on the exchange, at the service tier the answer (else the request) names when the model has
        service-tier prices (``cost.usage``). A frontend whose answers are priced by other units overrides it
        (media)."""
        table = ex.rt.prices.table(dep)
        if not data:
            if ex.rt.track_remaining:
                ex.labels = (0, 0, 0, 0, tier_label(data, ex.body, ex.view))
            if not table.known:
                return 0
            cost = table.tokens(ex.prompt_tokens, ex.completion_tokens, service_tier=requested_tier(
                ex.body, ex.view) if table.service else "")
            if not cost and table.rated:  # LiteLLM's zero-cost diagnostic (cost.zero_cost)
                ex.zero = zero_cost.diagnose(table.model, table.prices, ex.prompt_tokens, ex.completion_tokens)
            return cost
        service = table.service
        d = details(data, service)
        ex.cached_tokens, ex.cache_write_tokens = d.cache_read, d.cache_write
        if ex.rt.track_remaining:  # Prometheus on: LiteLLM's token-detail families and service_tier label
            ex.labels = (d.reasoning, d.audio_in, d.audio_out, 0, tier_label(data, ex.body, ex.view))
        if not table.known:
            return 0
        tier = d.service_tier
        if service and not tier:
            tier = requested_tier(ex.body, ex.view)
        prompt = ex.prompt_tokens + d.prompt_extra
        cost = table.tokens(prompt, ex.completion_tokens, d.cache_read, d.cache_write, d.reasoning, d.audio_in,
                            d.audio_out, d.cache_write_1h, tier)
        if not cost and table.rated:  # LiteLLM's zero-cost diagnostic (cost.zero_cost)
            ex.zero = zero_cost.diagnose(table.model, table.prices, prompt, ex.completion_tokens, d.cache_read,
                                         d.audio_in, d.audio_out)
        return cost

    def price_stream(self, ex: Exchange, dep: Deployment, last: bytes, had_usage: bool) -> int:
        """pico-USD of a stream (finished, broken or abandoned by the client): from the usage it carried,
        else from the estimate of what it generated (``ex.completion_tokens``) and of the prompt, and the
        exchange is marked ``estimated``; either at the service tier of the last payload (OpenAI's chunks
        each carry ``service_tier``) or of the request."""
        if not had_usage:
            ex.estimated = True
            ctx = ex.ctx
            if ctx is not None and ex.prompt_tokens <= 0:
                if ctx.prompt_tokens <= 0 and ctx.messages:
                    raw = b"[" + b",".join(bytes(m) for m in ctx.messages) + b"]"
                    ctx.prompt_tokens = tokens.estimate_messages_tokens(raw)
                ex.prompt_tokens = ctx.prompt_tokens
        return self.price(ex, dep, last if had_usage or b'"service_tier"' in last else b"")

    def content_type(self, upstream_headers: Headers) -> bytes:
        return JSON

    def stream_head(self, start: StreamStart) -> Headers:
        return SSE_HEADERS

    def error_frame(self, exc: GatewayError) -> bytes:
        return b"data: " + exc.body() + b"\n\ndata: [DONE]\n\n"

    async def answer(self, transport: Transport, ex: Exchange, send: Send) -> None:
        """A ``direct`` frontend's whole answer (the exchange is completed by the pipeline after it)."""
        raise NotImplementedError

    async def send_error(self, send: Send, exc: GatewayError, call_id: bytes | None) -> None:
        await send_error(send, exc, call_id)
