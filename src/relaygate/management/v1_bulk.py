"""LiteLLM's ``/management/v1`` bulk writes (the frame, errors and reads are ``management.v1``'s).

- ``POST /management/v1/users/bulk`` (the proxy admin): ``{"users": [<a /user/new body>, ...]}`` (1-500; a
  field ``/user/new`` does not take is a 422, as are ``password`` and ``send_invite_email: true``). Each user is
  made as ``/user/new`` makes it (``management.users.create``: its teams, its defaults), without a key unless
  ``auto_create_key: true`` (LiteLLM's bulk default is false); rows fail on their own — a repeated id or email
  (any case) in the request, an id or email already stored, an unknown team, a bad field — and the others are
  made. Answer ``{"data": [{"user_id", "user_email", "success", "teams", "key", "error"}], "meta":
  {"total_requested", "created", "failed"}}``, a row per user in order.
- ``POST /management/v1/users/bulk_delete`` (the proxy admin, or an ``org_admin`` for users whose every
  organization it administers): ``{"user_ids": [...]}`` (1-500). An id not stored, outside the caller's
  organizations or repeated fails alone; the others are deleted in one transaction (their keys, team
  memberships, passwords and sessions with them; all or none). Answer ``{"data": [{"user_id", "user_email",
  "success", "teams_removed", "error"}]}``.
- ``POST /management/v1/teams/{team_id}/members/bulk_update`` (as below): ``{"members": [{"user_id"} |
  {"user_email"}, with ``max_budget_in_team``, ``tpm_limit``, ``rpm_limit``, ``budget_duration``]}`` (1-500), a
  merge patch of each member's own budget in the team (:func:`members_bulk_update`); ``allowed_models`` (LiteLLM
  keeps a model list per member) is a 422 naming it. Answer ``{"data": [{"user_id", "user_email", "success",
  "error", "budget_id", "max_budget", "max_budget_source", "tpm_limit", "rpm_limit", "budget_duration",
  "allowed_models"}]}``: the limits in force after the write, ``max_budget_source`` ``member`` or
  ``team_default`` (the team's default member budget then binds it).
- ``POST /management/v1/teams/{team_id}/members/bulk_delete`` (the proxy admin or the team's admin):
  ``{"members": [{"user_id"} | {"user_email"}, ...]}`` (1-500, exactly one of the two each). A member not in the
  team, or named twice, fails alone; the others leave the team (LiteLLM removes their keys of the team too;
  here, as ``/team/member_delete``, the keys stay and stop carrying the team's access once forgotten by every
  worker). Answer ``{"data": [{"user_id", "user_email", "success", "error"}]}``.

Every answer is a 200 whatever the rows' outcome (LiteLLM's); a request that is not such a body is a 422
``invalid-request-body`` problem, a team not stored a 404 ``team-not-found``, a caller without the right a
403 ``forbidden``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from relaygate.core.errors import GatewayError
from relaygate.http.body import read_body
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway
from relaygate.management.member_budgets import PATCH_FIELDS as _PATCH
from relaygate.management.member_budgets import patch_member, shared_rows
from relaygate.management.v1 import Problem, forbidden, invalid_body, v1_route
from relaygate.store import Duplicate, NotFound

__all__ = ["MAX_ROWS", "add_routes"]

MAX_ROWS = 500
"""Rows a bulk request may carry (LiteLLM's ``MAX_BULK_*``)."""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    v1_route(t, gw, "POST", "/users/bulk", users_bulk, failure="Failed to create users.", query=None)
    v1_route(t, gw, "POST", "/users/bulk_delete", users_bulk_delete, failure="Failed to delete users.")
    v1_route(t, gw, "POST", "/teams/{team_id}/members/bulk_delete", members_bulk_delete,
             failure="Failed to remove team members.")
    v1_route(t, gw, "POST", "/teams/{team_id}/members/bulk_update", members_bulk_update,
             failure="Failed to update team member budgets.")


async def _rows(ctx: Ctx, field: str) -> list[Any]:
    """The body's ``field`` list (1-500 items), or the 422 problem."""
    try:
        body = orjson.loads(await read_body(ctx.receive, ctx.gw.runtime.body_limits) or b"null")
    except orjson.JSONDecodeError:
        raise invalid_body(": JSON decode error") from None
    if not isinstance(body, dict):
        raise invalid_body(": Input should be a valid dictionary or object to extract fields from")
    extra = sorted(set(body) - {field})
    if extra:
        raise invalid_body("; ".join(f"{k}: Extra inputs are not permitted" for k in extra))
    rows = body.get(field)
    if not isinstance(rows, list):
        raise invalid_body(f"{field}: Field required" if rows is None else f"{field}: Input should be a valid list")
    if not 1 <= len(rows) <= MAX_ROWS:
        raise invalid_body(f"{field}: List should have at least 1 item and at most {MAX_ROWS} items")
    return rows


# -- users -------------------------------------------------------------------------------------------------


async def users_bulk(ctx: Ctx) -> Any:
    from relaygate.management.users import NewUserBody, create

    if not ctx.caller.is_admin:
        raise forbidden(f"Only proxy admins can create users in bulk, your role={ctx.caller.role}")
    bodies: list[Any] = []
    problems: list[str] = []
    known = {f.encode_name for f in msgspec.structs.fields(NewUserBody)} - {"password"}
    for i, item in enumerate(await _rows(ctx, "users")):
        if not isinstance(item, dict):
            problems.append(f"users.{i}: Input should be a valid dictionary")
            continue
        extra = sorted(set(item) - known)
        if extra:
            problems.extend(f"users.{i}.{k}: Extra inputs are not permitted" for k in extra)
            continue
        if item.get("send_invite_email") is True:
            problems.append(f"users.{i}: send_invite_email is not supported on /management/v1/users/bulk; invite "
                            "users separately")
            continue
        try:
            bodies.append(msgspec.convert({"auto_create_key": False, **item}, NewUserBody))
        except msgspec.ValidationError as exc:
            problems.append(f"users.{i}: {exc}")
    if problems:
        raise invalid_body("; ".join(problems))
    seen_ids: set[str] = set()
    seen_emails: set[str] = set()
    out = []
    for body in bodies:
        uid = body.user_id if isinstance(body.user_id, str) and body.user_id else None
        email = body.user_email if isinstance(body.user_email, str) else None
        row: dict[str, Any] = {"user_id": uid, "user_email": email, "success": False, "teams": None, "key": None,
                               "error": None}
        norm = email.strip().lower() if email else None
        if uid is not None and uid in seen_ids:
            row["error"] = f"Duplicate user_id in request: {uid}"
        elif norm and norm in seen_emails:
            row["error"] = f"Duplicate user_email in request: {email}"
        elif norm and await _email_taken(ctx, norm):
            row["error"] = f"User email={email} already exists"
        else:
            try:
                made = await create(ctx, body)
            except NotFound as exc:
                row["error"] = f"{exc.entity.capitalize()} id={exc.ident} does not exist"
            except Duplicate as exc:
                row["error"] = (f"User id={uid} already exists" if exc.entity == "user" and exc.field == "user_id"
                                else exc.message)
            except GatewayError as exc:
                row["error"] = exc.message
            else:
                row.update(user_id=made["user_id"], success=True, teams=made.get("teams") or [], key=made.get("key"))
        if uid is not None:
            seen_ids.add(uid)
        if norm:
            seen_emails.add(norm)
        out.append(row)
    created = sum(1 for r in out if r["success"])
    return {"data": out, "meta": {"total_requested": len(out), "created": created, "failed": len(out) - created}}


async def _email_taken(ctx: Ctx, email: str) -> bool:
    async with ctx.store._read() as c:
        rows = await c.fetch("SELECT 1 FROM rg_users WHERE LOWER(user_email) = ? LIMIT 1", [email])
    return bool(rows)


async def users_bulk_delete(ctx: Ctx) -> Any:
    from relaygate.management.users import delete_users

    c = ctx.caller
    administered: set[str] | None = None
    if not c.is_admin:
        administered = set(await _org_admin_of(ctx, c.user_id)) if c.user_id else set()
        if not administered:
            raise forbidden("Only PROXY_ADMIN or ORG_ADMIN users may delete users.")
    ids = await _rows(ctx, "user_ids")
    if not all(isinstance(i, str) for i in ids):
        raise invalid_body("user_ids: Input should be a valid list of strings")
    out: list[dict[str, Any]] = []
    doomed: list[str] = []
    found: dict[str, Any] = {}
    seen: set[str] = set()
    for uid in ids:
        row: dict[str, Any] = {"user_id": uid, "user_email": None, "success": False, "teams_removed": [],
                               "error": None}
        out.append(row)
        if uid in seen:
            row["error"] = f"Duplicate user_id in request: {uid}"
            continue
        seen.add(uid)
        try:
            user = await ctx.store.get_user(uid)
        except NotFound:
            row["error"] = f"User id={uid} not found"
            continue
        if administered is not None:
            orgs = await _orgs_of(ctx, uid)
            if not orgs or not orgs <= administered:
                row["error"] = (f"User {uid} is not within your admin scope. Only PROXY_ADMIN may delete users "
                                "outside your administered organizations.")
                continue
        found[uid] = user
        doomed.append(uid)
    if doomed:
        try:
            await delete_users(ctx, doomed)
            failed = None
        except GatewayError as exc:
            failed = f"Failed to delete user: {exc.message}"
        for row in out:
            gone = found.get(row["user_id"])
            if gone is None or row["error"] is not None:
                continue
            row["user_email"] = gone.user_email
            if failed is None:
                row.update(success=True, teams_removed=sorted(gone.teams))
            else:
                row["error"] = failed
    return {"data": out}


async def _org_admin_of(ctx: Ctx, user_id: str) -> list[str]:
    from relaygate.store.activity import org_admin_of

    return await org_admin_of(ctx.store, user_id)


async def _orgs_of(ctx: Ctx, user_id: str) -> set[str]:
    async with ctx.store._read() as c:
        rows = await c.fetch("SELECT organization_id FROM rg_organization_members WHERE user_id = ?", [user_id])
    return {r["organization_id"] for r in rows}


# -- team members ------------------------------------------------------------------------------------------


async def _team_for(ctx: Ctx, op: str) -> Any:
    """The path's team, when the caller administers it (the proxy admin, its admin, its organization's)."""
    team_id = ctx.params["team_id"]
    try:
        team = await ctx.store.get_team(team_id)
    except NotFound:
        raise Problem("team-not-found", "Team not found", 404, f"Team id={team_id} does not exist in db") from None
    if not ctx.caller.is_team_admin(team) and not await _org_admin_of_team(ctx, team):
        raise forbidden("Call not allowed. User not proxy admin OR team admin OR org admin for this team. "
                        f"route='/management/v1/teams/{team_id}/members/{op}'")
    return team


def _check_members(rows: list[Any], fields: frozenset[str]) -> None:
    """Each row an object of ``fields`` naming exactly one of ``user_id`` / ``user_email`` (else the 422)."""
    for i, m in enumerate(rows):
        if not isinstance(m, dict) or set(m) - fields:
            raise invalid_body(f"members.{i}: Extra inputs are not permitted")
        given = [k for k in ("user_id", "user_email") if m.get(k) is not None]
        if not given:
            raise invalid_body(f"members.{i}: Value error, Either user id or user email must be provided")
        if len(given) == 2:
            raise invalid_body(f"members.{i}: Value error, Each member must be identified by exactly one of user_id "
                               "or user_email")


async def members_bulk_delete(ctx: Ctx) -> Any:
    from relaygate.management.teams import team_keys

    team = await _team_for(ctx, "bulk_delete")
    team_id = team.team_id
    rows = await _rows(ctx, "members")
    _check_members(rows, frozenset({"user_id", "user_email"}))
    members = await ctx.store.list_team_members(team_id)
    by_id = {m.user_id: m for m in members}
    by_email = {m.user_email: m for m in members if m.user_email}
    seen: set[tuple[str, str]] = set()
    out = []
    removed = False
    for m in rows:
        field = "user_id" if m.get("user_id") is not None else "user_email"
        value = str(m[field])
        row: dict[str, Any] = {"user_id": m.get("user_id"), "user_email": m.get("user_email"), "success": False,
                               "error": None}
        out.append(row)
        if (field, value) in seen:
            row["error"] = "Duplicate member in request"
            continue
        seen.add((field, value))
        member = by_id.get(value) if field == "user_id" else by_email.get(value)
        if member is None:
            row["error"] = "User not found in team"
            continue
        try:
            await ctx.store.remove_team_member(team_id, member.user_id)
        except NotFound:
            row["error"] = "User not found in team"
            continue
        by_id.pop(member.user_id, None)
        if member.user_email:
            by_email.pop(member.user_email, None)
        row["success"] = removed = True
    if removed:
        ctx.invalidate(*await team_keys(ctx, team_id))
    return {"data": out}


async def _org_admin_of_team(ctx: Ctx, team: Any) -> bool:
    org = getattr(team, "organization_id", None)
    uid = ctx.caller.user_id
    return bool(org and uid and org in await _org_admin_of(ctx, uid))


def _check_patch(rows: list[Any]) -> None:
    """The rows' limits typed as LiteLLM's (else the 422); ``allowed_models`` is refused, named."""
    for i, m in enumerate(rows):
        if "allowed_models" in m:
            raise invalid_body(f"members.{i}.allowed_models: not supported here (relaygate keeps no model list per "
                               "team member)")
        v = m.get("max_budget_in_team")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise invalid_body(f"members.{i}.max_budget_in_team: Input should be a valid number")
        for k in ("tpm_limit", "rpm_limit"):
            v = m.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise invalid_body(f"members.{i}.{k}: Input should be a valid integer")
        d = m.get("budget_duration")
        if d is not None and (not isinstance(d, str) or _period(d) is None):
            raise invalid_body(f"members.{i}: Value error, Invalid budget_duration {d!r}. Use a format like '1h', "
                               "'24h', '7d', or '30d'.")


def _period(value: str) -> float | None:
    from datetime import UTC, datetime

    from relaygate.management.v1 import _period_seconds

    seconds = _period_seconds(value, datetime.now(UTC))
    return seconds if seconds else None


async def members_bulk_update(ctx: Ctx) -> Any:
    """LiteLLM's member budget bulk update: each row a merge patch of a member's own budget in the team (absent:
    untouched, null: cleared); a budget row another member or the team's default shares is copied before it is
    written; a member left with no limit goes back to the team's default. One transaction."""
    from relaygate.management.teams import MEMBER_BUDGET_ID, team_keys
    from relaygate.store.transaction import Transaction as Tx

    team = await _team_for(ctx, "bulk_update")
    rows = await _rows(ctx, "members")
    _check_members(rows, _PATCH | {"user_id", "user_email", "allowed_models"})
    _check_patch(rows)
    default_id = (team.metadata or {}).get(MEMBER_BUDGET_ID)
    default = await ctx.store.get_budget(default_id) if isinstance(default_id, str) and default_id else None
    members = {m.user_id: m for m in await ctx.store.list_team_members(team.team_id)}
    by_email = {m.user_email: m for m in members.values() if m.user_email}
    shared = await shared_rows(ctx, default_id if default is not None else None)
    out: list[dict[str, Any]] = []
    plan: list[tuple[dict[str, Any], Any, dict[str, Any]]] = []
    done: set[str] = set()
    for m in rows:
        row: dict[str, Any] = {"user_id": m.get("user_id"), "user_email": m.get("user_email"), "success": False,
                               "error": None, "budget_id": None, "max_budget": None, "max_budget_source": None,
                               "tpm_limit": None, "rpm_limit": None, "budget_duration": None, "allowed_models": None}
        out.append(row)
        member = members.get(m["user_id"]) if m.get("user_id") is not None else by_email.get(m.get("user_email"))
        if member is None:
            row["error"] = "User not found in team"
            continue
        if member.user_id in done:
            row["error"] = "Duplicate member in request"
            continue
        done.add(member.user_id)
        plan.append((row, member, {k: m[k] for k in _PATCH if k in m}))
    budgets: dict[str, Any] = {}
    for _, member, _ in plan:
        if member.budget_id and member.budget_id not in budgets:
            budgets[member.budget_id] = await ctx.store.get_budget(member.budget_id)
    tx = Tx(ctx.store)
    async with tx() as c:
        for row, member, patch in plan:
            own = budgets.get(member.budget_id) if member.budget_id else None
            budget_id, limits = await patch_member(ctx, tx, c, team.team_id, member, own, patch, shared, default)
            row.update(user_id=member.user_id, success=True, budget_id=budget_id)
            if budget_id is not None:
                row.update(max_budget=limits["max_budget"], tpm_limit=limits["tpm_limit"],
                           rpm_limit=limits["rpm_limit"], budget_duration=limits["budget_duration"])
            if row["max_budget"] is not None:
                row["max_budget_source"] = "member"
            elif default is not None and default.max_budget:
                row.update(max_budget=default.max_budget, max_budget_source="team_default")
    if plan:
        ctx.invalidate(*await team_keys(ctx, team.team_id))
    return {"data": out}
