"""The store in a real gateway: the embedded SQLite file created beside the config on first start, a
PostgreSQL database shared by two workers, and ``/health/readiness`` reporting it as LiteLLM does."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_gateway
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e

CONFIG = """model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
"""


def _readiness(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/health/readiness", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_embedded_sqlite_beside_the_config() -> None:
    with start_gateway(CONFIG) as gw:
        body = _readiness(gw.url)
        assert body["db"] == "connected" and body["status"] == "healthy"
        cfg_dir = Path(gw.proc.args[gw.proc.args.index("--config") + 1]).parent  # type: ignore[union-attr, index]
        assert (cfg_dir / "relaygate.db").exists()
        assert "database sqlite:///" in gw.log()


def test_no_database_reports_not_connected() -> None:
    with start_gateway(CONFIG + "relaygate_settings:\n  embedded_database: false\n") as gw:
        assert _readiness(gw.url)["db"] == "Not connected"


def test_postgres_with_two_workers(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    with start_gateway(CONFIG + f"general_settings:\n  database_url: {url}\n", workers=2) as gw:
        for _ in range(4):
            assert _readiness(gw.url)["db"] == "connected"
        log = gw.log()
        assert "postgresql://postgres:***@127.0.0.1" in log and "pg-s3cret-pw" not in log


def test_readiness_while_postgres_refuses_connections(postgres_server: PostgresServer) -> None:
    """LiteLLM 1.110's probe: a configured database that does not answer is ``disconnected`` and a 503 (the
    orchestrator takes the pod out of rotation), unless ``allow_requests_on_db_unavailable`` (served on, 200);
    ``connected`` and 200 again once it answers."""
    import asyncio
    import time

    import asyncpg
    import httpx

    def wait_until(check: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    url = postgres_server.new_database()
    name = url.rsplit("/", 1)[1]

    def admin(sql: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(postgres_server.url())
            try:
                await conn.execute(sql)
            finally:
                await conn.close()
        asyncio.run(run())

    def probe(gw_url: str) -> httpx.Response:
        return httpx.get(gw_url + "/health/readiness", timeout=20)

    base = CONFIG + f"general_settings:\n  database_url: {url}\n"
    with start_gateway(base) as strict, \
            start_gateway(base + "  allow_requests_on_db_unavailable: true\n") as lenient:
        assert probe(strict.url).status_code == 200 and probe(lenient.url).status_code == 200
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            wait_until(lambda: probe(strict.url).status_code == 503, "the strict gateway unready")
            r = probe(strict.url)
            assert r.json()["db"] == "disconnected" and r.json()["status"] == "healthy"
            seen: list[httpx.Response] = []
            wait_until(lambda: seen.append(probe(lenient.url)) or seen[-1].json()["db"] == "disconnected",
                       "the lenient gateway sees it")
            assert {r.status_code for r in seen} == {200}  # in rotation throughout
        finally:
            admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_until(lambda: probe(strict.url).status_code == 200, "the strict gateway ready again")
        assert probe(strict.url).json()["db"] == "connected"
