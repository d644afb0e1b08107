"""LiteLLM's ``/team/*`` routes: new, info, update, delete, list, block, unblock, member_add, member_delete,
member_update, model/add, model/delete, a member's ``reset_spend`` and ``reset_budget``, and ``members/me``.

A team's members carry LiteLLM's team roles, ``admin`` or ``user`` (``members_with_roles``); a member's own
budget in the team (``max_budget_in_team``) is a budget row its membership points to. ``team_member_budget``
on ``/team/new`` / ``/team/update`` is the team's default member budget, as LiteLLM: a budget row (with the
team's ``budget_duration``) named in the team's ``metadata.team_member_budget_id``, which binds every member
without a budget of its own (``relaygate.budgets``). Members that have
no user row get one (``internal_user``), as LiteLLM's ``/team/member_add`` does. Multi-row writes (a team
with its first members, members with their budgets and user rows) are one transaction.

Roles: creating, deleting, blocking and unblocking teams is the proxy admin's. A team ``admin`` updates
its team (not its models, limits, budget or blocked state: that would grant more than it holds) and
manages its members, never with a budget above the team's. Team members read ``/team/info``; the admin
and its viewer read every team; ``/team/list`` shows an internal user the teams it belongs to.
``/team/model/add`` and ``/team/model/delete`` (``{"team_id", "models": [...]}``) add models to a team's
list or take them off, keeping its order, and answer the team's row, as LiteLLM's; they change what the
team's keys may use, so they are the proxy admin's (as ``models`` on ``/team/update``), and the team's keys
are read again at once.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import (
    INTERNAL_USER,
    TEAM_ROLES,
    UNSET,
    Ctx,
    Gateway,
    admin_only,
    bad_request,
    budget_reset,
    budget_windows,
    duration_seconds,
    forbidden,
    given,
    no_env_references,
    non_negative,
    not_found,
    record,
    route,
    writer,
)
from relaygate.management.key_extras import TEAM_NOT_KEPT
from relaygate.management.masking import unmask_metadata
from relaygate.management.member_budgets import PATCH_FIELDS, limits_of, patch_member, shared_rows
from relaygate.management.team_join import member_add_target
from relaygate.store import Budget, Duplicate, NotFound, Team, TeamMember, User
from relaygate.store import tables as tbl
from relaygate.store.transaction import Transaction as Tx

GRANTS = ("models", "max_budget", "soft_budget", "tpm_limit", "rpm_limit", "max_parallel_requests",
          "model_max_budget", "model_tpm_limit", "model_rpm_limit", "blocked", "budget_duration", "team_member_budget",
          "team_member_budget_duration", "team_member_rpm_limit", "team_member_tpm_limit", "budget_limits")
"""Team fields only the proxy admin changes: a team admin setting them would grant more than it holds."""


class Member(msgspec.Struct, kw_only=True):
    """LiteLLM's ``Member``: a user (by id) and its team role."""

    role: str = "user"
    user_id: str | None = None
    user_email: str | None = None


class TeamFields(msgspec.Struct, kw_only=True):
    team_alias: str | None = UNSET
    organization_id: str | None = UNSET
    metadata: dict[str, Any] | None = UNSET
    models: list[str] | None = UNSET
    blocked: bool | None = UNSET
    max_budget: float | None = UNSET
    soft_budget: float | None = UNSET
    budget_duration: str | None = UNSET
    model_max_budget: dict[str, Any] | None = UNSET
    budget_limits: list[Any] | None = UNSET
    max_parallel_requests: int | None = UNSET
    tpm_limit: int | None = UNSET
    rpm_limit: int | None = UNSET
    model_tpm_limit: dict[str, int] | None = UNSET
    model_rpm_limit: dict[str, int] | None = UNSET
    model_aliases: dict[str, str] | None = UNSET
    router_settings: dict[str, Any] | None = UNSET
    team_member_permissions: list[str] | None = UNSET
    team_member_budget: float | None = UNSET
    """The default budget of each member in the team (LiteLLM's; kept in a budget row, not on the team)."""
    team_member_budget_duration: str | None = UNSET
    """That budget's period (LiteLLM 1.110's): the team's ``budget_duration`` unless sent; null: it never resets."""
    team_member_rpm_limit: int | None = UNSET
    """Each member's requests a minute across its keys of the team, unless its own (in the same budget row)."""
    team_member_tpm_limit: int | None = UNSET
    """Each member's tokens a minute, likewise."""


class NewTeamBody(TeamFields, kw_only=True):
    team_id: str | None = UNSET
    members_with_roles: list[Member] | None = UNSET


class UpdateTeamBody(TeamFields, kw_only=True):
    team_id: str


class TeamRef(msgspec.Struct, kw_only=True):
    team_id: str


class TeamIds(msgspec.Struct, kw_only=True):
    team_ids: list[str]


class MemberAddBody(msgspec.Struct, kw_only=True):
    team_id: str
    member: Member | list[Member]
    max_budget_in_team: float | None = None
    budget_duration: str | None = None
    allowed_models: Any = UNSET


class MemberDeleteBody(msgspec.Struct, kw_only=True):
    team_id: str
    user_id: str | None = None
    user_email: str | None = None


class TeamModelsBody(msgspec.Struct, kw_only=True):
    team_id: str
    models: list[str]


class MemberUpdateBody(msgspec.Struct, kw_only=True):
    team_id: str
    user_id: str | None = None
    user_email: str | None = None
    role: str | None = None
    max_budget_in_team: float | None = UNSET
    tpm_limit: int | None = UNSET
    rpm_limit: int | None = UNSET
    budget_duration: str | None = UNSET
    allowed_models: Any = UNSET
    temp_budget_increase: Any = UNSET
    temp_budget_expiry: Any = UNSET
    model_max_budget: Any = UNSET


_NOT_KEPT = ("allowed_models", "temp_budget_increase", "temp_budget_expiry", "model_max_budget")
"""LiteLLM's member fields relaygate does not enforce: a 400 naming the field, never silently dropped."""


def _refuse_not_kept(body: msgspec.Struct) -> None:
    for name in _NOT_KEPT:
        if getattr(body, name, UNSET) not in (UNSET, None):
            raise bad_request(f"{name}: not supported for a team member by this gateway (relaygate keeps a "
                              "member's max_budget_in_team, rpm_limit, tpm_limit and budget_duration)", name)


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/team/new", new), ("GET", "/team/info", info), ("POST", "/team/update", update),
            ("POST", "/team/delete", delete), ("GET", "/team/list", list_teams), ("POST", "/team/block", block),
            ("POST", "/team/unblock", unblock), ("POST", "/team/member_add", member_add),
            ("POST", "/team/member_delete", member_delete), ("POST", "/team/member_update", member_update),
            ("POST", "/team/model/add", model_add), ("POST", "/team/model/delete", model_delete),
            ("POST", "/team/{team_id}/member/{user_id}/reset_spend", member_reset_spend),
            ("GET", "/team/{team_id}/members/me", members_me),
            ("POST", "/team/{team_id}/member/{user_id}/reset_budget", member_reset_budget),
            ("GET", "/v2/team/list", list_teams_v2)):
        route(t, gw, method, path, handler)


# -- helpers ------------------------------------------------------------------------------------------


def _team_fields(ctx: Ctx, body: TeamFields) -> dict[str, Any]:
    sent = given(body)
    non_negative({n: sent.get(n) for n in ("max_budget", "soft_budget", "tpm_limit", "rpm_limit",
                                           "max_parallel_requests", "team_member_budget", "team_member_rpm_limit",
                                           "team_member_tpm_limit")})
    if sent.get("budget_duration"):
        sent["budget_reset_at"] = budget_reset(ctx, sent["budget_duration"])
    if sent.get("team_member_budget_duration") not in (None, "", "-1"):
        duration_seconds(sent["team_member_budget_duration"], "team_member_budget_duration")
    budget_windows(ctx, sent)  # LiteLLM 1.110's budget_limits
    return sent


MEMBER_BUDGET_ID = "team_member_budget_id"
"""The team ``metadata`` key naming its default member budget row (LiteLLM's)."""


_DEFAULT_ROW = {"team_member_budget": "max_budget", "team_member_rpm_limit": "rpm_limit",
                "team_member_tpm_limit": "tpm_limit"}
"""Team fields kept in its default member budget row, by that row's column."""


def _default_row_change(fields: dict[str, Any]) -> tuple[dict[str, Any], bool, str | None]:
    """The default member budget fields taken out of ``fields``: (sent limits by budget column, null included;
    whether ``team_member_budget_duration`` was sent; its value)."""
    change = {col: fields.pop(name) for name, col in _DEFAULT_ROW.items() if name in fields}
    duration_sent = "team_member_budget_duration" in fields
    return change, duration_sent, fields.pop("team_member_budget_duration", None)


def _member_budget(ctx: Ctx, team_alias: str | None, limits: dict[str, Any], duration: str | None) -> Budget:
    """A team's default member budget row (LiteLLM names it after the team alias; it makes one for a period
    alone too)."""
    who = ctx.caller.user_id or "default_user_id"
    name = f"team-{team_alias.replace(' ', '-')}-budget-" if team_alias else "team-budget-"
    return Budget(budget_id=name + uuid.uuid4().hex, **{k: v for k, v in limits.items() if v is not None},
                  budget_duration=duration or None, budget_reset_at=budget_reset(ctx, duration),
                  created_by=who, updated_by=who)


def _members(members: list[Member], param: str) -> list[Member]:
    seen: set[str] = set()
    for m in members:
        if m.role not in TEAM_ROLES:
            raise bad_request(f"Invalid team member role={m.role!r}: expected one of {list(TEAM_ROLES)}", param)
        if not m.user_id:
            raise bad_request("A team member needs a user_id", param)
        if m.user_id in seen:
            raise bad_request(f"User={m.user_id} is listed twice", param)
        seen.add(m.user_id)
    return members


async def _missing_users(ctx: Ctx, members: list[Member]) -> list[User]:
    """User rows to create for members that have none (LiteLLM creates them as internal users)."""
    out = []
    for m in members:
        assert m.user_id is not None
        try:
            await ctx.store.get_user(m.user_id)
        except NotFound:
            out.append(User(user_id=m.user_id, user_email=m.user_email, user_role=INTERNAL_USER))
    return out


async def team_admin(ctx: Ctx, team_id: str) -> Team:
    """The team, when the caller is the proxy admin or the team's admin (else 401 for viewers, 403)."""
    writer(ctx)
    team = await ctx.store.get_team(team_id)
    if not ctx.caller.is_team_admin(team):
        raise forbidden(f"Only the proxy admin or an admin of team={team_id} can do this. "
                        f"Your role={ctx.caller.role}")
    return team


async def team_keys(ctx: Ctx, team_id: str) -> list[str]:
    return [k.token for k in (await ctx.store.list_keys(team_id=team_id, page_size=1000)).items]


async def save_team(ctx: Ctx, team_id: str, **fields: Any) -> Team:
    """``fields`` written to the team (by the caller), and its keys read again by every worker."""
    team = await ctx.store.update_team(team_id, updated_by=ctx.caller.user_id or "default_user_id", **fields)
    ctx.invalidate(*await team_keys(ctx, team_id))
    return team


def _member_id(body: MemberDeleteBody | MemberUpdateBody, team: Team) -> str:
    if body.user_id:
        return body.user_id
    if body.user_email:
        for m in team.members_with_roles:
            if m.get("user_email") == body.user_email and m.get("user_id"):
                return str(m["user_id"])
        raise NotFound("team member", body.user_email)
    raise bad_request("Provide user_id or user_email", "user_id")


async def _default_row(ctx: Ctx, budget_id: Any) -> Budget | None:
    """The budget row ``budget_id`` names (a team's default member budget, a member's own), when there is one."""
    if not isinstance(budget_id, str) or not budget_id:
        return None
    try:
        return await ctx.store.get_budget(budget_id)
    except NotFound:
        return None


def _budget_cap(ctx: Ctx, team: Team, amount: float | None) -> None:
    if amount is None:
        return
    non_negative({"max_budget_in_team": amount})
    if not ctx.caller.is_admin and team.max_budget is not None and amount > team.max_budget:
        raise forbidden(f"max_budget_in_team={amount} is greater than team={team.team_id} max_budget="
                        f"{team.max_budget}")


# -- routes -------------------------------------------------------------------------------------------


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(NewTeamBody, TEAM_NOT_KEPT)
    fields = _team_fields(ctx, body)
    for name in ("team_id", "members_with_roles"):
        fields.pop(name, None)
    defaults = ctx.gw.runtime.config.general.new_team_defaults(fields)  # LiteLLM's default_team_params
    if defaults:
        fields.update(defaults)
        if defaults.get("budget_duration"):
            fields["budget_reset_at"] = budget_reset(ctx, defaults["budget_duration"])
    member_limits, duration_sent, member_duration = _default_row_change(fields)
    if fields.get("metadata") is not None:
        fields["metadata"] = unmask_metadata(fields["metadata"], None)  # a mask with nothing behind it: a 400
    team_id = body.team_id if isinstance(body.team_id, str) and body.team_id else str(uuid.uuid4())
    members = _members(body.members_with_roles if isinstance(body.members_with_roles, list) else [],
                       "members_with_roles")
    if fields.get("organization_id") is not None:
        await ctx.store.get_organization(fields["organization_id"])
    try:
        await ctx.store.get_team(team_id)
        raise bad_request(f"Team id = {team_id} already exists. Please use a different team id.", "team_id")
    except NotFound:
        pass
    users = await _missing_users(ctx, members)
    created_by = ctx.caller.user_id or "default_user_id"
    team = Team(team_id=team_id, created_by=created_by, updated_by=created_by,
                **{k: v for k, v in fields.items() if v is not None})
    tx = Tx(ctx.store)
    async with tx() as c:
        if any(v is not None for v in member_limits.values()) or member_duration is not None:
            row = await tx.insert(c, _member_budget(ctx, team.team_alias, member_limits,
                                                    member_duration if duration_sent else team.budget_duration))
            team = msgspec.structs.replace(team, metadata={**team.metadata, MEMBER_BUDGET_ID: row.budget_id})
        team = await tx.insert(c, team)
        for u in users:
            await tx.insert(c, u)
        if members:
            team = await tx.add_members(c, team_id, [TeamMember(team_id=team_id, user_id=str(m.user_id), role=m.role,
                                                                user_email=m.user_email) for m in members])
    return record(team)


async def info(ctx: Ctx) -> Any:
    c = ctx.caller
    team_id = ctx.query.get("team_id") or c.team_id
    if not team_id:
        raise bad_request("team_id is required", "team_id")
    team = await ctx.store.get_team(team_id)
    if not c.reads_all and c.team_role(team) is None:
        raise forbidden(f"You are not a member of team={team_id}. Your role={c.role}")
    keys = await ctx.store.list_keys(team_id=team_id, page_size=1000)
    members = await ctx.store.list_team_members(team_id)
    return {"team_id": team_id, "team_info": record(team), "keys": [record(k) for k in keys.items],
            "team_memberships": [record(m) for m in members]}


async def update(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(UpdateTeamBody, TEAM_NOT_KEPT)
    fields = _team_fields(ctx, body)
    fields.pop("team_id", None)
    team = await team_admin(ctx, body.team_id)
    if not ctx.caller.is_admin:
        grants = [n for n in fields if n in GRANTS]
        if grants:
            raise forbidden(f"Only the proxy admin can change {grants} of a team. Your role={ctx.caller.role}")
    if "metadata" in fields:
        no_env_references(ctx.caller, fields["metadata"])
        fields["metadata"] = unmask_metadata(fields["metadata"], team.metadata)  # a masked secret sent back
    if fields.get("organization_id") is not None:
        await ctx.store.get_organization(fields["organization_id"])
    member_limits, duration_sent, member_duration = _default_row_change(fields)
    current = team.metadata.get(MEMBER_BUDGET_ID)
    if "metadata" in fields and current is not None:  # new metadata keeps the link to the default member budget
        fields["metadata"] = {**(fields["metadata"] or {}), MEMBER_BUDGET_ID: current}
    fields["updated_by"] = ctx.caller.user_id or "default_user_id"
    tx = Tx(ctx.store)
    async with tx() as c:
        if isinstance(current, str) and (member_limits or duration_sent):
            # a field sent is written, null included (null: that limit no longer binds the members), as LiteLLM's
            change: dict[str, Any] = {"updated_by": fields["updated_by"], **member_limits}
            if duration_sent:  # null: the default member budget no longer resets (LiteLLM 1.110's)
                change["budget_duration"] = member_duration or None
                change["budget_reset_at"] = budget_reset(ctx, member_duration)
            await tx.update(c, tbl.BUDGETS, (current,), change)
        elif any(v is not None for v in member_limits.values()) or member_duration is not None:
            duration = member_duration if duration_sent else fields.get("budget_duration", team.budget_duration)
            row = await tx.insert(c, _member_budget(ctx, fields.get("team_alias", team.team_alias), member_limits,
                                                    duration))
            meta = fields["metadata"] if "metadata" in fields else team.metadata
            fields["metadata"] = {**(meta or {}), MEMBER_BUDGET_ID: row.budget_id}
        team = await tx.update(c, tbl.TEAMS, (team.team_id,), fields)
    ctx.invalidate(*await team_keys(ctx, team.team_id))
    return {"team_id": team.team_id, "data": record(team)}


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(TeamIds)
    if not body.team_ids:
        raise bad_request("team_ids must not be empty", "team_ids")
    ids = list(dict.fromkeys(body.team_ids))
    tokens: list[str] = []
    for team_id in ids:
        await ctx.store.get_team(team_id)  # 404 before anything is deleted
        tokens += await team_keys(ctx, team_id)
    for team_id in ids:
        await ctx.store.delete_team(team_id, with_keys=True)
    ctx.invalidate(*tokens)
    return {"deleted_teams": ids}


async def list_teams(ctx: Ctx) -> Any:
    c = ctx.caller
    user_id = ctx.query.get("user_id")
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only list your own teams. Got user_id={user_id}, Your ID={c.user_id}")
        user_id = c.user_id
        if user_id is None:
            return []
    if user_id is not None:
        try:
            user = await ctx.store.get_user(user_id)
        except NotFound:
            return []
        teams = [await ctx.store.get_team(t) for t in user.teams]
        org = ctx.query.get("organization_id")
        return [record(t) for t in teams if org is None or t.organization_id == org]
    found = await ctx.store.list_teams(organization_id=ctx.query.get("organization_id"), page_size=1000)
    return [record(t) for t in found.items]


_SORTS = ("team_id", "team_alias", "created_at")


async def list_teams_v2(ctx: Ctx) -> Any:
    """LiteLLM's ``GET /v2/team/list``: a page (``page``, ``page_size`` up to 100, 10 by default) of the teams with
    ``team_id``, ``organization_id``, an alias containing ``team_alias`` (any case) and, with ``user_id``, only
    that user's; ``sort_by`` ``team_id`` / ``team_alias`` / ``created_at`` with ``sort_order`` (``asc`` by
    default), else the newest first. ``{"teams", "total", "page", "page_size", "total_pages"}``. A caller who
    does not read everything lists its own teams (LiteLLM lets it name another user's; here that is a 403, as
    ``/team/list``)."""
    c, q = ctx.caller, ctx.query
    page = ctx.int_arg("page", 1, high=10**9)
    size = ctx.int_arg("page_size", 10, high=100)
    user_id, team_id = q.get("user_id") or None, q.get("team_id") or None
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only list your own teams. Got user_id={user_id}, Your ID={c.user_id}")
        user_id = c.user_id
        if user_id is None:
            return {"teams": [], "total": 0, "page": page, "page_size": size, "total_pages": 0}
    team_ids: list[str] | None = None
    if user_id is not None:
        try:
            team_ids = list((await ctx.store.get_user(user_id)).teams)
        except NotFound:
            raise not_found(f"User not found, passed user_id={user_id}", "user_id") from None
        if team_id is not None and team_id not in team_ids:
            raise not_found(f"User is not a member of team_id={team_id}", "team_id")
    sort_by = q.get("sort_by")
    if sort_by in _SORTS:
        descending = (q.get("sort_order") or "asc").lower() == "desc"
    else:
        sort_by, descending = "created_at", True
    found = await ctx.store.search_teams(team_ids=team_ids, team_id=team_id, organization_id=q.get("organization_id"),
                                         alias_part=q.get("team_alias") or None, sort_by=sort_by,
                                         descending=descending, page=page, page_size=size)
    return {"teams": [record(t) for t in found.items], "total": found.total, "page": page, "page_size": size,
            "total_pages": found.total_pages}


async def _set_blocked(ctx: Ctx, blocked: bool) -> Any:
    admin_only(ctx)
    body = await ctx.body(TeamRef)
    return record(await save_team(ctx, body.team_id, blocked=blocked))


async def block(ctx: Ctx) -> Any:
    return await _set_blocked(ctx, True)


async def unblock(ctx: Ctx) -> Any:
    return await _set_blocked(ctx, False)


async def member_add(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(MemberAddBody)
    members = _members(body.member if isinstance(body.member, list) else [body.member], "member")
    if not members:
        raise bad_request("member must not be empty", "member")
    if body.allowed_models not in (UNSET, None):
        _refuse_not_kept(body)
    if body.budget_duration not in (None, "", "-1"):
        duration_seconds(body.budget_duration, "budget_duration")
    team = await member_add_target(ctx, body.team_id, members, body)  # its admin's, or an available team joined
    _budget_cap(ctx, team, body.max_budget_in_team)
    for m in members:
        if any(x.get("user_id") == m.user_id for x in team.members_with_roles):
            raise bad_request(f"User={m.user_id} is already a member of team={team.team_id}", "member")
    users = await _missing_users(ctx, members)
    # LiteLLM's: a budget of the member's own, on its own period when sent; a lone period gives the member
    # the team's default member budget on that period (a copy of the default row)
    template = None
    if body.max_budget_in_team is not None:
        template = Budget(budget_id="", max_budget=body.max_budget_in_team)
    elif body.budget_duration:
        template = await _default_row(ctx, team.metadata.get(MEMBER_BUDGET_ID))
    rows, budgets = [], []
    who = ctx.caller.user_id or "default_user_id"
    for m in members:
        budget_id = None
        if template is not None and any(v is not None for v in limits_of(template).values()):
            budget_id = str(uuid.uuid4())
            budgets.append(msgspec.structs.replace(
                template, budget_id=budget_id, budget_duration=body.budget_duration or template.budget_duration,
                budget_reset_at=budget_reset(ctx, body.budget_duration) if body.budget_duration else
                template.budget_reset_at, created_at=None, updated_at=None, created_by=who, updated_by=who))
        rows.append(TeamMember(team_id=team.team_id, user_id=str(m.user_id), role=m.role, user_email=m.user_email,
                               budget_id=budget_id))
    tx = Tx(ctx.store)
    try:
        async with tx() as c:
            for u in users:
                await tx.insert(c, u)
            for b in budgets:
                await tx.insert(c, b)
            team = await tx.add_members(c, team.team_id, rows)
    except Duplicate:
        raise bad_request(f"A member is already in team={body.team_id}", "member") from None
    updated_users = [await ctx.store.get_user(str(m.user_id)) for m in members]
    out = record(team)
    out["updated_users"] = [record(u) for u in updated_users]
    out["updated_team_memberships"] = [
        {"team_id": r.team_id, "user_id": r.user_id, "budget_id": r.budget_id,
         "litellm_budget_table": {"max_budget": b.max_budget, "budget_duration": b.budget_duration} if b else None}
        for r in rows for b in [next((x for x in budgets if x.budget_id == r.budget_id), None)]]
    return out


async def member_delete(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(MemberDeleteBody)
    team = await team_admin(ctx, body.team_id)
    user_id = _member_id(body, team)
    team = await ctx.store.remove_team_member(team.team_id, user_id)
    ctx.invalidate(*await team_keys(ctx, team.team_id))
    return record(team)


async def member_update(ctx: Ctx) -> Any:
    """LiteLLM's ``/team/member_update``: the member's role, and a merge patch of its own limits in the team
    (``max_budget_in_team``, ``rpm_limit``, ``tpm_limit``, ``budget_duration``: ``management.member_budgets``)."""
    writer(ctx)
    body = await ctx.body(MemberUpdateBody)
    if body.role is not None and body.role not in TEAM_ROLES:
        raise bad_request(f"Invalid team member role={body.role!r}: expected one of {list(TEAM_ROLES)}", "role")
    _refuse_not_kept(body)
    patch = {k: v for k, v in given(body).items() if k in PATCH_FIELDS}
    non_negative({k: patch.get(k) for k in ("tpm_limit", "rpm_limit")})
    if patch.get("budget_duration") not in (None, "", "-1"):
        duration_seconds(patch["budget_duration"], "budget_duration")
    team = await team_admin(ctx, body.team_id)
    user_id = _member_id(body, team)
    _budget_cap(ctx, team, patch.get("max_budget_in_team"))
    members = {m.user_id: m for m in await ctx.store.list_team_members(team.team_id)}
    member = members.get(user_id)
    if member is None:
        raise NotFound("team member", user_id)
    own = await ctx.store.get_budget(member.budget_id) if member.budget_id else None
    default_id = team.metadata.get(MEMBER_BUDGET_ID)
    if body.role is not None:  # the membership and the team's members_with_roles
        member = await ctx.store.update_team_member(team.team_id, user_id, role=body.role)
    limits = limits_of(own)
    if patch:
        default = await _default_row(ctx, default_id) if own is None else None
        shared = await shared_rows(ctx, default_id)
        tx = Tx(ctx.store)
        async with tx() as c:
            _, limits = await patch_member(ctx, tx, c, team.team_id, member, own, patch, shared, default)
    ctx.invalidate(*await team_keys(ctx, team.team_id))
    return {"team_id": team.team_id, "user_id": user_id, "user_email": member.user_email,
            "max_budget_in_team": limits["max_budget"], "tpm_limit": limits["tpm_limit"],
            "rpm_limit": limits["rpm_limit"], "budget_duration": limits["budget_duration"], "allowed_models": None,
            "temp_budget_increase": None, "temp_budget_expiry": None, "model_max_budget": None}


class ResetSpendBody(msgspec.Struct, kw_only=True):
    reset_to: float


async def member_reset_spend(ctx: Ctx) -> Any:
    """LiteLLM 1.110's ``POST /team/{team_id}/member/{user_id}/reset_spend`` (``{"reset_to": USD}``): a member's
    spend in the team (what its member budget counts; not its user's nor the team's) set back to ``reset_to``,
    at least 0, at most its current spend and the member budget that binds it. The proxy admin or the team's admin, who
    may not reset its own (LiteLLM's rule: else a team admin could keep its own cap from ever binding). A
    compare-and-set: a spend that moved below ``reset_to`` meanwhile is a 409. The budget binds on the new
    spend at once (the team's keys are read again, Redis counters set)."""
    writer(ctx)
    team_id, user_id = ctx.params["team_id"], ctx.params["user_id"]
    body = await ctx.body(ResetSpendBody)
    team = await team_admin(ctx, team_id)
    if user_id == ctx.caller.user_id and not ctx.caller.is_admin:
        raise forbidden("Cannot reset your own spend. Ask a proxy admin.")
    try:
        member = await ctx.store.get_team_member(team.team_id, user_id)
    except NotFound:
        raise not_found(f"User {user_id} is not a member of team {team_id}.", "user_id") from None
    reset_to, current = body.reset_to, member.spend or 0.0
    if not math.isfinite(reset_to) or reset_to < 0:
        raise bad_request("reset_to must be a finite number >= 0", "reset_to")
    if reset_to > current:
        raise bad_request(f"reset_to ({reset_to}) must be <= current spend ({current})", "reset_to")
    # the budget that binds the member: its own row, else the team's default member budget (LiteLLM's members
    # point to that row until their first change)
    row = await _default_row(ctx, member.budget_id) or await _default_row(ctx, team.metadata.get(MEMBER_BUDGET_ID))
    max_budget = row.max_budget if row is not None else None
    if max_budget is not None and reset_to > max_budget:
        raise bad_request(f"reset_to ({reset_to}) must be <= budget ({max_budget})", "reset_to")
    if not await ctx.store.reset_member_spend(team.team_id, user_id, reset_to):
        raise GatewayError(f"Member spend changed since it was read; reset_to ({reset_to}) must be <= current "
                           "spend. Retry.", status=409, type="bad_request_error", param="reset_to", code="409")
    ctx.invalidate(*await team_keys(ctx, team.team_id))
    await ctx.spend_set("member", f"{team.team_id}\0{user_id}", reset_to)
    return {"team_id": team.team_id, "user_id": user_id, "spend": reset_to, "previous_spend": current,
            "max_budget": max_budget}


async def members_me(ctx: Ctx) -> Any:
    """LiteLLM 1.110's ``GET /team/{team_id}/members/me``: the caller's own membership of the team (its role,
    spend, the budget row that binds it: its own, else the team's default), never another member's; a 404 when
    it is not a member (the proxy admin included: it reads ``/team/info``). ``total_spend`` is the membership's
    ``spend`` (relaygate keeps no separate lifetime figure per member; its spend logs have it)."""
    uid = ctx.caller.user_id
    if uid is None:
        raise bad_request("API key has no associated user_id; cannot resolve 'me' for team membership.", "user_id")
    team = await ctx.store.get_team(ctx.params["team_id"])
    role = next((m.get("role") for m in team.members_with_roles if m.get("user_id") == uid), None)
    if role is None:
        raise not_found(f"User user_id={uid} is not a member of team_id={team.team_id}.", "team_id")
    try:
        member = await ctx.store.get_team_member(team.team_id, uid)
    except NotFound:
        member = TeamMember(team_id=team.team_id, user_id=uid, role=str(role))
    row = await _default_row(ctx, member.budget_id) or await _default_row(ctx, team.metadata.get(MEMBER_BUDGET_ID))
    try:
        email = (await ctx.store.get_user(uid)).user_email
    except NotFound:
        email = member.user_email
    return {"user_id": uid, "team_id": team.team_id, "team_alias": team.team_alias, "role": role,
            "user_email": email, "spend": member.spend, "total_spend": member.spend,
            "budget_id": row.budget_id if row is not None else None,
            "litellm_budget_table": record(row) if row is not None else None}


async def member_reset_budget(ctx: Ctx) -> Any:
    """LiteLLM 1.110's ``POST /team/{team_id}/member/{user_id}/reset_budget``: the member back on the team's
    default member budget (its own row unlinked, so the team's changes reach it again; no budget when the
    team has no default); spend untouched. The proxy admin or the team's admin. Answer LiteLLM's
    ``{team_id, user_id, budget_id, previous_budget_id, budget_source}`` (``team_default`` or ``none``)."""
    writer(ctx)
    team_id, user_id = ctx.params["team_id"], ctx.params["user_id"]
    team = await team_admin(ctx, team_id)
    try:
        member = await ctx.store.get_team_member(team.team_id, user_id)
    except NotFound:
        raise not_found(f"User {user_id} is not a member of team {team_id}.", "user_id") from None
    default = await _default_row(ctx, team.metadata.get(MEMBER_BUDGET_ID))
    if member.budget_id is not None:
        await ctx.store.update_team_member(team.team_id, user_id, budget_id=None)
    ctx.invalidate(*await team_keys(ctx, team.team_id))
    return {"team_id": team.team_id, "user_id": user_id,
            "budget_id": default.budget_id if default is not None else None,
            "previous_budget_id": member.budget_id, "budget_source": "team_default" if default is not None else "none"}


async def _team_models(ctx: Ctx, add: bool) -> Any:
    body = await ctx.body(TeamModelsBody)
    if not body.models or any(not isinstance(m, str) or not m for m in body.models):
        raise bad_request("models: expected a non-empty list of model names", "models")
    team = await team_admin(ctx, body.team_id)
    if not ctx.caller.is_admin:
        raise forbidden(f"Only the proxy admin can change the models of a team. Your role={ctx.caller.role}")
    if add:
        models = [*team.models, *(m for m in dict.fromkeys(body.models) if m not in team.models)]
    else:
        gone = set(body.models)
        models = [m for m in team.models if m not in gone]
    return record(await save_team(ctx, team.team_id, models=models))


async def model_add(ctx: Ctx) -> Any:
    return await _team_models(ctx, True)


async def model_delete(ctx: Ctx) -> Any:
    return await _team_models(ctx, False)
