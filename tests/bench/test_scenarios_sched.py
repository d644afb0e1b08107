"""bench.scenarios_sched end to end, tiny: two real gateways (batch scheduling on and off), the mock, closed and
open loop; the report's lines parse and say how many context switches a request cost."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.procs import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("load", [["--concurrency", "4"], ["--rate", "200"]], ids=["closed", "open"])
def test_tiny_run(load: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_sched", "--duration", "0.5", "--repeat", "1",
                           *load], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for mode in ("normal", "batch"):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"median {mode}"))
        found = re.search(r"CPU +([\d.]+) us/req +([\d.]+) switches/req +p50 ([\d.]+) ms +p99 ([\d.]+) ms", line)
        assert found is not None, line
        assert float(found.group(1)) > 0 and float(found.group(2)) > 0, line
    assert re.search(r"batch: [\d.]+% of normal's CPU per request \([\d.]+x the requests per core\)", out), out
