"""The UI's server side against a real ``relaygate serve`` (Granian, two workers, SQLite beside the config),
with httpx as the client: sign-in by master key, by UI_USERNAME / UI_PASSWORD and by a user's password; the
cookie's flags; cookie-authenticated management calls with and without the CSRF token; role refusals;
sign-out on one worker refused by the other; the sign-in rate limit; security headers; no path escape."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-ui-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {MASTER}
"""
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
ENV = {"FORWARDED_ALLOW_IPS": "127.0.0.1", "UI_USERNAME": "", "UI_PASSWORD": "",
       "LITELLM_UI_SESSION_DURATION": ""}


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProc]:
    with start_gateway(CONFIG, workers=2, env=ENV) as g:
        yield g


def fresh(gw: GatewayProc, method: str, path: str, *, ip: str, cookie: str | None = None, csrf: str | None = None,
          json: Any = None, key: str | None = None) -> httpx.Response:
    """One request on a new connection (so either worker may answer), from client address ``ip``."""
    headers = {"x-forwarded-for": ip}
    if cookie is not None:
        headers["cookie"] = cookie
    if csrf is not None:
        headers["x-csrf-token"] = csrf
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        return client.request(method, path, headers=headers, json=json)


def sign_in(gw: GatewayProc, username: str, password: str, ip: str) -> tuple[str, str, httpx.Response]:
    r = fresh(gw, "POST", "/ui/login", ip=ip, json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.headers["set-cookie"].split(";")[0], r.json()["csrf_token"], r


def secured(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


def test_master_key_sign_in_and_cookie_auth(gw: GatewayProc) -> None:
    ip = "198.51.100.1"
    page = fresh(gw, "GET", "/ui/", ip=ip)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    secured(page)
    cfg = fresh(gw, "GET", "/ui/config", ip=ip).json()
    assert cfg["ui_username"] == "admin" and cfg["setup_required"] is None
    cookie, csrf, r = sign_in(gw, "admin", MASTER, ip)
    secured(r)
    flags = [f.strip() for f in r.headers["set-cookie"].split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags and "Secure" not in flags
    assert any(f.startswith("Max-Age=") and int(f[8:]) == 12 * 3600 for f in flags)
    assert r.json()["user_role"] == "proxy_admin" and r.json()["via"] == "master"
    assert fresh(gw, "GET", "/ui/session", ip=ip, cookie=cookie).json()["csrf_token"] == csrf
    no_csrf = fresh(gw, "POST", "/key/generate", ip=ip, cookie=cookie, json={"key_alias": "ui-e2e"})
    assert no_csrf.status_code == 403
    made = fresh(gw, "POST", "/key/generate", ip=ip, cookie=cookie, csrf=csrf,
                 json={"key_alias": "ui-e2e", "max_budget": 1.5})
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    listed = fresh(gw, "GET", "/key/list", ip=ip, cookie=cookie)
    assert listed.status_code == 200
    chat = fresh(gw, "POST", "/v1/chat/completions", ip=ip, key=key,
                 json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200
    only_cookie = fresh(gw, "POST", "/v1/chat/completions", ip=ip, cookie=cookie, csrf=csrf,
                        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert only_cookie.status_code == 401  # the LLM routes never take the cookie


def test_user_password_sign_in_roles_and_block(gw: GatewayProc) -> None:
    ip = "198.51.100.2"
    made = fresh(gw, "POST", "/user/new", ip=ip, key=MASTER,
                 json={"user_id": "e2e-user", "user_email": "e2e@x.test", "password": "e2e-pass-1",
                       "user_role": "internal_user", "auto_create_key": False})
    assert made.status_code == 200 and "e2e-pass-1" not in made.text
    cookie, csrf, r = sign_in(gw, "e2e@x.test", "e2e-pass-1", ip)
    assert r.json()["user_id"] == "e2e-user" and r.json()["user_role"] == "internal_user"
    refused = fresh(gw, "POST", "/user/new", ip=ip, cookie=cookie, csrf=csrf, json={"user_id": "x"})
    assert refused.status_code == 401 and "Only proxy admin" in refused.json()["error"]["message"]
    own = fresh(gw, "POST", "/key/generate", ip=ip, cookie=cookie, csrf=csrf, json={})
    assert own.status_code == 200 and own.json()["user_id"] == "e2e-user"
    blocked = fresh(gw, "POST", "/user/update", ip=ip, key=MASTER, json={"user_id": "e2e-user", "blocked": True})
    assert blocked.status_code == 200
    until_refused(gw, "/key/list", cookie, ip)
    again = fresh(gw, "POST", "/ui/login", ip=ip, json={"username": "e2e-user", "password": "e2e-pass-1"})
    assert again.status_code == 401


def until_refused(gw: GatewayProc, path: str, cookie: str, ip: str) -> None:
    """Wait until 20 requests in a row, each on a new connection (either worker), get 401 with ``cookie``."""
    deadline = time.monotonic() + 15
    streak = 0
    while streak < 20:
        status = fresh(gw, "GET", path, ip=ip, cookie=cookie).status_code
        streak = streak + 1 if status == 401 else 0
        assert status in (200, 401), status
        assert time.monotonic() < deadline, "the session still answers on some worker"


def test_sign_out_on_one_worker_is_refused_by_the_other(gw: GatewayProc) -> None:
    ip = "198.51.100.3"
    cookie, csrf, _ = sign_in(gw, "admin", MASTER, ip)
    for _ in range(20):  # warm both workers' session caches
        assert fresh(gw, "GET", "/key/list", ip=ip, cookie=cookie).status_code == 200
    out = fresh(gw, "POST", "/ui/logout", ip=ip, cookie=cookie, csrf=csrf)
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    until_refused(gw, "/key/list", cookie, ip)
    assert fresh(gw, "GET", "/ui/session", ip=ip, cookie=cookie).status_code == 401


def test_sign_in_rate_limited(gw: GatewayProc) -> None:
    ip = "198.51.100.4"
    statuses = []
    for i in range(12):  # 5 failures per worker and window: with 2 workers, at most 10 get checked
        r = fresh(gw, "POST", "/ui/login", ip=ip, json={"username": "admin", "password": f"guess-{i}"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0
            secured(r)
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401} and len(statuses) <= 11
    assert "guess-" not in gw.log()  # failures are logged without the password
    assert "UI sign-in failed for username 'admin'" in gw.log()


def raw_get(gw: GatewayProc, target: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize("target", [b"/ui/../../pyproject.toml", b"/ui/%2e%2e/%2e%2e/pyproject.toml",
                                    b"/ui/..%2f..%2fsessions.py", b"/ui/%2e%2e/sessions.py",
                                    b"/ui/js/..%5c..%5csessions.py", b"/ui/%00"])
def test_no_path_escape(gw: GatewayProc, target: bytes) -> None:
    status, data = raw_get(gw, target)
    assert status in (400, 404), (target, status)
    assert b"[project]" not in data and b"def lookup" not in data


def test_ui_username_and_password() -> None:
    env = {**ENV, "UI_USERNAME": "operator", "UI_PASSWORD": "ui-e2e-password"}
    with start_gateway(CONFIG, env=env) as g:
        assert fresh(g, "GET", "/ui/config", ip="198.51.100.5").json()["ui_username"] == "operator"
        _, _, r = sign_in(g, "operator", "ui-e2e-password", "198.51.100.5")
        assert r.json()["user_role"] == "proxy_admin"
        master = fresh(g, "POST", "/ui/login", ip="198.51.100.5", json={"username": "operator", "password": MASTER})
        assert master.status_code == 401
