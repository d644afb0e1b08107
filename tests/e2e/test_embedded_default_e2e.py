"""README's first command: `relaygate serve` with no config runs the embedded default (the built-in mock
provider, no keys, no Redis) on a SQLite database in the data directory, created on first start, where its
requests' spend rows land; `embedded_database = false` and an explicit DATABASE_URL are honoured."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProc, free_port, start_gateway, stop_process, wait_ready

pytestmark = pytest.mark.e2e


def _serve(data_dir: Path, log_path: Path, env: dict[str, str]) -> GatewayProc:
    port = free_port()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "relaygate.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port), "--workers", "1"], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**env, "RELAYGATE_DATA_DIR": str(data_dir)})
    gw = GatewayProc(proc, port, log_path)
    wait_ready(gw.url + "/health/readiness", proc, log_path)
    return gw


def _rows(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT model_group, status FROM rg_spend_logs ORDER BY start_time").fetchall()


def test_no_config_serves_the_mock_on_a_sqlite_file_in_the_data_dir() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with tempfile.TemporaryDirectory(prefix="rg-embedded-") as tmp:
        data_dir = Path(tmp) / "data" / "nested"  # created on first start
        gw = _serve(data_dir, Path(tmp) / "gateway.log", env)
        try:
            r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                           json={"model": "mock-echo", "messages": [{"role": "user", "content": "hello"}]})
            assert r.status_code == 200, r.text
            db = data_dir / "relaygate.db"
            assert db.exists()
            deadline = time.monotonic() + 20
            while not _rows(db) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _rows(db) == [("mock-echo", "success")]
            logs = httpx.get(gw.url + "/spend/logs", timeout=30)  # no master key: every caller is the admin
            assert logs.status_code == 200 and len(logs.json()) == 1, logs.text
            assert "sqlite:///" in gw.log() and str(db) in gw.log()
        finally:
            stop_process(gw.proc)
        # a second start finds the schema in place and keeps the rows
        gw = _serve(data_dir, Path(tmp) / "gateway2.log", env)
        try:
            assert len(_rows(data_dir / "relaygate.db")) == 1
            assert "upgraded" not in gw.log()
        finally:
            stop_process(gw.proc)


def test_embedded_database_off_has_no_store() -> None:
    with start_gateway('[server]\nembedded_database = false\n\n[[models]]\nname = "m"\nmodel = "mock/echo"\n',
                       suffix=".toml") as gw:
        r = httpx.get(gw.url + "/spend/logs", timeout=30)
        assert r.status_code == 503, r.text
        assert not (Path(gw.log_path).parent / "relaygate.db").exists()


def test_litellms_config_file_path_is_the_config_without_an_argument(tmp_path: Path) -> None:
    """LiteLLM's containers name their file in ``CONFIG_FILE_PATH`` and start the proxy without ``--config``;
    relaygate serving its embedded mock config instead would answer every model with a mock and no keys."""
    import os

    cfg = tmp_path / "litellm.yaml"
    cfg.write_text("model_list:\n  - model_name: from-the-env-file\n    litellm_params: {model: mock/echo}\n"
                   "general_settings:\n  master_key: sk-env-file\n")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    gw = _serve(tmp_path / "data", tmp_path / "gateway.log", {**env, "CONFIG_FILE_PATH": str(cfg)})
    try:
        assert httpx.get(gw.url + "/v1/models", timeout=30).status_code == 401  # the file's master key
        models = httpx.get(gw.url + "/v1/models", headers={"authorization": "Bearer sk-env-file"}, timeout=30)
        assert [m["id"] for m in models.json()["data"]] == ["from-the-env-file"]
    finally:
        stop_process(gw.proc)
    # a config LiteLLM would fetch from a bucket: refused at once, saying what to do
    out = subprocess.run([sys.executable, "-m", "relaygate.cli", "serve", "--port", str(free_port())],
                         env={**env, "LITELLM_CONFIG_BUCKET_NAME": "my-bucket"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "LITELLM_CONFIG_BUCKET_NAME" in out.stderr and "--config" in out.stderr


def test_litellms_server_root_path(tmp_path: Path) -> None:
    """``SERVER_ROOT_PATH``: behind an ingress that keeps a path prefix, every route answers under it (and at
    the root, as LiteLLM's); a path that only starts with the same letters is not under it."""
    import openai

    cfg = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n"
    with start_gateway(cfg, env={"SERVER_ROOT_PATH": "/api/v1/"}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/api/v1", api_key="sk-any", max_retries=0)
        try:
            r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "under a prefix"}])
            assert r.choices[0].message.content
            assert [m.id for m in client.models.list()] == ["m"]
        finally:
            client.close()
        assert httpx.get(gw.url + "/api/v1/v1/models", timeout=30).status_code == 200
        assert httpx.get(gw.url + "/v1/models", timeout=30).status_code == 200
        assert httpx.get(gw.url + "/api/v1x/models", timeout=30).status_code == 404
        assert httpx.get(gw.url + "/api/v1/health/liveliness", timeout=30).status_code == 200
