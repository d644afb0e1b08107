"""``bench.profile``: samples charged to the right component, and one real profile end to end.

The unit half feeds :func:`bench.profile.charge` collapsed stacks in py-spy's raw format; the e2e half runs
``python -m bench.profile`` on the passthrough lane (a real mock, a real ``relaygate serve`` worker, the
real load generator, real py-spy) and checks that the result accounts for every sample. Nothing here
asserts how fast anything was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.profile import ASGI_IO, COMPONENTS, NATIVE, charge, component

ROOT = Path(__file__).resolve().parents[2]


def test_native_and_granian_entry() -> None:
    assert component("") == NATIVE
    assert component("MPServer._spawn_asgi_lifespan_worker (granian/server/mp.py:249)") == NATIVE
    assert component("future_watcher (granian/_futures.py:15)").startswith("Granian's Python glue")


def test_asgi_calls_are_granian_by_their_source_line() -> None:
    leaf = "send_body (relaygate/http/respond.py:38)"
    assert component(leaf, '    await send({"type": "http.response.body", "body": body})\n') == ASGI_IO
    assert component(leaf, "    headers.append((b'content-length', n))\n").startswith("HTTP shell")
    assert component("next_message (relaygate/http/body.py:124)", "    pending = receive()\n") == ASGI_IO


def test_modules_to_components() -> None:
    names = dict(COMPONENTS)
    cases = {
        "_Conn.start (relaygate/upstream/h1.py:217)": "upstream HTTP/1.1 client",
        "Router._admit (relaygate/router.py:488)": "routing, rate limits, EWMA",
        "LocalBuckets.acquire (relaygate/core/ratelimit.py:196)": "routing, rate limits, EWMA",
        "model_literal (relaygate/core/body.py:72)": "pipeline, frontends, providers, body views",
        "JsonRequestLog.line (relaygate/observe/jsonlog.py:49)": "JSON request logs",
        "LiteLLMMetrics.handle (relaygate/observe/prometheus.py:10)": "Prometheus and relaygate metrics",
        "SpendSink.rows (relaygate/sinks/spend.py:250)": "spend sink and completion queue",
        "_execute (relaygate/store/sqlite.py:41)": "store: SQL building and drivers (aiosqlite thread, asyncpg)",
        "_connection_worker_thread (aiosqlite/core.py:59)": "store: SQL building and drivers (aiosqlite thread, "
                                                           "asyncpg)",
        "current_task (asyncio/tasks.py:39)": "asyncio and the standard library",
        "Gateway.__call__ (relaygate/gateway/core.py:198)": "gateway glue (dispatch, snapshot)",
    }
    for leaf, want in cases.items():
        assert want in names, want
        assert component(leaf) == want, leaf


def test_charge_counts_every_sample_once() -> None:
    raw = ("process 1;main (relaygate/cli.py:10);Pipeline.run (relaygate/pipeline/core.py:84) 7\n"
           " 5\n"
           "a (x.py:1);_Conn.start (relaygate/upstream/h1.py:217) 3\n"
           "a (x.py:1);_execute (relaygate/store/sqlite.py:41) 2\n")
    counts, total = charge(raw)
    assert total == 17
    assert sum(counts.values()) == 17
    assert counts[NATIVE] == 5
    assert counts["pipeline, frontends, providers, body views"] == 7
    assert counts["upstream HTTP/1.1 client"] == 3


@pytest.mark.e2e
def test_profile_end_to_end(tmp_path: Path) -> None:
    if shutil.which("py-spy") is None:
        pytest.fail("py-spy is not installed: it is in the test extra (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "bench.profile", "--lane", "passthrough", "--seconds", "2",
                           "--concurrency", "8", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "profile-passthrough-latest.json").read_text())
    assert data["errors"] == 0 and data["rps"] > 0 and data["cpu_us_per_req"] > 0
    assert data["samples"] > 0
    assert sum(c["samples"] for c in data["components"]) == data["samples"]
    assert abs(sum(c["share"] for c in data["components"]) - 1.0) < 0.01
    names = {c["component"] for c in data["components"]}
    assert NATIVE in names and "upstream HTTP/1.1 client" in names
    assert "| component | share of samples | µs per request |" in (tmp_path / "profile-passthrough-latest.md").read_text()
