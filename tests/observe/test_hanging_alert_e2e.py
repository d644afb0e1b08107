"""LiteLLM's ``llm_requests_hanging`` alert through a real ``relaygate serve`` posting to a Slack stand-in: requests
still unanswered ``alerting_threshold`` seconds after they came are alerted while they wait (once per model group
per window, the rest summed up later), fast ones never, and with the kind left out of ``alert_types`` nothing
is watched at all."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import start_gateway
from tests.observe.collector_server import Collector

pytestmark = pytest.mark.e2e

MASTER = "sk-hang-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def config(kinds: str) -> str:
    return f"""model_list:
  - model_name: slow
    litellm_params: {{model: mock/echo, mock_latency_ms: 2500}}
  - model_name: fast
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
  alerting_threshold: 1
  alert_types: {kinds}
"""


def ask(url: str, model: str, out: list[int]) -> None:
    r = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=20,
                   json={"model": model, "messages": [{"role": "user", "content": "wait"}]})
    out.append(r.status_code)


def test_hanging_requests_are_alerted_while_they_wait() -> None:
    with Collector() as slack, start_gateway(config('["llm_requests_hanging"]'),
                                             env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw:
        statuses: list[int] = []
        for _ in range(5):
            ask(gw.url, "fast", statuses)
        threads = [threading.Thread(target=ask, args=(gw.url, "slow", statuses)) for _ in range(3)]
        for t in threads:
            t.start()
        alerted_at = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alerted_at is None:
            if slack.posts:
                alerted_at = time.monotonic()
            time.sleep(0.05)
        done_before = sum(1 for t in threads if not t.is_alive())
        for t in threads:
            t.join()
        time.sleep(0.5)
        texts = [p.json().get("text", "") for p in slack.posts]
    assert statuses == [200] * 8
    assert alerted_at is not None and done_before == 0, "alerted while the requests were still waiting"
    assert len(texts) == 1, texts  # one per model group per window (the other two in a later summary)
    assert "Requests are hanging - 1.0s+ request time" in texts[0] and "Model Group: `slow`" in texts[0]
    assert "Level: `Medium`" in texts[0] and "`fast`" not in texts[0]


def test_not_watched_unless_asked() -> None:
    with Collector() as slack, start_gateway(config('["llm_exceptions"]'),
                                             env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw:
        statuses: list[int] = []
        ask(gw.url, "slow", statuses)
        time.sleep(0.3)
        assert statuses == [200] and slack.posts == []
