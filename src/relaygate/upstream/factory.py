"""Which transport a worker uses to reach upstreams, from the server settings.

``server.transport``: ``h1`` (the lean keep-alive ``asyncio.Protocol`` pool), ``aiohttp`` (for
``http_proxy`` and anything exotic), or ``auto`` (``aiohttp`` when a proxy is set, else ``h1``). The
``RELAYGATE_TRANSPORT`` environment variable overrides it (the bench uses it to measure both).
"""

from __future__ import annotations

import os

from relaygate.config.model import Config
from relaygate.upstream.base import Transport


def make_transport(config: Config) -> Transport:
    s = config.server
    kind = os.environ.get("RELAYGATE_TRANSPORT") or s.transport
    if kind == "auto":
        kind = "aiohttp" if s.http_proxy else "h1"
    if kind == "h1":
        from relaygate.upstream.h1 import H1Transport

        return H1Transport(max_connections_per_origin=s.max_connections_per_upstream or None,
                           keepalive_expiry=s.keepalive_expiry, max_response_bytes=s.max_upstream_response_bytes)
    from relaygate.upstream.aiohttp_transport import AiohttpTransport

    return AiohttpTransport(max_connections=s.max_connections_per_upstream, keepalive_expiry=s.keepalive_expiry,
                            proxy=s.http_proxy, max_response_bytes=s.max_upstream_response_bytes)
