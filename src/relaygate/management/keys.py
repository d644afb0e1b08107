"""LiteLLM's ``/key/*`` routes: generate, update, info, list, delete, regenerate, block, unblock, health,
reset_spend.

A key is ``sk-`` and 32 URL-safe random bytes (``secrets.token_urlsafe``, as LiteLLM), or a custom ``key``
that must start with ``sk-``. Only its SHA-256 hex (``token``, LiteLLM's ``hashed_token``) and display
name (``sk-...abcd``) are stored; the key itself is answered once, by ``/key/generate`` and
``/key/regenerate``. ``/key/info`` and ``/key/list`` show the hash, never a key. Any route that takes a
``key`` accepts the key (``sk-...``: hashed here) or its hash.

Who may do what (LiteLLM's rules, :mod:`relaygate.management.common`): the proxy admin everything; its
viewer reads every key; an internal user generates keys for itself (``user_id`` defaults to its own) or,
as a team member, for its team, and updates, regenerates or deletes its own keys and, as a team ``admin``,
its team's (a plain member's team keys only through the routes its team grants its members:
``management.team_permissions``); only the proxy admin or the key's team admin blocks, unblocks, changes
``blocked`` or resets the key's spend (``/key/{key}/reset_spend``; only the proxy admin sets it with
``/key/update``). A key never grants more than its creator holds
(:func:`~relaygate.management.common.check_grant`): models within the creator's and the team's allow-lists,
limits and budget not above theirs.

After every write the key's hash is dropped from this worker's principal cache; other workers and
instances see the store's change counter move.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from relaygate.config.key_policy import BOUNDED_DURATIONS, DEFAULTABLE, KeyPolicy, seconds
from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.logs import escape_controls
from relaygate.management import mail_events
from relaygate.management.common import (
    UNSET,
    Ctx,
    Gateway,
    after,
    bad_request,
    budget_reset,
    budget_windows,
    check_grant,
    duration_seconds,
    forbidden,
    given,
    no_env_references,
    non_negative,
    not_found,
    opt,
    record,
    refuse_route,
    route,
    writer,
)
from relaygate.management.key_extras import key_extras
from relaygate.management.masking import unmask_metadata
from relaygate.management.team_permissions import member_may
from relaygate.store import Key, NotFound, Team, deprecated_keys, hash_token, key_name

log = logging.getLogger("relaygate.keys")

LIMITS = ("tpm_limit", "rpm_limit", "max_parallel_requests", "max_budget")


class KeyFields(msgspec.Struct, kw_only=True):
    """The key fields of LiteLLM's ``GenerateKeyRequest`` / ``UpdateKeyRequest``."""

    key_alias: str | None = UNSET
    duration: str | None = UNSET
    expires: datetime | None = UNSET
    models: list[str] | None = UNSET
    aliases: dict[str, str] | None = UNSET
    config: dict[str, Any] | None = UNSET
    team_id: str | None = UNSET
    user_id: str | None = UNSET
    organization_id: str | None = UNSET
    budget_id: str | None = UNSET
    metadata: dict[str, Any] | None = UNSET
    tags: list[str] | None = UNSET
    spend: float | None = UNSET
    max_budget: float | None = UNSET
    budget_duration: str | None = UNSET
    soft_budget: float | None = UNSET
    model_max_budget: dict[str, Any] | None = UNSET
    budget_limits: list[Any] | None = UNSET
    max_parallel_requests: int | None = UNSET
    tpm_limit: int | None = UNSET
    rpm_limit: int | None = UNSET
    model_tpm_limit: dict[str, int] | None = UNSET
    model_rpm_limit: dict[str, int] | None = UNSET
    allowed_cache_controls: list[str] | None = UNSET
    allowed_routes: list[str] | None = UNSET
    permissions: dict[str, Any] | None = UNSET
    blocked: bool | None = UNSET
    router_settings: dict[str, Any] | None = UNSET
    budget_fallbacks: dict[str, list[str]] | None = UNSET
    """LiteLLM 1.110's: per model, the models tried when the key's own budget for it is spent (null: none)."""
    enforced_params: list[str] | None = UNSET
    """Kept in the key's ``metadata`` (as LiteLLM's ``LiteLLM_ManagementEndpoint_MetadataFields``), which the
    request path reads (``auth.store_keys.enforced_of``)."""
    # LiteLLM's fields beyond a key row (management.key_extras): key_type's preset routes, the others refused
    key_type: Any = UNSET
    tpd_limit: Any = UNSET
    rpm_limit_type: Any = UNSET
    tpm_limit_type: Any = UNSET
    tag_rpm_limit: Any = UNSET
    mcp_rpm_limit: Any = UNSET
    guardrails: Any = UNSET
    policies: Any = UNSET
    prompts: Any = UNSET
    object_permission: Any = UNSET
    allowed_passthrough_routes: Any = UNSET
    denied_passthrough_routes: Any = UNSET
    allowed_vector_store_indexes: Any = UNSET
    access_group_ids: Any = UNSET
    auto_rotate: Any = UNSET
    rotation_interval: Any = UNSET
    throttle_on_budget_exceeded: Any = UNSET
    end_user_budget_id: Any = UNSET
    default_estimated_output_tokens: Any = UNSET
    default_estimated_output_tokens_per_model: Any = UNSET
    enable_prompt_caching: Any = UNSET
    agent_id: Any = UNSET
    project_id: Any = UNSET
    send_invite_email: Any = UNSET
    disable_global_guardrails: Any = UNSET


class GenerateBody(KeyFields, kw_only=True):
    key: str | None = UNSET


class UpdateBody(KeyFields, kw_only=True):
    key: str
    temp_budget_increase: float | None = UNSET
    temp_budget_expiry: datetime | None = UNSET
    """LiteLLM's temporary budget increase: added to the key's ``max_budget`` until the expiry (both kept in the
    key's ``metadata``, read by ``budgets.guard``); sent together or not at all."""


class RegenerateBody(KeyFields, kw_only=True):
    key: str | None = UNSET
    new_key: str | None = UNSET
    grace_period: str | None = UNSET
    """How long the old key keeps working (``24h``, ``2d``; LiteLLM's), else ``LITELLM_KEY_ROTATION_GRACE_PERIOD``."""


class KeyRef(msgspec.Struct, kw_only=True):
    key: str


class ResetSpendBody(msgspec.Struct, kw_only=True):
    reset_to: float


class DeleteBody(msgspec.Struct, kw_only=True):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/key/generate", generate), ("POST", "/key/update", update), ("GET", "/key/info", info),
            ("GET", "/key/list", list_keys), ("POST", "/key/delete", delete), ("POST", "/key/regenerate", regenerate),
            ("POST", "/key/{key}/regenerate", regenerate), ("POST", "/key/block", block),
            ("POST", "/key/unblock", unblock), ("POST", "/key/health", health),
            ("POST", "/key/{key}/reset_spend", reset_spend),
            ("POST", "/key/service-account/generate", service_account)):
        route(t, gw, method, path, handler)


# -- helpers ------------------------------------------------------------------------------------------


def token_of(value: str, param: str = "key") -> str:
    """The hash of a key given as the key (``sk-...``) or as its hash."""
    value = value.strip()
    if not value:
        raise bad_request("key must not be empty", param)
    return hash_token(value) if value.startswith("sk-") else value


def new_key(custom: str | None, param: str = "key", ctx: Ctx | None = None) -> str:
    """A new key's clear value: ``custom`` (checked) or a random one. With ``ctx``, LiteLLM's
    ``general_settings.disable_custom_api_keys`` refuses a ``custom`` value (403)."""
    if custom is None:
        return "sk-" + secrets.token_urlsafe(16)
    if ctx is not None and ctx.gw.runtime.config.general.disable_custom_api_keys:
        raise forbidden("Custom API key values are disabled by your administrator. Keys must be auto-generated.")
    if not custom.startswith("sk-"):
        masked = f"{custom[:4]}****{custom[-4:]}" if len(custom) > 8 else "****"
        raise bad_request(f"Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: {masked}", param)
    if len(custom) < 8:
        raise bad_request("A custom key must be at least 8 characters long", param)
    return custom


async def alias_free(ctx: Ctx, alias: str | None, token: str | None = None) -> None:
    if not alias:
        return
    try:
        other = await ctx.store.get_key_by_alias(alias)
    except NotFound:
        return
    if other.token != token:
        raise bad_request(f"Key with alias '{alias}' already exists. Unique key aliases across all keys are required.",
                          "key_alias")


async def _team(ctx: Ctx, team_id: str | None) -> Team | None:
    return None if team_id is None else await ctx.store.get_team(team_id)


def _member(team: Team, user_id: str | None) -> bool:
    return user_id is not None and any(m.get("user_id") == user_id for m in team.members_with_roles)


async def may_manage(ctx: Ctx, key: Key, *, block: bool = False, route_name: str = "/key/update") -> None:
    """The caller may change ``key`` through ``route_name``: the proxy admin, the key's team admin, or (not to
    block) its owner; an owner that is a plain member of the key's team when the team grants it the route
    (``team_permissions.member_may``)."""
    c = ctx.caller
    if c.is_admin:
        return
    if not c.may_write:
        refuse_route(ctx)
    team = await _team(ctx, key.team_id) if key.team_id is not None else None
    if team is not None and c.team_role(team) == "admin":
        return
    if not block and key.user_id is not None and key.user_id == c.user_id:
        if team is not None:
            member_may(team, c, route_name)
        return
    raise forbidden(f"You are not allowed to {'block or unblock' if block else 'change'} this key. "
                    f"Your role={c.role}")


async def may_read(ctx: Ctx, key: Key) -> None:
    c = ctx.caller
    if c.reads_all or key.token == c.key_hash or (key.user_id is not None and key.user_id == c.user_id):
        return
    if key.team_id is not None and c.user_id is not None:
        team = await _team(ctx, key.team_id)
        if team is not None and c.team_role(team) == "admin":
            return
    raise forbidden(f"You are not allowed to access this key's info. Your role={c.role}")


async def _fields(ctx: Ctx, body: KeyFields, *, old: Key | None, service_account: bool = False) -> dict[str, Any]:
    """The record fields ``body`` sets (``old``: the key an update changes; ``service_account``: a new team key
    that belongs to no user), checked: durations, limits, ownership, team membership and the grant."""
    c = ctx.caller
    sent = given(body)
    for name in ("key", "new_key", "grace_period"):  # a regeneration's own (regenerate)
        sent.pop(name, None)
    key_extras(sent, new=old is None)  # key_type's routes; LiteLLM's fields of features relaygate lacks: a 400
    policy = ctx.gw.runtime.config.key_policy
    if not policy.empty:
        sent = await _policy(ctx, policy, sent, new=old is None)
    non_negative({n: sent.get(n) for n in (*LIMITS, "soft_budget", "spend")})
    fields: dict[str, Any] = {}
    if "duration" in sent:
        fields["expires"] = after(sent.pop("duration"), "duration")
    if sent.get("budget_duration"):
        fields["budget_reset_at"] = budget_reset(ctx, sent["budget_duration"])
    budget_windows(ctx, sent)  # LiteLLM 1.110's budget_limits
    if old is not None and "budget_limits" in sent and not c.is_admin and _pairs(sent["budget_limits"]) != _pairs(
            old.budget_limits):  # LiteLLM's default key_budget_change policy: only an admin changes them
        raise forbidden("Only the proxy admin can change a key's budget_limits")
    if "spend" in sent and not c.is_admin:
        raise forbidden("Only the proxy admin can set a key's spend")
    if "metadata" in sent:
        no_env_references(c, sent["metadata"])
        # a masked secret sent back (an answer edited) keeps the stored one; with nothing stored, a 400
        sent["metadata"] = unmask_metadata(sent["metadata"], old.metadata if old is not None else None)
    into_metadata(sent, old)
    if "budget_fallbacks" in sent and sent["budget_fallbacks"] is None:
        sent["budget_fallbacks"] = {}
    if "blocked" in sent and old is not None:
        await may_manage(ctx, old, block=True)
    fields.update(sent)
    user_id = sent.get("user_id", old.user_id if old is not None else None)
    team_id = sent.get("team_id", old.team_id if old is not None else None)
    if old is None and user_id is None and not c.is_admin and not service_account:
        if c.user_id is None:
            raise forbidden("Only a key that belongs to a user can create keys (this key has no user_id)")
        user_id = fields["user_id"] = c.user_id
    if sent.get("organization_id") is not None:
        await ctx.store.get_organization(sent["organization_id"])
    team = await _team(ctx, team_id)
    changes_owner = old is None or "user_id" in sent or "team_id" in sent
    if team is not None and changes_owner and not c.is_admin:
        if not _member(team, c.user_id):
            raise bad_request(f"User={c.user_id} not assigned to team={team.team_id}", "team_id")
        if old is None and not service_account:  # a member makes a team key when the team grants it
            member_may(team, c, "/key/generate")
        if user_id is not None and not _member(team, user_id):
            raise bad_request(f"User={user_id} not assigned to team={team.team_id}", "user_id")
    if changes_owner and not c.is_admin and user_id != c.user_id and (team is None or c.team_role(team) != "admin"):
        raise forbidden(f"User can only create keys for themselves. Got user_id={user_id}, Your ID={c.user_id}")
    if old is None or "models" in sent or "team_id" in sent or any(n in sent for n in LIMITS):
        limits = {n: fields.get(n) for n in LIMITS if old is None or n in sent}
        models = fields.get("models") if "models" in fields else (old.models if old is not None else [])
        wanted = check_grant(c, models or [], limits, team)
        if old is None or "models" in sent or "team_id" in sent:
            fields["models"] = wanted
        for n in LIMITS:
            if old is None or n in sent:
                fields[n] = limits.get(n)
    return fields


def into_metadata(sent: dict[str, Any], old: Key | None) -> None:
    """LiteLLM's top-level fields it keeps in the key's ``metadata`` (``enforced_params``, the temporary budget
    increase), moved there: over the metadata sent, else over the stored one; a null leaves it as it was."""
    moved = {n: sent.pop(n) for n in ("enforced_params", "temp_budget_increase", "temp_budget_expiry") if n in sent}
    increase, expiry = moved.get("temp_budget_increase"), moved.get("temp_budget_expiry")
    if (increase is None) != (expiry is None):
        raise bad_request("temp_budget_increase and temp_budget_expiry must be set together",
                          "temp_budget_increase" if increase is None else "temp_budget_expiry")
    if increase is not None and expiry is not None:
        if not math.isfinite(increase) or increase < 0:
            raise bad_request(f"temp_budget_increase must be >= 0, got {increase}", "temp_budget_increase")
        moved["temp_budget_expiry"] = (expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)).isoformat()
    moved = {n: v for n, v in moved.items() if v is not None}
    if moved:
        base = sent["metadata"] if "metadata" in sent else (old.metadata if old is not None else None)
        sent["metadata"] = {**(base or {}), **moved}


def _pairs(windows: list[dict[str, Any]] | None) -> set[tuple[Any, Any]]:
    return {(w.get("budget_duration"), w.get("max_budget")) for w in windows or () if isinstance(w, dict)}


async def _policy(ctx: Ctx, policy: KeyPolicy, sent: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """``sent`` under LiteLLM's key-generation settings (``config.key_policy``): a new key's defaults and who may
    mint it, then every key's bounds (a new key that names no bounded value gets the bound)."""
    c = ctx.caller
    if new:
        sent = dict(sent)
        d = policy.defaults
        for name in DEFAULTABLE:
            if sent.get(name) is None and d.get(name) is not None:
                sent[name] = d[name]
        if not sent.get("models") and d.get("models"):
            sent["models"] = list(d["models"])
        if not sent.get("metadata") and d.get("metadata"):
            sent["metadata"] = dict(d["metadata"])
        team_id = sent.get("team_id")
        if team_id is not None:
            if not c.is_admin:
                team = await ctx.store.get_team(team_id)
                role = c.team_role(team)
                if role is not None and role not in policy.team_roles:
                    raise bad_request(f"Team member role {role} not in allowed_team_member_roles="
                                      f"{list(policy.team_roles)}", "team_id")
            required = policy.team_required
        else:
            if policy.personal_roles is not None and c.role not in policy.personal_roles:
                raise bad_request("Personal key creation has been restricted by admin. Allowed roles="
                                  f"{list(policy.personal_roles)}. Your role={c.role}", "user_id")
            required = policy.personal_required
        for name in required:
            if name not in sent:
                raise bad_request(f"Required param {name} not in data", name)
    for name, bound in policy.upper.items():
        value = sent.get(name)
        if value is None:
            if new and name not in sent:
                sent[name] = bound
            continue
        if name in BOUNDED_DURATIONS:
            try:
                over = seconds(str(value)) > seconds(str(bound))
            except ValueError:
                raise bad_request(f"Invalid {name}={value!r}: expected a duration such as 30d", name) from None
        else:
            over = isinstance(value, (int, float)) and value > bound
        if over:
            raise bad_request(f"{name} is over max limit set in config - user_value={value}; max_value={bound}", name)
    return sent


def _generated(rec: Key, clear: str) -> dict[str, Any]:
    """LiteLLM's ``GenerateKeyResponse``: the key in clear (this once), ``token`` / ``token_id`` its hash."""
    out = record(rec)
    out.update(key=clear, token=rec.token, token_id=rec.token, litellm_budget_table=None)
    return out


# -- routes -------------------------------------------------------------------------------------------


async def generate(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(GenerateBody)
    return await _create(ctx, body, await _fields(ctx, body, old=None))


async def service_account(ctx: Ctx) -> Any:
    """LiteLLM's ``POST /key/service-account/generate``: a key of a team that belongs to no user (it outlives any
    member, and only the team's limits apply to it), with ``/key/generate``'s fields; ``user_id`` is ignored.
    The proxy admin or the team's admin (LiteLLM lets every member of the team make one: a member could then
    mint keys that go on working after it leaves the team)."""
    writer(ctx)
    body = await ctx.body(GenerateBody)
    team_id = opt(body.team_id)
    if team_id is None:
        raise bad_request("team_id is required for service account keys. Please specify `team_id` in the request "
                          "body.", "team_id")
    try:
        team = await ctx.store.get_team(team_id)
    except NotFound:
        raise bad_request("team_id does not exist in the database. Please specify a valid `team_id` in the request "
                          "body.", "team_id") from None
    if not ctx.caller.is_team_admin(team):
        raise forbidden(f"Only the proxy admin or an admin of team={team_id} can create service account keys. "
                        f"Your role={ctx.caller.role}")
    body.user_id = None
    return await _create(ctx, body, await _fields(ctx, body, old=None, service_account=True))


async def _create(ctx: Ctx, body: GenerateBody, fields: dict[str, Any]) -> Any:
    """The new key of ``/key/generate`` (its checked ``fields``): stored, answered once in clear."""
    clear = new_key(opt(body.key), ctx=ctx)
    await alias_free(ctx, fields.get("key_alias"))
    to = await mail_events.invite_address(ctx, opt(body.send_invite_email), fields.get("user_id"))
    token = hash_token(clear)
    fields = {k: v for k, v in fields.items() if v is not None}
    created_by = ctx.caller.user_id or "default_user_id"
    rec = Key(token=token, key_name=key_name(clear), created_by=created_by, updated_by=created_by, **fields)
    rec = await ctx.store.create_key(rec)
    ctx.invalidate(token)
    await mail_events.key_created(ctx, to, rec, clear)
    return _generated(rec, clear)


async def update(ctx: Ctx) -> Any:
    writer(ctx)
    return record(await update_one(ctx, await ctx.body(UpdateBody)))


async def update_one(ctx: Ctx, body: UpdateBody) -> Key:
    """One key changed as ``/key/update`` changes it (its checks, the caches, the budget counters)."""
    token = token_of(body.key)
    old = await ctx.store.get_key(token)
    await may_manage(ctx, old)
    fields = await _fields(ctx, body, old=old)
    if "key_alias" in fields:
        await alias_free(ctx, fields["key_alias"], token)
    fields["updated_by"] = ctx.caller.user_id or "default_user_id"
    rec = await ctx.store.update_key(token, **fields)
    ctx.invalidate(token)
    if "spend" in fields:
        await ctx.spend_set("key", token, fields["spend"] or 0.0)
    return rec


async def info(ctx: Ctx) -> Any:
    given_key = ctx.query.get("key")
    token = token_of(given_key) if given_key else ctx.caller.key_hash
    if token is None:
        raise bad_request("key is required", "key")
    try:
        rec = await ctx.store.get_key(token)
    except NotFound:
        raise NotFound("key", "Key not found in database") from None
    await may_read(ctx, rec)
    return {"key": given_key if given_key is not None else token, "info": record(rec, "token")}


async def list_keys(ctx: Ctx) -> Any:
    c = ctx.caller
    q = ctx.query
    page = ctx.int_arg("page", 1, high=10**9)
    size = ctx.int_arg("size", 10, high=100)
    user_id, team_id = q.get("user_id"), q.get("team_id")
    if not c.reads_all:
        if team_id is not None:
            team = await ctx.store.get_team(team_id)
            if c.team_role(team) != "admin":
                raise forbidden(f"Only team admins can list the keys of team={team_id}. Your role={c.role}")
        elif user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only list your own keys. Got user_id={user_id}, Your ID={c.user_id}")
        else:
            user_id = c.user_id
            if user_id is None:
                keys = [c.key] if c.key is not None else []
                return {"keys": [record(k) if ctx.flag("return_full_object") else k.token for k in keys],
                        "total_count": len(keys), "current_page": 1, "total_pages": 1}
    found = await ctx.store.list_keys(user_id=user_id, team_id=team_id, organization_id=q.get("organization_id"),
                                      key_alias=q.get("key_alias"), page=page, page_size=size)
    full = ctx.flag("return_full_object")
    return {"keys": [record(k) if full else k.token for k in found.items], "total_count": found.total,
            "current_page": page, "total_pages": found.total_pages}


async def delete(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(DeleteBody)
    if not body.keys and not body.key_aliases:
        raise bad_request("Provide keys or key_aliases to delete", "keys")
    recs: list[Key] = []
    for value in body.keys or []:
        try:
            recs.append(await ctx.store.get_key(token_of(value, "keys")))
        except NotFound:
            raise NotFound("key", "Key not found in database") from None
    for alias in body.key_aliases or []:
        try:
            recs.append(await ctx.store.get_key_by_alias(alias))
        except NotFound:
            raise msgspec_not_found(alias) from None
    for rec in recs:
        await may_manage(ctx, rec, route_name="/key/delete")
    tokens = list(dict.fromkeys(r.token for r in recs))
    await ctx.store.delete_keys(tokens)
    ctx.invalidate(*tokens)
    return {"deleted_keys": (body.keys or []) + (body.key_aliases or [])}


def msgspec_not_found(alias: str) -> Exception:
    return not_found(f"Key not found. No key with key_alias='{alias}'.", "key_aliases")


async def regenerate(ctx: Ctx) -> Any:
    writer(ctx)
    body = await ctx.body(RegenerateBody)
    raw = ctx.params.get("key") or opt(body.key)
    if not raw:
        raise bad_request("key is required", "key")
    token = token_of(raw)
    old = await ctx.store.get_key(token)
    await may_manage(ctx, old, route_name="/key/regenerate")
    clear = new_key(opt(body.new_key), "new_key", ctx)
    fields = await _fields(ctx, body, old=old)
    if "key_alias" in fields:
        await alias_free(ctx, fields["key_alias"], token)
    fields["updated_by"] = ctx.caller.user_id or "default_user_id"
    new_token = hash_token(clear)
    revoke_at = grace_until(opt(body.grace_period))
    dialect = ctx.store.dialect

    async def keep_old(c: Any) -> None:  # in the regeneration's transaction (store.deprecated_keys)
        await deprecated_keys.keep_old(c, dialect, token, new_token, revoke_at)

    rec = await ctx.store.regenerate_key(token, Key(token=new_token, key_name=key_name(clear)), keep_old, **fields)
    ctx.invalidate(token, new_token)
    await mail_events.key_rotated(ctx, rec, clear)
    return _generated(rec, clear)


def grace_until(value: str | None) -> datetime | None:
    """When a regenerated key stops working: ``grace_period`` (a 400 when malformed) or else LiteLLM's
    ``LITELLM_KEY_ROTATION_GRACE_PERIOD`` (malformed: logged, and the old key stops at once, as LiteLLM does);
    None: at once."""
    if value is None:
        env = os.environ.get("LITELLM_KEY_ROTATION_GRACE_PERIOD", "").strip()
        if not env:
            return None
        try:
            return _grace_end(duration_seconds(env, "LITELLM_KEY_ROTATION_GRACE_PERIOD"),
                              "LITELLM_KEY_ROTATION_GRACE_PERIOD")
        except GatewayError:
            log.warning("LITELLM_KEY_ROTATION_GRACE_PERIOD=%r is not a duration of at most %d days (24h, 2d ...): "
                        "regenerated keys stop working at once", escape_controls(env), MAX_GRACE_DAYS)
            return None
    return _grace_end(duration_seconds(value, "grace_period"), "grace_period") if value.strip() else None


MAX_GRACE_DAYS = 3650
"""The longest grace period (ten years: anything longer is a key that is never rotated, and overflows dates)."""


def _grace_end(seconds: int, param: str) -> datetime | None:
    if seconds > MAX_GRACE_DAYS * 86400:
        raise bad_request(f"{param} is at most {MAX_GRACE_DAYS} days", param)
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds > 0 else None


async def _set_blocked(ctx: Ctx, blocked: bool) -> Any:
    body = await ctx.body(KeyRef)
    token = token_of(body.key)
    old = await ctx.store.get_key(token)
    await may_manage(ctx, old, block=True)
    rec = await ctx.store.update_key(token, blocked=blocked, updated_by=ctx.caller.user_id or "default_user_id")
    ctx.invalidate(token)
    return record(rec)


async def block(ctx: Ctx) -> Any:
    return await _set_blocked(ctx, True)


async def unblock(ctx: Ctx) -> Any:
    return await _set_blocked(ctx, False)


RESET_REFUSED = "You must be a proxy admin or team admin to reset key spend"


async def reset_spend(ctx: Ctx) -> Any:
    """LiteLLM's ``POST /key/{key}/reset_spend`` (``{"reset_to": USD}``): the key's ``spend`` set back to
    ``reset_to``, at least 0 and at most its current spend and its budget (the smaller of its ``max_budget``
    and its budget row's); ``budget_reset_at`` and the spend logs are kept. The proxy admin or the key's team
    admin only. Unlike LiteLLM, who may call it is checked before anything about the key is answered (its
    400s show the key's spend and budget). The budget binds on the new spend at once: the key is read again
    by every worker, and its budget counters in Redis are set too (:meth:`Ctx.spend_set`)."""
    writer(ctx)
    token = token_of(ctx.params["key"])
    body = await ctx.body(ResetSpendBody)
    c = ctx.caller
    try:
        old = await ctx.store.get_key(token)
    except NotFound:
        if not c.is_admin:
            raise forbidden(RESET_REFUSED) from None
        raise not_found(f"Key {token} not found.", "key") from None
    if not c.is_admin:
        team = None
        with contextlib.suppress(NotFound):  # a team deleted under the key: nobody's to reset but the admin
            team = await _team(ctx, old.team_id)
        if team is None or c.team_role(team) != "admin":
            raise forbidden(RESET_REFUSED)
    reset_to, current = body.reset_to, old.spend or 0.0
    if not math.isfinite(reset_to) or reset_to < 0:
        raise bad_request("reset_to must be >= 0", "reset_to")
    if reset_to > current:
        raise bad_request(f"reset_to ({reset_to}) must be <= current spend ({current})", "reset_to")
    budgets = [old.max_budget] if old.max_budget is not None else []
    if old.budget_id is not None:
        with contextlib.suppress(NotFound):
            row = await ctx.store.get_budget(old.budget_id)
            if row.max_budget is not None:
                budgets.append(row.max_budget)
    if budgets and reset_to > min(budgets):
        raise bad_request(f"reset_to ({reset_to}) must be <= budget ({min(budgets)})", "reset_to")
    rec = await ctx.store.update_key(token, spend=reset_to, updated_by=c.user_id or "default_user_id")
    ctx.invalidate(token)
    await ctx.spend_set("key", token, reset_to)
    return {"key_hash": token, "spend": reset_to, "previous_spend": current, "max_budget": rec.max_budget,
            "budget_reset_at": rec.budget_reset_at}


async def health(ctx: Ctx) -> Any:
    """LiteLLM's ``/key/health``: the calling key's logging callbacks are fine (relaygate has none per key)."""
    key = ctx.caller.key
    if key is not None and key.expires is not None and key.expires < datetime.now(UTC):
        return {"key": "unhealthy", "logging_callbacks": None}
    return {"key": "healthy", "logging_callbacks": None}
