"""aiohttp as the fallback upstream transport: HTTP proxies, and anything the lean pool does not do.

Implements :class:`relaygate.upstream.base.Transport`. It costs ~190 µs per request more than the
keep-alive ``asyncio.Protocol`` pool (``upstream.h1``), so ``transport = "auto"`` picks it only when a
proxy is configured. aiohttp has one read timeout, so ``first_byte`` bounds the wait for the head and
``idle`` is enforced per body chunk around the read.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp

from relaygate.core.errors import UpstreamConnectError, UpstreamTimeout
from relaygate.upstream.base import Timeouts, UpstreamRequest


class AiohttpResponse:
    __slots__ = ("_resp", "status", "headers", "_idle", "_closed")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float) -> None:
        self._resp = resp
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
        try:
            return await asyncio.wait_for(self._resp.read(), self._idle)
        except asyncio.TimeoutError:
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
                except asyncio.TimeoutError:
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


class AiohttpTransport:
    def __init__(self, *, max_connections: int = 0, keepalive_expiry: float = 30.0,
                 proxy: str | None = None) -> None:
        self._connector_args = {"limit": max_connections, "keepalive_timeout": keepalive_expiry,
                                "enable_cleanup_closed": False}
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
        try:
            coro = session.request(request.method, request.url, headers=request.headers, data=request.body or None,
                                   timeout=t, proxy=self._proxy, allow_redirects=False)
            if timeouts.total is not None:
                resp = await asyncio.wait_for(coro, timeouts.total)
            else:
                resp = await coro
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            phase = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "first_byte"
            raise UpstreamTimeout(f"upstream timed out ({phase})", phase=phase) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"cannot reach upstream: {type(exc).__name__}") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot reach upstream: {exc.strerror or type(exc).__name__}") from None
        return AiohttpResponse(resp, timeouts.idle)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
