"""Batch scheduling (``relaygate.http.sched``): a process's default-policy threads move to ``SCHED_BATCH``,
threads under another policy are left alone, the rechecks catch a thread that is back under the default
policy, and a refusal is said once and stops the rechecks. Policies change only in child processes (or
through a stand-in for the system call), never in the test runner's own threads."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from relaygate.http import sched

pytestmark = pytest.mark.skipif(not sched.supported(), reason="SCHED_BATCH is Linux's")

_CHILD = textwrap.dedent("""
    import asyncio, os, threading, json
    from relaygate.http import sched
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # whatever the runner's policy is
    stop = threading.Event()
    ids = {}
    def run(name, policy=None):
        ids[name] = threading.get_native_id()
        if policy is not None:
            os.sched_setscheduler(0, policy, os.sched_param(0))
        stop.wait()
    threads = [threading.Thread(target=run, args=("plain",)),
               threading.Thread(target=run, args=("idle", os.SCHED_IDLE))]
    for t in threads:
        t.start()
    while len(ids) < 2:
        pass
    first = sched.batch_threads()
    again = sched.batch_threads()
    policy = {name: os.sched_getscheduler(tid) for name, tid in ids.items()}
    policy["main"] = os.sched_getscheduler(0)
    os.sched_setscheduler(ids["plain"], os.SCHED_OTHER, os.sched_param(0))  # back to the default
    async def rechecks():
        task = asyncio.create_task(sched.keep_batch((0, 0), recheck=(0.05,), every=30))
        await asyncio.sleep(0.3)
        task.cancel()
    asyncio.run(rechecks())
    policy["plain_after_recheck"] = os.sched_getscheduler(ids["plain"])
    late = threading.Thread(target=run, args=("late",))
    late.start()
    while "late" not in ids:
        pass
    policy["late"] = os.sched_getscheduler(ids["late"])  # started by a batch thread: batch from birth
    stop.set()
    for t in [*threads, late]:
        t.join()
    print(json.dumps({"first": first, "again": again, "policy": policy}))
""")


def test_default_threads_move_to_batch_and_others_stay() -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["first"] == [2, 0]  # the main thread and the plain one; the idle one is not the default policy
    assert out["again"] == [0, 0]  # nothing left to move
    policy = out["policy"]
    assert policy["main"] == policy["plain"] == os.SCHED_BATCH
    assert policy["idle"] == os.SCHED_IDLE  # an operator's choice is kept
    assert policy["plain_after_recheck"] == os.SCHED_BATCH
    assert policy["late"] == os.SCHED_BATCH


def test_a_refusal_is_said_once_and_stops_the_rechecks(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def refuse(tid: int, policy: int, param: object) -> None:
        calls.append(tid)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sched.os, "sched_getscheduler", lambda tid: os.SCHED_OTHER)
    monkeypatch.setattr(sched.os, "sched_setscheduler", refuse)
    moved, refused = sched.batch_threads()
    assert moved == 0 and refused == len(os.listdir("/proc/self/task")) == len(calls)
    caplog.set_level(logging.INFO, logger="relaygate.server")

    async def main() -> None:
        await asyncio.wait_for(sched.keep_batch((0, 1), recheck=(0.01,), every=0.01), 2)  # returns at once

    asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if "batch scheduling" in r.getMessage()]
    assert len(said) == 1 and "refused SCHED_BATCH for 1 thread" in said[0]


def test_a_thread_that_ended_meanwhile_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(tid: int) -> int:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(sched.os, "sched_getscheduler", gone)
    assert sched.batch_threads() == (0, 0)


def test_only_a_worker_of_relaygate_serve_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from relaygate.http import app

    asked: list[tuple[int, int]] = []

    async def keep(first: tuple[int, int]) -> None:
        asked.append(first)

    monkeypatch.setattr(app.sched, "batch_threads", lambda: (7, 0))  # nothing changes in the runner
    monkeypatch.setattr(app.sched, "keep_batch", keep)
    on = SimpleNamespace(config=SimpleNamespace(server=SimpleNamespace(batch_scheduling=True)))
    off = SimpleNamespace(config=SimpleNamespace(server=SimpleNamespace(batch_scheduling=False)))

    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        out = []
        for env, handler in ((None, on), (str(os.getpid()), on), (str(os.getppid()), off), (str(os.getppid()), None),
                             (str(os.getppid()), on)):
            if env is None:
                monkeypatch.delenv(app.SUPERVISOR_ENV, raising=False)
            else:
                monkeypatch.setenv(app.SUPERVISOR_ENV, env)
            task = app._batch_scheduling(loop, handler)
            out.append(task is not None)
            if task is not None:
                await task
        return out

    # in-process (no supervisor, or this process named as its own), switched off, a handler without config: no
    assert asyncio.run(main()) == [False, False, False, False, True]
    assert asked == [(7, 0)]
