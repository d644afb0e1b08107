"""LiteLLM's credential routes (``management.credentials``) against a real ``relaygate serve`` (two workers, SQLite)
and a real mock upstream: a stored credential's values serve the stored models that name it (the upstream sees
its key), a change to it reaches every worker, values are sealed at rest and masked in answers, and LiteLLM's
refusals (the rules, on both databases: tests/management/test_credentials.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.procs import start_mock
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-credentials-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
UP_KEY = "sk-upstream-from-credential-1234"


def _config(db: Path) -> str:
    return f"""
model_list:
  - model_name: plain
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
  store_model_in_db: true
"""


def _chat(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=ADMIN, timeout=20,
                      json={"model": "via-cred", "messages": [{"role": "user", "content": "hello"}]})


def _upstream_keys(mock: Any) -> set[str]:
    return {v for r in mock.requests() for k, v in r["headers"] if k.lower() == "authorization"}


def test_stored_credential_serves_stored_models(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with start_mock(name="cred-up") as mock, start_gateway(_config(db), workers=2) as gw:
        url = gw.url
        mark = gw.mark()
        r = httpx.post(url + "/credentials", headers=ADMIN, json={
            "credential_name": "team-openai", "display_name": "Team OpenAI",
            "credential_values": {"api_key": UP_KEY, "api_base": mock.openai_base},
            "credential_info": {"custom_llm_provider": "openai"}})
        assert r.status_code == 200 and r.json() == {"success": True, "message": "Credential created successfully"}
        gw.wait_swapped(mark)  # a stored credential is part of what every worker serves: its swap, before the next
        r = httpx.post(url + "/credentials", headers=ADMIN, json={"credential_name": "team-openai",
                                                                  "credential_values": {"api_key": "x"}})
        assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
        listed = httpx.get(url + "/credentials", headers=ADMIN).json()
        view = listed["credentials"][0]
        assert view == {"credential_name": "team-openai", "display_name": "Team OpenAI",
                        "credential_values": {"api_key": "sk****34", "api_base": mock.openai_base},
                        "credential_info": {"custom_llm_provider": "openai"}, "source": "db"}
        assert UP_KEY not in httpx.get(url + "/credentials/by_name/team-openai", headers=ADMIN).text
        with sqlite3.connect(db) as c:  # sealed at rest
            stored = c.execute("SELECT credential_values FROM rg_credentials").fetchone()[0]
        assert UP_KEY not in stored and mock.openai_base not in stored

        mark = gw.mark()
        r = httpx.post(url + "/model/new", headers=ADMIN, json={
            "model_name": "via-cred", "litellm_params": {"model": "openai/mock-model",
                                                         "litellm_credential_name": "team-openai"}})
        assert r.status_code == 200, r.text
        gw.wait_swapped(mark)  # every worker serves it (the other one within its change poll)
        assert all(_chat(url).status_code == 200 for _ in range(6))
        assert _upstream_keys(mock) == {f"Bearer {UP_KEY}"}

        # a new key in the credential: every worker's model calls with it (within a second)
        mark = gw.mark()
        r = httpx.patch(url + "/credentials/team-openai", headers=ADMIN, json={
            "credential_values": {"api_key": "sk-rotated-upstream-key-5678", "api_base": mock.openai_base}})
        assert r.status_code == 200, r.text
        gw.wait_swapped(mark)
        mock.reset()
        for _ in range(6):
            assert _chat(url).status_code == 200
        assert _upstream_keys(mock) == {"Bearer sk-rotated-upstream-key-5678"}

        model_id = next(m["model_info"]["id"] for m in httpx.get(url + "/model/info", headers=ADMIN).json()["data"]
                        if m["model_name"] == "via-cred")
        by_model = httpx.get(f"{url}/credentials/by_model/{model_id}", headers=ADMIN).json()
        assert by_model == {"credential_name": f"via-cred-credential-{model_id}", "credential_info": {},
                            "credential_values": {"api_key": "sk****78", "api_base": mock.openai_base}}, by_model
        assert httpx.get(url + "/credentials/by_model/nope", headers=ADMIN).status_code == 404
        # blocked (LiteLLM's /model/block): no worker serves it, /model/info still lists it; unblocked: served again
        mark = gw.mark()
        assert httpx.post(url + "/model/block", headers=ADMIN, json={"model_id": model_id}).json()["blocked"] is True
        gw.wait_swapped(mark)
        assert all(_chat(url).status_code == 400 for _ in range(6))
        shown = httpx.get(f"{url}/model/info?litellm_model_id={model_id}", headers=ADMIN).json()["data"]
        assert [m["model_info"]["blocked"] for m in shown] == [True]
        mark = gw.mark()
        assert httpx.post(url + "/model/unblock", headers=ADMIN, json={"model_id": model_id}).json()["blocked"] is False
        gw.wait_swapped(mark)
        assert all(_chat(url).status_code == 200 for _ in range(6))
        r = httpx.delete(url + "/credentials/team-openai", headers=ADMIN)
        assert r.status_code == 409 and "used by stored model" in r.json()["error"]["message"]
        assert httpx.post(url + "/model/delete", headers=ADMIN, json={"id": model_id}).status_code == 200
        assert httpx.delete(url + "/credentials/team-openai", headers=ADMIN).json()["success"] is True
        assert httpx.get(url + "/credentials/by_name/team-openai", headers=ADMIN).status_code == 404
