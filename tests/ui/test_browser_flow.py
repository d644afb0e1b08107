"""The admin UI driven by Debian's Chromium (Playwright) against a real ``relaygate serve`` with a SQLite
store and the bench mock as its upstream: sign in with the master key, create a team and a key with a budget
in the UI, read the key from the dialog that shows it once, call the gateway with the openai SDK, see the
request in the spend logs and the overview chart's totals move, block the key and see the SDK get a 401,
visit every page at 1280 px and 390 px (a screenshot each), sign out.

The test fails on any console error, uncaught page exception or Content-Security-Policy violation the
browser reports (``tests/ui/browser.py``). Screenshots go to ``$RELAYGATE_UI_SCREENSHOTS`` or the test's
``tmp_path``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bench.procs import MockHandle, start_mock
from tests.conftest import GatewayProc, start_gateway
from tests.ui.browser import PageWatch, launch_chromium, screenshot_dir

pytestmark = pytest.mark.e2e

MASTER = "sk-ui-browser-master-0123456789"
PAGES = ("overview", "keys", "teams", "users", "organizations", "customers", "budgets", "models", "logs", "cache",
         "settings")
CSP_PROBE = ("document.addEventListener('securitypolicyviolation', (e) => console.error("
             "'CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));")


def config(mock: MockHandle) -> str:
    return f"""model_list:
  - model_name: chat
    litellm_params:
      model: openai/gpt-ui
      api_key: sk-upstream
      api_base: {mock.openai_base}
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: {MASTER}
"""


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProc]:
    with start_mock(name="ui-browser") as mock, start_gateway(config(mock), workers=1) as gw:
        yield gw


def until(what: str, check: Callable[[], bool], timeout: float = 20.0, every: Callable[[], None] | None = None) -> None:
    """Poll ``check`` (calling ``every`` between tries) until true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if every is not None:
            every()
        time.sleep(0.3)


def goto(page: Any, name: str) -> Any:
    """Open ``#/<name>`` and wait until the page has drawn (``data-ready`` on its section)."""
    page.locator(f"[data-testid=nav-{name}]").first.click()
    ready = page.locator(f"[data-testid=page-{name}][data-ready=true]")
    ready.wait_for(timeout=15_000)
    return ready


def field(dialog: Any, name: str) -> Any:
    return dialog.locator(f"[data-field='{name}']")


def total_requests(page: Any) -> int:
    raw = page.locator("[data-testid=chart-requests]").get_attribute("data-total-requests")
    return int(raw or "0")


@pytest.mark.timeout(400)
def test_operator_flow_in_the_browser(gateway: GatewayProc, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = screenshot_dir(tmp_path / "screenshots")
    base = gateway.url
    watch = PageWatch(allowed={(401, "/ui/session")})
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
            context.add_init_script(CSP_PROBE)
            page = context.new_page()
            watch.attach(page)
            run_flow(page, base, shots)
            watch.check()
            context.close()
        finally:
            browser.close()


def run_flow(page: Any, base: str, shots: Path) -> None:
    page.goto("/ui/")
    page.locator("[data-testid=page-signin]").wait_for()
    page.screenshot(path=str(shots / "signin-1280.png"), full_page=True)

    # a wrong password: one message, no hint which part was wrong
    page.fill("#signin-password", "sk-not-the-master-key")
    page.click("[data-testid=signin-submit]")
    page.locator("[data-testid=signin-error]").wait_for()
    assert page.locator("#signin-password").input_value() == ""

    page.fill("#signin-password", MASTER)
    page.click("[data-testid=signin-submit]")
    page.locator("[data-testid=page-overview][data-ready=true]").wait_for(timeout=15_000)
    assert "relaygate_session" not in page.evaluate("document.cookie"), "the session cookie must be HttpOnly"
    assert MASTER not in page.url
    before = total_requests(page)

    # a team, then a key with a budget in that team
    goto(page, "teams")
    page.click("[data-testid=team-create]")
    dialog = page.locator("[data-testid=team-create-dialog]")
    field(dialog, "team_alias").fill("browser-team")
    field(dialog, "max_budget").fill("50")
    dialog.locator("[data-testid=form-submit]").click()
    dialog.wait_for(state="detached")
    page.locator("[data-testid=team-table] tr[data-row='browser-team']").wait_for()

    goto(page, "keys")
    page.click("[data-testid=key-create]")
    dialog = page.locator("[data-testid=key-create-dialog]")
    field(dialog, "key_alias").fill("browser-key")
    team_select = field(dialog, "team_id")
    team_value = team_select.locator("option", has_text="browser-team").get_attribute("value")
    assert team_value
    team_select.select_option(team_value)
    field(dialog, "max_budget").fill("5")
    field(dialog, "budget_duration").fill("30d")
    field(dialog, "tags").fill("ui, browser")
    field(dialog, "metadata").fill('{"owner": "browser-test"}')
    dialog.locator("[data-testid=form-submit]").click()
    secret = page.locator("[data-testid=secret-dialog]")
    secret.wait_for()
    key = secret.locator("[data-testid=new-key]").input_value()
    assert key.startswith("sk-"), key
    secret.locator("[data-testid=secret-done]").click()
    secret.wait_for(state="detached")
    row = page.locator("[data-testid=keys-table] tr[data-row='browser-key']")
    row.wait_for()
    assert key not in page.content(), "the key is shown once, in its dialog only"
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0

    # the key at work through the openai SDK
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello from the browser test"}])
    request_id = raw.headers.get("x-litellm-call-id")
    assert request_id
    assert raw.parse().choices[0].message is not None

    # the request in the spend logs, and its detail
    goto(page, "logs")
    logged = page.locator(f"[data-testid=logs-table] tr[data-request-id='{request_id}']")
    until("the request in the spend logs", lambda: logged.count() == 1,
          every=lambda: page.click("[data-testid=logs-refresh]"))
    logged.locator("[data-testid=log-view]").click()
    detail = page.locator("[data-testid=log-detail]")
    detail.wait_for()
    assert request_id in detail.inner_text()
    assert "browser-key" in detail.inner_text()
    page.keyboard.press("Escape")
    detail.wait_for(state="detached")

    # the overview's chart totals moved
    goto(page, "overview")
    until("the overview chart to count the request", lambda: total_requests(page) > before,
          every=lambda: page.click("[data-testid=overview-refresh]"))
    assert page.locator("[data-testid=chart-requests] svg polyline").count() >= 1

    # every page at desktop and phone width, a screenshot each
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for name in PAGES:
            if width < 700:
                page.click("#nav-toggle")
            goto(page, name)
            page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
            assert page.locator("[data-testid=page-error]").count() == 0, (name, page.locator(
                "[data-testid=page-error]").first.inner_text())
    page.set_viewport_size({"width": 1280, "height": 900})

    # block the key in the UI: the SDK gets a 401
    goto(page, "keys")
    row = page.locator("[data-testid=keys-table] tr[data-row='browser-key']")
    row.locator("[data-testid=key-block]").click()
    row.locator("[data-testid=key-unblock]").wait_for()
    assert re.search(r"blocked", row.inner_text())
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "blocked?"}])

    # sign out: the sign-in page, and the session is gone on the server
    page.click("#signout")
    page.locator("[data-testid=page-signin]").wait_for()
    assert page.request.get(f"{base}/ui/session").status == 401
    assert httpx.get(f"{base}/ui/session", timeout=10).status_code == 401
    page.screenshot(path=str(shots / "signed-out-1280.png"), full_page=True)
