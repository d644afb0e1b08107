"""bench.scenarios_spend end to end, tiny: two real gateways (spend, cost and budgets off / on), the load
generator, the results files; every request the 'on' gateway answered has its spend row, none dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO_ROOT
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("together", [False, True], ids=["one-after-the-other", "together"])
def test_tiny_run_writes_results_and_every_row(tmp_path: Path, together: bool) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_spend", "--duration", "0.5", "--repeat", "1",
                           "--keys", "40", "--active", "10", "--concurrency", "4", "--out", str(tmp_path),
                           *(["--together", "--modes", "off,on,on-nowrite"] if together else [])],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "spend-latest.json").read_text())
    assert data["order"] == (["off", "on", "on-nowrite"] if together else ["off", "on"])
    s = data["summary"]
    assert s["together"] is together
    # together, the judged figure is one core's throughput at the measured cost: off/on CPU per request
    expected = 1 / s["paired_cpu_per_req"] if together else s["paired_throughput"]
    assert s["judged_throughput"] == pytest.approx(expected, abs=1e-3)
    assert s["within_10_percent"] is (s["judged_throughput"] >= 0.90)
    for mode in ("off", "on"):
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and not run["errors"], run
    # where the CPU went: the event loop's thread at least
    assert any(v >= 1 for v in data["runs"]["on"][0]["threads_us_per_req"].values())
    # the on gateway's window ends when its rows are written (settled); off writes none and does not wait
    assert data["runs"]["off"][0]["flush_s"] == 0.0
    assert 0.0 <= data["runs"]["on"][0]["flush_s"] < 30.0
    sink = data["sink"]
    assert sink["dropped"] == 0
    assert sink["rows"] == sink["rows_written"] > data["runs"]["on"][0]["ok"]
    # clients that left when a load run stopped have rows but no requests_total line
    assert sink["answered"] <= sink["rows"] <= sink["answered"] + sink["client_disconnected"], sink
    assert sink["spend_usd"] > 0
    if together:
        # the stubbed gateway answered, counted its rows as written and wrote none: the stub was in use
        (run,) = data["runs"]["on-nowrite"]
        assert run["ok"] > 0 and not run["errors"] and run["flush_s"] == 0.0
        stub = data["stubs"]["on-nowrite"]
        assert stub["rows"] == 0 and stub["rows_written"] >= run["ok"], stub
    md = (tmp_path / "spend-latest.md").read_text()
    assert "on vs off" in md.lower() or "Medians: on" in md


def test_a_local_postgres_is_pinned_to_the_load_core_and_restored(postgres_server: PostgresServer) -> None:
    """The 'on' database's server is moved off the gateway's core for the run (postmaster and backends,
    and the backends it starts later), then given back its affinity."""
    import asyncio
    import os

    import asyncpg

    from bench.procs import tree_pids
    from bench.scenarios_spend import _postmaster, pin_postgres, restore_affinity

    url = postgres_server.url()
    master = asyncio.run(_postmaster(url))
    assert master is not None
    before = os.sched_getaffinity(master)
    target = str(min(os.sched_getaffinity(0)))
    what, saved = pin_postgres(url, target)
    try:
        assert what.startswith(f"server pinned to cpu {target}"), what
        assert master in saved and saved[master] == before
        assert all(cpus == {int(target)} for cpus in _affinities(tree_pids(master))), what

        # a backend started after the pinning inherits it (asked while it is still connected)
        async def affinity_of_new_backend() -> set[int]:
            conn = await asyncpg.connect(url)
            try:
                return os.sched_getaffinity(int(await conn.fetchval("SELECT pg_backend_pid()")))
            finally:
                await conn.close()

        assert asyncio.run(affinity_of_new_backend()) == {int(target)}
    finally:
        restore_affinity(saved)
    assert os.sched_getaffinity(master) == before


def _affinities(pids: list[int]) -> list[set[int]]:
    """The affinity of each process still alive (a backend, such as the one that answered the postmaster's
    pid, may end between the reading of the tree and this)."""
    import os

    out = []
    for pid in pids:
        try:
            out.append(os.sched_getaffinity(pid))
        except ProcessLookupError:
            continue
    return out


def test_a_remote_postgres_is_left_alone() -> None:
    from bench.scenarios_spend import pin_postgres

    assert pin_postgres("postgresql://u:p@db.example.invalid:5432/x", "1") == ("not pinned (not on this machine)", {})
    assert pin_postgres("postgresql://u:p@127.0.0.1:1/x", None) == ("not pinned (no core split)", {})
