"""Single sign-on for the admin UI: OpenID Connect, authorization code with PKCE, with any standard provider.

What it owns: the two routes LiteLLM's proxy has for a generic provider, configured by LiteLLM's environment
variables (``GENERIC_CLIENT_ID``, ``GENERIC_CLIENT_SECRET``, ``GENERIC_AUTHORIZATION_ENDPOINT``,
``GENERIC_TOKEN_ENDPOINT``, ``GENERIC_USERINFO_ENDPOINT``, ``GENERIC_SCOPE``, ``GENERIC_USER_ID_ATTRIBUTE``,
``GENERIC_USER_EMAIL_ATTRIBUTE``, ``GENERIC_USER_ROLE_ATTRIBUTE``, ``PROXY_BASE_URL``, ``PROXY_ADMIN_ID``):

- ``GET /sso/key/generate`` starts a sign-in: a fresh ``state``, ``nonce`` and PKCE verifier are put in a
  short-lived cookie, and the browser is sent (303) to the authorization endpoint with ``response_type=code``,
  the client id, ``redirect_uri`` (``<PROXY_BASE_URL or the request's origin>/sso/callback``), the scope, the
  state, the nonce and the S256 ``code_challenge``.
- ``GET /sso/callback`` finishes it: the state must match the cookie's; the code is exchanged at the token
  endpoint with the verifier and the client's secret; an ID token, when one comes back, is verified (signature
  by the provider's JWKS found through ``/.well-known/openid-configuration`` next to the endpoints, ``iss``,
  ``aud``, ``exp``, ``nonce``); the claims are the userinfo endpoint's over the ID token's. Then the user is
  created or updated in the store and a UI session is issued (``ui.sessions``): 303 to ``/ui/``.

The flow's secrets (state, nonce, verifier) live in a cookie, not in a worker's memory, so any worker may
answer the callback: HMAC-SHA256 signed with a key derived from ``LITELLM_SALT_KEY`` or the master key,
HttpOnly, ``SameSite=Lax`` (the provider's redirect back is a top-level cross-site GET, which Strict would
strip), ``Path=/sso`` (under ``SERVER_ROOT_PATH`` when the request came through it), Secure over TLS, valid
10 minutes, cleared by the callback.

Users, as LiteLLM creates them: the id is the ``GENERIC_USER_ID_ATTRIBUTE`` claim (default
``preferred_username``), else ``sub``, else the email. A new user gets the role the role claim names
(``GENERIC_USER_ROLE_ATTRIBUTE``, default ``role``) when it is one of LiteLLM's four roles, else
``default_internal_user_params.user_role``, else ``internal_user_viewer``; the other
``default_internal_user_params`` fields (budgets, models) are applied once, at creation. A role claim with
another value is ignored (one log line). LiteLLM's group mapping takes the role claim's place when set:
``GENERIC_ROLE_MAPPINGS_ROLES`` (role -> groups, JSON or a Python dict literal) against the
``GENERIC_ROLE_MAPPINGS_GROUP_CLAIM`` claim, the most privileged match winning, else
``GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE``. ``PROXY_ADMIN_ID`` names the user that is always ``proxy_admin``;
``ALLOWED_EMAIL_DOMAINS`` (comma-separated) refuses other email domains (403). A claimed role is applied at
every sign-in, so the provider stays the source of truth.
Teams: the ids in the claim ``litellm_jwtauth.team_ids_jwt_field`` names (LiteLLM reads its SSO teams
there); the user joins every such team that exists (unknown ids are logged and skipped) and is never removed
from one. There is no cap on the number of users.

Failures (the provider refused or is down, a forged or stale state, a token that does not verify, no
database) answer a short HTML page with the right status (400, 401, 403, 502, 503) and write one log line;
codes, tokens and secrets are never logged nor put in a URL other than the provider's own redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.ui import access

__all__ = ["SSOError", "add_routes", "sso_enabled"]

log = logging.getLogger("relaygate.ui.sso")

FLOW_COOKIE = "relaygate_sso"
FLOW_TTL = 600
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
DEFAULT_ROLE = "internal_user_viewer"
TIMEOUT = 10.0
_CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_USER_FIELDS = ("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit", "max_parallel_requests",
                "soft_budget", "metadata", "user_alias")


class SSOError(Exception):
    """A sign-in that cannot finish: ``status`` and a message for the person at the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def sso_enabled(gw: Any) -> bool:
    """Whether a generic OpenID provider is configured (client id, authorization and token endpoints)."""
    del gw
    return bool(_env("GENERIC_CLIENT_ID") and _env("GENERIC_AUTHORIZATION_ENDPOINT") and _env("GENERIC_TOKEN_ENDPOINT"))


def add_routes(t: RouteTable, gw: Any) -> None:
    """Add ``GET /sso/key/generate`` and ``GET /sso/callback`` to ``t``."""

    async def start(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        try:
            status, headers, body = _start(gw, scope)
        except SSOError as exc:
            log.warning("single sign-on not started (%d): %s", exc.status, exc.message)
            status, headers, body = exc.status, [], _page("Sign-in failed", exc.message)
        await _answer(send, status, headers, body)

    async def callback(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        try:
            status, headers, body = await _callback(gw, scope)
        except SSOError as exc:
            log.warning("single sign-on refused (%d): %s", exc.status, exc.message)
            status, headers, body = exc.status, [_clear_flow(scope)], _page("Sign-in failed", exc.message)
        await _answer(send, status, headers, body)

    t.add("GET", "/sso/key/generate", start)
    t.add("GET", "/sso/callback", callback)


# -- the start ------------------------------------------------------------------------------------------


def _start(gw: Any, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if access.disabled():
        raise SSOError(403, access.DISABLED)
    if not sso_enabled(gw):
        return 404, [], _page("Single sign-on is not configured",
                              "Set GENERIC_CLIENT_ID, GENERIC_CLIENT_SECRET, GENERIC_AUTHORIZATION_ENDPOINT and "
                              "GENERIC_TOKEN_ENDPOINT to sign in with an OpenID provider.")
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": _env("GENERIC_CLIENT_ID"),
        "redirect_uri": redirect_uri(scope),
        "scope": _env("GENERIC_SCOPE", "openid email profile"),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    endpoint = _env("GENERIC_AUTHORIZATION_ENDPOINT")
    url = endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(query)
    flow = {"s": state, "n": nonce, "v": verifier, "e": int(time.time()) + FLOW_TTL}
    cookie = (f"{FLOW_COOKIE}={seal(gw, flow)}; Path={scope.get('root_path', '')}/sso; Max-Age={FLOW_TTL}; "
              f"HttpOnly; SameSite=Lax"
              + ("; Secure" if _https(scope) else ""))
    return 303, [(b"location", url.encode()), (b"set-cookie", cookie.encode()),
                 (b"cache-control", b"no-store")], b""


# -- the callback ---------------------------------------------------------------------------------------


async def _callback(gw: Any, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if access.disabled():
        raise SSOError(403, access.DISABLED)
    if not sso_enabled(gw):
        raise SSOError(404, "Single sign-on is not configured.")
    q = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    flow = unseal(gw, _cookie(scope, FLOW_COOKIE))
    if q.get("error"):
        error = q["error"][:100]
        detail = (q.get("error_description") or "")[:300]
        status = 403 if error in ("access_denied", "consent_required", "login_required") else 400
        raise SSOError(status, f"The identity provider did not sign you in: {error}"
                       + (f" ({detail})" if detail else "") + ".")
    if flow is None:
        raise SSOError(400, "This sign-in has expired or was started in another browser; start it again.")
    state = q.get("state") or ""
    if not hmac.compare_digest(state.encode(), str(flow.get("s", "")).encode()):
        raise SSOError(400, "The sign-in's state does not match; start it again.")
    code = q.get("code")
    if not code:
        raise SSOError(400, "The identity provider sent no authorization code.")
    claims = await _claims(scope, code, str(flow.get("v", "")), str(flow.get("n", "")))
    general = gw.config.general
    refused = access.group_refusal(general, claims)
    if refused is not None:
        raise SSOError(403, refused)
    user_id, role, email = await upsert_user(gw, claims)
    refused = access.role_refusal(general, role)
    if refused is not None:
        raise SSOError(403, refused)
    from relaygate.ui import sessions

    cookie, _ = await sessions.issue(gw, scope, user_id=user_id, role=role, via="sso", user_email=email)
    log.info("single sign-on: user %s signed in as %s", user_id, role)
    return 303, [(b"location", (scope.get("root_path", "") + "/ui/").encode()), (b"set-cookie", cookie),
                 _clear_flow(scope),
                 (b"cache-control", b"no-store")], b""


async def _claims(scope: Scope, code: str, verifier: str, nonce: str) -> dict[str, Any]:
    """Exchange ``code`` and return the user's claims (userinfo over the verified ID token)."""
    import httpx

    client_id = _env("GENERIC_CLIENT_ID")
    secret = _env("GENERIC_CLIENT_SECRET")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(scope),
            "code_verifier": verifier}
    headers = {"accept": "application/json"}
    if secret:
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    if not secret or _env("GENERIC_INCLUDE_CLIENT_ID").lower() == "true":
        form["client_id"] = client_id
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            r = await client.post(_env("GENERIC_TOKEN_ENDPOINT"), data=form, headers=headers)
            if r.status_code != 200:
                raise SSOError(502 if r.status_code >= 500 else 401,
                               f"The identity provider refused the authorization code ({r.status_code}"
                               f"{_oauth_error(r.content)}).")
            tokens = _json_object(r.content, "token")
            access = tokens.get("access_token")
            id_claims: dict[str, Any] = {}
            meta = await _discovery(client)
            if isinstance(tokens.get("id_token"), str) and meta is not None:
                id_claims = await _verify_id_token(tokens["id_token"], meta, client_id, nonce)
            userinfo_url = _env("GENERIC_USERINFO_ENDPOINT") or (meta or {}).get("userinfo_endpoint")
            info: dict[str, Any] = {}
            if isinstance(userinfo_url, str) and userinfo_url and isinstance(access, str):
                u = await client.get(userinfo_url, headers={"authorization": f"Bearer {access}",
                                                            "accept": "application/json"})
                if u.status_code != 200:
                    raise SSOError(502, f"The identity provider's userinfo endpoint answered {u.status_code}.")
                info = _json_object(u.content, "userinfo")
                if id_claims and info.get("sub") not in (None, id_claims.get("sub")):
                    raise SSOError(401, "The userinfo answer is for another subject than the ID token.")
    except httpx.HTTPError as exc:
        raise SSOError(502, f"The identity provider could not be reached ({type(exc).__name__}).") from None
    claims = {**id_claims, **info}
    if not claims:
        raise SSOError(502, "The identity provider returned no claims (no verifiable ID token, no userinfo).")
    return claims


def _oauth_error(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    err = doc.get("error") if isinstance(doc, dict) else None
    return f": {str(err)[:100]}" if err else ""


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise SSOError(502, f"The identity provider's {what} answer is not a JSON object.")
    return doc


_DISCOVERY: dict[str, tuple[float, dict[str, Any] | None]] = {}


async def _discovery(client: Any) -> dict[str, Any] | None:
    """The provider's metadata (``issuer``, ``jwks_uri`` ...) found next to the authorization endpoint: the
    origin with each prefix of the endpoint's path, longest first; the document must name the same
    authorization endpoint. Cached per worker (an hour when found, a minute when not)."""
    import httpx

    endpoint = _env("GENERIC_AUTHORIZATION_ENDPOINT")
    now = time.monotonic()
    hit = _DISCOVERY.get(endpoint)
    if hit is not None and hit[0] > now:
        return hit[1]
    u = urllib.parse.urlsplit(endpoint)
    parts = [p for p in u.path.split("/") if p]
    found: dict[str, Any] | None = None
    for n in range(len(parts) - 1, max(-1, len(parts) - 6), -1):
        base = f"{u.scheme}://{u.netloc}" + "".join("/" + p for p in parts[:n])
        try:
            r = await client.get(base + "/.well-known/openid-configuration", headers={"accept": "application/json"})
        except httpx.HTTPError:
            continue
        if r.status_code != 200:
            continue
        try:
            doc = json.loads(r.content)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("authorization_endpoint") == endpoint and doc.get("jwks_uri"):
            found = doc
            break
    if found is None:
        log.warning("single sign-on: no OpenID discovery document next to the authorization endpoint; ID tokens "
                    "are not used, the claims come from the userinfo endpoint")
    _DISCOVERY[endpoint] = (now + (3600.0 if found is not None else 60.0), found)
    return found


async def _verify_id_token(token: str, meta: Mapping[str, Any], client_id: str, nonce: str) -> dict[str, Any]:
    import jwt

    from relaygate.auth.jwks import JWKSUnavailable, jwks_for

    try:
        header = jwt.get_unverified_header(token)
        key = await jwks_for([str(meta["jwks_uri"])]).key_for(header.get("kid"), str(header.get("alg")))
        claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=[str(header.get("alg"))],
                                            audience=client_id, issuer=str(meta.get("issuer") or ""),
                                            leeway=60, options={"require": ["exp", "iat", "sub"]})
    except JWKSUnavailable as exc:
        raise SSOError(502, f"The identity provider's signing keys could not be fetched: {exc}") from None
    except jwt.PyJWTError as exc:
        raise SSOError(401, f"The identity provider's ID token does not verify: {exc}") from None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise SSOError(401, "The identity provider's ID token was issued to another client (azp).")
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise SSOError(401, "The identity provider's ID token does not carry this sign-in's nonce.")
    return claims


# -- the user -------------------------------------------------------------------------------------------


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    from relaygate.auth.jwks import claim  # PyJWT is imported only once single sign-on runs

    return claim(claims, path)


def _team_ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int)) and str(v)]
    return []


def _role_mappings() -> dict[str, list[str]] | None:
    """``GENERIC_ROLE_MAPPINGS_ROLES`` (or ``GENERIC_USER_ROLE_MAPPINGS``): LiteLLM role -> group names, written
    as JSON or as a Python dict literal; None when unset or unreadable (logged)."""
    import ast

    raw = _env("GENERIC_ROLE_MAPPINGS_ROLES") or _env("GENERIC_USER_ROLE_MAPPINGS")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        try:
            doc = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            doc = None
    if not isinstance(doc, dict):
        log.warning("single sign-on: GENERIC_ROLE_MAPPINGS_ROLES is not a mapping of roles to groups; ignored")
        return None
    return {str(k): _team_ids(v) for k, v in doc.items() if k in ROLES}


def role_from_claims(claims: Mapping[str, Any], user_id: str) -> str | None:
    """The LiteLLM role the claims give, or None (keep the stored role, or the default for a new user).

    With ``GENERIC_ROLE_MAPPINGS_ROLES``: the most privileged role one of whose groups is in the
    ``GENERIC_ROLE_MAPPINGS_GROUP_CLAIM`` claim (default ``groups``), else ``GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE``.
    Otherwise the ``GENERIC_USER_ROLE_ATTRIBUTE`` claim (default ``role``) when it is a LiteLLM role; any other
    value is ignored with a log line. ``PROXY_ADMIN_ID`` is always ``proxy_admin``."""
    if _env("PROXY_ADMIN_ID") and user_id == _env("PROXY_ADMIN_ID"):
        return "proxy_admin"
    mappings = _role_mappings()
    if mappings is not None:
        groups = set(_team_ids(_claim(claims, _env("GENERIC_ROLE_MAPPINGS_GROUP_CLAIM", "groups"))))
        for r in ROLES:  # most privileged first
            if groups.intersection(mappings.get(r, ())):
                return r
        default = _env("GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE")
        return default if default in ROLES else None
    role_attr = _env("GENERIC_USER_ROLE_ATTRIBUTE", "role")
    claimed = _claim(claims, role_attr)
    if isinstance(claimed, list):
        claimed = next((r for r in claimed if r in ROLES), claimed[0] if claimed else None)
    if claimed is None:
        return None
    if claimed in ROLES:
        return str(claimed)
    log.warning("single sign-on: the %r claim of user %s is not a LiteLLM role; ignored", role_attr, user_id)
    return None


async def upsert_user(gw: Any, claims: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """Create or update the user ``claims`` describe; its id, role and email."""
    from relaygate.store import Duplicate, NotFound, StoreUnavailable, TeamMember, User

    store = gw.store
    if store is None:
        raise SSOError(503, "Single sign-on needs the database (database_url): none is connected.")
    uid = (_claim(claims, _env("GENERIC_USER_ID_ATTRIBUTE", "preferred_username")) or claims.get("sub")
           or claims.get("email"))
    email = _claim(claims, _env("GENERIC_USER_EMAIL_ATTRIBUTE", "email"))
    if not isinstance(uid, (str, int)) or not str(uid).strip():
        raise SSOError(502, "The identity provider's claims name no user (no id, sub or email).")
    user_id = str(uid).strip()[:256]
    email = str(email)[:320] if isinstance(email, str) and email else None
    domains = [d.strip().lower() for d in _env("ALLOWED_EMAIL_DOMAINS").split(",") if d.strip()]
    if domains and (email is None or email.rsplit("@", 1)[-1].lower() not in domains):
        raise SSOError(403, "Your email domain is not allowed to sign in here. Contact your admin.")
    role = role_from_claims(claims, user_id)
    general = gw.config.general
    defaults = dict(general.default_internal_user_params or {})
    field = (general.litellm_jwtauth or {}).get("team_ids_jwt_field")
    teams = _team_ids(_claim(claims, field)) if isinstance(field, str) and field else []
    try:
        try:
            user = await store.get_user(user_id)
        except NotFound:
            fields = {k: defaults[k] for k in _USER_FIELDS if defaults.get(k) is not None}
            initial = role or (defaults.get("user_role") if defaults.get("user_role") in ROLES else DEFAULT_ROLE)
            fields = general.new_user_defaults(initial, fields, params=False)  # max_internal_user_budget ...
            try:
                user = await store.create_user(User(user_id=user_id, user_email=email, user_role=initial, **fields))
                log.info("single sign-on: user %s created with role %s", user_id, initial)
            except Duplicate:  # two first sign-ins at once: the other one created it
                user = await store.get_user(user_id)
        if user.blocked:
            raise SSOError(403, "This user is blocked.")
        changes: dict[str, Any] = {}
        if role is not None and role != user.user_role:
            changes["user_role"] = role
        if email and email != user.user_email:
            changes["user_email"] = email
        if changes:
            user = await store.update_user(user_id, **changes)
        joined = False
        for team_id in teams[:100]:
            if team_id in user.teams:
                continue
            try:
                await store.add_team_members(team_id, [TeamMember(team_id=team_id, user_id=user_id, role="user",
                                                                  user_email=email)])
                joined = True
            except NotFound:
                log.warning("single sign-on: team %s named in the claims of user %s does not exist; skipped",
                            team_id[:100], user_id)
            except Duplicate:
                pass
    except StoreUnavailable:
        raise SSOError(503, "The database is unavailable; try again later.") from None
    if changes or joined:
        changed = getattr(gw, "keys_changed", None)
        if changed is not None:
            changed()  # the user's keys carry its role and teams: every worker reads them again
    return user_id, str(user.user_role or DEFAULT_ROLE), user.user_email


# -- the flow cookie ------------------------------------------------------------------------------------


def _signing_key(gw: Any) -> bytes:
    secret = _env("LITELLM_SALT_KEY") or (gw.config.general.master_key or "")
    if not secret:
        raise SSOError(503, "Single sign-on needs a master key or LITELLM_SALT_KEY to sign its state.")
    return hmac.new(secret.encode(), b"relaygate sso flow v1", hashlib.sha256).digest()


def seal(gw: Any, data: Mapping[str, Any]) -> str:
    """``data`` as a signed cookie value (base64url JSON, a dot, base64url HMAC-SHA256)."""
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=")
    mac = base64.urlsafe_b64encode(hmac.new(_signing_key(gw), body, hashlib.sha256).digest()).rstrip(b"=")
    return (body + b"." + mac).decode()


def unseal(gw: Any, value: str | None) -> dict[str, Any] | None:
    """The data of a cookie :func:`seal` wrote, or None when it is absent, forged or expired."""
    if not value or "." not in value:
        return None
    body, _, mac = value.partition(".")
    want = base64.urlsafe_b64encode(hmac.new(_signing_key(gw), body.encode(), hashlib.sha256).digest()).rstrip(b"=")
    if not hmac.compare_digest(want, mac.encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int) or data["e"] < time.time():
        return None
    return data


def _cookie(scope: Scope, name: str) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"cookie":
            for part in v.decode("latin-1").split(";"):
                n, _, val = part.strip().partition("=")
                if n == name:
                    return str(val)
    return None


def _clear_flow(scope: Scope) -> tuple[bytes, bytes]:
    path = scope.get("root_path", "") + "/sso"
    return (b"set-cookie", (f"{FLOW_COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax"
                            + ("; Secure" if _https(scope) else "")).encode())


# -- the request's origin, answers ----------------------------------------------------------------------


def _https(scope: Scope) -> bool:
    from relaygate.ui.sessions import is_https

    return is_https(scope) or _env("PROXY_BASE_URL").startswith("https://")


def redirect_uri(scope: Scope) -> str:
    """``<PROXY_BASE_URL, or the request's origin and SERVER_ROOT_PATH>/sso/callback``."""
    base = _env("PROXY_BASE_URL").rstrip("/")
    if not base:
        host = ""
        for k, v in scope.get("headers", ()):
            if k == b"host":
                host = v.decode("latin-1")
                break
        if not host:
            server = scope.get("server") or ("127.0.0.1", 4000)
            host = f"{server[0]}:{server[1]}"
        base = f"{scope.get('scheme', 'http')}://{host}" + scope.get("root_path", "")
    return base + "/sso/callback"


def _page(title: str, message: str) -> bytes:
    t, m = html.escape(title), html.escape(message)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{t}</title></head><body>'
            f'<main><h1>{t}</h1><p role="alert">{m}</p><p><a href="/ui/">Back to the sign-in page</a></p>'
            "</main></body></html>").encode()


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    hs = [*headers, (b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"%d" % len(body)),
          (b"content-security-policy", _CSP), (b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
    if not any(k == b"cache-control" for k, _ in hs):
        hs.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": body})
