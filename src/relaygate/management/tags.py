"""LiteLLM's ``/tag/*`` routes: new, update, info, list, delete (``LiteLLM_TagTable``, the ``rg_tags`` rows).

A tag is any string a request carries (``x-litellm-tags``, body ``tags``, ``metadata.tags``) or its key
carries (``tags``); spend is counted per tag whether or not it has a row. A row makes it an entity: a
``description``, the ``models`` it is for (``model_info`` maps the stored models' ids among them to their
names), its ``spend`` (the spend sink adds to it) and a budget through ``budget_id``. The budget fields of
``/tag/new`` and ``/tag/update`` (``max_budget``, ``soft_budget``, ``budget_duration`` ...) create the
tag's budget row or update it, as LiteLLM's ``handle_budget_for_entity``; an existing ``budget_id`` may be
named instead (not both). A request carrying a tag over its ``max_budget`` is refused with
``budget_exceeded`` before any upstream call (``relaygate.budgets``).

Answers, as LiteLLM's: ``/tag/new`` and ``/tag/update`` ``{"message", "tag": {name, description, models,
model_info, created_at, updated_at, created_by, spend}}``; ``/tag/info`` a mapping of name to the tag (with
``litellm_budget_table`` when it has a budget); ``/tag/list`` the stored tags, then the tags only seen on
requests (from the spend counters), described as LiteLLM describes them; ``/tag/delete`` ``{"message"}``.

Roles: creating, updating and deleting tags is the proxy admin's (LiteLLM's 401 otherwise); the admin and
its viewer read every tag; an internal user lists the tags its own keys carry.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.http.routes import RouteTable
from relaygate.management.budgets import BUDGET_FIELDS, BudgetFields, budget_values, new_budget
from relaygate.management.common import (
    INTERNAL_USER,
    INTERNAL_USER_VIEWER,
    UNSET,
    Ctx,
    Gateway,
    admin_only,
    bad_request,
    given,
    not_found,
    record,
    refuse_route,
    route,
)
from relaygate.store import NotFound, Tag
from relaygate.store import tables as tbl
from relaygate.store.spend import entity_totals
from relaygate.store.transaction import Transaction as Tx

DYNAMIC = ("This is just a spend tag that was passed dynamically in a request. It does not control any LLM "
           "models.")
"""How LiteLLM's ``/tag/list`` describes a tag seen on requests that has no row."""


class TagFields(BudgetFields, kw_only=True):
    description: str | None = UNSET
    models: list[str] | None = UNSET
    budget_id: str | None = UNSET


class TagBody(TagFields, kw_only=True):
    name: str


class TagUpdateBody(TagBody, kw_only=True):
    spend: float | None = UNSET
    """Set the tag's spend (LiteLLM: e.g. 0 to clear it)."""


class TagNames(msgspec.Struct, kw_only=True):
    names: list[str]


class TagName(msgspec.Struct, kw_only=True):
    name: str


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/tag/new", new), ("POST", "/tag/update", update), ("POST", "/tag/info", info),
            ("GET", "/tag/list", list_tags), ("POST", "/tag/delete", delete)):
        route(t, gw, method, path, handler)


# -- helpers ------------------------------------------------------------------------------------------


def _name(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise bad_request(f"name must be a tag of 1-256 characters, got {value!r}", "name")
    return value


async def _model_info(ctx: Ctx, models: list[str]) -> dict[str, Any]:
    """The stored models among ``models`` (by id) mapped to their names (LiteLLM's ``model_info``)."""
    out: dict[str, Any] = {}
    for m in models:
        try:
            out[m] = (await ctx.store.get_model(m)).model_name
        except NotFound:
            continue
    return out


def _config(tag: Tag) -> dict[str, Any]:
    """A tag as LiteLLM's ``TagConfig``."""
    return {"name": tag.tag_name, "description": tag.description, "models": tag.models,
            "model_info": tag.model_info, "created_at": tag.created_at.isoformat() if tag.created_at else None,
            "updated_at": tag.updated_at.isoformat() if tag.updated_at else None, "created_by": tag.created_by,
            "spend": tag.spend}


async def _with_budget(ctx: Ctx, tag: Tag) -> dict[str, Any]:
    out = _config(tag)
    if tag.budget_id is not None:
        try:
            out["litellm_budget_table"] = record(await ctx.store.get_budget(tag.budget_id))
        except NotFound:
            pass
    return out


async def _budgets_changed(ctx: Ctx) -> None:
    """This worker's budget guard learns which tags have a budget now (the others within the change poll)."""
    budgets = getattr(ctx.gw, "budgets", None)
    refresh = getattr(budgets, "refresh_logged", None)
    if refresh is not None:
        await refresh()


def _fields(ctx: Ctx, body: TagFields) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tag's own fields sent and the budget fields sent (checked: a 400 names the field)."""
    sent = {k: v for k, v in given(body).items() if k not in BUDGET_FIELDS and k != "name"}
    budget = budget_values(ctx, body)
    if budget and sent.get("budget_id"):
        raise bad_request("Give either budget_id or budget fields (max_budget, ...), not both", "budget_id")
    spend = sent.get("spend")
    if spend is not None and spend < 0:
        raise bad_request(f"spend must be >= 0, got {spend}", "spend")
    return sent, budget


# -- routes -------------------------------------------------------------------------------------------


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(TagBody)
    name = _name(body.name)
    fields, budget = _fields(ctx, body)
    try:
        await ctx.store.get_tag(name)
        raise bad_request(f"Tag {name} already exists", "name")
    except NotFound:
        pass
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    models = fields.get("models") or []
    model_info = await _model_info(ctx, models)
    who = ctx.caller.user_id or "default_user_id"
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget:
            fields["budget_id"] = (await tx.insert(c, new_budget(ctx, budget))).budget_id
        tag = await tx.insert(c, Tag(tag_name=name, description=fields.get("description"), models=models,
                                     model_info=model_info, budget_id=fields.get("budget_id"), created_by=who,
                                     updated_by=who))
    if tag.budget_id is not None:
        await _budgets_changed(ctx)
    return {"message": f"Tag {name} created successfully", "tag": _config(tag)}


async def update(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(TagUpdateBody)
    name = body.name
    fields, budget = _fields(ctx, body)
    try:
        tag = await ctx.store.get_tag(name)
    except NotFound:
        raise not_found(f"Tag {name} not found", "name") from None
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    if "models" in fields:
        fields["models"] = fields["models"] or []
        fields["model_info"] = await _model_info(ctx, fields["models"])
    fields["updated_by"] = ctx.caller.user_id or "default_user_id"
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget:
            if tag.budget_id is None:
                fields["budget_id"] = (await tx.insert(c, new_budget(ctx, budget))).budget_id
            else:
                budget["updated_by"] = fields["updated_by"]
                await tx.update(c, tbl.BUDGETS, (tag.budget_id,), budget)
        tag = await tx.update(c, tbl.TAGS, (name,), fields)
    if budget or "budget_id" in fields:
        await _budgets_changed(ctx)
    if "spend" in fields:
        await ctx.spend_set("tag", name, fields["spend"] or 0.0)
    return {"message": f"Tag {name} updated successfully", "tag": _config(tag)}


async def info(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    body = await ctx.body(TagNames)
    if not body.names:
        raise bad_request(f"Specify the tags to look up. Passed in={body.names}", "names")
    names = list(dict.fromkeys(body.names))
    found = {t.tag_name: t for t in await ctx.store.get_tags(names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise not_found(f"Tags not found: {missing}", "names")
    return {n: await _with_budget(ctx, found[n]) for n in names}


async def list_tags(ctx: Ctx) -> Any:
    c = ctx.caller
    scope: set[str] | None = None
    if not c.reads_all:
        if c.role not in (INTERNAL_USER, INTERNAL_USER_VIEWER):
            refuse_route(ctx)
        scope = set(c.key.tags) if c.key is not None else set()
        if c.user_id is not None:
            for k in (await ctx.store.list_keys(user_id=c.user_id, page_size=1000)).items:
                scope.update(k.tags)
        if not scope:
            return []
    stored: list[Tag] = []
    if scope is None:
        page = 1
        while True:
            got = await ctx.store.list_tags(page=page, page_size=1000)
            stored += got.items
            if page >= got.total_pages:
                break
            page += 1
    else:
        stored = sorted(await ctx.store.get_tags(sorted(scope)), key=lambda t: t.tag_name)
    out = [await _with_budget(ctx, t) for t in stored]
    known = {t.tag_name for t in stored}
    seen = await entity_totals(ctx.store, "tag", sorted(scope) if scope is not None else None)
    out += [{"name": row["entity_id"], "description": DYNAMIC, "models": None, "created_at": None, "updated_at": None}
            for row in seen if row["entity_id"] not in known]
    return out


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(TagName)
    try:
        tag = await ctx.store.delete_tag(body.name)
    except NotFound:
        raise not_found(f"Tag {body.name} not found", "name") from None
    if tag.budget_id is not None:
        await _budgets_changed(ctx)
    return {"message": f"Tag {body.name} deleted successfully"}
