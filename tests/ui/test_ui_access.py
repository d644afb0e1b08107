"""Who may use the admin UI (``ui.access``): ``ui_access_mode: admin_only`` for password and single sign-on
and for sessions already open, a ``restricted_sso_group``, and ``DISABLE_ADMIN_UI`` (in process, through the
gateway, on both store backends)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from relaygate.config.model import GeneralSettings
from relaygate.ui import access, sso
from tests.asgi.conftest import Reply, call
from tests.management.conftest import MASTER, Env, run
from tests.store.conftest import db_url  # noqa: F401  (the backend parametrisation)

ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(autouse=True)
def _ui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UI_USERNAME", "UI_PASSWORD", "DISABLE_ADMIN_UI", "FORWARDED_ALLOW_IPS", "PROXY_BASE_URL",
                 "GENERIC_USER_ROLE_ATTRIBUTE", "PROXY_ADMIN_ID", "LITELLM_SALT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GENERIC_CLIENT_ID", "cid")
    monkeypatch.setenv("GENERIC_AUTHORIZATION_ENDPOINT", "https://idp.example/authorize")
    monkeypatch.setenv("GENERIC_TOKEN_ENDPOINT", "https://idp.example/token")


async def login(env: Env, username: str, password: str) -> Reply:
    return await call(env.gw, "POST", "/ui/login", {"username": username, "password": password})


async def session(env: Env, r: Reply) -> Reply:
    return await call(env.gw, "GET", "/ui/session", headers={"cookie": r.headers["set-cookie"].split(";")[0]})


def set_mode(env: Env, mode: Any) -> None:
    env.gw.runtime.config.general.ui_access_mode = mode


def test_admin_only_for_passwords_and_open_sessions(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        await env.ok("POST", "/user/new", {"user_id": "bo", "password": "bo-pass-1", "user_role": "internal_user",
                                           "auto_create_key": False})
        await env.ok("POST", "/user/new", {"user_id": "vi", "password": "vi-pass-1",
                                           "user_role": "proxy_admin_viewer", "auto_create_key": False})
        bo = await login(env, "bo", "bo-pass-1")
        assert bo.status == 200 and (await session(env, bo)).status == 200
        set_mode(env, "admin_only")
        assert (await session(env, bo)).status == 401  # an open session of a user the UI no longer admits
        refused = await login(env, "bo", "bo-pass-1")
        assert refused.status == 403 and "proxy admins only" in refused.json()["error"]["message"]
        assert "set-cookie" not in refused.headers
        for user, password in (("vi", "vi-pass-1"), ("admin", MASTER)):
            ok = await login(env, user, password)
            assert ok.status == 200 and (await session(env, ok)).status == 200, user
        # the API with a key is not the UI: an internal user's key still works
        key = (await env.ok("POST", "/key/generate", {"user_id": "bo"}))["key"]
        assert (await call(env.gw, "GET", "/key/info", headers={"authorization": f"Bearer {key}"})).status == 200

    run(db_url, body)


def _callback_scope(env: Env) -> dict[str, Any]:
    flow = sso.seal(env.gw, {"s": "st", "n": "no", "v": "ve", "e": int(time.time()) + 60})
    return {"type": "http", "scheme": "http", "path": "/sso/callback", "query_string": b"code=c&state=st",
            "headers": [(b"host", b"gw"), (b"cookie", f"{sso.FLOW_COOKIE}={flow}".encode())]}


def test_single_sign_on_admin_only_and_restricted_group(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    claims: dict[str, Any] = {}

    async def fake_claims(scope: Any, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        return claims

    monkeypatch.setattr(sso, "_claims", fake_claims)

    async def body(env: Env) -> None:
        claims.update({"sub": "sso-1", "email": "sso-1@example.test", "groups": ["eng"]})
        status, _, _ = await sso._callback(env.gw, _callback_scope(env))
        assert status == 303  # "all": any user
        set_mode(env, "admin_only")
        with pytest.raises(sso.SSOError) as info:
            await sso._callback(env.gw, _callback_scope(env))
        assert info.value.status == 403 and "proxy admins only" in info.value.message
        set_mode(env, {"type": "restricted_sso_group", "restricted_sso_group": "llm-admins"})
        with pytest.raises(sso.SSOError) as info:
            await sso._callback(env.gw, _callback_scope(env))
        assert info.value.status == 403 and "not in the group" in info.value.message
        claims["groups"] = ["eng", "llm-admins"]
        assert (await sso._callback(env.gw, _callback_scope(env)))[0] == 303

    run(db_url, body)


def test_disable_admin_ui(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        ok = await login(env, "admin", MASTER)
        assert ok.status == 200
        monkeypatch.setenv("DISABLE_ADMIN_UI", "True")
        for method, path in (("GET", "/ui/"), ("GET", "/ui/config"), ("POST", "/ui/login")):
            r = await call(env.gw, method, path, {"username": "admin", "password": MASTER} if method == "POST" else None)
            assert r.status == 403 and "DISABLE_ADMIN_UI" in r.body.decode(), path
        cookie = {"cookie": ok.headers["set-cookie"].split(";")[0]}
        assert (await call(env.gw, "GET", "/key/list", headers=cookie)).status == 401  # the session is no way in
        assert (await call(env.gw, "GET", "/key/list", headers=ADMIN)).status == 200  # keys are
        with pytest.raises(sso.SSOError, match="DISABLE_ADMIN_UI"):
            sso._start(env.gw, {"scheme": "http", "headers": [(b"host", b"gw")]})

    run(db_url, body)


def test_group_claim_paths_and_mode_checks() -> None:
    def general(mode: Any) -> Any:
        return msgspec.convert({"ui_access_mode": mode}, GeneralSettings)

    g = general({"type": "restricted_sso_group", "restricted_sso_group": "a", "sso_group_jwt_field": "realm.roles"})
    assert access.group_refusal(g, {"realm": {"roles": ["b", "a"]}}) is None
    assert access.group_refusal(g, {"realm": {"roles": "a"}}) is None
    assert access.group_refusal(g, {"realm": {}}) is not None and access.group_refusal(g, {}) is not None
    assert access.group_refusal(general("admin_only"), {}) is None
    for bad in ("everyone", {"type": "restricted_sso_group"}, {"type": "other", "restricted_sso_group": "a"}):
        with pytest.raises(msgspec.ValidationError, match="ui_access_mode"):
            general(bad)
