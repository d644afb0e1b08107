"""LiteLLM's cost estimator: ``POST /cost/estimate``, what a request of given token counts costs, per request,
per day and per month, priced exactly as the gateway prices an answer.

Request (LiteLLM's ``CostEstimateRequest``): ``model`` (a model group or alias, else a model of the cost
map), ``input_tokens`` and ``output_tokens`` (required, whole numbers >= 0), ``cache_read_input_tokens``,
``cache_creation_input_tokens`` (both counted within ``input_tokens``; together at most it),
``reasoning_tokens`` (within ``output_tokens``), ``num_requests_per_day`` and ``num_requests_per_month``
(optional). A body that breaks these is a 400 naming the field (LiteLLM's pydantic model answers 422).

Answer (LiteLLM's ``CostEstimateResponse``): the request's fields echoed; per request ``cost_per_request``
(what is charged: the deployment's discount and margin applied, ``cost.adjust``), ``input_cost_per_request``
and ``output_cost_per_request`` at list price (before discount and margin; the cache-read and cache-write
lines are shares of the input cost, the reasoning line a share of the output cost, as LiteLLM splits them),
``margin_cost_per_request``, ``cache_read_cost_per_request``, ``cache_creation_cost_per_request``,
``reasoning_cost_per_request``; the same lines times ``num_requests_per_day`` as ``daily_*`` and times
``num_requests_per_month`` as ``monthly_*`` (null when not given, or 0); the per-token rates billed
(``input_cost_per_token``, ``output_cost_per_token``, ``cache_read_input_token_cost``,
``cache_creation_input_token_cost``, ``output_cost_per_reasoning_token``: the prompt size's tier of a
tiered model); and ``provider``.

Which prices: a model group's first deployment (its own ``input_cost_per_token`` ... or the cost map's
entry for its upstream model), else the cost map's model of that name at list price, as
``/spend/calculate``; a model nobody priced is a 404 naming it (LiteLLM's status). Amounts are summed in
pico-USD and turned to USD once, so a month of a cheap model is not the sum of its rounding errors.
Any key may ask, as LiteLLM's route takes any key.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.cost import usd
from relaygate.cost.prices import PICO
from relaygate.http.body import read_body
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, bad_request, not_found, route
from relaygate.management.spend_views import pricing

MAX_TOKENS = 10**12
"""Token counts accepted at most (a request of a trillion tokens is no estimate anybody needs)."""
MAX_REQUESTS = 10**12
_LINES = ("cost", "input_cost", "output_cost", "margin_cost", "cache_read_cost", "cache_creation_cost",
          "reasoning_cost")


class EstimateRequest(msgspec.Struct, forbid_unknown_fields=False):
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    num_requests_per_day: int | None = None
    num_requests_per_month: int | None = None


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/cost/estimate", cost_estimate, store_optional=True)


def _checked(raw: bytes) -> EstimateRequest:
    try:
        req = msgspec.json.decode(raw, type=EstimateRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_request(f"Invalid request body: {exc}", "body") from None
    if not req.model:
        raise bad_request("model: expected a model name", "model")
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "reasoning_tokens", "num_requests_per_day", "num_requests_per_month"):
        value = getattr(req, name)
        bound = MAX_REQUESTS if name.startswith("num_") else MAX_TOKENS
        if value is not None and not 0 <= value <= bound:
            raise bad_request(f"{name}: expected a whole number from 0 to {bound:,}, got {value}", name)
    if req.cache_read_input_tokens + req.cache_creation_input_tokens > req.input_tokens:
        raise bad_request("cache_read_input_tokens plus cache_creation_input_tokens cannot exceed input_tokens",
                          "cache_read_input_tokens")
    if req.reasoning_tokens > req.output_tokens:
        raise bad_request("reasoning_tokens cannot exceed output_tokens", "reasoning_tokens")
    return req


async def cost_estimate(ctx: Ctx) -> Any:
    req = _checked(await read_body(ctx.receive, ctx.gw.runtime.body_limits))
    try:
        table, charge = pricing(ctx, req.model)
    except GatewayError as exc:
        if exc.status != 400:
            raise
        raise not_found(f"Could not calculate cost for model '{req.model}': no price is known for it (set "
                        "input_cost_per_token and output_cost_per_token on its deployment, or add it to a "
                        "cost map)", "model") from None
    inp, out = req.input_tokens, req.output_tokens
    read, write, reasoning = req.cache_read_input_tokens, req.cache_creation_input_tokens, req.reasoning_tokens
    p = table.rates(inp)
    read_cost = read * p.cache_read
    write_cost = write * p.cache_write
    reasoning_cost = reasoning * p.reasoning
    input_cost = (inp - read - write) * p.input + read_cost + write_cost
    output_cost = (out - reasoning) * p.output + reasoning_cost
    total, parts = charge(input_cost + output_cost)
    lines = dict(zip(_LINES, (total, input_cost, output_cost, parts[2] if parts is not None else 0, read_cost,
                              write_cost, reasoning_cost), strict=True))
    answer: dict[str, Any] = {
        "model": req.model, "input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write, "reasoning_tokens": reasoning,
        "num_requests_per_day": req.num_requests_per_day, "num_requests_per_month": req.num_requests_per_month,
        **{f"{k}_per_request": usd(v) for k, v in lines.items()}}
    for period, n in (("daily", req.num_requests_per_day), ("monthly", req.num_requests_per_month)):
        answer.update({f"{period}_{k}": usd(v * n) if n else None for k, v in lines.items()})
    answer.update({"input_cost_per_token": p.input / PICO, "output_cost_per_token": p.output / PICO,
                   "cache_read_input_token_cost": p.cache_read / PICO,
                   "cache_creation_input_token_cost": p.cache_write / PICO,
                   "output_cost_per_reasoning_token": p.reasoning / PICO, "provider": table.provider or None})
    return answer


__all__ = ["EstimateRequest", "add_routes", "cost_estimate"]
