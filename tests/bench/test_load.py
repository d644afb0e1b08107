"""bench.load against the mock: error classification, streams, open loop, merging, CLI entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

from bench.load import LoadSpec, Result, build_request, run, run_paired, run_sync
from bench.procs import REPO_ROOT, start_mock

pytestmark = pytest.mark.e2e


def test_errors_counted_by_kind_against_faulty_mock() -> None:
    with start_mock(name="faulty", fault_429=0.2, fault_503=0.1, fault_reset=0.1, seed=3) as mock:
        res = run_sync(LoadSpec(url=mock.url, concurrency=4, requests=600, duration=0))
        stats = mock.stats()
    faults = stats["by_fault"]
    assert res.errors.get("status_429") == faults["429"]
    assert res.errors.get("status_503") == faults["503"]
    assert res.errors.get("reset") == faults["reset"]
    assert res.ok == stats["by_status"]["200"]
    assert res.ok + sum(res.errors.values()) == 600
    assert abs(faults["429"] - 120) <= 50 and abs(faults["reset"] - 60) <= 40


def test_stream_cuts_are_truncated_and_chunks_counted() -> None:
    with start_mock(name="cut", fault_cut=0.25, seed=5, chunks=7) as mock:
        res = run_sync(LoadSpec(url=mock.url, stream=True, concurrency=2, requests=200, duration=0))
        cuts = mock.stats()["by_fault"]["cut"]
    assert res.errors == {"truncated": cuts}
    assert res.ok == 200 - cuts
    assert res.chunks.min == res.chunks.max == 1 + 7 + 2  # role frame, 7 deltas, finish, [DONE]
    assert res.arrivals.count == res.ok and res.ttft.count == res.ok


def test_spaced_chunks_arrive_separately() -> None:
    # 20 ms apart: a reader held up that long on a busy machine (the suite runs two workers) may still
    # find two chunks in one read now and then, so the typical response is what must show 4 arrivals
    with start_mock(name="spaced", chunks=4, chunk_gap_ms=20) as mock:
        res = run_sync(LoadSpec(url=mock.url, stream=True, concurrency=2, requests=20, duration=0))
    assert res.ok == 20 and not res.errors
    assert res.arrivals.max == 4 and res.arrivals.value_at(50) == 4  # one arrival per chunk: nothing merged
    assert res.gaps.count == res.arrivals.total - 20  # a gap between each two reads of a response


def test_hang_becomes_timeout() -> None:
    with start_mock(name="hang") as mock:
        spec = LoadSpec(url=mock.url, concurrency=1, requests=3, duration=0, timeout=0.3,
                        headers=[("x-mock-fault", "hang")])
        res = run_sync(spec)
    assert res.errors == {"timeout": 3} and res.ok == 0


def test_connect_errors_counted() -> None:
    async def go() -> Result:
        spec = LoadSpec(url="http://127.0.0.1:1", concurrency=2, duration=0.3, timeout=1)
        return await run(spec)

    res = uvloop.run(go())
    assert res.errors.get("connect", 0) >= 2 and res.ok == 0


def test_open_loop_and_process_merge() -> None:
    with start_mock(name="open") as mock:
        res = run_sync(LoadSpec(url=mock.url, rate=400, duration=0.5, warmup=0.1))
        merged = run_sync(LoadSpec(url=mock.url, concurrency=4, requests=200, duration=0), processes=2)
        assert mock.stats()["requests"] >= res.ok + 200
    assert not res.errors and res.ok + res.unfinished == res.sent and 150 <= res.ok <= 210
    assert merged.processes == 2 and merged.ok == 200 and merged.latency.count == 200


def test_paired_mode_reports_both_targets() -> None:
    with start_mock(name="a") as a, start_mock(name="b", latency_ms=2) as b:
        out = uvloop.run(run_paired({"a": LoadSpec(url=a.url), "b": LoadSpec(url=b.url)}, rounds=3, per_round=5))
        assert a.stats()["requests"] == 15 and b.stats()["requests"] == 15
    assert out["errors"] == {"a": 0, "b": 0}
    assert len(out["round_medians_ms"]["a"]) == 3 and "added_ms" in out


def test_request_shapes_per_api() -> None:
    raw, marker = build_request(LoadSpec(url="http://h:1", path="/v1/messages", stream=True, body_bytes=2000))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"anthropic-version: 2023-06-01" in head and marker == b"message_stop"
    assert 1900 <= len(body) <= 2100 and json.loads(body)["stream"] is True
    raw, _ = build_request(LoadSpec(url="http://h:1", path="/v1beta/models/g:generateContent", stream=True))
    assert raw.startswith(b"POST /v1beta/models/g:streamGenerateContent?alt=sse HTTP/1.1")


def test_cli_json_out_and_help(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with start_mock(name="cli") as mock:
        proc = subprocess.run([sys.executable, "-m", "bench.load", "--url", mock.url, "--requests", "50",
                               "--concurrency", "2", "--stream", "--json-out", str(out)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["ok"] == 50 and data["chunks_per_response"]["p50"] == 23
    assert "throughput" in proc.stdout
    for module in ("bench.mock", "bench.load", "bench.run"):
        help_ = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=60)
        assert help_.returncode == 0 and "usage:" in help_.stdout, module
