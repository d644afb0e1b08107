"""IO around the transport for calls that are more than one request: OAuth token refresh, fan-out of a
split call, and downloading media that an adapter must send inline.

The decisions stay sans-IO elsewhere (``providers.vertex.TokenSource``, ``Provider.build_requests``,
``providers.media``); this module only sends and reads. Media fetching refuses hosts that resolve to
loopback, private, link-local or otherwise reserved addresses unless ``allow_private`` is set
(``server.allow_private_media_urls``): a gateway must not become a client's way into the network behind it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any, Awaitable
from urllib.parse import urlsplit

from relaygate.core.errors import GatewayError
from relaygate.providers import media as _media
from relaygate.upstream.base import Timeouts, Transport, UpstreamRequest, UpstreamResponse


async def refresh_token(source: Any, transport: Transport) -> None:
    """Refresh a provider's OAuth token (``providers.vertex.TokenSource``) when it is due: the sans-IO
    source builds the token request and parses the answer; one refresh at a time while the old token is
    still valid, so requests keep flowing during a refresh."""
    now = time.time()
    if not source.needs_refresh(now) or (source.refreshing and source.valid(now)):
        return
    source.refreshing = True
    try:
        resp = await transport.send(source.refresh_request(now), Timeouts(connect=10.0, first_byte=30.0, idle=30.0,
                                                                          total=30.0))
        source.accept(resp.status, await resp.read(), time.time())
    finally:
        source.refreshing = False


#: most upstream calls in flight at once for one client call that an adapter split (``build_requests``)
FANOUT_CONCURRENCY = 8


async def gather(aws: list[Awaitable[Any]], limit: int = 0) -> list[Any]:
    """Run concurrently (at most ``limit`` at once when given); the first failure cancels the rest."""
    if limit and len(aws) > limit:
        sem = asyncio.Semaphore(limit)

        async def bounded(aw: Awaitable[Any]) -> Any:
            async with sem:
                return await aw

        aws = [bounded(aw) for aw in aws]
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def send_read(transport: Transport, request: UpstreamRequest,
                     timeouts: Timeouts) -> tuple[UpstreamResponse, bytes]:
    resp = await transport.send(request, timeouts)
    try:
        return resp, await resp.read()
    except BaseException:
        await resp.aclose()
        raise


async def fetch_media(urls: list[str], transport: Transport,
                      allow_private: bool = False) -> dict[str, tuple[str, bytes]]:
    """Download the URLs an adapter must send inline (``Provider.fetch_urls``), concurrently, under the
    sans-IO rules of ``providers.media`` (size bound, redirects, MIME sniffing, the per-worker LRU cache).
    Any failure is a 400 naming the URL (without its query string)."""
    out: dict[str, tuple[str, bytes]] = {}
    missing: list[str] = []
    for url in urls:
        hit = _media.CACHE.get(url)
        if hit is None:
            missing.append(url)
        else:
            out[url] = hit
    if missing:
        got = await gather([_fetch_one(url, transport, allow_private) for url in missing])
        out.update(zip(missing, got))
    return out


async def _fetch_one(url: str, transport: Transport, allow_private: bool) -> tuple[str, bytes]:
    current = url
    for _ in range(_media.MAX_REDIRECTS + 1):
        if not allow_private:
            await _check_public(url, current)
        try:
            resp = await transport.send(_media.fetch_request(current), _media.timeouts())
            try:
                nxt = _media.check_head(url, current, resp.status, resp.header(b"content-length"),
                                        resp.header(b"location"))
                if nxt is None:
                    parts: list[bytes] = []
                    size = 0
                    async for chunk in resp:
                        size += len(chunk)
                        if size > _media.MAX_BYTES:
                            raise _media.too_large(url)
                        parts.append(chunk)
                    item = _media.accept(url, resp.header(b"content-type"), b"".join(parts))
                    _media.CACHE.put(url, item)
                    return item
            finally:
                await resp.aclose()
        except _media.MediaFetchError:
            raise
        except GatewayError as exc:
            raise _media.fetch_error(url, exc.message) from None
        except (OSError, ValueError) as exc:
            raise _media.fetch_error(url, type(exc).__name__) from None
        current = nxt
    raise _media.fetch_error(url, "too many redirects")




async def _check_public(url: str, current: str) -> None:
    """Refuse a URL whose host resolves to a non-public address (checked again at every redirect)."""
    parts = urlsplit(current)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError:
        raise _media.fetch_error(url, "host does not resolve") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global or addr.is_multicast:
            raise _media.fetch_error(url, "host resolves to a non-public address "
                                          "(set server.allow_private_media_urls to allow it)")
