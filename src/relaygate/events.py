"""Service events: the gateway's own failures (Redis or the database going down) told to whoever listens.

What it owns: one per-process list of listeners and :func:`outage`, which the places that notice an
outage call once per transition (the Redis limiter going to its fallback, the response cache's Redis,
the key-change poll losing the database). The alerter listens (LiteLLM's ``outage_alerts`` /
``db_exceptions``); with no listener a call is one empty loop. A listener must not block nor raise; one
that raises is logged and skipped, never propagated into the code that reported the outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["listen", "outage"]

log = logging.getLogger("relaygate")

Listener = Callable[[str, str], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call ``listener(component, detail)`` on every outage from now on; returns the function that stops it."""
    _listeners.append(listener)

    def stop() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return stop


def outage(component: str, detail: str) -> None:
    """``component`` (``redis``, ``database``) became unavailable; ``detail`` says why (no secrets in it)."""
    for listener in list(_listeners):
        try:
            listener(component, detail)
        except Exception:  # a listener's bug must not break the code reporting the outage
            log.exception("outage listener failed")
