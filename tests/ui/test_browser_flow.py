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
#: the form controls on the page that no <label> names (each must have one)
UNLABELLED = ("[...document.querySelectorAll('input, select, textarea')]"
              ".filter((e) => e.type !== 'hidden' && e.labels.length === 0).map((e) => e.outerHTML)")
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
  store_model_in_db: true
  store_prompts_in_spend_logs: true
litellm_settings:
  cache: true
  cache_params: {{type: local}}
  callbacks: ["prometheus"]
"""


UPSTREAM: dict[str, str] = {}
"""The module's mock upstream: ``base``, its OpenAI base URL (the flow tries a connection to it)."""


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProc]:
    with start_mock(name="ui-browser") as mock, start_gateway(config(mock), workers=1) as gw:
        UPSTREAM["base"] = mock.openai_base
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
    watch = PageWatch(allowed={(401, "/ui/session"), (401, "/ui/login")})  # before sign-in; the wrong password
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
    answer = page.goto("/ui/")
    assert answer is not None and answer.status == 200
    csp = answer.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
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
    page.screenshot(path=str(shots / "key-create-1280.png"))
    assert page.evaluate(UNLABELLED) == []
    dialog.locator("[data-testid=form-submit]").click()
    secret = page.locator("[data-testid=secret-dialog]")
    secret.wait_for()
    key = secret.locator("[data-testid=new-key]").input_value()
    page.screenshot(path=str(shots / "key-created-1280.png"))
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
    # the stored request and answer (store_prompts_in_spend_logs) in sections of their own
    assert detail.locator("h3", has_text="Request").count() == 1
    assert detail.locator("h3", has_text="Response").count() == 1
    assert "hello from the browser test" in detail.inner_text()
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
            page.evaluate("document.getElementById('messages').replaceChildren()")  # no stale toasts in the shots
            page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
            assert page.locator("[data-testid=page-error]").count() == 0, (name, page.locator(
                "[data-testid=page-error]").first.inner_text())
            assert page.evaluate(UNLABELLED) == [], name
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


def sign_in(page: Any, username: str, password: str) -> None:
    """Sign in with the keyboard only: the username field, Tab, the password, Enter."""
    page.goto("/ui/#/overview")
    page.locator("[data-testid=page-signin]").wait_for()
    page.fill("#signin-username", "")
    page.focus("#signin-username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.locator("[data-testid=page-overview][data-ready=true]").wait_for(timeout=15_000)


def sign_out(page: Any) -> None:
    page.click("#signout")
    page.locator("[data-testid=page-signin]").wait_for()


def create(page: Any, entity: str, values: dict[str, str], selects: dict[str, str] | None = None) -> None:
    """Open the create dialog of ``entity``, fill ``values`` (and ``selects`` by option value), submit."""
    page.click(f"[data-testid={entity}-create]")
    dialog = page.locator(f"dialog[data-testid={entity}-create-dialog]")
    for name, value in values.items():
        field(dialog, name).fill(value)
    for name, value in (selects or {}).items():
        field(dialog, name).select_option(value)
    dialog.locator("[data-testid=form-submit]").click()
    dialog.wait_for(state="detached")


def confirm(page: Any) -> None:
    box = page.locator("[data-testid=confirm-dialog]")
    box.locator("[data-testid=confirm-yes]").click()
    box.wait_for(state="detached")


@pytest.mark.timeout(400)
def test_every_page_writes_through_the_api(gateway: GatewayProc, tmp_path: Path) -> None:
    """Users with passwords and roles, team and organization members, customers, budgets, keys (edit,
    regenerate, delete), database models, cache and config reload, each through its page; then the viewer
    and the internal user see what their role allows."""
    from playwright.sync_api import sync_playwright

    shots = screenshot_dir(tmp_path / "screenshots")
    # a deployment checked unhealthy: 503; a general setting that does not load: 400
    watch = PageWatch(allowed={(401, "/ui/session"), (503, "/health"), (400, "/config/field/update")})
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            context = browser.new_context(base_url=gateway.url, viewport={"width": 1280, "height": 900})
            context.add_init_script(CSP_PROBE)
            page = context.new_page()
            watch.attach(page)
            urls: list[str] = []
            page.on("request", lambda r: urls.append(r.url))
            admin_actions(page, gateway.url, urls)
            roles(page, shots)
            watch.check()
            context.close()
        finally:
            browser.close()


def admin_actions(page: Any, base: str, urls: list[str]) -> None:
    sign_in(page, "admin", MASTER)

    goto(page, "users")
    create(page, "user", {"user_id": "ui-viewer", "user_email": "viewer@example.com", "password": "viewer-pass-1"},
           {"user_role": "proxy_admin_viewer"})
    create(page, "user", {"user_id": "ui-dev", "user_email": "dev@example.com", "password": "dev-pass-1"},
           {"user_role": "internal_user"})
    table = page.locator("[data-testid=user-table]")
    table.locator("tr[data-row='dev@example.com']").wait_for()
    assert "dev-pass-1" not in page.content()

    goto(page, "teams")
    create(page, "team", {"team_id": "team-members", "team_alias": "members-team"})
    row = page.locator("[data-testid=team-table] tr[data-row='members-team']")
    row.locator("[data-testid=team-members-open]").click()
    members = page.locator("dialog[data-testid=team-members-dialog]")
    field(members, "user_id").fill("ui-dev")
    members.locator("[data-testid=form-submit]").click()
    members.locator("[data-testid=team-members] td", has_text="ui-dev").wait_for()
    page.keyboard.press("Escape")
    members.wait_for(state="detached")
    row.locator("td[data-label=Members]", has_text="1").wait_for()

    goto(page, "organizations")
    create(page, "organization", {"organization_alias": "browser-org", "max_budget": "100"})
    org_row = page.locator("[data-testid=organization-table] tr[data-row='browser-org']")
    org_row.wait_for()
    org_row.get_by_role("button", name="Members of browser-org").click()
    org_members = page.locator("dialog[data-testid=org-members-dialog]")
    field(org_members, "user_id").fill("ui-dev")
    org_members.locator("[data-testid=form-submit]").click()
    org_members.locator("[data-testid=org-members] td", has_text="ui-dev").wait_for()
    page.keyboard.press("Escape")

    goto(page, "customers")
    create(page, "customer", {"user_id": "cust-1", "alias": "first customer", "max_budget": "3"})
    cust = page.locator("[data-testid=customer-table] tr[data-row='first customer']")
    cust.get_by_role("button", name="Block").click()
    cust.locator(".badge", has_text="blocked").wait_for()

    goto(page, "budgets")
    create(page, "budget", {"budget_id": "budget-ui", "max_budget": "10", "budget_duration": "30d"})
    budget = page.locator("[data-testid=budget-table] tr[data-row='budget-ui']")
    budget.locator("[data-testid=budget-edit]").click()
    edit = page.locator("dialog[data-testid=budget-edit-dialog]")
    field(edit, "max_budget").fill("20")
    edit.locator("[data-testid=form-submit]").click()
    edit.wait_for(state="detached")
    budget.locator("td", has_text="$20").wait_for()
    budget.locator("[data-testid=budget-delete]").click()
    confirm(page)
    budget.wait_for(state="detached")

    # keys: edit, reset spend, regenerate (shown once), delete
    goto(page, "keys")
    create(page, "key", {"key_alias": "edit-me"})
    secret = page.locator("[data-testid=secret-dialog]")
    first = secret.locator("[data-testid=new-key]").input_value()
    secret.locator("[data-testid=secret-done]").click()
    key_row = page.locator("[data-testid=keys-table] tr[data-row='edit-me']")
    key_row.locator("[data-testid=key-edit]").click()
    edit = page.locator("dialog[data-testid=key-edit-dialog]")
    field(edit, "tpm_limit").fill("1000")
    edit.locator("[data-testid=form-submit]").click()
    edit.wait_for(state="detached")
    key_row.locator("td", has_text="1000 / —").wait_for()
    # the cache page counts a hit: the same question twice with this key
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=first, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "cache me"}])
    # reset spend: /key/{key}/reset_spend, confirmed first
    key_row.locator("[data-testid=key-reset-spend]").click()
    confirm(page)
    page.locator("[data-testid=msg-ok]", has_text="Spend of edit-me reset (was").wait_for()
    assert any(url.endswith("/reset_spend") for url in urls)
    # regenerated with a grace period: the current key keeps working (as the new one); then without one
    key_row.locator("[data-testid=key-regenerate]").click()
    regen = page.locator("dialog[data-testid=key-regenerate-dialog]")
    field(regen, "grace_period").fill("1h")
    regen.locator("[data-testid=form-submit]").click()
    secret.wait_for()
    graced = secret.locator("[data-testid=new-key]").input_value()
    secret.locator("[data-testid=secret-done]").click()
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "old key, in its grace"}])
    openai.OpenAI(base_url=f"{base}/v1", api_key=graced, max_retries=0).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "new key"}])
    key_row.locator("[data-testid=key-regenerate]").click()
    page.locator("dialog[data-testid=key-regenerate-dialog] [data-testid=form-submit]").click()
    secret.wait_for()
    second = secret.locator("[data-testid=new-key]").input_value()
    assert second.startswith("sk-") and second not in (first, graced)
    secret.locator("[data-testid=secret-done]").click()
    with pytest.raises(openai.AuthenticationError):  # the graced key, regenerated without a grace period
        openai.OpenAI(base_url=f"{base}/v1", api_key=graced, max_retries=0).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "old key"}])
    # search by the key in clear: the page hashes it before it goes into a URL; then by alias
    page.fill("#key-search", second)
    page.keyboard.press("Enter")
    # polled from here: the page's CSP (script-src 'self') refuses the eval Playwright's wait_for_function
    # falls back to when its predicate is not true at once
    until("the search box to hold the key's hash", lambda: len(page.input_value("#key-search")) == 64)
    key_row.wait_for()
    # the row was on the page before the search too: wait for the filtered answer to replace the table
    until("the filtered keys table", lambda: page.locator("[data-testid=keys-table] tbody tr").count() == 1)
    assert page.locator("[data-testid=keys-table] tbody tr").count() == 1
    assert all(second not in url and first not in url and graced not in url for url in urls)
    key_row.locator("[data-testid=key-delete]").click()
    confirm(page)
    key_row.wait_for(state="detached")
    page.fill("#key-search", "browser-key")
    page.keyboard.press("Enter")
    page.locator("[data-testid=keys-table] tr[data-row='browser-key']").wait_for()

    # a database model: the api key is a password field and never shown back
    goto(page, "models")
    page.click("[data-testid=model-create]")
    dialog = page.locator("dialog").last
    field(dialog, "model_name").fill("db-chat")
    field(dialog, "litellm_params.model").fill("openai/gpt-db")
    field(dialog, "litellm_params.api_base").fill("http://127.0.0.1:9/v1")
    field(dialog, "litellm_params.api_key").fill("sk-upstream-secret-db")
    # its connection tried before it is added: refused where nothing listens, answered by the mock
    dialog.locator("[data-testid=model-test]").click()
    dialog.locator("[data-testid=form-status].error", has_text="Connection failed (http://127.0.0.1:9/v1)").wait_for()
    field(dialog, "litellm_params.api_base").fill(UPSTREAM["base"])
    dialog.locator("[data-testid=model-test]").click()
    dialog.locator("[data-testid=form-status].ok", has_text=f"a chat call to {UPSTREAM['base']} was answered").wait_for()
    field(dialog, "litellm_params.api_base").fill("http://127.0.0.1:9/v1")
    dialog.locator("[data-testid=form-submit]").click()
    dialog.wait_for(state="detached")
    model_row = page.locator("[data-testid=models-table] tr", has_text="db-chat")
    model_row.locator(".badge", has_text="database").wait_for()
    assert "sk-upstream-secret-db" not in page.content()
    # checked now (its upstream refuses connections): told, and kept in the health check history
    model_row.get_by_role("button", name="Check db-chat").click()
    page.locator("[data-testid=msg-error]", has_text="db-chat: unhealthy").wait_for()
    kept = page.locator("[data-testid=health-history-table] tr", has_text="db-chat")
    for _ in range(20):  # the row is written off the check's answer: refreshed until it shows
        if kept.count():
            break
        page.click("[data-testid=models-refresh]")
        page.wait_for_timeout(250)
    kept.first.locator(".badge", has_text="unhealthy").wait_for()
    # a model group's analytics from the spend logs: the deployment behind "chat" answered this flow's requests
    page.select_option("#metrics-group", "chat")
    latency = page.locator("[data-testid=metrics-latency] th", has_text="gpt-ui")
    for _ in range(40):  # the spend rows are written in batches off the answers: shown again until they are in
        page.click("[data-testid=metrics-show]")
        page.locator("[data-testid=metrics-slow]").wait_for()
        if latency.count():
            break
        page.wait_for_timeout(250)
    latency.wait_for()
    page.locator("[data-testid=metrics-slow] td", has_text=UPSTREAM["base"]).first.wait_for()
    # blocked: kept and listed, routed to by no one; unblocked: served again
    model_row.get_by_role("button", name="Block db-chat").click()
    page.locator("[data-testid=msg-ok]", has_text="Model db-chat blocked.").wait_for()
    model_row.locator(".badge.warn", has_text="database, blocked").wait_for()
    model_row.get_by_role("button", name="Unblock db-chat").click()
    page.locator("[data-testid=msg-ok]", has_text="Model db-chat unblocked.").wait_for()
    model_row.locator(".badge.info", has_text="database").wait_for()
    model_row.get_by_role("button", name="Delete db-chat").click()
    confirm(page)
    model_row.wait_for(state="detached")

    goto(page, "cache")
    assert page.locator("[data-testid=cache-enabled]").inner_text().endswith("on (local)")
    assert page.locator("[data-testid=cache-hits]").inner_text().endswith("1")
    page.click("[data-testid=cache-ping]")
    page.locator("pre.json", has_text="healthy").wait_for()
    page.click("[data-testid=cache-flush]")
    confirm(page)
    page.locator("[data-testid=msg-ok]", has_text="Cache flushed").wait_for()

    goto(page, "settings")
    assert MASTER not in page.locator("[data-testid=config-tree]").inner_text()
    row = page.locator("[data-testid=callbacks-table] tr[data-row='prometheus']")
    assert row.inner_text().startswith("prometheus")
    row.get_by_role("button", name="Test prometheus").click()
    page.locator("[data-testid=msg-ok]", has_text="prometheus: prometheus is scraped").wait_for()
    # a general setting stored in the database: edited, served, refused when it does not load, reset
    general = page.locator("[data-testid=general-table] tr[data-row='include_call_id_in_error_body']")
    general.locator(".badge", has_text="default").wait_for()
    general.get_by_role("button", name="Edit include_call_id_in_error_body").click()
    edit = page.locator("[data-testid=general-edit]")
    edit.get_by_label("include_call_id_in_error_body").check()
    edit.locator("[data-testid=form-submit]").click()
    page.locator("[data-testid=msg-ok]", has_text="include_call_id_in_error_body saved").wait_for()
    general.locator(".badge", has_text="database").wait_for()
    assert "true" in general.inner_text()
    refused = httpx.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                         json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 400 and "litellm_call_id" in refused.json()["error"]
    size = page.locator("[data-testid=general-table] tr[data-row='max_request_size_mb']")
    size.get_by_role("button", name="Edit max_request_size_mb").click()
    edit = page.locator("[data-testid=general-edit]")
    edit.get_by_label("max_request_size_mb").fill("-5")
    edit.locator("[data-testid=form-submit]").click()
    edit.locator("[data-testid=form-error]", has_text="expected a size in MB").wait_for()
    edit.get_by_role("button", name="Cancel").click()
    edit.wait_for(state="detached")
    general.get_by_role("button", name="Reset include_call_id_in_error_body").click()
    confirm(page)
    page.locator("[data-testid=msg-ok]", has_text="include_call_id_in_error_body reset").wait_for()
    general.locator(".badge", has_text="default").wait_for()
    page.click("[data-testid=config-reload]")
    confirm(page)
    page.locator("[data-testid=msg-ok]", has_text="Config reloaded").wait_for()
    sign_out(page)


def roles(page: Any, shots: Path) -> None:
    # the viewer reads everything and is offered no write
    sign_in(page, "viewer@example.com", "viewer-pass-1")
    nav = page.locator("#nav").inner_text()
    assert "Users" in nav and "Settings" in nav
    goto(page, "keys")
    page.locator("[data-testid=keys-table] tr[data-row='browser-key']").wait_for()
    assert page.locator("[data-testid=key-create]").count() == 0
    assert page.locator("[data-testid=key-block]").count() == 0
    goto(page, "teams")
    assert page.locator("[data-testid=team-create]").count() == 0
    page.screenshot(path=str(shots / "viewer-teams-1280.png"), full_page=True)
    goto(page, "settings")
    page.locator("[data-testid=general-table] tr[data-row='max_request_size_mb']").wait_for()
    assert page.locator("[data-testid=general-table] button").count() == 0
    sign_out(page)

    # the internal user sees its own pages, creates its own key
    sign_in(page, "ui-dev", "dev-pass-1")
    nav = page.locator("#nav").inner_text()
    assert "Users" not in nav and "Settings" not in nav and "Budgets" not in nav
    goto(page, "keys")
    assert page.locator("[data-testid=keys-table] tr[data-row='browser-key']").count() == 0
    create(page, "key", {"key_alias": "dev-own-key"})
    secret = page.locator("[data-testid=secret-dialog]")
    assert secret.locator("[data-testid=new-key]").input_value().startswith("sk-")
    secret.locator("[data-testid=secret-done]").click()
    page.locator("[data-testid=keys-table] tr[data-row='dev-own-key'] td", has_text="ui-dev").wait_for()
    goto(page, "teams")
    page.locator("[data-testid=team-table] tr[data-row='members-team']").wait_for()
    page.screenshot(path=str(shots / "internal-user-keys-1280.png"), full_page=True)
    sign_out(page)
