"""LiteLLM's pass-through routes: a provider's native API through the gateway, with the gateway's keys.

``/anthropic/*``, ``/openai/*`` (and ``/openai_passthrough/*``), ``/azure/*``, ``/gemini/*``, ``/vertex_ai/*``
(and ``/vertex-ai/*``), ``/bedrock/*``, ``/cohere/*`` and ``/mistral/*`` forward a request to the provider's
own API as it is, with the provider credentials of the
config (a deployment marked ``use_in_pass_through``, else the provider's environment variables); the
entries of ``general_settings.pass_through_endpoints`` forward their ``path`` to any ``target``. Clients
authenticate with gateway keys, as on the LLM routes (a custom endpoint only with ``auth: true``, as
LiteLLM's); bodies and answers stream through without being held; usage is read from the answers that
carry it and recorded as spend like any completion.

The package: ``urls`` (the upstream URL and the headers both ways, sans-IO), ``usage`` (token usage read
from an answer as it passes, sans-IO), ``targets`` (the routes, their credentials and error shapes),
``forward`` (the IO shell: one :class:`~relaygate.passthrough.forward.Relay` per request). :func:`add_routes`
mounts them on the gateway's route table.

Invariants: the client's own credential headers and ``?key=`` never reach an upstream; a path can only
address what lies under its route's base URL; every request ends as one completion record.
"""

from __future__ import annotations

import logging
from typing import Any

from relaygate.http.routes import Handler, Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.passthrough.forward import serve
from relaygate.passthrough.targets import PROVIDER_ROUTES, Route

__all__ = ["METHODS", "add_routes"]

log = logging.getLogger("relaygate")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
"""The methods LiteLLM's pass-through routes take (``HEAD`` comes with ``GET``)."""


def _handler(gw: Any, route: Route) -> Handler:
    async def handle(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await serve(gw.pipeline, route, scope, receive, send)

    return handle


def add_routes(t: RouteTable, gw: Any) -> None:
    """Mount the provider routes and the config's custom endpoints on ``t``. A custom path that is already
    a route is skipped with an error line (the existing route keeps it); custom paths are read once, at
    start-up: a reload changes an endpoint's target, headers and flags, not which paths exist."""
    for route in PROVIDER_ROUTES:
        t.mount(route.prefix, _handler(gw, route), METHODS)
    taken = {p for _, p in t.routes()} | {r.prefix for r in PROVIDER_ROUTES}
    taken |= {p.removesuffix("/{path:path}") for p in taken}
    for i, ep in enumerate(gw.config.general.pass_through_endpoints):
        if ep.path in taken:
            log.error("general_settings.pass_through_endpoints[%d].path: %s is already a route of the gateway; "
                      "this endpoint is not served", i, ep.path)
            continue
        taken.add(ep.path)
        route = Route(ep.path, ep.path, "", "openai", endpoint=ep.path)
        handler = _handler(gw, route)
        if ep.include_subpath:
            t.mount(ep.path, handler, METHODS)
        else:
            t.add(METHODS, ep.path, handler)
