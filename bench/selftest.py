"""Measure the mock upstream's own ceiling: ``python -m bench.mock --self-test``.

A gateway benchmark is only meaningful if the upstream it talks to is far faster than the gateway. This
module starts a zero-delay mock pinned to one core, drives it from the other core with wrk (when installed)
and with ``bench.load``, for small non-streaming chat completions and for 20-chunk streams, and prints the
requests per second each achieved. The runner calls :func:`measure_mock` for its calibration section.
"""

from __future__ import annotations

import os
from typing import Any

from bench import wrkdrive
from bench.load import LoadSpec, run_sync
from bench.procs import launch_mock

__all__ = ["measure_mock", "mock_self_test", "core_split"]


def core_split() -> tuple[str | None, str | None]:
    """(cpus for the server under test, cpus for the load generator) on this machine, or no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return str(cpus[0]), str(cpus[1])
    return None, None


def measure_mock(duration: float = 3.0, processes: int = 1, concurrency: int = 64,
                 use_wrk: bool = True) -> dict[str, Any]:
    """Zero-delay mock throughput, by tool ("wrk" / "bench.load") and kind ("chat" / "stream20")."""
    server_cpus, load_cpus = core_split()
    mock = launch_mock(cpus=server_cpus if processes == 1 else None, processes=processes, name="selftest",
                       chunks=20)
    results: dict[str, Any] = {"processes": processes, "pinned_server": server_cpus, "pinned_load": load_cpus}
    try:
        for kind, stream in (("chat", False), ("stream20", True)):
            spec = LoadSpec(url=mock.url, stream=stream, concurrency=concurrency, duration=duration, warmup=0.5)
            if use_wrk and wrkdrive.available():
                w = wrkdrive.run_wrk(spec, threads=1, cpus=load_cpus)
                results[f"wrk_{kind}"] = {k: w[k] for k in ("throughput_rps", "latency_ms", "error_count")}
            pinned = load_cpus is not None
            if pinned:
                os.sched_setaffinity(0, {int(load_cpus)})  # type: ignore[arg-type]
            try:
                r = run_sync(spec).to_json(spec)
            finally:
                if pinned:
                    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            results[f"load_{kind}"] = {k: r[k] for k in ("throughput_rps", "latency_ms", "error_count",
                                                         "generator_cpu_share")}
    finally:
        mock.stop()
    return results


def mock_self_test(processes: int = 1, duration: float = 3.0) -> int:
    print(f"bench.mock self-test: zero-delay mock ({processes} process(es)), {duration:.0f}s per measurement")
    res = measure_mock(duration=duration, processes=processes)
    if res["pinned_server"] is not None:
        print(f"mock pinned to cpu {res['pinned_server']}, load generators to cpu {res['pinned_load']}")
    for key, val in res.items():
        if not isinstance(val, dict):
            continue
        tool, kind = key.split("_", 1)
        tool = "wrk" if tool == "wrk" else "bench.load"
        lat = val["latency_ms"]
        extra = f"  (generator at {val['generator_cpu_share']:.0%} cpu)" if "generator_cpu_share" in val else ""
        print(f"{kind:9s} via {tool:10s} {val['throughput_rps']:10.0f} req/s   p50 {lat.get('p50', 0):.2f} ms"
              f"   p99 {lat.get('p99', 0):.2f} ms   errors {val['error_count']}{extra}")
    return 0
