"""What every management route shares: who the caller is, its role, bodies, errors and answers.

A management handler is ``async def handler(ctx: Ctx) -> object``: :func:`route` wraps it so that the
caller is authenticated (the pipeline's resolver: master key, config or store keys), its LiteLLM role
resolved once (:class:`Caller`), the store is present, and the handler's return value is answered as JSON
(200). Errors are raised, never written: a :class:`~relaygate.core.errors.GatewayError` reaches the client in
LiteLLM's shape ``{"error": {"message", "type", "param", "code"}}``; the store's ``NotFound`` is re-raised
naming the request field that held the id (``param``), ``Duplicate`` / ``InvalidField`` are 400,
``StoreUnavailable`` and a connection that dropped mid-request 503.

Callers: a key (``Authorization``, ``x-litellm-api-key`` ...) as the pipeline resolves it; a request with no
key header but the admin UI's session cookie is its session's user (:func:`caller_principal`), with that
user's current role, and a state change needs the session's ``x-csrf-token`` (``relaygate.ui.sessions``).
A JWT (``enable_jwt_auth``) is refused on a route outside its ``admin_allowed_routes`` /
``team_allowed_routes`` (LiteLLM's 401, ``auth.jwt_routes``) before any role rule runs.

Roles (LiteLLM's ``LitellmUserRoles``): the master key (and an open gateway's anonymous caller) is
``proxy_admin``; a virtual key is its user's ``user_role`` (``Principal.role`` once auth provides it, else
the user row in the store), ``internal_user`` when it has none. ``proxy_admin_viewer`` reads everything
and writes nothing; ``internal_user`` manages its own keys, and its teams' keys and members where it is a
team ``admin``; ``internal_user_viewer`` only reads its own. A route a role may never use answers LiteLLM's
401 ``Only proxy admin can be used to ...``; an object the caller may not touch a 403.

Bodies decode straight into msgspec Structs whose optional fields default to ``UNSET``, so an update
knows which fields were sent (:func:`given`) and ``null`` (clear the value) apart from absent; a body that
does not fit is a 400 naming the field.
"""

from __future__ import annotations

import functools
import logging
import re
import typing
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

import msgspec

from relaygate.auth import Principal, PrincipalKind
from relaygate.budgets.periods import Calendar
from relaygate.budgets.windows import normalize as normalize_windows
from relaygate.core.errors import GatewayError
from relaygate.cost import to_pico
from relaygate.http.body import read_body
from relaygate.http.respond import send_body, send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management.events import told
from relaygate.management.masking import mask_metadata
from relaygate.observe.alert_rules import MANAGEMENT_KINDS
from relaygate.store import Duplicate, InvalidField, Key, NotFound, Store, StoreUnavailable, Team, User
from relaygate.store.transaction import Transaction as Tx  # noqa: F401  (re-exported: several writes, one transaction)
from relaygate.ui import sessions as ui_sessions

S = TypeVar("S", bound=msgspec.Struct)
log = logging.getLogger("relaygate.management")


class Gateway(Protocol):
    """What the management routes use of ``gateway.core.Gateway`` (no import of it: no cycle)."""

    @property
    def runtime(self) -> Any: ...

    store: Store | None

PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
INTERNAL_USER = "internal_user"
INTERNAL_USER_VIEWER = "internal_user_viewer"
USER_ROLES = (PROXY_ADMIN, PROXY_ADMIN_VIEWER, INTERNAL_USER, INTERNAL_USER_VIEWER)
TEAM_ROLES = ("admin", "user")

UNSET: Any = msgspec.UNSET
"""Default of every optional body field: absent (``msgspec.UNSET``), told apart from an explicit null."""

_ID_FIELD = {"key": "key", "team": "team_id", "user": "user_id", "team member": "user_id",
             "organization": "organization_id", "organization member": "user_id", "customer": "user_id",
             "budget": "budget_id", "model": "model_id"}
"""The request field that names each store entity: ``param`` of its 404."""


# -- errors -------------------------------------------------------------------------------------------


def bad_request(message: str, param: str | None = None) -> GatewayError:
    """A 400 in LiteLLM's ``bad_request_error`` shape, naming the offending field."""
    return GatewayError(message, status=400, type="bad_request_error", param=param or "None")


def not_found(message: str, param: str) -> GatewayError:
    return GatewayError(message, status=404, type="not_found_error", param=param)


def forbidden(message: str) -> GatewayError:
    """The caller may use the route but not on this object (LiteLLM's 403 ``HTTPException``)."""
    return GatewayError(message, status=403, type="auth_error", param="None")


def no_store() -> GatewayError:
    return GatewayError("Database not connected. Connect a database to your proxy (database_url or DATABASE_URL) "
                        "to use the management API", status=503, type="service_unavailable", param="None")


def _from_store(exc: GatewayError) -> GatewayError:
    """A store error with ``param`` naming the request's field."""
    if isinstance(exc, NotFound):
        param = _ID_FIELD.get(exc.entity, exc.entity)
        return not_found(f"{exc.entity.capitalize()} not found: {exc.ident}", param)
    if isinstance(exc, Duplicate):
        if exc.entity == "key" and exc.field == "key_alias":
            return bad_request(exc.message, "key_alias")
        if exc.entity == "key" and exc.field == "token":
            return bad_request("Key already exists: a key with this value is already in use", "key")
        return bad_request(exc.message, exc.field)
    if isinstance(exc, InvalidField):
        return bad_request(exc.message, exc.field)
    return exc


# -- the caller ---------------------------------------------------------------------------------------


@dataclass
class Caller:
    """Who calls a management route and what it holds; a key can never grant more than this."""

    role: str
    principal: Principal
    user_id: str | None = None
    key_hash: str | None = None
    team_id: str | None = None
    key: Key | None = None
    """The caller's own key row (None for the master key or a key from the config file)."""
    user: User | None = None
    models: frozenset[str] | None = None
    """Models the caller may use (None: every model): its key's and its user's allow-lists intersected."""
    limits: dict[str, float] = field(default_factory=dict)
    """The caller's own caps (``tpm_limit``, ``rpm_limit``, ``max_parallel_requests``, ``max_budget``):
    the smaller of its key's and its user's."""

    @property
    def is_admin(self) -> bool:
        return self.role == PROXY_ADMIN

    @property
    def reads_all(self) -> bool:
        return self.role in (PROXY_ADMIN, PROXY_ADMIN_VIEWER)

    @property
    def may_write(self) -> bool:
        return self.role in (PROXY_ADMIN, INTERNAL_USER)

    def team_role(self, team: Team) -> str | None:
        """The caller's role in ``team`` (``admin`` / ``user``), or None when it is not a member."""
        if self.user_id is None:
            return None
        for m in team.members_with_roles:
            if m.get("user_id") == self.user_id:
                return str(m.get("role") or "user")
        return None

    def is_team_admin(self, team: Team) -> bool:
        return self.is_admin or self.team_role(team) == "admin"


async def caller_principal(gw: Gateway, scope: Scope) -> Principal:
    """Who calls: the request's key as the pipeline resolves it (401 for a bad one), or, when it carries no
    key header, its admin-UI session cookie (``ui.sessions.authenticate``: the session's user with its
    current role; 401 for a dead session, 403 for a state change without the session's CSRF token)."""
    p = await ui_sessions.authenticate(gw, scope)
    if p is not None:
        return p
    principals = gw.runtime.principals
    headers = scope["headers"]
    resolved: Principal = principals.resolve_cached(headers) or await principals.resolve(headers)
    if resolved.jwt is not None:  # a JWT may call the routes of its admin_allowed_routes / team_allowed_routes
        resolved.jwt.check(scope["path"])
    if resolved.routes is not None:  # a virtual key's allowed_routes (auth.key_routes)
        resolved.routes.check(scope["path"])
    return resolved


async def resolve_caller(gw: Gateway, scope: Scope, store: Store) -> Caller:
    """Authenticate the request (401 as on every route) and resolve its role and holdings."""
    p = await caller_principal(gw, scope)
    if p.kind is not PrincipalKind.KEY:
        return Caller(PROXY_ADMIN, p, key_hash=p.key_hash)
    caller = Caller(INTERNAL_USER, p, user_id=p.user_id, key_hash=p.key_hash, team_id=p.team_id)
    if p.key_hash is not None:
        try:
            caller.key = await store.get_key(p.key_hash)
        except NotFound:
            caller.key = None
    if caller.user_id is not None:
        try:
            caller.user = await store.get_user(caller.user_id)
        except NotFound:
            caller.user = None
    role = getattr(p, "role", None) or (caller.user.user_role if caller.user is not None else None)
    caller.role = role if role in USER_ROLES else INTERNAL_USER
    models: frozenset[str] | None = p.key.models if p.key is not None else None
    if caller.key is not None and caller.key.models:
        models = _meet(models, frozenset(caller.key.models))
    if caller.user is not None and caller.user.models:
        models = _meet(models, frozenset(caller.user.models))
    caller.models = models
    for holder in (caller.key, caller.user):
        if holder is None:
            continue
        for name in ("tpm_limit", "rpm_limit", "max_parallel_requests", "max_budget"):
            value = getattr(holder, name)
            if value is not None:
                caller.limits[name] = min(value, caller.limits.get(name, value))
    return caller


def _meet(a: frozenset[str] | None, b: frozenset[str]) -> frozenset[str]:
    return b if a is None else a & b


def admin_only(ctx: Ctx, *, read: bool = False) -> None:
    """LiteLLM's route check: only the proxy admin (and, for ``read`` routes, its viewer) passes."""
    c = ctx.caller
    if c.is_admin or (read and c.role == PROXY_ADMIN_VIEWER):
        return
    refuse_route(ctx)


async def check_admin(gw: Gateway, scope: Scope, receive: Receive, params: Params, path: str, *,
                      read: bool = False) -> None:
    """For admin routes that need no database (``/provider/budgets``, ``/cache/*``): 401 as on every route
    for a bad key; LiteLLM's admin-route refusal for a key that is not the admin's (or, for ``read`` routes,
    its viewer's)."""
    p = await caller_principal(gw, scope)
    if p.kind is not PrincipalKind.KEY:
        return  # the master key, or an open gateway
    store = gw.store
    if store is None:  # a key from the config file: an internal user
        raise GatewayError(
            "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
            f"keys/users/teams. Route={path}. Your role={INTERNAL_USER}. Your user_id={p.user_id or 'unknown'}",
            status=401, type="auth_error", param="None")
    caller = await resolve_caller(gw, scope, store)
    admin_only(Ctx(gw, store, caller, path, params, {}, receive, scope), read=read)


def refuse_route(ctx: Ctx) -> None:
    c = ctx.caller
    raise GatewayError(
        "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
        f"keys/users/teams. Route={ctx.path}. Your role={c.role}. Your user_id={c.user_id or 'unknown'}",
        status=401, type="auth_error", param="None")


def no_env_references(caller: Caller, metadata: Any) -> None:
    """Only the proxy admin writes callback variables that name the gateway's environment (``os.environ/``,
    ``auth.targets.env_references``): resolved when the key is read, they would hand the gateway's secrets to
    whatever host the writer names. 403 naming the variables."""
    if caller.is_admin:
        return
    from relaygate.auth.targets import env_references

    names = env_references(metadata)
    if names:
        raise forbidden(f"Only the proxy admin can set callback_vars that reference the environment "
                        f"('os.environ/'): {sorted(set(names))}. Pass the values themselves.")


def writer(ctx: Ctx) -> None:
    """Viewers read only: a write route refuses them as LiteLLM's route check does."""
    if not ctx.caller.may_write:
        refuse_route(ctx)


ALL_TEAM_MODELS = "all-team-models"
"""A key's model naming its team's models, whatever they are when the key is used (LiteLLM's)."""


def check_grant(caller: Caller, models: Sequence[str], limits: dict[str, Any], team: Team | None) -> list[str]:
    """Refuse a grant beyond what the caller (and, for a team key, the team) holds; the models to store.

    ``models`` empty means every model: from a restricted grantor it becomes the grantor's allow-list; for a
    team key it stays empty, which means the team's models as they are when the key is used (as
    :data:`ALL_TEAM_MODELS` does), so a model the team gets later is the key's too, as in LiteLLM.
    ``limits`` maps ``tpm_limit`` / ``rpm_limit`` / ``max_parallel_requests`` / ``max_budget`` to the values
    asked (None: not asked); a cap the caller has is filled in when the value was not asked (mutated)."""
    caps: list[tuple[str, frozenset[str] | None, dict[str, Any], bool]] = []
    if not caller.is_admin:
        caps.append(("your", caller.models, caller.limits, False))
    if team is not None:
        team_caps = {n: getattr(team, n) for n in ("tpm_limit", "rpm_limit", "max_parallel_requests", "max_budget")
                     if getattr(team, n) is not None}
        caps.append((f"team={team.team_id}", frozenset(team.models) if team.models else None, team_caps, True))
    wanted = list(models)
    if ALL_TEAM_MODELS in wanted and team is None:  # it would mean every model: only a team gives it a meaning
        raise bad_request(f"models: {ALL_TEAM_MODELS} needs a team_id", "models")
    # an empty list or all-team-models: the team's models, when the team has a list (not every model)
    dynamic = team is not None and bool(team.models) and not {"all-proxy-models", "*"} & set(team.models)
    for who, allowed, lims, of_team in caps:
        if allowed is not None and "all-proxy-models" not in allowed and "*" not in allowed:
            if not dynamic and (not wanted or ALL_TEAM_MODELS in wanted):
                wanted = sorted(allowed)  # every model, from a restricted grantor: its own list
            named = [m for m in wanted if m != ALL_TEAM_MODELS]
            if not of_team and dynamic and (not wanted or ALL_TEAM_MODELS in wanted):
                assert team is not None
                named += [m for m in team.models if m]  # the team's models, checked against the grantor's
            extra = [m for m in named if m not in allowed]
            if extra:
                raise forbidden(f"Cannot grant models {extra}: not in {who} allowed models {sorted(allowed)}")
        for name, cap in lims.items():
            asked = limits.get(name)
            if asked is None:
                limits[name] = cap
            elif asked > cap:
                raise forbidden(f"{name}={asked} is greater than {who} {name}={cap}")
    return wanted


# -- bodies -------------------------------------------------------------------------------------------

_AT = re.compile(r"\$\.([A-Za-z_][A-Za-z0-9_]*)")


def decode(body: bytes, kind: type[S]) -> S:
    """``body`` (JSON; empty: ``{}``) as ``kind``; a 400 naming the first field that does not fit."""
    try:
        got = msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _AT.search(text)
        if m is None and "missing required field" in text:
            m = re.search(r"`(\w+)`", text)
        param = m.group(1) if m else None
        raise bad_request(f"Invalid request body: {text}", param) from None
    except msgspec.DecodeError as exc:
        raise bad_request(f"Invalid request body: not JSON ({exc})") from None
    if isinstance(got, msgspec.Struct):
        _check_ints(got)
    return got


INT_MAX = 2**63 - 1
"""The largest integer a typed field takes (a database's 64-bit ``INTEGER``)."""


def _fits(value: Any) -> bool:
    return type(value) is not int or -INT_MAX - 1 <= value <= INT_MAX


def _has_int(tp: Any) -> bool:
    """Whether a field's type takes ``int`` itself, or in a list or as an object's values (never through ``Any``)."""
    if tp is int:
        return True
    return any(_has_int(a) for a in typing.get_args(tp))


@functools.cache
def _int_fields(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(kind) if _has_int(f.type))


def _check_ints(got: msgspec.Struct) -> None:
    """A 400 naming the first integer field (or list or object of integers) holding a value past 64 bits: msgspec
    takes any size for ``int``, and SQLite's driver raised ``OverflowError`` on one (a 500 on ``/key/generate``
    with ``rpm_limit: 2**70``). Fields of JSON (``metadata`` ...) keep any number: they are stored as JSON."""
    for name in _int_fields(type(got)):
        value = getattr(got, name)
        if isinstance(value, dict):
            ok = all(_fits(v) for v in value.values())
        elif isinstance(value, list):
            ok = all(_fits(v) for v in value)
        else:
            ok = _fits(value)
        if not ok:
            raise bad_request(f"{name}: integer out of range (at most {INT_MAX})", name)


_ASKS_NOTHING: tuple[Any, ...] = (None, False, "", [], {})
_DEFAULT_VALUES = {"rpm_limit_type": "best_effort_throughput", "tpm_limit_type": "best_effort_throughput"}
"""Values of refused fields that ask for what relaygate does anyway (LiteLLM's default limit type)."""


def refuse_not_kept(sent: dict[str, Any], names: Sequence[str]) -> None:
    """A 400 naming the first of ``names`` that ``sent`` (a request's fields) gives a value asking for something
    (not null, false, empty, or LiteLLM's default): LiteLLM's fields of features relaygate does not have, refused
    rather than dropped, so an operator never believes them enforced."""
    for name in names:
        value = sent.get(name)
        if value not in _ASKS_NOTHING and value != _DEFAULT_VALUES.get(name):
            raise bad_request(f"{name}: not supported by this gateway (relaygate does not have the feature it "
                              "sets); leave it out or null", name)


def given(s: msgspec.Struct) -> dict[str, Any]:
    """The fields of a decoded body that were sent (null included), by name."""
    return {f: v for f in s.__struct_fields__ if (v := getattr(s, f)) is not msgspec.UNSET}


def opt(value: Any, default: Any = None) -> Any:
    """``value`` unless it is UNSET (then ``default``)."""
    return default if value is msgspec.UNSET else value


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


def duration_seconds(value: str, param: str) -> int:
    """LiteLLM's durations: ``30s``, ``30m``, ``1h``, ``1d``, ``1w``, ``1mo`` (30 days); else 400 on ``param``."""
    m = _DURATION.match(value)
    if m is None:
        raise bad_request(f"Invalid {param}={value!r}: expected a number and a unit s, m, h, d, w or mo "
                          "(e.g. '30d', '1h')", param)
    return int(m.group(1)) * _UNIT[m.group(2)]


def after(value: str | None, param: str) -> datetime | None:
    """Now plus the duration ``value`` (None, ``-1`` or empty: never)."""
    if value is None or value in ("", "-1"):
        return None
    try:
        return datetime.now(UTC) + timedelta(seconds=duration_seconds(value, param))
    except OverflowError:  # past the last date there is
        raise bad_request(f"Invalid {param}={value!r}: too long (a date past the year 9999)", param) from None


def budget_reset(ctx: Ctx, value: str | None) -> datetime | None:
    """The ``budget_reset_at`` of a ``budget_duration`` set now (None, ``-1`` or empty: never): where LiteLLM
    1.110 puts the first reset (``get_budget_reset_time``), in ``litellm_settings.timezone`` at
    ``budget_reset_time`` (``budgets.periods.Calendar.next_reset``: ``1d`` the next midnight, ``1mo`` / ``30d``
    the 1st of the next month ...); a malformed one is a 400 on ``budget_duration``."""
    if value is None or value in ("", "-1"):
        return None
    duration_seconds(value, "budget_duration")
    g = ctx.gw.runtime.config.general
    try:
        at = Calendar(g.timezone, g.budget_reset_time).next_reset(value, datetime.now(UTC).timestamp())
    except (ValueError, OverflowError) as exc:
        raise bad_request(f"Invalid budget_duration={value!r}: {exc}", "budget_duration") from None
    return datetime.fromtimestamp(at, UTC)


def budget_windows(ctx: Ctx, sent: dict[str, Any]) -> None:
    """``budget_limits`` in ``sent`` checked and put in the stored form (``budgets.windows.normalize``: each
    window's ``reset_at`` its first reset, as :func:`budget_reset`); a 400 on ``budget_limits`` names the
    problem."""
    if "budget_limits" in sent:
        try:
            sent["budget_limits"] = normalize_windows(sent["budget_limits"], lambda d: budget_reset(ctx, d))
        except ValueError as exc:
            raise bad_request(str(exc), "budget_limits") from None


def non_negative(values: dict[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise bad_request(f"{name} must be >= 0, got {value}", name)


# -- answers ------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def record(rec: msgspec.Struct, *drop: str) -> dict[str, Any]:
    """A record as a JSON-ready mapping (LiteLLM's field names), without ``drop``; the logging secrets of its
    ``metadata`` masked (``management.masking``: no answer carries them)."""
    out: dict[str, Any] = msgspec.to_builtins(rec)
    for name in drop:
        out.pop(name, None)
    meta = out.get("metadata")
    if meta:
        out["metadata"] = mask_metadata(meta)
    return out


# -- routes -------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """One management request: the gateway, its store, the caller, the path parameters and the query."""

    gw: Gateway
    store: Store
    caller: Caller
    path: str
    params: Params
    query: dict[str, str]
    receive: Receive
    scope: Scope
    answer_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Headers a handler adds to its answer (LiteLLM's ``x-litellm-spend-logs-truncated``)."""
    sent: Any = None
    """The request body as :meth:`body` decoded it (for the management event alerts, ``events``)."""

    async def body(self, kind: type[S], refuse: Sequence[str] = ()) -> S:
        """The body as ``kind``; ``refuse``: LiteLLM's fields of features relaygate lacks, each a 400 naming it
        when sent with a value that asks for something (:func:`refuse_not_kept`)."""
        raw = await read_body(self.receive, self.gw.runtime.body_limits)
        got = self.sent = decode(raw, kind)
        if refuse and raw:
            sent = msgspec.json.decode(raw)
            if isinstance(sent, dict):
                refuse_not_kept(sent, refuse)
        return got

    def invalidate(self, *token_hashes: str) -> None:
        """Forget changed keys: ``Gateway.keys_changed`` (this worker now, others through Redis when set,
        else the store's change poll), or this worker's principal cache on a gateway without it."""
        if not token_hashes:
            return
        changed = getattr(self.gw, "keys_changed", None)
        if changed is not None:
            changed(list(token_hashes))
            return
        principals = getattr(self.gw.runtime, "principals", None)
        inval = getattr(principals, "invalidate", None)
        if inval is None:
            return
        for h in token_hashes:
            inval(h)

    def invalidate_all(self) -> None:
        """Forget every cached key (a team, organization or model changed under them), on every worker."""
        changed = getattr(self.gw, "keys_changed", None)
        if changed is not None:
            changed(None)
            return
        clear = getattr(getattr(self.gw.runtime, "principals", None), "clear", None)
        if clear is not None:
            clear()

    async def spend_set(self, kind: str, ident: str | None, usd: float) -> None:
        """An entity's ``spend`` was set (``ident`` None: every entity of ``kind``): the budget counters shared
        through Redis follow (``budgets.shared.SharedSpend.set_spend``), else its budget would go on counting
        the old spend until its period ends. Nothing to do without Redis (the workers read the rows again
        within a second). A Redis failure is LiteLLM-shaped 503 naming what happened: the database holds the
        new spend already, and repeating the call is safe."""
        shared = getattr(getattr(self.gw, "budgets", None), "shared", None)
        if shared is None:
            return
        try:
            await shared.set_spend(kind, ident, to_pico(usd))
        except Exception as exc:
            log.warning("spend of %s %s set in the database, but not in the budget counters in Redis (%s: %s)",
                        kind, ident if ident is not None else "(all)", type(exc).__name__, exc)
            raise GatewayError(
                f"The spend was set in the database, but the budget counters shared through Redis could not be "
                f"updated ({type(exc).__name__}): budgets may go on counting the old spend. Repeat the call.",
                status=503, type="service_unavailable", param="None") from exc

    async def json_object(self, param: str) -> dict[str, Any]:
        """The body as a JSON object (an empty body: ``{}``); else a 400 naming ``param``."""
        try:
            body = msgspec.json.decode(await read_body(self.receive, self.gw.runtime.body_limits) or b"{}")
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object", param)
        return body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").strip().lower() in ("1", "true", "yes", "on")

    def int_arg(self, name: str, default: int, low: int = 1, high: int = 1000) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"{name} must be an integer, got {raw!r}", name) from None
        if not low <= value <= high:
            raise bad_request(f"{name} must be between {low} and {high}, got {value}", name)
        return value


Handler = Callable[[Ctx], Awaitable[Any]]


async def every_page(fetch: Callable[..., Awaitable[Any]]) -> list[Any]:
    """Every item of a paged store listing (``fetch(page=, page_size=)``), read 1,000 at a time."""
    out: list[Any] = []
    page = 1
    while True:
        got = await fetch(page=page, page_size=1000)
        out += got.items
        if page >= got.total_pages:
            return out
        page += 1


@dataclass(frozen=True)
class Download:
    """A handler's answer that is not JSON (an export): sent as it is, with its content type and a download
    name (``Content-Disposition: attachment``; the name is the handler's, never the client's text)."""

    body: bytes
    content_type: bytes
    filename: str


def query_of(scope: Scope) -> dict[str, str]:
    qs = scope.get("query_string") or b""
    return {k: v[0] for k, v in urllib.parse.parse_qs(qs.decode("latin-1")).items() if v}


class _NoStore:
    """The ``store`` of a route served without a database (``route(..., store_optional=True)``): any use of it
    is the 503 a store-bound route answers."""

    def __getattr__(self, name: str) -> Any:
        raise no_store()


_NO_STORE = cast("Store", _NoStore())


def _storeless_caller(p: Principal) -> Caller:
    """The caller of a route served without a database: its role from the key alone (the master key, a JWT
    or a UI session: admin; a virtual key: an internal user), no rows read."""
    if p.kind is not PrincipalKind.KEY:
        return Caller(PROXY_ADMIN, p, key_hash=p.key_hash)
    models = p.key.models if p.key is not None else None
    return Caller(INTERNAL_USER, p, user_id=p.user_id, key_hash=p.key_hash, team_id=p.team_id, models=models)


def route(t: RouteTable, gw: Gateway, method: str, path: str, handler: Handler, *,
          store_optional: bool = False) -> None:
    """Add ``handler`` at ``method path``, wrapped: caller, store, errors, the JSON answer. Without a
    database every route answers 503 after authenticating, but a ``store_optional`` one (a calculator that
    reads only the configuration, as LiteLLM's ``/spend/calculate`` works on a proxy without a database),
    which is served with a caller resolved from its key alone. A write LiteLLM alerts on
    (``alert_rules.MANAGEMENT_KINDS``) is told to the alerter once it succeeded (``events.told``)."""
    event = MANAGEMENT_KINDS.get((method, path))

    async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        store = gw.store
        if store is None:
            p = await caller_principal(gw, scope)  # 401 before 503
            if not store_optional:
                raise no_store()
            ctx = Ctx(gw, _NO_STORE, _storeless_caller(p), path, params, query_of(scope), receive, scope)
            await send_json(send, 200, _encoder.encode(await handler(ctx)), ctx.answer_headers)
            return
        try:
            caller = await resolve_caller(gw, scope, store)
            ctx = Ctx(gw, store, caller, path, params, query_of(scope), receive, scope)
            result = await handler(ctx)
            if event is not None:
                told(gw, event, caller, ctx.sent, params)
        except (NotFound, Duplicate, InvalidField) as exc:
            raise _from_store(exc) from None
        except StoreUnavailable:
            raise
        except (OSError, ConnectionError) as exc:
            raise GatewayError(f"Database unavailable ({type(exc).__name__}): try again later", status=503,
                               type="service_unavailable", param="None") from exc
        if isinstance(result, Download):
            await send_body(send, 200, result.body, [*ctx.answer_headers, (b"content-type", result.content_type),
                                                     (b"cache-control", b"no-store"), (b"content-disposition",
                                                     f'attachment; filename="{result.filename}"'.encode())])
            return
        await send_json(send, 200, _encoder.encode(result), ctx.answer_headers)

    t.add(method, path, serve)


