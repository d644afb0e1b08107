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

from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management.common import Gateway, check_admin

PATH = "/provider/budgets"
NO_CONFIG = ("No provider budget config found. Please set a provider budget config in the router settings. "
             "https://docs.litellm.ai/docs/proxy/provider_budget_routing")

_encoder = msgspec.json.Encoder()


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, PATH, read=True)
        budgets: Any = getattr(gw, "provider_budgets", None)
        if budgets is None or not budgets.providers:
            raise GatewayError(NO_CONFIG, status=500, type="internal_server_error", param="None")
        await budgets.refresh()  # bounded by the Redis timeout; a failed read leaves this worker's figures
        await send_json(send, 200, _encoder.encode({"providers": budgets.report()}))

    t.add("GET", PATH, serve)
