"""Render a lanes result (``bench/results/*-lanes.json``) as Markdown and PNGs.

Presentation only, like ``bench.report``: the headline table (one row per lane and system, "n/a: reason"
where a system cannot run a lane), the streams table, every sweep step, the mock-ceiling flags, and three
plots: the frontier curve per system (p99 against req/s, one panel per lane), streams sustained as bars,
and RSS over time per system. ``python -m bench.lanereport FILE.json`` re-renders a file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from bench.figures import P99_BOUNDS_MS
from bench.lanes import CPU_RATIO_GOALS
from bench.report import COLORS, _f

__all__ = ["lanes_markdown", "render_lanes"]

LANE_COLORS = {**COLORS, "portkey": "#2ca02c", "rawproxy": "#8c564b", "hello": "#bcbd22"}


def _mib(x: Any) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _us(x: Any) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _flags(r: dict[str, Any]) -> str:
    flags = r.get("mock_ceiling_flags") or []
    out = ("⚠ mock ceiling: " + ", ".join(flags)) if flags else ""
    sweep = r.get("sweep") or []
    if sweep and sweep[-1].get("verdict"):
        out += f" stopped at {sweep[-1]['concurrency']}: {'; '.join(sweep[-1]['verdict'])}"
    if r.get("log_hint"):
        out += f" (its log: `{r['log_hint'][:160].replace('|', '/').replace('`', '')}`)"
    return out.strip()


def _headline(data: dict[str, Any]) -> list[str]:
    bounds = [f"p99<={b:g}ms" for b in P99_BOUNDS_MS]
    rows = ["| lane | system | added p50 µs | added p99 µs | " + " | ".join(f"req/s {b}" for b in bounds) +
            " | req/s max | CPU µs/req | RSS idle / steady / after MiB | growth MiB/min | ready s | note |",
            "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in bounds) +
            " | ---: | ---: | ---: | ---: | ---: | --- |"]
    for lane_name, lane in data["lanes"].items():
        for sys_name, r in lane["systems"].items():
            if "streams_sustained" in r or ("na" in r and "streams" in lane_name):
                continue
            if "na" in r:
                rows.append(f"| {lane_name} | {sys_name} | n/a: {r['na']} |" + " |" * (len(bounds) + 7))
                continue
            fr, add, mem = r.get("frontier", {}), r.get("added", {}), r.get("memory", {})
            rss = (f"{_mib(r.get('idle_rss_mib'))} / {_mib(mem.get('steady_rss_mib'))} / "
                   f"{_mib(mem.get('after_rss_mib'))}" if "idle_rss_mib" in r else "—")
            rows.append(f"| {lane_name} | {sys_name} | {_us(add.get('p50_us'))} | {_us(add.get('p99_us'))} | " +
                        " | ".join(_f(fr.get(b), 0) for b in bounds) + f" | {_f(fr.get('unbounded'), 0)} | "
                        f"{_f(r.get('cpu_us_per_req'), 1)} | {rss} | {_f(mem.get('growth_mib_per_min'), 2)} | "
                        f"{_f(r.get('start_to_ready_s'), 2)} | {_flags(r)} |")
    return rows


def _streams(data: dict[str, Any]) -> list[str]:
    rows = ["| lane | system | added TTFT p50 / p99 µs | added inter-frame p50 / p99 µs | streams sustained | "
            "CPU µs/stream | RSS idle / steady / after MiB | note |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    found = False
    for lane_name, lane in data["lanes"].items():
        for sys_name, r in lane["systems"].items():
            if "streams_sustained" not in r and not ("na" in r and "streams" in lane_name):
                continue
            found = True
            if "na" in r:
                rows.append(f"| {lane_name} | {sys_name} | n/a: {r['na']} | | | | | |")
                continue
            add, mem = r.get("added", {}), r.get("memory", {})
            first = (r.get("sweep") or [{}])[0].get("concurrency")
            sus = (_f(r["streams_sustained"], 0) + ("+ (sweep ended)" if r.get("streams_sustained_lower_bound") else "")
                   if r["streams_sustained"] is not None else f"< {first} (the lowest level failed)")
            rss = (f"{_mib(r.get('idle_rss_mib'))} / {_mib(mem.get('steady_rss_mib'))} / "
                   f"{_mib(mem.get('after_rss_mib'))}" if "idle_rss_mib" in r else "—")
            rows.append(f"| {lane_name} | {sys_name} | {_us(add.get('ttft_p50_us'))} / {_us(add.get('ttft_p99_us'))} | "
                        f"{_us(add.get('gap_p50_us'))} / {_us(add.get('gap_p99_us'))} | {sus} | "
                        f"{_f(r.get('cpu_us_per_req'), 1)} | {rss} | {_flags(r)} |")
    return rows if found else []


def scaling_note(cores: int | None) -> str:
    """What the relaygate vs relaygate-2w comparison can and cannot show on this machine."""
    if (cores or 0) <= 2:
        return (f"This machine has {cores} cores. relaygate-2w's second worker runs on the core the mock and the "
                "load generator use, so it competes with the measuring side: its figures here can be lower than "
                "one worker's and say nothing about scaling on a larger machine. What they do show: a 2-worker "
                "gateway starts, stays ready and answers under the same load, and what the second worker costs in "
                "memory (the RSS columns). Scaling needs a gateway core per worker plus cores for the load.")
    return (f"{cores} cores: each worker has a core of its own only if the pinning above says so; "
            "otherwise read relaygate-2w as sharing cores with the measuring side.")


def _scaling(data: dict[str, Any]) -> list[str]:
    rows = []
    for lane_name, lane in data["lanes"].items():
        one, two = lane["systems"].get("relaygate", {}), lane["systems"].get("relaygate-2w", {})
        key = "streams_sustained" if "streams_sustained" in one else "frontier"
        if key not in one or key not in two:
            continue
        a = one[key] if key == "streams_sustained" else one[key].get("unbounded")
        b = two[key] if key == "streams_sustained" else two[key].get("unbounded")
        what = "streams sustained" if key == "streams_sustained" else "req/s max"
        ratio = f"{b / a:.2f}×" if a and b else "—"
        rows.append(f"- {lane_name}: {what} 1 worker {_f(a, 0)}, 2 workers {_f(b, 0)} ({ratio})")
    return [*rows, ""] if rows else []


def calibration(data: dict[str, Any]) -> list[str]:
    """relaygate's CPU per request against the raw-proxy calibration, lane by lane, with issue 18's goals."""
    rows = ["| lane | relaygate CPU µs/req | rawproxy CPU µs/req | ratio | goal | hello CPU µs/req |",
            "| --- | ---: | ---: | ---: | --- | ---: |"]
    for lane_name, lane in data["lanes"].items():
        rg, raw = lane["systems"].get("relaygate", {}), lane["systems"].get("rawproxy", {})
        hello = lane["systems"].get("hello", {})
        a, b = rg.get("cpu_us_per_req"), raw.get("cpu_us_per_req")
        if a is None or b is None:
            continue
        ratio = a / b if b else None
        goal = CPU_RATIO_GOALS.get(lane_name)
        verdict = "—" if goal is None or ratio is None else (
            f"≤ {goal:g}×: {'met' if ratio <= goal else 'missed'}")
        rows.append(f"| {lane_name} | {_f(a, 1)} | {_f(b, 1)} | {'—' if ratio is None else f'{ratio:.2f}×'} | "
                    f"{verdict} | {_f(hello.get('cpu_us_per_req'), 1)} |")
    if len(rows) == 2:
        return []
    return ["## Calibration (issue 18's ceiling)", "",
            "CPU per request of the gateway's process tree under the fixed memory load, relaygate against the "
            "raw proxy (`bench.peers.rawproxy`: the same Granian setup relaying through a raw asyncio protocol, "
            "no auth, routing, limits or metrics) and the Granian hello world. The streams lane here is 64 "
            "deltas paced 20 ms; the issue's stream goal is for 20-chunk unpaced streams, which "
            "`python -m bench.ceiling` measures in one interleaved run.", "", *rows, ""]


def _sweeps(data: dict[str, Any]) -> list[str]:
    out = []
    for lane_name, lane in data["lanes"].items():
        out += [f"### {lane_name}: {lane['title']}", ""]
        streams = any("streams_sustained" in r for r in lane["systems"].values())
        if streams:
            out += ["| system | concurrency | streams/s | TTFT p50 / p99 ms | gap p50 / p99 / max ms | fewest frames "
                    "| errors | verdict |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        else:
            out += ["| system | concurrency | req/s | p50 ms | p99 ms | errors | CPU µs/req | generator CPU |",
                    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for sys_name, r in lane["systems"].items():
            for st in r.get("sweep", []):
                if st.get("failed"):
                    out.append(f"| {sys_name} | {st['concurrency']} | failed: {st['failed'][:200]} |" + " |" * 5)
                elif streams:
                    out.append(f"| {sys_name} | {st['concurrency']} | {_f(st['rps'], 1)} | {_f(st.get('ttft_p50_ms'))}"
                               f" / {_f(st.get('ttft_p99_ms'))} | {_f(st.get('gap_p50_ms'))} / "
                               f"{_f(st.get('gap_p99_ms'))}"
                               f" / {_f(st.get('gap_max_ms'))} | {_f(st.get('chunks_min'), 0)} | {st['error_count']} | "
                               f"{'; '.join(st.get('verdict') or []) or 'ok'} |")
                else:
                    out.append(f"| {sys_name} | {st['concurrency']} | {_f(st['rps'], 0)} | {_f(st.get('p50_ms'), 3)} | "
                               f"{_f(st.get('p99_ms'), 3)} | {st['error_count']} | {_f(st.get('cpu_us_per_req'), 1)} | "
                               f"{st.get('generator_cpu_share', 0):.0%} |")
        out += ["", f"Mock ceiling (direct, generator and mock on one core): {_f(lane.get('ceiling'), 0)}"
                f"{' streams' if streams else ' req/s'}.", ""]
    return out


def lanes_markdown(data: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    m = data["meta"]
    mach = m["machine"]
    pk = m["packages"]
    out = [f"# Gateway lanes, side by side ({m['started']})", "",
           f"`{m['command']}` — {m.get('elapsed_s', '?')} s", "",
           f"Machine: {mach['cpu_model']}, {mach['cores']} cores, {mach.get('memory_gib')} GiB, kernel "
           f"{mach['kernel']}, Python {mach['python']}; loopback round trip {mach.get('loopback_rtt_us')} µs "
           f"(median, 1-byte TCP ping-pong). Pinning: {m['pinning']}.", "",
           f"Versions: relaygate {pk.get('relaygate_commit', pk.get('relaygate'))}, granian {pk.get('granian')}, "
           f"LiteLLM proxy {pk.get('litellm_proxy', 'not run')}, Portkey gateway {pk.get('portkey_gateway')} (npm).",
           "", "## Headline", "",
           "Added = system minus direct at concurrency 1 (µs); req/s at each p99 bound from one closed-loop "
           "concurrency sweep (no level with ≥0.1% errors counts); CPU per request from the gateway's own "
           "/proc accounting under the fixed memory load; ⚠ marks a figure within 10% of the mock alone.", "",
           *_headline(data), ""]
    streams = _streams(data)
    if streams:
        out += ["## Streams", "", "64 deltas paced 20 ms. Added TTFT / inter-frame at the lowest level of the sweep; "
                "sustained = highest concurrency where every frame arrived, no gap exceeded 200 ms (10× the "
                "pacing) and errors stayed under 0.1%.", "", *streams, ""]
    out += calibration(data)
    out += ["## Scaling (1 vs 2 workers)", "", scaling_note(mach.get("cores")), "", *_scaling(data), "## Sweeps", "",
            *_sweeps(data)]
    if plots:
        out += ["## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    return "\n".join(out)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _panels(data: dict[str, Any], path: Path, has: str, title: str, xlabel: str, ylabel: str, log: bool,
            draw: Callable[[Any, str, dict[str, Any]], None]) -> bool:
    """One panel per lane where some system has ``has``; ``draw(ax, system, result)`` plots one system."""
    lanes = [(n, ln) for n, ln in data["lanes"].items() if any(r.get(has) for r in ln["systems"].values())]
    if not lanes:
        return False
    plt = _plt()
    cols = min(3, len(lanes))
    rows = (len(lanes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (name, lane) in zip(axes.flat, lanes):
        for sys_name, r in lane["systems"].items():
            draw(ax, sys_name, r)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(lanes):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _save(plt, fig, path)


def _draw_frontier(ax: Any, sys_name: str, r: dict[str, Any]) -> None:
    pts = [(st["rps"], st["p99_ms"]) for st in r.get("sweep", []) if st.get("p99_ms") and st.get("rps")]
    if r.get("frontier") and pts:
        ax.plot(*zip(*pts), marker="o", ms=3, color=LANE_COLORS.get(sys_name), label=sys_name)
    for b in P99_BOUNDS_MS:
        ax.axhline(b, ls="--", lw=0.6, color="black", alpha=0.3)


def _draw_rss(ax: Any, sys_name: str, r: dict[str, Any]) -> None:
    if r.get("rss_curve"):
        ax.plot(*zip(*r["rss_curve"]), lw=1.2, color=LANE_COLORS.get(sys_name), label=sys_name)


def plot_frontiers(data: dict[str, Any], path: Path) -> bool:
    return _panels(data, path, "frontier", "throughput frontier: p99 against req/s over the concurrency sweep",
                   "req/s (log)", "p99 ms (log)", True, _draw_frontier)


def plot_rss(data: dict[str, Any], path: Path) -> bool:
    return _panels(data, path, "rss_curve", "RSS over time: sweep, fixed load, then idle", "s since ready",
                   "RSS MiB (process tree)", False, _draw_rss)


def plot_streams(data: dict[str, Any], path: Path) -> bool:
    bars = [(f"{ln}\n{sn}", r["streams_sustained"] or 0, sn) for ln, lane in data["lanes"].items()
            for sn, r in lane["systems"].items() if "streams_sustained" in r]
    if not bars:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(bars)), 4.0))
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color=[LANE_COLORS.get(b[2]) for b in bars])
    for i, b in enumerate(bars):
        ax.text(i, b[1], f"{b[1]:,}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("concurrent streams sustained")
    ax.set_title("streams sustained (every frame, no stall > 200 ms, errors < 0.1%)")
    return _save(plt, fig, path)


def render_lanes(data: dict[str, Any], out_dir: Path, stem: str, plots: bool = True) -> dict[str, Path]:
    written: dict[str, Path] = {}
    links: dict[str, str] = {}
    if plots:
        for key, fn in (("frontier", plot_frontiers), ("streams", plot_streams), ("rss", plot_rss)):
            p = out_dir / f"{stem}-{key}.png"
            if fn(data, p):
                written[f"{key}_png"] = p
                links[key] = p.name
    md = out_dir / f"{stem}.md"
    md.write_text(lanes_markdown(data, links))
    written["md"] = md
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lanereport", description="Re-render a lanes result file")
    p.add_argument("result")
    p.add_argument("--out")
    a = p.parse_args(argv)
    src = Path(a.result)
    for path in render_lanes(json.loads(src.read_text()), Path(a.out) if a.out else src.parent, src.stem).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
