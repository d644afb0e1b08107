"""``GET /health/deployments`` and background health checks (``gateway.health_view``): the shown
``api_base`` never carries credentials; against a real ``relaygate serve`` and two real mock upstreams (one
answering 500 to everything), the background task records a last check for every deployment, a deployment
that failed a request is in cooldown, ``GET /health`` records its checks too, database models are listed
with ``source: db``, and a virtual key sees only the deployments of its models."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import httpx
import pytest

from bench.procs import start_mock
from relaygate.gateway.health_view import CheckResult, HealthBook, public_base
from tests.conftest import start_gateway

MASTER = "sk-health-view-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


@pytest.mark.parametrize(("url", "shown"), [
    ("https://api.example.com/v1", "https://api.example.com/v1"),
    ("https://user:secret@api.example.com:8443/v1?api-key=abc#frag", "https://api.example.com:8443/v1"),
    ("http://[::1]:9000/v1?x=1", "http://[::1]:9000/v1"),
    (None, None),
    ("", None),
])
def test_public_base(url: str | None, shown: str | None) -> None:
    assert public_base(url) == shown


def test_health_book_forgets_removed_deployments() -> None:
    from datetime import UTC, datetime

    book = HealthBook()
    for dep in ("a", "b"):
        book.record(dep, CheckResult(datetime(2026, 3, 1, tzinfo=UTC), True, None, 1.5))
    book.keep_only({"b"})
    assert list(book.last) == ["b"]
    assert book.last["b"].as_json() == {"at": "2026-03-01T00:00:00Z", "ok": True, "error": None, "latency_ms": 1.5}


def _deployments(url: str, headers: dict[str, str] = ADMIN) -> dict[str, dict[str, Any]]:
    r = httpx.get(url + "/health/deployments", headers=headers)
    assert r.status_code == 200, r.text
    return {d["model_id"]: d for d in r.json()["deployments"]}


def _wait_for(cond: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


@pytest.mark.e2e
def test_background_checks_cooldown_and_sources() -> None:
    tmp = tempfile.mkdtemp(prefix="rg-hv-")
    with start_mock(name="good") as good, start_mock(name="bad", fault_500=1.0) as bad:
        config = f"""
model_list:
  - model_name: flaky
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{good.openai_base}"}}
    model_info: {{id: good-dep}}
  - model_name: flaky
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{bad.openai_base}"}}
    model_info: {{id: bad-dep}}
  - model_name: single
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{good.openai_base}"}}
    model_info: {{id: single-dep}}
router_settings:
  allowed_fails: 0
  cooldown_time: 120
  num_retries: 2
general_settings:
  master_key: {MASTER}
  database_url: "sqlite:///{tmp}/hv.db"
  store_model_in_db: true
  background_health_checks: true
  health_check_interval: 1
"""
        with start_gateway(config) as gw:
            checked = _wait_for(lambda: (d := _deployments(gw.url)) and all(x["last_check"] for x in d.values()) and d)
            assert checked, _deployments(gw.url)
            assert checked["good-dep"]["last_check"]["ok"] is True
            assert checked["good-dep"]["state"] == "healthy"
            assert checked["bad-dep"]["last_check"]["ok"] is False
            assert checked["bad-dep"]["last_check"]["error"]
            assert checked["bad-dep"]["state"] == "unhealthy"
            assert checked["good-dep"]["api_base"] == good.openai_base
            assert checked["good-dep"]["source"] == "config"
            assert checked["good-dep"]["provider"] == "openai"
            first_at = checked["good-dep"]["last_check"]["at"]
            # the background task keeps checking
            assert _wait_for(lambda: _deployments(gw.url)["good-dep"]["last_check"]["at"] != first_at)

            # requests: the failing deployment is cooled down on its first failure, the retries succeed
            with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=10) as client:
                for _ in range(12):
                    r = client.post("/v1/chat/completions", json={"model": "flaky", "messages": [
                        {"role": "user", "content": "hi"}]})
                    assert r.status_code == 200, r.text
            assert any("chat/completions" in path for path in bad.stats()["by_path"])  # it was tried, and failed
            deps = _deployments(gw.url)
            assert deps["bad-dep"]["state"] == "cooldown"
            assert deps["bad-dep"]["cooldown_until"] is not None
            assert deps["good-dep"]["state"] == "healthy"
            assert deps["good-dep"]["ewma_ms"] is not None
            assert deps["good-dep"]["in_flight"] == 0

            # a database model is listed with source "db"
            r = httpx.post(gw.url + "/model/new", headers=ADMIN, json={
                "model_name": "from-db", "litellm_params": {"model": "openai/mock-model", "api_key": "sk-db-secret",
                                                            "api_base": good.openai_base}})
            assert r.status_code == 200, r.text
            db = _wait_for(lambda: [d for d in _deployments(gw.url).values() if d["model_name"] == "from-db"])
            assert db and db[0]["source"] == "db"
            assert "sk-db-secret" not in httpx.get(gw.url + "/health/deployments", headers=ADMIN).text

            # a virtual key limited to one model sees its deployments only; no key: 401
            k = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={"models": ["single"]})
            assert k.status_code == 200, k.text
            mine = _deployments(gw.url, {"Authorization": f"Bearer {k.json()['key']}"})
            assert set(mine) == {"single-dep"}
            assert httpx.get(gw.url + "/health/deployments").status_code == 401


@pytest.mark.e2e
def test_health_route_records_last_check_without_background() -> None:
    with start_mock(name="ok") as ok:
        config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{ok.openai_base}"}}
    model_info: {{id: m-dep}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(config) as gw:
            time.sleep(1.5)  # no background checks configured: nothing runs
            before = _deployments(gw.url)["m-dep"]
            assert before["last_check"] is None
            assert before["state"] == "unknown"
            assert ok.stats()["requests"] == 0
            r = httpx.get(gw.url + "/health", headers=ADMIN)
            assert r.status_code == 200 and r.json()["healthy_count"] == 1, r.text
            after = _deployments(gw.url)["m-dep"]
            assert after["last_check"]["ok"] is True
            assert after["last_check"]["latency_ms"] >= 0
            assert after["state"] == "healthy"


@pytest.mark.e2e
def test_which_deployments_a_round_checks() -> None:
    """LiteLLM's scoping of health checks: ``background_health_check_model_groups`` limits the background rounds
    to its groups, a deployment with ``model_info.disable_background_health_check`` is never checked in the
    background and, with ``health_check_skip_disabled_background_models``, not by ``/health`` either;
    ``health_check_concurrency: 1`` checks one at a time (every deployment still checked). With background checks
    on, ``/health`` answers the last round's results without calling any upstream (LiteLLM's point of the
    setting); without, it checks every deployment but the one left out."""
    with start_mock(name="ok") as ok:
        config = f"""
model_list:
  - model_name: watched
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{ok.openai_base}"}}
    model_info: {{id: watched-1}}
  - model_name: watched
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{ok.openai_base}"}}
    model_info: {{id: quiet-1, disable_background_health_check: true}}
  - model_name: other
    litellm_params: {{model: openai/mock-model, api_key: sk-up, api_base: "{ok.openai_base}"}}
    model_info: {{id: other-1}}
general_settings:
  master_key: {MASTER}
  background_health_checks: true
  health_check_interval: 1
  background_health_check_model_groups: [watched]
  health_check_skip_disabled_background_models: true
  health_check_concurrency: 1
"""
        with start_gateway(config) as gw:
            checked = _wait_for(lambda: (d := _deployments(gw.url)) and d["watched-1"]["last_check"] and d)
            assert checked, _deployments(gw.url)
            time.sleep(1.5)  # another round
            deps = _deployments(gw.url)
            assert deps["quiet-1"]["last_check"] is None and deps["other-1"]["last_check"] is None
            calls = ok.stats()["requests"]
            r = httpx.get(gw.url + "/health", headers=ADMIN)  # the last round's results: no upstream call
            assert r.status_code == 200, r.text
            assert [e["model_id"] for e in r.json()["healthy_endpoints"]] == ["watched-1"], r.text
            assert ok.stats()["requests"] - calls <= 1  # a background round may have run meanwhile
            deps = _deployments(gw.url)
            assert deps["other-1"]["last_check"] is None and deps["quiet-1"]["last_check"] is None
        without_background = config.replace("  background_health_checks: true\n", "")
        with start_gateway(without_background) as gw:
            r = httpx.get(gw.url + "/health", headers=ADMIN)  # checks now, but not the deployment left out
            assert r.status_code == 200, r.text
            assert sorted(e["model_id"] for e in r.json()["healthy_endpoints"]) == ["other-1", "watched-1"], r.text
            deps = _deployments(gw.url)
            assert deps["other-1"]["last_check"]["ok"] is True and deps["quiet-1"]["last_check"] is None
