"""``json_logs: true`` and ``/metrics`` auth through a real ``relaygate serve`` (Granian, two workers)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-jsonlog-master"
CONFIG = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo, mock_chunks: 3}}
litellm_settings:
  json_logs: true
  {{extra}}
general_settings:
  master_key: {MASTER}
"""
AUTH = {"Authorization": f"Bearer {MASTER}"}


def test_one_json_line_per_request_and_every_line_json() -> None:
    with start_gateway(CONFIG.replace("{extra}", ""), workers=2) as gw:
        ids = []
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            for i in range(6):
                r = c.post("/v1/chat/completions", headers=AUTH, json={
                    "model": "m", "stream": i % 2 == 1, "messages": [{"role": "user", "content": f"hi {i}"}]})
                assert r.status_code == 200
                ids.append(r.headers["x-litellm-call-id"])
            bad = c.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-wrong"},
                         json={"model": "m", "messages": []})
            assert bad.status_code == 401
            # LiteLLM's default: /metrics needs no key
            assert c.get("/metrics").status_code == 200
            assert c.get("/metrics/").status_code == 200
        text = ""
        for _ in range(100):  # the lines are written within the queue's drain delay
            text = gw.log_path.read_text()
            if sum('"message":"request"' in line for line in text.splitlines()) >= 7:
                break
            import time
            time.sleep(0.05)
    objs = [orjson.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    reqs = [o for o in objs if o.get("message") == "request"]
    assert sorted(o["call_id"] for o in reqs if o["status"] == 200) == sorted(ids)
    assert sum(o["status"] == 401 for o in reqs) == 1
    for o in reqs:
        if o["status"] == 200:
            assert o["model_group"] == "m" and o["provider"] == "mock" and o["latency_ms"] > 0
            assert o["prompt_tokens"] > 0 and o["completion_tokens"] > 0 and o["outcome"] == "ok"
            assert (o["ttft_ms"] is not None) == o["stream"]
    assert MASTER not in text and "sk-wrong" not in text


def test_metrics_auth_when_required() -> None:
    with start_gateway(CONFIG.replace("{extra}", "require_auth_for_metrics_endpoint: true")) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert c.get("/metrics").status_code == 401
            assert c.get("/metrics", headers={"Authorization": "Bearer sk-nope"}).status_code == 401
            r = c.get("/metrics", headers=AUTH)
            assert r.status_code == 200 and "relaygate_requests_total" in r.text
