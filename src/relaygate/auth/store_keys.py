"""Virtual keys kept in the database: :class:`StoreKeys`, the :class:`~relaygate.auth.resolver.KeyLookup` over
the store, and the set of blocked customers.

What it owns: turning one key's rows — the key (``rg_keys``, by the SHA-256 ``token``), its team, its user
and its organization — into one :class:`~relaygate.auth.keys.KeyInfo`, the only thing the request path
reads. It runs on a resolver cache miss only (the resolver caches its answer, positive or negative), never
per request.

Rules, as LiteLLM's proxy applies them (``user_api_key_auth.py``, ``auth_checks.common_checks``):

- **models**: the key's ``models`` (model access groups expanded, ``all-team-models`` = the team's), and
  the team's ``models`` when both are set: a model must pass both (a set intersection when neither has
  wildcards, else two checks). A key with no models uses its team's; neither: every model.
- **refusals** (the key is known, and cached as such, but may not be used): a blocked key, 401
  ``Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.``; a blocked team,
  401 ``Authentication Error, Team=<id> is blocked. Update via `/team/unblock` if you're an admin.``; an
  expired key, 401 ``expired_key`` ``Authentication Error - Expired Key. Key Expiry time <t> and current
  time <now>`` (``param`` the key's display name). A key that expires later is cached no longer than
  until it expires.
- **limits**: key ``rpm_limit`` / ``tpm_limit`` / ``max_parallel_requests``, team ``rpm_limit`` /
  ``tpm_limit`` / ``max_parallel_requests``, user ``rpm_limit`` / ``tpm_limit`` and the user's as a member of
  the key's team (its membership's budget row, else the team's default member budget: LiteLLM's team member
  rate limits, one more read for a key with both a team and a user) become the limiter's buckets, named as
  the config's keys' are (so a key's limits are the same buckets whichever worker or instance serves it).
- **carried**: aliases (the key's over its team's ``model_aliases``; the pipeline's resolve stage applies
  them), the owner's ``user_role``, and the rows themselves (budgets, spend, per-model limits) for the
  budget stage.

A hash ``rg_keys`` does not have may be a key regenerated with a grace period (``store.deprecated_keys``):
until its ``revoke_at`` it resolves to the key it now stands for (its limits, budgets and spend are that key's,
as LiteLLM's), cached at most :data:`GRACE_READ_AGAIN` seconds and never past its end, never in Redis.

A failure of the database (anything but "no such row") is raised as :class:`KeyStoreDown`, a plain
exception: the resolver answers 503 ("the database is unavailable") and, for keys it had cached, serves
them on (``allow_requests_on_db_unavailable``). Customers: :func:`blocked_customers` reads the ids of the
blocked ones (a handful, typically none), so the request path tests a set, and only when it is not empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relaygate.auth.keys import KeyInfo, KeyRouter
from relaygate.auth.shared import SharedKeys
from relaygate.auth.targets import key_logging, logging_off
from relaygate.budgets.temporary import increase_of
from relaygate.config.model import KeyConfig
from relaygate.core import errors
from relaygate.core.access import field_path
from relaygate.core.ratelimit import PREFIX, Bucket
from relaygate.store import deprecated_keys
from relaygate.store.errors import NotFound

if TYPE_CHECKING:
    from relaygate.store import Key, Organization, Store, Team, User

__all__ = ["KeyStoreDown", "StoreKeys", "blocked_customers", "customer_blocked", "team_policy"]

_ALL = ("*", "all-proxy-models")
GRACE_READ_AGAIN = 5.0
"""Seconds a regenerated key in its grace period is cached at most: a change of the key it stands for (blocked,
deleted, regenerated again) invalidates that key's hash, not the old one's, so the old one is read again soon."""
MAX_BLOCKED_CUSTOMERS = 100_000
"""At most this many blocked customer ids are held per worker (more are logged and ignored)."""


class KeyStoreDown(Exception):
    """The database did not answer a key lookup (the resolver's 503; cached keys keep working)."""


def key_blocked() -> errors.GatewayError:
    return errors.AuthError("Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
                            param="None")


def team_blocked(team_id: str) -> errors.GatewayError:
    return errors.AuthError(f"Authentication Error, Team={team_id} is blocked. Update via `/team/unblock` if "
                            "you're an admin.", param="None")


def key_expired(expires: datetime, shown: str | None) -> errors.GatewayError:
    now = datetime.now(UTC)
    return errors.GatewayError(f"Authentication Error - Expired Key. Key Expiry time {expires} and current time {now}",
                               status=401, type="expired_key", param=shown or "None", code="401")


def customer_blocked(customer: str) -> errors.GatewayError:
    """LiteLLM's answer to a blocked end user (its blocked-user check): 400 naming the user."""
    return errors.GatewayError(f"User blocked from making LLM API Calls. User={customer}", status=400,
                               type="invalid_request_error", param=None, code="400")


class StoreKeys:
    """A :class:`~relaygate.auth.resolver.KeyLookup` over the store's keys (with team, user, organization)."""

    remote = True
    """Lookups cost a database query: the resolver bounds their rate."""

    def __init__(self, store: Store, groups: Mapping[str, tuple[str, ...]] | None = None,
                 shared: SharedKeys | None = None, teams: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.store = store
        self.groups: Mapping[str, tuple[str, ...]] = groups or {}
        self.teams: Mapping[str, dict[str, Any]] = teams or {}
        """Teams' logging from the config (``default_team_settings``, ``auth.targets.team_defaults``)."""
        self.shared = shared
        """The Redis layer between the worker's cache and the database (``auth.shared``), when configured."""
        self.queries = 0
        """Database lookups this object made (each is 1 to 4 row reads; Redis hits are not counted)."""

    async def find(self, token_hash: str) -> KeyInfo | None:
        shared = self.shared
        version = 0
        if shared is not None:
            version, rows = await shared.get(token_hash)
            if rows is not None:
                return build_key(*rows[:4], self.groups, self.teams, member=rows[4])
        self.queries += 1
        read_at = time.time()
        grace: datetime | None = None
        try:
            try:
                key = await self.store.get_key(token_hash)
            except NotFound:
                found = await deprecated_keys.active_for(self.store, token_hash)
                if found is None:
                    return None
                try:  # a regenerated key in its grace period: the key it now stands for
                    key = await self.store.get_key(found[0])
                except NotFound:
                    return None
                grace = found[1]
            team, user, org, member = await asyncio.gather(
                self._get("get_team", key.team_id), self._get("get_user", key.user_id),
                self._get("get_organization", key.organization_id), self._member(key))
            if org is None and team is not None and team.organization_id:
                org = await self._get("get_organization", team.organization_id)
        except Exception as exc:
            if isinstance(exc, errors.GatewayError) and exc.status < 500:
                raise
            raise KeyStoreDown(f"{type(exc).__name__}: {exc}") from exc
        info = build_key(key, team, user, org, self.groups, self.teams, member=member)
        info.read_at = read_at
        if grace is not None:  # never shared (its rows are the new key's), read again soon and at its end
            ends = [read_at + GRACE_READ_AGAIN, grace.timestamp()]
            if info.read_again is not None:
                ends.append(info.read_again)
            info.read_again = min(ends)
        elif shared is not None:
            shared.put(token_hash, version, (key, team, user, org, member))
        return info

    async def _member(self, key: Key) -> tuple[int | None, int | None] | None:
        """The key's user's rate limits as a member of the key's team (None: not both, or not a member)."""
        if not key.team_id or not key.user_id:
            return None
        return await self.store.member_limits(key.team_id, key.user_id)

    async def _get(self, method: str, ident: str | None) -> Any:
        if not ident:
            return None
        try:
            return await getattr(self.store, method)(ident)
        except NotFound:
            return None



def _enforced(metadata: Any) -> list[str]:
    """``metadata.enforced_params`` of a key or team row: the well-formed entries (``name``, ``object.name``)."""
    raw = metadata.get("enforced_params") if isinstance(metadata, dict) else None
    if not isinstance(raw, list):
        return []
    return [p for p in raw if field_path(p)]

def team_policy(info: KeyInfo, key_metadata: Any, team_id: str | None, team: Team | None,
                teams: Mapping[str, dict[str, Any]] | None) -> None:
    """What a key's and its team's ``metadata`` ask of the key's requests, set on ``info``: their logging
    targets (the key's, then the team's; else the config's ``teams`` entry, ``default_team_settings``),
    whether message logging is off, whether the team turned logging off, and their ``enforced_params``. For
    a stored key (:func:`build_key`) and a JWT's team (``auth.jwt_auth``, ``key_metadata`` None) alike."""
    targets, redacts = key_logging(key_metadata)
    if team is not None:
        team_targets, team_redacts = key_logging(team.metadata)
        redacts = redacts or team_redacts
        if team_targets:
            targets = [*(targets or ()), *team_targets]
    if not targets and teams and team_id and team_id in teams:  # last: the config's team settings
        targets, _ = key_logging(teams[team_id])
    info.logging, info.no_message_logging = targets, redacts
    if team is not None and logging_off(team.metadata):
        info.logging, info.logging_off = None, True
    enforced = [*_enforced(key_metadata), *(_enforced(team.metadata) if team is not None else ())]
    if enforced:
        info.enforced = tuple(dict.fromkeys(enforced))


def build_key(key: Key, team: Team | None, user: User | None, org: Organization | None,
              groups: Mapping[str, tuple[str, ...]], teams: Mapping[str, dict[str, Any]] | None = None, *,
              member: tuple[int | None, int | None] | None = None) -> KeyInfo:
    """One key's rows as the request path's :class:`KeyInfo` (see the module docstring for the rules);
    ``teams``: the config's team logging (``default_team_settings``), for a key whose rows name none;
    ``member``: its user's ``(rpm_limit, tpm_limit)`` in its team (``Store.member_limits``)."""
    key_models = [m for m in key.models if m]
    team_models = [m for m in team.models if m] if team is not None else []
    if "all-team-models" in key_models:
        key_models = []
    if team_models and any(m in _ALL for m in team_models):
        team_models = []
    kc = KeyConfig(
        key="", key_alias=key.key_alias, team_id=key.team_id, user_id=key.user_id,
        models=key_models or team_models, rpm_limit=key.rpm_limit, tpm_limit=key.tpm_limit,
        max_parallel_requests=key.max_parallel_requests,
        team_rpm_limit=team.rpm_limit if team is not None else None,
        team_tpm_limit=team.tpm_limit if team is not None else None,
        user_rpm_limit=user.rpm_limit if user is not None else None,
        user_tpm_limit=user.tpm_limit if user is not None else None)
    info = KeyInfo(key.token, kc, groups)
    if key_models and team_models:
        team_info = KeyInfo(key.token, KeyConfig(key="", models=team_models), groups)
        if info.models is None:
            info.models, info.patterns = team_info.models, team_info.patterns
        elif team_info.models is not None:
            if not info.patterns and not team_info.patterns:
                info.models = info.models & team_info.models
            else:
                info.also = team_info
    if team is not None and team.max_parallel_requests and key.team_id:
        info.buckets = (*info.buckets, Bucket.parallel(f"{PREFIX}t:{key.team_id}:par", team.max_parallel_requests,
                                                       "team", key.team_id))
    if member is not None and team is not None and key.team_id and key.user_id:
        info.add_member_limits(key.team_id, key.user_id, *member)
    if key.model_rpm_limit or key.model_tpm_limit:
        info.add_model_limits("key", key.token, key.model_rpm_limit, key.model_tpm_limit)
    if team is not None and key.team_id and (team.model_rpm_limit or team.model_tpm_limit):
        info.add_model_limits("team", key.team_id, team.model_rpm_limit, team.model_tpm_limit)
    if key.router_settings:
        info.router = KeyRouter.parse(key.router_settings)
    if isinstance(key.metadata, dict) and isinstance(key.metadata.get("disable_fallbacks"), bool):
        info.disable_fallbacks = key.metadata["disable_fallbacks"]  # LiteLLM's key-level controls: the key's wins
    aliases = dict(team.model_aliases) if team is not None else {}
    aliases.update(key.aliases)
    info.aliases = aliases
    info.role = user.user_role if user is not None else None
    info.records = (key, team, user, org)
    if key.max_budget is not None:  # LiteLLM's x-litellm-key-max-budget, next to the key's limit headers
        increase, until = increase_of(key, time.time())  # with a temporary increase, the raised budget (LiteLLM's)
        if until:
            info.read_again = until
        info.headers = (*info.headers, (b"x-litellm-key-max-budget", str(float(key.max_budget) + increase).encode()))
    team_policy(info, key.metadata, key.team_id, team, teams)
    if key.expires is not None:
        expires = key.expires if key.expires.tzinfo is not None else key.expires.replace(tzinfo=UTC)
        info.expires = expires.timestamp()
        if info.expires <= time.time():
            info.refusal = lambda: key_expired(expires, key.key_name)
    if key.blocked:
        info.refusal = key_blocked
    elif team is not None and team.blocked:
        team_id = team.team_id
        info.refusal = lambda: team_blocked(team_id)
    return info


async def blocked_customers(store: Store) -> frozenset[str]:
    """The ids of every blocked customer (end user), read page by page (at most MAX_BLOCKED_CUSTOMERS)."""
    ids: list[str] = []
    page = 1
    while len(ids) < MAX_BLOCKED_CUSTOMERS:
        got = await store.list_customers(blocked=True, page=page, page_size=1000)
        ids.extend(c.user_id for c in got.items)
        if page >= got.total_pages:
            break
        page += 1
    return frozenset(ids[:MAX_BLOCKED_CUSTOMERS])
