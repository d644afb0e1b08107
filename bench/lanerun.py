"""Measure the lanes: ``python -m bench.run --lanes passthrough,streams,... [--quick]``.

For every lane (``bench.lanes``) one mock upstream is started (pinned to the load core) and every system
in turn on the gateway core(s), from the lane's own ``config.yaml``; for each system:

1. **start-to-ready**: seconds from spawning the process to its first 200 on the readiness route;
2. **idle RSS**: the process tree's resident memory once ready and settled;
3. **sweep**: closed-loop concurrency levels (1 first, measured longer), each with a warm-up: req/s,
   p50/p99 and the gateway's CPU µs per request from ``/proc`` (user+sys of the tree over the measured
   window); the frontier (req/s at p99 ≤ 1/5/10/50/100 ms and unbounded) and the added p50/p99 at
   concurrency 1 (system minus direct, µs) come from it (``bench.figures``). The streams lane sweeps
   stream concurrency instead, the mock pacing 64 deltas 20 ms apart: added TTFT and inter-frame
   p50/p99 at the lowest level, and streams sustained;
4. **memory under load**: a fixed closed-loop load (``mem_concurrency``) for ``mem_s`` seconds, RSS sampled
   every ``sample_s``: steady RSS (median of the second half), growth over the last minutes (MiB/min,
   least squares), then the RSS ``settle_s`` after the load stops.

A sweep stops early at a level with ≥10% errors or a p99 over a second (nothing past it can count).
The direct system (generator → mock, same request) runs the sweep only: it is the baseline of every
"added" figure and the mock ceiling every throughput figure is checked against.
"""

from __future__ import annotations

import os
import shlex
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from bench import figures
from bench.lanes import (
    LANES,
    STREAM_FRAMES,
    STREAM_PACING_MS,
    Lane,
    governed_keys,
    load_args,
    start_portkey,
    start_rawproxy,
    unsupported,
    write_lane_config,
)
from bench.procs import MockHandle, cpu_seconds, tree_pids, wait_http
from bench.scenarios import Settings, run_load
from bench.systems import MASTER_KEY, UPSTREAM_KEY, Running, SystemSpec, start_system

__all__ = ["CpuWindow", "LaneSettings", "measure_system", "run_lane", "rss_kib", "RssSampler", "loopback_rtt_us"]


@dataclass
class LaneSettings:
    sweep: tuple[int, ...] = (1, 4, 16, 32, 64, 128, 256)
    step_s: float = 4.0
    c1_s: float = 8.0
    warmup_s: float = 1.0
    stream_levels: tuple[int, ...] = (4, 16, 64, 128, 256, 512, 1024)
    # a stream lasts ~1.3 s and the generator counts only requests sent after the warm-up that end inside
    # the window: a window under 2 stream lengths sees one wave or none
    stream_step_s: float = 8.0
    stream_warmup_s: float = 1.5
    mem_s: float = 120.0
    mem_concurrency: int = 32
    settle_s: float = 10.0
    sample_s: float = 1.0
    growth_window_s: float = 60.0
    timeout: float = 30.0

    @classmethod
    def quick(cls) -> LaneSettings:
        return cls(sweep=(1, 16, 64), step_s=1.0, c1_s=1.5, warmup_s=0.4, stream_levels=(4, 16, 64, 256),
                   stream_step_s=4.0, stream_warmup_s=0.5, mem_s=3.0, settle_s=1.5, sample_s=0.5,
                   growth_window_s=1.5, timeout=15.0)


# ------------------------------------------------------------------------------------------- memory


def rss_kib(pid: int) -> dict[int, int]:
    """VmRSS (KiB) of ``pid`` and each live descendant."""
    out = {}
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[p] = int(line.split()[1])
                        break
        except OSError:
            continue
    return out


class RssSampler:
    """A thread sampling the tree's RSS every ``interval`` s: ``samples`` is ``[(t, MiB, {pid: MiB})]``."""

    def __init__(self, pid: int, interval: float, t0: float | None = None) -> None:
        self.pid, self.interval = pid, interval
        self.t0 = time.monotonic() if t0 is None else t0
        self.samples: list[tuple[float, float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> float:
        per = {p: k / 1024 for p, k in rss_kib(self.pid).items()}
        total = sum(per.values())
        self.samples.append((round(time.monotonic() - self.t0, 2), round(total, 2), per))
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def curve(self, since: float = 0.0) -> list[tuple[float, float]]:
        return [(t, r) for t, r, _ in self.samples if t >= since]


# ------------------------------------------------------------------------------------------- rig


def loopback_rtt_us(rounds: int = 2000) -> float:
    """Median round trip of a 1-byte ping-pong over a loopback TCP connection, microseconds."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    th = threading.Thread(target=echo, daemon=True)
    th.start()
    times = []
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            t = time.perf_counter()
            c.sendall(b"x")
            c.recv(64)
            times.append(time.perf_counter() - t)
    th.join(2)
    srv.close()
    return round(statistics.median(times) * 1e6, 1)


# ------------------------------------------------------------------------------------------- measuring


class CpuWindow:
    """A ``tick`` for ``run_load``: gateway CPU from the end of the warm-up to the generator's exit."""

    def __init__(self, pid: int | None, warmup: float, outer: Callable[[float], None] | None) -> None:
        self.pid, self.warmup, self.outer = pid, warmup, outer
        self.start: float | None = None
        self.end: float | None = None

    def __call__(self, elapsed: float) -> None:
        if self.pid is not None:
            if self.start is None and elapsed >= self.warmup:
                self.start = cpu_seconds(self.pid)
            self.end = cpu_seconds(self.pid)
        if self.outer is not None:
            self.outer(elapsed)

    def per_request_us(self, ok: int) -> float | None:
        if self.start is None or self.end is None or ok <= 0:
            return None
        return round((self.end - self.start) * 1e6 / ok, 1)


def _step(system: Running, lane: Lane, args: list[str], conc: int, seconds: float, warmup: float,
          s: LaneSettings, load_s: Settings, tmp: Path, tick: Callable[[float], None] | None) -> dict[str, Any]:
    win = CpuWindow(system.pid, warmup, tick)
    res = run_load(system, [*args, "--concurrency", str(conc), "--duration", str(seconds), "--warmup", str(warmup),
                            "--timeout", str(s.timeout)], seconds + warmup, tmp, lane.name, load_s, win)
    if res.get("failed"):
        return {"concurrency": conc, "failed": res["failed"], "ok": 0, "error_count": 1, "rps": 0.0}
    lat = res.get("latency_ms", {})
    step: dict[str, Any] = {
        "concurrency": conc, "rps": round(res["throughput_rps"], 1), "ok": res["ok"],
        "error_count": res["error_count"], "errors": res["errors"], "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"), "generator_cpu_share": round(res.get("generator_cpu_share", 0.0), 3),
        "cpu_us_per_req": win.per_request_us(res["ok"])}
    if "ttft_ms" in res:
        step.update(ttft_p50_ms=res["ttft_ms"].get("p50"), ttft_p99_ms=res["ttft_ms"].get("p99"),
                    gap_p50_ms=res["chunk_gap_ms"].get("p50"), gap_p99_ms=res["chunk_gap_ms"].get("p99"),
                    gap_max_ms=res["chunk_gap_ms"].get("max"), chunks_min=res["chunks_per_response"].get("min"))
    return step


def _sweep(system: Running, lane: Lane, args: list[str], s: LaneSettings, load_s: Settings, tmp: Path,
           tick: Callable[[str], None]) -> list[dict[str, Any]]:
    steps = []
    levels = s.stream_levels if lane.streams else s.sweep
    for conc in levels:
        tick(f"c={conc}")
        if lane.streams:
            st = _step(system, lane, args, conc, s.stream_step_s, s.stream_warmup_s, s, load_s, tmp, None)
            st["verdict"] = figures.stream_verdict(st, STREAM_FRAMES, STREAM_PACING_MS)
            steps.append(st)
            if st["verdict"]:
                break
            continue
        seconds = s.c1_s if conc == 1 else s.step_s
        st = _step(system, lane, args, conc, seconds, s.warmup_s, s, load_s, tmp, None)
        steps.append(st)
        if figures.error_rate(st) >= 0.10 or (st.get("p99_ms") or 0) > 1000:
            break
    return steps


def _memory(system: Running, lane: Lane, args: list[str], sampler: RssSampler, s: LaneSettings, load_s: Settings,
            tmp: Path) -> dict[str, Any]:
    t_start = time.monotonic() - sampler.t0
    conc = min(s.mem_concurrency, 16) if lane.streams else s.mem_concurrency
    step = _step(system, lane, args, conc, s.mem_s, 0.0, s, load_s, tmp, None)
    t_end = time.monotonic() - sampler.t0
    under = [(t, r) for t, r in sampler.curve(t_start) if t <= t_end]
    time.sleep(s.settle_s)
    after = sampler.sample()
    second_half = [r for t, r in under if t >= (t_start + t_end) / 2] or [r for _, r in under]
    return {"load": {"concurrency": conc, "seconds": s.mem_s, "rps": step.get("rps"),
                     "error_count": step.get("error_count"), "cpu_us_per_req": step.get("cpu_us_per_req")},
            "steady_rss_mib": round(statistics.median(second_half), 1) if second_half else None,
            "growth_mib_per_min": _round(figures.growth_mib_per_min(under, s.growth_window_s), 2),
            "growth_window_s": s.growth_window_s,
            "after_rss_mib": round(after, 1), "after_s": s.settle_s}


def _round(x: float | None, n: int) -> float | None:
    return None if x is None else round(x, n)


def measure_system(lane: Lane, system: Running, mock: MockHandle, s: LaneSettings, load_s: Settings, tmp: Path,
                   args: list[str], ready_s: float | None, tick: Callable[[str], None]) -> dict[str, Any]:
    """Every figure of one system on one lane (the system is running and ready)."""
    out: dict[str, Any] = {"start_to_ready_s": _round(ready_s, 3)}
    pid = system.pid
    sampler = RssSampler(pid, s.sample_s) if pid is not None else None
    if sampler is not None:
        time.sleep(min(1.0, s.settle_s))
        out["idle_rss_mib"] = round(sampler.sample(), 1)
    if lane.streams:
        mock.set_config(chunks=STREAM_FRAMES, chunk_gap_ms=STREAM_PACING_MS)
    try:
        if sampler is not None:
            with sampler:
                out["sweep"] = _sweep(system, lane, args, s, load_s, tmp, tick)
                tick("memory")
                out["memory"] = _memory(system, lane, args, sampler, s, load_s, tmp)
            out["rss_curve"] = sampler.curve()
        else:
            out["sweep"] = _sweep(system, lane, args, s, load_s, tmp, tick)
    finally:
        if lane.streams:
            mock.set_config(chunks=20, chunk_gap_ms=0)
    if lane.streams:
        sustained, open_ended = figures.streams_sustained(out["sweep"], STREAM_FRAMES, STREAM_PACING_MS)
        out["streams_sustained"] = sustained
        out["streams_sustained_lower_bound"] = open_ended
    else:
        out["frontier"] = figures.frontier(out["sweep"])
    ok_steps = [st for st in out["sweep"] if st.get("cpu_us_per_req") is not None and not st.get("failed")]
    if out.get("memory", {}).get("load", {}).get("cpu_us_per_req") is not None:
        out["cpu_us_per_req"] = out["memory"]["load"]["cpu_us_per_req"]
    elif ok_steps:
        out["cpu_us_per_req"] = ok_steps[-1]["cpu_us_per_req"]
    return out


def added_figures(lane: Lane, res: dict[str, Any], direct: dict[str, Any] | None) -> dict[str, Any]:
    """The system-minus-direct figures (µs): at concurrency 1, or the streams' lowest level."""
    if not direct or not res.get("sweep") or not direct.get("sweep"):
        return {}
    a, d = res["sweep"][0], direct["sweep"][0]
    if a.get("failed") or d.get("failed") or a.get("concurrency") != d.get("concurrency"):
        return {}
    out = {"at_concurrency": a["concurrency"]}
    keys = (("ttft_p50_ms", "ttft_p50"), ("ttft_p99_ms", "ttft_p99"), ("gap_p50_ms", "gap_p50"),
            ("gap_p99_ms", "gap_p99")) if lane.streams else (("p50_ms", "p50"), ("p99_ms", "p99"))
    for key, name in keys:
        out[f"{name}_us"] = _round(figures.added_us(a.get(key), d.get(key)), 1)
    return out


# ------------------------------------------------------------------------------------------- one lane


def _start(name: str, lane: Lane, config: Path, mock: MockHandle, cpus: dict[str, str | None],
           tmp: Path) -> tuple[Running, float | None]:
    """Start ``name`` for ``lane``; (running, seconds to ready) — ``running.error`` says why not."""
    t0 = time.monotonic()
    if name == "direct":
        return Running(SystemSpec("direct", "direct"), mock.url, UPSTREAM_KEY), None
    if name in ("rawproxy", "hello"):
        spec = SystemSpec(name, name, cpus=cpus["gw"])
        proc, url = start_rawproxy(name, mock.url, cpus["gw"], tmp)
        running = Running(spec, url, UPSTREAM_KEY, proc=proc, info={"command": shlex.join(proc.popen.args)})
        try:
            wait_http(url + "/health/readiness", 60, proc=proc, interval=0.02)
        except (TimeoutError, RuntimeError) as exc:
            proc.stop()
            running.error = f"{name} did not become ready: {exc}"
            return running, None
        return running, time.monotonic() - t0
    if name == "portkey":
        spec = SystemSpec("portkey", "portkey", cpus=cpus["gw"])
        try:
            proc, url = start_portkey(cpus["gw"], tmp)
        except RuntimeError as exc:
            return Running(spec, "", UPSTREAM_KEY, error=str(exc)), None
        running = Running(spec, url, UPSTREAM_KEY, proc=proc)
        try:
            wait_http(url + "/", 60, proc=proc, interval=0.02)
        except (TimeoutError, RuntimeError) as exc:
            proc.stop()
            running.error = f"portkey did not become ready: {exc}"
            return running, None
        return running, time.monotonic() - t0
    kind = "litellm" if name == "litellm" else "relaygate"
    workers = 2 if name == "relaygate-2w" else 1
    spec = SystemSpec(name, kind, workers=workers, cpus=cpus["both"] if workers == 2 else cpus["gw"],
                      ready_timeout=180.0 if kind == "litellm" else 60.0)
    running = start_system(spec, config, mock.url, tmp)
    return running, (time.monotonic() - t0) if running.available else None


def run_lane(lane: Lane, systems: list[str], mock: MockHandle, s: LaneSettings, load_s: Settings, tmp: Path,
             cpus: dict[str, str | None], bar: Any) -> dict[str, Any]:
    """All systems on one lane: ``{"config_yaml", "systems": {name: figures or {"na": reason}}, "ceiling"}``."""
    db_url, keys_file = governed_keys(tmp) if lane.governed else (None, None)
    config = write_lane_config(lane, tmp, mock.port, db_url)
    out: dict[str, Any] = {"title": lane.title, "config_yaml": config.read_text(), "systems": {}}
    for name in systems:
        why = unsupported(lane, name)
        if why is not None:
            out["systems"][name] = {"na": why}
            bar.update(1)
            continue
        bar.set_postfix_str(f"{name} starting")
        running, ready_s = _start(name, lane, config, mock, cpus, tmp)
        if not running.available:
            out["systems"][name] = {"na": f"did not start: {(running.error or '')[:600]}"}
            bar.update(1)
            continue
        if lane.governed and name.startswith("relaygate"):
            running.api_key = MASTER_KEY  # requests take the virtual keys of --api-key-file
        args = load_args(lane, name, mock.url, tmp, keys_file)
        try:
            res = measure_system(lane, running, mock, s, load_s, tmp, args, ready_s,
                                 lambda what, _n=name: bar.set_postfix_str(f"{_n} {what}"))
            if running.proc is not None and any(st.get("error_count") for st in res["sweep"]):
                res["log_hint"] = log_hint(running.proc.log_tail(300))
        finally:
            running.stop()
            mock.reset()
        res["cpus"] = running.spec.cpus
        res["command"] = running.info.get("command") or shlex.join(running.proc.popen.args) if running.proc else None
        if running.info.get("version"):
            res["version"] = running.info["version"]
        out["systems"][name] = res
        bar.update(1)
    direct = out["systems"].get("direct")
    ceiling = None
    if direct and "sweep" in direct:
        ceiling = direct.get("streams_sustained") if lane.streams else direct["frontier"].get("unbounded")
    out["ceiling"] = ceiling
    for name, res in out["systems"].items():
        if name == "direct" or "sweep" not in res:
            continue
        res["added"] = added_figures(lane, res, direct)
        figs = ({"streams_sustained": res.get("streams_sustained")} if lane.streams else res["frontier"])
        res["mock_ceiling_flags"] = figures.ceiling_flags(figs, ceiling)
    return out


def log_hint(tail: str) -> str | None:
    """The last line of a log tail that names an error (why a system answered errors), if any."""
    lines = [ln.strip() for ln in tail.splitlines() if "error" in ln.lower()]
    return lines[-1][:300] if lines else None


def lane_names(spec: str) -> list[str]:
    names = list(LANES) if spec in ("all", "") else [x for x in spec.split(",") if x]
    bad = [x for x in names if x not in LANES]
    if bad:
        raise ValueError(f"unknown lane(s): {', '.join(bad)} (known: {', '.join(LANES)})")
    return names


def pinning(cpus: dict[str, str | None]) -> str:
    if cpus["gw"] is None:
        return "none (fewer than 2 cores or --no-pin)"
    return (f"gateway on cpu {cpus['gw']}; mock + load generator on cpu {cpus['load']}; relaygate-2w on cpus "
            f"{cpus['both']} (its second worker shares the load core)")


def settings_dict(s: LaneSettings) -> dict[str, Any]:
    return asdict(s)


def python_cmd() -> str:
    return os.path.basename(sys.executable)
