"""JWT auth for API calls: LiteLLM's ``enable_jwt_auth``, a provider-signed bearer token mapped to a principal.

What it owns: deciding whether a bearer token is a JWT, verifying it (signature by the provider's JWKS at
``JWT_PUBLIC_KEY_URL``, which may list several URLs separated by commas; ``exp`` / ``nbf``; ``aud`` when
``JWT_AUDIENCE`` is set, as LiteLLM; ``iss`` when ``JWT_ISSUER`` is set) and turning its claims into a
:class:`~relaygate.auth.resolver.Principal` by the ``general_settings.litellm_jwtauth`` settings LiteLLM
documents:

- ``admin_jwt_scope`` (default ``litellm_proxy_admin``) in the token's ``scope`` (a space-separated string, or
  a list; ``scp`` too): the proxy admin, as the master key, on the routes of ``admin_allowed_routes`` only.
- ``team_id_jwt_field`` (one id), else the first id of ``team_ids_jwt_field`` that names an existing team,
  else ``team_id_default``: the team's allow-list (``models``), its rpm / tpm / parallel limits, its budget
  and its blocked flag apply, as they do to the team's keys; the token may call the routes of
  ``team_allowed_routes`` only. A team that does not exist is LiteLLM's 401 ``Team doesn't exist in db``
  unless ``team_id_upsert`` creates it.
- ``user_id_jwt_field``: spend is attributed to that user and its limits (and, without a team, its budget)
  apply; ``user_id_upsert`` creates a
  user that does not exist (``litellm_settings.default_internal_user_params`` as for single sign-on).
  ``user_email_jwt_field`` and ``user_allowed_email_domain`` refuse other domains; ``user_roles_jwt_field``
  with ``user_allowed_roles`` refuses a token none of whose roles is allowed.
- ``org_id_jwt_field``: the organization spend is attributed to and whose budget applies; one that does not
  exist is LiteLLM's 401 ``Organization doesn't exist in db``. Without it, a team's organization.
- ``end_user_id_jwt_field``: the end user (customer) of every request made with the token: spend logs and
  customer budgets use it instead of the body's ``user``.
- A token with neither the admin scope, nor a team, nor a user is refused (401).

Route permissions (``auth.jwt_routes``): the principal carries a ``JWTAccess`` (``Principal.jwt``) with the
routes it may call: ``admin_allowed_routes`` (LiteLLM's default: ``management_routes``,
``spend_tracking_routes``, ``global_spend_tracking_routes``, ``info_routes``: no LLM route) for the admin
scope, ``team_allowed_routes`` (default ``openai_routes``, ``info_routes``, ``mcp_routes`` and the Anthropic
and RAG routes: no management write) for a team token; a token that maps to a user only has no JWT route list,
as in LiteLLM. The pipeline, the management routes and the operational routes check it per request. On the
management API a non-admin token acts with its user's ``user_role`` (``internal_user`` when the store has none).

Where it runs: :meth:`PrincipalResolver.resolve` (the cache miss path) hands a token that looks like a JWT
here when ``enable_jwt_auth`` is on; the principal is cached by the token's hash until the token's ``exp``
(and no longer than the key cache TTL), so a verified token costs one dict hit per request afterwards, like
a virtual key. With ``enable_jwt_auth`` off nothing here is imported or run. Without a database an admin-scope token
still works (teams and users need the store: their tokens get a 503). Failures are 401s in LiteLLM's
shape (``Authentication Error, ...``); a provider whose key set cannot be fetched is a 503.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt

from relaygate.auth.jwks import ALGORITHMS, JWKSUnavailable, jwks_for
from relaygate.auth.jwks import claim as _claim
from relaygate.auth.jwt_routes import ADMIN_DEFAULT, TEAM_DEFAULT, TEAM_WHEN_NULL, JWTAccess, RouteSet
from relaygate.auth.keys import KeyInfo
from relaygate.auth.targets import team_defaults
from relaygate.config.model import Config, KeyConfig
from relaygate.core import errors
from relaygate.core.ratelimit import PREFIX, Bucket
from relaygate.core.sha import sha256_hex

if TYPE_CHECKING:
    from relaygate.auth.resolver import Principal
    from relaygate.store import Organization, Store, Team, User

__all__ = ["JWTAuth", "JWTSettings", "NoKeys", "looks_like_jwt"]

log = logging.getLogger("relaygate.auth.jwt")

ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
JWT_ROLE = "internal_user_viewer"
"""The role of a user created by ``user_id_upsert`` (unless ``default_internal_user_params`` names one)."""
TOKEN_ROLE = "internal_user"
"""The management role of a non-admin token whose user the store does not know (LiteLLM's ``INTERNAL_USER``)."""


def looks_like_jwt(token: bytes) -> bool:
    """Three base64url segments, the first a JSON object (``eyJ``): a virtual key never looks like this."""
    return token[:3] == b"eyJ" and token.count(b".") == 2


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int)) and str(v)]
    return []


def _ident(value: Any) -> str | None:
    """A claim used as an id (a non-empty string or an integer), at most 256 characters."""
    return str(value)[:256] if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def _auth_error(message: str) -> errors.GatewayError:
    return errors.AuthError(f"Authentication Error, {message}", param="None")


class NoKeys:
    """The key lookup of a gateway with JWT auth and neither a database nor config keys: it knows no key, but
    its presence sends uncached tokens down the resolver's miss path, where JWTs are verified."""

    remote = False

    async def find(self, token_hash: str) -> KeyInfo | None:
        del token_hash
        return None


class JWTSettings:
    """``litellm_jwtauth`` and the ``JWT_*`` environment, read once per config."""

    def __init__(self, raw: Mapping[str, Any], env: Mapping[str, str]) -> None:
        def text(name: str, default: str | None = None) -> str | None:
            v = raw.get(name, default)
            return str(v) if isinstance(v, (str, int)) and str(v) else default

        self.admin_jwt_scope = text("admin_jwt_scope", "litellm_proxy_admin") or "litellm_proxy_admin"
        self.team_id_jwt_field = text("team_id_jwt_field")
        self.team_ids_jwt_field = text("team_ids_jwt_field")
        self.team_id_default = text("team_id_default")
        self.team_id_upsert = bool(raw.get("team_id_upsert", False))
        self.user_id_jwt_field = text("user_id_jwt_field")
        self.user_email_jwt_field = text("user_email_jwt_field")
        self.user_allowed_email_domain = text("user_allowed_email_domain")
        self.user_id_upsert = bool(raw.get("user_id_upsert", False))
        self.user_roles_jwt_field = text("user_roles_jwt_field")
        allowed = raw.get("user_allowed_roles")
        self.user_allowed_roles = frozenset(_strings(allowed)) if allowed is not None else None
        ttl = raw.get("public_key_ttl", 600)
        self.public_key_ttl = float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) else 600.0
        self.jwks_urls = [u.strip() for u in env.get("JWT_PUBLIC_KEY_URL", "").split(",") if u.strip()]
        self.audience = env.get("JWT_AUDIENCE", "").strip() or None
        self.issuer = env.get("JWT_ISSUER", "").strip() or None
        leeway = raw.get("leeway", 0)
        self.leeway = float(leeway) if isinstance(leeway, (int, float)) and not isinstance(leeway, bool) else 0.0
        """Seconds of clock skew tolerated on ``exp`` / ``nbf`` / ``iat`` (none by default)."""
        self.org_id_jwt_field = text("org_id_jwt_field")
        self.end_user_id_jwt_field = text("end_user_id_jwt_field")
        self.admin_allowed_routes = _route_list(raw, "admin_allowed_routes", ADMIN_DEFAULT, ADMIN_DEFAULT)
        self.team_allowed_routes = _route_list(raw, "team_allowed_routes", TEAM_DEFAULT, TEAM_WHEN_NULL)


def _route_list(raw: Mapping[str, Any], name: str, default: tuple[str, ...], when_null: tuple[str, ...]
                ) -> tuple[str, ...]:
    """An allowed-route list of the settings (the YAML loader refuses one that is not a list of strings)."""
    if name not in raw:
        return default
    value = raw[name]
    if value is None:
        return when_null
    if not isinstance(value, (list, tuple)):
        log.warning("litellm_jwtauth.%s is not a list: LiteLLM's default %s applies", name, list(default))
        return default
    return tuple(v for v in value if isinstance(v, str) and v)


class JWTAuth:
    """One worker's JWT verifier and claim mapper (built with the resolver, from the config)."""

    def __init__(self, settings: JWTSettings, store: Store | None, groups: Mapping[str, tuple[str, ...]],
                 defaults: Mapping[str, Any] | None = None, general: Any = None) -> None:
        self.settings = settings
        self.general = general
        """The config's ``GeneralSettings`` (``max_internal_user_budget`` ... for a user ``user_id_upsert``
        creates); None: none."""
        self.store = store
        self.groups = groups
        self.defaults = dict(defaults or {})
        self.teams = team_defaults(getattr(general, "default_team_settings", None) or [])
        """The config's team logging (``default_team_settings``) for a token's team whose row names none."""
        self.jwks = jwks_for(settings.jwks_urls, settings.public_key_ttl) if settings.jwks_urls else None
        self.verified = 0
        """Tokens verified by this worker (cache misses that reached the signature check)."""
        self.admin_routes = RouteSet(settings.admin_allowed_routes)
        self.team_routes = RouteSet(settings.team_allowed_routes)

    @classmethod
    def from_config(cls, config: Config, store: Store | None, groups: Mapping[str, tuple[str, ...]]) -> JWTAuth:
        g = config.general
        return cls(JWTSettings(g.litellm_jwtauth or {}, os.environ), store, groups, g.default_internal_user_params,
                   general=g)

    # -- verification -----------------------------------------------------------------------------------

    async def verify(self, token: bytes) -> dict[str, Any]:
        """The token's claims once its signature and times (and audience, issuer when set) check out."""
        s = self.settings
        if self.jwks is None:
            raise errors.GatewayError("enable_jwt_auth is on but JWT_PUBLIC_KEY_URL is not set: JWTs cannot be "
                                      "verified", status=500, type="auth_error", param="None")
        try:
            header = jwt.get_unverified_header(token)
            alg = str(header.get("alg"))
            kid = header.get("kid")
            key = await self.jwks.key_for(kid if isinstance(kid, str) else None, alg)
            self.verified += 1
            claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=[alg] if alg in ALGORITHMS else [],
                                                audience=s.audience, issuer=s.issuer, leeway=s.leeway,
                                                options={"require": ["exp"],
                                                         "verify_aud": s.audience is not None})
        except JWKSUnavailable as exc:
            raise errors.GatewayError(f"Authentication Error, the JWT could not be checked: {exc}", status=503,
                                      type="auth_error", param="None", code="503") from None
        except jwt.ExpiredSignatureError:
            raise _auth_error("Validation failed: the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise _auth_error("Validation failed: the JWT's audience (aud) is not JWT_AUDIENCE") from None
        except jwt.PyJWTError as exc:
            raise _auth_error(f"Validation failed: {exc}") from None
        return claims

    # -- mapping ----------------------------------------------------------------------------------------

    def is_admin(self, claims: Mapping[str, Any]) -> bool:
        scopes: list[str] = []
        for name in ("scope", "scp"):
            value = claims.get(name)
            scopes.extend(value.split() if isinstance(value, str) else _strings(value))
        return self.settings.admin_jwt_scope in scopes

    async def principal(self, token: bytes, claims: Mapping[str, Any]) -> Principal:
        """The principal of a verified token (see the module docstring for the rules)."""
        from relaygate.auth.resolver import Principal, PrincipalKind

        token_hash = sha256_hex(token)
        s = self.settings
        org_id = _ident(_claim(claims, s.org_id_jwt_field))
        end_user_id = _ident(_claim(claims, s.end_user_id_jwt_field))
        if self.is_admin(claims):
            p = Principal(PrincipalKind.MASTER, key_hash=token_hash, key_alias="jwt:admin")
            p.jwt = JWTAccess(self.admin_routes, "Admin", org_id)  # LiteLLM checks neither claim for the admin
            return p
        if s.user_roles_jwt_field and s.user_allowed_roles is not None:
            roles = _strings(_claim(claims, s.user_roles_jwt_field))
            if not s.user_allowed_roles.intersection(roles):
                raise _auth_error(f"the JWT's roles {roles[:20]} are not in user_allowed_roles")
        email = _claim(claims, s.user_email_jwt_field)
        email = email if isinstance(email, str) and email else None
        if s.user_allowed_email_domain and (email is None or email.rsplit("@", 1)[-1] != s.user_allowed_email_domain):
            raise _auth_error(f"the JWT's email is not in the allowed domain {s.user_allowed_email_domain}")
        user_id = _claim(claims, s.user_id_jwt_field)
        user_id = str(user_id)[:256] if isinstance(user_id, (str, int)) and str(user_id) else None
        store = self.store
        if store is None:
            raise errors.GatewayError("JWT auth of teams and users needs the database (database_url)", status=503,
                                      type="auth_error", param="None", code="503")
        team = await self._team(store, claims)
        user = await self._user(store, user_id, email) if user_id is not None else None
        if team is None and user_id is None:
            fields = [f for f in (s.team_id_jwt_field, s.team_ids_jwt_field, s.user_id_jwt_field) if f]
            raise _auth_error(f"the JWT maps to no team or user (fields checked: {fields}) and has not the "
                              f"{s.admin_jwt_scope!r} scope")
        org = await self._organization(store, org_id, team)
        info = self._key_info(token_hash, team, user, user_id, org)
        if team is not None and user_id is not None:  # the user's rate limits as a member of the team
            member = await store.member_limits(team.team_id, user_id)
            if member is not None:
                info.add_member_limits(team.team_id, user_id, *member)
        p = Principal.for_key(info)
        if team is not None or org is not None or end_user_id is not None:
            p.jwt = JWTAccess(self.team_routes if team is not None else None, "Team",
                              org.organization_id if org is not None else None, end_user_id)
        return p

    @staticmethod
    async def _organization(store: Store, org_id: str | None, team: Team | None) -> Organization | None:
        """The token's organization (``org_id_jwt_field``: it must exist, as LiteLLM's ``get_org_object``),
        else its team's, if any."""
        from relaygate.store import NotFound

        if org_id is not None:
            try:
                return await store.get_organization(org_id)
            except NotFound:
                raise _auth_error(f"Organization doesn't exist in db. Organization={org_id[:100]}. Create "
                                  "organization via `/organization/new` call.") from None
        if team is not None and team.organization_id:
            try:
                return await store.get_organization(team.organization_id)
            except NotFound:
                return None
        return None

    async def _team(self, store: Store, claims: Mapping[str, Any]) -> Team | None:
        from relaygate.store import Duplicate, NotFound, Team

        s = self.settings
        wanted: list[str] = []
        single = _claim(claims, s.team_id_jwt_field)
        if isinstance(single, (str, int)) and str(single):
            wanted.append(str(single))
        many = _strings(_claim(claims, s.team_ids_jwt_field))[:50]
        for team_id in [*wanted, *many]:
            try:
                return await store.get_team(team_id)
            except NotFound:
                continue
        if s.team_id_upsert and (wanted or many):
            team_id = (wanted or many)[0][:256]
            try:
                team = await store.create_team(Team(team_id=team_id, team_alias=team_id))
                log.info("JWT auth: team %s created (team_id_upsert)", team_id)
                return team
            except Duplicate:
                return await store.get_team(team_id)
        if wanted or many:
            shown = (wanted or many)[0][:100]
            raise _auth_error(f"Team doesn't exist in db. Team={shown}. Create team via `/team/new` call.")
        if s.team_id_default:
            try:
                return await store.get_team(s.team_id_default)
            except NotFound:
                raise _auth_error(f"Team doesn't exist in db. Team={s.team_id_default}. Create team via "
                                  "`/team/new` call.") from None
        return None

    async def _user(self, store: Store, user_id: str, email: str | None) -> User | None:
        from relaygate.store import Duplicate, NotFound, User

        try:
            return await store.get_user(user_id)
        except NotFound:
            pass
        if not self.settings.user_id_upsert:
            return None  # spend is still attributed to the id, as LiteLLM does for an unknown user
        d = self.defaults
        role = d.get("user_role") if d.get("user_role") in ROLES else JWT_ROLE
        fields = {k: d[k] for k in ("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit")
                  if d.get(k) is not None}
        if self.general is not None:
            fields = self.general.new_user_defaults(role, fields, params=False)
        try:
            user = await store.create_user(User(user_id=user_id, user_email=email, user_role=role, **fields))
            log.info("JWT auth: user %s created (user_id_upsert)", user_id)
            return user
        except Duplicate:
            return await store.get_user(user_id)

    def _key_info(self, token_hash: str, team: Team | None, user: User | None, user_id: str | None,
                  org: Organization | None = None) -> KeyInfo:
        team_models = [m for m in team.models if m] if team is not None else []
        user_models = [m for m in user.models if m] if user is not None else []
        kc = KeyConfig(
            key="", key_alias="jwt", team_id=team.team_id if team is not None else None, user_id=user_id,
            models=team_models or user_models,
            team_rpm_limit=team.rpm_limit if team is not None else None,
            team_tpm_limit=team.tpm_limit if team is not None else None,
            user_rpm_limit=user.rpm_limit if user is not None else None,
            user_tpm_limit=user.tpm_limit if user is not None else None)
        info = KeyInfo(token_hash, kc, self.groups)
        if team_models and user_models:
            info.also = KeyInfo(token_hash, KeyConfig(key="", models=user_models), self.groups)
        if team is not None and team.max_parallel_requests:
            info.buckets = (*info.buckets, Bucket.parallel(f"{PREFIX}t:{team.team_id}:par",
                                                           team.max_parallel_requests, "team", team.team_id))
        from relaygate.auth.store_keys import team_blocked, team_policy

        team_policy(info, None, kc.team_id, team, self.teams)  # the team's logging and enforced params
        if team is not None:
            info.aliases = dict(team.model_aliases)
            if team.blocked:

                team_id = team.team_id
                info.refusal = lambda: team_blocked(team_id)
        if user is not None and user.blocked:
            info.refusal = lambda: _auth_error("User is blocked. Update via `/user/unblock` if you're an admin.")
        info.role = user.user_role if user is not None and user.user_role in ROLES else TOKEN_ROLE
        from relaygate.store import Key

        # the rows the budget stage reads: a key row of the token's own (not stored, no budget of its own),
        # so the team's, the user's and the organization's budgets apply as they do to their keys
        org_id = org.organization_id if org is not None else None
        info.records = (Key(token=token_hash, key_alias="jwt", team_id=kc.team_id, user_id=user_id,
                            organization_id=org_id), team, user, org)
        return info

    @staticmethod
    def looks_like(token: bytes) -> bool:
        return looks_like_jwt(token)

    def expiry(self, claims: Mapping[str, Any]) -> float | None:
        """The token's ``exp`` as wall-clock seconds."""
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
