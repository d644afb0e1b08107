"""What rate limits cost: throughput and gateway CPU per request with limits off, in-process, and Redis.

    python -m bench.scenarios_limits [--duration 8] [--concurrency 32] [--workers 1] [--repeat 1]

Starts a zero-latency mock upstream, a ``redis-server`` on a free port, and for each mode a relaygate
gateway (``--workers`` Granian workers) with the same LiteLLM config except the limits:

- ``off``:   no rpm/tpm anywhere, master key.
- ``local``: deployment rpm+tpm and a virtual key with rpm, tpm and max_parallel_requests (5 buckets per
  request, prompt estimate, reconciliation at the end), in-process limiter.
- ``redis``: the same buckets in Redis, leased (``relaygate.limits.redis``: units taken from the shared
  buckets in one Lua call per refill and spent locally; Redis calls per request are printed).

Limits are set far above the offered load so every request is admitted: this measures the cost of
checking, not of refusing. The gateway is pinned to CPU 0 and everything else to CPU 1 when ``taskset``
exists. Prints requests/s and gateway CPU microseconds per request for each mode; with ``--repeat N``
the modes run N times interleaved (off, local, redis, off, ...) and the medians are compared, since a
shared machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import cpu_seconds, launch_mock, spawn, wait_http

KEY = "sk-bench-limited"
MASTER = "sk-bench-master"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(api_base: str, mode: str, redis_port: int) -> str:
    limits = "\n      rpm: 1000000000\n      tpm: 1000000000000" if mode != "off" else ""
    router = "  routing_strategy: simple-shuffle\n"
    if mode == "redis":
        router += f"  redis_host: 127.0.0.1\n  redis_port: {redis_port}\n"
    keys = ""
    if mode != "off":
        keys = (f"relaygate_keys:\n  - key: {KEY}\n    rpm_limit: 1000000000\n    tpm_limit: 1000000000000\n"
                "    max_parallel_requests: 100000\n")
    return f"""model_list:
  - model_name: mock-model
    litellm_params:
      model: openai/mock-model
      api_key: sk-up
      api_base: {api_base}{limits}
    model_info:
      id: d1
general_settings:
  master_key: {MASTER}
router_settings:
{router}{keys}"""


def run_mode(mode: str, mock_base: str, redis_port: int, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    cfg = tmp / f"{mode}.yaml"
    cfg.write_text(_config(mock_base, mode, redis_port))
    port = _free_port()
    gw = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
               name=f"gw-{mode}", cpus="0", log_dir=tmp)
    try:
        wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
        key = MASTER if mode == "off" else KEY
        load = [sys.executable, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}", "--model", "mock-model",
                "--api-key", key, "--concurrency", str(args.concurrency), "--duration", str(args.duration),
                "--warmup", "0", "--quiet", "--json-out", str(tmp / f"{mode}.json")]
        if shutil.which("taskset"):
            load = ["taskset", "-c", "1", *load]
        warm = [*load[:-5], "--duration", "1", "--quiet"]
        subprocess.run(warm, check=True, timeout=60, stdout=subprocess.DEVNULL)
        before = cpu_seconds(gw.pid)
        subprocess.run(load, check=True, timeout=args.duration + 60)
        cpu0 = cpu_seconds(gw.pid) - before
        res = json.loads((tmp / f"{mode}.json").read_text())
    finally:
        gw.stop()
    ok = int(res["ok"])
    return {"rps": float(res["throughput_rps"]), "ok": ok, "errors": int(res["error_count"]),
            "cpu_us_per_req": 1e6 * cpu0 / max(1, ok)}


def _redis_calls(port: int) -> int:
    """EVALSHA calls Redis has served so far (INFO commandstats)."""
    from relaygate.limits.resp import encode

    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(encode(("INFO", "commandstats")))
        time.sleep(0.05)
        text = s.recv(1 << 16).decode(errors="replace")
    return sum(int(line.split("calls=")[1].split(",")[0]) for line in text.splitlines()
               if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--modes", default="off,local,redis")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rg-limits-"))
    redis_port = _free_port()
    redis = spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(tmp)], name="redis", cpus="1", log_dir=tmp)
    mock = launch_mock(name="up", cpus="1", log_dir=tmp)
    modes = args.modes.split(",")
    try:
        time.sleep(0.3)
        results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for _ in range(args.repeat):
            for mode in modes:
                calls0 = _redis_calls(redis_port) if mode == "redis" else 0
                r = run_mode(mode, mock.openai_base, redis_port, args, tmp)
                results[mode].append(r)
                extra = ""
                if mode == "redis":
                    calls = _redis_calls(redis_port) - calls0  # includes warmup and shutdown calls
                    extra = f"  redis calls/req {calls / max(1, r['ok']):.4f}"
                print(f"{mode:6s} {r['rps']:9.0f} req/s  ok={r['ok']}  errors={r['errors']}  "
                      f"gateway CPU {r['cpu_us_per_req']:.0f} us/req{extra}", flush=True)
        med = {m: {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us_per_req")}
               for m, rs in results.items()}
        print(f"medians over {args.repeat} run(s):")
        base = med.get("off")
        for mode, r in med.items():
            line = f"{mode:6s} {r['rps']:9.0f} req/s  gateway CPU {r['cpu_us_per_req']:.1f} us/req"
            if base:
                line += (f"  throughput vs off {100.0 * (r['rps'] / base['rps'] - 1.0):+.1f}%"
                         f"  CPU/req vs off "
                         f"{100.0 * (r['cpu_us_per_req'] / base['cpu_us_per_req'] - 1.0):+.1f}%")
            print(line)
    finally:
        mock.stop()
        redis.stop()


if __name__ == "__main__":
    main()
