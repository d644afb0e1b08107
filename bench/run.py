"""Side-by-side runner: one command measures direct (no gateway), relaygate and LiteLLM in the same run.

``python -m bench.run [--quick] [--scenarios chat,stream] [--systems direct,relaygate,litellm]``

One mock upstream, one generated LiteLLM-format ``config.yaml``, every system started from it in turn with
the gateway pinned to core 0 and the mock and load generator to core 1 (on a 2-core machine). For each
(scenario, system) it records throughput, latency percentiles, stream chunking, errors by kind, gateway CPU
time and peak RSS, plus notes when the generator or mock may have been the bottleneck. The calibration
section is the direct system's numbers: the ceiling of the measuring setup itself.

Writes ``<out>/<timestamp>.json``, ``.md`` and PNGs, and copies them to ``latest.*``. This module owns the
orchestration and the machine description; scenarios are ``bench.scenarios``, processes
``bench.systems``, rendering ``bench.report``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT, launch_mock
from bench.report import render
from bench.scenarios import SCENARIOS, Settings, expected_seconds, run_scenario
from bench.selftest import core_split
from bench.systems import SystemSpec, start_system, write_config

__all__ = ["main", "machine_info"]

ALL_SYSTEMS = ("direct", "relaygate", "relaygate-2w", "relaygate-before", "litellm")
#: relaygate before the compiled hot path: pure twins and the aiohttp transport
BEFORE_ENV = {"RELAYGATE_NO_EXTENSIONS": "1", "RELAYGATE_TRANSPORT": "aiohttp"}
# relaygate with 2 workers runs the throughput scenarios only (the point is scaling, not every shape)
TWO_WORKER_SCENARIOS = ("chat", "stream")


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "kernel": platform.release(),
            "python": platform.python_version(), "platform": platform.platform()}


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("relaygate", "granian", "uvloop", "msgspec", "orjson"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        if commit:
            out["relaygate_commit"] = commit
    except (OSError, subprocess.TimeoutExpired):
        pass
    if shutil.which("wrk"):
        try:
            ver = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
            out["wrk"] = (ver.stdout + ver.stderr).split()[1]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            pass
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark direct (mock), relaygate and LiteLLM side by side from one config.yaml.",
        epilog="Scenarios: " + "; ".join(f"{s.name}: {s.title}" for s in SCENARIOS.values())
        + ". Scenarios with their own gateway config run on their own: python -m bench.scenarios_limits "
        "(rate limits off / local / Redis), python -m bench.scenarios_dbkeys (database keys vs master key, "
        "bad-key flood).",
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (~1 minute; with --lanes a few minutes)")
    p.add_argument("--lanes", default=None, metavar="LANES",
                   help="run the lanes instead of the scenarios: comma-separated of passthrough, anthropic-in, "
                        "anthropic-out, responses-in, governed, cached, body100k, streams, or 'all' "
                        "(systems: direct, relaygate, relaygate-2w, litellm, portkey; see bench/README.md)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    p.add_argument("--systems", default=None, help="comma-separated subset of " + ",".join(ALL_SYSTEMS) +
                   " (with --lanes: of direct,relaygate,relaygate-2w,litellm,portkey)")
    p.add_argument("--duration", type=float, default=None, help="seconds per closed-loop measurement")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"), help="results directory")
    p.add_argument("--no-litellm", action="store_true", help="same as leaving litellm out of --systems")
    p.add_argument("--mem-seconds", type=float, default=None,
                   help="with --lanes: seconds of the fixed load the memory figures are taken under "
                        "(default 120, --quick 3)")
    p.add_argument("--wrk", action="store_true", help="also measure the direct chat ceiling with wrk")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--base", metavar="DIR", default=None,
                   help="also measure relaygate from another checkout DIR (as 'relaygate-base', its src/ first on "
                        "PYTHONPATH; build its extension in place first: python setup.py build_ext --inplace), "
                        "for before/after figures from one run")
    return p


def _settings(a: argparse.Namespace) -> Settings:
    if a.quick:
        s = Settings(duration=1.5, warmup=0.5, slow_duration=1.5, frontier_step=0.7, frontier_warmup=0.5,
                     frontier_max_steps=5,
                     paired_rounds=4, paired_per_round=20)
    else:
        s = Settings()
    if a.duration is not None:
        s.duration = a.duration
        s.slow_duration = min(s.slow_duration, a.duration)
    return s


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.lanes is not None:
        from bench.lanes_cli import main_lanes

        return main_lanes(a, list(sys.argv[1:] if argv is None else argv))
    from tqdm import tqdm

    scen_names = [x for x in a.scenarios.split(",") if x]
    bad = [x for x in scen_names if x not in SCENARIOS]
    systems = [x for x in (a.systems or ",".join(ALL_SYSTEMS)).split(",")
               if x and not (a.no_litellm and x == "litellm")]
    bad += [x for x in systems if x not in ALL_SYSTEMS]
    if bad:
        print(f"bench.run: unknown scenario or system: {', '.join(bad)}", file=sys.stderr)
        return 2
    if "direct" not in systems:
        systems.insert(0, "direct")  # the baseline every comparison and the latency pairing need
    base_env: dict[str, str] = {}
    if a.base:
        base_src = Path(a.base).resolve() / "src"
        if not (base_src / "relaygate").is_dir():
            print(f"bench.run: --base {a.base}: no src/relaygate there", file=sys.stderr)
            return 2
        base_env = {"PYTHONPATH": str(base_src)}
        systems.insert(systems.index("relaygate") if "relaygate" in systems else len(systems), "relaygate-base")
    settings = _settings(a)
    gw_cpus, load_cpus = (None, None) if a.no_pin else core_split()
    settings.load_cpus = load_cpus
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    pinning = (f"gateway on cpu {gw_cpus}, mock + load generator on cpu {load_cpus}" if gw_cpus is not None
               else "none")
    data: dict[str, Any] = {
        "meta": {"started": started.isoformat(timespec="seconds"), "machine": machine_info(),
                 "packages": package_versions(), "pinning": pinning,
                 "command": "python -m bench.run " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
                 "settings": settings.__dict__},
        "scenarios": {n: SCENARIOS[n].title for n in scen_names},
        "systems": {},
        "calibration": {},
        "results": {n: {} for n in scen_names},
    }
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp_s:
        tmp = Path(tmp_s)
        mock = launch_mock(cpus=load_cpus, name="upstream", chunks=20, log_dir=tmp)
        try:
            config = write_config(tmp, mock.port)
            data["meta"]["config_yaml"] = config.read_text()
            direct = start_system(SystemSpec("direct", "direct"), config, mock.url, tmp)
            if a.wrk:
                _wrk_calibration(data, mock.url, settings)
            for sys_name in systems:
                kind = "relaygate" if sys_name.startswith("relaygate") else sys_name
                workers = 2 if sys_name == "relaygate-2w" else 1
                cpus = gw_cpus if workers == 1 or gw_cpus is None else f"{gw_cpus},{load_cpus}"
                todo = [n for n in scen_names if kind in SCENARIOS[n].kinds
                        and (sys_name not in ("relaygate-2w", "relaygate-before") or n in TWO_WORKER_SCENARIOS)]
                if not todo:
                    continue
                spec = SystemSpec(sys_name, kind, workers=workers, cpus=cpus,
                                  ready_timeout=180.0 if kind == "litellm" else 60.0,
                                  env=BEFORE_ENV if sys_name == "relaygate-before" else
                                  base_env if sys_name == "relaygate-base" else {})
                tqdm.write(f"[{sys_name}] starting ...", file=sys.stderr)
                running = start_system(spec, config, mock.url, tmp) if kind != "direct" else direct
                data["systems"][sys_name] = {"kind": kind, "workers": workers, "cpus": cpus, "url": running.url,
                                             "error": running.error, **running.info}
                if not running.available:
                    tqdm.write(f"[{sys_name}] NOT MEASURED: {running.error}", file=sys.stderr)
                    continue
                total = sum(expected_seconds(SCENARIOS[n], kind, settings) for n in todo)
                try:
                    with tqdm(total=round(total, 1), desc=f"{sys_name:13s}", unit="s", file=sys.stderr,
                              bar_format="{desc} {bar} {n:.0f}/{total:.0f}s {postfix}", disable=None) as bar:
                        base = 0.0
                        for n in todo:
                            sc = SCENARIOS[n]
                            bar.set_postfix_str(n)

                            def tick(x: float, _base: float = base, _bar: Any = bar) -> None:
                                _bar.n = min(_base + x, _bar.total)
                                _bar.refresh()

                            res = run_scenario(sc, running, direct, mock.pid, settings, tmp,
                                               data["results"][n].get("direct"), tick)
                            data["results"][n][sys_name] = res
                            base += expected_seconds(sc, kind, settings)
                            bar.n = min(base, bar.total)
                            bar.refresh()
                            mock.reset()
                finally:
                    running.stop()
                _summarise_system(sys_name, data, todo)
        finally:
            mock.stop()
    for key in ("chat", "stream"):
        d = data["results"].get(key, {}).get("direct", {})
        if "throughput_rps" in d:
            data["calibration"][f"direct_{key}_rps_bench.load"] = d["throughput_rps"]
    data["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    json_path = out_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(data, indent=1))
    written = render(data, out_dir, stamp, plots=not a.no_plots)
    shutil.copyfile(json_path, out_dir / "latest.json")
    for key, path in written.items():
        latest = out_dir / path.name.replace(stamp, "latest")
        if key == "md":
            latest.write_text(path.read_text().replace(f"{stamp}-", "latest-"))
        else:
            shutil.copyfile(path, latest)
    print(f"\nresults: {json_path}\n         {written['md']}  (and latest.*), {data['meta']['elapsed_s']}s")
    print("\n".join(line for line in written["md"].read_text().split("## Headline", 1)[1]
                    .split("\n## ", 1)[0].splitlines() if line.strip()))
    return 0


def _summarise_system(name: str, data: dict[str, Any], todo: list[str]) -> None:
    from tqdm import tqdm

    parts = []
    for n in todo:
        r = data["results"][n].get(name, {})
        if r.get("failed"):
            parts.append(f"{n}: FAILED")
        elif "throughput_rps" in r:
            parts.append(f"{n} {r['throughput_rps']:,.0f}/s p99 {r['latency_ms'].get('p99', float('nan')):.2f}ms")
        elif "added_ms" in r:
            parts.append(f"{n} +{r['added_ms']:.3f}ms")
        elif "best_rps" in r:
            parts.append(f"{n} " + " ".join(f"{k}:{(v or 0):,.0f}" for k, v in r["best_rps"].items()))
    tqdm.write(f"[{name}] " + " | ".join(parts), file=sys.stderr)


def _wrk_calibration(data: dict[str, Any], mock_url: str, s: Settings) -> None:
    from bench import wrkdrive
    from bench.load import LoadSpec

    if not wrkdrive.available():
        data["calibration"]["wrk"] = "not installed"
        return
    for key, stream in (("chat", False), ("stream", True)):
        spec = LoadSpec(url=mock_url, stream=stream, concurrency=64, duration=max(2.0, s.duration))
        try:
            data["calibration"][f"direct_{key}_rps_wrk"] = wrkdrive.run_wrk(spec, cpus=s.load_cpus)["throughput_rps"]
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            data["calibration"][f"direct_{key}_rps_wrk"] = f"failed: {exc}"


if __name__ == "__main__":
    sys.exit(main())
