"""Admin-UI sessions: the ``relaygate_session`` cookie, valid on every worker and revocable at sign-out.

What it owns: issuing a session (:func:`issue`), finding the session a request carries (:func:`lookup`),
ending it (:func:`revoke`), and turning a cookie into the management API's caller (:func:`authenticate`,
used by ``management.common`` and ``gateway.ops``; never by the LLM routes, whose hot path reads no cookie).

Two kinds, chosen by whether the gateway has a store:

- **Store-backed** (the normal case; LiteLLM's UI needs a database too). The cookie holds a random session
  id (``secrets.token_urlsafe(32)``); ``rg_ui_sessions`` holds only its SHA-256 with the user, the role at
  sign-in, the CSRF token, how it signed in and the expiry. Every worker reads the same rows, so a session
  works wherever the next request lands, and sign-out deletes the row. Each worker caches what it read for
  :data:`CACHE_TTL` seconds (bounded, LRU), so a page load's dozen API calls cost one query; a session
  revoked on another worker is refused here within that TTL. A session of a user (``user_id`` set) is
  re-checked against the user row on every cache miss: a deleted or blocked user is signed out, and the
  session's role is the user's *current* ``user_role`` (a demoted user loses rights within the TTL).
  Expired rows are purged opportunistically (at most every 10 minutes per worker, at sign-in).
- **Signed** (no store: only the master-key admin can sign in). The cookie is ``s1.<payload>.<mac>``, the
  payload (user, role, CSRF token, expiry) authenticated with HMAC-SHA256 under a key derived from
  ``LITELLM_SALT_KEY``, else the master key. Trade-off, accepted because such a gateway has no database to
  share state through: sign-out clears the browser's cookie, but a copy of the cookie stays valid until
  its expiry (or until the master key / salt changes). A store-backed gateway never accepts a signed cookie.

Admin sessions (``via: master``) are bound to a fingerprint of the admin password they were signed in with
(``UI_PASSWORD``, else the master key): rotating it after a leak ends them on every worker within the cache
TTL, whichever kind they are.

Lifetime: ``LITELLM_UI_SESSION_DURATION`` (LiteLLM's variable: ``30m``, ``12h``, ``7d`` or seconds), 12 hours
by default. The cookie is HttpOnly, SameSite=Strict, Path=/, and Secure when the request came over TLS
(``scope["scheme"] == "https"``, or ``x-forwarded-proto: https`` from a peer listed in
``FORWARDED_ALLOW_IPS``, uvicorn's and LiteLLM's variable).

CSRF: a session carries a random token, given to the page by ``/ui/login`` / ``/ui/session``; a
state-changing request (POST, PUT, PATCH, DELETE) authenticated by the cookie must send it as
``x-csrf-token`` (compared in constant time), else 403. A request that carries a key header
(``Authorization``, ``x-litellm-api-key`` ...) is authenticated by that key exactly as before and the
cookie is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from relaygate.auth import Principal, PrincipalKind
from relaygate.core.errors import GatewayError
from relaygate.http.types import Scope
from relaygate.store import NotFound, Store
from relaygate.store.records import UISession
from relaygate.ui import access, rows

__all__ = ["CACHE_TTL", "COOKIE", "CSRF_HEADER", "Session", "admin_fingerprint", "authenticate", "client_ip",
           "forget_user", "is_https", "issue", "lookup", "revoke", "session_ttl", "trusted_peer"]

log = logging.getLogger("relaygate.ui")

COOKIE = "relaygate_session"
CSRF_HEADER = b"x-csrf-token"
DEFAULT_TTL = 12 * 3600
CACHE_TTL = 3.0
"""Seconds a worker trusts what it read of a session (and its user's role) before reading it again."""
CACHE_SIZE = 4096
PURGE_EVERY = 600.0
VIA = ("master", "password", "sso")
PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
INTERNAL_USER = "internal_user"
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
_KEY_HEADERS = frozenset((b"authorization", b"x-api-key", b"api-key", b"x-litellm-api-key", b"x-goog-api-key"))
_UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in browser: who, with which role, its CSRF token, until when, and how it signed in."""

    user_id: str | None
    role: str
    csrf_token: str
    expires_at: datetime
    via: str
    user_email: str | None = None
    session_hash: str | None = None
    """SHA-256 hex of the session id (store-backed sessions); None for a signed cookie."""
    models: tuple[str, ...] = ()
    """The user's model allow-list as its row says now (empty: every model), read with the role."""

    def answer(self) -> dict[str, Any]:
        """The JSON of ``/ui/login`` and ``/ui/session``."""
        return {"user_id": self.user_id, "user_role": self.role, "user_email": self.user_email,
                "csrf_token": self.csrf_token, "expires_at": self.expires_at.isoformat(), "via": self.via}


@dataclass
class _Worker:
    """This worker's session cache (session hash -> (read at, session or None)) and purge clock."""

    cache: OrderedDict[str, tuple[float, Session | None]] = field(default_factory=OrderedDict)
    last_purge: float = 0.0
    principals: dict[str, tuple[Session, Principal]] = field(default_factory=dict)
    """Session hash -> the principal built for that session state (rebuilt when the role or models move)."""


_workers: weakref.WeakKeyDictionary[Any, _Worker] = weakref.WeakKeyDictionary()


def _state(gw: Any) -> _Worker:
    st = _workers.get(gw)
    if st is None:
        st = _workers[gw] = _Worker()
    return st


# -- settings and request facts -----------------------------------------------------------------------

def session_ttl() -> int:
    """Seconds a new session lasts: ``LITELLM_UI_SESSION_DURATION`` (``30m``, ``12h``, ``7d``, seconds), else 12 h."""
    raw = os.environ.get("LITELLM_UI_SESSION_DURATION", "")
    if not raw:
        return DEFAULT_TTL
    m = _DURATION.match(raw)
    if m is None or int(m.group(1)) <= 0:
        log.warning("LITELLM_UI_SESSION_DURATION=%r is not a duration like 30m, 12h or 7d: using %ds",
                    raw[:40], DEFAULT_TTL)
        return DEFAULT_TTL
    return int(m.group(1)) * _UNIT[m.group(2)]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


def trusted_peer(scope: Scope) -> bool:
    """The peer is a proxy listed in ``FORWARDED_ALLOW_IPS`` (``*``: any): its forwarded headers are believed."""
    allowed = os.environ.get("FORWARDED_ALLOW_IPS", "")
    if not allowed:
        return False
    peer = (scope.get("client") or ("", 0))[0]
    names = {a.strip() for a in allowed.split(",")}
    return "*" in names or peer in names


def is_https(scope: Scope) -> bool:
    """The browser reached us over TLS (directly, or through a trusted proxy saying so)."""
    if scope.get("scheme") == "https":
        return True
    if trusted_peer(scope):
        proto = _header(scope, b"x-forwarded-proto")
        return proto is not None and proto.split(b",")[0].strip().lower() == b"https"
    return False


def client_ip(scope: Scope) -> str:
    """The client's address: the peer, or the first ``x-forwarded-for`` hop from a trusted proxy."""
    peer = str((scope.get("client") or ("unknown", 0))[0])
    if trusted_peer(scope):
        fwd = _header(scope, b"x-forwarded-for")
        if fwd:
            return fwd.split(b",")[0].strip().decode("latin-1")[:64] or peer
    return peer


def _cookie(scope: Scope) -> str | None:
    for k, v in scope["headers"]:
        if k != b"cookie":
            continue
        for part in bytes(v).split(b";"):
            name, sep, value = part.strip().partition(b"=")
            if sep and name == COOKIE.encode():
                text = value.strip().strip(b'"').decode("latin-1")
                return text if 0 < len(text) <= 4096 else None
    return None


def _has_key_header(scope: Scope, custom: bytes | None = None) -> bool:
    return any(k in _KEY_HEADERS or k == custom for k, _ in scope["headers"])


def _set_cookie(scope: Scope, value: str, max_age: int) -> bytes:
    secure = "; Secure" if is_https(scope) else ""
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}".encode()


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("latin-1")).hexdigest()


def admin_fingerprint(gw: Any) -> str | None:
    """A fingerprint of the admin password (``UI_PASSWORD``, else the master key) that ``master`` sessions
    are bound to: rotating it ends them (None: no admin password, no admin session)."""
    secret = os.environ.get("UI_PASSWORD") or gw.runtime.config.general.master_key
    if not secret:
        return None
    return hmac.new(b"relaygate ui admin binding v1", secret.encode(), hashlib.sha256).hexdigest()[:32]


def _bound(gw: Any, via: str, bound_to: str | None) -> bool:
    if via != "master":
        return True
    fp = admin_fingerprint(gw)
    return fp is not None and bound_to is not None and hmac.compare_digest(fp, bound_to)


# -- signed cookies (no store) ------------------------------------------------------------------------

def _signing_key(gw: Any) -> bytes | None:
    secret = os.environ.get("LITELLM_SALT_KEY") or gw.runtime.config.general.master_key
    if not secret:
        return None
    return hmac.new(secret.encode(), b"relaygate ui session v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, s: Session, bound_to: str | None) -> str:
    payload = _b64(orjson.dumps({"u": s.user_id, "r": s.role, "c": s.csrf_token, "v": s.via,
                                 "m": s.user_email, "e": int(s.expires_at.timestamp()), "b": bound_to}))
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"s1.{payload}.{mac}"


def _unsign(gw: Any, key: bytes, value: str) -> Session | None:
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != "s1":
        return None
    want = hmac.new(key, parts[1].encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(parts[2])):
            return None
        data = orjson.loads(_unb64(parts[1]))
        expires = datetime.fromtimestamp(int(data["e"]), UTC)
        s = Session(user_id=data["u"], role=str(data["r"]), csrf_token=str(data["c"]), expires_at=expires,
                    via=str(data["v"]), user_email=data.get("m"))
        bound_to = data.get("b")
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if s.role not in ROLES or expires <= datetime.now(UTC) or not _bound(gw, s.via, bound_to):
        return None
    return s


# -- the contract ---------------------------------------------------------------------------------------

async def issue(gw: Any, scope: Scope, *, user_id: str | None, role: str, via: str,
                user_email: str | None = None) -> tuple[bytes, Session]:
    """A new session for ``user_id`` (None: the UI admin) with ``role``: the ``Set-Cookie`` value and the
    session. ``via`` is ``master``, ``password`` or ``sso``."""
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}, got {via!r}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    ttl = session_ttl()
    now = datetime.now(UTC)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ttl)
    bound_to = admin_fingerprint(gw) if via == "master" else None
    store: Store | None = gw.store
    if store is None:
        key = _signing_key(gw)
        if key is None:
            raise GatewayError("The admin UI needs a master key: set general_settings.master_key or "
                               "LITELLM_MASTER_KEY", status=400, type="bad_request_error", param="None")
        s = Session(user_id, role, csrf, expires, via, user_email)
        return _set_cookie(scope, _sign(key, s, bound_to), ttl), s
    sid = secrets.token_urlsafe(32)
    h = _hash(sid)
    await rows.insert_session(store, UISession(session_hash=h, user_id=user_id, role=role, csrf_token=csrf, via=via,
                                               bound_to=bound_to, created_at=now, expires_at=expires,
                                               last_seen=now))
    s = Session(user_id, role, csrf, expires, via, user_email, h)
    st = _state(gw)
    if user_id is None:  # a user's session is cached on its first lookup, with its row's role and models
        _remember(st, h, s)
    if time.monotonic() - st.last_purge > PURGE_EVERY:
        st.last_purge = time.monotonic()
        try:
            n = await rows.purge_expired(store, now)
            if n:
                log.info("purged %d expired UI sessions", n)
        except Exception as exc:  # a purge is housekeeping: it never fails a sign-in
            log.warning("purging expired UI sessions failed: %s", type(exc).__name__)
    return _set_cookie(scope, sid, ttl), s


def _remember(st: _Worker, h: str, s: Session | None) -> None:
    st.cache[h] = (time.monotonic(), s)
    st.cache.move_to_end(h)
    st.principals.pop(h, None)
    while len(st.cache) > CACHE_SIZE:
        old, _ = st.cache.popitem(last=False)
        st.principals.pop(old, None)


async def lookup(gw: Any, scope: Scope) -> Session | None:
    """The live session the request's cookie names, with its user's current role; None when there is no
    cookie or it is unknown, expired, revoked, or its user is gone or blocked, or no longer allowed the UI
    (``ui.access``: ``ui_access_mode``, ``DISABLE_ADMIN_UI``)."""
    value = _cookie(scope)
    if value is None or access.disabled():
        return None
    s = await _lookup(gw, value)
    if s is not None and access.role_refusal(gw.config.general, s.role) is not None:  # ui_access_mode
        return None
    return s


async def _lookup(gw: Any, value: str) -> Session | None:
    store: Store | None = gw.store
    if store is None:
        key = _signing_key(gw)
        return _unsign(gw, key, value) if key is not None else None
    if value.startswith("s1.") or len(value) > 128:
        return None
    h = _hash(value)
    st = _state(gw)
    hit = st.cache.get(h)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_TTL:
        s = hit[1]
        if s is not None and s.expires_at <= datetime.now(UTC):
            return None
        return s
    s = await _read(gw, store, h)
    _remember(st, h, s)
    return s


async def _read(gw: Any, store: Store, h: str) -> Session | None:
    rec = await rows.get_session(store, h)
    wall = datetime.now(UTC)
    if rec is None or rec.expires_at <= wall or not _bound(gw, rec.via, rec.bound_to):
        return None
    role, email = rec.role, None
    models: tuple[str, ...] = ()
    if rec.user_id is not None:
        try:
            user = await store.get_user(rec.user_id)
        except NotFound:
            return None
        if user.blocked:
            return None
        role = user.user_role if user.user_role in ROLES else INTERNAL_USER
        email = user.user_email
        models = tuple(m for m in user.models if m)
    if rec.last_seen is None or wall - rec.last_seen > timedelta(minutes=5):
        await rows.touch_session(store, h, wall)
    return Session(rec.user_id, role, rec.csrf_token, rec.expires_at, rec.via, email, h, models)


async def revoke(gw: Any, scope: Scope) -> bytes:
    """End the request's session (its row deleted: every worker refuses it within :data:`CACHE_TTL`) and
    return the ``Set-Cookie`` value that clears the browser's cookie."""
    value = _cookie(scope)
    store: Store | None = gw.store
    if value is not None and store is not None and not value.startswith("s1.") and len(value) <= 128:
        h = _hash(value)
        await rows.delete_session(store, h)
        _remember(_state(gw), h, None)
    return _set_cookie(scope, "", 0)


def forget_user(gw: Any, user_id: str) -> None:
    """Drop this worker's cached sessions of ``user_id`` (its row deleted or changed)."""
    st = _state(gw)
    for h, (_, s) in list(st.cache.items()):
        if s is not None and s.user_id == user_id:
            del st.cache[h]
            st.principals.pop(h, None)


# -- the management API's caller ------------------------------------------------------------------------

def _no_session() -> GatewayError:
    return GatewayError("Authentication Error, the UI session is missing, expired or signed out: sign in again "
                        "at /ui", status=401, type="auth_error", param="None")


def _principal(s: Session, groups: Any = None) -> Principal:
    """The principal of a session: the master for the admin; else its user, whose model allow-list (when it
    has one and is no admin) rides as a key-less ``KeyInfo``, so that routes filtering by ``Principal.key``
    (``/v1/models``, ``/model/info``, ``/health/deployments``) show a session no more than its user's key
    would see."""
    if s.user_id is None and s.role == PROXY_ADMIN:
        return Principal(PrincipalKind.MASTER)
    if s.models and s.role not in (PROXY_ADMIN, PROXY_ADMIN_VIEWER):
        from relaygate.auth.keys import KeyInfo
        from relaygate.config.model import KeyConfig

        p = Principal(PrincipalKind.KEY, KeyInfo("", KeyConfig(key="", user_id=s.user_id, models=list(s.models)),
                                                 groups))
        p.key_hash = None  # no key row: the session is its user's, not a key's
    else:
        p = Principal(PrincipalKind.KEY)
    p.user_id = p.record_user = s.user_id
    p.role = s.role
    return p


async def authenticate(gw: Any, scope: Scope) -> Principal | None:
    """The caller of a management / admin route from its session cookie, or None when the request carries a
    key header or no cookie, or the gateway is open (no master key) (the caller then authenticates the key,
    or the anonymous caller, as before). 401 for a cookie that names
    no live session; 403 for a state-changing request without the session's ``x-csrf-token``."""
    if _has_key_header(scope, gw.runtime.principals.key_header) or _cookie(scope) is None:
        return None
    if not gw.runtime.config.general.master_key:
        return None  # an open gateway: every caller is its anonymous admin, a stale cookie changes nothing
    s = await lookup(gw, scope)
    if s is None:
        raise _no_session()
    if scope.get("method", "GET") in _UNSAFE:
        sent = _header(scope, CSRF_HEADER)
        if sent is None or not hmac.compare_digest(sent, s.csrf_token.encode()):
            raise GatewayError("CSRF check failed: a request signed in by the UI session cookie must send the "
                               "session's token in the x-csrf-token header", status=403, type="auth_error",
                               param="None")
    groups = gw.runtime.principals.access_groups
    if s.session_hash is None:
        return _principal(s, groups)
    st = _state(gw)
    built = st.principals.get(s.session_hash)
    if built is not None and built[0].role == s.role and built[0].models == s.models:
        return built[1]
    p = _principal(s, groups)
    st.principals[s.session_hash] = (s, p)
    return p
