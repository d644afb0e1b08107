"""LiteLLM's ``litellm_settings.block_requests_for_models_without_pricing``: refuse an LLM call the gateway
could not price.

When the setting is on, the runtime has :class:`UnpricedGuard` among its ``before_route`` hooks (off, it is not
there and costs nothing). A request whose model group has no deployment with a price — neither its own
(``input_cost_per_token`` ... on the deployment or its ``model_info``, zero included: a price set to 0 is a
decision, as LiteLLM counts it) nor the cost map's for its upstream model (or ``base_model``) — is refused
before routing with LiteLLM's 403: type ``model_cost_map_missing``, param ``model``, and its message naming the
model the client asked for. A group is priced when any of its deployments is, as LiteLLM judges a group;
the answer is kept per group for the snapshot's life (a reload or a stored model makes a new snapshot).

Differences from LiteLLM: a model served through a wildcard deployment (``openai/*``) is judged by the
concrete model's price, so an unpriced model behind a wildcard is refused too (LiteLLM checks only groups
named in its model list and lets every wildcard model through); fallbacks to another group are not checked
again (LiteLLM skips an unpriced fallback only on its model-budget path).
"""

from __future__ import annotations

from typing import Any

from relaygate.core.errors import GatewayError

__all__ = ["UnpricedGuard", "blocked_message"]

MAX_GROUPS = 4096
"""Groups whose answer is kept at most (wildcard models can name many); past it, it starts again empty."""


def blocked_message(model: str) -> str:
    """LiteLLM's wording (``auth_checks._unpriced_models_block_message``) for one model."""
    return (f"Model '{model}' has no pricing in the cost map, so litellm cannot price the request. Requests for "
            "unpriced models are blocked because 'block_requests_for_models_without_pricing' is enabled. Add "
            "pricing (input_cost_per_token/output_cost_per_token) to allow the request.")


class UnpricedGuard:
    """The ``before_route`` hook (see the module docstring); ``prices``: the snapshot's ``cost.Pricer``."""

    __slots__ = ("_priced", "prices")

    def __init__(self, prices: Any) -> None:
        self.prices = prices
        self._priced: dict[Any, bool] = {}
        """Model group (by identity: the router's groups, and the wildcard groups it keeps) -> priced."""

    def __call__(self, ex: Any) -> None:
        group = ex.group
        if group is None:
            return
        priced = self._priced.get(group)
        if priced is None:
            priced = any(self.prices.priced(t.dep) for t in group.targets)
            if len(self._priced) >= MAX_GROUPS:
                self._priced.clear()
            self._priced[group] = priced
        if not priced:
            raise GatewayError(blocked_message(ex.model), status=403, type="model_cost_map_missing", param="model")
