"""End to end: requests the client abandons mid-way leave nothing behind in the worker.

Each aborted request goes through the disconnect watch's other branch: Granian resolves the pending
``receive()`` with ``http.disconnect``, the watch cancels the request's task. Granian's future keeps the
callback it was given after it resolved (unlike an asyncio future), and it is invisible to the cycle
collector, so a watch that left its callback there leaked the future, the bound method and the watch
(~700 bytes) per aborted request, forever. Real Granian worker, raw sockets closed mid-stream and
mid-call, RSS of the worker process read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

CONFIG = """
model_list:
  - model_name: slow-stream
    litellm_params:
      model: mock/echo
      mock_chunks: 40
      mock_chunk_gap_ms: 50
  - model_name: slow-call
    litellm_params:
      model: mock/echo
      mock_latency_ms: 5000
# the request path's memory is watched here; spend tracking's (bounded: a buffer, SQLite's page cache) has
# its own plateau test in tests/spend/test_spend_memory_e2e.py (disable_spend_logs keeps the counters, as
# LiteLLM: spend_tracking false is what turns the sink off)
relaygate_settings:
  spend_tracking: false
"""

CONCURRENCY = 64


def _request(model: str, stream: bool) -> bytes:
    body = (f'{{"model": "{model}", "stream": {"true" if stream else "false"}, '
            f'"messages": [{{"role": "user", "content": "a b c d e f g h i j k l m n o p"}}]}}').encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


STREAM = _request("slow-stream", True)
CALL = _request("slow-call", False)


def _worker_pid(gw: GatewayProc) -> int:
    children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert m is not None
    return int(m.group(1)) * 1024


def _disconnects(gw: GatewayProc) -> int:
    text = httpx.get(gw.url + "/metrics").text
    m = re.search(r'^relaygate_events_total\{event="client_disconnected"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


async def _abort_one(port: int, stream: bool, sem: asyncio.Semaphore) -> None:
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(STREAM if stream else CALL)
            if stream:
                got = b""
                while b"data: " not in got:  # the stream is running: its head and a first frame came
                    chunk = await reader.read(65536)
                    assert chunk, got
                    got += chunk
            else:
                # the call is under way (its answer takes 5 s); nothing comes back before we leave
                await asyncio.sleep(0.05)
        finally:
            writer.transport.abort()  # RST, like a client killed mid-request
            with contextlib.suppress(Exception):  # the socket closes when the loop runs the abort: before the
                await writer.wait_closed()  # round's loop ends, else it is an unclosed-socket ResourceWarning


async def _abort_many(port: int, n: int) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)
    await asyncio.gather(*(_abort_one(port, i % 2 == 0, sem) for i in range(n)))


def _abort_round(gw: GatewayProc, n: int) -> None:
    asyncio.run(_abort_many(gw.port, n))


def _settled(gw: GatewayProc, expected: int) -> int:
    """Wait until the worker has seen every disconnect (bounded), then return the count."""
    count = _disconnects(gw)
    for _ in range(100):
        if count >= expected:
            break
        asyncio.run(asyncio.sleep(0.1))
        count = _disconnects(gw)
    return count


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProc]:
    with start_gateway(CONFIG) as gw:
        yield gw


def test_aborted_requests_do_not_leak(gateway: GatewayProc) -> None:
    """6,000 aborted requests (half streams, half non-stream calls) after a warm-up leave the RSS flat."""
    gw = gateway
    pid = _worker_pid(gw)
    _abort_round(gw, 2000)  # warm: allocator arenas, freelists, caches
    seen = _settled(gw, 2000)
    before = _rss(pid)
    n = 6000
    _abort_round(gw, n)
    after_count = _settled(gw, seen + n)
    growth = _rss(pid) - before
    # every abort took the disconnect path (else this test would measure nothing)
    assert after_count - seen >= n, (seen, after_count)
    # the leak was ~700 bytes per aborted request: 4 MiB here
    assert growth < 1536 * 1024, f"worker RSS grew {growth / 1024:.0f} KiB over {n} aborted requests"
