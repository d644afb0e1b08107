"""``GET /health`` as LiteLLM's (``model`` / ``model_id``, 503 when none answered, a key's scope, admin-only
fields), the health check history (``/health/history``, ``/health/latest``) kept by targeted checks and
background rounds, and ``/active/callbacks``: against a real ``relaygate serve`` with a SQLite database, a real
mock upstream and a deployment whose upstream refuses connections."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bench.procs import start_mock
from tests.conftest import dead_port, start_gateway
from tests.ui.test_health_view import _wait_for

pytestmark = pytest.mark.e2e

MASTER = "sk-health-history-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def _config(ok_base: str, db: Path, extra: str = "") -> str:
    dead = f"http://127.0.0.1:{dead_port()}/v1"  # nothing listens: every check fails at once
    return f"""
model_list:
  - model_name: good
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{ok_base}"}}
    model_info: {{id: good-1}}
  - model_name: bad
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{dead}"}}
    model_info: {{id: bad-1}}
litellm_settings:
  callbacks: ["prometheus"]
  json_logs: true
  request_timeout: 42
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
{extra}"""


def test_targeted_health_checks_scope_and_history() -> None:
    with start_mock(name="ok") as ok, start_gateway(_config(ok.openai_base, Path(tempfile.mkdtemp()) / "h.db")) as gw:
        url = gw.url
        r = httpx.get(url + "/health?model=good", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["healthy_count"] == 1 and r.json()["unhealthy_count"] == 0
        assert r.json()["healthy_endpoints"][0]["api_base"] == ok.openai_base  # the admin sees it
        assert "litellm-health-field-notice" not in r.headers
        r = httpx.get(url + "/health?model_id=bad-1", headers=ADMIN)
        assert r.status_code == 503, r.text  # none answered: the status says so, the body is the same shape
        assert r.json()["healthy_count"] == 0 and r.json()["unhealthy_endpoints"][0]["model_id"] == "bad-1"
        r = httpx.get(url + "/health?model_id=no-such-id", headers=ADMIN)
        assert r.status_code == 404 and r.json()["error"]["message"] == "Model with ID no-such-id not found"
        r = httpx.get(url + "/health?model=openai/mock-model", headers=ADMIN)  # by litellm_params.model
        assert r.status_code == 200 and r.json()["healthy_count"] == 1 and r.json()["unhealthy_count"] == 1

        key = httpx.post(url + "/key/generate", headers=ADMIN, json={"models": ["good"]}).json()["key"]
        as_key = {"Authorization": f"Bearer {key}"}
        r = httpx.get(url + "/health", headers=as_key)
        assert r.status_code == 200, r.text
        assert [e["model_id"] for e in r.json()["healthy_endpoints"]] == ["good-1"]
        assert r.json()["unhealthy_endpoints"] == []  # the other group is not this key's
        assert "api_base" not in r.json()["healthy_endpoints"][0]
        assert r.headers["litellm-health-field-notice"].startswith("api_base, api_version")
        r = httpx.get(url + "/health?model=bad", headers=as_key)
        assert r.status_code == 403 and r.json()["error"]["message"] == "key not allowed to health-check model bad"
        r = httpx.get(url + "/health?model_id=bad-1", headers=as_key)
        assert r.status_code == 403, r.text
        assert httpx.get(url + "/health?model=good").status_code == 401

        # the targeted checks went into the history (off the answer's path: wait for them)
        rows = _wait_for(lambda: (h := httpx.get(url + "/health/history", headers=ADMIN).json())["total_records"] >= 3
                     and h["health_checks"])
        assert rows, httpx.get(url + "/health/history", headers=ADMIN).text
        by_name = {(r["model_name"], r["model_id"], r["checked_by"]) for r in rows}
        assert ("good", None, "default_user_id") in by_name, by_name  # the master key's user, as LiteLLM's
        bad = next(r for r in rows if r["model_id"] == "bad-1")
        assert bad["model_name"] == "bad" and bad["status"] == "unhealthy" and bad["unhealthy_count"] == 1
        assert bad["error_message"]
        assert rows[0]["checked_at"] >= rows[-1]["checked_at"]
        unhealthy = httpx.get(url + "/health/history?status_filter=unhealthy&limit=1", headers=ADMIN).json()
        assert unhealthy["limit"] == 1 and unhealthy["offset"] == 0 and unhealthy["total_records"] == 1
        assert unhealthy["health_checks"][0]["status"] == "unhealthy"
        assert httpx.get(url + "/health/history?model=good", headers=ADMIN).json()["total_records"] >= 1
        assert httpx.get(url + "/health/history?limit=0", headers=ADMIN).status_code == 400
        assert httpx.get(url + "/health/history?status_filter=sick", headers=ADMIN).status_code == 400
        assert httpx.get(url + "/health/history", headers=as_key).status_code == 401  # admin routes
        latest = httpx.get(url + "/health/latest", headers=ADMIN).json()
        assert latest["latest_health_checks"]["bad-1"]["status"] == "unhealthy"
        assert latest["total_models"] == len(latest["latest_health_checks"]) >= 2

        cb = httpx.get(url + "/active/callbacks", headers=ADMIN)
        assert cb.status_code == 200, cb.text
        body = cb.json()
        assert "prometheus" in body["litellm.callbacks"] and "json_logs" in body["all_litellm_callbacks"]
        assert body["alerting"] == "None" and body["num_alerting"] == 0
        assert body["num_callbacks"] == len(body["all_litellm_callbacks"])
        assert body["litellm.request_timeout"] == 42
        assert httpx.get(url + "/settings", headers=ADMIN).json() == body
        assert httpx.get(url + "/active/callbacks", headers=as_key).status_code == 401
        by_type = httpx.get(url + "/callbacks/list", headers=ADMIN).json()
        assert by_type == {"success": [], "failure": [], "success_and_failure": ["json_logs", "prometheus"]}, by_type


def test_background_rounds_keep_changes_only() -> None:
    """Background rounds every second write a row per deployment once (its status does not change), and
    ``/health`` then answers the last round without calling the upstream."""
    extra = "  background_health_checks: true\n  health_check_interval: 1\n"
    with start_mock(name="ok") as ok, \
            start_gateway(_config(ok.openai_base, Path(tempfile.mkdtemp()) / "h.db", extra)) as gw:
        latest = _wait_for(lambda: (j := httpx.get(gw.url + "/health/latest", headers=ADMIN).json())["total_models"] == 2
                       and j)
        assert latest, httpx.get(gw.url + "/health/latest", headers=ADMIN).text
        assert latest["latest_health_checks"]["good-1"]["checked_by"] == "background_health_check"
        assert latest["latest_health_checks"]["bad-1"]["status"] == "unhealthy"
        time.sleep(2.5)  # more rounds, nothing changed
        rows = httpx.get(gw.url + "/health/history", headers=ADMIN).json()["health_checks"]
        assert sorted(r["model_id"] for r in rows) == ["bad-1", "good-1"], rows
        calls = ok.stats()["requests"]
        r = httpx.get(gw.url + "/health?model=good", headers=ADMIN)
        assert r.status_code == 200 and r.json()["healthy_count"] == 1
        assert ok.stats()["requests"] - calls <= 1  # a round may have run meanwhile; /health made no call
        r = httpx.get(gw.url + "/health?model=bad", headers=ADMIN)
        assert r.status_code == 503 and r.json()["unhealthy_count"] == 1
