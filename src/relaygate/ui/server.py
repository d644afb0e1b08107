"""The admin UI's server side: its JSON endpoints (config, sign-in, session, sign-out), its static files, and
the security headers every ``/ui`` answer carries.

Endpoints (the front end's only private ones; everything else it does through the management API):

- ``GET /ui/config`` (public): ``sso_enabled``, ``sso_url``, ``ui_username``, ``version``, and
  ``setup_required`` (null, or what the operator must set before anyone can sign in). No secrets.
- ``POST /ui/login`` ``{"username", "password"}``: LiteLLM's rules. ``UI_USERNAME`` (default ``admin``) with
  ``UI_PASSWORD``, or with the master key when ``UI_PASSWORD`` is unset, signs in as ``proxy_admin``
  (``via: master``). Otherwise the username is a user's ``user_id`` or ``user_email`` and the password the
  one given to ``/user/new`` / ``/user/update`` (``via: password``, the user's ``user_role``); a blocked user
  cannot sign in. Every failure is the same 401 (``Invalid credentials used to access UI.``), never saying
  which part was wrong; an unknown user costs the same hashing time as a wrong password. Rate-limited per
  client address and per username (``ui.limits``): 429 with ``Retry-After``. One log line per failure (the
  username escaped and cut, never the password). A cross-origin ``Origin`` is refused (login CSRF): the
  request's ``Host``, a trusted proxy's ``x-forwarded-host`` or ``PROXY_BASE_URL``'s host are this origin.
- ``GET /ui/session``: the session's JSON (same as the sign-in's, with the CSRF token), or 401; 403 for a
  cross-origin ``Origin``, so that no other origin's script reads the CSRF token even where CORS allows it.
- ``POST /ui/logout``: revokes the session (its row deleted) and clears the cookie; with a live session it
  needs its ``x-csrf-token`` (403 otherwise), like every cookie-authenticated state change.

An open gateway (no master key) has no UI sign-in, as LiteLLM's UI needs a master key: ``/ui/config`` says
so in ``setup_required`` and ``/ui/login`` answers 400 with the same text (its management API is open to
anyone reaching it then anyway). Without a store, only the ``UI_USERNAME`` admin can sign in (signed cookie
sessions, see ``ui.sessions``).

Every answer under ``/ui`` (errors included) carries the strict ``Content-Security-Policy``,
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``; JSON
answers are ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac
import html
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson

from relaygate import __version__
from relaygate.core.errors import GatewayError
from relaygate.http.body import ClientGone, read_body
from relaygate.http.respond import send_error, send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Outgoing, Receive, Scope, Send
from relaygate.store import NotFound, Store, User
from relaygate.ui import access, passwords, rows, sessions
from relaygate.ui.assets import Asset, AssetStore, etag
from relaygate.ui.limits import SignInLimiter

__all__ = ["CSP", "SECURITY_HEADERS", "add_routes"]

log = logging.getLogger("relaygate.ui")

CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       b"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = ((b"content-security-policy", CSP), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"))
SSO_URL = "/sso/key/generate"
BAD_CREDENTIALS = "Invalid credentials used to access UI."
NEEDS_MASTER_KEY = ("The admin UI needs a master key: set general_settings.master_key in the config (or "
                    "LITELLM_MASTER_KEY) and restart. Without one the gateway is open and its management API "
                    "takes no key.")
_NO_STORE = (b"cache-control", b"no-store")
_Handler = Callable[[Scope, Receive, Send, Params], Awaitable[None]]


class LoginBody(msgspec.Struct):
    username: str
    password: str


def secured(send: Send) -> Send:
    """``send`` with the UI's security headers added to the response start."""

    async def out(message: Outgoing) -> None:
        if message["type"] == "http.response.start":
            headers = list(message["headers"])
            have = {k.lower() for k, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in have)
            message = {"type": "http.response.start", "status": message["status"], "headers": headers}
        await send(message)

    return out


def _guarded(handler: _Handler) -> _Handler:
    """Errors answered here, through the secured ``send``, so that they carry the headers too."""

    async def run(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        out = secured(send)
        try:
            if access.disabled():
                raise GatewayError(access.DISABLED, status=403, type="auth_error", param="None")
            await handler(scope, receive, out, params)
        except GatewayError as exc:
            await send_error(out, exc)
        except ClientGone:
            raise
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            await send_error(out, GatewayError("Internal server error", status=500))

    return run


async def _json(send: Send, status: int, data: Any, *extra: tuple[bytes, bytes]) -> None:
    await send_json(send, status, orjson.dumps(data), [_NO_STORE, *extra])


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


def _same_origin(scope: Scope) -> bool:
    """No ``Origin`` (not a browser's cross-origin request), or one naming this host: the ``Host`` header,
    ``x-forwarded-host`` from a trusted proxy (``FORWARDED_ALLOW_IPS``), or ``PROXY_BASE_URL``'s host."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    hosts = {(_header(scope, b"host") or b"").lower()}
    if sessions.trusted_peer(scope):
        fwd = _header(scope, b"x-forwarded-host")
        if fwd:
            hosts.add(fwd.split(b",")[0].strip().lower())
    base = os.environ.get("PROXY_BASE_URL", "").strip()
    if base:
        hosts.add(base.encode().partition(b"://")[2].split(b"/")[0].lower())
    hosts.discard(b"")
    return origin.partition(b"://")[2].rstrip(b"/").lower() in hosts


def _cross_origin() -> GatewayError:
    return GatewayError("Cross-origin request refused: the UI's sign-in endpoints answer only its own pages",
                        status=403, type="auth_error", param="None")


def _ui_username() -> str:
    return os.environ.get("UI_USERNAME") or "admin"


def _escape(name: str) -> str:
    return repr(name[:64])


class UIServer:
    """One worker's UI: its assets, its sign-in limiter, and the handlers (bound to the gateway)."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self.assets = AssetStore()
        self._rooted_pages: dict[tuple[bytes, str], Asset] = {}
        self.limiter = SignInLimiter()

    # -- JSON endpoints ---------------------------------------------------------------------------------

    def _master_key(self) -> str | None:
        mk: str | None = self.gw.runtime.config.general.master_key
        return mk or None

    async def config(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        from relaygate.ui import sso

        await _json(send, 200, {"sso_enabled": bool(sso.sso_enabled(self.gw)), "sso_url": SSO_URL,
                                "ui_username": _ui_username(), "version": __version__,
                                "setup_required": None if self._master_key() else NEEDS_MASTER_KEY})

    async def login(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        if not _same_origin(scope):
            raise _cross_origin()
        raw = await read_body(receive, self.gw.runtime.body_limits)
        try:
            body = msgspec.json.decode(raw or b"{}", type=LoginBody)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise GatewayError("Invalid request body: expected {\"username\": string, \"password\": string}",
                               status=400, type="bad_request_error", param="username") from None
        master = self._master_key()
        if master is None:
            raise GatewayError(NEEDS_MASTER_KEY, status=400, type="bad_request_error", param="None")
        username = body.username.strip()[:256]
        ip = sessions.client_ip(scope)
        names = (f"ip:{ip}", f"user:{username.lower()}")
        now = time.monotonic()
        wait = self.limiter.retry_after(names, now)
        if wait is not None:
            log.warning("UI sign-in refused for username %s from %s: too many failed attempts", _escape(username), ip)
            raise GatewayError(f"Too many failed sign-in attempts: try again in {wait} seconds", status=429,
                               type="rate_limit_error", param="None",
                               headers=[(b"retry-after", str(wait).encode())])
        found = await self._credentials(username, body.password, master)
        if found is None:
            self.limiter.failed(names, time.monotonic())
            log.warning("UI sign-in failed for username %s from %s", _escape(username), ip)
            raise GatewayError(BAD_CREDENTIALS, status=401, type="auth_error", param="None")
        self.limiter.succeeded(names[1])
        user_id, role, via, email = found
        refused = access.role_refusal(self.gw.config.general, role)
        if refused is not None:
            log.warning("UI sign-in refused for %s from %s: role %s (ui_access_mode)", user_id or _escape(username),
                        ip, role)
            raise GatewayError(refused, status=403, type="auth_error", param="None")
        await sessions.revoke(self.gw, scope)  # a session the browser still had ends: one live session each
        cookie, session = await sessions.issue(self.gw, scope, user_id=user_id, role=role, via=via, user_email=email)
        log.info("UI sign-in: %s as %s (%s)", user_id or _escape(username), role, via)
        await _json(send, 200, session.answer(), (b"set-cookie", cookie))

    async def _credentials(self, username: str, password: str,
                           master: str) -> tuple[str | None, str, str, str | None] | None:
        """(user_id, role, via, email) when the credentials are right, else None."""
        ui_password = os.environ.get("UI_PASSWORD") or master
        name_ok = hmac.compare_digest(username.encode(), _ui_username().encode())
        pass_ok = hmac.compare_digest(password.encode(), ui_password.encode())
        if name_ok and pass_ok:
            return None, sessions.PROXY_ADMIN, "master", None
        store: Store | None = self.gw.store
        if store is None or len(password.encode()) > passwords.MAX_PASSWORD_BYTES or not username:
            return None
        user = await self._user(store, username)
        stored = await rows.get_password(store, user.user_id) if user is not None else None
        if not await passwords.check(password, stored) or user is None or user.blocked:
            return None
        role = user.user_role if user.user_role in sessions.ROLES else sessions.INTERNAL_USER
        return user.user_id, role, "password", user.user_email

    @staticmethod
    async def _user(store: Store, username: str) -> User | None:
        try:
            return await store.get_user(username)
        except NotFound:
            pass
        if "@" not in username:
            return None
        found = await rows.users_by_email(store, username)
        return found[0] if len(found) == 1 else None

    async def session(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        if not _same_origin(scope):  # the CSRF token is for this origin's pages only
            raise _cross_origin()
        s = await sessions.lookup(self.gw, scope)
        if s is None:
            raise GatewayError("Not signed in", status=401, type="auth_error", param="None")
        await _json(send, 200, s.answer())

    async def logout(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        if not _same_origin(scope):
            raise _cross_origin()
        s = await sessions.lookup(self.gw, scope)
        if s is not None:
            sent = _header(scope, sessions.CSRF_HEADER)
            if sent is None or not hmac.compare_digest(sent, s.csrf_token.encode()):
                raise GatewayError("CSRF check failed: send the session's x-csrf-token to sign out", status=403,
                                   type="auth_error", param="None")
        cookie = await sessions.revoke(self.gw, scope)
        await _json(send, 200, {"status": "signed out"}, (b"set-cookie", cookie))

    # -- static files -----------------------------------------------------------------------------------

    async def index(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._asset(scope, send, "")

    async def static(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._asset(scope, send, params.get("path", ""))

    async def rest(self, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        """Whatever else is under ``/ui`` (odd paths such as ``/ui//x``, other methods): answered here so that
        it carries the security headers too."""
        method, path = scope.get("method"), scope["path"]
        if method in ("GET", "HEAD"):  # only a path no pattern matched gets here: the mount's
            await self._asset(scope, send, params.get("path", ""))
            return
        allowed = b"GET, HEAD, POST" if path in ("/ui/login", "/ui/logout") else b"GET, HEAD"
        raise GatewayError(f"Method Not Allowed: {method} {path[:200]}", status=405, type="invalid_request_error",
                           param="None", headers=[(b"allow", allowed)])

    async def _asset(self, scope: Scope, send: Send, rel: str) -> None:
        asset = self.assets.find(rel)
        if asset is None:
            raise GatewayError(f"Not found: {scope['path'][:200]}", status=404, type="not_found_error",
                               param="None")
        root = scope.get("root_path") or ""
        if root and asset.content_type.startswith(b"text/html"):
            asset = self._rooted(asset, root)
        headers = [(b"etag", asset.etag), (b"cache-control", asset.cache_control)]
        inm = _header(scope, b"if-none-match")
        if inm is not None and asset.etag in {t.strip() for t in inm.split(b",")}:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [(b"content-type", asset.content_type), (b"content-length", b"%d" % len(asset.body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else asset.body})


    def _rooted(self, asset: Asset, root: str) -> Asset:
        """The page as served under ``SERVER_ROOT_PATH``: its ``/ui/`` links under the prefix, and the prefix
        in ``<meta name="relaygate-root">`` for the scripts' API calls (made once per page and prefix)."""
        key = (asset.etag, root)
        done = self._rooted_pages.get(key)
        if done is None:
            prefix = html.escape(root, quote=True).encode()
            body = asset.body.replace(b'"/ui/', b'"' + prefix + b"/ui/").replace(
                b"<head>", b'<head>\n<meta name="relaygate-root" content="' + prefix + b'">', 1)
            if len(self._rooted_pages) > 16:
                self._rooted_pages.clear()
            done = self._rooted_pages[key] = Asset(body, asset.content_type, etag(body), asset.cache_control)
        return done


def add_routes(t: RouteTable, gw: Any) -> UIServer:
    """Add the UI's routes to ``t``; the server object (tests reach its limiter and assets through it)."""
    ui = UIServer(gw)
    taken: dict[str, set[str]] = {}

    def add(method: str, path: str, handler: _Handler) -> None:
        t.add(method, path, _guarded(handler))
        taken.setdefault(path, set()).update((method, "HEAD") if method == "GET" else (method,))

    add("GET", "/ui/config", ui.config)
    add("POST", "/ui/login", ui.login)
    add("GET", "/ui/session", ui.session)
    add("POST", "/ui/logout", ui.logout)
    for path in ("/ui", "/ui/", "/ui/login", "/ui/logout"):  # a browser landing on a sign-in URL gets the page
        add("GET", path, ui.index)
    add("GET", "/ui/{path:path}", ui.static)
    for path, methods in taken.items():  # other methods: a 405 that carries the headers too
        others = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m not in methods]
        if others:
            t.add(others, path, _guarded(ui.rest))
    t.mount("/ui", _guarded(ui.rest))  # tried last: anything else under /ui (``/ui//x``), with the headers
    return ui
