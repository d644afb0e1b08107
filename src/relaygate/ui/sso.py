"""Single sign-on for the admin UI (OpenID Connect, authorization code with PKCE) — being built."""

from __future__ import annotations

import os
from typing import Any

from relaygate.http.routes import RouteTable


def sso_enabled(gw: Any) -> bool:
    """Whether a generic OpenID provider is configured (``GENERIC_CLIENT_ID`` and its endpoints)."""
    del gw
    return bool(os.environ.get("GENERIC_CLIENT_ID") and os.environ.get("GENERIC_AUTHORIZATION_ENDPOINT"))


def add_routes(t: RouteTable, gw: Any) -> None:
    """Add ``/sso/key/generate`` and ``/sso/callback`` to ``t`` (none yet)."""
    del t, gw


__all__ = ["add_routes", "sso_enabled"]
