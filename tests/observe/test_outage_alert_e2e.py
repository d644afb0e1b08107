"""A Redis outage under a real ``relaygate serve``: the limiter falls back, requests are answered, the outage
is counted on ``/metrics`` (``relaygate_events_total{event="outage:redis"}``) and alerted once on Slack
(LiteLLM's ``db_exceptions`` kind, wording ``Redis call failed``)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import RedisServer, start_gateway
from tests.observe.collector_server import Collector

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MASTER = "sk-outage-master"


def test_redis_outage_is_counted_and_alerted(redis_server: RedisServer) -> None:
    config = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo, rpm: 100000}}
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis_server.port}
general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
"""
    with Collector() as slack, start_gateway(config, env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {MASTER}"}) as c:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        redis_server.stop()
        for _ in range(20):  # the limiter notices, falls back to in-process limits and answers
            assert c.post("/v1/chat/completions", json=body).status_code == 200
        deadline = time.monotonic() + 15
        texts: list[str] = []
        while time.monotonic() < deadline:
            texts = [p.json().get("text", "") for p in slack.posts]
            if any("Redis call failed" in t for t in texts):
                break
            time.sleep(0.05)
        assert sum("Redis call failed" in t for t in texts) == 1, texts
        metrics = c.get("/metrics").text
        assert 'relaygate_events_total{event="outage:redis"}' in metrics
