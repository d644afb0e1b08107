"""LiteLLM's ``failed_tracking_spend`` alert through a real ``relaygate serve``: requests to a model nobody priced
are logged at cost 0, and the operator is told once per model per ``budget_alert_ttl`` (``Failed Tracking Cost
for ...``); a priced model and the built-in free ``mock`` provider never are."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import start_gateway
from tests.e2e.openai_echo import openai_echo
from tests.observe.collector_server import Collector

pytestmark = pytest.mark.e2e

MASTER = "sk-tracking-master"


def test_an_unpriced_model_is_alerted_once() -> None:
    with openai_echo() as (base, _seen), Collector() as slack:
        config = f"""model_list:
  - model_name: unpriced
    litellm_params: {{model: openai/house-model-7b, api_key: sk-up, api_base: "{base}"}}
  - model_name: priced
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{base}"}}
  - model_name: free
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
  alert_types: ["failed_tracking_spend"]
"""
        with start_gateway(config, env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw, \
                httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {MASTER}"}) as c:
            for model in ("priced", "free", "unpriced") * 3:
                r = c.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user",
                                                                                       "content": "hi"}]})
                assert r.status_code == 200, r.text
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not slack.posts:
                time.sleep(0.05)
            time.sleep(0.3)
            texts = [p.json()["text"] for p in slack.posts]
            assert len(texts) == 1, texts
            assert texts[0].startswith("Level: `High`")
            assert "Failed Tracking Cost for model=`openai/house-model-7b` (model group `unpriced`)" in texts[0]
