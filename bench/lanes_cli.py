"""``python -m bench.run --lanes ...``: run the lanes side by side and write the results.

``python -m bench.run --lanes all [--systems direct,rawproxy,hello,relaygate,relaygate-2w,litellm,portkey] [--quick]``

The orchestration around ``bench.lanerun``: the machine's description (CPU model, cores, loopback round
trip), the core split (gateway on its own core, mock and load generator on the other), one mock per lane
run, a tqdm bar per lane, and the output: ``<out>/<UTC stamp>-lanes.json`` (every sweep step, RSS curve and
config), ``.md`` (``bench.lanereport``), PNGs, and copies named ``lanes-latest.*``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.lanerun import LaneSettings, lane_names, loopback_rtt_us, pinning, run_lane, settings_dict
from bench.lanes import LANE_SYSTEMS, PORTKEY_VERSION
from bench.procs import launch_mock
from bench.scenarios import Settings
from bench.selftest import core_split

__all__ = ["main_lanes"]


def main_lanes(a: argparse.Namespace, argv: list[str]) -> int:
    from tqdm import tqdm

    from bench.lanereport import render_lanes
    from bench.run import machine_info, package_versions

    try:
        lanes = lane_names(a.lanes)
    except ValueError as exc:
        print(f"bench.run: {exc}", file=sys.stderr)
        return 2
    systems = [x for x in (a.systems or ",".join(LANE_SYSTEMS)).split(",")
               if x and not (a.no_litellm and x == "litellm")]
    bad = [x for x in systems if x not in LANE_SYSTEMS]
    if bad:
        print(f"bench.run --lanes: unknown system(s) {', '.join(bad)} (known: {', '.join(LANE_SYSTEMS)})",
              file=sys.stderr)
        return 2
    if "direct" not in systems:
        systems.insert(0, "direct")
    s = LaneSettings.quick() if a.quick else LaneSettings()
    if a.duration is not None:
        s.step_s = s.stream_step_s = a.duration
    if a.mem_seconds is not None:
        s.mem_s = a.mem_seconds
        s.growth_window_s = a.mem_seconds / 2  # the growth figure: the fixed load's second half
    gw, load = (None, None) if a.no_pin else core_split()
    cpus = {"gw": gw, "load": load, "both": f"{gw},{load}" if gw is not None else None}
    load_s = Settings(load_cpus=load, timeout=s.timeout + 5)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info()
    machine["loopback_rtt_us"] = loopback_rtt_us()
    versions = package_versions()
    versions["portkey_gateway"] = PORTKEY_VERSION
    if "litellm" in systems:
        from bench.litellm_env import LITELLM_VERSION
        versions["litellm_proxy"] = LITELLM_VERSION
    data: dict[str, Any] = {
        "meta": {"kind": "lanes", "started": started.isoformat(timespec="seconds"), "machine": machine,
                 "packages": versions, "pinning": pinning(cpus),
                 "command": "python -m bench.run " + " ".join(shlex.quote(x) for x in argv),
                 "settings": settings_dict(s), "systems": systems},
        "lanes": {},
    }
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-lanes-") as tmp_s:
        tmp = Path(tmp_s)
        for lane_name in lanes:
            from bench.lanes import LANES

            lane = LANES[lane_name]
            lane_tmp = tmp / lane_name
            lane_tmp.mkdir()
            mock = launch_mock(cpus=load, name="upstream", chunks=20, log_dir=lane_tmp)
            try:
                with tqdm(total=len(systems), desc=f"{lane_name:13s}", unit="sys", file=sys.stderr,
                          disable=None) as bar:
                    data["lanes"][lane_name] = run_lane(lane, systems, mock, s, load_s, lane_tmp, cpus, bar)
            finally:
                mock.stop()
            tqdm.write(_lane_line(lane_name, data["lanes"][lane_name]), file=sys.stderr)
    data["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
    js = out_dir / f"{stamp}-lanes.json"
    js.write_text(json.dumps(data, indent=1))
    written = render_lanes(data, out_dir, f"{stamp}-lanes", plots=not a.no_plots)
    shutil.copyfile(js, out_dir / "lanes-latest.json")
    for key, path in written.items():
        latest = out_dir / path.name.replace(stamp, "lanes-latest").replace("lanes-latest-lanes", "lanes-latest")
        if key == "md":
            latest.write_text(path.read_text().replace(f"{stamp}-lanes", "lanes-latest"))
        else:
            shutil.copyfile(path, latest)
    print(f"\nresults: {js}\n         {written['md']}  (and lanes-latest.*), {data['meta']['elapsed_s']}s")
    print(written["md"].read_text().split("\n## ", 2)[1].split("\n", 1)[1])
    return 0


def _lane_line(name: str, lane: dict[str, Any]) -> str:
    parts = []
    for sys_name, r in lane["systems"].items():
        if "na" in r:
            parts.append(f"{sys_name}: n/a")
        elif "streams_sustained" in r:
            parts.append(f"{sys_name}: {r['streams_sustained']} streams")
        else:
            parts.append(f"{sys_name}: {r['frontier'].get('unbounded') or 0:,.0f}/s")
    return f"[{name}] " + " | ".join(parts)
