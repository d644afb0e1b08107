"""Redis hung (SIGSTOP) under a real Granian gateway: every request is answered within the limiter's timeout
(``local``: 200 from in-process limits; ``reject``: 503 or 200 from a lease already held, never a wait for
Redis), and after SIGCONT the return to Redis refuses nothing the in-process limiter would admit (a key
with ``rpm_limit`` 1,000,000 never gets 429).

Timings are hang guards only: the configured timeout is 0.5 s, the bound asserted is several times that.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import httpx
import pytest

from bench.procs import start_mock
from tests.conftest import start_gateway
from tests.e2e.conftest_router import config, deployment

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KEY = "sk-big-key"
TIMEOUT = 0.5
BOUND = 3.0
"""Hang guard for one request while Redis is hung (the timeout is 0.5 s; the bug made it 14.5 s)."""


async def _timed(client: httpx.AsyncClient, n: int, concurrency: int) -> list[tuple[int, float, bytes]]:
    sem = asyncio.Semaphore(concurrency)
    out: list[tuple[int, float, bytes]] = []
    body = {"model": "g", "messages": [{"role": "user", "content": "hello"}]}

    async def one() -> None:
        async with sem:
            t = time.monotonic()
            try:
                r = await client.post("/v1/chat/completions", json=body)
            except httpx.TimeoutException as exc:  # a hang: recorded, so the test can still resume Redis
                out.append((-1, time.monotonic() - t, repr(exc).encode()))
                return
            out.append((r.status_code, time.monotonic() - t, r.content))

    await asyncio.gather(*(one() for _ in range(n)))
    return out


def _run(url: str, redis_pid: int, log: Any) -> dict[str, list[tuple[int, float, bytes]]]:
    async def main() -> dict[str, list[tuple[int, float, bytes]]]:
        phases: dict[str, list[tuple[int, float, bytes]]] = {}
        async with httpx.AsyncClient(base_url=url, timeout=2 * BOUND,
                                     headers={"authorization": f"Bearer {KEY}"}) as client:
            phases["warm"] = await _timed(client, 200, 16)
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                # the start of the hang (the limiter cannot know yet), then well into it: every worker's
                # sweep (each 0.5 s) has timed out by then
                phases["hung"] = await _timed(client, 400, 16)
                await asyncio.sleep(2.0)
                phases["hung_later"] = await _timed(client, 100, 16)
            finally:
                os.kill(redis_pid, signal.SIGCONT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # every worker that noticed the hang noticed the return
                text = log()
                if text.count("is back") >= text.count("unavailable"):
                    break
                await asyncio.sleep(0.05)
            phases["back"] = await _timed(client, 400, 16)
        return phases

    return asyncio.run(main())


@pytest.mark.parametrize("mode", ["local", "reject"])
def test_redis_hung_then_resumed(redis_server: Any, mode: str) -> None:
    with start_mock(name="up") as up:
        cfg = config([deployment("g", "d1", up.openai_base)],
                     router=f"  redis_host: 127.0.0.1\n  redis_port: {redis_server.port}\n"
                            f"  redis_timeout: {TIMEOUT}\n  on_redis_failure: {mode}",
                     extra=f"relaygate_keys:\n  - key: {KEY}\n    rpm_limit: 1000000\n    models: [g]\n")
        with start_gateway(cfg, workers=2) as gw:
            phases = _run(gw.url, redis_server.proc.pid, gw.log)
            log = gw.log()
            summary = {k: sorted({s for s, _, _ in v}) for k, v in phases.items()}
            slowest = {k: round(max(d for _, d, _ in v), 2) for k, v in phases.items()}
            print(mode, summary, slowest)
            assert [s for s, _, _ in phases["warm"]] == [200] * 200
            for name in ("hung", "hung_later"):
                assert slowest[name] < BOUND, (name, slowest, log)
                if mode == "local":
                    assert summary[name] == [200], (name, summary)
                else:
                    assert set(summary[name]) <= {200, 503}, (name, summary)
            if mode == "reject":  # once the limiter knows, every request is refused
                assert summary["hung_later"] == [503], summary
                assert all(b"Redis" in b for s, _, b in phases["hung_later"])
            assert "is back" in log, log
            assert [s for s, _, _ in phases["back"]] == [200] * 400, (summary, log)
