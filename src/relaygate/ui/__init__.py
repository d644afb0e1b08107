"""The admin UI at ``/ui`` (being built: the UI-server helper replaces this module)."""

from __future__ import annotations

from typing import Any

from relaygate.http.routes import RouteTable


def register(t: RouteTable, gw: Any) -> None:
    """Add the UI's routes to ``t`` (none yet)."""
    del t, gw


__all__ = ["register"]
