"""bench.scenarios_spend end to end, tiny: two real gateways (spend, cost and budgets off / on), the load
generator, the results files; every request the 'on' gateway answered has its spend row, none dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_tiny_run_writes_results_and_every_row(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_spend", "--duration", "0.5", "--repeat", "1",
                           "--keys", "40", "--active", "10", "--concurrency", "4", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "spend-latest.json").read_text())
    assert data["order"] == ["off", "on"]
    for mode in ("off", "on"):
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and not run["errors"], run
    sink = data["sink"]
    assert sink["dropped"] == 0
    assert sink["rows"] == sink["rows_written"] > data["runs"]["on"][0]["ok"]
    # clients that left when a load run stopped have rows but no requests_total line
    assert sink["answered"] <= sink["rows"] <= sink["answered"] + sink["client_disconnected"], sink
    assert sink["spend_usd"] > 0
    md = (tmp_path / "spend-latest.md").read_text()
    assert "on vs off" in md.lower() or "Medians: on" in md
