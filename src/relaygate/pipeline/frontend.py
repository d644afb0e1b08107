"""What a frontend is to the pipeline: one client API's parse and render, nothing else.

A frontend (``relaygate.frontends``: ``openai``, ``anthropic``, ``media``; the Responses API will be one more)
subclasses :class:`Frontend`. The pipeline calls, in order:

1. :meth:`Frontend.parse` — read the request body (``http.body.read_body`` within the runtime's limits) and
   fill the exchange in the pipeline's terms: ``endpoint`` (what adapters are asked for), ``body``,
   ``view``, ``model``, ``stream``, ``fallbacks``, and body overrides through ``ex.over.merge_body``;
   frontend-only state goes in ``ex.state``. Malformed input is a ``BadRequest``.
2. :meth:`Frontend.unary` / :meth:`Frontend.streaming` — the attempt function the router calls per target.
   The defaults run the OpenAI attempts (``pipeline.attempts``); a frontend wraps them to translate (the
   Anthropic one answers in Messages shape) or replaces them (a deployment speaking the API natively).
3. Rendering: :meth:`content_type` of a unary answer, :meth:`stream_head` of a stream, :meth:`error_frame` for
   a failure inside a stream, :meth:`send_error` for an error response (OpenAI's shape by default).

A frontend whose operation is not a routed call (Anthropic's ``count_tokens``) sets :attr:`direct`: after
authentication, parsing, model resolution and authorization the pipeline hands it the exchange instead of
running the attempt and relay stages (:meth:`answer`).
"""

from __future__ import annotations

from relaygate.core import tokens
from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_error
from relaygate.http.routes import Params
from relaygate.http.types import Headers, Receive, Scope, Send
from relaygate.pipeline import attempts
from relaygate.pipeline.attempts import Answer, Attempt
from relaygate.pipeline.exchange import Exchange, StreamStart
from relaygate.upstream.base import Transport

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
        return attempts.unary(transport, ex)

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        return attempts.stream(transport, ex)

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        """(prompt, completion, ...) tokens of a unary answer, or None when it says none."""
        return tokens.extract_usage(data) if ex.endpoint != "embeddings" or b'"usage"' in data else None

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
