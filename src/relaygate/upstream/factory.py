"""Which transport a worker uses to reach upstreams, from the server settings.

``server.transport``: ``h1`` (the lean keep-alive ``asyncio.Protocol`` pool), ``aiohttp`` (for
``http_proxy`` and anything exotic), or ``auto`` (``aiohttp`` when a proxy is set, else ``h1``). The
``RELAYGATE_TRANSPORT`` environment variable overrides it (the bench uses it to measure both). Both verify
upstream TLS with one context (:func:`upstream_ssl`): LiteLLM's ``ssl_verify`` (a CA bundle, or off) and
``SSL_CERTIFICATE`` (a client certificate).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from relaygate.config.model import Config
from relaygate.upstream.base import Transport


def upstream_ssl(s: Any) -> ssl.SSLContext | None:
    """The upstream TLS context ``server.ssl_verify`` / ``ssl_certificate`` ask for; None: the transports'
    default (the system's CAs, host names checked)."""
    verify, cert = s.ssl_verify, s.ssl_certificate
    if verify is True and not cert:
        return None
    ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert)
    return ctx


def make_transport(config: Config) -> Transport:
    s = config.server
    context = upstream_ssl(s)
    kind = os.environ.get("RELAYGATE_TRANSPORT") or s.transport
    if kind == "auto":
        kind = "aiohttp" if s.http_proxy else "h1"
    family = socket.AF_INET if s.force_ipv4 else 0  # LiteLLM's force_ipv4; 0: whatever the name resolves to
    if kind == "h1":
        from relaygate.upstream.h1 import H1Transport

        return H1Transport(max_connections_per_origin=s.max_connections_per_upstream or None,
                           keepalive_expiry=s.keepalive_expiry, max_response_bytes=s.max_upstream_response_bytes,
                           ssl_context=context, family=family)
    from relaygate.upstream.aiohttp_transport import AiohttpTransport

    return AiohttpTransport(max_connections=s.max_connections_per_upstream, keepalive_expiry=s.keepalive_expiry,
                            proxy=s.http_proxy, max_response_bytes=s.max_upstream_response_bytes, ssl_context=context,
                            family=family)
