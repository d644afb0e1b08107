"""Single sign-on end to end: a real OpenID provider (node-oidc-provider, ``tests/ui/oidc``), a real
``relaygate serve`` with a SQLite store, and Debian's Chromium driven by Playwright through the whole
redirect flow (the provider's own login and consent pages).

What is checked: a user signs in and lands on ``/ui/`` with a session (``/ui/session`` fetched in the page);
the user is in ``/user/info`` with the role its claim names and the team its ``groups`` claim names (an
unknown team is skipped); a second sign-in reuses the user; a role claim that is no LiteLLM role is ignored
(the default role applies, with ``default_internal_user_params``); a tampered state and a forged flow cookie
are refused; more than five users all sign in (no cap). Screenshots go to ``build/ui-screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.conftest import GatewayProc, dead_port, free_port, start_gateway, stop_process

pytestmark = pytest.mark.e2e

OIDC_DIR = Path(__file__).parent / "oidc"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
MASTER = "sk-sso-test-master-0123456789"
CLIENT_ID = "relaygate-ui"
CLIENT_SECRET = "relaygate-ui-secret-0123456789"
ACCOUNTS = {
    "alice": {"email": "alice@example.test", "role": "internal_user", "groups": ["eng", "no-such-team"]},
    "bob": {"email": "bob@example.test", "role": "galactic_overlord"},
    "carol": {"email": "carol@example.test", "role": "proxy_admin_viewer", "groups": ["eng", "ops"]},
}
CONFIG = """
model_list: []
general_settings:
  master_key: {master}
  database_url: sqlite:///{db}
  litellm_jwtauth:
    team_ids_jwt_field: groups
litellm_settings:
  default_internal_user_params:
    max_budget: 5
"""


class Provider:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_provider(port: int, redirect_uri: str, tmp: Path) -> Provider:
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, capture_output=True,
                       timeout=300)
    log = tmp / "oidc.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(["node", "server.mjs", str(port), redirect_uri, CLIENT_ID, CLIENT_SECRET], cwd=OIDC_DIR,
                                stdout=f, stderr=subprocess.STDOUT, env={**os.environ,
                                                                         "OIDC_ACCOUNTS": json.dumps(ACCOUNTS)},
                                start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return Provider(proc, port, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(f"the OpenID provider did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc, Provider]]:
    tmp = tmp_path_factory.mktemp("sso")
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    env = {"GENERIC_CLIENT_ID": CLIENT_ID, "GENERIC_CLIENT_SECRET": CLIENT_SECRET,
           "GENERIC_AUTHORIZATION_ENDPOINT": f"{issuer}/auth", "GENERIC_TOKEN_ENDPOINT": f"{issuer}/token",
           "GENERIC_USERINFO_ENDPOINT": f"{issuer}/me", "GENERIC_SCOPE": "openid email profile",
           "GENERIC_USER_ID_ATTRIBUTE": "sub"}
    # two workers: the callback may reach another worker than the start (the flow lives in a signed cookie)
    with start_gateway(CONFIG.format(master=MASTER, db=tmp / "rg.db"), env=env, workers=2) as gw:
        idp = _start_provider(idp_port, f"{gw.url}/sso/callback", tmp)
        try:
            r = httpx.post(f"{gw.url}/team/new", headers={"authorization": f"Bearer {MASTER}"},
                           json={"team_id": "eng", "team_alias": "Engineering"})
            assert r.status_code == 200, r.text
            yield gw, idp
        finally:
            stop_process(idp.proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


def _local_only(route: Route) -> None:
    """Nothing leaves the machine (the provider's pages import a web font)."""
    host = urllib.parse.urlsplit(route.request.url).hostname
    if host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"sso-{name}.png"), full_page=True)


def _sign_in(page: Page, gw: GatewayProc, login: str, *, button: bool = True, shots: bool = False) -> None:
    """From the sign-in page's "Sign in with SSO" button (or LiteLLM's start URL when the browser is already
    signed in) through the provider's login and consent pages, back to /ui/."""
    if button:
        page.goto(f"{gw.url}/ui/")
        sso = page.get_by_role("button", name="Sign in with SSO")
        sso.wait_for(timeout=15000)
        if shots:
            _shot(page, "ui-signin")
        sso.click()
    else:
        page.goto(f"{gw.url}/sso/key/generate")
    deadline = time.monotonic() + 30
    while not page.url.startswith(f"{gw.url}/ui"):
        if time.monotonic() > deadline:
            raise AssertionError(f"the sign-in of {login} ended on {page.url}: {page.content()[:2000]}")
        if page.locator("input[name=login]").count():
            if shots:
                _shot(page, "provider-login")
            page.fill("input[name=login]", login)
            page.fill("input[name=password]", "any-password")
            page.click("button[type=submit]")
        elif page.get_by_role("button", name="Continue").count():
            if shots:
                _shot(page, "provider-consent")
            page.get_by_role("button", name="Continue").click()
        else:
            page.wait_for_timeout(100)
    page.wait_for_load_state()


def _session(page: Page) -> Any:
    return page.evaluate("""async () => {
        const r = await fetch('/ui/session', {credentials: 'same-origin'});
        return {status: r.status, body: await r.json()};
    }""")


def _user(gw: GatewayProc, user_id: str) -> Any:
    r = httpx.get(f"{gw.url}/user/info", params={"user_id": user_id}, headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_sign_in_creates_the_user_with_role_and_team(stack: tuple[GatewayProc, Provider], browser: Browser) -> None:
    gw, _ = stack
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.route("**/*", _local_only)
    page = ctx.new_page()
    _sign_in(page, gw, "alice", shots=True)
    page.get_by_text("alice@example.test").first.wait_for(timeout=15000)  # the UI shows who is signed in
    _shot(page, "signed-in")
    s = _session(page)
    assert s["status"] == 200, s
    assert s["body"]["user_id"] == "alice" and s["body"]["user_role"] == "internal_user"
    assert s["body"]["via"] == "sso"
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["relaygate_session"]["httpOnly"] and cookies["relaygate_session"]["sameSite"] == "Strict"
    assert "relaygate_sso" not in cookies  # the flow cookie is cleared by the callback
    info = _user(gw, "alice")
    assert info["user_info"]["user_role"] == "internal_user"
    assert info["user_info"]["user_email"] == "alice@example.test"
    assert info["user_info"]["max_budget"] == 5  # default_internal_user_params, at creation
    assert [t["team_id"] for t in info["teams"]] == ["eng"]  # "no-such-team" does not exist: skipped
    assert "does not exist" in gw.log()
    assert "no OpenID discovery document" not in gw.log()  # the ID token was checked against the provider's JWKS

    # a second sign-in (the provider remembers the browser) reuses the user
    _sign_in(page, gw, "alice", button=False)
    assert _session(page)["body"]["user_id"] == "alice"
    r = httpx.get(f"{gw.url}/user/list", headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200, r.text
    assert [u["user_id"] for u in r.json()["users"]].count("alice") == 1

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in with SSO").wait_for(timeout=15000)
    assert _session(page)["status"] == 401
    ctx.close()


def test_a_role_claim_that_is_no_litellm_role_is_ignored(stack: tuple[GatewayProc, Provider],
                                                          browser: Browser) -> None:
    gw, _ = stack
    ctx = browser.new_context()
    ctx.route("**/*", _local_only)
    page = ctx.new_page()
    _sign_in(page, gw, "bob")
    assert _session(page)["body"]["user_role"] == "internal_user_viewer"
    assert _user(gw, "bob")["user_info"]["user_role"] == "internal_user_viewer"
    assert "is not a LiteLLM role" in gw.log()
    ctx.close()


def test_tampered_state_and_forged_flow_cookie_are_refused(stack: tuple[GatewayProc, Provider],
                                                          browser: Browser) -> None:
    gw, _ = stack
    ctx = browser.new_context()
    ctx.route("**/*", _local_only)

    def tamper(route: Route) -> None:
        # the start's redirect to the provider carries another state than the flow cookie holds
        answer = route.fetch(max_redirects=0)
        headers = dict(answer.headers)
        u = urllib.parse.urlsplit(headers["location"])
        q = dict(urllib.parse.parse_qsl(u.query))
        # another first character, whatever the random state began with (an "x" + state[1:] was a no-op 1 in 64)
        q["state"] = ("y" if q["state"].startswith("x") else "x") + q["state"][1:]
        headers["location"] = urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))
        route.fulfill(response=answer, headers=headers)

    ctx.route(f"{gw.url}/sso/key/generate", tamper)
    page = ctx.new_page()
    page.goto(f"{gw.url}/sso/key/generate")
    page.fill("input[name=login]", "carol")
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{gw.url}/sso/callback**")
    assert "state does not match" in page.content()
    _shot(page, "tampered-state")
    assert _session(page)["status"] == 401
    ctx.close()

    # no flow cookie, or a forged one: refused before the provider is asked anything
    with httpx.Client(base_url=gw.url) as c:
        start = c.get("/sso/key/generate")
        assert start.status_code == 303
        loc = urllib.parse.urlsplit(start.headers["location"])
        q = dict(urllib.parse.parse_qsl(loc.query))
        assert q["response_type"] == "code" and q["code_challenge_method"] == "S256" and q["client_id"] == CLIENT_ID
        assert q["redirect_uri"] == f"{gw.url}/sso/callback" and q["nonce"] and q["state"]
        flow = start.cookies["relaygate_sso"]
        assert "HttpOnly" in start.headers["set-cookie"] and "SameSite=Lax" in start.headers["set-cookie"]
        forged = flow[:-4] + ("AAAA" if not flow.endswith("AAAA") else "BBBB")
        r = httpx.get(f"{gw.url}/sso/callback", params={"code": "abc", "state": q["state"]},
                      headers={"cookie": f"relaygate_sso={forged}"})
        assert r.status_code == 400 and "expired" in r.text
        r = httpx.get(f"{gw.url}/sso/callback", params={"error": "access_denied"})
        assert r.status_code == 403 and "access_denied" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_more_than_five_users_sign_in(stack: tuple[GatewayProc, Provider], browser: Browser) -> None:
    gw, _ = stack
    names = [f"user{i}" for i in range(7)]
    for name in names:
        ctx = browser.new_context(viewport={"width": 390, "height": 844})
        ctx.route("**/*", _local_only)
        page = ctx.new_page()
        _sign_in(page, gw, name)
        body = _session(page)["body"]
        assert body["user_id"] == name and body["user_role"] == "internal_user_viewer"
        ctx.close()
    for name in names:
        assert _user(gw, name)["user_info"]["user_email"] == f"{name}@example.test"


def test_provider_down_is_a_clean_502(tmp_path: Path) -> None:
    dead = dead_port()
    env = {"GENERIC_CLIENT_ID": CLIENT_ID, "GENERIC_CLIENT_SECRET": CLIENT_SECRET,
           "GENERIC_AUTHORIZATION_ENDPOINT": f"http://127.0.0.1:{dead}/auth",
           "GENERIC_TOKEN_ENDPOINT": f"http://127.0.0.1:{dead}/token"}
    with start_gateway(CONFIG.format(master=MASTER, db=tmp_path / "rg.db"), env=env) as gw:
        with httpx.Client(base_url=gw.url) as c:
            start = c.get("/sso/key/generate")
            state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["location"]).query))["state"]
            r = c.get("/sso/callback", params={"code": "some-code", "state": state})
        assert r.status_code == 502 and "could not be reached" in r.text
        assert "some-code" not in gw.log()


@pytest.fixture(scope="module", autouse=True)
def _node() -> None:
    assert shutil.which("node") and shutil.which("npm"), "node and npm are needed for the OpenID provider"
