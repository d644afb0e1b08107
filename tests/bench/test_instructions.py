"""bench.instructions: the in-process driver serves its modes through a real upstream (and the exporters reach the
receiver), cachegrind's out files are read as cachegrind sums them, and a request's share is the two runs'
difference over their difference in requests."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.instructions import (
    CACHES,
    EVENTS,
    grown,
    observe_env,
    per_request,
    read_counts,
    render,
    spend_database,
)
from bench.procs import REPO_ROOT, launch_mock, spawn
from bench.systems import free_port

SAMPLE = """desc: I1 cache: 32768 B, 64 B, 8-way associative
cmd: python -m bench.instructions --drive cache off 2
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=/src/ceval.c
fn=_PyEval_EvalFrameDefault
10 100 3 1 40 2 0 20 1 0
11 50 1 0 10 0 0 5 0 0
fl=/src/dictobject.c
fn=_Py_dict_lookup
7 30 2 0 10 1 0 0 0 0
summary: 180 6 1 60 3 0 25 1 0
"""


def test_read_counts_sums_each_function() -> None:
    path = Path(__file__).with_name("_sample.cg")
    try:
        path.write_text(SAMPLE)
        summary, per_fn = read_counts(path)
    finally:
        path.unlink(missing_ok=True)
    assert summary["Ir"] == 180 and summary["D1mw"] == 1
    ceval = per_fn[("/src/ceval.c", "_PyEval_EvalFrameDefault")]
    assert dict(zip(EVENTS, ceval, strict=True)) == {"Ir": 150, "I1mr": 4, "D1mr": 2, "D1mw": 1, "ILmr": 1,
                                                     "DLmr": 0, "DLmw": 0}
    assert per_fn[("/src/dictobject.c", "_Py_dict_lookup")][0] == 30


def test_per_request_is_the_difference_of_two_runs() -> None:
    small = {"Ir": 1_000_000, "I1mr": 500, "D1mr": 300, "D1mw": 100, "ILmr": 10, "DLmr": 20, "DLmw": 5}
    large = {"Ir": 1_400_000, "I1mr": 900, "D1mr": 500, "D1mw": 140, "ILmr": 10, "DLmr": 60, "DLmw": 5}
    pr = per_request(small, large, 200)
    assert pr["Ir"] == 2000 and pr["I1mr"] == 2 and pr["D1mr"] == 1 and pr["DLmr"] == 0.2 and pr["ILmr"] == 0


def test_grown_lists_what_a_mode_adds_per_request() -> None:
    f = ("ceval.c", "eval")
    g = ("sha.c", "sha_transform")
    z = [0] * len(EVENTS)
    base = ({f: [1000, *z[1:]]}, {f: [3000, *z[1:]]})  # 2,000 over the span
    mode = ({f: [1100, *z[1:]], g: [50, *z[1:]]}, {f: [3500, *z[1:]], g: [650, *z[1:]]})
    top = grown(base, mode, 100, 5)
    assert [(t["function"], t["Ir"]) for t in top] == [(g[1], 6.0), (f[1], 4.0)]
    text = render([{"mode": "cache:miss", "Ir": 10.0, "I1": 1.0, "D1": 1.0, "LL": 0.0, "d_Ir": 2.0,
                    "d_Ir_pct": 25.0, "d_I1": 0.0, "d_D1": 0.0}], {"cache:miss": top},
                  type("A", (), {"requests": (1, 2)})())
    assert "| cache:miss | 10 |" in text and "`sha.c:sha_transform`" in text


def test_a_real_cachegrind_file_reads_as_its_summary(tmp_path: Path) -> None:
    out = tmp_path / "true.cg"
    subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes", *CACHES, f"--cachegrind-out-file={out}",
                    sys.executable, "-S", "-c", "sum(range(20000))"], check=True, capture_output=True, timeout=120)
    summary, per_fn = read_counts(out)
    assert summary["Ir"] > 100_000
    for k, event in enumerate(EVENTS):  # the per-function lines add up to cachegrind's own summary
        assert sum(v[k] for v in per_fn.values()) == summary[event], event


def _counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/counts", timeout=5) as resp:
        out: dict[str, int] = json.loads(resp.read())
        return out


@pytest.mark.e2e
def test_drive_serves_each_kind_through_a_real_upstream(tmp_path: Path) -> None:
    mock = launch_mock(name="up", log_dir=tmp_path, response_tokens=20)
    rport = free_port()
    recv = spawn([sys.executable, "-m", "bench.scenarios_observe", "--receiver", str(rport)], name="receiver",
                 log_dir=tmp_path, cwd=REPO_ROOT)
    try:
        env = {**os.environ, **observe_env(rport), "PYTHONPATH": str(REPO_ROOT)}
        for kind, mode in (("cache", "miss"), ("cache", "miss-nolookup"), ("cache", "hit"), ("observe", "all")):
            done = subprocess.run([sys.executable, "-m", "bench.instructions", "--drive", kind, mode, "24",
                                   mock.openai_base, f"http://127.0.0.1:{rport}"], env=env, cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (kind, mode, done.stderr[-2000:])
        # a spend mode: its database filled, every request's row written (at the end, in one transaction)
        url = spend_database(tmp_path, "on", 24)
        done = subprocess.run([sys.executable, "-m", "bench.instructions", "--drive", "spend", "on", "24",
                               mock.openai_base, url], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            rows = db.execute("SELECT count(*), count(DISTINCT api_key) FROM rg_spend_logs").fetchone()
        assert rows == (24, 24)  # one a request, each of its own key (round robin over the keys)
        deadline = time.monotonic() + 15
        while _counts(rport)["langfuse_events"] < 48 and time.monotonic() < deadline:
            time.sleep(0.2)
        got = _counts(rport)
        assert got["langfuse_events"] == 48 and got["otlp_requests"] >= 1  # a trace and a generation each
        # the upstream answered every cache miss (24 + 24), the hit mode's first request, the 24 observed and the 24
        # priced
        with urllib.request.urlopen(mock.url + "/__mock/stats", timeout=5) as resp:
            stats = json.loads(resp.read())
        assert stats["requests"] == 24 + 24 + 1 + 24 + 24, stats
    finally:
        recv.stop()
        mock.stop()
