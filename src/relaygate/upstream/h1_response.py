"""The response side of the ``upstream.h1`` transport: one object per exchange, filled by its connection.

:class:`H1Response` is what :meth:`relaygate.upstream.h1.H1Transport.send` returns once the head has
arrived. Its connection feeds it de-chunked body bytes from ``data_received`` (``_feed``), then the end
(``_finish``) or a failure (``_fail``); the caller takes them with :meth:`H1Response.read` (whole body) or
``async for`` (pieces as they come).

Invariants:

- Body bytes wait in the response object; above the connection's ``high_water`` unread bytes the socket
  stops being read (``pause_reading``) until the reader drains it below ``low_water``, so a slow client
  cannot make the gateway buffer an upstream stream without bound.
- :meth:`read` never holds more than ``max_body`` bytes (``server.max_upstream_response_bytes``): a
  declared ``Content-Length`` above it fails before any body byte is taken, and a chunked or
  close-delimited body fails as soon as the bytes counted pass it. Either way the connection is closed
  (never pooled: the rest of the body is still on the wire) and the caller gets
  :class:`ResponseTooLarge` (502) naming the cap. Iteration is not capped: a stream is relayed piece by
  piece and never held whole.
- Cancelling a reader, or :meth:`aclose` before the body ended, closes the connection.

Cost on the request path: two slot stores per response (declared length, cap) and one integer compare
per body piece taken by :meth:`read`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from relaygate.core.errors import UpstreamConnectError, UpstreamProtocolError

if TYPE_CHECKING:
    from relaygate.upstream.h1 import _Conn

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "H1Response", "ResponseTooLarge"]

#: Default cap on a unary (whole-body) upstream response: 128 MiB. The largest legitimate unary answer
#: of an OpenAI-compatible API is an embeddings batch at its limits (2048 inputs x 3072 dimensions as
#: JSON floats, pretty-printed as OpenAI does: ~125 MB); images as ``b64_json`` (n=10) stay well under.
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024


class ResponseTooLarge(UpstreamProtocolError):
    """An upstream answer read whole was larger than the configured cap: 502, the connection is closed."""

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"upstream response larger than server.max_upstream_response_bytes ({cap} bytes); not read"
        )
        self.cap = cap


class H1Response:
    """A response whose head has arrived. Read the body with :meth:`read` or ``async for``."""

    __slots__ = (
        "_buffered",
        "_cap",
        "_chunks",
        "_closed",
        "_conn",
        "_done",
        "_exc",
        "_length",
        "_loop",
        "_waiter",
        "headers",
        "reason",
        "status",
    )

    def __init__(self, conn: _Conn, head: Any) -> None:
        self.status: int = head.status
        self.reason: bytes = head.reason
        self.headers: list[tuple[bytes, bytes]] = head.headers
        self._conn: _Conn | None = conn
        self._loop = conn.loop
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._length: int | None = head.content_length
        self._cap: int = conn.max_body

    def header(self, name: bytes) -> bytes | None:
        """First value of a header (``name`` lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    # -- called by the connection --------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        conn = self._conn
        if self._buffered > conn.high_water and not conn.paused:  # type: ignore[union-attr]
            conn.pause()  # type: ignore[union-attr]

    def _finish(self) -> None:
        self._done = True
        self._conn = None
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._exc = exc
        self._conn = None
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # -- reading ---------------------------------------------------------------------------------------

    async def _wait(self) -> None:
        fut = self._loop.create_future()
        self._waiter = fut
        try:
            await fut
        except BaseException:
            self._waiter = None
            self._abort()
            raise

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    async def read(self) -> bytes:
        """The whole (de-chunked) body; the connection is released once the body has ended.

        Raises :class:`ResponseTooLarge` (and closes the connection) when the body is, or declares to
        be, larger than the cap."""
        cap = self._cap
        if self._length is not None and self._length > cap and not self._done:  # HEAD: length, no body
            self._abort()
            raise ResponseTooLarge(cap)
        parts: list[bytes] = []
        size = 0
        while not self._done:
            if self._chunks:
                data = self._take()  # drains, so backpressure never stalls a whole-body read
                size += len(data)
                if size > cap:
                    self._abort()
                    raise ResponseTooLarge(cap)
                parts.append(data)
                continue
            if self._exc is not None:
                self._closed = True
                raise self._exc
            if self._closed:
                raise UpstreamConnectError("response was closed before its body was read")
            await self._wait()
        self._closed = True
        if self._chunks:
            data = self._take()
            if size + len(data) > cap:
                self._chunks.clear()
                raise ResponseTooLarge(cap)
            parts.append(data)
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def __aiter__(self) -> H1Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                return self._take()
            if self._done:
                self._closed = True
                raise StopAsyncIteration
            if self._exc is not None:
                self._closed = True
                raise self._exc
            if self._closed:
                raise StopAsyncIteration
            await self._wait()

    def _abort(self) -> None:
        self._closed = True
        self._chunks.clear()
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.abort()

    async def aclose(self) -> None:
        """Release (body done) or close (body not done) the connection. Idempotent."""
        if self._closed and self._conn is None:
            return
        if self._done:
            self._closed = True
            self._chunks.clear()
            return
        self._abort()


