"""LiteLLM's proxy-wide access restrictions of ``general_settings``, which no key lifts.

- **Client addresses** (``allowed_ips``, ``use_x_forwarded_for``): a request from an address the list does not
  cover gets a 403 in LiteLLM's words (``Access forbidden: IP address <ip> not allowed.``) on every route but
  the orchestrator's probes (``/health/liveliness``, ``/health/liveness``, ``/health/readiness``, which LiteLLM
  does not authenticate either), before anything else runs. Entries are addresses or networks
  (``10.0.0.0/8``, ``2001:db8::/32``; LiteLLM compares exact strings only). With ``use_x_forwarded_for`` the
  address is the *last* hop of ``X-Forwarded-For`` (the one the proxy in front of the gateway appended), not
  the first a client may write itself; LiteLLM compares the whole header, so a client behind two proxies never
  matches there. With ``trusted_proxy_ranges`` (LiteLLM's: the reverse proxies' networks) the header counts
  only when the connection comes from one of them, and the client is its right-most hop that is not one of
  them, so a client that reaches the gateway directly, or writes hops of its own, cannot pass for another
  address; the ranges turn the header on by themselves (LiteLLM believes it for a request's identity then, but
  still compares ``allowed_ips`` with the raw header). An address that does not parse is refused without being
  echoed.
- **Routes** (``allowed_routes``): the paths (under ``SERVER_ROOT_PATH``) the proxy serves at all — literal
  paths, ``prefix*`` entries and LiteLLM's route groups (``openai_routes``, ``LiteLLMRoutes.public_routes``
  ...; ``auth.jwt_routes.RouteSet``); any other path gets LiteLLM's 403 ``Access forbidden: Route <path> not
  allowed`` (the probes excepted, as above).
- **Required request fields** (``enforce_user_param``, ``enforced_params``, and a key's or its team's
  ``metadata.enforced_params``): every LLM call must carry them (``user``; ``metadata.generation_name``:
  a field of an object, one level down, as LiteLLM's). A call without one is a 400 naming the field, in the
  route's own API shape. LiteLLM answers a missing ``user`` with a 401 and a missing enforced field with a
  500; neither is the caller's credentials nor the server's fault, so relaygate says 400.

Each check costs nothing unless configured: the gateway tests one attribute per request, the pipeline one
hook (:class:`RequiredFields`, installed only with the settings) and one attribute of a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from relaygate.auth.jwt_routes import RouteSet
from relaygate.core import errors
from relaygate.core.access import Network, address, allowed, forwarded_client, header_name, parse_allowed_ips


def client_address(scope: Any, forwarded: bool, trusted: tuple[Network, ...] = ()) -> str | None:
    """The caller's address: the peer's, or with ``forwarded`` (``use_x_forwarded_for``) the last hop of the
    last ``X-Forwarded-For`` header (the peer's when there is none); None when it does not parse. The last hop is
    the one the proxy in front wrote: the ones before it are the client's say (LiteLLM takes the header whole).
    With ``trusted`` (LiteLLM's ``trusted_proxy_ranges``) the header is believed only from a peer in those
    networks, and the client is its right-most hop that is not a trusted proxy (``core.access.forwarded_client``)."""
    if trusted:
        peer = scope.get("client")
        hops = b",".join(bytes(v) for k, v in scope["headers"] if k == b"x-forwarded-for")
        return forwarded_client(address(str(peer[0])) if peer else None, hops, trusted)
    if forwarded:
        last = None
        for k, v in scope["headers"]:
            if k == b"x-forwarded-for":
                last = v
        if last is not None:
            return address(bytes(last).rsplit(b",", 1)[-1].decode("latin-1"))
    peer = scope.get("client")
    return address(str(peer[0])) if peer else None

__all__ = ["PROBES", "AccessPolicy", "RequiredFields", "check_fields", "customer_header", "request_fields"]

PROBES = frozenset({"/health/liveliness", "/health/liveness", "/health/readiness"})
"""Paths the orchestrator probes: never refused for the caller's address or route."""
PASS_THROUGH = "pass_through_endpoint"
"""``passthrough.forward.ROUTE_NAME``: the exchanges the required fields do not apply to."""


class AccessPolicy:
    """``allowed_ips`` and ``allowed_routes`` of one config (``general``: its ``GeneralSettings``)."""

    __slots__ = ("source", "single", "networks", "forwarded", "trusted", "routes", "active")

    def __init__(self, general: Any) -> None:
        self.source = general
        ips = general.allowed_ips
        self.single: frozenset[str] | None = None
        self.networks: tuple[Network, ...] = ()
        if ips is not None:
            self.single, self.networks = parse_allowed_ips(ips)
        self.forwarded = bool(general.use_x_forwarded_for)
        self.trusted = general.trusted_networks
        routes = general.allowed_routes
        self.routes = RouteSet([r.removeprefix("LiteLLMRoutes.") for r in routes]) if routes is not None else None
        self.active = self.single is not None or self.routes is not None
        """Some restriction is set (else the gateway tests only this)."""

    def client(self, scope: Any) -> str | None:
        """The caller's address (:func:`client_address`)."""
        return client_address(scope, self.forwarded, self.trusted)

    def refusal(self, scope: Any, path: str) -> errors.GatewayError | None:
        """Why this request may not be served (an error to send), or None."""
        if path in PROBES:
            return None
        if self.single is not None:
            ip = self.client(scope)
            if ip is None:
                return errors.GatewayError("Access forbidden: IP address not allowed.", status=403, type="auth_error",
                                           param="None")
            if not allowed(ip, self.single, self.networks):
                return errors.GatewayError(f"Access forbidden: IP address {ip} not allowed.", status=403,
                                           type="auth_error", param="None")
        if self.routes is not None and not self.routes.allows(path):
            shown = path if len(path) <= 200 else path[:200] + "..."
            return errors.GatewayError(f"Access forbidden: Route {shown} not allowed", status=403, type="auth_error",
                                       param="None")
        return None


def request_fields(ex: Any) -> dict[str, Any]:
    """The request's top-level fields as the client sent them (control fields such as ``metadata`` included),
    for presence tests; decoded only here, so only when a required field is configured."""
    state = ex.state
    req = getattr(state, "req", None) if state is not None else None
    if isinstance(req, dict):
        out = dict(req)
    else:
        form = getattr(state, "form", None) if state is not None else None
        if isinstance(form, dict):
            out = dict(form)
        else:
            out = {}
            body = ex.body
            if isinstance(body, (bytes, bytearray, memoryview)):
                try:
                    decoded = orjson.loads(body)
                except orjson.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, dict):
                    out = decoded
    if ex.control:
        out.update(ex.control)
    return out


def check_fields(fields: dict[str, Any], required: Sequence[str], setting: str) -> None:
    """A 400 naming the first of ``required`` (``name`` or ``object.name``) that ``fields`` lacks."""
    for path in required:
        head, dot, rest = path.partition(".")
        if head not in fields:
            raise errors.BadRequest(f"BadRequest please pass param={head} in request body. This is a required "
                                    f"param ({setting})", param=head)
        if dot:
            inner = fields[head]
            if not isinstance(inner, dict) or rest not in inner:
                raise errors.BadRequest(f"BadRequest please pass param=[{head}][{rest}] in request body. This is a "
                                        f"required param ({setting})", param=path)


class RequiredFields:
    """The ``before_route`` hook of ``enforce_user_param`` and ``enforced_params`` (see the module docstring)."""

    __slots__ = ("user", "params")

    def __init__(self, enforce_user: bool, params: Sequence[str]) -> None:
        self.user = enforce_user
        self.params = tuple(params)

    def __call__(self, ex: Any) -> None:
        if ex.route == PASS_THROUGH:  # a provider's own API, forwarded as it is (LiteLLM's checks skip it too)
            return None
        fields = request_fields(ex)
        if self.user and "user" not in fields:
            raise errors.BadRequest("'user' param not passed in. 'enforce_user_param'=True", param="user")
        if self.params:
            check_fields(fields, self.params, "general_settings.enforced_params")
        return None


def customer_header(general: Any) -> bytes | None:
    """The header a customer's id arrives in (``Runtime.user_header``): the ``customer`` entry of
    ``user_header_mappings``, else ``user_header_name``; None: neither is set."""
    mappings = general.user_header_mappings
    for m in [mappings] if isinstance(mappings, dict) else mappings or []:
        if str(m.get("litellm_user_role", "")).lower() == "customer":
            return header_name(m.get("header_name"), "user_header_mappings")
    name = general.user_header_name
    return header_name(name, "user_header_name") if name else None
