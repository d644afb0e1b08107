"""``GET /provider/budgets``: each provider budget's limit, period, spend and reset time (LiteLLM's route,
``litellm/proxy/spend_tracking/spend_management_endpoints.py``, ``ProviderBudgetResponse``).

Answer: ``{"providers": {"openai": {"budget_limit": 100.0, "time_period": "1d", "spend": 0.42,
"budget_reset_at": "2026-12-01T00:00:00+00:00"}}}``. ``spend`` is the current period's, read from Redis
first when the gateway shares its counters (``budgets.providers``), else this worker's. Without any
``router_settings.provider_budget_config`` the answer is LiteLLM's 500 ``No provider budget config
found. ...``. Only the proxy admin (and its viewer) may read it; unlike the other management routes it
needs no database: the budgets live in the router and Redis.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.auth import PrincipalKind
from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management.common import INTERNAL_USER, Ctx, Gateway, admin_only, resolve_caller

PATH = "/provider/budgets"
NO_CONFIG = ("No provider budget config found. Please set a provider budget config in the router settings. "
             "https://docs.litellm.ai/docs/proxy/provider_budget_routing")

_encoder = msgspec.json.Encoder()


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await _check_admin(gw, scope, receive, params)
        budgets: Any = getattr(gw, "provider_budgets", None)
        if budgets is None or not budgets.providers:
            raise GatewayError(NO_CONFIG, status=500, type="internal_server_error", param="None")
        await budgets.refresh()  # bounded by the Redis timeout; a failed read leaves this worker's figures
        await send_json(send, 200, _encoder.encode({"providers": budgets.report()}))

    t.add("GET", PATH, serve)


async def _check_admin(gw: Gateway, scope: Scope, receive: Receive, params: Params) -> None:
    """401 as on every route for a bad key; LiteLLM's admin-route refusal for a key that is not the admin's."""
    principals = gw.runtime.principals
    headers = scope["headers"]
    p = principals.resolve_cached(headers) or await principals.resolve(headers)
    if p.kind is not PrincipalKind.KEY:
        return  # the master key, or an open gateway
    store = gw.store
    if store is None:  # a key from the config file: an internal user
        raise GatewayError(
            "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
            f"keys/users/teams. Route={PATH}. Your role={INTERNAL_USER}. Your user_id={p.user_id or 'unknown'}",
            status=401, type="auth_error", param="None")
    caller = await resolve_caller(gw, scope, store)
    admin_only(Ctx(gw, store, caller, PATH, params, {}, receive, scope), read=True)
