"""What the response cache costs and saves: a hit vs a miss vs no cache, on one core.

    python -m bench.scenarios_cache [--duration 4] [--concurrency 16] [--repeat 3] [--words 150] [--together]
                                    [--out DIR]

A zero-latency mock upstream (``bench.mock``) on CPU 1 answers chat completions of ``--words`` words (150:
about a 1 KB answer); two one-worker gateways on CPU 0 serve the same model, one without a cache (**off**)
and one with ``litellm_settings.cache: true`` (the per-worker memory cache). Each round measures, with
``bench.load`` closed loop on CPU 1:

- **off**: the uncached gateway, requests rotating over distinct prompts;
- **miss**: the cached gateway with distinct prompts never asked before (a 0% hit rate: every request is
  looked up, goes upstream and is stored);
- **hit**: the cached gateway asked one prompt it already holds (a 100% hit rate: no upstream call).

It prints requests/s and the gateway's CPU microseconds per request (from ``/proc``; per round also the kernel's
part of it and the minor page faults a request, which a cache that grows towards ``max_bytes`` takes), per round
and the medians, and the ratios the issue names: hit vs miss throughput, miss vs off throughput (the price of a
cache that never hits). Rounds alternate the order of the three so a noisy neighbour hits them alike.

``--together`` runs the three at the same time instead, each on its own gateway (a second cached gateway
serves the hits), all three on CPU 0: they share the same seconds, so the machine's drift (req/s swings 2x
within an hour here) cancels out of their ratios. One core's throughput for a mode is then 1 / its CPU per
request, so the ratios are taken from CPU per request (hit vs miss = miss CPU / hit CPU); the raw req/s
of a round only shows how the scheduler shared the core.
``--modes`` picks the modes (default ``off,miss,hit``) and can add three that take a miss apart, each a
cached gateway started with a ``sitecustomize`` of the bench first on its ``PYTHONPATH`` (``bench/stubs``):

- **miss-nolookup**: the cache configured, its lookup returning None at once (no key, no state, nothing
  stored): against **off**, what having a cache configured costs a request before it does anything;
- **miss-rawkey**: a miss whose key is the SHA-256 of the body's bytes (no decoding, no canonical form):
  against **miss**, what the key costs;
- **miss-nostore**: a miss whose answer is not stored: against **miss**, what the store costs.
- **miss-s3**: a miss with ``type: s3`` (the memory level and a bucket served by ``bench.s3stub`` on CPU 1,
  which keeps connections open as S3 does): every request a signed ``GET`` that finds nothing and a signed
  ``PUT``; against **miss**, what the S3 level costs the gateway's CPU (its time waiting on S3 is not CPU).

- **floor**: not a gateway: ``bench.peers.rawproxy --hello --answer`` (a bare ASGI app on Granian, served
  as ``relaygate serve`` serves the gateway) answering every request with the status, headers and body the
  hit gateway answered the hit mode's request with (captured once before the rounds; needs ``hit``). The
  least any app on this server spends on such an answer: the hit's CPU over the floor's is what the cache
  itself costs, the floor is what the machine and Granian cost at this moment (it moves with the machine).

Each of them is printed with its CPU per request against off's (a share of off's throughput, from CPU per
request, with ``--together``). Every mode but off and miss gets a gateway of its own (with ``--together``
the hit gateway too).
``--baseline DIR`` (with ``--together``) measures a change: ``miss`` and ``hit`` also run from the relaygate
tree in ``DIR`` (a built worktree of the commit before it, ``bench.baseline``), as ``miss@base`` and
``hit@base``, in the same rounds; the end prints each one's share of off against its baseline's, per round and
the median difference in points.
Everything listens on 127.0.0.1 and stops by itself; a run takes about ``repeat x modes x (duration + 1)``
seconds plus start-up (one ``repeat x (duration + 1)`` with ``--together``).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.baseline import BASE, baseline_env, baseline_lines, baseline_problem
from bench.procs import (
    REPO_ROOT,
    Proc,
    cpu_seconds,
    kernel_share,
    launch_mock,
    spawn,
    thread_cpu_seconds,
    threads_per_request,
    threads_text,
    wait_http,
)

MASTER = "sk-bench-master"
MODES = ("off", "miss", "hit", "miss-nolookup", "miss-rawkey", "miss-nostore", "miss-s3", "floor")
"""Every mode ``--modes`` takes (see the module docstring)."""
STUBS = {"miss-nolookup": REPO_ROOT / "bench" / "stubs" / "cache_nolookup",
         "miss-rawkey": REPO_ROOT / "bench" / "stubs" / "cache_rawkey",
         "miss-nostore": REPO_ROOT / "bench" / "stubs" / "cache_nostore"}
"""Modes whose gateway starts with a ``sitecustomize`` of the bench first on its ``PYTHONPATH``."""


def gateway_of(mode: str, together: bool) -> str:
    """The gateway a mode is measured on: off's, the cached one (miss, and hit one after the other), or its
    own (every other mode; hit too with ``--together``, so that its stored prompt is not asked at once with
    misses on the same gateway)."""
    if mode in ("off", "miss") or (mode == "hit" and not together):
        return "off" if mode == "off" else "cached"
    return mode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(api_base: str, cache: bool, s3: str | None = None) -> str:
    """A gateway's config: no cache, the memory cache, or (``s3``: moto's URL) an S3 cache in bucket ``bench``."""
    text = (f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/mock-model, api_key: sk-up, "
            f"api_base: \"{api_base}\"}}\ngeneral_settings:\n  master_key: {MASTER}\n"
            "relaygate_settings:\n  embedded_database: false\n")
    if s3 is not None:
        text += ("litellm_settings:\n  cache: true\n  cache_params: {type: s3, ttl: 600, s3_bucket_name: bench, "
                 f"s3_endpoint_url: \"{s3}\", s3_region_name: us-east-1, s3_aws_access_key_id: AKIDBENCH, "
                 "s3_aws_secret_access_key: bench-secret}\n")
    elif cache:
        text += "litellm_settings:\n  cache: true\n  cache_params: {type: local, ttl: 600}\n"
    return text


def start_s3(tmp: Path, env: dict[str, str]) -> tuple[str, Proc]:
    """``bench.s3stub`` on CPU 1 (a keep-alive server answering as an empty bucket does; moto's server closes
    every connection, which real S3 does not); its URL and process."""
    port = _free_port()
    proc = spawn([sys.executable, "-m", "bench.s3stub", "--port", str(port)], name="s3stub", cpus="1", env=env,
                 log_dir=tmp, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/bench", 30, proc)
    return url, proc


_DROPPED = frozenset({"content-length", "date", "server", "connection", "keep-alive", "transfer-encoding"})
"""Response headers the floor does not replay: the server's own, and the length (``read_answer`` sets it)."""


def load_args(port: int, concurrency: int) -> list[str]:
    """``bench.load``'s arguments for a mode's requests to ``port`` (``--vary`` and the duration apart)."""
    return ["--url", f"http://127.0.0.1:{port}", "--model", "m", "--api-key", MASTER, "--concurrency",
            str(concurrency), "--quiet", "--timeout", "10"]


def capture_hit(port: int, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Ask the gateway on ``port`` the hit mode's request twice (the second is a hit) and write its answer to
    ``path`` in ``bench.peers.rawproxy``'s answer format; returns it."""
    import http.client

    from bench import load

    spec = load.spec_from_args(load.build_parser().parse_args(load_args(port, args.concurrency)))
    raw, _ = load.build_request(spec)
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    answer: dict[str, Any] = {}
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", spec.path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode()
            answer = {"status": resp.status, "body": text,
                      "headers": [[k.lower(), v] for k, v in resp.getheaders() if k.lower() not in _DROPPED]}
        finally:
            conn.close()
    if answer["status"] != 200:
        raise RuntimeError(f"the hit gateway answered {answer['status']}: {answer['body'][:200]}")
    path.write_text(json.dumps(answer))
    return answer


def measure(port: int, gw: Proc, args: argparse.Namespace, vary: int, seed: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"out-{port}-{seed}.json"
    base = [sys.executable, "-m", "bench.load", *load_args(port, args.concurrency)]
    if shutil.which("taskset"):
        base = ["taskset", "-c", "1", *base]
    warm = [*base, "--vary", str(vary), "--vary-seed", seed + "w"] if vary else base
    subprocess.run([*warm, "--duration", "1"], check=True, timeout=60, stdout=subprocess.DEVNULL)  # warm-up
    if vary:  # measured on prompts the warm-up did not ask
        base += ["--vary", str(vary), "--vary-seed", seed]
    before, threads, kernel = cpu_seconds(gw.pid), thread_cpu_seconds(gw.pid), kernel_share(gw.pid)
    subprocess.run([*base, "--duration", str(args.duration), "--json-out", str(out)], check=True,
                   timeout=args.duration + 60)
    cpu = cpu_seconds(gw.pid) - before
    after = thread_cpu_seconds(gw.pid)
    sys_after, faults_after = kernel_share(gw.pid)
    res = json.loads(out.read_text())
    ok = int(res["ok"])
    return {"rps": float(res["throughput_rps"]), "ok": ok, "errors": int(res["error_count"]),
            "cpu_us": 1e6 * cpu / max(1, ok),
            "sys_us": 1e6 * (sys_after - kernel[0]) / max(1, ok),  # of cpu_us, the kernel's
            "faults": (faults_after - kernel[1]) / max(1, ok),  # minor page faults a request
            # where the CPU went: the gateway's threads that spent at least 1 us a request
            "threads_us_per_req": threads_per_request(threads, after, ok)}


def share_of_off(med: dict[str, tuple[float, float]], mode: str, together: bool) -> tuple[float, float]:
    """(``mode``'s throughput as a share of off's, its CPU per request against off's): the throughput from CPU
    per request when the modes shared the core's seconds, from req/s when they ran one after the other."""
    cpu = med[mode][1] / med["off"][1]
    return (1 / cpu if together else med[mode][0] / med["off"][0]), cpu


def _ratios(med: dict[str, tuple[float, float]], together: bool) -> tuple[float, float, float]:
    """(hit vs miss throughput, miss vs off throughput, miss vs off CPU per request): from req/s when the
    modes ran one after the other, from CPU per request when they shared the core's seconds."""
    cpu = med["miss"][1] / med["off"][1]
    if together:
        return med["miss"][1] / med["hit"][1], 1 / cpu, cpu
    return med["hit"][0] / med["miss"][0], med["miss"][0] / med["off"][0], cpu


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"modes: a comma-separated list of distinct modes of {', '.join(MODES)}")
    return modes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--words", type=int, default=150, help="answer length in words (150: ~1 KB)")
    p.add_argument("--pure", action="store_true", help="the gateways without their compiled extension")
    p.add_argument("--together", action="store_true",
                   help="load every mode at the same time, each on its own gateway (shared seconds)")
    p.add_argument("--modes", type=_modes, default=["off", "miss", "hit"],
                   help=f"comma-separated, of {', '.join(MODES)} (default off,miss,hit)")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="also run miss and hit from the relaygate tree in DIR (a built worktree of an older "
                        "commit) and compare; needs --together")
    p.add_argument("--out", help="also write the runs and medians to DIR/cache-latest.json")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 60 or not 1 <= args.concurrency <= 256 or not 1 <= args.repeat <= 10:
        p.error("--duration must be in (0, 60], --concurrency in 1..256 and --repeat in 1..10 (a shared machine)")
    modes: list[str] = args.modes
    if "off" not in modes:
        p.error("--modes must include off: every ratio is against it")
    if "floor" in modes and "hit" not in modes:
        p.error("--modes: floor replays the hit gateway's answer: add hit")
    tree: Path | None = None
    if args.baseline is not None:
        if not args.together:
            p.error("--baseline compares shares of off in the same seconds: add --together")
        tree = args.baseline.resolve()
        problem = baseline_problem(tree)
        if problem:
            p.error(problem)
        modes = modes + [m + BASE for m in modes if m in ("miss", "hit")]
    tmp = Path(tempfile.mkdtemp(prefix="rg-cache-bench-"))
    mock = launch_mock(name="up", cpus="1", log_dir=tmp, response_tokens=args.words)
    env = {**os.environ, **({"RELAYGATE_NO_EXTENSIONS": "1"} if args.pure else {})}
    gws: dict[str, tuple[int, Proc]] = {}
    # distinct prompts enough for the whole run of one mode: throughput x duration, generously
    vary = 60_000
    where = {m: gateway_of(m, args.together) for m in modes}
    moto: Proc | None = None
    try:
        s3_url = None
        if "miss-s3" in modes:
            s3_url, moto = start_s3(tmp, env)
        for name in dict.fromkeys(where.values()):
            if name == "floor":
                continue  # started below, from the hit gateway's answer
            cfg = tmp / f"{name}.yaml"
            cfg.write_text(config(mock.openai_base, name != "off", s3_url if name == "miss-s3" else None))
            port = _free_port()
            gw_env, cwd = env, None
            if name.endswith(BASE) and tree is not None:
                gw_env, cwd = baseline_env(env, tree), tree
            elif name in STUBS:
                gw_env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(STUBS[name]), env.get("PYTHONPATH", ""))
                                                               if p)}
            gw = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1", "--log-level", "warning"], name=f"gw-{name}",
                       cpus="0", env=gw_env, log_dir=tmp, cwd=cwd)
            gws[name] = (port, gw)
            wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
        if "floor" in modes:
            answer = capture_hit(gws[where["hit"]][0], args, tmp / "floor-answer.json")
            port = _free_port()
            gw = spawn([sys.executable, "-m", "bench.peers.rawproxy", "--port", str(port), "--hello", "--answer",
                        str(tmp / "floor-answer.json")], name="floor", cpus="0", env=env, log_dir=tmp, cwd=REPO_ROOT)
            gws["floor"] = (port, gw)
            wait_http(f"http://127.0.0.1:{port}/health/readiness", 30, gw)
            print(f"floor: Granian answering the hit's {len(answer['headers'])} headers and "
                  f"{len(answer['body'].encode())}-byte body", flush=True)
        print(f"gateways {'pure' if args.pure else 'compiled'}, {args.concurrency} concurrent, {args.duration:g}s "
              f"per mode, answers of {args.words} words", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        shares: dict[str, list[float]] = {m: [] for m in modes if m != "off"}
        """Each round's share of off (off's CPU per request / the mode's), with --together."""
        for r in range(args.repeat):
            order = modes if r % 2 == 0 else modes[::-1]

            def one(mode: str, r: int = r) -> dict[str, Any]:
                port, gw = gws[where[mode]]
                fixed = mode.removesuffix(BASE) in ("hit", "floor")
                return measure(port, gw, args, 0 if fixed else vary, f"r{r}{mode}", tmp)

            if args.together:  # the hit gateway was warmed by its own warm-up second: its prompt is stored
                with ThreadPoolExecutor(len(order)) as ex:
                    results = dict(zip(order, ex.map(one, order), strict=True))
            else:
                results = {mode: one(mode) for mode in order}
            for mode in order:
                res = results[mode]
                runs[mode].append(res)
                if args.together and mode != "off":
                    shares[mode].append(results["off"]["cpu_us"] / res["cpu_us"])
                print(f"round {r + 1} {mode:13s} {res['rps']:8.0f} req/s  errors={int(res['errors'])}  "
                      f"gateway CPU {res['cpu_us']:6.1f} us/req (sys {res['sys_us']:5.1f}, "
                      f"{res['faults']:.2f} faults)  threads {threads_text(res['threads_us_per_req'])}",
                      flush=True)
        med = {m: (statistics.median(x["rps"] for x in rs), statistics.median(x["cpu_us"] for x in rs))
               for m, rs in runs.items()}
        for m, (rps, cpu) in med.items():
            print(f"median {m:13s} {rps:8.0f} req/s  gateway CPU {cpu:6.1f} us/req", flush=True)
        basis = "from CPU per request, the modes loaded together" if args.together else "from req/s"
        ratios: dict[str, Any] = {}
        if "miss" in med and "hit" in med:
            hit_miss, miss_off, miss_cpu = _ratios(med, args.together)
            ratios = {"hit_vs_miss": round(hit_miss, 3), "miss_vs_off": round(miss_off, 4),
                      "miss_vs_off_cpu": round(miss_cpu, 4)}
            print(f"hit vs miss throughput {hit_miss:.2f}x; miss (0% hits) vs off {100 * miss_off:.1f}% throughput, "
                  f"{100 * miss_cpu:.1f}% CPU per request ({basis})", flush=True)
        if "floor" in med:
            over = med["hit"][1] - med["floor"][1]
            ratios["hit_over_floor_us"] = round(over, 1)
            print(f"hit over floor: {over:.1f} us/req of gateway CPU (hit {med['hit'][1]:.1f}, floor "
                  f"{med['floor'][1]:.1f}: the bare server answering the same bytes)", flush=True)
        vs_off = {m: share_of_off(med, m, args.together) for m in modes
                  if m.removesuffix(BASE) not in ("off", "hit", "floor")}
        for m, (share, cpu) in vs_off.items():
            if m != "miss" or not ratios:
                print(f"{m} vs off {100 * share:.1f}% throughput, {100 * cpu:.1f}% CPU per request ({basis})",
                      flush=True)
        if tree is not None:
            for line in baseline_lines(modes, shares, tree):
                print(line, flush=True)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "cache-latest.json").write_text(json.dumps({
                "command": "python -m bench.scenarios_cache " + " ".join(argv if argv is not None else sys.argv[1:]),
                "together": args.together, "modes": modes, "runs": runs,
                "median": {m: {"rps": v[0], "cpu_us": v[1]} for m, v in med.items()}, **ratios,
                "vs_off": {m: {"throughput": round(v[0], 4), "cpu": round(v[1], 4)} for m, v in vs_off.items()},
                "shares_per_round": shares, "baseline": str(tree) if tree is not None else None},
                indent=1))
    finally:
        for _, gw in gws.values():
            gw.stop()
        mock.stop()
        if moto is not None:
            moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
