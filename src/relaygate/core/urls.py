"""What may be shown of an upstream's URL.

Sans IO.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["public_base"]


def public_base(url: str | None) -> str | None:
    """``url`` without userinfo, query string or fragment (what may be shown of an ``api_base``)."""
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
