"""LiteLLM's ``/user/*`` routes: new, info, update, delete, list.

``/user/new`` creates the user, its team memberships (``teams``) and, unless ``auto_create_key`` is false,
a key of its own (with the user's ``models``, ``key_alias`` and ``duration``), in one transaction, as
LiteLLM's ``generate_key_helper_fn(request_type="user")``: the key is answered once, in ``key``.
``/user/delete`` removes the users, their memberships, their keys, UI passwords and UI sessions, all or
nothing, and answers how many users it deleted. ``/user/info`` shows the user, its keys (hashed) and its teams.

Passwords: ``/user/new`` and ``/user/update`` take LiteLLM's ``password`` (the user then signs in to the
admin UI with its ``user_id`` or ``user_email``); it is stored only as a salted scrypt hash, apart from the
user row (``rg_user_passwords``), and never answered. ``"password": null`` on update removes it. A change of
a user (role, ``blocked``) reaches its UI sessions on this worker at once and on the others within the
session cache's few seconds (``ui.sessions``).

Roles: creating, changing, deleting and listing users is the proxy admin's (listing its viewer's too); any
caller reads its own ``/user/info``, the admin and its viewer everyone's. A user's ``user_role`` is one of
LiteLLM's four (``proxy_admin``, ``proxy_admin_viewer``, ``internal_user``, ``internal_user_viewer``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
import orjson

from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management import mail_events
from relaygate.management.common import (
    INTERNAL_USER,
    INTERNAL_USER_VIEWER,
    PROXY_ADMIN,
    PROXY_ADMIN_VIEWER,
    UNSET,
    USER_ROLES,
    Ctx,
    Gateway,
    admin_only,
    after,
    bad_request,
    budget_reset,
    caller_principal,
    forbidden,
    given,
    non_negative,
    not_found,
    opt,
    record,
    route,
)
from relaygate.management.key_extras import USER_NOT_KEPT
from relaygate.management.keys import alias_free, new_key
from relaygate.store import Key, NotFound, StoreUnavailable, TeamMember, User, hash_token, key_name
from relaygate.store.people_search import find_users
from relaygate.store.transaction import Transaction as Tx
from relaygate.ui import passwords, rows, sessions


class UserFields(msgspec.Struct, kw_only=True):
    user_alias: str | None = UNSET
    user_email: str | None = UNSET
    user_role: str | None = UNSET
    models: list[str] | None = UNSET
    metadata: dict[str, Any] | None = UNSET
    blocked: bool | None = UNSET
    spend: float | None = UNSET
    max_budget: float | None = UNSET
    soft_budget: float | None = UNSET
    budget_duration: str | None = UNSET
    model_max_budget: dict[str, Any] | None = UNSET
    max_parallel_requests: int | None = UNSET
    tpm_limit: int | None = UNSET
    rpm_limit: int | None = UNSET
    allowed_cache_controls: list[str] | None = UNSET
    organization_id: str | None = UNSET
    password: str | None = UNSET


class NewUserBody(UserFields, kw_only=True):
    user_id: str | None = UNSET
    teams: list[str] | None = UNSET
    team_id: str | None = UNSET
    auto_create_key: bool = True
    key_alias: str | None = UNSET
    duration: str | None = UNSET
    send_invite_email: bool | None = UNSET


class UpdateUserBody(UserFields, kw_only=True):
    user_id: str


class DeleteUsersBody(msgspec.Struct, kw_only=True):
    user_ids: list[str]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (("POST", "/user/new", new), ("GET", "/user/info", info),
                                  ("POST", "/user/update", update), ("POST", "/user/delete", delete),
                                  ("POST", "/user/bulk_update", bulk_update),
                                  ("GET", "/user/list", list_users), ("GET", "/v2/user/info", info_v2)):
        route(t, gw, method, path, handler)

    async def available_roles(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await caller_principal(gw, scope)  # any valid key: the roles a user may be given, no one's data
        await send_json(send, 200, AVAILABLE_ROLES)

    t.add("GET", "/user/available_roles", available_roles)


AVAILABLE_ROLES = orjson.dumps({
    PROXY_ADMIN: {"description": "admin over litellm proxy, has all permissions",
                  "ui_label": "Admin (All Permissions)"},
    PROXY_ADMIN_VIEWER: {"description": "view all keys, view all spend", "ui_label": "Admin (View Only)"},
    INTERNAL_USER: {"description": "view/create/delete their own keys, view their own spend",
                    "ui_label": "Internal User (Create/Delete/View)"},
    INTERNAL_USER_VIEWER: {"description": "view their own keys, view their own spend",
                           "ui_label": "Internal User (View Only)"}})
"""LiteLLM's ``GET /user/available_roles`` (its UI's role picker): the roles ``user_role`` takes, its words."""


async def _password_hash(fields: dict[str, Any]) -> Any:
    """``password`` popped from ``fields`` and hashed (None: remove it; UNSET: not sent)."""
    if "password" not in fields:
        return UNSET
    password = fields.pop("password")
    if password is None:
        return None
    if not password or len(password.encode()) > passwords.MAX_PASSWORD_BYTES:
        raise bad_request(f"password must be 1 to {passwords.MAX_PASSWORD_BYTES} bytes long", "password")
    return await passwords.hash_password_async(password)


def _user_fields(ctx: Ctx, body: UserFields) -> dict[str, Any]:
    sent = given(body)
    role = sent.get("user_role")
    if role is not None and role not in USER_ROLES:
        raise bad_request(f"Invalid user_role={role!r}: expected one of {list(USER_ROLES)}", "user_role")
    non_negative({n: sent.get(n) for n in ("max_budget", "soft_budget", "spend", "tpm_limit", "rpm_limit",
                                           "max_parallel_requests")})
    if sent.get("budget_duration"):
        sent["budget_reset_at"] = budget_reset(ctx, sent["budget_duration"])
    return sent


async def new(ctx: Ctx) -> Any:
    admin_only(ctx)
    return await create(ctx, await ctx.body(NewUserBody, USER_NOT_KEPT))


async def create(ctx: Ctx, body: NewUserBody) -> dict[str, Any]:
    """One user made as ``/user/new`` makes it (its teams, its key, its password), in one transaction; the
    answer's record (``management.v1_bulk`` makes each row of a bulk request with it)."""
    fields = _user_fields(ctx, body)
    for name in ("user_id", "teams", "team_id", "auto_create_key", "key_alias", "duration", "send_invite_email"):
        fields.pop(name, None)
    to = mail_events.new_user_address(ctx, opt(body.send_invite_email), fields.get("user_email"))
    password = await _password_hash(fields)
    user_id = opt(body.user_id) or str(uuid.uuid4())
    teams = list(dict.fromkeys(opt(body.teams) or []))
    if opt(body.team_id) and body.team_id not in teams:
        teams.append(body.team_id)
    for team_id in teams:
        await ctx.store.get_team(team_id)  # 404 (param team_id) before anything is written
    org = opt(body.organization_id)
    if org:
        await ctx.store.get_organization(org)
    fields.setdefault("user_role", INTERNAL_USER)
    if fields["user_role"] is None:
        fields["user_role"] = INTERNAL_USER
    given_duration = fields.get("budget_duration")
    fields = ctx.gw.runtime.config.general.new_user_defaults(fields["user_role"], fields)  # LiteLLM's defaults
    if fields.get("budget_duration") and not given_duration:
        fields["budget_reset_at"] = budget_reset(ctx, fields["budget_duration"])
    user = User(user_id=user_id, team_id=opt(body.team_id), **{k: v for k, v in fields.items() if v is not None})
    clear: str | None = None
    key: Key | None = None
    if body.auto_create_key:
        clear = new_key(None)
        expires: datetime | None = after(opt(body.duration), "duration")
        alias = opt(body.key_alias)
        await alias_free(ctx, alias)
        created_by = ctx.caller.user_id or "default_user_id"
        key = Key(token=hash_token(clear), key_name=key_name(clear), key_alias=alias, user_id=user_id,
                  models=list(user.models), expires=expires, created_by=created_by, updated_by=created_by)
    tx = Tx(ctx.store)
    async with tx() as c:
        user = await tx.insert(c, user)
        for team_id in teams:
            await tx.add_members(c, team_id, [TeamMember(team_id=team_id, user_id=user_id, role="user",
                                                         user_email=user.user_email)])
        if key is not None:
            key = await tx.insert(c, key)
        if isinstance(password, str):
            await rows.set_password_in(ctx.store, c, user_id, password)
    out = record(msgspec.structs.replace(user, teams=teams))
    out.update(key=clear, key_alias=key.key_alias if key else None, key_name=key.key_name if key else None,
               token=key.token if key else None, token_id=key.token if key else None,
               expires=key.expires if key else None, duration=opt(body.duration))
    if key is not None:
        ctx.invalidate(key.token)
    await mail_events.user_invited(ctx, to)
    return out


async def info(ctx: Ctx) -> Any:
    c = ctx.caller
    user_id = ctx.query.get("user_id") or c.user_id
    if user_id is None:
        raise bad_request("user_id is required", "user_id")
    if not c.reads_all and user_id != c.user_id:
        raise forbidden(f"You can only see your own user info. Got user_id={user_id}, Your ID={c.user_id}")
    user = await ctx.store.get_user(user_id)
    keys = await ctx.store.list_keys(user_id=user_id, page_size=1000)
    teams = [await ctx.store.get_team(t) for t in user.teams]
    return {"user_id": user_id, "user_info": record(user), "keys": [record(k) for k in keys.items],
            "teams": [record(t) for t in teams]}


V2_FIELDS = ("user_id", "user_email", "user_alias", "user_role", "spend", "max_budget", "tpm_limit", "rpm_limit",
             "models", "budget_duration", "budget_reset_at", "metadata", "created_at", "updated_at", "teams",
             "model_max_budget")
"""LiteLLM's ``UserInfoV2Response`` fields relaygate keeps (``sso_user_id`` and ``object_permission`` answered
null: relaygate stores neither on the user)."""


async def info_v2(ctx: Ctx) -> Any:
    """LiteLLM's ``GET /v2/user/info?user_id=``: the user row alone (team ids, no keys or team objects). The caller
    itself (``user_id`` defaults to its own), any user for the proxy admin and its viewer, a member of one of
    its teams for a team's admin; anything else is LiteLLM's 404 ``User not found``, as for a user that does not
    exist, so the answer never tells who exists."""
    c = ctx.caller
    user_id = ctx.query.get("user_id") or c.user_id
    if not user_id:
        raise bad_request("user_id is required. Either pass it as a query parameter or authenticate with a "
                          "user-bound key.", "user_id")
    missing = not_found(f"User not found: {user_id}", "user_id")
    try:
        user = await ctx.store.get_user(user_id)
    except NotFound:
        raise missing from None
    if not (c.reads_all or user_id == c.user_id or await _admin_of_a_team_of(ctx, user)):
        raise missing
    row = record(user)
    out = {name: row.get(name) for name in V2_FIELDS}
    out.update(models=out["models"] or [], teams=out["teams"] or [], sso_user_id=None, object_permission=None)
    return out


async def _admin_of_a_team_of(ctx: Ctx, user: User) -> bool:
    """Whether the caller is an admin of a team ``user`` is in."""
    if ctx.caller.user_id is None:
        return False
    for team_id in user.teams:
        try:
            team = await ctx.store.get_team(team_id)
        except NotFound:
            continue
        if ctx.caller.team_role(team) == "admin":
            return True
    return False


async def update(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(UpdateUserBody, USER_NOT_KEPT)
    user = await update_one(ctx, body)
    return {"user_id": body.user_id, "data": record(user)}


async def update_one(ctx: Ctx, body: UpdateUserBody) -> User:
    """One user changed as ``/user/update`` changes it (password, sessions, its keys' caches, budget counters)."""
    fields = _user_fields(ctx, body)
    fields.pop("user_id", None)
    password = await _password_hash(fields)
    if "organization_id" in fields and fields["organization_id"] is not None:
        await ctx.store.get_organization(fields["organization_id"])
    if not fields:
        user = await ctx.store.get_user(body.user_id)
    else:
        user = await ctx.store.update_user(body.user_id, **fields)
    if isinstance(password, str):
        await rows.set_password(ctx.store, body.user_id, password)
    elif password is None:
        await rows.delete_password(ctx.store, body.user_id)
    sessions.forget_user(ctx.gw, body.user_id)
    keys = await ctx.store.list_keys(user_id=body.user_id, page_size=1000)
    ctx.invalidate(*(k.token for k in keys.items))
    if "spend" in fields:
        await ctx.spend_set("user", body.user_id, fields["spend"] or 0.0)
    return user


MAX_BULK = 500
"""Users one ``/user/bulk_update`` names at most (LiteLLM's bound; ``all_users`` has none)."""


class BulkUsersBody(msgspec.Struct, kw_only=True):
    """LiteLLM's ``BulkUpdateUserRequest``."""

    users: list[UpdateUserBody] | None = None
    all_users: bool = False
    user_updates: UserFields | None = None


async def bulk_update(ctx: Ctx) -> Any:
    """LiteLLM's ``POST /user/bulk_update``: ``users`` (each as ``/user/update``, at most :data:`MAX_BULK`), or
    ``all_users: true`` with ``user_updates`` (every user, neither ``user_email`` nor ``password``, which are
    each user's own). Each user is changed on its own: one that cannot be is a failed result, the others go
    through. ``{"results": [{"user_id", "user_email", "success", "error", "updated_user"}], "total_requested",
    "successful_updates", "failed_updates"}`` (the last two counts)."""
    admin_only(ctx)
    body = await ctx.body(BulkUsersBody)
    if body.users and body.all_users:
        raise bad_request("Cannot specify both 'users' and 'all_users=True'. Choose one approach.", "all_users")
    if body.all_users and body.user_updates is not None:
        updates = given(body.user_updates)
        for name in ("user_email", "password"):
            if name in updates:
                raise bad_request(f"user_updates cannot set {name} for every user", "user_updates")
        items = []
        page = 1
        while True:
            found = await ctx.store.list_users(page=page, page_size=1000)
            items += [UpdateUserBody(user_id=u.user_id, **updates) for u in found.items]
            if page >= found.total_pages:
                break
            page += 1
    elif body.users is not None and not body.all_users:
        items = body.users
        if len(items) > MAX_BULK:
            raise bad_request(f"Maximum {MAX_BULK} users can be updated at once. Found {len(items)} users.", "users")
    else:
        raise bad_request("Must specify either 'users' for individual updates or 'all_users=True' with "
                          "'user_updates' for bulk updates", "users")
    if not items:
        raise bad_request("No users found to update", "users")
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            user = await update_one(ctx, item)
        except StoreUnavailable:
            raise
        except GatewayError as exc:
            email = item.user_email if isinstance(item.user_email, str) else None
            results.append({"user_id": item.user_id, "user_email": email, "success": False, "error": exc.message,
                            "updated_user": None})
        else:
            results.append({"user_id": user.user_id, "user_email": user.user_email, "success": True, "error": None,
                            "updated_user": record(user)})
    ok = sum(1 for r in results if r["success"])
    return {"results": results, "total_requested": len(items), "successful_updates": ok,
            "failed_updates": len(items) - ok}


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(DeleteUsersBody)
    if not body.user_ids:
        raise bad_request("user_ids must not be empty", "user_ids")
    ids = list(dict.fromkeys(body.user_ids))
    for user_id in ids:
        await ctx.store.get_user(user_id)  # 404 before anything is deleted
    await delete_users(ctx, ids)
    return len(ids)


async def delete_users(ctx: Ctx, ids: list[str]) -> None:
    """The users ``ids`` (all stored) deleted in one transaction, with their keys, passwords and sessions; their
    keys forgotten by every worker."""
    tokens: list[str] = []
    for user_id in ids:
        tokens += [k.token for k in (await ctx.store.list_keys(user_id=user_id, page_size=1000)).items]
    tx = Tx(ctx.store)
    async with tx() as c:
        for user_id in ids:
            await tx.delete_user(c, user_id)
            await rows.delete_password(ctx.store, user_id, c)
            await rows.delete_user_sessions(ctx.store, user_id, c)
    for user_id in ids:
        sessions.forget_user(ctx.gw, user_id)
    ctx.invalidate(*tokens)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


async def list_users(ctx: Ctx) -> Any:
    """LiteLLM's ``/user/list`` with its filters (``role``, ``user_ids``, ``user_email``, ``search``, ``team``,
    ``organization_ids``, ``sort_by`` / ``sort_order``; ``sso_user_ids`` matches nobody: relaygate keeps no SSO
    ids) and relaygate's ``team_id`` / ``organization_id``."""
    admin_only(ctx, read=True)
    q = ctx.query
    page = ctx.int_arg("page", 1, high=10**9)
    size = ctx.int_arg("page_size", 25, high=100)
    role = q.get("role") or q.get("user_role")
    if role is not None and role not in USER_ROLES:
        raise bad_request(f"Invalid role={role!r}: expected one of {list(USER_ROLES)}", "role")
    order = q.get("sort_order", "asc").lower()
    if order not in ("asc", "desc"):
        raise bad_request("sort_order: expected 'asc' or 'desc'", "sort_order")
    if q.get("sso_user_ids"):
        return {"users": [], "total": 0, "page": page, "page_size": size, "total_pages": 0}
    orgs = _csv(q.get("organization_ids")) if "organization_ids" in q else _csv(q.get("organization_id"))
    found = await find_users(ctx.store, role=role, user_ids=_csv(q.get("user_ids")), email_part=q.get("user_email"),
                             search=q.get("search"), team_id=q.get("team") or q.get("team_id"),
                             organization_ids=orgs, sort_by=q.get("sort_by") or None, descending=order == "desc",
                             page=page, page_size=size)
    return {"users": [record(u) for u in found.items], "total": found.total, "page": page, "page_size": size,
            "total_pages": found.total_pages}
