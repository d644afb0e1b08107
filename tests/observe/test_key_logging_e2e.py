"""Per-key and per-team logging (LiteLLM's ``metadata.logging``) through a real ``relaygate serve`` with its
SQLite store and no callback in the config: a key made with ``/key/generate`` whose metadata names a
Langfuse project sends its requests there (to that project's credentials, resolved from ``os.environ/``),
a team's target covers its keys, and a key without targets sends nothing anywhere."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_gateway
from tests.observe.langfuse_server import LangfuseServer

pytestmark = pytest.mark.e2e

MASTER = "sk-keylog-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def test_key_and_team_targets_send_to_their_projects(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rg.db'}"
    config = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  database_url: {db}
"""
    with LangfuseServer("pk-key-project", "sk-key-project") as lf_key, \
            LangfuseServer("pk-team-project", "sk-team-project") as lf_team:
        env = {"RG_TEST_KEY_LF_SECRET": "sk-key-project", "LANGFUSE_FLUSH_INTERVAL": "0.05"}
        with start_gateway(config, env=env) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
            target = {"callback_name": "langfuse", "callback_type": "success",
                      "callback_vars": {"langfuse_public_key": "pk-key-project",
                                        "langfuse_secret_key": "os.environ/RG_TEST_KEY_LF_SECRET",
                                        "langfuse_host": lf_key.url}}
            r = c.post("/key/generate", headers=ADMIN, json={"metadata": {"logging": [target]}})
            assert r.status_code == 200, r.text
            logged = r.json()["key"]
            r = c.post("/team/new", headers=ADMIN, json={"team_alias": "t", "metadata": {"logging": [
                {"callback_name": "langfuse", "callback_vars": {
                    "langfuse_public_key": "pk-team-project", "langfuse_secret_key": "sk-team-project",
                    "langfuse_host": lf_team.url}}]}})
            assert r.status_code == 200, r.text
            r = c.post("/key/generate", headers=ADMIN, json={"team_id": r.json()["team_id"]})
            team_key = r.json()["key"]
            plain = c.post("/key/generate", headers=ADMIN, json={}).json()["key"]
            ids = {}
            for name, key in (("logged", logged), ("team", team_key), ("plain", plain)):
                r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "m", "messages": [{"role": "user", "content": f"from {name}"}],
                                 "metadata": {"generation_name": f"gen-{name}"}})
                assert r.status_code == 200, r.text
                ids[name] = r.headers["x-litellm-call-id"]
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (lf_key.accepted and lf_team.accepted):
                time.sleep(0.05)
            time.sleep(0.3)  # anything else that was going to arrive has arrived
    key_gens = {e["body"]["id"] for e in lf_key.accepted if e["type"] == "generation-create"}
    team_gens = {e["body"]["id"] for e in lf_team.accepted if e["type"] == "generation-create"}
    assert key_gens == {ids["logged"]}
    assert team_gens == {ids["team"]}
    assert ids["plain"] not in key_gens | team_gens
    # the key project's server checked Basic auth with the secret resolved from os.environ/
    assert all(status < 400 for status, _ in lf_key.requests)

