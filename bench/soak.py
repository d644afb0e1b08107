"""A soak: minutes of mixed traffic on a 2-worker governed gateway, RSS per worker over time.

    python -m bench.soak [--minutes 10] [--workers 2] [--sample-s 10] [--out bench/results]

One mock upstream (20-chunk streams 10 ms apart, 0.5% of answers a 500) and one ``relaygate serve
--workers 2`` started from the governed lane's setup (``bench.lanes``: SQLite virtual keys in teams and
owned by users with budgets, rpm/tpm limits, a priced model, spend logs, Prometheus, JSON logs) with the
local response cache on (entries live ``--cache-ttl`` seconds, 60 by default). For ``--minutes`` it
runs, at once and open loop (fixed rates, so the load is the same from the first minute to the last):

- chat with distinct prompts (cache misses) on one virtual key;
- chat with one repeated prompt (cache hits) over 200 virtual keys;
- 20-chunk streams over the same keys;
- a bad key (401s) — and the mock's 500s, which the gateway retries or passes on;
- disconnects: a client that starts a stream, reads its first bytes and hangs up.

Every ``--sample-s`` seconds the RSS of each gateway process (the supervisor and each worker) is recorded;
the result has the curves, each process's growth over the last half of the run (MiB/min, least squares,
``bench.figures``), RSS 10 s after the load stops, what every traffic kind got (answers, errors by kind)
and the gateway log's error lines. Results: ``<out>/<UTC stamp>-soak.{json,md,png}`` and ``soak-latest.*``.
On a 2-core machine the gateway's workers share the cores with the mock and the load generators (stated
in the result): the figure of interest is the memory curve, not the throughput.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import figures
from bench.lanerun import RssSampler, loopback_rtt_us
from bench.lanes import GOVERNED_ACTIVE, Lane, governed_keys, write_lane_config
from bench.procs import REPO_ROOT, Proc, launch_mock, spawn, wait_http
from bench.report import _f
from bench.systems import MODEL, free_port

__all__ = ["main", "TRAFFIC"]

SOAK_LANE = Lane("soak", "soak: governed + cache", governed=True, cached=True)
#: name -> (bench.load arguments, requests per second)
TRAFFIC: dict[str, tuple[list[str], float]] = {
    "chat_miss": (["--vary", "100000", "--vary-seed", "soak"], 150.0),  # one key: --vary takes no key file
    "chat_hit": ([], 100.0),
    "stream": (["--stream"], 25.0),
    "bad_key": (["--api-key", "sk-not-a-key"], 10.0),
}


def _disconnector(port: int, key: str, stop: threading.Event, counts: dict[str, int], interval: float = 0.2) -> None:
    """Start a stream, read its first bytes, hang up; every ``interval`` s until ``stop``."""
    body = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode()
    while not stop.wait(interval):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(head + body)
                s.recv(256)
            counts["disconnects"] += 1
        except OSError:
            counts["disconnect_failures"] += 1


def _load_argv(url: str, key_file: Path, extra: list[str], rate: float, seconds: float, out: Path,
               cpus: str | None) -> list[str]:
    argv = [sys.executable, "-m", "bench.load", "--url", url, "--model", MODEL, "--api-key-file", str(key_file),
            "--rate", str(rate), "--duration", str(seconds), "--timeout", "30", "--max-connections", "128",
            "--json-out", str(out), "--quiet", *extra]
    if "--api-key" in extra or "--vary" in extra:
        argv.remove("--api-key-file")
        argv.remove(str(key_file))
        if "--api-key" not in extra:
            argv += ["--api-key", key_file.read_text().split()[0]]
    return ["taskset", "-c", cpus, *argv] if cpus is not None and shutil.which("taskset") else argv


def _markdown(data: dict[str, Any]) -> str:
    m = data["meta"]
    out = [f"# Soak ({m['started']})", "", f"`{m['command']}` — {m['minutes']} min of mixed traffic on "
           f"{m['workers']} workers, governed setup + local cache; {m['machine']['cpu_model']}, "
           f"{m['machine']['cores']} cores, loopback {m['machine']['loopback_rtt_us']} µs; "
           f"pinning: {m['pinning']}.", "",
           "| process | RSS start MiB | RSS end of load MiB | growth, last half (MiB/min) | "
           f"RSS {m['settle_s']:g} s after MiB |",
           "| --- | ---: | ---: | ---: | ---: |"]
    for name, p in data["processes"].items():
        out.append(f"| {name} | {p['start_mib']:.1f} | {p['end_mib']:.1f} | {p['growth_mib_per_min']} | "
                   f"{p['after_mib']:.1f} |")
    out += ["", "| traffic | target/s | answered | req/s | p50 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, t in data["traffic"].items():
        if "failed" in t:
            out.append(f"| {name} | | failed: {t['failed'][:200]} | | | | |")
            continue
        out.append(f"| {name} | {t['target_rps']:g} | {t['ok']:,} | {t['rps']:,.1f} | {_f(t['p50_ms'])} | "
                   f"{_f(t['p99_ms'])} | "
                   f"{t['errors'] or 'none'} |")
    d = data["disconnects"]
    out += ["", f"Disconnects: {d['disconnects']:,} streams dropped after their first bytes "
            f"({d['disconnect_failures']} could not connect). Gateway log: {data['log_error_lines']} lines naming "
            "an error.", "", f"![rss]({data.get('plot', '')})", ""]
    return "\n".join(out)


def _plot(data: dict[str, Any], path: Path) -> bool:
    from bench.lanereport import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for name, p in data["processes"].items():
        if p["curve"]:
            ax.plot([t / 60 for t, _ in p["curve"]], [r for _, r in p["curve"]], lw=1.2,
                    label=f"{name} ({p['growth_mib_per_min']} MiB/min)")
    ax.axvline(data["meta"]["minutes"], ls="--", color="black", alpha=0.4)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS MiB")
    ax.set_title("soak: RSS per gateway process (dashed: load stops)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from bench.run import machine_info, package_versions

    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling interval")
    p.add_argument("--settle-s", type=float, default=10.0, help="wait after the load before the last sample")
    p.add_argument("--cache-ttl", type=float, default=60.0, help="response cache entry lifetime, seconds")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    seconds = a.minutes * 60
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info()
    machine["loopback_rtt_us"] = loopback_rtt_us()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    db_url, keys_file = governed_keys(tmp)
    mock = launch_mock(name="upstream", chunks=20, chunk_gap_ms=10, fault_500=0.005, seed=1, log_dir=tmp)
    config = write_lane_config(SOAK_LANE, tmp, mock.port, db_url)
    # entries live 60 s: the cache of distinct prompts fills in the first minute and then holds still, so
    # the growth over the second half is the gateway's own, not the cache doing its job
    config.write_text(config.read_text().replace("ttl: 600", f"ttl: {a.cache_ttl:g}"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gw: Proc = spawn([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                      "--port", str(port), "--workers", str(a.workers), "--log-level", "warning"], name="soak-gw",
                     log_dir=tmp)
    data: dict[str, Any] = {"meta": {"kind": "soak", "started": started.isoformat(timespec="seconds"),
                                     "command": "python -m bench.soak " + " ".join(argv or sys.argv[1:]),
                                     "minutes": a.minutes, "workers": a.workers, "machine": machine,
                                     "packages": package_versions(), "sample_s": a.sample_s,
                                     "pinning": "none: the workers, the mock and the generators share every core",
                                     "rates": {k: v[1] for k, v in TRAFFIC.items()},
                                     "active_keys": GOVERNED_ACTIVE, "settle_s": a.settle_s,
                                     "config_yaml": config.read_text()}}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stop = threading.Event()
    counts = {"disconnects": 0, "disconnect_failures": 0}
    try:
        wait_http(url + "/health/readiness", 60, gw)
        sampler = RssSampler(gw.pid, a.sample_s)
        sampler.sample()
        for name, (extra, rate) in TRAFFIC.items():
            procs[name] = subprocess.Popen(_load_argv(url, keys_file, extra, rate, seconds, tmp / f"{name}.json", None),
                                           cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first_key = keys_file.read_text().split()[0]
        disc = threading.Thread(target=_disconnector, args=(port, first_key, stop, counts), daemon=True)
        disc.start()
        with sampler, tqdm(total=round(seconds), desc="soak", unit="s", file=sys.stderr, disable=None) as bar:
            t0 = time.monotonic()
            while any(pr.poll() is None for pr in procs.values()) and time.monotonic() - t0 < seconds + 120:
                time.sleep(1.0)
                bar.n = min(round(time.monotonic() - t0), bar.total)
                last = sampler.samples[-1][1] if sampler.samples else 0.0
                bar.set_postfix_str(f"RSS {last:.0f} MiB, {counts['disconnects']} disconnects")
            stop.set()
            load_end = time.monotonic() - sampler.t0
            time.sleep(a.settle_s)
            sampler.sample()
        disc.join(5)
        data["traffic"] = {}
        for name, pr in procs.items():
            err = pr.stderr.read().decode(errors="replace") if pr.stderr else ""
            out = tmp / f"{name}.json"
            if pr.wait() != 0 or not out.exists():
                data["traffic"][name] = {"failed": f"bench.load exited {pr.returncode}: {err[-400:]}"}
                continue
            r = json.loads(out.read_text())
            data["traffic"][name] = {"target_rps": TRAFFIC[name][1], "ok": r["ok"],
                                     "rps": round(r["throughput_rps"], 1),
                                     "p50_ms": r["latency_ms"].get("p50"), "p99_ms": r["latency_ms"].get("p99"),
                                     "errors": r["errors"], "late_sends": r["late_sends"]}
        data["disconnects"] = counts
        errs = error_lines(gw.log_tail(1_000_000))
        data["log_error_lines"], data["log_error_samples"] = len(errs), errs[-5:]
        data["processes"] = _per_process(sampler, load_end, gw.pid)
    finally:
        stop.set()
        for pr in procs.values():
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        gw.stop()
        mock.stop()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stamp}-soak.png"
    if _plot(data, png):
        data["plot"] = png.name
    js, md = out_dir / f"{stamp}-soak.json", out_dir / f"{stamp}-soak.md"
    js.write_text(json.dumps(data, indent=1))
    md.write_text(_markdown(data))
    for src in (js, md, png):
        if src.exists():
            dst = out_dir / src.name.replace(f"{stamp}-soak", "soak-latest")
            dst.write_text(src.read_text().replace(f"{stamp}-soak", "soak-latest")) if src.suffix == ".md" else \
                shutil.copyfile(src, dst)
    shutil.rmtree(tmp, ignore_errors=True)
    print(md.read_text())
    print(f"results: {js}\n         {md} (and soak-latest.*)")
    return 0


def error_lines(log: str) -> list[str]:
    """The log lines at level error or critical (JSON lines by their ``level``, text lines by the word)."""
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                level = str(json.loads(line).get("level", "")).lower()
            except ValueError:
                level = ""
            if level in ("error", "critical"):
                out.append(line[:400])
        elif re.search(r"\b(ERROR|CRITICAL)\b", line):
            out.append(line[:400])
    return out


def _per_process(sampler: RssSampler, load_end: float, root: int) -> dict[str, Any]:
    """Each process's curve, start/end/after RSS and growth over the last half of the load."""
    pids = sorted({pid for _, _, per in sampler.samples for pid in per})
    out: dict[str, Any] = {}
    for i, pid in enumerate(pids):
        curve = [(t, round(per[pid], 2)) for t, _, per in sampler.samples if pid in per]
        during = [(t, r) for t, r in curve if t <= load_end]
        if not during:
            continue
        name = "supervisor" if pid == root else f"worker {i}" if len(pids) > 1 else "gateway"
        growth = figures.growth_mib_per_min(during, last_s=load_end / 2)
        out[f"{name} (pid {pid})"] = {"curve": curve, "start_mib": during[0][1], "end_mib": during[-1][1],
                                      "after_mib": curve[-1][1],
                                      "growth_mib_per_min": None if growth is None else round(growth, 3)}
    return out


if __name__ == "__main__":
    sys.exit(main())
