"""The worker's heap is settled after startup: startup's objects frozen out of the cycle collector,
the young generation's threshold raised; a failed startup settles nothing."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from relaygate.http.app import GC_THRESHOLD, App


class _Served:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no HTTP scope in this test")

    async def startup(self) -> None:
        if self.fail:
            raise RuntimeError("database unreachable")
        self.started = True

    async def shutdown(self) -> None:
        pass


@pytest.fixture
def clean_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def _lifespan(app: App) -> list[dict[str, Any]]:
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    return sent


def test_startup_freezes_what_it_built(clean_gc: None) -> None:
    served = _Served()
    built_at_startup = [object() for _ in range(10)] + [[i] for i in range(1000)]
    sent = _lifespan(App(lambda: served))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert served.started
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold() == GC_THRESHOLD


def test_failed_startup_settles_nothing(clean_gc: None) -> None:
    threshold = gc.get_threshold()
    sent = _lifespan(App(lambda: _Served(fail=True)))
    assert sent == [{"type": "lifespan.startup.failed", "message": "database unreachable"}]
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold
