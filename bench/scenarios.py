"""Benchmark scenarios: what load each scenario applies to a system and how its numbers are judged.

Every measurement runs ``python -m bench.load`` in a subprocess pinned to the load core (the gateway has
the other one), writing JSON that we read back. This module owns the scenario table, the per-system scaling
(LiteLLM serves ~50-75 req/s, so it gets short runs and low rates), the throughput-frontier search and the
bottleneck notes attached to each result. Process start/stop lives in ``bench.systems``; reports in
``bench.report``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.procs import REPO_ROOT, cpu_seconds, peak_rss_kib
from bench.systems import MODEL, Running

__all__ = ["Scenario", "SCENARIOS", "Settings", "run_scenario", "run_load", "FRONTIER_P99_MS"]

FRONTIER_P99_MS = (5.0, 10.0, 50.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kinds: tuple[str, ...]  # system kinds it applies to
    stream: bool = False
    concurrency: int = 32
    body_bytes: int = 0
    mode: str = "closed"  # closed | paired | frontier


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("chat", "small chat, non-stream, 32 concurrent", ("direct", "relaygate", "litellm")),
    Scenario("stream", "20-chunk streams, 32 concurrent", ("direct", "relaygate", "litellm"), stream=True),
    Scenario("latency", "added latency, one request in flight (gateway minus direct, paired)",
             ("relaygate", "litellm"), concurrency=1, mode="paired"),
    Scenario("frontier", "open-loop throughput frontier (highest rate with p99 under 5/10/50 ms, no errors)",
             ("direct", "relaygate", "litellm"), mode="frontier"),
    Scenario("body100k", "100 KB request bodies, non-stream, 8 concurrent", ("direct", "relaygate", "litellm"),
             concurrency=8, body_bytes=100_000),
)}


@dataclass
class Settings:
    duration: float = 5.0
    warmup: float = 1.0
    slow_duration: float = 5.0  # cap for LiteLLM runs
    frontier_step: float = 2.0
    frontier_warmup: float = 1.0
    frontier_max_steps: int = 10
    paired_rounds: int = 10
    paired_per_round: int = 50
    load_cpus: str | None = None
    timeout: float = 30.0


def _slow(system: Running) -> bool:
    return system.spec.kind == "litellm"


def run_load(system: Running, args: list[str], wait: float, out_dir: Path, tag: str,
             settings: Settings, tick: Callable[[float], None] | None = None) -> dict[str, Any]:
    """One ``bench.load`` subprocess against ``system``; returns its JSON (or ``{"failed": msg}``)."""
    out = out_dir / f"load-{tag}-{system.spec.name}-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "bench.load", "--url", system.url, "--model", MODEL, "--api-key",
            system.api_key, "--json-out", str(out), "--quiet", *args]
    if settings.load_cpus is not None:
        argv = ["taskset", "-c", settings.load_cpus, *argv]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    limit = wait + settings.timeout + 30
    while proc.poll() is None:
        if tick is not None:
            tick(min(time.monotonic() - start, wait))
        if time.monotonic() - start > limit:
            proc.kill()
            proc.wait()
            return {"failed": f"load generator did not finish within {limit:.0f}s"}
        time.sleep(0.2)
    if tick is not None:
        tick(wait)
    err = proc.stderr.read() if proc.stderr is not None else ""
    if proc.stderr is not None:
        proc.stderr.close()
    if proc.returncode != 0 or not out.exists():
        return {"failed": f"bench.load exited {proc.returncode}: {err.strip()[-800:]}"}
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


def _measured(system: Running, mock_pid: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` and attach gateway/mock CPU seconds and the gateway's peak RSS over the run."""
    pid = system.pid
    if pid is not None:
        _reset_peak_rss(pid)
    gw0 = cpu_seconds(pid) if pid else 0.0
    mock0 = cpu_seconds(mock_pid)
    t0 = time.monotonic()
    res = fn()
    wall = time.monotonic() - t0
    res["resources"] = {
        "wall_s": round(wall, 3),
        "mock_cpu_s": round(cpu_seconds(mock_pid) - mock0, 3),
        "gateway_cpu_s": round(cpu_seconds(pid) - gw0, 3) if pid else None,
        "gateway_peak_rss_kib": peak_rss_kib(pid) if pid else None,
    }
    return res


def _reset_peak_rss(pid: int) -> None:
    from bench.procs import tree_pids

    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            pass


def _closed(sc: Scenario, system: Running, s: Settings, out_dir: Path,
            tick: Callable[[float], None] | None) -> dict[str, Any]:
    duration = min(s.duration, s.slow_duration) if _slow(system) else s.duration
    args = ["--concurrency", str(sc.concurrency), "--duration", str(duration), "--warmup", str(s.warmup),
            "--timeout", str(s.timeout)]
    if sc.stream:
        args.append("--stream")
    if sc.body_bytes:
        args += ["--body-bytes", str(sc.body_bytes)]
    return run_load(system, args, duration + s.warmup, out_dir, sc.name, s, tick)


def _paired(system: Running, direct: Running, s: Settings, out_dir: Path,
            tick: Callable[[float], None] | None) -> dict[str, Any]:
    rounds, per = (max(3, s.paired_rounds // 2), max(5, s.paired_per_round // 5)) if _slow(system) else (
        s.paired_rounds, s.paired_per_round)
    # both targets get the gateway's key and model: the mock accepts any key and echoes any model
    args = ["--compare-url", system.url, "--rounds", str(rounds), "--per-round", str(per),
            "--timeout", str(s.timeout)]
    proxy = Running(direct.spec, direct.url, system.api_key)
    res = run_load(proxy, args, 2.0, out_dir, "latency", s, tick)
    if "failed" not in res:
        res = {"direct_median_ms": res["median_ms"]["a"], "system_median_ms": res["median_ms"]["b"],
               "added_ms": res.get("added_ms", math.nan), "added_ms_rounds": res.get("added_ms_rounds", []),
               "errors": res["errors"], "rounds": rounds, "per_round": per}
    return res


def _step_ok(step: dict[str, Any], rate: float) -> bool:
    return step.get("error_count", 1) == 0 and step.get("throughput_rps", 0.0) >= 0.95 * rate


def _frontier(system: Running, s: Settings, out_dir: Path, tick: Callable[[float], None] | None) -> dict[str, Any]:
    kind = system.spec.kind
    rate = {"direct": 2000.0, "relaygate": 1000.0}.get(kind, 8.0)
    cap = 60_000.0 if kind != "litellm" else 2_000.0
    step_s = s.frontier_step * (1.5 if _slow(system) else 1.0)
    steps: list[dict[str, Any]] = []
    loosest = max(FRONTIER_P99_MS)
    elapsed = [0.0]

    warm = s.frontier_warmup

    def measure(r: float, confirm: bool = True) -> dict[str, Any]:
        res = run_load(system, ["--rate", f"{r:.1f}", "--duration", str(step_s), "--warmup", str(warm),
                                "--max-connections", "256", "--timeout", "10"], step_s + warm, out_dir,
                       "frontier", s)
        elapsed[0] += step_s + warm
        if tick is not None:
            tick(elapsed[0])
        lat = res.get("latency_ms", {})
        step = {"rate": r, "throughput_rps": res.get("throughput_rps", 0.0), "p50_ms": lat.get("p50"),
                "p99_ms": lat.get("p99"), "error_count": res.get("error_count", 1),
                "late_sends": res.get("late_sends"), "generator_cpu_share": res.get("generator_cpu_share"),
                "failed": res.get("failed")}
        step["ok"] = _step_ok(step, r) and step["p99_ms"] is not None and step["p99_ms"] <= loosest
        steps.append(step)
        if not step["ok"] and confirm:  # one noisy step must not end the search: measure it again
            step["retried"] = True
            return measure(r, confirm=False)
        return step

    last_pass: float | None = None
    first_fail: float | None = None
    for _ in range(s.frontier_max_steps):
        st = measure(rate)
        if st["ok"]:
            last_pass = rate
            if rate >= cap:
                break
            rate = min(cap, rate * 1.6)
        else:
            first_fail = rate
            break
    if last_pass is not None and first_fail is not None:
        for _ in range(2):  # bisection (geometric) between the last pass and the first failure
            mid = math.sqrt(last_pass * first_fail)
            st = measure(mid)
            if st["ok"]:
                last_pass = mid
            else:
                first_fail = mid
    best: dict[str, float | None] = {}
    for limit in FRONTIER_P99_MS:
        passing = [st["throughput_rps"] for st in steps if st["ok"] and st["p99_ms"] <= limit]
        best[f"p99<{limit:g}ms"] = max(passing) if passing else None
    return {"steps": steps, "best_rps": best, "step_s": step_s}


def _notes(sc: Scenario, res: dict[str, Any], direct_res: dict[str, Any] | None) -> list[str]:
    notes = []
    if res.get("failed"):
        return [res["failed"]]
    rsc = res.get("resources", {})
    window = res.get("window_s") or 0
    share = res.get("generator_cpu_share")
    if share is not None and share >= 0.9:
        notes.append(f"load generator at {share:.0%} of its core: it may be the bottleneck")
    if window and rsc.get("mock_cpu_s") is not None and share is not None:
        load_core = rsc["mock_cpu_s"] / rsc["wall_s"] + share
        if load_core >= 0.9:
            notes.append(f"load core busy {load_core:.0%} (generator + mock): the result is a lower bound")
    if direct_res and sc.mode == "closed" and "throughput_rps" in direct_res:
        d = direct_res["throughput_rps"]
        if d and res.get("throughput_rps", 0) >= 0.8 * d:
            notes.append("within 80% of the direct (no gateway) throughput: the mock/generator set the ceiling")
    return notes


def run_scenario(sc: Scenario, system: Running, direct: Running, mock_pid: int, s: Settings, out_dir: Path,
                 direct_res: dict[str, Any] | None, tick: Callable[[float], None] | None = None) -> dict[str, Any]:
    if sc.mode == "closed":
        res = _measured(system, mock_pid, lambda: _closed(sc, system, s, out_dir, tick))
    elif sc.mode == "paired":
        res = _measured(system, mock_pid, lambda: _paired(system, direct, s, out_dir, tick))
    else:
        res = _measured(system, mock_pid, lambda: _frontier(system, s, out_dir, tick))
    rsc = res["resources"]
    if rsc.get("gateway_cpu_s") is not None and res.get("ok"):
        rsc["gateway_cpu_ms_per_request"] = round(rsc["gateway_cpu_s"] * 1000 / res["ok"], 4)
    res["notes"] = _notes(sc, res, direct_res)
    return res


def expected_seconds(sc: Scenario, kind: str, s: Settings) -> float:
    """Rough time a scenario takes, for the progress bar."""
    slow = kind == "litellm"
    if sc.mode == "closed":
        return (min(s.duration, s.slow_duration) if slow else s.duration) + s.warmup
    if sc.mode == "paired":
        return 2.0
    return (s.frontier_step * (1.5 if slow else 1.0) + s.frontier_warmup) * 6
