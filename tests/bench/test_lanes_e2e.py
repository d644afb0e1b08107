"""One short lane end to end: a real ``relaygate serve``, a real mock upstream, the real load generator.

The passthrough lane is measured through ``bench.lanerun.measure_system`` for the direct baseline and for
the gateway, with a sweep of two short levels and a brief fixed load; then the streams lane's criteria on
a real stream level. Asserts that every figure is there and consistent, never how fast anything was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import figures
from bench.lanerun import LaneSettings, added_figures, measure_system
from bench.lanes import LANES, STREAM_FRAMES, load_args, write_lane_config
from bench.procs import Proc, start_mock
from bench.scenarios import Settings
from bench.systems import MASTER_KEY, UPSTREAM_KEY, Running, SystemSpec
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

TINY = LaneSettings(sweep=(1, 4), step_s=0.6, c1_s=0.6, warmup_s=0.2, stream_levels=(2,), stream_step_s=3.0,
                    stream_warmup_s=0.2, mem_s=1.0, settle_s=0.3, sample_s=0.2, growth_window_s=1.0, timeout=10.0)


def test_passthrough_and_streams_lanes_end_to_end(tmp_path: Path) -> None:
    lane = LANES["passthrough"]
    with start_mock(name="upstream", chunks=20) as mock:
        config = write_lane_config(lane, tmp_path, mock.port).read_text()
        with start_gateway(config) as gw:
            load_s = Settings(timeout=15.0)
            direct = Running(SystemSpec("direct", "direct"), mock.url, UPSTREAM_KEY)
            args = load_args(lane, "relaygate", mock.url, tmp_path, None)
            d = measure_system(lane, direct, mock, TINY, load_s, tmp_path, args, None, lambda _w: None)
            proc = Proc(gw.proc, gw.log_path, "relaygate")
            system = Running(SystemSpec("relaygate", "relaygate"), f"http://127.0.0.1:{gw.port}", MASTER_KEY,
                             proc=proc)
            r = measure_system(lane, system, mock, TINY, load_s, tmp_path, args, 0.5, lambda _w: None)

            streams = LANES["streams"]
            sargs = load_args(streams, "relaygate", mock.url, tmp_path, None)
            quick_streams = LaneSettings(**{**TINY.__dict__, "mem_s": 1.5})
            s = measure_system(streams, system, mock, quick_streams, load_s, tmp_path, sargs, None, lambda _w: None)

    assert [st["concurrency"] for st in d["sweep"]] == [1, 4] and "memory" not in d  # direct: sweep only
    assert all(st["error_count"] == 0 and st["ok"] > 0 for st in r["sweep"])
    assert r["frontier"]["unbounded"] == max(st["rps"] for st in r["sweep"])
    assert r["cpu_us_per_req"] is not None and r["cpu_us_per_req"] > 0
    assert r["idle_rss_mib"] > 0 and r["memory"]["steady_rss_mib"] > 0 and r["memory"]["after_rss_mib"] > 0
    assert len(r["rss_curve"]) >= 3
    added = added_figures(lane, r, d)
    assert added["at_concurrency"] == 1 and added["p50_us"] is not None and added["p99_us"] is not None
    # streams: 64 frames paced 20 ms reach the client whole through the gateway at 2 streams
    level = s["sweep"][0]
    assert level["chunks_min"] >= STREAM_FRAMES, level
    assert figures.stream_verdict(level, STREAM_FRAMES, 20.0) == [] and s["streams_sustained"] == 2
