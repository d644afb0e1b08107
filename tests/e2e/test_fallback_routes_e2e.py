"""LiteLLM's fallback management routes (``management.fallbacks``) against a real ``relaygate serve`` with two
workers and a SQLite database: a fallback set through ``POST /fallback`` is served by every worker (a request to
a dead deployment's group is answered by its fallback), kept over the config file's other rules, read back by
``GET /fallback/{model}`` and removed by ``DELETE``; LiteLLM's refusals; a key that is not the admin's."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProc, free_port, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-fallback-routes-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def _config(db: Path, store_models: bool = True) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return f"""
model_list:
  - model_name: flaky
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{dead}"}}
  - model_name: steady
    litellm_params: {{model: mock/echo}}
  - model_name: spare
    litellm_params: {{model: mock/echo}}
router_settings:
  num_retries: 0
  fallbacks: [{{"spare": ["steady"]}}]
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
  store_model_in_db: {str(store_models).lower()}
"""


def _chat(url: str, model: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=ADMIN, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "hello fallback"}]})


def _settled(gw: GatewayProc, mark: int, check: object, tries: int = 8) -> bool:
    """Once every worker swapped in the change written past ``mark``, ``check()`` holds on ``tries`` calls."""
    gw.wait_swapped(mark)
    return all(check() for _ in range(tries))  # type: ignore[operator]


def _fallbacks(url: str, model: str, kind: str = "general") -> object:
    r = httpx.get(f"{url}/fallback/{model}?fallback_type={kind}", headers=ADMIN)
    return r.json()["fallback_models"] if r.status_code == 200 else r.status_code


def test_fallbacks_set_read_and_deleted_through_the_api() -> None:
    with start_gateway(_config(Path(tempfile.mkdtemp()) / "f.db"), workers=2) as gw:
        url = gw.url
        assert _chat(url, "flaky").status_code >= 500  # no fallback yet
        mark = gw.mark()
        r = httpx.post(url + "/fallback", headers=ADMIN, json={"model": "flaky", "fallback_models": ["steady"]})
        assert r.status_code == 200, r.text
        assert r.json() == {"model": "flaky", "fallback_models": ["steady"], "fallback_type": "general",
                            "message": "Fallback configuration created successfully"}
        assert _settled(gw, mark, lambda: _chat(url, "flaky").status_code == 200)
        answered = _chat(url, "flaky")
        assert answered.headers["x-litellm-model-group"] == "steady", answered.headers
        assert all(_fallbacks(url, "flaky") == ["steady"] for _ in range(8))
        shown = httpx.get(url + "/router/settings", headers=ADMIN).json()  # LiteLLM's router settings page
        assert {"flaky": ["steady"]} in shown["current_values"]["fallbacks"] and shown["source"]["fallbacks"] == "db"
        assert shown["source"]["context_window_fallbacks"] == "default"
        assert httpx.get(url + "/fallback/flaky", headers=ADMIN).json() == {
            "model": "flaky", "fallback_models": ["steady"], "fallback_type": "general"}
        # the file's rule is still there: the stored list started from it
        assert httpx.get(url + "/fallback/spare", headers=ADMIN).json()["fallback_models"] == ["steady"]
        mark = gw.mark()
        r = httpx.post(url + "/fallback", headers=ADMIN,
                       json={"model": "flaky", "fallback_models": ["spare", "steady"]})
        assert r.json()["message"] == "Fallback configuration updated successfully"
        assert _settled(gw, mark, lambda: _fallbacks(url, "flaky") == ["spare", "steady"])
        mark = gw.mark()
        r = httpx.post(url + "/fallback", headers=ADMIN, json={"model": "flaky", "fallback_models": ["spare"],
                                                                "fallback_type": "context_window"})
        assert r.status_code == 200 and r.json()["fallback_type"] == "context_window"
        assert _settled(gw, mark, lambda: _fallbacks(url, "flaky", "context_window") == ["spare"])
        assert _fallbacks(url, "flaky", "content_policy") == 404

        # LiteLLM's refusals
        for body, status, words in (
                ({"model": "nope", "fallback_models": ["steady"]}, 404, "Model 'nope' not found in router"),
                ({"model": "flaky", "fallback_models": ["ghost"]}, 400, "Invalid fallback models: ['ghost']"),
                ({"model": "flaky", "fallback_models": ["flaky"]}, 400, "cannot be its own fallback"),
                ({"model": "flaky", "fallback_models": []}, 400, "at least one model"),
                ({"model": "flaky", "fallback_models": ["steady", "steady"]}, 400, "duplicates"),
                ({"model": "flaky", "fallback_models": ["steady"], "fallback_type": "odd"}, 400, "fallback_type"),
                ({"model": "flaky"}, 400, "fallback_models"),
                ({"model": "  ", "fallback_models": ["steady"]}, 400, "non-empty")):
            r = httpx.post(url + "/fallback", headers=ADMIN, json=body)
            assert r.status_code == status and words in r.json()["error"]["message"], (body, r.text)
        key = httpx.post(url + "/key/generate", headers=ADMIN, json={}).json()["key"]
        as_key = {"Authorization": f"Bearer {key}"}
        assert httpx.post(url + "/fallback", headers=as_key,
                          json={"model": "flaky", "fallback_models": ["steady"]}).status_code == 401
        assert httpx.delete(url + "/fallback/flaky", headers=as_key).status_code == 401
        assert httpx.get(url + "/fallback/flaky", headers=as_key).status_code == 401
        assert httpx.get(url + "/router/settings", headers=as_key).status_code == 401

        mark = gw.mark()
        r = httpx.delete(url + "/fallback/flaky", headers=ADMIN)
        assert r.status_code == 200 and r.json() == {"model": "flaky", "fallback_type": "general",
                                                      "message": "Fallback configuration deleted successfully"}
        assert _settled(gw, mark, lambda: _fallbacks(url, "flaky") == 404)
        assert httpx.delete(url + "/fallback/flaky", headers=ADMIN).status_code == 404
        assert all(_chat(url, "flaky").status_code != 200 for _ in range(4))
        assert httpx.get(url + "/fallback/spare", headers=ADMIN).json()["fallback_models"] == ["steady"]


def test_without_the_database_config_changes_are_refused() -> None:
    with start_gateway(_config(Path(tempfile.mkdtemp()) / "f.db", store_models=False)) as gw:
        r = httpx.post(gw.url + "/fallback", headers=ADMIN, json={"model": "flaky", "fallback_models": ["steady"]})
        assert r.status_code == 400 and "STORE_MODEL_IN_DB" in r.json()["error"]["message"], r.text
        assert httpx.get(gw.url + "/fallback/spare", headers=ADMIN).json()["fallback_models"] == ["steady"]
