"""Spend logging's memory plateaus (issue 13: a bounded buffer, never unbounded growth): a real `relaygate
serve` on its embedded SQLite store writes a spend row for every request; after the buffer and SQLite's page
cache have filled once, further rounds of thousands of requests leave the worker's RSS flat (the rows' sums
are checked against the counters in test_spend_sink)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from bench.procs import start_mock
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-spend-memory"


def _rss(url: str) -> int:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    line = next(x for x in text.splitlines() if x.startswith("relaygate_worker_rss_bytes"))
    return int(line.rsplit(" ", 1)[1])


def test_spend_logging_memory_plateaus() -> None:
    with start_mock(name="up", chunks=3, seed=2) as mock:
        config = f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{mock.openai_base}"}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(config) as gw:
            def load(n: int) -> None:
                r = subprocess.run([sys.executable, "-m", "bench.load", "--url", gw.url, "--api-key", MASTER,
                                    "--model", "gpt-4o-mini", "--concurrency", "16", "--requests", str(n),
                                    "--quiet", "--timeout", "10"], capture_output=True, text=True, timeout=120)
                assert r.returncode == 0, r.stdout + r.stderr

            # warm: allocator arenas, the spend buffer's high-water mark, and SQLite's page cache (2 MB per
            # connection by default): it fills as the table grows, 2-2.6 MB over rows 3,000-9,000, so a
            # 3,000-request warm-up left the measured rounds at the edge of the bound
            load(6000)
            time.sleep(1.5)  # the last spaced batch is written
            before = _rss(gw.url)
            for _ in range(2):
                load(3000)
            time.sleep(1.5)
            growth = _rss(gw.url) - before
            assert growth < 3 * 1024 * 1024, f"worker RSS grew {growth / 1e6:.1f} MB over 6000 logged requests"
