"""What the Responses API costs through relaygate: ``/v1/responses`` native vs translated vs plain chat, and
``/v1/messages`` to a Responses-only model vs to chat.

    python -m bench.scenarios_responses [--duration 4] [--concurrency 16] [--pure] [--only stream,unary] \
        [--repeat 1]

One zero-latency mock upstream (``bench.mock``, which speaks ``/v1/chat/completions``, ``/v1/responses``
and more) on CPU 1 and one relaygate gateway (one Granian worker) on CPU 0, with five model groups on that
mock:

- ``chat``: ``openai/mock-model``, measured on ``/v1/chat/completions`` (the baseline);
- ``resp-native``: the same deployment on ``/v1/responses``: forwarded to the mock's ``/v1/responses``;
- ``resp-translated``: ``hosted_vllm/mock-model`` on ``/v1/responses``: translated to chat completions and
  the chat answer (or chunk stream) translated back into a Response (or Responses events);
- ``msg-responses``: ``openai/mock-model`` marked ``model_info.mode: responses`` on ``/v1/messages``:
  translated to the mock's ``/v1/responses`` and the events back into Anthropic's;
- ``msg-chat``: ``openai/mock-model`` on ``/v1/messages``: translated to chat and back.

Each variant runs ``bench.load`` (closed loop, pinned to CPU 1) for ``--duration`` seconds after one second
of warm-up, streamed and unary; it prints requests/s and the gateway's CPU microseconds per request (from
``/proc``), and that CPU minus the baseline's divided by the answer's events (``--chunks``, 20 by default)
gives the translation cost per event. ``--pure`` runs the gateway with ``RELAYGATE_NO_EXTENSIONS=1``;
``--repeat N`` runs N rounds over the variants and prints medians. On a machine shared with other work the
whole-gateway figures move by tens of percent between runs: the per-event costs are measured better by
``bench/micro/test_responses_bench.py``.
Everything listens on 127.0.0.1 only and stops by itself; a full run takes about
``repeat x 2 x 5 x (duration + 1)`` seconds plus start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import cpu_seconds, launch_mock, spawn, wait_http

MASTER = "sk-bench-master"
VARIANTS = (("chat", "/v1/chat/completions"), ("resp-native", "/v1/responses"),
            ("resp-translated", "/v1/responses"), ("msg-responses", "/v1/messages"), ("msg-chat", "/v1/messages"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(api_base: str) -> str:
    deps = [("chat", "openai/mock-model", ""), ("resp-native", "openai/mock-model", ""),
            ("resp-translated", "hosted_vllm/mock-model", ""), ("msg-chat", "openai/mock-model", ""),
            ("msg-responses", "openai/mock-model", "\n    model_info: {mode: responses}")]
    models = "".join(f"  - model_name: {name}\n    litellm_params: {{model: {model}, api_key: sk-up, "
                     f"api_base: \"{api_base}\"}}{extra}\n" for name, model, extra in deps)
    return f"model_list:\n{models}general_settings:\n  master_key: {MASTER}\n"


def body(name: str, path: str, stream: bool) -> bytes:
    if path == "/v1/responses":
        # store off: the bench measures the translation, not the stored-responses writes
        req: dict[str, Any] = {"model": name, "input": "hello", "max_output_tokens": 64, "store": False}
    elif path == "/v1/messages":
        req = {"model": name, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
    else:
        req = {"model": name, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64}
        if stream:
            req["stream_options"] = {"include_usage": True}
    if stream:
        req["stream"] = True
    return json.dumps(req).encode()


def measure(port: int, gw_pid: int, name: str, path: str, stream: bool, args: argparse.Namespace,
            tmp: Path) -> dict[str, float]:
    bfile = tmp / f"{name}-{int(stream)}.json"
    bfile.write_bytes(body(name, path, stream))
    out = tmp / f"{name}-{int(stream)}-out.json"
    base = [sys.executable, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}", "--path", path, "--model", name,
            "--api-key", MASTER, "--concurrency", str(args.concurrency), "--body-file", str(bfile), "--quiet",
            "--timeout", "10"]
    if stream:
        base += ["--stream"] + (["--no-check-body"] if path == "/v1/responses" else [])
    if shutil.which("taskset"):
        base = ["taskset", "-c", "1", *base]
    subprocess.run([*base, "--duration", "1"], check=True, timeout=60, stdout=subprocess.DEVNULL)
    before = cpu_seconds(gw_pid)
    subprocess.run([*base, "--duration", str(args.duration), "--json-out", str(out)], check=True,
                   timeout=args.duration + 60)
    cpu = cpu_seconds(gw_pid) - before
    res = json.loads(out.read_text())
    ok = int(res["ok"])
    return {"rps": float(res["throughput_rps"]), "ok": ok, "errors": int(res["error_count"]),
            "cpu_us": 1e6 * cpu / max(1, ok)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer")
    p.add_argument("--pure", action="store_true", help="the gateway without its compiled extension")
    p.add_argument("--only", default="stream,unary", help="stream, unary or both")
    p.add_argument("--variants", default=",".join(n for n, _ in VARIANTS))
    p.add_argument("--repeat", type=int, default=1, help="rounds over the variants; medians are printed")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 60 or not 1 <= args.concurrency <= 256 or not 1 <= args.repeat <= 10:
        p.error("--duration must be in (0, 60], --concurrency in 1..256 and --repeat in 1..10 (a shared machine)")
    tmp = Path(tempfile.mkdtemp(prefix="rg-responses-bench-"))
    mock = launch_mock(name="up", cpus="1", log_dir=tmp, chunks=args.chunks)
    cfg = tmp / "config.yaml"
    cfg.write_text(config(mock.openai_base))
    port = _free_port()
    env = {**os.environ, **({"RELAYGATE_NO_EXTENSIONS": "1"} if args.pure else {})}
    gw = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--log-level", "warning"], name="gw", cpus="0", env=env,
               log_dir=tmp)
    wanted = set(args.variants.split(","))
    try:
        wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
        print(f"gateway {'pure' if args.pure else 'compiled'}, {args.concurrency} concurrent, "
              f"{args.duration:g}s per variant, {args.chunks} chunks per stream", flush=True)
        for stream in [m == "stream" for m in args.only.split(",")]:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in VARIANTS if name in wanted}
            for _ in range(args.repeat):  # rounds interleave the variants: a noisy neighbour hits them alike
                for name, path in VARIANTS:
                    if name in wanted:
                        runs[name].append(measure(port, gw.pid, name, path, stream, args, tmp))
            base = statistics.median(r["cpu_us"] for r in runs["chat"]) if "chat" in runs else None
            for name, rs in runs.items():
                cpu, rps = statistics.median(r["cpu_us"] for r in rs), statistics.median(r["rps"] for r in rs)
                extra = ""
                if base is not None and name != "chat":
                    d = cpu - base
                    extra = f"  {d:+7.1f} us vs chat" + (f" ({d / args.chunks:+.2f} us/event)" if stream else "")
                print(f"{'stream' if stream else 'unary ':6s} {name:16s} {dict(VARIANTS)[name]:21s} {rps:8.0f} "
                      f"req/s  ok={sum(int(r['ok']) for r in rs):<6d} errors={sum(int(r['errors']) for r in rs):<3d}"
                      f" gateway CPU {cpu:6.1f} us/req{extra}", flush=True)
    finally:
        gw.stop()
        mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
