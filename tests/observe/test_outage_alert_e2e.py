"""Outages under a real ``relaygate serve``. A Redis outage: the limiter falls back, requests are answered, the outage
is counted on ``/metrics`` (``relaygate_events_total{event="outage:redis"}``) and alerted once on Slack
(LiteLLM's ``db_exceptions`` kind, wording ``Redis call failed``). An upstream answering 503: its deployment's
``outage_alerts`` and its region's ``region_outage_alerts``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer, http_server, start_gateway
from tests.observe.collector_server import Collector

pytestmark = [pytest.mark.e2e]

MASTER = "sk-outage-master"


@pytest.mark.redis
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


class _Down(BaseHTTPRequestHandler):
    """An upstream that answers every request 503."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        out = b'{"error": {"message": "overloaded", "type": "server_error"}}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def _alerts(slack: Collector, last: str) -> list[str]:
    """The alerts' texts once one containing ``last`` arrived (and a moment for any after it)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(last in p.json().get("text", "") for p in slack.posts):
        time.sleep(0.05)
    time.sleep(0.3)
    return [p.json().get("text", "") for p in slack.posts]


@contextmanager
def _alerting(models: str, alert_type: str, minor: int, major: int, slack: Collector,
              router: str = "") -> Iterator[httpx.Client]:
    """A ``relaygate serve`` with ``models`` (the ``model_list`` entries), no retries, no cooldown, and
    ``alert_type`` alerts to ``slack`` at these thresholds; a client with the master key."""
    config = f"""model_list:{models}
router_settings:
  num_retries: 0
  allowed_fails: 1000
{router}general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
  alert_types: ["{alert_type}"]
  alerting_args: {{minor_outage_alert_threshold: {minor}, major_outage_alert_threshold: {major}}}
"""
    with start_gateway(config, env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {MASTER}"}) as c:
        yield c


def test_region_outage_is_alerted_once_two_deployments_of_the_region_fail() -> None:
    """``region_outage_alerts`` under a real ``relaygate serve``: two deployments with ``region_name: eu-west``
    behind an upstream that answers 503; their failures, counted together, make a minor and then a major
    region outage alert (once each), and a healthy region stays silent."""
    with http_server(_Down) as up, Collector() as slack:
        # a model group per deployment, called in turn: both have failed before the minor threshold (with one
        # group the router's shuffle sent the first five to one deployment one time in sixteen, and the region,
        # not yet counted as an outage, went straight to major)
        deps = "".join(f"""
  - model_name: m{i}
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{up}/v1", region_name: eu-west}}
    model_info: {{id: eu-{i}}}""" for i in (1, 2))
        models = deps + """
  - model_name: other
    litellm_params: {model: mock/echo, region_name: us-east}"""
        with _alerting(models, "region_outage_alerts", 3, 6, slack) as c:
            for model in ("other", "m1", "m2") * 4:
                r = c.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user",
                                                                                       "content": "hi"}]})
                assert r.status_code == (200 if model == "other" else 503), r.text
            texts = _alerts(slack, "Major Service Outage")
            assert [("Minor" in t, "Major" in t) for t in texts] == [(True, False), (False, True)], texts
            assert all("*Region Name:* `eu-west`" in t and "*Provider:* `openai`" in t for t in texts)


def test_a_deployment_s_failed_attempts_make_its_outage_alerts() -> None:
    """``outage_alerts`` under a real ``relaygate serve``: the attempts that failed at a deployment count, also
    those a fallback then answered; the alerts name the deployment, its model group and API base."""
    with http_server(_Down) as up, Collector() as slack:
        models = f"""
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{up}/v1"}}
    model_info: {{id: down-1}}
  - model_name: backup
    litellm_params: {{model: mock/echo}}"""
        with _alerting(models, "outage_alerts", 2, 4, slack, router="  fallbacks: [{m: [backup]}]\n") as c:
            for _ in range(5):
                r = c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200 and r.headers["x-litellm-attempted-fallbacks"] == "1", r.text
            texts = _alerts(slack, "Major Service Outage")
            assert [("Minor" in t, "Major" in t) for t in texts] == [(True, False), (False, True)], texts
            for t in texts:
                assert "*Deployment:* `down-1`" in t and "*Model Group:* `m`" in t and "*Model Name:* `gpt-4o`" in t
                assert f"*API Base:* `{up}/v1`" in t and "API Errors:" in t
