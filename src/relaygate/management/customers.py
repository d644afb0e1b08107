"""LiteLLM's customer (end user) routes: ``/customer/new|info|update|delete|list|block|unblock``, each also
at LiteLLM's older ``/end_user/*`` path.

A customer is the ``user`` field of a request (or its ``x-litellm-customer-id`` /
``x-litellm-end-user-id`` header), not a login: ``LiteLLM_EndUserTable``. Its budget fields
(``max_budget``, ``tpm_limit`` ...) live in a budget row it points to (created with the customer in one
transaction, or an existing ``budget_id``; not both). Answers carry that row as ``litellm_budget_table``.

Blocking: ``/customer/block`` creates the customers it does not know (as LiteLLM's upsert does) and sets
``blocked``; ``/customer/unblock`` clears it. The request path refuses a blocked customer with LiteLLM's 400
(``auth.store_keys.customer_blocked``) from a set each worker holds: this worker's set is re-read at once
(``KeyChanges.poll_once``, or straight from the store on a gateway without it); with Redis the change is
announced on the key-change channel (``KeyChanges.customers_changed``) and every other worker and instance
re-reads it at once, and without Redis within the store's change poll (one second).

Roles, as LiteLLM's: customer writes are the proxy admin's; the admin and its viewer read
(``/customer/info``, ``/customer/list``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.auth.store_keys import blocked_customers
from relaygate.http.routes import RouteTable
from relaygate.management.budgets import BUDGET_FIELDS, BudgetFields, budget_values, new_budget
from relaygate.management.common import (
    UNSET,
    Ctx,
    Gateway,
    admin_only,
    bad_request,
    given,
    not_found,
    record,
    route,
)
from relaygate.management.key_extras import CUSTOMER_NOT_KEPT
from relaygate.store import Customer, NotFound
from relaygate.store import tables as tbl
from relaygate.store.transaction import Transaction as Tx

REGIONS = ("eu", "us")


class CustomerFields(BudgetFields, kw_only=True):
    alias: str | None = UNSET
    blocked: bool | None = UNSET
    budget_id: str | None = UNSET
    allowed_model_region: str | None = UNSET
    default_model: str | None = UNSET
    metadata: dict[str, Any] | None = UNSET
    spend: float | None = UNSET


class CustomerBody(CustomerFields, kw_only=True):
    user_id: str


class CustomerIds(msgspec.Struct, kw_only=True):
    user_ids: list[str]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, name, handler in (
            ("POST", "new", new), ("GET", "info", info), ("POST", "update", update), ("POST", "delete", delete),
            ("GET", "list", list_customers), ("POST", "block", block), ("POST", "unblock", unblock)):
        for prefix in ("/customer/", "/end_user/"):
            route(t, gw, method, prefix + name, handler)


# -- helpers ------------------------------------------------------------------------------------------


def _check(ctx: Ctx, body: CustomerFields) -> dict[str, Any]:
    """The customer fields sent (budget fields apart), checked; a 400 names the field."""
    sent = {k: v for k, v in given(body).items() if k not in BUDGET_FIELDS}
    region = sent.get("allowed_model_region")
    if region is not None and region not in REGIONS:
        raise bad_request(f"allowed_model_region must be one of {list(REGIONS)}, got {region!r}",
                          "allowed_model_region")
    model = sent.get("default_model")
    if model is not None and model not in ctx.gw.runtime.router.public_models():
        raise bad_request(f"Default Model not on proxy. Configure via `/model/new` or config.yaml. "
                          f"Default_model={model}", "default_model")
    spend = sent.get("spend")
    if spend is not None and spend < 0:
        raise bad_request(f"spend must be >= 0, got {spend}", "spend")
    return sent


async def _answer(ctx: Ctx, customer: Customer) -> dict[str, Any]:
    out = record(customer)
    budget = None
    if customer.budget_id is not None:
        try:
            budget = record(await ctx.store.get_budget(customer.budget_id))
        except NotFound:
            budget = None
    out["litellm_budget_table"] = budget
    return out


async def refresh_blocked(ctx: Ctx) -> None:
    """Re-read the blocked customers into this worker's runtime now, and tell the others through Redis when
    configured (else they follow the change poll)."""
    changes = getattr(ctx.gw, "key_changes", None)
    if changes is not None:
        await changes.poll_once()
        changes.customers_changed()
        return
    setter = getattr(ctx.gw.runtime, "set_blocked_customers", None)
    if setter is not None:
        setter(await blocked_customers(ctx.store))


async def _known(ctx: Ctx, ids: list[str], param: str) -> None:
    missing = []
    for user_id in ids:
        try:
            await ctx.store.get_customer(user_id)
        except NotFound:
            missing.append(user_id)
    if missing:
        raise not_found(f"End User Id(s)={', '.join(missing)} do not exist in db", param)


def _ids(body: CustomerIds) -> list[str]:
    if not body.user_ids or any(not isinstance(u, str) or not u for u in body.user_ids):
        raise bad_request(f"user_ids must be a non-empty list of ids, got {body.user_ids}", "user_ids")
    return list(dict.fromkeys(body.user_ids))


# -- routes -------------------------------------------------------------------------------------------


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(CustomerBody, CUSTOMER_NOT_KEPT)
    if not body.user_id:
        raise bad_request("user_id is required", "user_id")
    fields = _check(ctx, body)
    budget_fields = budget_values(ctx, body)
    if budget_fields and fields.get("budget_id"):
        raise bad_request("Give either budget_id or budget fields (max_budget, ...), not both", "budget_id")
    try:
        await ctx.store.get_customer(body.user_id)
        raise bad_request(f"Customer already exists, passed user_id={body.user_id}. Please pass a new user_id.",
                          "user_id")
    except NotFound:
        pass
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    fields.pop("user_id", None)
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget_fields:
            budget = await tx.insert(c, new_budget(ctx, budget_fields))
            fields["budget_id"] = budget.budget_id
        customer = await tx.insert(c, Customer(user_id=body.user_id,
                                               **{k: v for k, v in fields.items() if v is not None}))
    if customer.blocked:
        await refresh_blocked(ctx)
    return await _answer(ctx, customer)


async def info(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    user_id = ctx.query.get("end_user_id") or ctx.query.get("user_id")
    if not user_id:
        raise bad_request("end_user_id is required", "end_user_id")
    try:
        customer = await ctx.store.get_customer(user_id)
    except NotFound:
        raise not_found(f"End User Id={user_id} does not exist in db", "end_user_id") from None
    return await _answer(ctx, customer)


async def update(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(CustomerBody, CUSTOMER_NOT_KEPT)
    fields = _check(ctx, body)
    fields.pop("user_id", None)
    budget_fields = budget_values(ctx, body)
    try:
        customer = await ctx.store.get_customer(body.user_id)
    except NotFound:
        raise not_found(f"End User Id={body.user_id} does not exist in db", "user_id") from None
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget_fields:
            budget_id = fields.get("budget_id") or customer.budget_id
            if budget_id is None:
                budget = await tx.insert(c, new_budget(ctx, budget_fields))
                fields["budget_id"] = budget.budget_id
            else:
                budget_fields["updated_by"] = ctx.caller.user_id or "default_user_id"
                await tx.update(c, tbl.BUDGETS, (budget_id,), budget_fields)
        if fields:
            customer = await tx.update(c, tbl.CUSTOMERS, (body.user_id,), fields)
    if "blocked" in fields:
        await refresh_blocked(ctx)
    if "spend" in fields:
        await ctx.spend_set("customer", body.user_id, fields["spend"] or 0.0)
    return await _answer(ctx, customer)


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    ids = _ids(await ctx.body(CustomerIds))
    await _known(ctx, ids, "user_ids")
    tx = Tx(ctx.store)
    async with tx() as c:
        for user_id in ids:
            await tx.delete(c, tbl.CUSTOMERS, user_id)
    await refresh_blocked(ctx)
    return {"deleted_customers": len(ids), "message": f"Successfully deleted customers with ids: {ids}"}


async def list_customers(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    out: list[Any] = []
    page = 1
    while True:
        got = await ctx.store.list_customers(page=page, page_size=1000)
        out += [await _answer(ctx, c) for c in got.items]
        if page >= got.total_pages:
            return out
        page += 1


async def block(ctx: Ctx) -> Any:
    """Block customers, creating those not known yet (LiteLLM upserts)."""
    admin_only(ctx)
    ids = _ids(await ctx.body(CustomerIds))
    tx = Tx(ctx.store)
    rows = []
    async with tx() as c:
        for user_id in ids:
            try:
                rows.append(await tx.update(c, tbl.CUSTOMERS, (user_id,), {"blocked": True}))
            except NotFound:
                rows.append(await tx.insert(c, Customer(user_id=user_id, blocked=True)))
    await refresh_blocked(ctx)
    return {"blocked_users": [record(r) for r in rows]}


async def unblock(ctx: Ctx) -> Any:
    admin_only(ctx)
    ids = _ids(await ctx.body(CustomerIds))
    await _known(ctx, ids, "user_ids")
    tx = Tx(ctx.store)
    async with tx() as c:
        for user_id in ids:
            await tx.update(c, tbl.CUSTOMERS, (user_id,), {"blocked": False})
    await refresh_blocked(ctx)
    return {"blocked_users": sorted(await blocked_customers(ctx.store))}
