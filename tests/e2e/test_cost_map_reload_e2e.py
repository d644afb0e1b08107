"""LiteLLM's model cost map routes against a real ``relaygate serve`` with two workers (``gateway.cost_map``): the
prices of ``LITELLM_MODEL_COST_MAP_URL``'s local file charge requests, ``POST /reload/model_cost_map`` makes every
worker read a changed file (the next requests are charged the new price), a file that no longer loads leaves the
prices read before, ``GET /model/cost_map/source`` says where the map comes from, and both are the admin's."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-cost-map-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def _map(path: Path, price: float) -> None:
    path.write_text(json.dumps({"custom-x": {"litellm_provider": "openai", "mode": "chat", "max_tokens": 1000,
                                             "input_cost_per_token": price, "output_cost_per_token": price}}))


def _cost(gw: GatewayProc) -> float:
    r = httpx.post(gw.url + "/v1/chat/completions", headers=ADMIN, timeout=30,
                   json={"model": "custom", "messages": [{"role": "user", "content": "hello there"}]})
    assert r.status_code == 200, r.text
    return float(r.headers["x-litellm-response-cost"])


def _all(gw: GatewayProc, check: object, tries: int = 32, timeout: float = 30.0) -> bool:
    """``check(cost)`` holds on ``tries`` requests in a row, each on a new connection the kernel gives either worker.
    Eight were too few: once in a CI run all eight went to the worker that had answered the reload while the other
    was still reading the file, which the test then overwrote with one that does not load (so that worker kept the
    old price, rightly, and the next check failed); 32 in a row on one worker is a 2**-31 chance."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(check(_cost(gw)) for _ in range(tries)):  # type: ignore[operator]
            return True
        time.sleep(0.3)
    return False


def test_reload_reads_the_changed_map_on_every_worker() -> None:
    cost_map = Path(tempfile.mkdtemp()) / "prices.json"
    _map(cost_map, 1e-6)
    with start_mock(name="cost-map") as mock:
        cfg = f"""
model_list:
  - model_name: custom
    litellm_params: {{model: openai/custom-x, api_key: sk-up, api_base: "{mock.openai_base}"}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(cfg, workers=2, env={"LITELLM_MODEL_COST_MAP_URL": str(cost_map)}) as gw:
            first = _cost(gw)
            assert first > 0
            src = httpx.get(gw.url + "/model/cost_map/source", headers=ADMIN).json()
            assert (src["source"], src["url"], src["override_file"], src["etag"]) == ("local", str(cost_map),
                                                                                    str(cost_map), None)
            assert src["model_count"] > 100 and src["loaded_at"]
            _map(cost_map, 3e-6)
            assert _cost(gw) == first  # nothing read until a reload
            r = httpx.post(gw.url + "/reload/model_cost_map", headers=ADMIN)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["status"] == "success" and out["message"].startswith("Price data reloaded successfully!")
            assert out["models_count"] == src["model_count"]
            assert _all(gw, lambda c: abs(c - 3 * first) < first * 1e-6), "a worker kept the old price"
            cost_map.write_text("{not json")
            assert httpx.post(gw.url + "/reload/model_cost_map", headers=ADMIN).status_code == 200
            assert _all(gw, lambda c: abs(c - 3 * first) < first * 1e-6)  # the prices read before keep serving
            key = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}).json().get("key")
            if key:  # with a database a key is an internal user's: not the admin's routes
                other = {"Authorization": f"Bearer {key}"}
                assert httpx.post(gw.url + "/reload/model_cost_map", headers=other).status_code == 401
                assert httpx.get(gw.url + "/model/cost_map/source", headers=other).status_code == 401
