"""Per-request cost of the completion path inside a running event loop (uvloop, as Granian runs it).

    python bench/micro/sinks_loop.py [--n 200000]

Each "request" is one loop iteration (a coroutine that yields with ``asyncio.sleep(0)``). CPU time of
this process (``process_time``, so other load on the machine counts less), min of several runs, per
request, over an empty loop iteration:

- ``direct``: ``Metrics.observe(...)`` called on the request path (today's shell);
- ``queue xK``: build a ``CompletionRecord`` positionally, ``CompletionQueue.put`` it, and let the drain
  hand it to ``MetricsSink`` (which calls the same ``observe``), with K requests completing per drain
  (``delay=0``, K records put per loop iteration). K=1 is the worst case (a wake-up per request: what a
  lightly loaded worker pays, when CPU is not scarce); with the default ``delay`` of 1 ms the batch is
  the number of requests a worker completes per millisecond.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from relaygate.metrics import Metrics
from relaygate.sinks import CompletionQueue, CompletionRecord, MetricsSink, Outcome

OK = Outcome.OK


def metrics() -> Metrics:
    return Metrics(groups={"gpt-4o-mini"}, deployments={"d1"})


async def idle(n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.process_time() - t


async def direct(n: int) -> float:
    m = metrics()
    t = time.process_time()
    for _ in range(n):
        m.observe("gpt-4o-mini", "d1", 200, 0.012, 0.0004, 12, 34)
        await asyncio.sleep(0)
    return time.process_time() - t


async def via_queue(n: int, per_iteration: int = 1) -> float:
    m = metrics()
    q = CompletionQueue(delay=0)
    q.add_sink(MetricsSink(m))
    q.start()
    put = q.put
    t = time.process_time()
    for _ in range(n // per_iteration):
        for _ in range(per_iteration):
            put(CompletionRecord("call-1", "chat", False, "gpt-4o-mini", "gpt-4o-mini", "d1", "openai", "gpt-4o-mini",
                                 "ab" * 32, "alias", "team", "user", 200, OK, 12, 34, 0, 0, 0.012, None, 0.0004,
                                 0.0, False, 0, 0, 1.7e9))
        await asyncio.sleep(0)
    elapsed = time.process_time() - t
    await q.aclose()
    assert sum(m.requests.values()) == n // per_iteration * per_iteration
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.n

    def best(make: object) -> float:
        return min(uvloop.run(make()) for _ in range(args.repeat)) / n * 1e6  # type: ignore[operator]

    base = best(lambda: idle(n))
    d = best(lambda: direct(n)) - base
    print(f"empty loop iteration  {base:.3f} µs")
    print(f"direct observe        {d:.3f} µs per request")
    for k in (1, 2, 8, 64):
        q = best(lambda: via_queue(n, k)) - base / k  # noqa: B023 (called at once)
        print(f"queue x{k:<3}            {q:.3f} µs per request  (+{q - d:.3f} µs over direct)")


if __name__ == "__main__":
    main()
