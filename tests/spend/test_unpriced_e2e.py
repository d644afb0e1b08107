"""LiteLLM's ``block_requests_for_models_without_pricing`` through a real ``relaygate serve`` and a real HTTP
upstream, called with the openai SDK: a priced group answers, an unpriced one (and an unpriced model behind a
wildcard) gets LiteLLM's 403 before anything reaches the upstream, a price set to 0 counts as a price, and the
setting reads back on ``/config/block_requests_for_models_without_pricing``. Off, the same unpriced group is
served."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

import openai
import pytest

from relaygate.cost.unpriced import blocked_message
from tests.asgi.conftest import http_upstream
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-unpriced-master"
_seen: list[str] = []
_lock = threading.Lock()


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with _lock:
            _seen.append(body["model"])
        data = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def config(base: str, block: bool) -> str:
    up = f"api_base: {base}/v1, api_key: sk-up"
    return f"""model_list:
  - model_name: priced
    litellm_params: {{model: openai/house-model, {up}, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: free-by-decision
    litellm_params: {{model: openai/house-model, {up}, input_cost_per_token: 0, output_cost_per_token: 0}}
  - model_name: unpriced
    litellm_params: {{model: openai/house-model, {up}}}
  - model_name: mapped
    litellm_params: {{model: openai/gpt-4o-mini, {up}}}
  - model_name: "wild/*"
    litellm_params: {{model: "openai/*", {up}}}
litellm_settings:
  block_requests_for_models_without_pricing: {str(block).lower()}
general_settings:
  master_key: {MASTER}
"""


def setting(url: str) -> Any:
    req = urllib.request.Request(f"{url}/config/block_requests_for_models_without_pricing",
                                 headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_unpriced_models_are_refused_before_the_upstream() -> None:
    with http_upstream(_Answer) as base, start_gateway(config(base, True)) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
        msgs: Any = [{"role": "user", "content": "hello"}]
        _seen.clear()
        for model in ("priced", "free-by-decision", "mapped", "wild/gpt-4o-mini"):  # the cost map prices gpt-4o-mini
            assert client.chat.completions.create(model=model, messages=msgs).choices[0].message.content == "hi"
        assert _seen == ["house-model", "house-model", "gpt-4o-mini", "gpt-4o-mini"]
        for model in ("unpriced", "wild/no-such-model-in-any-cost-map"):
            with pytest.raises(openai.PermissionDeniedError) as info:
                client.chat.completions.create(model=model, messages=msgs)
            err = info.value.body
            assert isinstance(err, dict), err
            assert err["message"] == blocked_message(model) and err["type"] == "model_cost_map_missing"
            assert err["param"] == "model" and info.value.status_code == 403
        assert len(_seen) == 4  # nothing refused reached the upstream
        assert setting(gw.url) == {"enabled": True}


def test_off_serves_unpriced_models() -> None:
    with http_upstream(_Answer) as base, start_gateway(config(base, False)) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
        out = client.chat.completions.create(model="unpriced", messages=[{"role": "user", "content": "hello"}])
        assert out.choices[0].message.content == "hi"
        assert setting(gw.url) == {"enabled": False}
