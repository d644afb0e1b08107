"""LiteLLM's model access group routes: ``/access_group/new``, ``/access_group/list``,
``/access_group/{access_group}/info``, ``/access_group/{access_group}/update`` (``PUT``) and
``/access_group/{access_group}/delete`` (``DELETE``).

A model access group is a name in deployments' ``model_info.access_groups``; a key or team whose ``models``
names the group may call every model of it (``auth.keys``). As LiteLLM's, these routes manage the groups of
the models stored in the database (``management.models``; ``store_model_in_db``): a group exists while some
stored deployment carries it, and the config file's deployments are neither listed nor changed (their groups
are the file's).

- ``POST /access_group/new`` ``{"access_group", "model_names"}`` (every stored deployment of those model
  names) or ``"model_ids"`` (those deployments only): adds the group to them; a 409 when it exists, a 400 for
  a model name no stored deployment has or an unknown id. Answer ``{access_group, model_names, model_ids,
  models_updated}``.
- ``GET /access_group/list``: ``{"access_groups": [{access_group, model_names, deployment_count, spend,
  budget}]}``, sorted by name (``spend`` and ``budget`` null: relaygate keeps no budget per access group).
- ``GET /access_group/{access_group}/info``: one of them, 404 when no stored deployment carries it.
- ``PUT /access_group/{access_group}/update`` with ``model_names`` or ``model_ids``: the group is on exactly
  the deployments named afterwards (added where missing, taken off every other stored deployment); 404 for an
  unknown group.
- ``DELETE /access_group/{access_group}/delete``: the group taken off every stored deployment; answer
  ``{access_group, models_updated, message}``.

Every write goes through the stored rows and then ``Gateway.models_changed``, so this worker and the others
serve the new groups as they serve any change of stored models, and keys naming a group gain or lose its
models at once. The proxy admin writes; the admin and its viewer read.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, not_found, route
from relaygate.management.models import enabled, stored_changed, stored_models
from relaygate.store import ModelRow

__all__ = ["add_routes"]


class NewGroupBody(msgspec.Struct, kw_only=True):
    access_group: str
    model_names: list[str] | None = None
    model_ids: list[str] | None = None


class UpdateGroupBody(msgspec.Struct, kw_only=True):
    model_names: list[str] | None = None
    model_ids: list[str] | None = None


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/access_group/new", new), ("GET", "/access_group/list", list_groups),
            ("GET", "/access_group/{access_group}/info", info),
            ("PUT", "/access_group/{access_group}/update", update),
            ("DELETE", "/access_group/{access_group}/delete", delete)):
        route(t, gw, method, path, handler)


def _writer(ctx: Ctx) -> None:
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) in the config: "
                          "access groups are managed on the models stored in the database", "store_model_in_db")


async def _rows(ctx: Ctx) -> list[ModelRow]:
    return await stored_models(ctx.store)


def _groups_of(row: ModelRow) -> list[str]:
    raw = row.model_info.get("access_groups")
    return [g for g in raw if isinstance(g, str)] if isinstance(raw, list) else []


def _groups(rows: list[ModelRow]) -> dict[str, dict[str, Any]]:
    """Each group the stored deployments carry, as LiteLLM's ``AccessGroupInfo``."""
    names: dict[str, list[str]] = {}
    for row in rows:
        for g in dict.fromkeys(_groups_of(row)):
            names.setdefault(g, []).append(row.model_name)
    return {g: {"access_group": g, "model_names": sorted(set(n)), "deployment_count": len(n), "spend": None,
                "budget": None} for g, n in sorted(names.items())}


def _selected(rows: list[ModelRow], names: list[str] | None, ids: list[str] | None) -> list[ModelRow]:
    """The stored deployments a body names: by id when it gives ids, else every one of its model names (400
    for a name or an id no stored deployment has, as LiteLLM's)."""
    if ids:
        known = {r.model_id: r for r in rows}
        for i in ids:
            if i not in known:
                raise bad_request(f"Deployment with model_id '{i}' not found in Database.", "model_ids")
        return [known[i] for i in dict.fromkeys(ids)]
    wanted = list(dict.fromkeys(names or ()))
    have = {r.model_name for r in rows}
    for n in wanted:
        if n not in have:
            raise bad_request(f"Can't find model '{n}' in Database. Access group management is only supported for "
                              "database models.", "model_names")
    return [r for r in rows if r.model_name in set(wanted)]


def _named(names: list[str] | None, ids: list[str] | None) -> None:
    for field, value in (("model_names", names), ("model_ids", ids)):
        if value is not None and (not isinstance(value, list) or any(not isinstance(v, str) or not v for v in value)):
            raise bad_request(f"{field}: expected a list of non-empty strings", field)
    if not names and not ids:
        raise bad_request("Either model_names or model_ids must be provided and non-empty", "model_names")


async def _write(ctx: Ctx, row: ModelRow, groups: list[str]) -> None:
    info = {**row.model_info, "access_groups": groups}
    await ctx.store.update_model(row.model_id, model_info=info, updated_by=ctx.caller.user_id or "default_user_id")


async def new(ctx: Ctx) -> Any:
    _writer(ctx)
    body = await ctx.body(NewGroupBody)
    group = body.access_group.strip() if isinstance(body.access_group, str) else ""
    if not group:
        raise bad_request("access_group is required and cannot be empty", "access_group")
    _named(body.model_names, body.model_ids)
    rows = await _rows(ctx)
    if group in _groups(rows):
        raise GatewayError(f"Access group '{group}' already exists. Use PUT /access_group/{group}/update to modify "
                           "it.", status=409, type="bad_request_error", param="access_group", code="409")
    updated = 0
    for row in _selected(rows, body.model_names, body.model_ids):
        if group not in _groups_of(row):
            await _write(ctx, row, [*_groups_of(row), group])
            updated += 1
    await stored_changed(ctx)
    return {"access_group": group, "model_names": body.model_names, "model_ids": body.model_ids,
            "models_updated": updated}


async def list_groups(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return {"access_groups": list(_groups(await _rows(ctx)).values())}


async def _existing(ctx: Ctx, rows: list[ModelRow]) -> dict[str, Any]:
    group = ctx.params["access_group"]
    found = _groups(rows).get(group)
    if found is None:
        raise not_found(f"Access group '{group}' not found", "access_group")
    return found


async def info(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return await _existing(ctx, await _rows(ctx))


async def update(ctx: Ctx) -> Any:
    _writer(ctx)
    body = await ctx.body(UpdateGroupBody)
    _named(body.model_names, body.model_ids)
    rows = await _rows(ctx)
    group = (await _existing(ctx, rows))["access_group"]
    chosen = {r.model_id for r in _selected(rows, body.model_names, body.model_ids)}
    for row in rows:
        has = group in _groups_of(row)
        if row.model_id in chosen and not has:
            await _write(ctx, row, [*_groups_of(row), group])
        elif row.model_id not in chosen and has:
            await _write(ctx, row, [g for g in _groups_of(row) if g != group])
    await stored_changed(ctx)
    return {"access_group": group, "model_names": body.model_names, "model_ids": body.model_ids,
            "models_updated": len(chosen)}


async def delete(ctx: Ctx) -> Any:
    _writer(ctx)
    rows = await _rows(ctx)
    group = (await _existing(ctx, rows))["access_group"]
    updated = 0
    for row in rows:
        if group in _groups_of(row):
            await _write(ctx, row, [g for g in _groups_of(row) if g != group])
            updated += 1
    await stored_changed(ctx)
    return {"access_group": group, "models_updated": updated,
            "message": f"Access group '{group}' deleted successfully"}
