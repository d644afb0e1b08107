"""``python -m bench.ceiling``: relaygate against its calibration ceiling, in one interleaved run.

``python -m bench.ceiling [--duration S] [--repeat N] [--concurrency C] [--quick] [--out DIR] [--no-pin]``

Issue 18's speed goals are ratios measured in one run: relaygate's CPU per request on the governed lane at
most 1.3× the raw-proxy calibration's, a 20-chunk stream at most 1.5×, and at most 250 µs added p99 at one
request in flight. This is the focused measurement for that work; the lanes (``bench.run --lanes``) give
the wide picture, this gives the few numbers the speed work moves, with their spread.

One mock upstream runs on the load core (20-chunk streams, no pacing). Every system starts once, pinned
to the gateway core, and stays up for the whole run; an idle one costs next to no CPU and each system's
CPU is read from its own process tree only:

- ``hello``: Granian serving a fixed ``chat.completion`` (``bench.peers.rawproxy --hello``);
- ``rawproxy``: Granian relaying through a raw ``asyncio.Protocol`` (``bench.peers.rawproxy``);
- ``relaygate``: ``relaygate serve``, the passthrough lane's config;
- ``relaygate-governed``: ``relaygate serve``, the governed lane's config, database and 200 virtual keys
  (``bench.lanes.governed_keys``; the load takes the keys in turn with ``--api-key-file``);
- ``direct``: the load generator at the mock (the baseline of the added latency).

Then ``N`` rounds, each running every workload once (the order rotates by one each round, so slow drift
and machine noise spread over all systems alike): closed-loop load at concurrency ``C`` for ``S`` seconds
after a warm-up — a small unary chat on hello, rawproxy, relaygate and relaygate-governed, a 20-chunk
stream on rawproxy and relaygate — and one request in flight on direct, rawproxy, relaygate and
relaygate-governed for the added p50/p99 (system minus direct in the same round, then the median over
rounds). CPU µs per request is measured as the lanes do (``bench.lanerun.CpuWindow``: user+sys of the
tree from ``/proc`` over the generator's measured window, divided by the answers in it), with one
correction: the window opens after the warm-up *plus* the generator's own start-up (its import, timed once
per run on the load core), not counted from its spawn; otherwise the start-up's share of warm-up load
(about 0.25 s here) lands in the window and inflates every figure by that much over the duration.

The machine may be shared, so each load also records the CPU spent outside this run's process tree over
its window (``/proc/stat``'s busy time of all cores minus the run's own CPU, in cores); a run where that
passed 0.1 core at any load is marked disturbed in the result.

The result: median CPU µs/req (min-max over rounds) per system and workload, req/s, p50/p99, the ratios
(relaygate-governed/rawproxy, relaygate/rawproxy unary and stream, relaygate/hello) with the per-round
spread, and each goal met or missed. Written as ``<out>/<UTC stamp>-ceiling.json`` and ``.md`` plus
copies ``ceiling-latest.*``. The run is bounded: every load has a fixed duration and a time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.lanerun import CpuWindow, loopback_rtt_us
from bench.lanes import LANES, governed_keys, load_args, start_rawproxy, write_lane_config
from bench.procs import REPO_ROOT, MockHandle, cpu_seconds, launch_mock, wait_http
from bench.scenarios import Settings, run_load
from bench.selftest import core_split
from bench.systems import MASTER_KEY, UPSTREAM_KEY, Running, SystemSpec, start_system

__all__ = ["WORKLOADS", "RATIOS", "GOAL_ADDED_P99_US", "CeilingSettings", "run_ceiling", "ceiling_markdown", "main"]

#: (system, workload): ``unary`` small chat at concurrency C, ``stream20`` 20-chunk streams at C, ``c1`` unary
#: at one request in flight
WORKLOADS: tuple[tuple[str, str], ...] = (
    ("hello", "unary"), ("rawproxy", "unary"), ("relaygate", "unary"), ("relaygate-governed", "unary"),
    ("rawproxy", "stream20"), ("relaygate", "stream20"),
    ("direct", "c1"), ("rawproxy", "c1"), ("relaygate", "c1"), ("relaygate-governed", "c1"),
)
#: (name, numerator, denominator, goal or None): CPU µs/req ratios
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("relaygate-governed / rawproxy (unary)", "relaygate-governed/unary", "rawproxy/unary", 1.3),
    ("relaygate / rawproxy (unary)", "relaygate/unary", "rawproxy/unary", None),
    ("relaygate / rawproxy (20-chunk stream)", "relaygate/stream20", "rawproxy/stream20", 1.5),
    ("relaygate / hello (unary)", "relaygate/unary", "hello/unary", None),
    ("relaygate-governed / hello (unary)", "relaygate-governed/unary", "hello/unary", None),
    ("rawproxy / hello (unary)", "rawproxy/unary", "hello/unary", None),
)
GOAL_ADDED_P99_US = 250.0
#: a load during which the machine spent this much CPU (in cores) outside the run marks the run disturbed
DISTURBED_SHARE = 0.10
ADDED_SYSTEMS = ("rawproxy", "relaygate", "relaygate-governed")


@dataclass
class CeilingSettings:
    duration: float = 5.0
    repeat: int = 3
    concurrency: int = 32
    warmup: float = 1.0
    timeout: float = 15.0

    @classmethod
    def quick(cls) -> CeilingSettings:
        return cls(duration=1.0, repeat=1, warmup=0.3)


def _start_all(mock: MockHandle, tmp: Path, gw: str | None) -> tuple[dict[str, Running], dict[str, list[str]]]:
    """Every system, ready; and the ``bench.load`` arguments of each. Raises if one does not start."""
    systems: dict[str, Running] = {"direct": Running(SystemSpec("direct", "direct"), mock.url, UPSTREAM_KEY)}
    args: dict[str, list[str]] = {}
    try:
        for name in ("hello", "rawproxy"):
            proc, url = start_rawproxy(name, mock.url, gw, tmp)
            systems[name] = Running(SystemSpec(name, name, cpus=gw), url, UPSTREAM_KEY, proc=proc,
                                    info={"command": shlex.join(proc.popen.args)})
            wait_http(url + "/health/readiness", 60, proc=proc, interval=0.02)
        passthrough, governed = LANES["passthrough"], LANES["governed"]
        cfg = write_lane_config(passthrough, tmp, mock.port)
        db_url, keys_file = governed_keys(tmp)
        gcfg = write_lane_config(governed, tmp, mock.port, db_url)
        for name, config in (("relaygate", cfg), ("relaygate-governed", gcfg)):
            running = start_system(SystemSpec(name, "relaygate", cpus=gw), config, mock.url, tmp)
            systems[name] = running
            if not running.available:
                raise RuntimeError(running.error)
        systems["relaygate-governed"].api_key = MASTER_KEY
        for name in systems:
            args[name] = load_args(passthrough, name, mock.url, tmp, None)
        args["relaygate-governed"] = load_args(governed, "relaygate", mock.url, tmp, keys_file)
    except BaseException:
        for running in systems.values():
            running.stop()
        raise
    return systems, args


def generator_start_s(load_cpus: str | None, tries: int = 3) -> float:
    """Seconds from spawning ``bench.load`` to its load starting (the import, median of ``tries``): the CPU
    window opens this much after the warm-up, so that it covers the generator's measured window."""
    argv = [sys.executable, "-c", "import bench.load"]
    if load_cpus is not None:
        argv = ["taskset", "-c", load_cpus, *argv]
    times = []
    for _ in range(tries):
        t = time.monotonic()
        subprocess.run(argv, cwd=REPO_ROOT, check=True)
        times.append(time.monotonic() - t)
    return round(statistics.median(times), 3)


def machine_busy_s() -> float:
    """CPU seconds all cores spent working since boot (user, nice, system, irq, softirq; not idle, iowait or
    the hypervisor's steal), from ``/proc/stat``."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


class _Window(CpuWindow):
    """The lanes' CPU window, plus how much CPU the machine spent on anything but this run over it."""

    def __init__(self, pid: int | None, warmup: float) -> None:
        super().__init__(pid, warmup, None)
        self.busy: list[tuple[float, float, float]] = []  # (monotonic, machine busy s, this run's CPU s)

    def __call__(self, elapsed: float) -> None:
        super().__call__(elapsed)
        if self.start is not None:
            sample = (time.monotonic(), machine_busy_s(), cpu_seconds(os.getpid()))
            if self.busy:
                self.busy[1:] = [sample]  # the window's end so far
            else:
                self.busy.append(sample)  # its start

    def other_share(self) -> float | None:
        """CPU spent outside this run's process tree (other processes, interrupts) over the window, in cores."""
        if len(self.busy) < 2:
            return None
        (t0, b0, c0), (t1, b1, c1) = self.busy
        if t1 - t0 <= 0:
            return None
        return round(max(0.0, (b1 - b0) - (c1 - c0)) / (t1 - t0), 3)


def _measure(system: Running, args: list[str], conc: int, s: CeilingSettings, load_s: Settings, tmp: Path,
             tag: str, gen_start: float) -> dict[str, Any]:
    win = _Window(system.pid, s.warmup + gen_start)
    res = run_load(system, [*args, "--concurrency", str(conc), "--duration", str(s.duration), "--warmup",
                            str(s.warmup), "--timeout", str(s.timeout)], s.duration + s.warmup, tmp, tag, load_s, win)
    if res.get("failed"):
        return {"failed": res["failed"], "ok": 0, "error_count": 1, "rps": 0.0}
    lat = res.get("latency_ms", {})
    out: dict[str, Any] = {
        "ok": res["ok"], "error_count": res["error_count"], "errors": res["errors"],
        "rps": round(res["throughput_rps"], 1), "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
        "cpu_us_per_req": win.per_request_us(res["ok"]),
        "generator_cpu_share": round(res.get("generator_cpu_share", 0.0), 3), "other_cpu": win.other_share()}
    if "chunks_per_response" in res:
        out["chunks_min"] = res["chunks_per_response"].get("min")
    return out


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2)}


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per workload: medians and min-max over rounds; ratios; added latency; goals."""
    results: dict[str, Any] = {}
    for system, workload in WORKLOADS:
        key = f"{system}/{workload}"
        steps = [r[key] for r in rounds if key in r]
        good = [st for st in steps if not st.get("failed")]
        results[key] = {
            "system": system, "workload": workload, "rounds": steps,
            "ok": sum(st.get("ok", 0) for st in steps), "error_count": sum(st.get("error_count", 0) for st in steps),
            "cpu_us_per_req": _spread([st["cpu_us_per_req"] for st in good if st.get("cpu_us_per_req")]),
            "rps": _spread([st["rps"] for st in good]),
            "p50_ms": _spread([st["p50_ms"] for st in good if st.get("p50_ms") is not None]),
            "p99_ms": _spread([st["p99_ms"] for st in good if st.get("p99_ms") is not None]),
            "other_cpu": _spread([st["other_cpu"] for st in good if st.get("other_cpu") is not None])}
    ratios = []
    for name, num, den, goal in RATIOS:
        a, b = results[num]["cpu_us_per_req"], results[den]["cpu_us_per_req"]
        per_round = [r[num]["cpu_us_per_req"] / r[den]["cpu_us_per_req"] for r in rounds
                     if r.get(num, {}).get("cpu_us_per_req") and r.get(den, {}).get("cpu_us_per_req")]
        value = round(a["median"] / b["median"], 3) if a and b and b["median"] else None
        ratios.append({"name": name, "value": value, "per_round": _spread(per_round), "goal": goal,
                       "met": None if goal is None or value is None else value <= goal})
    added: dict[str, Any] = {}
    for system in ADDED_SYSTEMS:
        p50s, p99s = [], []
        for r in rounds:
            a, d = r.get(f"{system}/c1", {}), r.get("direct/c1", {})
            if a.get("p50_ms") is not None and d.get("p50_ms") is not None:
                p50s.append((a["p50_ms"] - d["p50_ms"]) * 1000)
            if a.get("p99_ms") is not None and d.get("p99_ms") is not None:
                p99s.append((a["p99_ms"] - d["p99_ms"]) * 1000)
        p99 = _spread(p99s)
        added[system] = {"p50_us": _spread(p50s), "p99_us": p99,
                         "met": None if p99 is None or system == "rawproxy" else p99["median"] <= GOAL_ADDED_P99_US}
    others = [st["other_cpu"] for r in rounds for st in r.values() if st.get("other_cpu") is not None]
    return {"results": results, "ratios": ratios, "added": added, "other_cpu_max": max(others) if others else None,
            "disturbed": bool(others) and max(others) > DISTURBED_SHARE}


def run_ceiling(s: CeilingSettings, tmp: Path, pin: bool = True) -> dict[str, Any]:
    """Start everything, run the rounds, stop everything; returns ``{"rounds", "summary", "pinning"}``."""
    from tqdm import tqdm

    gw, load = core_split() if pin else (None, None)
    if load is not None:
        os.sched_setaffinity(0, {int(load)})  # this process polls /proc: keep it off the gateway core
    load_s = Settings(load_cpus=load, timeout=s.timeout + 5)
    mock = launch_mock(cpus=load, name="upstream", chunks=20, chunk_gap_ms=0, log_dir=tmp)
    rounds: list[dict[str, dict[str, Any]]] = []
    commands: dict[str, Any] = {}
    try:
        gen_start = generator_start_s(load)
        systems, args = _start_all(mock, tmp, gw)
        try:
            with tqdm(total=s.repeat * len(WORKLOADS), desc="ceiling", unit="load", file=sys.stderr,
                      disable=None) as bar:
                for i in range(s.repeat):
                    shift = i % len(WORKLOADS)
                    order = WORKLOADS[shift:] + WORKLOADS[:shift]
                    rnd: dict[str, dict[str, Any]] = {}
                    for system, workload in order:
                        bar.set_postfix_str(f"round {i + 1}: {system} {workload}")
                        extra = ["--stream"] if workload == "stream20" else []
                        conc = 1 if workload == "c1" else s.concurrency
                        rnd[f"{system}/{workload}"] = _measure(systems[system], [*args[system], *extra], conc, s,
                                                               load_s, tmp, workload, gen_start)
                        bar.update(1)
                    rounds.append(rnd)
            commands = {n: r.info.get("command") for n, r in systems.items() if r.info.get("command")}
        finally:
            for running in systems.values():
                running.stop()
    finally:
        mock.stop()
    pinning = (f"systems on cpu {gw}; mock + load generator on cpu {load}" if gw is not None
               else "none (fewer than 2 cores or --no-pin)")
    return {"rounds": rounds, "summary": summarize(rounds), "pinning": pinning, "commands": commands,
            "generator_start_s": gen_start}


def _cell(sp: dict[str, float] | None, digits: int = 1) -> str:
    if not sp:
        return "—"
    return f"{sp['median']:,.{digits}f} ({sp['min']:,.{digits}f}–{sp['max']:,.{digits}f})"


def _share(sp: dict[str, float] | None) -> str:
    return "—" if not sp else f"{sp['median']:.2f} (max {sp['max']:.2f})"


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**missed**")


def ceiling_markdown(data: dict[str, Any]) -> str:
    m, sm = data["meta"], data["summary"]
    mach, st = m["machine"], m["settings"]
    out = [f"# relaygate against its calibration ceiling ({m['started']})", "",
           f"`{m['command']}` — {m.get('elapsed_s', '?')} s; {st['repeat']} interleaved round(s) of "
           f"{st['duration']:g} s per load after {st['warmup']:g} s of warm-up, concurrency {st['concurrency']} "
           "(added latency: 1).", "",
           f"Machine: {mach['cpu_model']}, {mach['cores']} cores, Python {mach['python']}; loopback round trip "
           f"{mach.get('loopback_rtt_us')} µs. Pinning: {m['pinning']}. relaygate "
           f"{m['packages'].get('relaygate_commit', m['packages'].get('relaygate'))}, granian "
           f"{m['packages'].get('granian')}.", "",
           "## CPU per request (median over rounds, min–max)", "",
           "| system | workload | CPU µs/req | req/s | p50 ms | p99 ms | ok | errors | other CPU, cores |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sm["results"].values():
        cpu = "— (no process)" if r["system"] == "direct" else _cell(r["cpu_us_per_req"])
        out.append(f"| {r['system']} | {r['workload']} | {cpu} | {_cell(r['rps'], 0)} | {_cell(r['p50_ms'], 3)} | "
                   f"{_cell(r['p99_ms'], 3)} | {r['ok']:,} | {r['error_count']} | {_share(r.get('other_cpu'))} |")
    out += ["", "## Ratios and goals (issue 18)", "",
            "| ratio of CPU µs/req | value | per round (median, min–max) | goal | |",
            "| --- | ---: | ---: | ---: | --- |"]
    for ra in sm["ratios"]:
        val = "—" if ra["value"] is None else f"{ra['value']:.2f}×"
        goal = "" if ra["goal"] is None else f"≤ {ra['goal']:g}×"
        out.append(f"| {ra['name']} | {val} | {_cell(ra['per_round'], 2)} | {goal} | {_verdict(ra['met'])} |")
    out += ["", "Added latency at one request in flight (system minus direct in the same round, µs, median "
            "over rounds with min–max):", "", "| system | added p50 µs | added p99 µs | goal p99 | |",
            "| --- | ---: | ---: | ---: | --- |"]
    for system, a in sm["added"].items():
        goal = "" if system == "rawproxy" else f"≤ {GOAL_ADDED_P99_US:g}"
        out.append(f"| {system} | {_cell(a['p50_us'], 0)} | {_cell(a['p99_us'], 0)} | {goal} | {_verdict(a['met'])} |")
    out += ["", "CPU is user+sys of each system's process tree (Granian's main process and its worker) from "
            "`/proc` over the load generator's measured window (opened after the warm-up plus the generator's "
            f"start-up, {m.get('generator_start_s', '?')} s, so the warm-up stays out), divided by the answers "
            "counted in that window. Each system runs at its own throughput under the same closed-loop "
            "concurrency. \"Other CPU\": CPU the machine spent outside this run's processes during the window "
            "(other people's processes, interrupts), in cores: near 0 on a quiet machine.", ""]
    if sm.get("disturbed"):
        out[2:2] = [f"**Disturbed**: during some load the machine spent up to {sm['other_cpu_max']:.2f} cores on "
                    "work outside this run (another process): its figures are less trustworthy.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, help="seconds per load after the warm-up (default 5)")
    p.add_argument("--repeat", type=int, help="interleaved rounds (default 3)")
    p.add_argument("--concurrency", type=int, help="closed-loop concurrency of the unary and stream loads (32)")
    p.add_argument("--quick", action="store_true", help="one round of 1 s loads: a smoke run")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--no-pin", action="store_true", help="do not pin the systems and the load to cores")
    a = p.parse_args(argv)
    s = CeilingSettings.quick() if a.quick else CeilingSettings()
    if a.duration is not None:
        s.duration = a.duration
    if a.repeat is not None:
        s.repeat = max(1, a.repeat)
    if a.concurrency is not None:
        s.concurrency = max(1, a.concurrency)
    from bench.run import machine_info, package_versions

    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info()
    machine["loopback_rtt_us"] = loopback_rtt_us()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        run = run_ceiling(s, Path(tmp), pin=not a.no_pin)
    data = {"meta": {"kind": "ceiling", "started": started.isoformat(timespec="seconds"), "machine": machine,
                     "packages": package_versions(), "pinning": run["pinning"], "settings": asdict(s),
                     "command": "python -m bench.ceiling " + " ".join(shlex.quote(x) for x in argv),
                     "commands": run["commands"], "generator_start_s": run["generator_start_s"],
                     "elapsed_s": round(time.monotonic() - t0, 1)},
            "summary": run["summary"], "rounds": run["rounds"]}
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stamp}-ceiling.json", out_dir / f"{stamp}-ceiling.md"
    js.write_text(json.dumps(data, indent=1))
    text = ceiling_markdown(data)
    md.write_text(text)
    shutil.copyfile(js, out_dir / "ceiling-latest.json")
    shutil.copyfile(md, out_dir / "ceiling-latest.md")
    print(text)
    print(f"results: {js}\n         {md}  (and ceiling-latest.*)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
