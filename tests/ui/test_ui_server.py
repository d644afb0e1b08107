"""The UI's server side called in process through the gateway: sign-in (master key, UI_USERNAME/UI_PASSWORD,
users' passwords), the rate limit, the session endpoints, cookie auth with CSRF and roles on the management
API, the security headers, and static files with no path escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relaygate.ui import server
from relaygate.ui.assets import AssetStore
from tests.asgi.conftest import Reply, call
from tests.management.conftest import MASTER, Env, make_gateway, run
from tests.store.conftest import db_url  # noqa: F401  (the backend parametrisation)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@pytest.fixture(autouse=True)
def _ui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UI_USERNAME", "UI_PASSWORD", "LITELLM_UI_SESSION_DURATION", "FORWARDED_ALLOW_IPS", "PROXY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def secured(r: Reply) -> None:
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


async def login(env: Env, username: str, password: str) -> Reply:
    return await call(env.gw, "POST", "/ui/login", {"username": username, "password": password})


def cookie_of(r: Reply) -> str:
    return r.headers["set-cookie"].split(";")[0]


async def as_session(env: Env, r: Reply, method: str, path: str, body: dict[str, Any] | None = None, *,
                     csrf: bool = True) -> Reply:
    headers = {"cookie": cookie_of(r)}
    if csrf:
        headers["x-csrf-token"] = r.json()["csrf_token"]
    return await call(env.gw, method, path, body, headers=headers)


# -- sign-in ---------------------------------------------------------------------------------------------


def test_config_is_public_and_holds_no_secret(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        r = await call(env.gw, "GET", "/ui/config")
        assert r.status == 200
        secured(r)
        data = r.json()
        assert data["sso_url"] == "/sso/key/generate" and data["ui_username"] == "admin"
        assert data["sso_enabled"] is False and data["setup_required"] is None and data["version"]
        assert MASTER not in r.body.decode()

    run(db_url, body)


def test_open_gateway_says_what_to_set() -> None:
    import asyncio

    from relaygate.asgi import Gateway
    from relaygate.config import from_litellm

    gw = Gateway(from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}]}, "<t>"))

    async def main() -> None:
        cfg = (await call(gw, "GET", "/ui/config")).json()
        assert "master key" in cfg["setup_required"]
        r = await call(gw, "POST", "/ui/login", {"username": "admin", "password": "x"})
        assert r.status == 400 and "master key" in r.json()["error"]["message"]
        secured(r)
        stale = await call(gw, "GET", "/v1/models", headers={"cookie": "relaygate_session=left-from-before"})
        assert stale.status == 200  # an open gateway's anonymous caller, whatever cookie it still sends

    asyncio.run(main())


def test_master_key_signs_in_as_admin(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        r = await login(env, "admin", MASTER)
        assert r.status == 200, r.body
        secured(r)
        data = r.json()
        assert data["user_role"] == "proxy_admin" and data["via"] == "master" and data["user_id"] is None
        assert len(data["csrf_token"]) >= 32 and data["expires_at"]
        assert r.headers["cache-control"] == "no-store"
        flags = r.headers["set-cookie"]
        assert flags.startswith("relaygate_session=") and "HttpOnly" in flags and "SameSite=Strict" in flags
        assert "Path=/" in flags and "Secure" not in flags
        me = await as_session(env, r, "GET", "/ui/session", csrf=False)
        assert me.status == 200 and me.json() == data
        assert (await call(env.gw, "GET", "/ui/session")).status == 401
        again = await call(env.gw, "POST", "/ui/login", {"username": "admin", "password": MASTER},
                           headers={"cookie": cookie_of(r)})
        assert again.status == 200 and cookie_of(again) != cookie_of(r)
        assert (await as_session(env, r, "GET", "/ui/session", csrf=False)).status == 401  # the old one ended

    run(db_url, body)


def test_ui_username_and_password_replace_the_master_key(db_url: str,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UI_USERNAME", "ops")
    monkeypatch.setenv("UI_PASSWORD", "ui-secret-pw")

    async def body(env: Env) -> None:
        assert (await call(env.gw, "GET", "/ui/config")).json()["ui_username"] == "ops"
        ok = await login(env, "ops", "ui-secret-pw")
        assert ok.status == 200 and ok.json()["user_role"] == "proxy_admin"
        for user, pw in (("ops", MASTER), ("admin", "ui-secret-pw"), ("ops", "ui-secret-p"), ("", "")):
            r = await login(env, user, pw)
            assert r.status == 401, (user, pw)
            assert r.json()["error"]["message"] == "Invalid credentials used to access UI."

    run(db_url, body)


def test_user_password_sign_in_and_never_shown(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        made = await env.ok("POST", "/user/new", {"user_id": "bo", "user_email": "bo@x.test", "password": "bo-pass-1",
                                                  "user_role": "internal_user"})
        assert "bo-pass-1" not in repr(made) and "password" not in made
        for name in ("bo", "bo@x.test"):
            r = await login(env, name, "bo-pass-1")
            assert r.status == 200, r.body
            assert r.json()["user_id"] == "bo" and r.json()["user_role"] == "internal_user"
            assert r.json()["via"] == "password" and r.json()["user_email"] == "bo@x.test"
        wrong = await login(env, "bo", "bo-pass-2")
        unknown = await login(env, "nobody", "bo-pass-1")
        assert wrong.status == unknown.status == 401 and wrong.body == unknown.body
        info = await call(env.gw, "GET", "/user/info?user_id=bo", headers={"authorization": f"Bearer {MASTER}"})
        listed = await call(env.gw, "GET", "/user/list", headers={"authorization": f"Bearer {MASTER}"})
        for text in (info.body.decode(), listed.body.decode()):
            assert "scrypt$" not in text and "password" not in text
        await env.ok("POST", "/user/update", {"user_id": "bo", "password": "bo-pass-2"})
        assert (await login(env, "bo", "bo-pass-1")).status == 401
        assert (await login(env, "bo", "bo-pass-2")).status == 200
        await env.ok("POST", "/user/update", {"user_id": "bo", "blocked": True})
        assert (await login(env, "bo", "bo-pass-2")).status == 401
        await env.ok("POST", "/user/update", {"user_id": "bo", "blocked": False, "password": None})
        assert (await login(env, "bo", "bo-pass-2")).status == 401  # the password was removed
        bad = await env.call("POST", "/user/update", {"user_id": "bo", "password": ""})
        assert bad.status == 400 and bad.json()["error"]["param"] == "password"

    run(db_url, body)


def test_sign_in_is_rate_limited(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        statuses = [(await login(env, "admin", f"wrong-{i}")).status for i in range(5)]
        assert statuses == [401] * 5
        r = await login(env, "admin", MASTER)  # right, but refused until the window moves
        assert r.status == 429 and int(r.headers["retry-after"]) > 0
        secured(r)
        other = await login(env, "someone", "x")  # the same address, another name: still limited
        assert other.status == 429

    run(db_url, body)


def test_bad_login_bodies(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        for raw in (b"", b"not json", b'{"username": 1, "password": "x"}', b'{"username": "admin"}'):
            r = await call(env.gw, "POST", "/ui/login", raw)
            assert r.status == 400, raw
            secured(r)
        cross = await call(env.gw, "POST", "/ui/login", {"username": "admin", "password": MASTER},
                           headers={"origin": "https://evil.example", "host": "127.0.0.1:4000"})
        assert cross.status == 403
        same = await call(env.gw, "POST", "/ui/login", {"username": "admin", "password": MASTER},
                          headers={"origin": "http://127.0.0.1:4000", "host": "127.0.0.1:4000"})
        assert same.status == 200
        cookie = same.headers["set-cookie"].split(";")[0]
        peek = await call(env.gw, "GET", "/ui/session", headers={"cookie": cookie, "origin": "http://127.0.0.1:3000",
                                                                 "host": "127.0.0.1:4000"})
        assert peek.status == 403 and "csrf_token" not in peek.body.decode()

    run(db_url, body)


def test_origin_behind_a_proxy(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        creds = {"username": "admin", "password": MASTER}
        proxied = {"origin": "https://gw.example.com", "host": "10.0.0.5:4000", "x-forwarded-host": "gw.example.com"}
        assert (await call(env.gw, "POST", "/ui/login", creds, headers=proxied)).status == 403  # untrusted peer
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
        assert (await call(env.gw, "POST", "/ui/login", creds, headers=proxied)).status == 200
        monkeypatch.delenv("FORWARDED_ALLOW_IPS")
        monkeypatch.setenv("PROXY_BASE_URL", "https://gw.example.com/")
        r = await call(env.gw, "POST", "/ui/login", creds, headers={"origin": "https://gw.example.com",
                                                                    "host": "10.0.0.5:4000"})
        assert r.status == 200

    run(db_url, body)


# -- cookie auth on the management API -------------------------------------------------------------------


def test_cookie_auth_needs_csrf_for_changes(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        r = await login(env, "admin", MASTER)
        listed = await as_session(env, r, "GET", "/key/list", csrf=False)
        assert listed.status == 200
        refused = await as_session(env, r, "POST", "/key/generate", {"key_alias": "k1"}, csrf=False)
        assert refused.status == 403 and "CSRF" in refused.json()["error"]["message"]
        made = await as_session(env, r, "POST", "/key/generate", {"key_alias": "k1", "max_budget": 5})
        assert made.status == 200 and made.json()["key"].startswith("sk-")
        health = await as_session(env, r, "GET", "/v1/models", csrf=False)
        assert health.status == 200
        ping = await as_session(env, r, "GET", "/cache/ping", csrf=False)  # past auth: no cache configured
        assert ping.status == 503 and "Cache not initialized" in ping.json()["error"]["message"]
        reload = await as_session(env, r, "POST", "/config/reload")  # past auth: no config file to reload
        assert reload.status == 400 and "no file to reload" in reload.json()["error"]["message"]
        # a key header wins over the cookie, exactly as before
        bad_key = await call(env.gw, "GET", "/key/list", headers={"cookie": cookie_of(r),
                                                                  "authorization": "Bearer sk-wrong"})
        assert bad_key.status == 401
        # the LLM routes never read the cookie
        chat = await call(env.gw, "POST", "/v1/chat/completions",
                          {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]},
                          headers={"cookie": cookie_of(r), "x-csrf-token": r.json()["csrf_token"]})
        assert chat.status == 401
        dead = await call(env.gw, "GET", "/key/list", headers={"cookie": "relaygate_session=made-up"})
        assert dead.status == 401 and dead.json()["error"]["type"] == "auth_error"

    run(db_url, body)


def test_session_roles_follow_the_api_rules(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        await env.ok("POST", "/user/new", {"user_id": "iu", "password": "iu-pass-1", "user_role": "internal_user",
                                           "auto_create_key": False})
        await env.ok("POST", "/user/new", {"user_id": "vw", "password": "vw-pass-1",
                                           "user_role": "proxy_admin_viewer", "auto_create_key": False})
        iu = await login(env, "iu", "iu-pass-1")
        refused = await as_session(env, iu, "POST", "/user/new", {"user_id": "x"})
        assert refused.status == 401
        assert "Only proxy admin" in refused.json()["error"]["message"] and "internal_user" in refused.json()["error"]["message"]
        own = await as_session(env, iu, "POST", "/key/generate", {"key_alias": "iu-key"})
        assert own.status == 200 and own.json()["user_id"] == "iu"
        mine = await as_session(env, iu, "GET", "/user/info", csrf=False)
        assert mine.status == 200 and mine.json()["user_id"] == "iu"
        reload = await as_session(env, iu, "POST", "/config/reload")
        assert reload.status == 401
        vw = await login(env, "vw", "vw-pass-1")
        assert (await as_session(env, vw, "GET", "/user/list", csrf=False)).status == 200
        assert (await as_session(env, vw, "POST", "/team/new", {"team_alias": "t"})).status == 401
        # promoted: the next request has the new role (this worker forgets the user's cached sessions)
        await env.ok("POST", "/user/update", {"user_id": "iu", "user_role": "proxy_admin"})
        assert (await as_session(env, iu, "POST", "/team/new", {"team_alias": "t2"})).status == 200
        # blocked: signed out at once on this worker
        await env.ok("POST", "/user/update", {"user_id": "iu", "blocked": True})
        assert (await as_session(env, iu, "GET", "/key/list", csrf=False)).status == 401

    run(db_url, body)


def test_logout_revokes_and_needs_csrf(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        r = await login(env, "admin", MASTER)
        refused = await as_session(env, r, "POST", "/ui/logout", csrf=False)
        assert refused.status == 403
        out = await as_session(env, r, "POST", "/ui/logout")
        assert out.status == 200
        secured(out)
        assert out.headers["set-cookie"].startswith("relaygate_session=;") and "Max-Age=0" in out.headers["set-cookie"]
        assert (await as_session(env, r, "GET", "/ui/session", csrf=False)).status == 401
        assert (await as_session(env, r, "GET", "/key/list", csrf=False)).status == 401
        again = await call(env.gw, "POST", "/ui/logout")  # no session: the cookie is cleared all the same
        assert again.status == 200

    run(db_url, body)


def test_deleting_a_user_ends_its_sessions(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        await env.ok("POST", "/user/new", {"user_id": "gone", "password": "gone-pass", "auto_create_key": False})
        r = await login(env, "gone", "gone-pass")
        assert (await as_session(env, r, "GET", "/key/list", csrf=False)).status == 200
        await env.ok("POST", "/user/delete", {"user_ids": ["gone"]})
        assert (await as_session(env, r, "GET", "/key/list", csrf=False)).status == 401
        async with env.store._read() as c:
            assert await c.fetch("SELECT * FROM rg_user_passwords WHERE user_id = ?", ["gone"]) == []
            assert await c.fetch("SELECT * FROM rg_ui_sessions WHERE user_id = ?", ["gone"]) == []

    run(db_url, body)


# -- static files ------------------------------------------------------------------------------------------


def test_index_and_assets_with_headers() -> None:
    import asyncio

    gw = make_gateway()

    async def main() -> None:
        for path in ("/ui", "/ui/", "/ui/keys", "/ui/teams/abc", "/ui/login"):
            r = await call(gw, "GET", path)
            assert r.status == 200, path
            secured(r)
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
            assert b"<html" in r.body.lower()
        icon = await call(gw, "GET", "/ui/favicon.svg")
        assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert "max-age" in icon.headers["cache-control"]
        same = await call(gw, "GET", "/ui/favicon.svg", headers={"if-none-match": icon.headers["etag"]})
        assert same.status == 304 and same.body == b""
        secured(same)
        head = await call(gw, "HEAD", "/ui/favicon.svg")
        assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(icon.body))
        missing = await call(gw, "GET", "/ui/js/no-such-file.js")
        assert missing.status == 404
        secured(missing)
        for method, path, status in (("GET", "/ui//etc/passwd", 404), ("POST", "/ui/keys", 405),
                                     ("DELETE", "/ui/", 405), ("PUT", "/ui/js/app.js", 405),
                                     ("PUT", "/ui/config", 405), ("DELETE", "/ui/login", 405), ("POST", "/ui", 405)):
            odd = await call(gw, method, path)
            assert odd.status == status, (method, path, odd.status)
            secured(odd)

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/ui/../pyproject.toml", "/ui/%2e%2e/sessions.py", "/ui/..%2fsessions.py",
                                  "/ui/js/../../sessions.py", "/ui/./index.html", "/ui/.hidden", "/ui/a\x00b",
                                  "/ui/..\\sessions.py", "/ui/C:/Windows/win.ini", "/ui/%252e%252e/x"])
def test_no_path_escape_through_the_app(path: str) -> None:
    import asyncio

    gw = make_gateway()
    r = asyncio.run(call(gw, "GET", path))
    assert r.status == 404, path
    secured(r)
    assert b"import" not in r.body


def test_asset_store_stays_inside_its_directory(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<html>index</html>")
    (root / "js" / "app.js").write_text("export {}")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    store = AssetStore(root)
    app = store.find("js/app.js")
    assert app is not None and app.content_type == b"text/javascript; charset=utf-8" and app.body == b"export {}"
    assert store.find("link.txt") is None  # a symlink out of the directory
    for bad in ("../secret.txt", "js/../../secret.txt", "/etc/passwd", "js//app.js", ".git/config", "js/%2e"):
        assert store.find(bad) is None, bad
    assert store.find("keys/new") is not None and store.find("keys/new").body == b"<html>index</html>"  # type: ignore[union-attr]
    assert store.find("js/missing.js") is None


def test_csp_constant_matches_the_contract() -> None:
    assert server.CSP.decode() == CSP


def test_session_sees_only_its_users_models(db_url: str) -> None:  # noqa: F811
    """A user restricted to some models sees no more of the others through the UI's cookie than its keys
    would: /v1/models, /model/info and /health/deployments filter by the user's allow-list."""
    async def body(env: Env) -> None:
        await env.ok("POST", "/user/new", {"user_id": "narrow", "password": "narrow-pass-1", "models": ["gpt-a"],
                                           "user_role": "internal_user", "auto_create_key": False})
        s = await login(env, "narrow", "narrow-pass-1")
        listed = await as_session(env, s, "GET", "/v1/models", csrf=False)
        assert listed.status == 200 and [m["id"] for m in listed.json()["data"]] == ["gpt-a"]
        info = await as_session(env, s, "GET", "/model/info", csrf=False)
        assert info.status == 200 and {m["model_name"] for m in info.json()["data"]} == {"gpt-a"}
        health = await as_session(env, s, "GET", "/health/deployments", csrf=False)
        assert health.status == 200 and {d["model_name"] for d in health.json()["deployments"]} == {"gpt-a"}
        # widened: the next request after the change sees the new allow-list
        await env.ok("POST", "/user/update", {"user_id": "narrow", "models": ["gpt-a", "gpt-b"]})
        listed = await as_session(env, s, "GET", "/v1/models", csrf=False)
        assert sorted(m["id"] for m in listed.json()["data"]) == ["gpt-a", "gpt-b"]
        admin = await login(env, "admin", MASTER)
        everything = await as_session(env, admin, "GET", "/v1/models", csrf=False)
        assert sorted(m["id"] for m in everything.json()["data"]) == ["gpt-a", "gpt-b", "gpt-c"]

    run(db_url, body)
