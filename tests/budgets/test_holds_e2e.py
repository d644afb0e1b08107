"""Budget reservations through a real ``relaygate serve`` (Granian, SQLite beside the config): 20 concurrent
clients on a key whose budget holds two and a half requests' worst case; three run (the third on the half
left, LiteLLM's resize), the other 17 are refused before the provider, and the spend logs hold only what ran."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import start_gateway
from tests.spend.test_spend_e2e import call as spend_call

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-holds-master"
PROMPT = len(b'{"role": "user", "content": "hi"}') + 4
"""What a ``hi`` request is held at (a short conversation: a token a byte of its message, as ``json`` writes it,
and 4)."""
ESTIMATE = PROMPT * 1e-6 + 4 * 2e-6
"""What a ``hi`` request with ``max_tokens: 4`` holds (the echo answers 1 token, counts 12 prompt tokens: 1.4e-5)."""
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
      mock_latency_ms: 700
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: {MASTER}
"""


def call(url: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER) -> tuple[int, Any]:
    return spend_call(url, path, body, key)


def test_concurrent_clients_cannot_spend_the_same_remaining_budget() -> None:
    with start_gateway(CONFIG, workers=1) as gw:
        status, out = call(gw.url, "/key/generate", {"max_budget": 2.5 * ESTIMATE})
        assert status == 200, out
        key = out["key"]
        deadline = time.monotonic() + 10  # the store's first budget: the worker's check is on once it has read it
        while "budgets: enforced" not in gw.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        results: list[tuple[int, Any]] = []
        start = threading.Barrier(20)

        def one() -> None:
            start.wait()
            results.append(call(gw.url, "/v1/chat/completions", body, key=key))

        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(s for s, _ in results)
        assert statuses == [200] * 3 + [422] * 17, statuses  # ESTIMATE, ESTIMATE, then the half left
        for s, out in results:
            if s == 422:
                assert out["error"]["type"] == "budget_exceeded"
                assert out["error"]["message"].startswith("Budget has been exceeded! Key=")
        deadline = time.monotonic() + 10
        while True:  # the three rows written, the key's spend what they cost, far below the budget
            rows = call(gw.url, "/spend/logs?api_key=" + key)[1]
            if len([r for r in rows if r["status"] == "success"]) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        spent = [r["spend"] for r in rows if r["status"] == "success"]
        assert len(spent) == 3 and all(0 < x < ESTIMATE for x in spent)  # each held more than it cost
        # nothing stays held: one at a time, requests run until their spend itself reaches the budget
        more = 0
        while call(gw.url, "/v1/chat/completions", body, key=key)[0] == 200:
            more += 1
            assert more < 20
        assert more >= 1
        deadline = time.monotonic() + 10
        while True:
            rows = [r for r in call(gw.url, "/spend/logs?api_key=" + key)[1] if r["status"] == "success"]
            if len(rows) == 3 + more or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        total = sum(r["spend"] for r in rows)
        assert len(rows) == 3 + more and 2.5 * ESTIMATE <= total < 2.5 * ESTIMATE + max(spent)
