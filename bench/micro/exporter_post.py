"""CPU of one exporter batch POST: httpx against the gateway's own HTTP/1.1 pool (``observe.post.Poster``).

    python -m bench.micro.exporter_post [--posts 50] [--events 200,1000]

A stand-in Langfuse ingestion endpoint (``bench.scenarios_observe --receiver``, pinned to CPU 1 when
``taskset`` exists) answers every batch at once. Each client POSTs ``--posts`` Langfuse-shaped batches of
each size over one keep-alive connection, after a warm-up, and the process CPU and wall time per POST are
printed: the exporter's CPU is what the worker's core pays, a wall time far above it means the receiver is
the limit. Loopback only; it stops by itself. Run it pinned (``taskset -c 0``).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

import uvloop

from bench.procs import spawn, wait_http
from relaygate.observe import post


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def batch(n: int) -> bytes:
    """``n`` Langfuse generation events of ~700 bytes (a short chat's input and output)."""
    event = {"type": "generation-create", "timestamp": "2026-12-02T00:00:00.000000Z",
             "body": {"input": [{"role": "user", "content": "hello there " * 20}], "output": {"content": "w " * 150},
                      "metadata": {"model_group": "m"}}}
    return json.dumps({"batch": [dict(event, id=f"e{i}") for i in range(n)]}).encode()


async def run(url: str, posts: int, sizes: list[int]) -> None:
    for n in sizes:
        body = batch(n)
        for name, route in (("httpx", True), ("pool", False)):
            poster = post.Poster(10.0)
            poster._route[url] = route  # the client under test, whatever the environment says
            for _ in range(5):
                await poster.post(url, body, [])
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(posts):
                answer = await poster.post(url, body, [])
                assert answer.status == 207, answer.status
            cpu, wall = (time.process_time() - cpu) / posts, (time.perf_counter() - wall) / posts
            await poster.aclose()
            print(f"{name:5s} {n:5d} events ({len(body):7d} bytes): {cpu * 1e6:7.0f} us CPU a POST, "
                  f"{cpu * 1e6 / n:5.2f} us an event; wall {wall * 1e3:5.1f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--posts", type=int, default=50)
    p.add_argument("--events", default="200,1000")
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.events.split(",") if x]
    if not 1 <= a.posts <= 1000 or not sizes or any(not 1 <= n <= 5000 for n in sizes):
        p.error("--posts in 1..1000, --events sizes in 1..5000")
    port = _free_port()
    recv = spawn([sys.executable, "-m", "bench.scenarios_observe", "--receiver", str(port)], name="receiver",
                 cpus="1")
    try:
        wait_http(f"http://127.0.0.1:{port}/", 20, recv)
        uvloop.run(run(f"http://127.0.0.1:{port}/api/public/ingestion", a.posts, sizes))
    finally:
        recv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
