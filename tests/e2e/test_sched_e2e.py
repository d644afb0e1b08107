"""Batch scheduling in a real ``relaygate serve`` (Granian, one worker): every thread of the worker runs under
``SCHED_BATCH`` by default — Granian's runtime thread included — and under the default policy with
``relaygate_settings.batch_scheduling: false``; the supervisor process is never changed."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from bench.procs import tree_pids
from relaygate.http import sched
from tests.conftest import start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not sched.supported(), reason="SCHED_BATCH is Linux's")]

CONFIG = """
model_list:
  - model_name: m
    litellm_params: {model: mock/m}
"""


def _policies(pid: int) -> dict[str, int]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                out[f"{tid} {f.read().strip()}"] = os.sched_getscheduler(int(tid))
        except (OSError, ProcessLookupError):
            continue
    return out


@pytest.mark.parametrize("batch", [True, False], ids=["default", "off"])
def test_worker_threads_policy(batch: bool) -> None:
    text = CONFIG if batch else CONFIG + "relaygate_settings:\n  batch_scheduling: false\n"
    with start_gateway(text) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        workers = [p for p in tree_pids(gw.proc.pid) if p != gw.proc.pid]
        assert len(workers) == 1
        want = os.SCHED_BATCH if batch else os.SCHED_OTHER
        deadline = time.monotonic() + 10
        policies = _policies(workers[0])
        while time.monotonic() < deadline and set(policies.values()) != {want}:
            time.sleep(0.05)
            policies = _policies(workers[0])
        assert set(policies.values()) == {want}, policies
        assert any("tokio" in name for name in policies), policies  # Granian's runtime thread too
        assert set(_policies(gw.proc.pid).values()) == {os.SCHED_OTHER}  # the supervisor is left alone
        assert ("worker threads run under SCHED_BATCH" in gw.log()) is batch  # the startup log says which
