"""LiteLLM's cost tracking settings changed through the API: ``PATCH /config/cost_discount_config``,
``PATCH /config/cost_margin_config`` and ``PATCH /config/block_requests_for_models_without_pricing`` (its UI's
"Cost Tracking" page; the ``GET`` of each is ``gateway.config_view``'s).

As in LiteLLM, a change needs the database config (``general_settings.store_model_in_db``, or
``STORE_MODEL_IN_DB=True``; else a 400 saying so, where LiteLLM answers 500) and the proxy admin (its viewer
only reads). The body is the whole new value (LiteLLM replaces the setting, it does not merge): an object of
discounts, an object of margins, or ``{"enabled": true|false}``; it is checked as the config file's value is
at start-up (``config.cost_settings``: a 400 naming the entry), and, as LiteLLM refuses a provider name it
does not know, a name that is neither a provider relaygate serves (``config.env.PROVIDERS``), nor one the
model cost map prices (the shipped catalog and an override map), nor the provider of a configured deployment
is a 400 listing them in LiteLLM's words (a typo would otherwise match nothing, silently). Then it is
stored (``store.settings``) over the file's value, this worker serves it at once, and every other worker and
instance within a second (the store's change counter) or at once through Redis, as for stored models.
Answers: LiteLLM's ``{"message", "status": "success", "values"}``, and ``{"enabled"}``.

The model hub's lists are stored the same way: ``POST /model_group/make_public`` (``{"model_groups": [...]}``,
LiteLLM's ``public_model_groups``: the groups ``GET /public/model_hub`` shows) and ``POST
/model_hub/update_useful_links`` (``{"useful_links": {name: url | {url, index}}}``,
``public_model_groups_links``), the proxy admin only, answered as LiteLLM's ``{"message", <the list>,
"updated_by"}``. As in LiteLLM a group need not exist yet (a model added later is public once it does).
LiteLLM writes the links into its config file when it has no database config; relaygate never writes the
operator's file, so both need ``store_model_in_db`` too.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.config.cost_settings import check_stored, unknown_providers
from relaygate.config.env import PROVIDERS
from relaygate.http.body import read_body
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.management.models import enabled, stored_changed
from relaygate.store.settings import write_setting

__all__ = ["add_routes"]

_DONE = {"cost_discount_config": "Cost discount configuration updated successfully",
         "cost_margin_config": "Cost margin configuration updated successfully"}


_HUB = {"/model_group/make_public": ("public_model_groups", "model_groups", "public_model_groups",
                                     "Successfully updated public model groups"),
        "/model_hub/update_useful_links": ("public_model_groups_links", "useful_links", "useful_links",
                                           "Successfully updated useful links")}
"""The model hub's routes: path -> (setting, body field, answer field, message)."""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for name in ("cost_discount_config", "cost_margin_config", "block_requests_for_models_without_pricing"):
        route(t, gw, "PATCH", f"/config/{name}", _patch(name))
    for path in _HUB:
        route(t, gw, "POST", path, _hub(path))


async def _store(ctx: Ctx, name: str) -> Any:
    """The request's JSON body, once the caller may change ``name`` (the proxy admin, ``store_model_in_db``)."""
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) in the "
                          f"config to change {name} through the API", "store_model_in_db")
    raw = await read_body(ctx.receive, ctx.gw.runtime.body_limits)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("Invalid request body: expected a JSON object", "body") from None


def _hub(path: str) -> Any:
    name, field, answer, message = _HUB[path]

    async def handler(ctx: Ctx) -> Any:
        body = await _store(ctx, name)
        value = body.get(field) if isinstance(body, dict) else None
        try:
            check_stored(name, value)
        except ValueError as exc:
            raise bad_request(f"Invalid request body: {exc}", field) from None
        who = ctx.caller.user_id or "default_user_id"  # LiteLLM's user id of the master key
        await write_setting(ctx.store, name, value, who)
        await stored_changed(ctx)
        return {"message": message, answer: value, "updated_by": who}

    return handler


def known_providers(ctx: Ctx) -> frozenset[str]:
    """Provider names a discount or margin may name: relaygate's adapters, the cost map's providers (LiteLLM's
    ``litellm_provider`` values, an override map's included) and the configured deployments' providers."""
    rt = ctx.gw.runtime
    deployed: set[str] = {dep.provider for dep in rt.config.deployments}
    priced: frozenset[str] = rt.prices.catalog.providers
    return PROVIDERS | priced | deployed


def _patch(name: str) -> Any:
    async def handler(ctx: Ctx) -> Any:
        body = await _store(ctx, name)
        value = body
        if name == "block_requests_for_models_without_pricing":
            if not isinstance(body, dict) or "enabled" not in body:
                raise bad_request('Invalid request body: expected {"enabled": true} or {"enabled": false}', "enabled")
            value = body["enabled"]
        try:
            check_stored(name, value)
        except ValueError as exc:
            raise bad_request(str(exc), name) from None
        unknown = unknown_providers(name, value, known_providers(ctx))
        if unknown:
            raise bad_request(f"Invalid provider(s): {', '.join(unknown)}. Must be valid LiteLLM providers that "
                              "relaygate serves or prices (see the providers section of the README).", name)
        await write_setting(ctx.store, name, value, ctx.caller.user_id or "default_user_id")
        await stored_changed(ctx)  # this worker now, the others through the change counter (Redis at once)
        if name in _DONE:
            return {"message": _DONE[name], "status": "success", "values": value}
        return {"enabled": value}

    return handler
