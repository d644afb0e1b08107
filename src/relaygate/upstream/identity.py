"""Calls to identity providers (OAuth token endpoints), made with httpx, off the request path.

A token refresh happens about once an hour per credential, so it has no reason to share the hot path's
hand-built HTTP/1.1 pool (``upstream.h1``); httpx brings what such a call wants instead: HTTP/2 or 1.1,
proxies from ``server.http_proxy`` or the environment (``HTTPS_PROXY``), certificate verification, redirects
refused. :class:`IdentityClient` answers ``Transport.send`` for whole-body requests, so the sans-IO token
sources (``providers.vertex.TokenSource``) build requests and read answers as they do for any transport.

One client per event loop and proxy (:func:`identity_client`): created on first use, closed by
:func:`aclose_identity_clients` at worker shutdown. A network failure is a 502 (``UpstreamConnectError``), a
timeout a 408 (``UpstreamTimeout``), as for any upstream; the response body is capped at 1 MiB.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator

import httpx

from relaygate.core.errors import UpstreamConnectError, UpstreamTimeout
from relaygate.upstream.base import Timeouts, UpstreamRequest

MAX_BODY = 1024 * 1024


class IdentityResponse:
    """A whole response (``UpstreamResponse`` for a body already read)."""

    __slots__ = ("status", "headers", "_body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def read(self) -> bytes:
        return self._body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        return None


class IdentityClient:
    def __init__(self, proxy: str | None = None, *, direct: bool = False) -> None:
        self._client = httpx.AsyncClient(proxy=proxy, trust_env=proxy is None and not direct, follow_redirects=False)

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> IdentityResponse:
        if not isinstance(request.body, bytes):
            raise TypeError("identity provider requests carry a whole body")
        timeout = httpx.Timeout(timeouts.total, connect=timeouts.connect)
        try:
            async with self._client.stream(request.method, request.url, headers=request.headers,
                                           content=request.body, timeout=timeout) as resp:
                body = b""
                async for piece in resp.aiter_bytes():
                    body += piece
                    if len(body) > MAX_BODY:
                        raise UpstreamConnectError("identity provider answer too large")
                headers = [(k.lower(), v) for k, v in resp.headers.raw]
                return IdentityResponse(resp.status_code, headers, body)
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"identity provider timed out ({httpx.URL(request.url).host})") from None
        except httpx.HTTPError as exc:
            raise UpstreamConnectError(f"identity provider unreachable ({httpx.URL(request.url).host}): "
                                       f"{type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, IdentityClient]] = (
    weakref.WeakKeyDictionary())


def identity_client(proxy: str | None = None, *, direct: bool = False) -> IdentityClient:
    """This event loop's client for ``proxy`` (None: direct, or the environment's proxy); ``direct``: never a
    proxy, whatever the environment says (the link-local metadata endpoints of EC2 and ECS)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    name = _DIRECT if direct else proxy
    client = per_loop.get(name)
    if client is None:
        client = per_loop[name] = IdentityClient(None if direct else proxy, direct=direct)
    return client


_DIRECT = "\0direct"
"""The per-loop key of the client that ignores the environment's proxies."""


async def aclose_identity_clients() -> None:
    """Close this event loop's clients (worker shutdown)."""
    per_loop = _clients.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.aclose()
