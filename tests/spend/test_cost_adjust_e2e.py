"""Provider discounts and margins through a real ``relaygate serve`` (SQLite beside the config): what the client is
told (``x-litellm-response-cost`` and its parts), what the spend logs and the key's counter hold, what
``/spend/calculate`` and ``/cost/estimate`` answer, and a key's budget spent by the margin's fixed amount alone."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.conftest import start_gateway
from tests.spend.test_spend_e2e import call as call_as

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-adjust-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
litellm_settings:
  cost_discount_config: {{mock: 0.5}}
  cost_margin_config: {{global: {{percentage: 0.1, fixed_amount: 0.001}}}}
general_settings:
  master_key: {MASTER}
"""


def call(url: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER) -> tuple[int, Any]:
    return call_as(url, path, body, key)


def chat(url: str, key: str, text: str) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(f"{url}/v1/chat/completions", method="POST", data=json.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": text}]}).encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def rows_of(url: str, key: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        status, rows = call(url, "/spend/logs?api_key=" + key, key=MASTER)
        assert status == 200, rows
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_discount_and_margin_are_charged_logged_and_counted() -> None:
    with start_gateway(CONFIG) as gw:
        status, out = call(gw.url, "/key/generate", {"key_alias": "adjusted", "max_budget": 0.0025})
        assert status == 200, out
        key = out["key"]
        told = []
        for i in range(2):
            status, h = chat(gw.url, key, f"hello there number {i}")
            assert status == 200
            original = float(h["x-litellm-response-cost-original"])
            charged = float(h["x-litellm-response-cost"])
            assert float(h["x-litellm-response-cost-discount-amount"]) == pytest.approx(original * 0.5, abs=1e-12)
            assert float(h["x-litellm-response-cost-margin-amount"]) == pytest.approx(original * 0.5 * 0.1 + 0.001,
                                                                                   abs=1e-12)
            assert h["x-litellm-response-cost-margin-percent"] == "0.1"
            assert charged == pytest.approx(original * 0.5 * 1.1 + 0.001, abs=1e-12) and 0 < original < 0.001
            told.append(charged)
        rows = rows_of(gw.url, key, 2)
        assert sorted(r["spend"] for r in rows) == pytest.approx(sorted(told), abs=1e-12)
        for r in rows:  # LiteLLM's cost_breakdown in the row's metadata
            cb = r["metadata"]["cost_breakdown"]
            assert cb["total_cost"] == pytest.approx(r["spend"], abs=1e-12) and cb["discount_percent"] == 0.5
            assert cb["margin_percent"] == 0.1 and cb["margin_fixed_amount"] == 0.001
        # the key's counter moved by what was charged: past its 0.0025 budget after three requests of 0.001 + x
        status, h = chat(gw.url, key, "a third")
        assert status == 200
        rows = rows_of(gw.url, key, 3)
        info = call(gw.url, "/key/info?key=" + key, key=MASTER)[1]["info"]
        assert info["spend"] == pytest.approx(sum(r["spend"] for r in rows), abs=1e-12) and info["spend"] > 0.003
        deadline = time.monotonic() + 10
        while (status := chat(gw.url, key, "over budget?")[0]) == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status in (400, 422, 429), status  # budget_exceeded
        # /spend/calculate applies the deployment's discount and margin, as LiteLLM's completion_cost does
        status, out = call(gw.url, "/spend/calculate", {"completion_response": {
            "model": "chat", "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 0,
                                                      "total_tokens": 1000}}})
        assert status == 200, out
        assert out["cost"] == pytest.approx(0.001 * 0.5 * 1.1 + 0.001, abs=1e-12)
        # /cost/estimate: the list price split by kind, and what is charged (the margin its own line)
        status, out = call(gw.url, "/cost/estimate", {"model": "chat", "input_tokens": 1000, "output_tokens": 0,
                                                      "num_requests_per_month": 30})
        assert status == 200, out
        assert out["input_cost_per_request"] == pytest.approx(0.001, abs=1e-12)
        assert out["cost_per_request"] == pytest.approx(0.001 * 0.5 * 1.1 + 0.001, abs=1e-12)
        assert out["margin_cost_per_request"] == pytest.approx(0.001 * 0.5 * 0.1 + 0.001, abs=1e-12)
        assert out["monthly_cost"] == pytest.approx(30 * out["cost_per_request"], abs=1e-12)
        assert out["input_cost_per_token"] == pytest.approx(1e-6) and out["daily_cost"] is None
        status, out = call(gw.url, "/config/cost_discount_config")
        assert status == 200 and out == {"values": {"mock": 0.5}}


def test_a_discount_patched_through_the_api_reaches_every_worker() -> None:
    """``PATCH /config/cost_discount_config`` on one worker of two: within the change poll every worker charges
    the stored discount (the file's was 0.5)."""
    config = CONFIG.replace("cost_discount_config: {mock: 0.5}", "cost_discount_config: {mock: 0.5}\n"
                            "  cost_margin_config: {}").replace(
        "  cost_margin_config: {global: {percentage: 0.1, fixed_amount: 0.001}}\n", "")
    config += "  store_model_in_db: true\n"
    with start_gateway(config, workers=2) as gw:
        mark = gw.mark()
        req = urllib.request.Request(f"{gw.url}/config/cost_discount_config", method="PATCH",
                                     data=json.dumps({"mock": 0.25}).encode(),
                                     headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["values"] == {"mock": 0.25}
        gw.wait_swapped(mark)  # the other worker within its change poll
        seen = set()
        for i in range(16):  # spread over both workers
            status, h = chat(gw.url, MASTER, f"ask {i}")
            assert status == 200
            seen.add(round(float(h["x-litellm-response-cost-discount-amount"]) /
                           float(h["x-litellm-response-cost-original"]), 6))
        assert seen == {0.25}
