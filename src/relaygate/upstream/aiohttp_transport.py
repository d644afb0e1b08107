"""aiohttp as the fallback upstream transport: HTTP proxies, and anything the lean pool does not do.

Implements :class:`relaygate.upstream.base.Transport`. It costs ~190 µs per request more than the
keep-alive ``asyncio.Protocol`` pool (``upstream.h1``), so ``transport = "auto"`` picks it only when a
proxy is configured. aiohttp has one read timeout, so ``first_byte`` bounds the wait for the head and
``idle`` is enforced per body chunk around the read.

A streamed request body (an async iterable) goes to aiohttp as an async generator, which aiohttp writes
with its own drain-based flow control (chunked unless ``content_length`` is set). aiohttp reports any
failure while writing a body as a connection error, so the generator keeps what the caller's iterable
raised (a size limit, a client gone) and ``send`` re-raises exactly that.

``read()`` obeys the same cap as the lean pool (``max_response_bytes``, see
:mod:`relaygate.upstream.h1_response`): a declared ``Content-Length`` above it fails before reading, a
body whose counted bytes pass it fails at once; the connection is closed, never pooled. A request pinned
to an address (``connect_to``) is sent to a URL naming that address, with the original ``Host`` header and
``server_hostname`` (TLS SNI and certificate check) set to the URL's host.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from relaygate.core.errors import UpstreamConnectError, UpstreamTimeout
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1_response import DEFAULT_MAX_RESPONSE_BYTES, ResponseTooLarge


class AiohttpResponse:
    __slots__ = ("_cap", "_closed", "_idle", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float, cap: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._resp = resp
        self._cap = cap
        self.status = resp.status
        self.headers = [(k.lower(), v) for k, v in resp.raw_headers]
        self._idle = idle
        self._closed = False

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def read(self) -> bytes:
        resp, cap = self._resp, self._cap
        try:
            if (resp.content_length or 0) > cap and not resp.content.at_eof():  # HEAD: length, no body
                resp.close()
                raise ResponseTooLarge(cap)
            parts: list[bytes] = []
            size = 0
            async with asyncio.timeout(self._idle):
                while chunk := await resp.content.readany():
                    size += len(chunk)
                    if size > cap:
                        resp.close()
                        raise ResponseTooLarge(cap)
                    parts.append(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except TimeoutError:
            await self.aclose()
            raise UpstreamTimeout("upstream stalled while sending the body", phase="idle") from None
        except aiohttp.ClientError as exc:
            await self.aclose()
            raise UpstreamConnectError(f"upstream connection failed while reading: {type(exc).__name__}") from None
        finally:
            self._resp.release()
            self._closed = True

    async def _iter(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        try:
            while True:
                try:
                    chunk, _ = await asyncio.wait_for(content.readchunk(), self._idle)
                except TimeoutError:
                    raise UpstreamTimeout("upstream stalled between stream chunks", phase="idle") from None
                except aiohttp.ClientError as exc:
                    raise UpstreamConnectError(
                        f"upstream connection failed mid-stream: {type(exc).__name__}") from None
                if not chunk:
                    break
                yield chunk
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


def _pin(url: str, addr: str) -> tuple[str, str, str | None]:
    """``url`` with its host replaced by the address ``addr``, the ``Host`` header value it had, and the
    name TLS must present and verify (None for ``http``)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError("a pinned URL needs a host")
    ip = f"[{addr}]" if ":" in addr else addr
    netloc = f"{ip}:{parts.port}" if parts.port is not None else ip
    sni = parts.hostname if parts.scheme == "https" else None
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rpartition("@")[2], sni


class _Body:
    """A streamed request body handed to aiohttp, remembering what the source raised."""

    __slots__ = ("exc", "source")

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self.source = source
        self.exc: BaseException | None = None

    async def pieces(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self.source:
                if piece:
                    yield piece
        except BaseException as exc:
            self.exc = exc
            raise


class AiohttpTransport:
    def __init__(self, *, max_connections: int = 0, keepalive_expiry: float = 30.0,
                 proxy: str | None = None, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 ssl_context: ssl.SSLContext | None = None, family: int = 0) -> None:
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        self._cap = max_response_bytes
        self.family = family
        self._connector_args = {"limit": max_connections, "keepalive_timeout": keepalive_expiry, "family": family,
                                "enable_cleanup_closed": False, "ssl": ssl_context if ssl_context else True}
        self._session: aiohttp.ClientSession | None = None
        self._proxy = proxy

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(**self._connector_args),  # type: ignore[arg-type]
                auto_decompress=False, skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> AiohttpResponse:
        session = self._get_session()
        t = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.first_byte)
        body = request.body
        streamed: _Body | None = None
        headers = request.headers
        data: object = body or None
        if not isinstance(body, bytes):
            streamed = _Body(body)
            data = streamed.pieces()
            headers = [h for h in headers if h[0].lower() not in ("content-length", "transfer-encoding")]
            if request.content_length is not None:
                headers.append(("Content-Length", str(request.content_length)))
        url = request.url
        sni: str | None = None
        if self.family == socket.AF_INET:  # force_ipv4: aiohttp's connector fails an assertion on an IPv6 literal
            host = request.connect_to or urlsplit(url).hostname or ""
            if ":" in host:
                raise UpstreamConnectError(f"cannot reach upstream: {host} is an IPv6 address and force_ipv4 is set")
        if request.connect_to is not None:
            url, host, sni = _pin(url, request.connect_to)
            headers = [h for h in headers if h[0].lower() != "host"] + [("Host", host)]
        try:
            resp = await self._request(session, request.method, url, headers, data, t, timeouts.total, sni)
        except BaseException:
            if streamed is not None and streamed.exc is not None:
                raise streamed.exc from None
            raise
        return AiohttpResponse(resp, timeouts.idle, self._cap)

    async def _request(self, session: aiohttp.ClientSession, method: str, url: str, headers: list[tuple[str, str]],
                       data: object, t: aiohttp.ClientTimeout, total: float | None,
                       sni: str | None = None) -> aiohttp.ClientResponse:
        try:
            coro = session.request(method, url, headers=headers, data=data, timeout=t, proxy=self._proxy,
                                   allow_redirects=False, server_hostname=sni)
            if total is not None:
                return await asyncio.wait_for(coro, total)
            return await coro
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            phase = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "first_byte"
            raise UpstreamTimeout(f"upstream timed out ({phase})", phase=phase) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"cannot reach upstream: {type(exc).__name__}") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot reach upstream: {exc.strerror or type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
