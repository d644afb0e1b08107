"""Admin-UI sessions, passwords and the sign-in limiter, in process: store-backed sessions on both backends
(two gateways on one store stand for two workers), signed cookies without a store, cookie flags, hashes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.core.errors import GatewayError
from relaygate.store import User
from relaygate.store.records import UISession
from relaygate.ui import passwords, rows, sessions
from relaygate.ui.limits import SignInLimiter
from tests.management.conftest import Env, make_gateway, run
from tests.store.conftest import db_url  # noqa: F401  (the backend parametrisation)


def scope(cookie: str | None = None, *, scheme: str = "http", method: str = "GET",
          headers: dict[str, str] | None = None, client: str = "127.0.0.1") -> dict[str, Any]:
    hs = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookie is not None:
        hs.append((b"cookie", f"theme=dark; {sessions.COOKIE}={cookie}; other=1".encode()))
    return {"type": "http", "method": method, "path": "/key/list", "headers": hs, "scheme": scheme,
            "client": (client, 5555), "query_string": b""}


def cookie_value(set_cookie: bytes) -> str:
    first = set_cookie.decode().split(";")[0]
    name, _, value = first.partition("=")
    assert name == sessions.COOKIE
    return value


# -- passwords -------------------------------------------------------------------------------------------


def test_password_hash_carries_its_parameters_and_verifies() -> None:
    h = passwords.hash_password("correct horse", n=2**10)
    assert h.startswith("scrypt$n=1024,r=8,p=1$")
    assert "correct horse" not in h
    assert passwords.verify("correct horse", h)
    assert not passwords.verify("correct horsE", h)
    assert passwords.needs_rehash(h) and not passwords.needs_rehash(passwords.hash_password("x"))
    assert passwords.hash_password("same", n=2**10) != passwords.hash_password("same", n=2**10)  # salted


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$n=3,r=8,p=1$AA$AA", "bcrypt$x$y$z", "scrypt$n=1024$AA$AA",
                                    "scrypt$n=1024,r=8,p=1$***$AA", "scrypt$n=4194304,r=8,p=1$AA$AA"])
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert passwords.verify("anything", stored) is False


def test_check_without_a_hash_is_false() -> None:
    assert asyncio.run(passwords.check("pw", None)) is False
    h = passwords.hash_password("pw")
    assert asyncio.run(passwords.check("pw", h)) is True


# -- the limiter ---------------------------------------------------------------------------------------


def test_limiter_refuses_after_five_failures_until_the_window_moves() -> None:
    lim = SignInLimiter(limit=5, window=60)
    names = ("ip:1.2.3.4", "user:admin")
    for i in range(5):
        assert lim.retry_after(names, 100.0 + i) is None
        lim.failed(names, 100.0 + i)
    assert lim.retry_after(names, 105.0) == 55
    assert lim.retry_after(("ip:9.9.9.9", "user:admin"), 105.0) == 55  # the username alone is enough
    assert lim.retry_after(("ip:1.2.3.4", "user:other"), 105.0) == 55  # and so is the address
    assert lim.retry_after(names, 160.5) is None  # the oldest failure left the window


def test_limiter_success_clears_the_username_not_the_address() -> None:
    lim = SignInLimiter(limit=2, window=60)
    lim.failed(("ip:a", "user:u"), 0.0)
    lim.failed(("ip:a", "user:u"), 1.0)
    lim.succeeded("user:u")
    assert lim.retry_after(("ip:b", "user:u"), 2.0) is None
    assert lim.retry_after(("ip:a", "user:v"), 2.0) == 58


def test_limiter_is_bounded() -> None:
    lim = SignInLimiter(limit=5, window=60, max_entries=100)
    for i in range(1000):
        lim.failed((f"ip:{i}",), float(i) / 1000)
    assert len(lim) == 100


# -- cookie flags, settings --------------------------------------------------------------------------------


def test_session_ttl_reads_litellm_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_UI_SESSION_DURATION", raising=False)
    assert sessions.session_ttl() == 12 * 3600
    for raw, seconds in (("30m", 1800), ("24h", 86400), ("7d", 7 * 86400), ("90", 90), ("45s", 45)):
        monkeypatch.setenv("LITELLM_UI_SESSION_DURATION", raw)
        assert sessions.session_ttl() == seconds
    monkeypatch.setenv("LITELLM_UI_SESSION_DURATION", "soon")
    assert sessions.session_ttl() == 12 * 3600


def test_https_only_from_tls_or_a_trusted_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    fwd = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9, 10.0.0.1"}
    assert sessions.is_https(scope(scheme="https"))
    assert not sessions.is_https(scope(headers=fwd))  # anyone can send the header
    assert sessions.client_ip(scope(headers=fwd)) == "127.0.0.1"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    assert sessions.is_https(scope(headers=fwd))
    assert sessions.client_ip(scope(headers=fwd)) == "203.0.113.9"
    assert not sessions.is_https(scope(headers=fwd, client="10.9.9.9"))


# -- signed sessions (no store) ----------------------------------------------------------------------------


def test_signed_session_without_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_SALT_KEY", raising=False)
    gw = make_gateway()

    async def main() -> None:
        set_cookie, s = await sessions.issue(gw, scope(scheme="https"), user_id=None, role="proxy_admin", via="master")
        text = set_cookie.decode()
        assert "HttpOnly" in text and "SameSite=Strict" in text and "Path=/" in text and "; Secure" in text
        assert f"Max-Age={12 * 3600}" in text
        value = cookie_value(set_cookie)
        assert value.startswith("s1.")
        found = await sessions.lookup(gw, scope(value))
        assert found is not None and found.role == "proxy_admin" and found.csrf_token == s.csrf_token
        head, payload, mac = value.split(".")
        forged = f"{head}.{payload}.{'A' * len(mac)}"
        assert await sessions.lookup(gw, scope(forged)) is None
        assert await sessions.lookup(gw, scope("garbage")) is None
        assert await sessions.lookup(gw, scope()) is None
        p = await sessions.authenticate(gw, scope(value))
        assert p is not None and p.is_master
        cleared = (await sessions.revoke(gw, scope(value))).decode()
        assert cleared.startswith(f"{sessions.COOKIE}=;") and "Max-Age=0" in cleared
        plain = (await sessions.issue(gw, scope(), user_id=None, role="proxy_admin", via="master"))[0].decode()
        assert "Secure" not in plain

    asyncio.run(main())


def test_signed_session_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_UI_SESSION_DURATION", "1s")
    gw = make_gateway()

    async def main() -> None:
        set_cookie, _ = await sessions.issue(gw, scope(), user_id=None, role="proxy_admin", via="master")
        value = cookie_value(set_cookie)
        assert await sessions.lookup(gw, scope(value)) is not None
        await asyncio.sleep(2.1)
        assert await sessions.lookup(gw, scope(value)) is None

    asyncio.run(main())


# -- store-backed sessions ------------------------------------------------------------------------------------


def test_store_session_keeps_only_the_hash(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        set_cookie, s = await sessions.issue(env.gw, scope(), user_id=None, role="proxy_admin", via="master")
        sid = cookie_value(set_cookie)
        assert len(sid) >= 43 and not sid.startswith("s1.")
        assert s.session_hash == hashlib.sha256(sid.encode()).hexdigest()
        rec = await rows.get_session(env.store, s.session_hash)
        assert rec is not None and rec.via == "master" and rec.csrf_token == s.csrf_token
        async with env.store._read() as c:
            dump = repr(await c.fetch("SELECT * FROM rg_ui_sessions", []))
        assert sid not in dump
        found = await sessions.lookup(env.gw, scope(sid))
        assert found is not None and found.user_id is None and found.role == "proxy_admin"

    run(db_url, body)


def test_another_worker_sees_the_session_and_its_revocation(db_url: str,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "CACHE_TTL", 0.3)

    async def body(env: Env) -> None:
        other = make_gateway()  # a second worker: its own caches, the same store
        other.store = env.store
        set_cookie, _ = await sessions.issue(env.gw, scope(), user_id=None, role="proxy_admin", via="master")
        sid = cookie_value(set_cookie)
        assert await sessions.lookup(other, scope(sid)) is not None
        await sessions.revoke(env.gw, scope(sid))
        assert await sessions.lookup(env.gw, scope(sid)) is None  # this worker: at once
        await asyncio.sleep(0.35)
        assert await sessions.lookup(other, scope(sid)) is None  # the other: once its cache entry is stale

    run(db_url, body)


def test_user_session_follows_the_user_row(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(sessions, "CACHE_TTL", 0.0)

    async def body(env: Env) -> None:
        await env.store.create_user(User(user_id="ann", user_role="proxy_admin_viewer", user_email="ann@x.test"))
        set_cookie, _ = await sessions.issue(env.gw, scope(), user_id="ann", role="proxy_admin_viewer",
                                             via="password")
        sid = cookie_value(set_cookie)
        found = await sessions.lookup(env.gw, scope(sid))
        assert found is not None and found.role == "proxy_admin_viewer" and found.user_email == "ann@x.test"
        await env.store.update_user("ann", user_role="internal_user_viewer")
        found = await sessions.lookup(env.gw, scope(sid))
        assert found is not None and found.role == "internal_user_viewer"  # demoted at once
        p = await sessions.authenticate(env.gw, scope(sid))
        assert p is not None and p.user_id == "ann" and p.role == "internal_user_viewer" and p.key is None
        await env.store.update_user("ann", blocked=True)
        assert await sessions.lookup(env.gw, scope(sid)) is None
        await env.store.update_user("ann", blocked=False)
        await env.store.delete_user("ann")
        assert await sessions.lookup(env.gw, scope(sid)) is None

    run(db_url, body)


def test_expired_rows_are_refused_and_purged(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        past = datetime.now(UTC) - timedelta(hours=1)
        await rows.insert_session(env.store, UISession(session_hash=hashlib.sha256(b"old").hexdigest(), role="proxy_admin",
                                                       csrf_token="t", via="master", created_at=past, expires_at=past))
        assert await sessions.lookup(env.gw, scope("old")) is None
        assert await rows.purge_expired(env.store, datetime.now(UTC)) == 1
        assert await rows.get_session(env.store, hashlib.sha256(b"old").hexdigest()) is None

    run(db_url, body)


def test_a_store_gateway_refuses_signed_cookies(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        bare: Gateway = make_gateway()
        set_cookie, _ = await sessions.issue(bare, scope(), user_id=None, role="proxy_admin", via="master")
        assert await sessions.lookup(env.gw, scope(cookie_value(set_cookie))) is None

    run(db_url, body)


def test_authenticate_csrf_and_key_headers(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        set_cookie, s = await sessions.issue(env.gw, scope(), user_id=None, role="proxy_admin", via="master")
        sid = cookie_value(set_cookie)
        assert await sessions.authenticate(env.gw, scope(sid, headers={"authorization": "Bearer x"})) is None
        assert await sessions.authenticate(env.gw, scope()) is None
        assert (await sessions.authenticate(env.gw, scope(sid))) is not None  # GET: no token needed
        for sent in (None, "wrong", s.csrf_token[:-1]):
            hs = {"x-csrf-token": sent} if sent is not None else {}
            with pytest.raises(GatewayError) as err:
                await sessions.authenticate(env.gw, scope(sid, method="POST", headers=hs))
            assert err.value.status == 403
        ok = await sessions.authenticate(env.gw, scope(sid, method="DELETE", headers={"x-csrf-token": s.csrf_token}))
        assert ok is not None
        with pytest.raises(GatewayError) as err:
            await sessions.authenticate(env.gw, scope("not-a-session"))
        assert err.value.status == 401

    run(db_url, body)


def test_admin_sessions_end_when_the_admin_password_changes(db_url: str,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "CACHE_TTL", 0.0)
    monkeypatch.setenv("UI_PASSWORD", "first-password")

    async def body(env: Env) -> None:
        bare = make_gateway()  # no store: a signed cookie
        stored = cookie_value((await sessions.issue(env.gw, scope(), user_id=None, role="proxy_admin",
                                                    via="master"))[0])
        signed = cookie_value((await sessions.issue(bare, scope(), user_id=None, role="proxy_admin",
                                                    via="master"))[0])
        assert await sessions.lookup(env.gw, scope(stored)) is not None
        assert await sessions.lookup(bare, scope(signed)) is not None
        monkeypatch.setenv("UI_PASSWORD", "rotated-password")
        assert await sessions.lookup(env.gw, scope(stored)) is None
        assert await sessions.lookup(bare, scope(signed)) is None
        monkeypatch.setenv("UI_PASSWORD", "first-password")
        assert await sessions.lookup(env.gw, scope(stored)) is not None  # bound to the password, nothing else

    run(db_url, body)
