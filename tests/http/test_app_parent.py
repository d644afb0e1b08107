"""``http.app.supervisor``: which pid a worker's parent must be, from ``relaygate serve``'s
``RELAYGATE_SUPERVISOR_PID`` when it can be trusted (the parent itself, or a process already gone), else the
current parent; and ``watch_parent`` stopping a worker whose parent changed, during its startup too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from relaygate.http import app
from relaygate.http.app import SUPERVISOR_ENV, supervisor, watch_parent


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_without_the_variable_the_parent_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SUPERVISOR_ENV, raising=False)
    assert supervisor() == os.getppid()
    monkeypatch.setenv(SUPERVISOR_ENV, "not a pid")
    assert supervisor() == os.getppid()


def test_the_named_supervisor_when_it_is_the_parent_or_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SUPERVISOR_ENV, str(os.getppid()))
    assert supervisor() == os.getppid()
    gone = _dead_pid()  # it died before this worker's startup finished: the worker is an orphan already
    monkeypatch.setenv(SUPERVISOR_ENV, str(gone))
    assert supervisor() == gone


def test_a_live_process_that_is_not_the_parent_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stale or inherited variable (an App run in a process that is not a relaygate worker) stops nothing
    monkeypatch.setenv(SUPERVISOR_ENV, str(os.getpid()))
    assert supervisor() == os.getppid()


def test_watch_parent_stops_the_worker_when_the_parent_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(app.os, "kill", lambda pid, sig: sent.append((pid, sig)))

    async def main() -> None:
        await asyncio.wait_for(watch_parent(os.getppid() + 1, every=0.01), 5)  # not our parent: stops at once

        task = asyncio.create_task(watch_parent(os.getppid(), every=0.01))  # our parent: keeps watching
        await asyncio.sleep(0.1)
        assert not task.done()
        task.cancel()

    asyncio.run(main())
    assert sent == [(os.getpid(), signal.SIGTERM)]


class _Stuck:
    """A handler whose startup never ends (a worker waiting on a busy database)."""

    def __init__(self) -> None:
        self.closed = False

    async def __call__(self, scope: object, receive: object, send: object) -> None:  # pragma: no cover
        raise AssertionError("not served")

    async def startup(self) -> None:
        await asyncio.sleep(3600)

    async def shutdown(self) -> None:
        self.closed = True


def _lifespan_messages(application: app.App) -> list[dict[str, object]]:
    sent: list[dict[str, object]] = []

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        inbox.put_nowait({"type": "lifespan.startup"})

        async def send(msg: dict[str, object]) -> None:
            sent.append(msg)

        await asyncio.wait_for(application({"type": "lifespan"}, inbox.get, send), 5)

    asyncio.run(main())
    return sent


def test_a_worker_whose_supervisor_dies_during_its_startup_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch runs from the start of the startup: Granian acts on a SIGTERM only once the startup ends, so
    a worker still starting when its supervisor dies has its startup cancelled, closes what it opened and
    reports the startup failed (Granian then ends the worker)."""
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(app.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.setattr(app, "PARENT_CHECK_S", 0.01)
    monkeypatch.setattr(app, "supervisor", lambda: os.getppid() + 1)  # the supervisor is gone
    stuck = _Stuck()
    sent = _lifespan_messages(app.App(lambda: stuck))
    assert sent == [{"type": "lifespan.startup.failed", "message": "the server process is gone"}]
    assert stuck.closed and kills == []


def test_a_failing_startup_still_reports_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(_Stuck):
        async def startup(self) -> None:
            raise RuntimeError("no database")

    monkeypatch.setattr(app, "supervisor", os.getppid)
    assert _lifespan_messages(app.App(Broken)) == [{"type": "lifespan.startup.failed", "message": "no database"}]
