"""Turn a runner result (``bench/results/*.json``) into a Markdown report and PNG plots.

Owns presentation only: it reads the JSON structure written by ``bench.run`` and never measures anything,
so a result file can be re-rendered later (``python -m bench.report bench/results/latest.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.hist import Histogram

__all__ = ["markdown", "plot_latency", "plot_frontier", "render"]

SYSTEM_ORDER = ("direct", "relaygate-base", "relaygate", "relaygate-2w", "relaygate-before", "litellm")
COLORS = {"direct": "#7f7f7f", "relaygate": "#1f77b4", "relaygate-2w": "#17becf", "relaygate-before": "#9467bd",
          "relaygate-base": "#ff7f0e", "litellm": "#d62728"}


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, (int, float)) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _ratio(a: float | None, b: float | None, lower_is_better: bool = False) -> str:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return "—"
    r = (b / a) if lower_is_better else (a / b)
    return f"{r:,.1f}×"


def _systems(data: dict[str, Any]) -> list[str]:
    present = list(data.get("systems", {}))
    return [s for s in SYSTEM_ORDER if s in present] + [s for s in present if s not in SYSTEM_ORDER]


def _headline(data: dict[str, Any]) -> list[str]:
    res = data.get("results", {})
    rows = ["| scenario | metric | direct | relaygate | litellm | relaygate vs litellm | relaygate vs direct |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]

    def get(sc: str, sysname: str, *path: str) -> Any:
        cur: Any = res.get(sc, {}).get(sysname)
        for p in path:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    for sc in ("chat", "stream", "body100k"):
        if sc not in res:
            continue
        d, r, li = (get(sc, s, "throughput_rps") for s in ("direct", "relaygate", "litellm"))
        rows.append(f"| {sc} | req/s | {_f(d, 0)} | {_f(r, 0)} | {_f(li, 0)} | {_ratio(r, li)} | {_ratio(r, d)} |")
        d, r, li = (get(sc, s, "latency_ms", "p99") for s in ("direct", "relaygate", "litellm"))
        rows.append(f"| {sc} | p99 ms | {_f(d)} | {_f(r)} | {_f(li)} | {_ratio(r, li, True)} | — |")
    if "latency" in res:
        r, li = get("latency", "relaygate", "added_ms"), get("latency", "litellm", "added_ms")
        d = get("latency", "relaygate", "direct_median_ms") or get("latency", "litellm", "direct_median_ms")
        rows.append(f"| latency | added ms (median) | {_f(d, 3)} (base) | {_f(r, 3)} | {_f(li, 3)} | "
                    f"{_ratio(r, li, True)} | — |")
    if "frontier" in res:
        for key in ("p99<5ms", "p99<10ms", "p99<50ms"):
            d, r, li = (get("frontier", s, "best_rps", key) for s in ("direct", "relaygate", "litellm"))
            rows.append(f"| frontier | req/s at {key} | {_f(d, 0)} | {_f(r, 0)} | {_f(li, 0)} | {_ratio(r, li)} "
                        f"| {_ratio(r, d)} |")
    if "relaygate-2w" in data.get("systems", {}):
        for sc in ("chat", "stream"):
            one, two = get(sc, "relaygate", "throughput_rps"), get(sc, "relaygate-2w", "throughput_rps")
            if two is not None:
                rows.append(f"| {sc} | req/s, 2 workers | — | {_f(two, 0)} (1 worker: {_f(one, 0)}) | — | — | — |")
    if "relaygate-before" in data.get("systems", {}):
        for sc in ("chat", "stream"):
            now, before = get(sc, "relaygate", "throughput_rps"), get(sc, "relaygate-before", "throughput_rps")
            if before is not None:
                rows.append(f"| {sc} | req/s before the compiled hot path (pure twins + aiohttp) | — | "
                            f"{_f(before, 0)} (now: {_f(now, 0)}, {_ratio(now, before)}) | — | — | — |")
    return rows


def markdown(data: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    meta = data.get("meta", {})
    m = meta.get("machine", {})
    out = [f"# relaygate bench — {meta.get('started', '')}", ""]
    out.append(f"Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, kernel {m.get('kernel', '?')}, "
               f"Python {m.get('python', '?')}. Pinning: {meta.get('pinning', 'none')}.")
    pk = meta.get("packages", {})
    if pk:
        out.append("Packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()) + ".")
    out.append(f"Command: `{meta.get('command', '')}`")
    cal = data.get("calibration", {})
    if cal:
        parts = [f"{k} {_f(v, 0)} req/s" for k, v in cal.items() if isinstance(v, (int, float))]
        out += ["", "Calibration (zero-delay mock, measured in this run): " + ", ".join(parts) + "."]
    out += ["", "## Headline", ""] + _headline(data)
    systems = data.get("systems", {})
    down = [f"- **{n}**: {s['error']}" for n, s in systems.items() if s.get("error")]
    if down:
        out += ["", "Systems that could not be measured:", ""] + down
    for sc_name, per_system in data.get("results", {}).items():
        title = data.get("scenarios", {}).get(sc_name, sc_name)
        out += ["", f"## {sc_name}: {title}", ""]
        if sc_name == "latency":
            out += ["| system | direct median ms | system median ms | added ms | errors | rounds |",
                    "| --- | ---: | ---: | ---: | --- | ---: |"]
            for n in _systems(data):
                r = per_system.get(n)
                if r is None:
                    continue
                if r.get("failed"):
                    out.append(f"| {n} | failed: {r['failed'][:120]} | | | | |")
                    continue
                out.append(f"| {n} | {_f(r.get('direct_median_ms'), 3)} | {_f(r.get('system_median_ms'), 3)} | "
                           f"{_f(r.get('added_ms'), 3)} | {r.get('errors')} | {r.get('rounds')}×{r.get('per_round')} |")
        elif sc_name == "frontier":
            out += ["| system | best req/s p99<5ms | p99<10ms | p99<50ms | steps (rate → p99 ms) |",
                    "| --- | ---: | ---: | ---: | --- |"]
            for n in _systems(data):
                r = per_system.get(n)
                if r is None:
                    continue
                b = r.get("best_rps", {})
                steps = ", ".join(f"{st['rate']:.0f}→{_f(st.get('p99_ms'), 1)}{'' if st.get('ok') else '✗'}"
                                  for st in r.get("steps", []))
                out.append(f"| {n} | {_f(b.get('p99<5ms'), 0)} | {_f(b.get('p99<10ms'), 0)} | "
                           f"{_f(b.get('p99<50ms'), 0)} | {steps} |")
        else:
            out += ["| system | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | gateway CPU ms/req | "
                    "peak RSS MiB | notes |",
                    "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
            for n in _systems(data):
                r = per_system.get(n)
                if r is None:
                    continue
                if r.get("failed"):
                    out.append(f"| {n} | failed: {r['failed'][:160]} | | | | | | | | |")
                    continue
                lat = r.get("latency_ms", {})
                rsc = r.get("resources", {})
                rss = rsc.get("gateway_peak_rss_kib")
                errs = ", ".join(f"{k} {v}" for k, v in r.get("errors", {}).items()) or "0"
                extra = ""
                if "chunks_per_response" in r:
                    c, a = r["chunks_per_response"], r["arrivals_per_response"]
                    extra = (f"TTFT p50 {_f(r['ttft_ms'].get('p50'))} ms; events/resp {_f(c.get('p50'), 0)}, "
                             f"arrivals/resp p50 {_f(a.get('p50'), 0)} min {_f(a.get('min'), 0)}. ")
                out.append(
                    f"| {n} | {_f(r.get('throughput_rps'), 0)} | {_f(lat.get('p50'))} | {_f(lat.get('p90'))} | "
                    f"{_f(lat.get('p99'))} | {_f(lat.get('p99_9'))} | {errs} | "
                    f"{_f(rsc.get('gateway_cpu_ms_per_request'), 3)} | "
                    f"{_f(rss / 1024 if rss else None, 0)} | {extra}{'; '.join(r.get('notes', []))} |")
    if plots:
        out += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()]
    return "\n".join(out) + "\n"


def plot_latency(data: dict[str, Any], path: Path) -> bool:
    """Latency percentile curves (log-log) per system for the closed-loop scenarios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = [s for s in ("chat", "stream", "body100k") if s in data.get("results", {})]
    if not scen:
        return False
    fig, axes = plt.subplots(1, len(scen), figsize=(5.2 * len(scen), 4.2), squeeze=False)
    ps = [50, 75, 90, 95, 99, 99.5, 99.9, 99.99]
    for ax, sc in zip(axes[0], scen):
        for name in _systems(data):
            r = data["results"][sc].get(name)
            if not r or "hist" not in r or "latency" not in r["hist"]:
                continue
            h = Histogram.from_dict(r["hist"]["latency"])
            if not h.count:
                continue
            xs = [100 / (100 - p) for p in ps]
            ys = [h.value_at(p) / 1000 for p in ps]
            ax.plot(xs, ys, marker="o", ms=3, color=COLORS.get(name), label=f"{name} ({r['throughput_rps']:,.0f}/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([100 / (100 - p) for p in ps])
        ax.set_xticklabels([f"p{p:g}" for p in ps], rotation=45, fontsize=8)
        ax.minorticks_off()
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{sc}: latency by percentile")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_frontier(data: dict[str, Any], path: Path) -> bool:
    """p99 latency against achieved throughput in the open-loop frontier search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = data.get("results", {}).get("frontier")
    if not fr:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in _systems(data):
        r = fr.get(name)
        if not r or not r.get("steps"):
            continue
        steps = sorted((st for st in r["steps"] if st.get("p99_ms")), key=lambda st: st["rate"])
        if not steps:
            continue
        ax.plot([st["throughput_rps"] for st in steps], [st["p99_ms"] for st in steps], marker="o", ms=4,
                color=COLORS.get(name), label=name)
        for st in steps:
            if not st.get("ok"):
                ax.plot(st["throughput_rps"], st["p99_ms"], marker="x", ms=9, color=COLORS.get(name))
    for limit in (5, 10, 50):
        ax.axhline(limit, ls="--", lw=0.8, color="black", alpha=0.4)
        ax.text(0.01, limit * 1.05, f"p99 {limit} ms", fontsize=7, alpha=0.6, transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("achieved requests/s (open loop, log)")
    ax.set_ylabel("p99 latency ms (log)")
    ax.set_title("throughput frontier (x = errors or rate not sustained)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render(data: dict[str, Any], out_dir: Path, stem: str, plots: bool = True) -> dict[str, Path]:
    """Write ``<stem>.md`` and PNGs next to each other; returns the written paths."""
    written: dict[str, Path] = {}
    links: dict[str, str] = {}
    if plots:
        lat, fr = out_dir / f"{stem}-latency.png", out_dir / f"{stem}-frontier.png"
        if plot_latency(data, lat):
            written["latency_png"] = lat
            links["latency"] = lat.name
        if plot_frontier(data, fr):
            written["frontier_png"] = fr
            links["frontier"] = fr.name
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(data, links))
    written["md"] = md
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description="Re-render a bench.run result file")
    p.add_argument("result", help="a JSON file written by bench.run")
    p.add_argument("--out", help="directory for the .md and .png (default: next to the JSON)")
    a = p.parse_args(argv)
    src = Path(a.result)
    data = json.loads(src.read_text())
    written = render(data, Path(a.out) if a.out else src.parent, src.stem)
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
