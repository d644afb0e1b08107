"""LiteLLM's graceful drain, backlog and detailed readiness through a real ``relaygate serve`` with two workers:
``/health/drain`` needs its token, marks every worker (both answer the probes 503 ``shutting_down`` at once)
and returns only when the slow requests in flight on either worker have been answered; ``/health/backlog``
and ``/health/readiness/details`` need a key; without ``enable_drain_endpoint`` the drain is a 404. And the
drain's wait in process: the other workers' reports, a worker not heard from, the timeout."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from relaygate.gateway.drain import Drain, drain_timeout
from tests.conftest import start_gateway

MASTER = "sk-drain-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}
TOKEN = "drain-token-1"


def config(enabled: bool) -> str:
    return f"""model_list:
  - model_name: slow
    litellm_params: {{model: mock/echo, mock_latency_ms: 3000}}
  - model_name: fast
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  enable_drain_endpoint: {str(enabled).lower()}
  drain_endpoint_token: {TOKEN}
"""


def probe(url: str, path: str) -> httpx.Response:
    return httpx.get(url + path, timeout=10)  # a new connection each: either worker may take it


@pytest.mark.e2e
def test_drain_marks_every_worker_and_waits_for_their_requests() -> None:
    with start_gateway(config(True), workers=2) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
        r = c.get("/health/backlog")
        assert r.status_code == 401
        r = c.get("/health/backlog", headers=AUTH)
        assert r.status_code == 200
        assert r.json() == {"in_flight_requests": 1, "admitted_requests": 0, "queued_requests": 0,
                            "rejected_requests": 0}
        assert c.get("/health/readiness/details").status_code == 401
        r = c.get("/health/readiness/details", headers=AUTH)
        assert r.status_code == 200
        details = r.json()
        assert details["status"] == "healthy" and details["db"] == "connected"  # the embedded SQLite store
        assert details["show_no_redis_warning"] is True and details["log_level"] in ("INFO", "WARNING")

        for headers in ({}, {"X-Drain-Token": "wrong"}, {"X-Drain-Token": TOKEN + "x"}):
            r = c.get("/health/drain", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["message"] == "Invalid or missing X-Drain-Token"
        assert all(probe(gw.url, "/health/readiness").status_code == 200 for _ in range(6))

        answered: list[tuple[int, float]] = []

        def slow() -> None:
            got = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=20,
                             json={"model": "slow", "messages": [{"role": "user", "content": "wait"}]})
            answered.append((got.status_code, time.monotonic()))

        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # all six in flight, on both workers
        r = httpx.get(gw.url + "/health/drain", headers={"X-Drain-Token": TOKEN}, timeout=40)
        done = time.monotonic()
        for t in threads:
            t.join()
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "drained", "drained_requests": 6}
        assert [s for s, _ in answered] == [200] * 6
        assert done >= max(at for _, at in answered)  # returned only once every slow request was answered
        for path in ("/health/readiness", "/health/liveliness", "/health/liveness"):
            for _ in range(6):
                got = probe(gw.url, path)
                assert got.status_code == 503 and got.json() == {"status": "shutting_down"}, (path, got.text)
        # still serving what reaches it; a second drain returns at once
        r = c.post("/v1/chat/completions", headers=AUTH,
                   json={"model": "fast", "messages": [{"role": "user", "content": "late"}]})
        assert r.status_code == 200
        r = httpx.get(gw.url + "/health/drain", headers={"X-Drain-Token": TOKEN}, timeout=10)
        assert r.json()["status"] == "drained"
        assert "graceful drain complete: 6 request(s) drained" in gw.log()


def in_flight_metric(c: httpx.Client) -> float:
    line = next(ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("litellm_in_flight_requests "))
    return float(line.split()[1])


@pytest.mark.e2e
def test_drain_is_off_by_default_and_in_flight_is_litellms() -> None:
    cfg = config(False) + 'litellm_settings:\n  callbacks: ["prometheus"]\n'
    with start_gateway(cfg) as gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.get("/health/drain", headers={"X-Drain-Token": TOKEN})
        assert r.status_code == 404
        assert c.get("/health/readiness").status_code == 200
        # LiteLLM's litellm_in_flight_requests: the HTTP requests the worker serves, the scrape included
        assert in_flight_metric(c) == 1.0
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(httpx.post(
            gw.url + "/v1/chat/completions", headers=AUTH, timeout=20,
            json={"model": "slow", "messages": [{"role": "user", "content": "wait"}]}).status_code))
        t.start()
        try:
            deadline = time.monotonic() + 1.5
            while in_flight_metric(c) != 2.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert in_flight_metric(c) == 2.0
        finally:
            t.join()
        assert out == [200] and in_flight_metric(c) == 1.0


def fake_gateway(tmp: Path | None, workers: int) -> Any:
    general = SimpleNamespace(enable_drain_endpoint=True, drain_endpoint_token=None)
    config = SimpleNamespace(general=general, server=SimpleNamespace(workers=workers))
    return SimpleNamespace(active=1, runtime=SimpleNamespace(config=config), admission=None)


def test_the_wait_counts_the_other_workers_reports(tmp_path: Path) -> None:
    gw = fake_gateway(tmp_path, 3)
    drain = Drain(gw, str(tmp_path))
    other = os.getppid()  # a live process standing for another worker
    gone = 2**22 + 12345  # no such process: its report is ignored

    async def main() -> int:
        drain.start("a test")
        (tmp_path / "drain" / str(other)).write_text("2")
        (tmp_path / "drain" / str(gone)).write_text("5")

        async def finish() -> None:
            await asyncio.sleep(0.3)
            (tmp_path / "drain" / str(other)).write_text("0")

        task = asyncio.ensure_future(finish())
        # three workers configured, one other heard from: it waits out the timeout
        got = await drain.wait(0.6, poll=0.02)
        await task
        return got

    assert asyncio.run(main()) == 0  # never heard from every worker: counted from the last look (0 left)
    assert (tmp_path / "drain" / "marker").exists()


def test_the_wait_returns_once_every_worker_is_idle(tmp_path: Path) -> None:
    gw = fake_gateway(tmp_path, 2)
    drain = Drain(gw, str(tmp_path))
    other = os.getppid()

    async def main() -> int:
        drain.start("a test")
        (tmp_path / "drain" / str(other)).write_text("3")
        gw.active = 2  # the drain call and one request of its own worker

        async def finish() -> None:
            await asyncio.sleep(0.2)
            gw.active = 1
            (tmp_path / "drain" / str(other)).write_text("0")

        task = asyncio.ensure_future(finish())
        got = await drain.wait(30.0, poll=0.02)
        await task
        return got

    assert asyncio.run(main()) == 4
    assert asyncio.run(drain.wait(10.0)) == 0  # once per instance


def test_timeout_setting() -> None:
    assert drain_timeout({}) == 30.0
    assert drain_timeout({"GRACEFUL_SHUTDOWN_TIMEOUT": "2.5"}) == 2.5
    for bad in ("abc", "-1", "nan", "inf", "1e9"):
        assert drain_timeout({"GRACEFUL_SHUTDOWN_TIMEOUT": bad}) == 30.0
