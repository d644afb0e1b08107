"""LiteLLM's general settings in the database: ``GET /config/list``, ``GET /config/field/info``, ``POST
/config/field/update``, ``POST /config/field/delete`` and ``POST /config/update`` (its admin UI's "General
Settings" page and its scripts).

The rules (which fields, the file owning what it sets, the whole config checked again) are
``config.stored_general``'s. As for the stored models and the cost settings, a write needs the database config
(``general_settings.store_model_in_db`` or ``STORE_MODEL_IN_DB=True``; else a 400 saying so) and the proxy
admin; the two reads are the admin's and its viewer's. A write is checked by translating the config file with
the new fields in it (a 400 with the loader's message when that fails: LiteLLM checks the value's type only),
stored in ``rg_config`` (the store's change counter moves), served by this worker at once and by every other
worker and instance within a second (at once through Redis).

Answers, LiteLLM's: ``/config/field/update`` and ``/config/field/delete`` the stored row
(``{"param_name": "general_settings", "param_value": {...}}``), ``/config/update`` ``{"message": "Config updated
successfully"}``, ``/config/field/info`` ``{"field_name", "field_value", "source", "editable"}`` (``source``:
``config`` for the file's value, ``db`` for the stored one; a field neither sets is LiteLLM's 400 ``Field
name=<name> is not set``), ``/config/list`` one ``ConfigList`` object per field the database may set
(``field_name``, ``field_type``, ``field_description``, ``field_value`` — the value served —, ``stored_in_db`` —
true when stored, false when the file sets it, null otherwise —, ``field_default_value``, ``premium_field``,
``nested_fields``, ``field_options``, ``field_tab``, ``source`` — ``config``, ``db`` or ``unset`` —,
``editable`` — false for a field the file sets). Values are shown as written, secrets masked (``config.masking``).

``/config/update`` also stores ``router_settings`` (``config.stored_general.ROUTER_FIELDS`` under the same
rules, and the fallback lists as ``POST /fallback`` stores them, over the file's). Where relaygate differs,
deliberately: ``litellm_settings``, ``environment_variables`` and ``model_list`` are a 400 naming the way
relaygate offers (``/model/new`` stores models; the rest is the config file's), where LiteLLM stores them whether
or not anything then reads them.
"""

from __future__ import annotations

from typing import Any

from relaygate.config.loader import ConfigError
from relaygate.config.masking import mask
from relaygate.config.stored_general import (
    FIELDS,
    LITELLM_FIELDS,
    ROUTER_FIELDS,
    ROUTER_LISTS,
    ROUTER_SECTION,
    SECTION,
    file_keys,
    overlay,
    refusal,
    router_refusal,
    stored_row,
)
from relaygate.config.stored_router import rules_of
from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.management.models import enabled, stored_changed
from relaygate.store.settings import read_settings, write_setting

__all__ = ["add_routes"]

_ELSEWHERE = {
    "litellm_settings": "litellm_settings are the config file's (cost settings: PATCH /config/cost_discount_config "
                        "and /config/cost_margin_config; cache settings: POST /cache/settings)",
    "environment_variables": "environment variables are the process's own: set them where the gateway is started",
    "model_list": "models are stored through POST /model/new",
}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/config/list", config_list)
    route(t, gw, "GET", "/config/field/info", field_info)
    route(t, gw, "POST", "/config/field/update", field_update)
    route(t, gw, "POST", "/config/field/delete", field_delete)
    route(t, gw, "POST", "/config/update", config_update)


# -- reads ----------------------------------------------------------------------------------------------


def _config_type(value: Any) -> None:
    if value != SECTION:
        raise bad_request("config_type: expected 'general_settings' (the only type LiteLLM's config routes take)",
                          "config_type")


async def _stored(ctx: Ctx) -> dict[str, Any]:
    return stored_row(await read_settings(ctx.store))


def _file_section(ctx: Ctx) -> dict[str, Any]:
    doc = ctx.gw.runtime.config.document
    section = doc.get(SECTION) if isinstance(doc, dict) else None
    return section if isinstance(section, dict) else {}


def _shown(name: str, value: Any) -> Any:
    """``value`` as shown: masked by its field's name and its own form (``config.masking``)."""
    return mask({name: value})[name]


async def config_list(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    _config_type(ctx.query.get("config_type"))
    config = ctx.gw.runtime.config
    owned, stored, section = file_keys(config), await _stored(ctx), _file_section(ctx)
    out = []
    for name, (kind, default, text) in FIELDS.items():
        if name in owned:
            value, source, in_db = section[name], "config", False
        elif name in stored and stored[name] is not None:
            value, source, in_db = stored[name], "db", True
        else:
            value, source, in_db = None, "unset", None
        out.append({"field_name": name, "field_type": kind, "field_description": text,
                    "field_value": _shown(name, value),
                    "stored_in_db": in_db, "field_default_value": default, "premium_field": False,
                    "nested_fields": None, "field_options": None, "field_tab": None, "source": source,
                    "editable": refusal(name, config) is None})
    return out


async def field_info(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    name = ctx.query.get("field_name") or ""
    if name not in LITELLM_FIELDS and name not in FIELDS:
        raise bad_request(f"Invalid field={name} passed in.", "field_name")
    config = ctx.gw.runtime.config
    if name in file_keys(config):
        value, source = _file_section(ctx)[name], "config"
    else:
        stored = await _stored(ctx)
        if stored.get(name) is None:
            raise bad_request(f"Field name={name} is not set", "field_name")
        value, source = stored[name], "db"
    return {"field_name": name, "field_value": _shown(name, value), "source": source,
            "editable": refusal(name, config) is None}


# -- writes ---------------------------------------------------------------------------------------------


async def _body(ctx: Ctx) -> dict[str, Any]:
    """The request's JSON object, once the caller may write (the proxy admin, ``store_model_in_db``)."""
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) in the "
                          "config to change general settings through the API", "store_model_in_db")
    return await ctx.json_object("body")


def _field_name(body: dict[str, Any]) -> str:
    name = body.get("field_name")
    if not isinstance(name, str) or not name:
        raise bad_request("field_name: expected the name of a general_settings field", "field_name")
    return name


def _check(ctx: Ctx, general: dict[str, Any], router: dict[str, Any]) -> None:
    """The config file with these stored rows over it loads and checks (a 400 with the loader's message)."""
    config = ctx.gw.runtime.config
    fields = {k: v for k, v in general.items() if k in FIELDS and v is not None}
    routed = {k: v for k, v in router.items() if k in ROUTER_FIELDS and v is not None}
    try:
        overlay(config, fields, routed)
    except ConfigError as exc:
        raise bad_request(f"Invalid settings: {_where(exc)}{exc.detail}", ROUTER_SECTION) from None


async def _save(ctx: Ctx, row: dict[str, Any]) -> dict[str, Any]:
    """Check ``row`` (the whole stored section) against the config file, store it and serve it."""
    config = ctx.gw.runtime.config
    fields = {k: v for k, v in row.items() if k in FIELDS and v is not None}
    served = fields.get("completion_model")
    if isinstance(served, str):  # every chat call would fail on a name nobody serves
        try:
            ctx.gw.runtime.router.resolve(served)
        except GatewayError:
            raise bad_request(f"completion_model: no model group named {served!r} is served", "completion_model") \
                from None
    if fields:
        try:
            overlay(config, fields)
        except ConfigError as exc:
            raise bad_request(f"Invalid general_settings: {_where(exc)}{exc.detail}", SECTION) from None
    await write_setting(ctx.store, SECTION, row, ctx.caller.user_id or "default_user_id")
    await stored_changed(ctx)
    return {"param_name": SECTION, "param_value": row}


def _where(exc: ConfigError) -> str:
    return f"{exc.field}: " if exc.field and exc.field != SECTION else ""


def _refuse(ctx: Ctx, names: list[str]) -> None:
    config = ctx.gw.runtime.config
    for name in names:
        why = refusal(name, config)
        if why is not None:
            raise bad_request(why, name)


async def field_update(ctx: Ctx) -> Any:
    body = await _body(ctx)
    _config_type(body.get("config_type"))
    name = _field_name(body)
    _refuse(ctx, [name])
    if "field_value" not in body:
        raise bad_request("field_value: expected the field's new value", "field_value")
    row = await _stored(ctx)
    if body["field_value"] is None:
        row.pop(name, None)
    else:
        row[name] = body["field_value"]
    return await _save(ctx, row)


async def field_delete(ctx: Ctx) -> Any:
    body = await _body(ctx)
    _config_type(body.get("config_type"))
    name = _field_name(body)
    if name not in LITELLM_FIELDS and name not in FIELDS:
        raise bad_request(f"Invalid field={name} passed in.", "field_name")
    if name in file_keys(ctx.gw.runtime.config):
        _refuse(ctx, [name])
    row = await _stored(ctx)
    if name not in row:
        raise bad_request(f"Field name={name} not in config", "field_name")
    del row[name]
    return await _save(ctx, row)


async def config_update(ctx: Ctx) -> Any:
    body = await _body(ctx)
    for section, why in _ELSEWHERE.items():
        if body.get(section) is not None:
            raise bad_request(f"{section} cannot be changed through /config/update on relaygate: {why}", section)
    general, router = body.get(SECTION), body.get(ROUTER_SECTION)
    for name, value in ((SECTION, general), (ROUTER_SECTION, router)):
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"{name}: expected an object of fields", name)
    changes = {k: v for k, v in (general or {}).items() if v is not None}  # LiteLLM drops nulls (exclude_none)
    routed = {k: v for k, v in (router or {}).items() if v is not None}
    _refuse(ctx, list(changes))
    refused = router_refusal(list(routed), ctx.gw.runtime.config)
    if refused is not None:
        raise bad_request(refused, ROUTER_SECTION)
    for name in ROUTER_LISTS.intersection(routed):
        if rules_of(routed[name]) is None:
            raise bad_request(f"router_settings.{name}: expected a list of {{model group: [fallbacks]}}", name)
    if routed:
        settings = await read_settings(ctx.store)
        row = stored_row(settings, ROUTER_SECTION)
        row.update(routed)
        general_row = stored_row(settings)
        general_row.update(changes)
        _check(ctx, general_row, row)
        await write_setting(ctx.store, ROUTER_SECTION, row, ctx.caller.user_id or "default_user_id")
    if changes:
        row = await _stored(ctx)
        row.update(changes)
        await _save(ctx, row)
    elif routed:
        await stored_changed(ctx)
    return {"message": "Config updated successfully"}
