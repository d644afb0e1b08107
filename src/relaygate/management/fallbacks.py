"""LiteLLM's fallback management routes: ``POST /fallback``, ``GET /fallback/{model}``, ``DELETE /fallback/{model}``.

What it owns: a model group's fallbacks changed through the API, kept in the database config (``rg_config``,
setting ``router_settings``: LiteLLM's ``LiteLLM_Config`` row of that name, holding only the fallback lists the
API wrote) and served over the config file's, by this worker at once and by every other worker and instance
within a second (the store's change counter), as the other stored settings are (``management.cost_settings``).

- ``POST /fallback`` ``{"model", "fallback_models": [...], "fallback_type": "general" | "context_window" |
  "content_policy"}`` (proxy admin): sets that model group's rule of that list (``router_settings.fallbacks``,
  ``context_window_fallbacks`` or ``content_policy_fallbacks``), replacing its rule or adding one. The list
  edited is the stored one once the API has written it, else the config file's (copied, so the file's other
  rules stay). As LiteLLM: the model and every fallback must be a model group (or alias) the router serves
  (404 ``Model '<m>' not found in router`` / 400 ``Invalid fallback models: [...]``), a model is not its own
  fallback, ``fallback_models`` is non-empty without duplicates, and the database config must be on
  (``store_model_in_db``, else LiteLLM's 400). Answer ``{"model", "fallback_models", "fallback_type",
  "message"}``.
- ``GET /fallback/{model}?fallback_type=`` (proxy admin and its viewer): the fallbacks the gateway applies to
  that group now (its rule; for ``general`` the ``default_fallbacks`` without one, as the router tries them),
  404 ``No <type> fallbacks configured for model '<m>'`` when there are none.
- ``DELETE /fallback/{model}?fallback_type=`` (proxy admin): removes the group's rule from that list, 404 as
  above when it has none.

The stored lists are served over the file's by ``config.stored_router``.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from relaygate.config.stored_router import KEYS, SETTING, Rules, fallbacks_of, rules_of
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, not_found, route
from relaygate.management.models import enabled, stored_changed
from relaygate.store.settings import read_settings, write_setting

__all__ = ["add_routes"]

log = logging.getLogger("relaygate")

_NO_DB = ("Database storage not enabled. Set 'STORE_MODEL_IN_DB=True' in your environment to use this feature.")


class FallbackBody(msgspec.Struct, forbid_unknown_fields=False):
    model: str
    fallback_models: list[str]
    fallback_type: str = "general"


def _kind(ctx: Ctx, value: str | None) -> str:
    kind = value or "general"
    if kind not in KEYS:
        raise bad_request(f"fallback_type must be one of {', '.join(KEYS)}, got {kind!r}", "fallback_type")
    return kind


async def _stored(ctx: Ctx) -> dict[str, Any]:
    saved = (await read_settings(ctx.store)).get(SETTING)
    return dict(saved) if isinstance(saved, dict) else {}


def _editable(ctx: Ctx, saved: dict[str, Any], key: str) -> Rules:
    """The list an edit starts from: the stored one when the API wrote it, else a copy of the served one."""
    rules = rules_of(saved.get(key)) if key in saved else None
    return [dict(r) for r in (rules if rules is not None else getattr(ctx.gw.runtime.config.router, key))]


def _need_db(ctx: Ctx) -> None:
    if not enabled(ctx.gw.runtime.config):
        raise bad_request(_NO_DB, "store_model_in_db")


async def _write(ctx: Ctx, saved: dict[str, Any], key: str, rules: Rules) -> None:
    saved[key] = rules
    await write_setting(ctx.store, SETTING, saved, ctx.caller.user_id or "default_user_id")
    await stored_changed(ctx)


async def create(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(FallbackBody)
    model = body.model.strip()
    if not model:
        raise bad_request("model must be a non-empty string", "model")
    if not body.fallback_models:
        raise bad_request("fallback_models must contain at least one model", "fallback_models")
    if len(set(body.fallback_models)) != len(body.fallback_models):
        raise bad_request("fallback_models must not contain duplicates", "fallback_models")
    kind = _kind(ctx, body.fallback_type)
    known = set(ctx.gw.runtime.router.public_models())
    if model not in known:
        raise not_found(f"Model '{model}' not found in router. Available models: {sorted(known)}", "model")
    invalid = [m for m in body.fallback_models if m not in known]
    if invalid:
        raise bad_request(f"Invalid fallback models: {invalid}. Available models: {sorted(known)}",
                          "fallback_models")
    if model in body.fallback_models:
        raise bad_request(f"Model '{model}' cannot be its own fallback", "fallback_models")
    _need_db(ctx)
    key = KEYS[kind]
    saved = await _stored(ctx)
    rules = _editable(ctx, saved, key)
    updated = False
    for i, rule in enumerate(rules):
        if model in rule:
            rules[i] = {model: list(body.fallback_models)}
            updated = True
            break
    if not updated:
        rules.append({model: list(body.fallback_models)})
    await _write(ctx, saved, key, rules)
    log.info("fallbacks of %s (%s) set to %s", ascii(model), kind, ascii(body.fallback_models))
    return {"model": model, "fallback_models": body.fallback_models, "fallback_type": kind,
            "message": f"Fallback configuration {'updated' if updated else 'created'} successfully"}


async def get(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    model = ctx.params["model"]
    kind = _kind(ctx, ctx.query.get("fallback_type"))
    found = fallbacks_of(ctx.gw.runtime.config, model, kind)
    if not found:
        raise not_found(f"No {kind} fallbacks configured for model '{model}'", "model")
    return {"model": model, "fallback_models": found, "fallback_type": kind}


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    model = ctx.params["model"]
    kind = _kind(ctx, ctx.query.get("fallback_type"))
    _need_db(ctx)
    key = KEYS[kind]
    saved = await _stored(ctx)
    rules = _editable(ctx, saved, key)
    kept = [r for r in rules if model not in r]
    if len(kept) == len(rules):
        raise not_found(f"No {kind} fallbacks configured for model '{model}'", "model")
    await _write(ctx, saved, key, kept)
    log.info("fallbacks of %s (%s) deleted", ascii(model), kind)
    return {"model": model, "fallback_type": kind, "message": "Fallback configuration deleted successfully"}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/fallback", create)
    route(t, gw, "GET", "/fallback/{model:path}", get)
    route(t, gw, "DELETE", "/fallback/{model:path}", delete)
