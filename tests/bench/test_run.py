"""bench.run pieces: the shared config, the report renderer, a tiny direct-only run, unavailable systems."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.hist import Histogram
from bench.procs import REPO_ROOT
from bench.report import markdown, render
from bench.systems import MASTER_KEY, MODEL, SystemSpec, start_system, write_config


def test_config_is_litellm_format(tmp_path: Path) -> None:
    cfg = yaml.safe_load(write_config(tmp_path, 4321).read_text())
    dep = cfg["model_list"][0]
    assert dep["model_name"] == MODEL
    assert dep["litellm_params"] == {"model": f"openai/{MODEL}", "api_base": "http://127.0.0.1:4321/v1",
                                     "api_key": "sk-bench"}
    assert cfg["general_settings"]["master_key"] == MASTER_KEY
    assert cfg["litellm_settings"]["set_verbose"] is False


def _fake_result(rps: float, p99_us: int) -> dict:
    h = Histogram()
    h.record(p99_us // 4, n=98)
    h.record(p99_us, n=2)
    return {"throughput_rps": rps, "ok": 100, "errors": {}, "latency_ms": h.summary(1e-3),
            "hist": {"latency": h.to_dict()}, "resources": {"gateway_cpu_ms_per_request": 0.1,
                                                           "gateway_peak_rss_kib": 51200}, "notes": []}


def test_report_renders_tables_ratios_and_pngs(tmp_path: Path) -> None:
    data = {
        "meta": {"started": "now", "machine": {"cpu_model": "cpu", "cores": 2}},
        "systems": {"direct": {}, "relaygate": {}, "litellm": {"error": "litellm did not become ready: boom"}},
        "scenarios": {"chat": "small chat"},
        "results": {
            "chat": {"direct": _fake_result(20000, 2000), "relaygate": _fake_result(8000, 4000),
                     "litellm": _fake_result(80, 400000)},
            "frontier": {"relaygate": {"steps": [
                {"rate": 1000, "throughput_rps": 1000, "p99_ms": 2.0, "ok": True},
                {"rate": 1600, "throughput_rps": 1500, "p99_ms": 80.0, "ok": False}],
                "best_rps": {"p99<5ms": 1000, "p99<10ms": 1000, "p99<50ms": 1000}}},
        },
    }
    md = markdown(data)
    assert "| chat | req/s | 20,000 | 8,000 | 80 | 100.0× | 0.4× |" in md
    assert "litellm did not become ready: boom" in md
    written = render(data, tmp_path, "x")
    assert written["latency_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["frontier_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![latency](x-latency.png)" in written["md"].read_text()


@pytest.mark.e2e
def test_unready_gateway_is_reported_not_raised(tmp_path: Path) -> None:
    config = write_config(tmp_path, 9)
    running = start_system(SystemSpec("relaygate", "relaygate", ready_timeout=0.05), config, "http://x", tmp_path)
    assert not running.available and "did not become ready" in (running.error or "")
    assert running.proc is not None and not running.proc.alive()


@pytest.mark.e2e
def test_quick_direct_only_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--systems", "direct", "--scenarios",
                           "chat,stream", "--duration", "0.5", "--out", str(tmp_path), "--no-plots"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["results"]["chat"]["direct"]["ok"] > 0
    assert data["results"]["stream"]["direct"]["chunks_per_response"]["p50"] == 23
    assert data["meta"]["machine"]["cores"] >= 1
    assert "| chat | req/s |" in (tmp_path / "latest.md").read_text()
