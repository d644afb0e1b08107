"""The admin UI at ``/ui``: its pages and sign-in on the gateway's own port, and single sign-on at ``/sso/*``.

The UI is a separate mount: its routes are added to the gateway's route table here and nowhere else, and
nothing on an LLM route's path reads a UI cookie, so the UI adds nothing to the cost of LLM requests. The
browser works through the management API (``/key/*``, ``/team/*`` ...) with the session cookie; that API
accepts the cookie (``ui.sessions.authenticate``) with the same role rules as keys.

Modules: ``server`` (the JSON endpoints, static serving, security headers), ``sessions`` (the cookie, store
or signed), ``rows`` (the session and password rows), ``passwords`` (scrypt hashes), ``limits`` (sign-in
rate limit), ``assets`` (the static directory), ``sso`` (OpenID Connect), ``static/`` (the front end).
This package imports no ``gateway`` and no ``management`` module (they import it).
"""

from __future__ import annotations

from typing import Any

from relaygate.http.routes import RouteTable


def register(t: RouteTable, gw: Any) -> None:
    """Add the UI's routes (``/ui``, ``/ui/config``, ``/ui/login``, ``/ui/session``, ``/ui/logout``, static
    files) and single sign-on's (``/sso/key/generate``, ``/sso/callback``) to ``t``."""
    from relaygate.ui import server, sso

    server.add_routes(t, gw)
    sso.add_routes(t, gw)


__all__ = ["register"]
