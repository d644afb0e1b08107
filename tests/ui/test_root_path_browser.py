"""The admin UI behind an ingress that keeps a path prefix (``SERVER_ROOT_PATH=/api/v1``), driven by Debian's
Chromium: the page, its assets and every API call it makes stay under the prefix, and signing in with the
master key reaches the overview. A request outside the prefix would not reach the gateway behind such an
ingress, so the test fails on any."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_gateway
from tests.ui.browser import PageWatch, launch_chromium

pytestmark = pytest.mark.e2e

MASTER = "sk-ui-root-path-master-0123456789"


def test_the_ui_under_a_path_prefix(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    cfg = f"model_list:\n  - model_name: m\n    litellm_params: {{model: mock/echo}}\ngeneral_settings:\n  master_key: {MASTER}\n"
    with start_gateway(cfg, env={"SERVER_ROOT_PATH": "/api/v1"}) as gw, sync_playwright() as pw:
        browser = launch_chromium(pw)
        seen: list[str] = []
        try:
            page: Any = browser.new_context(base_url=gw.url, viewport={"width": 1280, "height": 900}).new_page()
            watch = PageWatch(allowed={(401, "/ui/session")})
            watch.attach(page)
            page.on("request", lambda req: seen.append(req.url))
            answer = page.goto("/api/v1/ui/")
            assert answer is not None and answer.status == 200
            page.locator("[data-testid=page-signin]").wait_for()
            page.fill("#signin-password", MASTER)
            page.click("[data-testid=signin-submit]")
            page.locator("[data-testid=page-overview][data-ready=true]").wait_for(timeout=15_000)
            watch.check()
        finally:
            browser.close()
    outside = [u for u in seen if not u.startswith(gw.url + "/api/v1/")]
    assert seen and not outside, outside
    assert any(u.startswith(gw.url + "/api/v1/ui/login") for u in seen)
