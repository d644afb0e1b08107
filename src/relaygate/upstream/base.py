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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol


@dataclass(slots=True, frozen=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 600.0
    idle: float = 600.0
    total: float | None = 600.0


@dataclass(slots=True)
class UpstreamRequest:
    """A fully built request. ``url`` is absolute (``http://`` or ``https://``)."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


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
