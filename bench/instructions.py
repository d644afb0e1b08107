"""What a feature costs a request in instructions and cache misses, counted by cachegrind: exact and repeatable.

    python -m bench.instructions [--modes cache:off,cache:miss,observe:all] [--requests 400,1600] [--top 12]
                                 [--tree DIR] [--out DIR]

The timed benches (``scenarios_cache``, ``scenarios_observe``) judge the issues' bars, but on this shared machine
their comparisons resolve about 2 points of CPU per request: a change worth one point cannot be told from noise.
This one counts instead of timing. Each mode's gateway runs in one process under valgrind's ``cachegrind``
(instructions executed, and the misses of a simulated 32 KiB L1i, 32 KiB L1d and a 1 MiB last level: this
machine's L1s and its per-core L2; the L3 is shared with other tenants and left out), serving its requests
through the real ASGI app, the real HTTP/1.1 transport and a real ``bench.mock`` upstream on loopback (no
Granian: its Rust and the kernel's socket work are the same for every mode). It runs twice, with
``--requests`` N1 and N2 requests, and the figures are (run N2 - run N1) / (N2 - N1): start-up, imports and the
exporters' first batches cancel out, and what is left is one request's share. The same mode counted twice
agrees to ~0.1% (the timed benches: ~2 points).

Modes are ``kind:name``: ``cache:`` the response cache bench's gateways (``off``; ``miss``, every prompt new;
``hit``, one prompt asked again and again; ``miss-nolookup``, ``miss-rawkey``, ``miss-nostore``: its stubs,
``bench/stubs/``), ``observe:`` the exporter bench's (``off``, ``all`` for Langfuse + OTel + Prometheus + JSON
logs, or one callback name), with a receiver standing in for Langfuse and the OTLP collector, and ``spend:``
the spend bench's (``off``: no spend tracking, no prices, no budgets; ``on``: every request priced, its key's,
team's and user's budgets checked and counted, its spend row written to SQLite; ``on-nowrite``, ``on-norollup``,
``on-nosql``: its stubs), over a SQLite file filled afresh for each run with ``SPEND_KEYS`` keys (half in
10 teams, half owned by 100 users; budgets on every row for the ``on`` modes) and requests round robin over
them. Each mode is compared with the first mode of its kind. ``--top K`` also lists the K functions (C and the
interpreter's, as cachegrind names them) whose instructions grew most against that first mode, per request.
Since counts do not drift, a change is judged by two invocations, one with ``--tree`` naming a built worktree of
the commit before it (its ``src`` is put first on the gateway's ``PYTHONPATH``, as ``--baseline`` does for the
timed benches).

Read the counts as what they are: instructions are not time. Misses cost more than instructions do, and the
serving worker's caches are shared with Granian, the kernel and the other gateways of a ``--together`` run, so
a request's microseconds follow these counts, not in proportion to any one of them. Two further differences
from the serving worker: under valgrind the CPU does not report its SHA instructions, so ``core.sha`` runs
CPython's own SHA-256 (~6,000 instructions a digest more than the worker spends), and every thread of the
process is counted (the OTel exporter's). Batches closed by time hold fewer records than under load: the
exporters' are closed by size here (:func:`observe_env`), but JSON request lines, gathered for 50 ms, are
written a few at a time, which overstates ``json_logs`` per request; spend rows, written once a second under
load (thousands a transaction), are written here in one transaction at the end of the run
(``proxy_batch_write_at: 600``), whose fixed part the two runs' difference takes out. Needs ``valgrind``
(Debian's package).
Results: ``<out>/<UTC stamp>-instructions.json`` and ``.md``. Every process listens on 127.0.0.1 and stops by
itself; a mode takes about a minute per thousand requests.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.baseline import baseline_env, baseline_problem
from bench.procs import launch_mock, spawn
from bench.systems import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHES = "--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"
"""This machine's L1i and L1d per core and its per-core L2 as cachegrind's last level (``lscpu``)."""
CONCURRENCY = 8
"""Requests in flight at once in the driver (each batch of this many is gathered)."""
EVENTS = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


def observe_env(receiver_port: int) -> dict[str, str]:
    """The exporters' destinations: the bench receiver (as ``bench.scenarios_observe`` sets them); and their
    batches closed by size, not by time. Under valgrind a request takes ~100x longer, so a batch closed after
    Langfuse's 1 s or OTel's 5 s would hold far fewer records than the loaded worker's, which fill by size
    first (100 records a Langfuse POST, 512 spans an OTLP export), and each record would be charged for a
    larger share of a POST."""
    base = f"http://127.0.0.1:{receiver_port}"
    return {"LANGFUSE_PUBLIC_KEY": "pk-lf-bench", "LANGFUSE_SECRET_KEY": "sk-lf-bench", "LANGFUSE_HOST": base,
            "OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_SERVICE_NAME": "relaygate-bench",
            "LANGFUSE_FLUSH_INTERVAL": "60", "OTEL_BSP_SCHEDULE_DELAY": "60000"}


SPEND_KEYS = 100
"""Virtual keys in a ``spend:`` mode's database, every one of them used (round robin)."""
KINDS = ("cache", "observe", "spend")


def spend_keys() -> list[str]:
    """The ``spend:`` modes' keys (the same in every run, so both runs' key look-ups are alike)."""
    return [f"sk-instructions-{i:04d}" for i in range(SPEND_KEYS)]


def spend_database(tmp: Path, mode: str, n: int) -> str:
    """A fresh SQLite file for one run of a ``spend:`` mode, filled as ``bench.scenarios_spend`` fills it."""
    from bench.scenarios_spend import MODES, _fill
    path = tmp / f"spend-{mode}-{n}.db"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    asyncio.run(_fill(url, spend_keys(), MODES[mode][0]))
    return url


def config_text(kind: str, mode: str, upstream: str, receiver: str) -> str:
    """The gateway config of ``kind:mode``: the timed bench's own (``spend:``'s with ``receiver`` its database
    URL and its spend rows written once, at the end)."""
    if kind == "spend":
        from bench.scenarios_spend import _config
        port = int(upstream.rsplit(":", 1)[1].split("/", 1)[0])
        with tempfile.TemporaryDirectory() as tmp:
            text = _config(Path(tmp), mode, port, receiver).read_text()
        return text.replace("general_settings:\n", "general_settings:\n  proxy_batch_write_at: 600\n", 1)
    if kind == "cache":
        from bench.scenarios_cache import config
        return config(upstream, mode != "off")
    from bench.scenarios_observe import config as observe_config
    from bench.scenarios_observe import mode_names
    return observe_config(upstream, mode_names(mode), receiver)


def stub_of(kind: str, mode: str) -> Path | None:
    """A cache or spend mode's ``sitecustomize`` stub directory (``bench/stubs/``), if it has one."""
    if kind == "spend":
        from bench.scenarios_spend import _STUBS
        return _STUBS.get(mode)
    if kind != "cache":
        return None
    from bench.scenarios_cache import STUBS
    return STUBS.get(mode)


def drive(kind: str, mode: str, n: int, upstream: str, receiver: str) -> int:
    """Serve ``n`` chat requests through an in-process gateway of ``kind:mode`` (the process cachegrind counts);
    ``receiver``: the exporters' receiver, or a ``spend:`` mode's database URL."""
    stub = stub_of(kind, mode)
    if stub is not None:  # the stub patches its module before the gateway is built, as its sitecustomize does
        spec = importlib.util.spec_from_file_location("bench_stub", stub / "sitecustomize.py")
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    import orjson
    import uvloop
    import yaml

    from bench.scenarios_cache import MASTER
    from relaygate.asgi import Gateway
    from relaygate.config import from_litellm

    gateway = Gateway(from_litellm(yaml.safe_load(config_text(kind, mode, upstream, receiver)), "<instructions>"))
    model = "m"
    keys = [MASTER]
    if kind == "spend":
        from bench.systems import MODEL
        model, keys = MODEL, spend_keys()
    auth = [b"Bearer " + k.encode() for k in keys]
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"user-agent", b"bench-instructions")]
    tag = f"{os.getpid()}-{n}"
    failed: list[Any] = []

    async def one(i: int) -> None:
        prompt = "Say hello to the benchmark" if mode == "hit" else f"Say hello to the benchmark #{tag}-{i}"
        body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]})
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "headers": [*headers, (b"authorization", auth[i % len(auth)]),
                                                  (b"content-length", str(len(body)).encode())],
                 "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 50000)}
        inbox = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if inbox:
                return inbox.pop()
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gateway(scope, receive, send)
        if not sent or sent[0].get("status") != 200:
            failed.append(sent[:2])

    async def main() -> None:
        await gateway.startup()  # as the server's lifespan does: the sinks, exporters and sweeps started
        if mode == "hit":  # stored before the first batch asks for it (its requests are in flight together)
            await one(-1)
        for start in range(0, n, CONCURRENCY):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + CONCURRENCY))))
        await gateway.shutdown()  # every record handed to every sink and exported (the same close in both runs)

    uvloop.run(main())
    if failed:
        print(f"{len(failed)} of {n} requests failed, the first: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def read_counts(path: Path) -> tuple[dict[str, int], dict[tuple[str, str], list[int]]]:
    """A cachegrind out file: its summary by event, and each (file, function)'s counts (``EVENTS`` order)."""
    events: list[str] = []
    summary: dict[str, int] = {}
    per_fn: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(EVENTS))
    fl = fn = ""
    index: list[int] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
            index = [events.index(e) for e in EVENTS]
        elif line.startswith("fl="):
            fl = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("summary:"):
            summary = dict(zip(events, map(int, line.split()[1:]), strict=True))
        elif line[:1].isdigit():
            values = line.split()[1:]
            acc = per_fn[(fl, fn)]
            for k, i in enumerate(index):
                if i < len(values):
                    acc[k] += int(values[i])
    return summary, dict(per_fn)


def per_request(small: dict[str, int], large: dict[str, int], span: int) -> dict[str, float]:
    """One request's share of each event: the two runs' difference over their difference in requests."""
    return {e: (large.get(e, 0) - small.get(e, 0)) / span for e in EVENTS}


def grown(base: tuple[dict[Any, list[int]], dict[Any, list[int]]],
          mode: tuple[dict[Any, list[int]], dict[Any, list[int]]], span: int, top: int) -> list[dict[str, Any]]:
    """The ``top`` functions whose instructions a request grew most in ``mode`` against ``base`` (each a
    (run N1, run N2) pair of per-function counts)."""
    def share(pair: tuple[dict[Any, list[int]], dict[Any, list[int]]], key: Any) -> list[float]:
        a, b = pair[0].get(key, [0] * len(EVENTS)), pair[1].get(key, [0] * len(EVENTS))
        return [(y - x) / span for x, y in zip(a, b, strict=True)]

    keys = set(base[0]) | set(base[1]) | set(mode[0]) | set(mode[1])
    rows = []
    for key in keys:
        m, b = share(mode, key), share(base, key)
        d = [x - y for x, y in zip(m, b, strict=True)]
        if d[0]:
            rows.append({"file": key[0], "function": key[1],
                         **{e: round(v, 1) for e, v in zip(EVENTS, d, strict=True)}})
    rows.sort(key=lambda r: -r["Ir"])
    return rows[:top]


def count(kind: str, mode: str, n: int, upstream: str, receiver_port: int, tmp: Path, tree: Path | None = None) -> Path:
    """One cachegrind run of ``n`` requests (the gateway's package from ``tree``'s ``src`` when given); the out
    file."""
    out = tmp / f"{kind}-{mode}-{n}.cg"
    target = spend_database(tmp, mode, n) if kind == "spend" else f"http://127.0.0.1:{receiver_port}"
    # a fixed hash seed: with a random one, start-up's dict probes vary by millions of instructions between runs
    env = {**os.environ, **observe_env(receiver_port), "PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "0"}
    if tree is not None:
        env = baseline_env(env, tree)
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", *CACHES, f"--cachegrind-out-file={out}",
            sys.executable, "-m", "bench.instructions", "--drive", kind, mode, str(n), upstream, target]
    with open(tmp / f"{kind}-{mode}-{n}.log", "wb") as log:
        done = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1800, cwd=REPO_ROOT)
    if done.returncode != 0 or not out.exists():
        tail = (tmp / f"{kind}-{mode}-{n}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{kind}:{mode} with {n} requests failed under cachegrind:\n{tail}")
    return out


def render(rows: list[dict[str, Any]], tops: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [f"# Instructions and simulated cache misses per request ({args.requests[0]} and {args.requests[1]} "
             "requests, cachegrind)", "",
             "| mode | instructions | I1 misses | D1 misses | LL misses | vs its kind's first: instructions | "
             "I1 misses | D1 misses |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['Ir']:,.0f} | {r['I1']:,.0f} | {r['D1']:,.0f} | {r['LL']:,.0f} | "
                     f"{r['d_Ir']:+,.0f} ({r['d_Ir_pct']:+.1f}%) | {r['d_I1']:+,.0f} | {r['d_D1']:+,.0f} |")
    for mode, top in tops.items():
        lines += ["", f"## {mode}: the functions that grew most, per request", "",
                  "| instructions | I1 misses | D1 misses | function |", "|---|---|---|---|"]
        for t in top:
            where = t["file"].rsplit("/", 1)[-1]
            lines.append(f"| {t['Ir']:+,.0f} | {t['I1mr']:+,.0f} | {t['D1mr'] + t['D1mw']:+,.0f} | "
                         f"`{where}:{t['function']}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="cache:off,cache:miss,observe:off,observe:all")
    p.add_argument("--requests", default="400,1600", help="N1,N2: the two runs' requests (N2 > N1)")
    p.add_argument("--top", type=int, default=0, help="list this many functions that grew most per mode")
    p.add_argument("--out", type=Path, default=None, help="write <stamp>-instructions.json/.md here")
    p.add_argument("--tree", type=Path, default=None,
                   help="count the gateway of this built relaygate tree (an older commit's worktree) instead")
    p.add_argument("--drive", nargs=5, metavar=("KIND", "MODE", "N", "UPSTREAM", "TARGET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.drive:
        kind, mode, n, upstream, receiver = args.drive
        return drive(kind, mode, int(n), upstream, receiver)
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    n1, n2 = (int(x) for x in args.requests.split(","))
    if not 0 < n1 < n2:
        p.error("--requests: two counts, the first smaller")
    args.requests = (n1, n2)
    modes = [tuple(m.split(":", 1)) for m in args.modes.split(",") if m]
    for m in modes:
        if len(m) != 2 or m[0] not in KINDS:
            p.error(f"--modes: {':'.join(m)!r} is not cache:<mode>, observe:<mode> or spend:<mode>")
    if args.tree is not None and (problem := baseline_problem(args.tree.resolve())) is not None:
        p.error(problem.replace("--baseline", "--tree"))
    tree = args.tree.resolve() if args.tree is not None else None
    tmp = Path(tempfile.mkdtemp(prefix="rg-instructions-"))
    mock = launch_mock(name="up", log_dir=tmp, response_tokens=150)
    rport = free_port()
    recv = spawn([sys.executable, "-m", "bench.scenarios_observe", "--receiver", str(rport)], name="receiver",
                 log_dir=tmp, cwd=REPO_ROOT)
    rows: list[dict[str, Any]] = []
    tops: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, tuple[dict[str, float], Any]] = {}
    try:
        for kind, mode in modes:
            files = [count(kind, mode, n, mock.openai_base, rport, tmp, tree) for n in (n1, n2)]
            (s1, f1), (s2, f2) = read_counts(files[0]), read_counts(files[1])
            pr = per_request(s1, s2, n2 - n1)
            is_first = kind not in first
            base = first.setdefault(kind, (pr, (f1, f2)))
            row: dict[str, Any] = {
                "mode": f"{kind}:{mode}", "Ir": pr["Ir"], "I1": pr["I1mr"], "D1": pr["D1mr"] + pr["D1mw"],
                "LL": pr["ILmr"] + pr["DLmr"] + pr["DLmw"], "d_Ir": pr["Ir"] - base[0]["Ir"],
                "d_Ir_pct": 100 * (pr["Ir"] / base[0]["Ir"] - 1), "d_I1": pr["I1mr"] - base[0]["I1mr"],
                "d_D1": pr["D1mr"] + pr["D1mw"] - base[0]["D1mr"] - base[0]["D1mw"]}
            rows.append(row)
            print(f"{row['mode']:24s} {row['Ir']:10,.0f} instructions  I1 misses {row['I1']:7,.0f}  "
                  f"D1 misses {row['D1']:7,.0f}  LL misses {row['LL']:6,.0f}  vs first {row['d_Ir']:+10,.0f} "
                  f"({row['d_Ir_pct']:+.1f}%)", flush=True)
            if args.top and not is_first:
                tops[row["mode"]] = grown(base[1], (f1, f2), n2 - n1, args.top)
    finally:
        mock.stop()
        recv.stop()
    text = render(rows, tops, args)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (args.out / f"{stamp}-instructions.json").write_text(json.dumps({"rows": rows, "top": tops,
                                                                         "requests": [n1, n2]}, indent=2))
        (args.out / f"{stamp}-instructions.md").write_text(text)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
