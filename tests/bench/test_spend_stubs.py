"""The spend bench's stubbed gateways do what their modes claim (``bench/stubs``): ``on-nowrite`` writes nothing,
``on-norollup`` writes the rows and no rollup, ``on-nosql`` writes the rows and computes but does not write
the rollups. Each stub is loaded as its gateway loads it (its ``sitecustomize``, in a fresh interpreter) and
the spend sink's write is run on a SQLite store: a renamed function would otherwise leave a stub measuring
something else without a word."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO_ROOT

SCRIPT = """
import asyncio, json, sys
import sitecustomize  # the stub, first on the path
import relaygate.sinks.spend as sink
import relaygate.store.spend as spend
from relaygate.store import open_store
from tests.spend.helpers import record

async def main():
    store = await open_store(sys.argv[1])
    try:
        rows = [sink.spend_values(record(i, cost=0.01, key="k1", user="u1"), store.dialect) for i in range(5)]
        written = await sink.write_spend_values(store, rows)
        async with store._read() as c:
            logs = (await c.fetch("SELECT COUNT(*) AS n FROM rg_spend_logs", []))[0]["n"]
            totals = (await c.fetch("SELECT COUNT(*) AS n FROM rg_spend_totals", []))[0]["n"]
            daily = (await c.fetch("SELECT COUNT(*) AS n FROM rg_daily_spend", []))[0]["n"]
        print(json.dumps({"written": written, "logs": logs, "totals": totals, "daily": daily}))
    finally:
        await store.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("stub,want", [
    ("nowrite", {"written": 5, "logs": 0, "totals": 0, "daily": 0}),
    ("norollup", {"written": 5, "logs": 5, "totals": 0, "daily": 0}),
    ("nosql", {"written": 5, "logs": 5, "totals": 0, "daily": 0}),
])
def test_each_stub_writes_what_its_mode_says(tmp_path: Path, stub: str, want: dict[str, int]) -> None:
    path = os.pathsep.join([str(REPO_ROOT / "bench" / "stubs" / stub), str(REPO_ROOT)])
    out = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path / 'db.sqlite'}"], cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == want


def test_without_a_stub_the_write_adds_everything_up(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT.replace("import sitecustomize  # the stub, first on the path\n",
                                                               ""), f"sqlite:///{tmp_path / 'db.sqlite'}"],
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["logs"] == 5 and got["totals"] > 0 and got["daily"] > 0
