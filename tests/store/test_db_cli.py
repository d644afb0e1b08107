"""``relaygate db upgrade`` end to end (a real process), and ``serve`` refusing to start on a database it
cannot reach, naming it without its password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from relaygate.store import migrations, open_store
from tests.conftest import dead_port, free_port
from tests.pg import PostgresServer

CONFIG = """model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
"""


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "relaygate.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})})


def test_upgrade_the_embedded_database_beside_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    first = _cli("db", "upgrade", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    db = tmp_path / "relaygate.db"
    assert db.exists()
    assert f"sqlite:///{db}: schema version {migrations.LATEST} (upgraded from version 0)" in first.stdout
    again = _cli("db", "upgrade", "--config", str(cfg))
    assert again.returncode == 0 and f"schema version {migrations.LATEST} (already up to date)" in again.stdout


def test_database_file_option_and_no_database(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG + "relaygate_settings:\n  database_file: data/gw.db\n")
    assert _cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    assert (tmp_path / "data" / "gw.db").exists()
    off = tmp_path / "off.yaml"
    off.write_text(CONFIG + "relaygate_settings:\n  embedded_database: false\n")
    res = _cli("db", "upgrade", "--config", str(off))
    assert res.returncode == 2 and "no database" in res.stderr
    assert _cli("db", "upgrade").returncode == 2


def test_upgrade_postgres_from_config_and_env(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.new_database()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG + f"general_settings:\n  database_url: {url}\n")
    res = _cli("db", "upgrade", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "postgresql://postgres:***@127.0.0.1" in res.stdout and "upgraded from version 0" in res.stdout
    assert postgres_server.url().split("@")[0].split(":")[-1] not in res.stdout  # no password
    assert not (tmp_path / "relaygate.db").exists()
    env = _cli("db", "upgrade", env={"DATABASE_URL": url})
    assert env.returncode == 0 and "already up to date" in env.stdout

    async def version() -> int:
        s = await open_store(url, migrate=False)
        try:
            return await s.schema_version()
        finally:
            await s.close()

    assert asyncio.run(version()) == migrations.LATEST


def test_serve_refuses_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://relay:very-secret-pw@127.0.0.1:{dead_port()}/gw"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG + f"general_settings:\n  database_url: {url}\n")
    res = _cli("serve", "--config", str(cfg), "--port", str(free_port()),
               env={"RELAYGATE_LOG_LEVEL": "info"}, timeout=60)
    assert res.returncode == 1
    assert "relaygate: database error: cannot connect to the database postgresql://relay:***@127.0.0.1" in res.stderr
    assert "very-secret-pw" not in res.stderr + res.stdout
    down = _cli("db", "upgrade", "--database-url", url)
    assert down.returncode == 1 and "very-secret-pw" not in down.stderr + down.stdout and "***" in down.stderr
