"""LiteLLM's ``/organization/*`` routes: new, info, update, delete, list, member_add, member_update,
member_delete.

An organization owns teams (their ``organization_id``) and has members with an organization role
(``org_admin``, ``internal_user``, ``internal_user_viewer``: ``LiteLLM_OrganizationMembership.user_role``).
Its limits (``max_budget``, ``tpm_limit`` ...) live in a budget row it points to: ``/organization/new``
creates one from the budget fields unless a ``budget_id`` is given (as LiteLLM: every organization has a
budget), ``/organization/update`` changes it. Answers carry ``litellm_budget_table``, and ``info``,
``update`` and ``list`` the ``members`` and ``teams`` too (LiteLLM's ``LiteLLM_OrganizationTableWithMembers``).

Paths and methods are LiteLLM's (``PATCH /organization/update``, ``DELETE /organization/delete`` ...); the
POST spelling of each is accepted too, as older LiteLLM versions and clients use it.

Roles, as LiteLLM's: creating, updating and deleting organizations is the proxy admin's; members are
managed by the proxy admin or an ``org_admin`` of that organization (who cannot make anyone more than an
``org_admin``); the admin and its viewer read every organization, a member reads its own
(``/organization/list`` shows an internal user the organizations it belongs to). Deleting an organization
deletes its teams, memberships and keys in one transaction, as LiteLLM does.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from relaygate.http.routes import RouteTable
from relaygate.management.budgets import BudgetFields, budget_values, new_budget
from relaygate.management.common import (
    INTERNAL_USER,
    UNSET,
    Ctx,
    Gateway,
    admin_only,
    bad_request,
    forbidden,
    given,
    not_found,
    record,
    route,
    writer,
)
from relaygate.management.key_extras import ORG_NOT_KEPT
from relaygate.store import NotFound, Organization, OrganizationMember, User
from relaygate.store import tables as tbl
from relaygate.store.transaction import Transaction as Tx

ORG_ROLES = ("org_admin", "internal_user", "internal_user_viewer")


class OrgFields(BudgetFields, kw_only=True):
    organization_alias: str | None = UNSET
    models: list[str] | None = UNSET
    metadata: dict[str, Any] | None = UNSET
    budget_id: str | None = UNSET


class NewOrgBody(OrgFields, kw_only=True):
    organization_id: str | None = UNSET


class UpdateOrgBody(OrgFields, kw_only=True):
    organization_id: str


class OrgIds(msgspec.Struct, kw_only=True):
    organization_ids: list[str]


class OrgInfoBody(msgspec.Struct, kw_only=True):
    organizations: list[str]


class OrgMember(msgspec.Struct, kw_only=True):
    role: str = INTERNAL_USER
    user_id: str | None = None
    user_email: str | None = None


class MemberAddBody(msgspec.Struct, kw_only=True):
    organization_id: str
    member: OrgMember | list[OrgMember]
    max_budget_in_organization: float | None = None


class MemberBody(msgspec.Struct, kw_only=True):
    organization_id: str
    user_id: str | None = None
    user_email: str | None = None
    role: str | None = None
    max_budget_in_organization: float | None = UNSET


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for methods, path, handler in (
            (("POST",), "/organization/new", new), (("GET",), "/organization/info", info),
            (("POST",), "/organization/info", info_many), (("PATCH", "POST"), "/organization/update", update),
            (("DELETE", "POST"), "/organization/delete", delete), (("GET",), "/organization/list", list_orgs),
            (("POST",), "/organization/member_add", member_add),
            (("PATCH", "POST"), "/organization/member_update", member_update),
            (("DELETE", "POST"), "/organization/member_delete", member_delete)):
        for method in methods:
            route(t, gw, method, path, handler)


# -- helpers ------------------------------------------------------------------------------------------


async def _full(ctx: Ctx, org: Organization, *, members: bool = True) -> dict[str, Any]:
    """The organization with its budget row, members and teams (LiteLLM's includes)."""
    out = record(org)
    out["litellm_budget_table"] = None
    if org.budget_id is not None:
        try:
            out["litellm_budget_table"] = record(await ctx.store.get_budget(org.budget_id))
        except NotFound:
            pass
    if members:
        out["members"] = [record(m) for m in await ctx.store.list_organization_members(org.organization_id)]
        teams = await ctx.store.list_teams(organization_id=org.organization_id, page_size=1000)
        out["teams"] = [record(t) for t in teams.items]
    return out


async def _role_in(ctx: Ctx, organization_id: str) -> str | None:
    """The caller's role in the organization, or None when it is not a member."""
    if ctx.caller.user_id is None:
        return None
    for m in await ctx.store.list_organization_members(organization_id):
        if m.user_id == ctx.caller.user_id:
            return m.user_role or INTERNAL_USER
    return None


async def _org_admin(ctx: Ctx, organization_id: str) -> Organization:
    """The organization, when the caller is the proxy admin or one of its ``org_admin``\\ s."""
    writer(ctx)
    org = await ctx.store.get_organization(organization_id)
    if not ctx.caller.is_admin and await _role_in(ctx, organization_id) != "org_admin":
        raise forbidden(f"Only the proxy admin or an org_admin of organization={organization_id} can do this. "
                        f"Your role={ctx.caller.role}")
    return org


def _role(role: str | None, param: str) -> None:
    if role is not None and role not in ORG_ROLES:
        raise bad_request(f"Invalid organization role={role!r}: expected one of {list(ORG_ROLES)}", param)


async def _member_id(ctx: Ctx, user_id: str | None, user_email: str | None) -> str:
    if user_id:
        return user_id
    if user_email:
        try:
            user: User = await Tx(ctx.store).find_by(tbl.USERS, "user_email", user_email)
        except NotFound:
            raise not_found(f"Unique user not found for user_email={user_email}. Use 'user_id' instead.",
                            "user_email") from None
        return user.user_id
    raise bad_request("Provide user_id or user_email", "user_id")


def _check_models(ctx: Ctx, models: list[str] | None) -> None:
    allowed = ctx.caller.models
    if not models or allowed is None or ctx.caller.is_admin:
        return
    extra = [m for m in models if m not in allowed]
    if extra:
        raise forbidden(f"User not allowed to give access to model={extra}. Models you have access to = "
                        f"{sorted(allowed)}")


# -- routes -------------------------------------------------------------------------------------------


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(NewOrgBody, ORG_NOT_KEPT)
    if not isinstance(body.organization_alias, str) or not body.organization_alias.strip():
        raise bad_request("organization_alias is required", "organization_alias")
    budget = budget_values(ctx, body)
    fields = {k: v for k, v in given(body).items() if k in ("organization_alias", "models", "metadata", "budget_id")}
    if budget and fields.get("budget_id"):
        raise bad_request("Give either budget_id or budget fields (max_budget, ...), not both", "budget_id")
    _check_models(ctx, fields.get("models"))
    org_id = body.organization_id if isinstance(body.organization_id, str) and body.organization_id else None
    org_id = org_id or str(uuid.uuid4())
    try:
        await ctx.store.get_organization(org_id)
        raise bad_request(f"Organization id = {org_id} already exists. Please use a different organization id.",
                          "organization_id")
    except NotFound:
        pass
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    who = ctx.caller.user_id or "default_user_id"
    tx = Tx(ctx.store)
    async with tx() as c:
        if not fields.get("budget_id"):
            fields["budget_id"] = (await tx.insert(c, new_budget(ctx, budget))).budget_id
        org = await tx.insert(c, Organization(organization_id=org_id, created_by=who, updated_by=who,
                                              **{k: v for k, v in fields.items() if v is not None}))
    return await _full(ctx, org, members=False)


async def info(ctx: Ctx) -> Any:
    org_id = ctx.query.get("organization_id")
    if not org_id:
        raise bad_request("organization_id is required", "organization_id")
    org = await ctx.store.get_organization(org_id)
    if not ctx.caller.reads_all and await _role_in(ctx, org_id) is None:
        raise forbidden(f"You are not a member of organization={org_id}. Your role={ctx.caller.role}")
    return await _full(ctx, org)


async def info_many(ctx: Ctx) -> Any:
    """LiteLLM's deprecated ``POST /organization/info`` (``{"organizations": [...]}``): proxy admin and viewer."""
    admin_only(ctx, read=True)
    body = await ctx.body(OrgInfoBody)
    if not body.organizations:
        raise bad_request(f"Specify list of organization id's to query. Passed in={body.organizations}",
                          "organizations")
    return [await _full(ctx, await ctx.store.get_organization(o), members=False)
            for o in dict.fromkeys(body.organizations)]


async def update(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(UpdateOrgBody, ORG_NOT_KEPT)
    budget = budget_values(ctx, body)
    fields = {k: v for k, v in given(body).items() if k in ("organization_alias", "models", "metadata", "budget_id")}
    org = await ctx.store.get_organization(body.organization_id)
    if fields.get("budget_id"):
        await ctx.store.get_budget(fields["budget_id"])
    if fields.get("metadata") is not None:
        fields["metadata"] = {**org.metadata, **fields["metadata"]}
    who = ctx.caller.user_id or "default_user_id"
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget:
            budget_id = fields.get("budget_id") or org.budget_id
            if budget_id is None:
                fields["budget_id"] = (await tx.insert(c, new_budget(ctx, budget))).budget_id
            else:
                await tx.update(c, tbl.BUDGETS, (budget_id,), {**budget, "updated_by": who})
        org = await tx.update(c, tbl.ORGANIZATIONS, (body.organization_id,), {**fields, "updated_by": who})
    return await _full(ctx, org)


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(OrgIds)
    if not body.organization_ids:
        raise bad_request("organization_ids must not be empty", "organization_ids")
    ids = list(dict.fromkeys(body.organization_ids))
    for org_id in ids:
        try:
            await ctx.store.get_organization(org_id)
        except NotFound:
            raise not_found(f"Organization={org_id} not found", "organization_ids") from None
    answers = [await _full(ctx, await ctx.store.get_organization(o)) for o in ids]
    tx = Tx(ctx.store)
    async with tx() as c:
        for org_id in ids:
            for row in await c.fetch("SELECT team_id FROM rg_teams WHERE organization_id = ?", [org_id]):
                await tx.delete_team(c, row["team_id"])
            await c.execute("DELETE FROM rg_organization_members WHERE organization_id = ?", [org_id])
            await c.execute("DELETE FROM rg_keys WHERE organization_id = ?", [org_id])
            await tx.delete(c, tbl.ORGANIZATIONS, org_id)
    ctx.invalidate_all()
    return answers


async def list_orgs(ctx: Ctx) -> Any:
    org_id, alias = ctx.query.get("org_id"), (ctx.query.get("org_alias") or "").lower()
    orgs: list[Organization] = []
    page = 1
    while True:
        got = await ctx.store.list_organizations(page=page, page_size=1000)
        orgs += got.items
        if page >= got.total_pages:
            break
        page += 1
    orgs = [o for o in orgs if (org_id is None or o.organization_id == org_id)
            and alias in (o.organization_alias or "").lower()]
    if not ctx.caller.reads_all:
        orgs = [o for o in orgs if await _role_in(ctx, o.organization_id) is not None]
    return [await _full(ctx, o) for o in orgs]


async def member_add(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(MemberAddBody)
    members = body.member if isinstance(body.member, list) else [body.member]
    if not members:
        raise bad_request("member must not be empty", "member")
    for m in members:
        _role(m.role, "member")
        if not m.user_id and not m.user_email:
            raise bad_request("Each member needs a user_id or a user_email", "member")
    if body.max_budget_in_organization is not None and body.max_budget_in_organization < 0:
        raise bad_request("max_budget_in_organization must be >= 0", "max_budget_in_organization")
    org = await _org_admin(ctx, body.organization_id)
    existing = {m.user_id for m in await ctx.store.list_organization_members(org.organization_id)}
    users: list[User] = []
    new_users: list[User] = []
    for m in members:
        try:
            users.append(await ctx.store.get_user(m.user_id) if m.user_id else
                         await Tx(ctx.store).find_by(tbl.USERS, "user_email", m.user_email))
        except NotFound:  # LiteLLM creates the user as an internal user
            user = User(user_id=m.user_id or str(uuid.uuid4()), user_email=m.user_email, user_role=INTERNAL_USER)
            users.append(user)
            new_users.append(user)
    seen: set[str] = set()
    for u in users:
        if u.user_id in existing or u.user_id in seen:
            raise bad_request(f"User={u.user_id} is already a member of organization={org.organization_id}", "member")
        seen.add(u.user_id)
    tx = Tx(ctx.store)
    rows = []
    async with tx() as c:
        for u in new_users:
            await tx.insert(c, u)
        for m, u in zip(members, users, strict=True):
            budget_id = None
            if body.max_budget_in_organization is not None:
                budget_id = (await tx.insert(c, new_budget(ctx, {"max_budget": body.max_budget_in_organization}))
                             ).budget_id
            rows.append(await tx.insert(c, OrganizationMember(
                organization_id=org.organization_id, user_id=u.user_id, user_role=m.role,
                user_email=u.user_email, budget_id=budget_id)))
    return {"organization_id": org.organization_id, "updated_users": [record(u) for u in users],
            "updated_organization_memberships": [record(r) for r in rows]}


async def member_update(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(MemberBody)
    _role(body.role, "role")
    budget = body.max_budget_in_organization
    if isinstance(budget, (int, float)) and budget < 0:
        raise bad_request("max_budget_in_organization must be >= 0", "max_budget_in_organization")
    org = await _org_admin(ctx, body.organization_id)
    user_id = await _member_id(ctx, body.user_id, body.user_email)
    members = {m.user_id: m for m in await ctx.store.list_organization_members(org.organization_id)}
    member = members.get(user_id)
    if member is None:
        raise not_found(f"Member not found in organization for user_id={user_id}", "user_id")
    fields: dict[str, Any] = {}
    if body.role is not None:
        fields["user_role"] = body.role
    tx = Tx(ctx.store)
    async with tx() as c:
        if budget is not UNSET:
            if member.budget_id is not None:
                await tx.update(c, tbl.BUDGETS, (member.budget_id,), {"max_budget": budget})
            elif budget is not None:
                fields["budget_id"] = (await tx.insert(c, new_budget(ctx, {"max_budget": budget}))).budget_id
        if fields:
            member = await tx.update(c, tbl.ORG_MEMBERS, (org.organization_id, user_id), fields)
    out = record(member)
    out["litellm_budget_table"] = (record(await ctx.store.get_budget(member.budget_id))
                                   if member.budget_id is not None else None)
    return out


async def member_delete(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(MemberBody)
    org = await _org_admin(ctx, body.organization_id)
    user_id = await _member_id(ctx, body.user_id, body.user_email)
    try:
        member = await ctx.store.remove_organization_member(org.organization_id, user_id)
    except NotFound:
        raise not_found(f"Member not found in organization for user_id={user_id}", "user_id") from None
    return record(member)
