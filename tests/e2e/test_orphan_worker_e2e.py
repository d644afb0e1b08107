"""A worker whose supervisor was killed (``SIGKILL``, the OOM killer: no chance to stop its workers) stops
itself, gracefully, instead of living on as an orphan: a real 2-worker ``relaygate serve``, its supervisor
killed once it serves, and killed while its workers are still starting."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from bench.procs import tree_pids
from tests.conftest import free_port, start_gateway, stop_process

pytestmark = pytest.mark.e2e

CONFIG = """
model_list:
  - model_name: m
    litellm_params: {model: mock/m}
"""


def _alive(pid: int) -> bool:
    """Running: not gone and not a zombie (an exited orphan waits for PID 1 to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with start_gateway(CONFIG, workers=2) as gw:
        assert httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        workers = [p for p in tree_pids(gw.proc.pid) if p != gw.proc.pid]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(10)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(_alive(p) for p in workers):
                time.sleep(0.1)
            left = [p for p in workers if _alive(p)]
            assert not left, f"still running: {left} of {workers}\n" + gw.log()[-3000:]
            assert "is gone: worker" in gw.log()
        finally:  # never leave an orphan behind, whatever failed
            for p in workers:
                if _alive(p):
                    os.kill(p, signal.SIGKILL)


def test_workers_stop_when_the_supervisor_dies_during_their_startup(tmp_path: object) -> None:
    # the supervisor is killed as soon as both workers exist: a worker that finishes its startup after that
    # already has PID 1 (or a subreaper) as its parent, and still knows it lost its supervisor
    import subprocess
    import sys
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "config.yaml"
    cfg.write_text(CONFIG)
    log = Path(str(tmp_path)) / "gateway.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host",
                                 "127.0.0.1", "--port", str(free_port()), "--workers", "2"], stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [p for p in tree_pids(proc.pid) if p != proc.pid]
            time.sleep(0.01)
        assert len(workers) == 2, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), log.read_text()[-3000:]
    finally:
        stop_process(proc)
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
