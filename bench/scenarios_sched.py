"""What batch scheduling changes: the same gateway with ``batch_scheduling`` on and off, on one core.

    python -m bench.scenarios_sched [--duration 4] [--concurrency 16] [--repeat 4] [--rate RPS] [--out DIR]

A zero-latency mock upstream (``bench.mock``, ~1 KB answers) and the load generator (``bench.load``) run on
CPU 1; two one-worker gateways serving the same model run on CPU 0, one with ``relaygate_settings:
batch_scheduling: false`` (**normal**: Linux's default policy) and one with the default (**batch**: the
worker's threads on ``SCHED_BATCH``, ``relaygate.http.sched``). Each round loads one gateway, then the
other (the order alternates between rounds), each alone on its core, closed loop at ``--concurrency`` — or
open loop at ``--rate`` requests/s with ``--rate``, to see what it does below saturation. Per run it prints
requests/s, the worker's CPU microseconds per request (``/proc``), its threads' context switches per request
and the latency percentiles; then the medians, and batch's share of normal's CPU per request.

One-after-the-other on purpose: two gateways loaded together on one core would share it under two
policies at once, which measures how the scheduler arbitrates between them, not what either does alone.
The machine's drift between the two halves of a round is what ``--repeat`` (alternating) is for.
Everything listens on 127.0.0.1 and stops by itself; a run takes about ``repeat x 2 x (duration + 2)``
seconds plus start-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import Proc, context_switches, cpu_seconds, launch_mock, spawn, wait_http
from bench.scenarios_cache import _free_port

MASTER = "sk-bench-master"
MODES = ("normal", "batch")


def config(api_base: str, batch: bool) -> str:
    return (f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/mock-model, api_key: sk-up, "
            f"api_base: \"{api_base}\"}}\ngeneral_settings:\n  master_key: {MASTER}\n"
            f"relaygate_settings:\n  embedded_database: false\n  batch_scheduling: {'true' if batch else 'false'}\n")


def measure(port: int, gw: Proc, args: argparse.Namespace, tag: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"out-{tag}.json"
    load = ["--rate", str(args.rate)] if args.rate else ["--concurrency", str(args.concurrency)]
    base = [sys.executable, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}", "--model", "m",
            "--api-key", MASTER, *load, "--quiet", "--timeout", "10"]
    if shutil.which("taskset"):
        base = ["taskset", "-c", "1", *base]
    subprocess.run([*base, "--duration", "1"], check=True, timeout=60, stdout=subprocess.DEVNULL)  # warm-up
    cpu0, sw0 = cpu_seconds(gw.pid), context_switches(gw.pid)
    subprocess.run([*base, "--duration", str(args.duration), "--json-out", str(out)], check=True,
                   timeout=args.duration + 60, stdout=subprocess.DEVNULL)
    cpu, sw = cpu_seconds(gw.pid) - cpu0, context_switches(gw.pid) - sw0
    res = json.loads(out.read_text())
    ok = max(1, int(res["ok"]))
    lat = res["latency_ms"]
    return {"rps": float(res["throughput_rps"]), "ok": ok, "errors": int(res["error_count"]),
            "cpu_us": 1e6 * cpu / ok, "switches": sw / ok, "p50_ms": float(lat["p50"]), "p99_ms": float(lat["p99"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=0.0, help="open loop at this many requests/s (default: closed)")
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--out", type=Path, default=None, help="also write the runs and medians as JSON here")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 60 or not 1 <= args.concurrency <= 256 or not 1 <= args.repeat <= 10 \
            or not 0 <= args.rate <= 50_000:
        p.error("--duration in (0, 60], --concurrency in 1..256, --repeat in 1..10, --rate in 0..50000")
    tmp = Path(tempfile.mkdtemp(prefix="rg-sched-bench-"))
    mock = launch_mock(name="up", cpus="1", log_dir=tmp, response_tokens=150)
    gws: dict[str, tuple[int, Proc]] = {}
    try:
        for mode in MODES:
            cfg = tmp / f"{mode}.yaml"
            cfg.write_text(config(mock.openai_base, mode == "batch"))
            port = _free_port()
            gw = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1", "--log-level", "warning"], name=f"gw-{mode}",
                       cpus="0", log_dir=tmp)
            gws[mode] = (port, gw)
            wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
        how = f"open loop at {args.rate:g} req/s" if args.rate else f"{args.concurrency} concurrent"
        print(f"{how}, {args.duration:g}s per run, each gateway alone on CPU 0", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for r in range(args.repeat):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                port, gw = gws[mode]
                m = measure(port, gw, args, f"{mode}{r}", tmp)
                runs[mode].append(m)
                print(f"round {r + 1} {mode:6} {m['rps']:7.0f} req/s  CPU {m['cpu_us']:6.1f} us/req  "
                      f"{m['switches']:5.2f} switches/req  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms  "
                      f"errors={m['errors']}", flush=True)
        med = {mode: {k: statistics.median(x[k] for x in rs) for k in ("rps", "cpu_us", "switches", "p50_ms",
                                                                           "p99_ms")}
               for mode, rs in runs.items()}
        for mode in MODES:
            m = med[mode]
            print(f"median {mode:6} {m['rps']:7.0f} req/s  CPU {m['cpu_us']:6.1f} us/req  {m['switches']:5.2f} "
                  f"switches/req  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms", flush=True)
        share = med["batch"]["cpu_us"] / med["normal"]["cpu_us"]
        print(f"batch: {100 * share:.1f}% of normal's CPU per request ({1 / share:.2f}x the requests per core), "
              f"{med['batch']['rps'] / med['normal']['rps']:.2f}x its requests/s", flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "sched.json").write_text(json.dumps({"runs": runs, "medians": med, "batch_cpu_share":
                                                             round(share, 4)}, indent=1))
        errors = sum(x["errors"] for rs in runs.values() for x in rs)
        return 1 if errors else 0
    finally:
        for _, gw in gws.values():
            gw.stop()
        mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
