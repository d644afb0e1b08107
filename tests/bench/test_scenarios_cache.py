"""bench.scenarios_cache: the ratios it reports (from req/s one after the other, from CPU per request when the
modes share the core's seconds), and a tiny run end to end with real gateways, mock and load generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO_ROOT
from bench.scenarios_cache import _ratios

MED = {"off": (1000.0, 200.0), "miss": (900.0, 250.0), "hit": (2000.0, 100.0)}


def test_ratios_one_after_the_other_come_from_requests_per_second() -> None:
    hit_miss, miss_off, miss_cpu = _ratios(MED, together=False)
    assert hit_miss == pytest.approx(2000 / 900) and miss_off == pytest.approx(0.9)
    assert miss_cpu == pytest.approx(1.25)


def test_ratios_together_come_from_cpu_per_request() -> None:
    # sharing the core, req/s shows how the scheduler split it; one core's throughput is 1 / CPU per request
    hit_miss, miss_off, miss_cpu = _ratios(MED, together=True)
    assert hit_miss == pytest.approx(2.5) and miss_off == pytest.approx(0.8) and miss_cpu == pytest.approx(1.25)


@pytest.mark.e2e
@pytest.mark.parametrize("together", [False, True], ids=["one-after-the-other", "together"])
def test_tiny_run(tmp_path: Path, together: bool) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_cache", "--duration", "0.5", "--repeat", "1",
                           "--concurrency", "4", "--out", str(tmp_path), *(["--together"] if together else [])],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache-latest.json").read_text())
    assert data["together"] is together
    for mode in ("off", "miss", "hit"):
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and run["errors"] == 0 and run["cpu_us"] > 0, (mode, run)
        # where the gateway's CPU went: its threads by CPU per request, the event loop's at least
        assert any(v >= 1 for v in run["threads_us_per_req"].values()), (mode, run)
    med = {m: (v["rps"], v["cpu_us"]) for m, v in data["median"].items()}
    assert data["hit_vs_miss"] == pytest.approx(_ratios(med, together)[0], abs=1e-3)
    assert "hit vs miss throughput" in proc.stdout
