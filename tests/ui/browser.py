"""Playwright with Debian's Chromium for the UI's browser tests: :func:`launch_chromium` starts the system
browser (``/usr/bin/chromium``, never a downloaded one) headless, and :class:`PageWatch` records what a page
reports that a test must fail on (console errors, uncaught exceptions, Content-Security-Policy violations).

Console errors a test expects (a ``401`` from ``/ui/session`` before signing in is logged by Chromium as
"Failed to load resource") are allowed one URL at a time, so nothing else slips through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("RELAYGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def launch_chromium(playwright: Any, **options: Any) -> Any:
    """Debian's Chromium, headless, with the flags every UI test uses (``options`` are passed on)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS, **options)


@dataclass
class PageWatch:
    """Collects a page's console errors, page errors and CSP violations; :meth:`check` raises on any.

    ``allowed`` holds ``(status, url suffix)`` pairs: a "Failed to load resource: ... status of <status>" console
    error from a URL ending so is expected (e.g. ``(401, "/ui/session")`` before signing in)."""

    allowed: set[tuple[int, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type not in ("error", "warning"):
            return
        text = msg.text
        url = (msg.location or {}).get("url", "")
        if msg.type == "warning" and "Content-Security-Policy" not in text and "Content Security Policy" not in text:
            return
        if text.startswith("Failed to load resource"):
            path = url.split("?", 1)[0]
            if any(f"status of {status}" in text and path.endswith(suffix) for status, suffix in self.allowed):
                return
        self.problems.append(f"console {msg.type}: {text} ({url})")

    def check(self) -> None:
        if self.problems:
            raise AssertionError("the browser reported problems:\n" + "\n".join(self.problems))


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``$RELAYGATE_UI_SCREENSHOTS`` or ``default`` (a test's ``tmp_path``)."""
    out = Path(os.environ.get("RELAYGATE_UI_SCREENSHOTS") or default)
    out.mkdir(parents=True, exist_ok=True)
    return out


__all__ = ["ARGS", "CHROMIUM", "PageWatch", "launch_chromium", "screenshot_dir"]
