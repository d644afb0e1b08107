"""LiteLLM's ``/budget/*`` routes: new, update, info, list, delete (reusable budgets, ``LiteLLM_BudgetTable``).

A budget is a named set of limits (``max_budget``, ``soft_budget``, ``max_parallel_requests``,
``tpm_limit``, ``rpm_limit``, ``model_max_budget``, ``budget_duration``) that keys, organizations,
customers and team or organization members point to by ``budget_id``. This module stores them; enforcing
them is the budget stage's (the next issue).

Roles, as LiteLLM's: the proxy admin creates, updates and deletes budgets; the admin and its viewer read
them (``/budget/info``, ``/budget/list``); everyone else gets LiteLLM's 401. A budget still referenced by
a key, organization, customer or membership is not deleted (400 naming who uses it), so no row is left
pointing at nothing.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

import msgspec

from relaygate.http.routes import RouteTable
from relaygate.management.common import (
    UNSET,
    Ctx,
    Gateway,
    admin_only,
    bad_request,
    budget_reset,
    every_page,
    given,
    record,
    route,
)
from relaygate.management.key_extras import BUDGET_NOT_KEPT
from relaygate.store import Budget, NotFound
from relaygate.store import tables as tbl
from relaygate.store.transaction import Transaction as Tx

BUDGET_FIELDS = ("max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit", "model_max_budget",
                 "budget_duration", "budget_reset_at")
"""The fields of LiteLLM's ``BudgetNewRequest`` besides ``budget_id`` (also accepted by organizations and
customers, which keep them in a budget row)."""

_USERS = (("rg_keys", "token", "key"), ("rg_organizations", "organization_id", "organization"),
          ("rg_customers", "user_id", "customer"), ("rg_team_members", "user_id", "team member"),
          ("rg_organization_members", "user_id", "organization member"), ("rg_tags", "tag_name", "tag"))


class BudgetFields(msgspec.Struct, kw_only=True):
    max_budget: float | None = UNSET
    soft_budget: float | None = UNSET
    max_parallel_requests: int | None = UNSET
    tpm_limit: int | None = UNSET
    rpm_limit: int | None = UNSET
    model_max_budget: dict[str, dict[str, Any]] | None = UNSET
    budget_duration: str | None = UNSET
    budget_reset_at: datetime | None = UNSET


class BudgetBody(BudgetFields, kw_only=True):
    budget_id: str | None = UNSET


class BudgetIds(msgspec.Struct, kw_only=True):
    budgets: list[str]


class BudgetDelete(msgspec.Struct, kw_only=True):
    id: str


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/budget/new", new), ("POST", "/budget/update", update), ("POST", "/budget/info", info),
            ("GET", "/budget/list", list_budgets), ("POST", "/budget/delete", delete),
            ("GET", "/budget/settings", settings)):
        route(t, gw, method, path, handler)


def budget_values(ctx: Ctx, body: msgspec.Struct) -> dict[str, Any]:
    """The budget fields ``body`` sent, checked (LiteLLM's rules): amounts and limits finite and >= 0,
    ``model_max_budget`` entries with a numeric ``max_budget``, a valid ``budget_duration`` (which sets
    ``budget_reset_at`` when that is not given). A 400 names the field."""
    sent = {k: v for k, v in given(body).items() if k in BUDGET_FIELDS}
    for name in ("max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit"):
        value = sent.get(name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise bad_request(f"{name} must be a non-negative finite number. Received: {value}", name)
    for model, limits in (sent.get("model_max_budget") or {}).items():
        cap = limits.get("max_budget")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 0):
            raise bad_request(f"model_max_budget[{model!r}].max_budget must be a number >= 0, got {cap!r}",
                              "model_max_budget")
    duration = sent.get("budget_duration")
    if duration:
        reset = budget_reset(ctx, duration)
        if sent.get("budget_reset_at") is None:
            sent["budget_reset_at"] = reset
    return sent


def new_budget(ctx: Ctx, values: dict[str, Any], budget_id: str | None = None) -> Budget:
    who = ctx.caller.user_id or "default_user_id"
    return Budget(budget_id=budget_id or str(uuid.uuid4()), created_by=who, updated_by=who,
                  **{k: v for k, v in values.items() if v is not None})


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(BudgetBody, BUDGET_NOT_KEPT)
    values = budget_values(ctx, body)
    budget_id = body.budget_id if isinstance(body.budget_id, str) else None
    if budget_id is not None and not budget_id.strip():
        raise bad_request("budget_id must not be empty", "budget_id")
    budget = await ctx.store.create_budget(new_budget(ctx, values, budget_id))
    return record(budget)


async def update(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(BudgetBody, BUDGET_NOT_KEPT)
    if not isinstance(body.budget_id, str) or not body.budget_id:
        raise bad_request("budget_id is required", "budget_id")
    values = budget_values(ctx, body)
    values["updated_by"] = ctx.caller.user_id or "default_user_id"
    return record(await ctx.store.update_budget(body.budget_id, **values))


async def info(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    body = await ctx.body(BudgetIds)
    if not body.budgets:
        raise bad_request(f"Specify list of budget id's to query. Passed in={body.budgets}", "budgets")
    return [record(await ctx.store.get_budget(b)) for b in dict.fromkeys(body.budgets)]


async def list_budgets(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return [record(b) for b in await every_page(ctx.store.list_budgets)]


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(BudgetDelete)
    tx = Tx(ctx.store)
    async with tx() as c:
        budget = await tx.get(c, tbl.BUDGETS, body.id)
        for table, column, what in _USERS:
            rows = await c.fetch(f"SELECT {column} AS id FROM {table} WHERE budget_id = ? LIMIT 1", [body.id])
            if rows:
                shown = "" if what == "key" else f" {rows[0]['id']}"
                raise bad_request(f"Budget {body.id} is used by {what}{shown}: detach it first", "id")
        await tx.delete(c, tbl.BUDGETS, body.id)
    return record(budget)


_SETTINGS = (
    ("max_budget", "Float", "Requests will fail if this budget (in USD) is exceeded."),
    ("soft_budget", "Float", "Requests will NOT fail if this is exceeded. Will fire alerting though."),
    ("max_parallel_requests", "Integer", "Max concurrent requests allowed for this budget id."),
    ("tpm_limit", "Integer", "Max tokens per minute, allowed for this budget id."),
    ("rpm_limit", "Integer", "Max requests per minute, allowed for this budget id."),
    ("budget_duration", "String", "Max duration budget should be set for (e.g. '1hr', '1d', '28d')"),
    ("model_max_budget", "Object", "Max budget for each model (e.g. {'gpt-4o': {'max_budget': '0.0000001', "
                                   "'budget_duration': '1d', 'tpm_limit': 1000, 'rpm_limit': 1000}})"))
"""A budget row's fields the admin UI edits: LiteLLM's ``/budget/settings`` list (its ``tpd_limit``, a batch
token limit relaygate does not keep, left out)."""


async def settings(ctx: Ctx) -> Any:
    """LiteLLM's ``GET /budget/settings?budget_id=``: each editable field of a budget row with its type,
    description and current value (None for a budget that does not exist, as LiteLLM's)."""
    admin_only(ctx, read=True)
    budget_id = ctx.query.get("budget_id")
    if not budget_id:
        raise bad_request("budget_id is required", "budget_id")
    try:
        row = record(await ctx.store.get_budget(budget_id))
    except NotFound:
        row = {}
    return [{"field_name": name, "field_type": kind, "field_description": text,
             "field_value": row.get(name), "stored_in_db": True,
             "field_default_value": None} for name, kind, text in _SETTINGS]
