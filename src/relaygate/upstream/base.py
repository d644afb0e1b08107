"""The upstream transport interface: what handlers and the router see of HTTP to providers.

A transport sends one request and returns as soon as the response head has arrived; the body is then
read whole (``read``) or chunk by chunk (``async for``). Handlers never know which transport runs: the
fast keep-alive ``asyncio.Protocol`` pool (``upstream.h1``) or the aiohttp fallback
(``upstream.aiohttp_transport``), chosen in config.

Contract for every implementation:
- Timeouts: ``connect`` (TCP+TLS), ``first_byte`` (request sent -> response head), ``idle`` (gap
  between body chunks), ``total`` (whole exchange, head and body). Breaking one raises
  :class:`relaygate.core.errors.UpstreamTimeout` with ``phase`` set.
- Connection failures before the head raise :class:`UpstreamConnectError`; malformed HTTP raises
  :class:`UpstreamProtocolError`.
- A connection returns to the pool only after its body was fully read and neither side said
  ``Connection: close``; ``aclose()`` on a response whose body was not fully read closes the connection
  (this is how a client disconnect cancels the upstream request). ``aclose()`` is idempotent.
- Header names in responses are lower-case bytes; values bytes. Bodies are de-chunked.
- Request bodies are ``bytes`` (replayable) or an async iterable of ``bytes`` (streamed: each piece is
  written as it comes, waiting for the socket to drain so a slow upstream never makes the gateway buffer;
  sent with ``Content-Length`` when ``content_length`` is given, else ``Transfer-Encoding: chunked``).
  A streamed body is iterated at most once.
- A request is written at most once: a transport never re-sends a request after writing any of it
  (the upstream may have received it and be acting on it); only a pooled connection found dead before
  anything was written is passed over for another. A connection lost before the head is a 502.
  An exception raised by the iterable (a size limit, a client that went away) aborts the upstream
  connection and propagates from ``send`` unchanged. If the upstream answers before the body ended,
  sending stops and the connection is not reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True, frozen=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 600.0
    idle: float = 600.0
    total: float | None = 600.0


@dataclass(slots=True)
class UpstreamRequest:
    """A request to send. ``url`` is absolute (``http://`` or ``https://``).

    ``body`` is ``bytes`` or, to stream it, an async iterable of ``bytes`` pieces; ``content_length`` is
    the streamed body's exact size if known (None: chunked). It is ignored for a ``bytes`` body.
    ``connect_to`` (an IP address) pins the connection: the transport connects there instead of resolving
    the URL's host, while the ``Host`` header, TLS SNI and certificate verification keep the host.
    """

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterable[bytes] = b""
    content_length: int | None = None
    connect_to: str | None = None


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes | None:
        """First value of a header (``name`` lower-case), or None."""
        ...

    async def read(self) -> bytes:
        """The whole (de-chunked) body; releases the connection."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; releases the connection at the end."""
        ...

    async def aclose(self) -> None:
        """Release (body done) or close (body not done) the connection. Idempotent."""
        ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        """Send ``request``; return once the response head has arrived."""
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...
