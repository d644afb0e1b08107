"""IO around the transport for calls that are more than one request: OAuth token refresh, fan-out of a
split call, and downloading media that an adapter must send inline.

The decisions stay sans-IO elsewhere (``providers.vertex.TokenSource``, ``Provider.build_requests``,
``upstream.media``); this module only sends and reads. Media fetching refuses hosts that resolve to
loopback, private, link-local or otherwise reserved addresses unless ``allow_private`` is set
(``server.allow_private_media_urls``): a gateway must not become a client's way into the network behind it.
Each host is resolved once per hop (:func:`resolve`), and the download connects to the very address that
was checked (``UpstreamRequest.connect_to``; ``Host``, TLS SNI and certificate checks keep the name), so
a name that resolves differently the second time (DNS rebinding) cannot slip past the check. URLs are
parsed strictly first (``upstream.media.parse_url``): a malformed one is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any, Awaitable

from relaygate.core.errors import GatewayError
from relaygate.upstream import media as _media
from relaygate.upstream.base import Timeouts, Transport, UpstreamRequest, UpstreamResponse
from relaygate.upstream.identity import IdentityClient, identity_client


async def refresh_token(source: Any, transport: Transport) -> None:
    """Refresh a provider's OAuth token (``providers.vertex.TokenSource``) when it is due: the sans-IO
    source builds the token request and parses the answer; one refresh at a time while the old token is
    still valid, so requests keep flowing during a refresh."""
    now = time.time()
    if not source.needs_refresh(now) or (source.refreshing and source.valid(now)):
        return
    source.refreshing = True
    timeouts = getattr(source, "refresh_timeouts", None) or _REFRESH_TIMEOUTS
    if getattr(source, "direct", False) and isinstance(transport, IdentityClient):
        transport = identity_client(direct=True)  # a link-local metadata endpoint: never through a proxy
    try:
        for _ in range(_REFRESH_STEPS):  # an exchange of several requests (IMDSv2) answers true until its last
            resp = await transport.send(source.refresh_request(now), timeouts)
            if not source.accept(resp.status, await resp.read(), time.time()):
                break
    except Exception as exc:
        failed = getattr(source, "failed", None)  # a source that words (and remembers) its own failures
        if failed is None:
            raise
        raise failed(time.time(), exc) from None
    finally:
        source.refreshing = False


_REFRESH_TIMEOUTS = Timeouts(connect=10.0, first_byte=30.0, idle=30.0, total=30.0)
_REFRESH_STEPS = 4


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
    sans-IO rules of ``upstream.media`` (size bound, redirects, MIME sniffing, the per-worker LRU cache).
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
    try:
        target = _media.parse_url(url)
    except _media.InvalidURL as exc:
        raise _media.invalid_url(exc.reason) from None
    for _ in range(_media.MAX_REDIRECTS + 1):
        addr = await _address(url, target, allow_private, getattr(transport, "family", 0))
        try:
            resp = await transport.send(_media.fetch_request(target, addr), _media.timeouts())
            try:
                nxt = _media.check_head(url, target.url, resp.status, resp.header(b"content-length"),
                                        resp.header(b"location"))
                if nxt is not None:
                    target = nxt
                    continue
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
    raise _media.fetch_error(url, "too many redirects")


async def resolve(host: str, port: int, family: int = 0) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, through the event loop), in its order; of
    ``family`` only when given (``socket.AF_INET``: ``force_ipv4``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _address(url: str, target: _media.MediaURL, allow_private: bool, family: int = 0) -> str:
    """Resolve ``target``'s host once and return the address the download must connect to (the transport
    is pinned to it, so a second resolution can never point elsewhere: no DNS rebinding). Unless
    ``allow_private``, every address must be public (checked again at every redirect). ``family``: the
    transport's (``socket.AF_INET`` with ``force_ipv4``: IPv4 addresses only)."""
    try:
        literal = ipaddress.ip_address(target.host)
        addrs = [str(literal)]
        if family == socket.AF_INET and literal.version != 4:
            raise _media.fetch_error(url, "host is an IPv6 address and force_ipv4 is set")
    except ValueError:
        try:
            addrs = await resolve(target.host, target.port, family)
        except (OSError, UnicodeError):
            addrs = []
        if not addrs:
            raise _media.fetch_error(url, "host does not resolve" + (" to an IPv4 address" if family else "")) \
                from None
    if not allow_private:
        for addr in addrs:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:  # a scoped (link-local) IPv6 address
                ip = None
            if ip is None or not ip.is_global or ip.is_multicast:
                raise _media.fetch_error(url, "host resolves to a non-public address "
                                              "(set server.allow_private_media_urls to allow it)")
    return addrs[0]
