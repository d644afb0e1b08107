"""What every frontend's request path shares below the shell: ASGI types, the request's :class:`Exchange`,
the start of a stream relay, and the services a frontend may use from the gateway (:class:`Services`).

The shell (``asgi.Gateway``) implements :class:`Services`; the frontends in ``inbound/`` are typed against
the protocol, never against the shell, so neither imports the other's module and a new frontend (the
Responses API next) plugs in the same way. Invariant: nothing here does IO of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.providers.base import SHAPE_ERRORS, StreamTranslator

if TYPE_CHECKING:
    from relaygate.auth import Principal
    from relaygate.core.views import AnyView
    from relaygate.metrics import Metrics
    from relaygate.reqio import BodyLimits
    from relaygate.router import Lease, ModelGroup, RouteContext, Router, Target
    from relaygate.sinks import Outcome
    from relaygate.upstream.base import Timeouts, Transport

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Exchange:
    """One request on its way through the gateway: who asked, for what, what it cost, how it ended.

    Created when the request arrives (a frontend's handler), filled in as it goes (``wait``: seconds
    spent waiting on upstreams, for ``x-litellm-overhead-duration-ms``; the lease that served it; usage;
    time to the first stream frame), and handed to ``Services.complete`` once, when it ends: that turns
    it into one :class:`~relaygate.sinks.CompletionRecord` for the sinks (metrics today). ``done`` makes
    a second ``complete`` a no-op, so the paths that can see an end (the answer sent, an error, the
    client gone) need not coordinate.
    """

    __slots__ = ("call_id", "route", "t0", "model", "stream", "who", "ctx", "lease", "wait", "ttft",
                 "prompt_tokens", "completion_tokens", "done")

    def __init__(self, call_id: bytes, route: str, t0: float, model: str = "") -> None:
        self.call_id = call_id
        self.route = route
        self.t0 = t0
        """``time.perf_counter()`` at arrival."""
        self.model = model
        """The model name as the client asked for it (``""`` until known)."""
        self.stream = False
        self.who: Principal | None = None
        self.ctx: RouteContext | None = None
        self.lease: Lease | None = None
        self.wait = 0.0
        self.ttft: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.done = False


class StreamStart:
    __slots__ = ("chunks", "translator", "first", "headers", "close")

    def __init__(self, chunks: AsyncIterator[bytes], translator: StreamTranslator, first: bytes,
                 headers: list[tuple[bytes, bytes]], close: Callable[[], Awaitable[None]]) -> None:
        self.chunks = chunks
        self.translator = translator
        self.first = first
        self.headers = headers
        self.close = close


def retry_after(value: bytes | None) -> float | None:
    """An upstream ``Retry-After`` header's seconds (``None`` when absent or not a number)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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


class Services(Protocol):
    """What a frontend's handler may use of the gateway (the shell implements it)."""

    router: Router
    transport: Transport
    metrics: Metrics
    body_limits: BodyLimits
    watch_unary: bool

    async def principal(self, scope: Scope) -> Principal: ...

    async def read_body(self, scope: Scope, receive: Receive, checked: bool = False) -> bytes: ...

    def timeouts(self, target: Target, stream: bool, override: float | None) -> Timeouts: ...

    async def watched(self, receive: Receive, watch: bool, work: Awaitable[None], ex: Exchange) -> None: ...

    def unary_attempt(self, endpoint: str, body: bytes, view: AnyView, model: str, ctx: RouteContext,
                      timer: Exchange) -> Callable[[Target], Awaitable[tuple[bytes, list[tuple[bytes, bytes]]]]]: ...

    def stream_attempt(self, endpoint: str, body: bytes, view: AnyView, model: str, ctx: RouteContext,
                       timer: Exchange) -> Callable[[Target], Awaitable[StreamStart]]: ...

    async def serve_stream(self, send: Send, group: ModelGroup, ctx: RouteContext, call_id: bytes, t0: float,
                           timer: Exchange, attempt: Callable[[Target], Awaitable[StreamStart]],
                           error_frame: Callable[[GatewayError], bytes]) -> None: ...

    def _headers(self, lease: Lease, group: ModelGroup, call_id: bytes, ctx: RouteContext, total: float,
                 wait: float) -> list[tuple[bytes, bytes]]: ...

    async def _send_error(self, send: Send, exc: GatewayError, call_id: bytes | None = None) -> None: ...

    def complete(self, ex: Exchange, status: int, outcome: Outcome, latency: float | None = None,
                 error: GatewayError | None = None) -> None: ...
