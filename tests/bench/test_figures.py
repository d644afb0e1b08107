"""The lane figures' rules (``bench.figures``), the lane table and the report rendering, without processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import figures
from bench.lanereport import lanes_markdown, render_lanes
from bench.lanerun import added_figures, log_hint
from bench.lanes import LANES, load_args, unsupported, write_lane_config


def _step(conc: int, rps: float, p99: float, ok: int = 1000, errors: int = 0) -> dict[str, object]:
    return {"concurrency": conc, "rps": rps, "p99_ms": p99, "p50_ms": p99 / 2, "ok": ok, "error_count": errors}


def test_frontier_takes_the_best_rate_under_each_bound() -> None:
    sweep = [_step(1, 900, 0.8), _step(4, 3000, 2.0), _step(16, 5000, 7.0), _step(64, 5200, 40.0),
             _step(256, 5100, 150.0)]
    fr = figures.frontier(sweep)
    assert fr == {"p99<=1ms": 900, "p99<=5ms": 3000, "p99<=10ms": 5000, "p99<=50ms": 5200, "p99<=100ms": 5200,
                  "unbounded": 5200}


def test_frontier_ignores_steps_with_errors_and_reports_none_when_nothing_qualifies() -> None:
    # 2 errors in 1000 is 0.2%: over the 0.1% bound, so the fastest step does not count anywhere
    sweep = [_step(1, 500, 3.0), _step(64, 9000, 4.0, ok=998, errors=2), _step(128, 8000, 20, ok=9999, errors=1)]
    fr = figures.frontier(sweep)
    assert fr["p99<=1ms"] is None
    assert fr["p99<=5ms"] == 500
    assert fr["p99<=50ms"] == 8000  # 1 in 10,000 is 0.01%: counts
    assert fr["unbounded"] == 8000
    assert figures.frontier([{"concurrency": 1, "failed": "no", "ok": 0, "error_count": 1, "rps": 0}]) == {
        **{f"p99<={b:g}ms": None for b in figures.P99_BOUNDS_MS}, "unbounded": None}


def _level(conc: int, chunks_min: int = 64, gap_max: float = 30.0, ok: int = 100, errors: int = 0) -> dict[str, object]:
    return {"concurrency": conc, "chunks_min": chunks_min, "gap_max_ms": gap_max, "ok": ok, "error_count": errors}


def test_stream_verdict_names_each_failed_criterion() -> None:
    assert figures.stream_verdict(_level(16), 64, 20.0) == []
    assert figures.stream_verdict(_level(16, gap_max=200.0), 64, 20.0) == []  # exactly 10x is not a stall
    why = figures.stream_verdict(_level(16, chunks_min=63, gap_max=250.0, ok=9999, errors=1), 64, 20.0)
    assert len(why) == 2 and why[0].startswith("frames lost") and why[1].startswith("stall")
    assert figures.stream_verdict(_level(16, ok=99, errors=1), 64, 20.0) == ["errors 1.00%"]
    assert "no stream completed" in figures.stream_verdict(_level(16, ok=0, chunks_min=None), 64, 20.0)  # type: ignore[arg-type]


def test_streams_sustained_is_the_level_below_the_first_failure() -> None:
    levels = [_level(64), _level(16), _level(256, gap_max=900.0), _level(512)]
    assert figures.streams_sustained(levels, 64, 20.0) == (64, False)
    assert figures.streams_sustained([_level(16), _level(64)], 64, 20.0) == (64, True)  # a lower bound
    assert figures.streams_sustained([_level(16, errors=5)], 64, 20.0) == (None, False)


def test_growth_rate_fits_the_last_window() -> None:
    flat_then_rising = [(float(t), 100.0) for t in range(0, 60)] + [(float(t), 100.0 + (t - 60) / 60)
                                                                    for t in range(60, 180)]
    assert figures.growth_mib_per_min(flat_then_rising, last_s=60) == pytest.approx(1.0)
    whole = figures.growth_mib_per_min(flat_then_rising)
    assert whole is not None and 0 < whole < 1.0
    assert figures.growth_mib_per_min([(0.0, 5.0)]) is None
    assert figures.growth_mib_per_min([(1.0, 5.0), (1.0, 6.0)]) is None


def test_mock_ceiling_flags_figures_within_ten_percent() -> None:
    figs = {"p99<=1ms": 1000.0, "p99<=5ms": 8950.0, "unbounded": 9100.0, "p99<=10ms": None}
    assert figures.ceiling_flags(figs, 10_000.0) == ["unbounded"]
    assert figures.ceiling_flags(figs, 9_900.0) == ["p99<=5ms", "unbounded"]
    assert figures.ceiling_flags(figs, None) == []
    assert figures.added_us(1.25, 1.0) == pytest.approx(250.0)
    assert figures.added_us(None, 1.0) is None


def test_added_figures_subtract_direct_at_concurrency_one() -> None:
    sys_res = {"sweep": [{"concurrency": 1, "p50_ms": 0.30, "p99_ms": 0.90}]}
    direct = {"sweep": [{"concurrency": 1, "p50_ms": 0.10, "p99_ms": 0.20}]}
    add = added_figures(LANES["passthrough"], sys_res, direct)
    assert add["p50_us"] == pytest.approx(200.0) and add["p99_us"] == pytest.approx(700.0)
    assert added_figures(LANES["passthrough"], sys_res, None) == {}
    assert log_hint("ok\nTypeError: immutable\nfine") == "TypeError: immutable"


def test_lane_table_configs_and_reasons(tmp_path: Path) -> None:
    assert unsupported(LANES["governed"], "litellm") and unsupported(LANES["governed"], "portkey")
    assert unsupported(LANES["passthrough"], "portkey") is None
    assert unsupported(LANES["governed"], "relaygate-2w")
    gov = write_lane_config(LANES["governed"], tmp_path, 1234, "sqlite:///x.db").read_text()
    assert "database_url: sqlite:///x.db" in gov and "prometheus" in gov and "json_logs: true" in gov
    assert "anthropic/bench-model" in write_lane_config(LANES["anthropic-out"], tmp_path, 1234).read_text()
    assert "cache: true" in write_lane_config(LANES["cached"], tmp_path, 1234).read_text()
    args = load_args(LANES["responses-in"], "relaygate", "http://127.0.0.1:9", tmp_path, None)
    body = json.loads(Path(args[args.index("--body-file") + 1]).read_text())
    assert body["input"] and "--no-check-body" in args
    pk = load_args(LANES["anthropic-out"], "portkey", "http://127.0.0.1:9", tmp_path, None)
    assert "x-portkey-provider: anthropic" in pk and "x-portkey-custom-host: http://127.0.0.1:9/v1" in pk


def _data() -> dict[str, object]:
    sweep = [_step(1, 900, 0.8), _step(16, 5000, 7.0)]
    return {"meta": {"started": "now", "command": "python -m bench.run --lanes passthrough", "pinning": "none",
                     "machine": {"cpu_model": "cpu", "cores": 2, "kernel": "k", "python": "3", "loopback_rtt_us": 20},
                     "packages": {}, "scaling_note": "2 cores"},
            "lanes": {"passthrough": {"title": "t", "ceiling": 5000, "systems": {
                "direct": {"sweep": sweep, "frontier": figures.frontier(sweep)},
                "relaygate": {"sweep": sweep, "frontier": figures.frontier(sweep), "idle_rss_mib": 50,
                              "memory": {"steady_rss_mib": 60, "after_rss_mib": 55, "growth_mib_per_min": 0.1},
                              "added": {"p50_us": 80.0, "p99_us": 200.0}, "mock_ceiling_flags": ["unbounded"],
                              "rss_curve": [[0, 50], [1, 60]], "cpu_us_per_req": 120.0},
                "portkey": {"na": "no reason"}}},
                "streams": {"title": "s", "ceiling": 64, "systems": {
                    "relaygate": {"sweep": [{**_level(16), "rps": 12.0, "verdict": []}], "streams_sustained": 16,
                                  "streams_sustained_lower_bound": True, "added": {"ttft_p50_us": 300.0}}}}}}


def test_report_renders_every_table_and_plot(tmp_path: Path) -> None:
    md = lanes_markdown(_data())  # type: ignore[arg-type]
    assert "| passthrough | portkey | n/a: no reason |" in md
    assert "⚠ mock ceiling: unbounded" in md and "16+ (sweep ended)" in md and "loopback round trip 20 µs" in md
    written = render_lanes(_data(), tmp_path, "x")  # type: ignore[arg-type]
    assert {"md", "frontier_png", "streams_png", "rss_png"} <= set(written)
    assert all(p.stat().st_size > 0 for p in written.values())
