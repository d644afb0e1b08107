"""The store in a real gateway: the embedded SQLite file created beside the config on first start, a
PostgreSQL database shared by two workers, and ``/health/readiness`` reporting it as LiteLLM does."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

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
