"""Where a worker's CPU goes, per component: ``python -m bench.profile --lane governed [--seconds 10]``.

Issue 18 asks, wherever a speed goal is missed, for the profile that says where the time goes. This
command produces it the same way every time:

1. one mock upstream and the load generator on the load core, one ``relaygate serve`` worker on the
   gateway core, configured exactly as the lane of ``bench.lanes`` (``passthrough``, ``governed``, ...;
   the governed lane with its SQLite keys, budgets, limits, spend logs, Prometheus and JSON logs);
2. a fixed closed-loop load (``--concurrency``, default 32) for ``--seconds``, during which the worker's
   own CPU time is read from ``/proc`` (user + system) and ``py-spy`` samples it (non-blocking, so the
   worker is not paused; idle threads are not sampled);
3. every sample is charged to one component by its innermost frame (:func:`component`): a sample with
   no Python frame at all, or only the worker's entry into Granian's serve loop, is Granian's Rust
   runtime, uvloop's C loop or the kernel under them — mostly: py-spy also finds no frame for part of
   the interpreter's own time (a coroutine stepped from C), so ``perf`` puts this bucket about a quarter
   lower on the governed lane (kernel, Granian, libc and uvloop ~35% of the worker's CPU); a Python
   line that calls the ASGI ``send`` / ``receive`` is charged to Granian too, since the time on that
   line is spent in Granian's Rust implementation; the rest by the module the frame is in;
4. each component's share of the samples times the measured CPU per request gives its **µs per
   request** — the figures the README's "where the time goes" quotes.

Written to ``<out>/<UTC stamp>-profile-<lane>.json`` and ``.md``, copied to ``profile-<lane>-latest.*``.
Sampling costs the worker a little (about 5% at the default rate); the CPU per request printed is the
worker's own under sampling. Needs ``py-spy`` (in the ``test`` extra) and the right to trace the
worker (root, or ``ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import json
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.lanes import LANES, governed_keys, load_args, write_lane_config
from bench.procs import REPO_ROOT, cpu_seconds, launch_mock, tree_pids
from bench.scenarios import Settings, run_load
from bench.selftest import core_split
from bench.systems import MASTER_KEY, SystemSpec, start_system

__all__ = ["component", "COMPONENTS", "charge", "main"]

NATIVE = "no Python frame: Granian, uvloop, kernel (and interpreter time py-spy could not place)"
ASGI_IO = "ASGI send / receive (Granian, called from Python)"

COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Granian's Python glue (future watchers)", ("granian/",)),
    ("HTTP shell (body reading, responses, routes)", ("relaygate/http/",)),
    ("auth (keys, principals, JWT)", ("relaygate/auth/",)),
    ("routing, rate limits, EWMA", ("relaygate/router", "relaygate/core/routing", "relaygate/core/ratelimit",
                                    "relaygate/limits/", "relaygate/routing_limits")),
    ("upstream HTTP/1.1 client", ("relaygate/upstream/",)),
    ("pipeline, frontends, providers, body views", ("relaygate/pipeline/", "relaygate/frontends/",
                                                    "relaygate/providers/", "relaygate/core/")),
    ("cost and budgets", ("relaygate/cost/", "relaygate/budgets/")),
    ("JSON request logs", ("relaygate/observe/jsonlog", "relaygate/logs")),
    ("Prometheus and relaygate metrics", ("relaygate/observe/prometheus", "relaygate/metrics",
                                         "relaygate/sinks/metrics")),
    ("other exporters (Langfuse, OTel, alerting)", ("relaygate/observe/",)),
    ("spend sink and completion queue", ("relaygate/sinks/",)),
    ("store: SQL building and drivers (aiosqlite thread, asyncpg)", ("relaygate/store/", "aiosqlite/",
                                                                      "asyncpg/", "sqlite3/")),
    ("gateway glue (dispatch, snapshot)", ("relaygate/gateway/", "relaygate/")),
    ("asyncio and the standard library", ("asyncio/", "")),
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")
_ASGI_CALL = re.compile(r"\b(await\s+)?(send|receive)\(")


def component(leaf: str, source_line: str | None = None) -> str:
    """The component a sample whose innermost frame is ``leaf`` (py-spy's ``func (file:line)``) is charged
    to; ``source_line`` is that line's text when known (a call of ``send(`` / ``receive(`` is Granian's)."""
    m = _FRAME.match(leaf)
    if not leaf or m is None:
        return NATIVE
    path = m["file"]
    if path.startswith("granian/server/"):
        return NATIVE  # the worker's entry line into Granian's Rust serve loop: its time is the loop's
    if source_line is not None and path.startswith("relaygate/http/") and _ASGI_CALL.search(source_line):
        return ASGI_IO
    for name, prefixes in COMPONENTS:
        if any(path.startswith(p) or f"/{p}" in path for p in prefixes if p):
            return name
    return COMPONENTS[-1][0]


def _source(path: str, line: int) -> str | None:
    """The text of ``path:line`` (py-spy prints paths relative to ``sys.path`` entries)."""
    for root in sys.path:
        text = linecache.getline(str(Path(root or ".") / path), line)
        if text:
            return text
    return None


def charge(raw: str) -> tuple[Counter[str], int]:
    """Samples per component from py-spy's ``--format raw`` text (collapsed stacks), and the total."""
    out: Counter[str] = Counter()
    total = 0
    for row in raw.splitlines():
        if not row.strip():
            continue
        stack, _, count = row.rpartition(" ")
        n = int(count)
        total += n
        leaf = stack.split(";")[-1]
        m = _FRAME.match(leaf)
        out[component(leaf, _source(m["file"], int(m["line"])) if m else None)] += n
    return out, total


def _worker(pid: int) -> int:
    """The serving worker of a one-worker ``relaygate serve`` (its only child; the parent when none)."""
    kids = [p for p in tree_pids(pid) if p != pid]
    return kids[0] if kids else pid


def _markdown(data: dict[str, Any]) -> str:
    m = data["meta"]
    lines = [f"# Where a worker's CPU goes: the {m['lane']} lane", "",
             f"`{m['command']}` at {m['started']}: one worker on cpu {m['gateway_cpus']}, mock and load on cpu "
             f"{m['load_cpus']}; concurrency {m['concurrency']} for {m['seconds']} s; {data['rps']:,.0f} req/s, "
             f"**{data['cpu_us_per_req']:.1f} µs of worker CPU per request** (under sampling), "
             f"{data['samples']:,} samples.", "",
             "| component | share of samples | µs per request |", "| --- | ---: | ---: |"]
    for row in data["components"]:
        lines.append(f"| {row['component']} | {row['share'] * 100:.1f}% | {row['us_per_req']:.1f} |")
    lines += ["", "A sample with no Python frame is charged to Granian, uvloop and the kernel (with the part of the "
              "interpreter's own time py-spy cannot place); a line calling the ASGI `send`/`receive` to Granian; "
              "the rest by the module of the innermost frame (`bench/profile.py`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--lane", default="governed", choices=[n for n, ln in LANES.items() if not ln.streams])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        print("bench.profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    lane = LANES[a.lane]
    gw, load = core_split()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp_s:
        tmp = Path(tmp_s)
        mock = launch_mock(cpus=load, name="upstream", chunks=20, log_dir=tmp)
        running = None
        try:
            db_url, keys = governed_keys(tmp) if lane.governed else (None, None)
            config = write_lane_config(lane, tmp, mock.port, db_url)
            running = start_system(SystemSpec("relaygate", "relaygate", cpus=gw), config, mock.url, tmp)
            if running.error or running.pid is None:
                print(f"bench.profile: {running.error}", file=sys.stderr)
                return 1
            running.api_key = MASTER_KEY
            worker = _worker(running.pid)
            args = [*load_args(lane, "relaygate", mock.url, tmp, keys), "--concurrency", str(a.concurrency)]
            warm = [*args, "--duration", "2", "--warmup", "0.5"]
            run_load(running, warm, 2.5, tmp, "warm", Settings(load_cpus=load))
            raw = tmp / "profile.raw"
            measured = [*args, "--duration", str(a.seconds + 1.0), "--warmup", "0"]
            cpu0 = cpu_seconds(worker)
            # py-spy waits half a second for the generator to be up, and stops half a second before it ends
            spy_cmd = [spy, "record", "-p", str(worker), "-d", str(max(1, int(a.seconds))), "-r", str(a.rate),
                       "-f", "raw", "-o", str(raw), "--nonblocking"]
            spying = subprocess.Popen(["sh", "-c", 'sleep 0.5; exec "$@"', "py-spy", *spy_cmd],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            res = run_load(running, measured, a.seconds + 1.0, tmp, "profile", Settings(load_cpus=load))
            _, spy_err = spying.communicate(timeout=60)
            cpu1 = cpu_seconds(worker)
            if spying.returncode != 0 or not raw.exists():
                print(f"bench.profile: py-spy failed: {spy_err.strip()[-400:]}", file=sys.stderr)
                return 1
            if res.get("failed"):
                print(f"bench.profile: load failed: {res['failed']}", file=sys.stderr)
                return 1
            counts, total = charge(raw.read_text())
        finally:
            if running is not None:
                running.stop()
            mock.stop()
    # no warm-up in the measured run: the generator counts every request it made, and the worker's CPU
    # was read just before it started and just after it exited (idle meanwhile costs next to nothing)
    cpu_us = (cpu1 - cpu0) * 1e6 / max(res["ok"] + res["error_count"], 1)
    rows = [{"component": name, "samples": n, "share": round(n / total, 4), "us_per_req": round(n / total * cpu_us, 1)}
            for name, n in counts.most_common()]
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    data = {"meta": {"lane": a.lane, "started": started.isoformat(timespec="seconds"),
                     "command": "python -m bench.profile " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "gateway_cpus": gw, "load_cpus": load, "concurrency": a.concurrency, "seconds": a.seconds,
                     "rate": a.rate},
            "rps": round(res["throughput_rps"], 1), "errors": res["error_count"], "cpu_us_per_req": round(cpu_us, 1),
            "samples": total, "components": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = _markdown(data)
    for name in (f"{stamp}-profile-{a.lane}", f"profile-{a.lane}-latest"):
        (out / f"{name}.json").write_text(json.dumps(data, indent=1))
        (out / f"{name}.md").write_text(md)
    print(md)
    return 0 if res["error_count"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
