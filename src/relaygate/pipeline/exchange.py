"""One request's state on its way through the pipeline (:class:`Exchange`), and the start of a stream
relay (:class:`StreamStart`, :func:`first_frame`). Invariant: nothing here does IO of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.providers.base import SHAPE_ERRORS, StreamTranslator
from relaygate.upstream.headers import provider_headers, ratelimit_headers

if TYPE_CHECKING:
    from relaygate.auth import Principal
    from relaygate.core.views import AnyView
    from relaygate.observe.capture import Capture
    from relaygate.pipeline.overrides import Overrides
    from relaygate.providers.base import Provider
    from relaygate.route_context import RouteContext
    from relaygate.router import Lease, ModelGroup
    from relaygate.runtime import Runtime
    from relaygate.upstream.base import UpstreamResponse


class Exchange:
    """One request on its way through the pipeline: who asked, for what, how it was routed, what it used, how
    it ended. It replaces long argument lists: every stage reads and fills it.

    Created by :meth:`Pipeline.run <relaygate.pipeline.core.Pipeline.run>` when the request arrives, with the
    runtime snapshot (``rt``) the request keeps to its end, even if the config is reloaded meanwhile. The
    frontend's ``parse`` fills the request's terms (``endpoint``, ``body``, ``view``, ``model``, ``stream``,
    ``fallbacks``; ``state`` for what only that frontend needs); the stages fill the principal (``who``), the
    model ``group``, the route context (``ctx``: per-request retries, timeout, fallbacks, and what was
    attempted), the ``lease`` that served it, ``wait`` (seconds spent waiting on upstreams, for
    ``x-litellm-overhead-duration-ms``), ``ttft``, usage (prompt, completion, cached-read and cache-write
    tokens kept apart), ``status``, ``cost`` and ``estimated``. ``Pipeline.complete`` turns it into one
    :class:`~relaygate.sinks.CompletionRecord` for the sinks, once: ``done`` makes a second call a no-op, so
    the paths that can see an end (the answer sent, an error, the client gone) need not coordinate.
    """

    __slots__ = ("call_id", "route", "t0", "rt", "endpoint", "body", "view", "model", "stream", "fallbacks",
                 "over", "state", "control", "who", "group", "ctx", "lease", "wait", "ttft", "api_ttft",
                 "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "status", "cost",
                 "estimated", "done", "cache", "obs", "admitted", "remaining", "path", "labels", "cost_parts",
                 "scope", "hold", "queued", "zero")

    def __init__(self, route: str, t0: float, rt: Runtime, path: str = "") -> None:
        self.call_id = b""
        self.scope: Any = None
        """The request's ASGI scope (for its client's address in the record: ``requester_ip_address``)."""
        self.route = route
        """The frontend's operation (``chat``, ``messages``, ``images`` ...): the record's route."""
        self.path = path
        """The route template the request matched (``/v1/chat/completions``, ``/openai/deployments/{model}/chat/
        completions`` ...): a constant of the route table, never the client's path (``""``: not a routed request)."""
        self.t0 = t0
        """``time.perf_counter()`` at arrival."""
        self.zero: tuple[str, str, tuple[str, ...]] | None = None
        """Why an answer with usage was priced at 0 on a model with prices (``cost.zero_cost``); None: it was not."""
        self.queued: float | None = None
        """Seconds from arrival to the start of pre-call processing (the body read, the key checked), taken only
        with Prometheus on (``litellm_request_queue_time_seconds``); None: not taken."""
        self.rt = rt
        self.endpoint = route
        """The OpenAI endpoint the adapters are asked for (``chat`` for ``/v1/messages``)."""
        self.body = b""
        self.view: AnyView | None = None
        self.model = ""
        """The model name as the client asked for it (``""`` until known)."""
        self.stream = False
        self.fallbacks: list[str] | None = None
        self.over: Overrides | None = None
        self.state: Any = None
        self.control: dict[str, Any] | None = None
        """The LiteLLM control fields the body had (``pipeline.control``), by JSON name; None: none."""
        self.who: Principal | None = None
        self.group: ModelGroup | None = None
        self.ctx: RouteContext | None = None
        self.lease: Lease | None = None
        self.wait = 0.0
        self.ttft: float | None = None
        self.api_ttft: float | None = None
        """Seconds from the answering attempt's start to its first frame (LiteLLM's time to first token)."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.cache_write_tokens = 0
        self.status = 0
        self.cost = 0.0
        """USD, from the usage of the attempt that answered (``relaygate.cost``; 0 for failures)."""
        self.cost_parts: Any = None
        """With a provider discount or margin (``cost.adjust.Parts``): how ``cost`` was made; None otherwise."""
        self.estimated = False
        """The usage (and so the cost) was estimated from the content: the provider sent none."""
        self.done = False
        self.cache: Any = None
        """The response cache's decisions for this request (``cache.stage.CacheState``); None when the
        route is not cached."""
        self.obs: Capture | None = None
        """What exporters get of this exchange (``observe.capture.Capture``); None when none asks."""
        self.hold: Any = None
        """What the request holds of its budgets while in flight (``budgets.holds.Hold``); None: nothing."""
        self.admitted = False
        """Counted in ``Pipeline.inflight`` (``global_max_parallel_requests``)."""
        self.remaining: list[tuple[bytes, bytes]] | None = None
        """The answering upstream's rate-limit headers (``upstream.headers.ratelimit_headers``), kept only with
        Prometheus on (``Runtime.track_remaining``): LiteLLM's ``litellm_remaining_*_metric``."""
        self.labels: tuple[int, int, int, int, str | None] | None = None
        """(reasoning, input audio, output audio tokens, images generated, ``service_tier`` label) of the answer,
        read only with Prometheus on (``Frontend.price``): LiteLLM's token-detail and media families and its
        ``service_tier`` label."""


class StreamStart:
    __slots__ = ("chunks", "translator", "first", "headers", "close")

    def __init__(self, chunks: AsyncIterator[bytes], translator: StreamTranslator, first: bytes,
                 headers: list[tuple[bytes, bytes]], close: Callable[[], Awaitable[None]]) -> None:
        self.chunks = chunks
        self.translator = translator
        self.first = first
        self.headers = headers
        self.close = close


def add_upstream_headers(headers: list[tuple[bytes, bytes]], ex: Exchange, up: list[tuple[bytes, bytes]],
                         own_limits: bool) -> None:
    """An answer's headers from the upstream's: its rate-limit headers under OpenAI's names (unless the
    deployment's own rpm / tpm speak instead, ``own_limits``: ``Router.run``), kept on ``ex`` for the
    Prometheus sink when it reads them (off the request path), and every header as ``llm_provider-*``."""
    limits = ratelimit_headers(up)
    if limits:
        if not own_limits:
            headers.extend(limits)
        if ex.rt.track_remaining:
            ex.remaining = limits
    headers.extend(provider_headers(up))


def retry_after(value: bytes | None) -> float | None:
    """An upstream ``Retry-After`` header's seconds (``None`` when absent, not a number, not finite or over a
    day: ``inf`` once made a 429 into a 500)."""
    if not value:
        return None
    try:
        v = float(value)
    except ValueError:
        return None
    return v if 0.0 <= v <= 86400.0 else (0.0 if v < 0.0 else None)  # nan, inf, a day+: not a delay


def upstream_error(provider: Provider, resp: UpstreamResponse, data: bytes) -> GatewayError:
    """An upstream's error answer as the adapter classifies it, with its ``Retry-After`` and, as LiteLLM
    answers errors, the upstream's headers as ``llm_provider-*`` (``upstream.headers``)."""
    err = provider.map_error(resp.status, data, retry_after(resp.header(b"retry-after")))
    if resp.headers:
        err.headers = err.headers + provider_headers(resp.headers)
    return err


def stream_shape_error(exc: Exception) -> GatewayError:
    return errors.UpstreamProtocolError(f"the upstream sent a stream event of an unexpected shape "
                                        f"({type(exc).__name__}: {exc})")


async def first_frame(chunks: AsyncIterator[bytes], translator: StreamTranslator,
                      close: Callable[[], Awaitable[None]]) -> bytes:
    """Read upstream chunks until the translator has a first client frame (or the stream ended).

    A stream attempt returns only then, so a failure before the client saw a byte can still be retried.
    On any failure the upstream response is closed before the error propagates.
    """
    try:
        first = b""
        while not first:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return translator.close()
            first = translator.feed(chunk)
        return first
    except SHAPE_ERRORS as exc:
        await close()
        raise stream_shape_error(exc) from None
    except BaseException:
        await close()
        raise
