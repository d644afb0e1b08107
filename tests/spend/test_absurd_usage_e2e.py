"""An upstream reporting absurd usage (more tokens than 64 bits hold, or than any request has) through a real
``relaygate serve`` on SQLite: the answer is served, its spend row is written with the usage bounded (one
warning names the deployment), and the rows of other requests in the same batch are not lost with it. Before,
SQLite's driver refused the batch (``OverflowError``) until the sink gave up on it: one upstream's bad numbers
dropped everyone's spend rows. The bounded answers are priced at most ``MAX_COST`` each, and charged: a budget
set after them refuses the key's next request."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import openai
import pytest

from relaygate.core.tokens import MAX_TOKENS
from relaygate.sinks.record import MAX_COST
from tests.asgi.conftest import http_upstream
from tests.conftest import start_gateway
from tests.spend.test_spend_e2e import call as call_as
from tests.spend.test_spend_e2e import logged

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-absurd-master"


def call(url: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER) -> tuple[int, Any]:
    return call_as(url, path, body, key)

USAGE = {"absurd": {"prompt_tokens": 2**70, "completion_tokens": 10**30, "total_tokens": 2**71},
         "normal": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        usage = USAGE[body["model"]]
        if body.get("stream"):
            chunks = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]},
                      {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                      {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"], "choices": [],
                       "usage": usage}]
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            ctype = "text/event-stream"
        else:
            data = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                            "finish_reason": "stop"}], "usage": usage}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def config(base: str) -> str:
    prices = "input_cost_per_token: 0.000001, output_cost_per_token: 0.000002"
    return f"""model_list:
  - model_name: absurd
    litellm_params: {{model: openai/absurd, api_base: {base}/v1, api_key: sk-up, {prices}}}
  - model_name: normal
    litellm_params: {{model: openai/normal, api_base: {base}/v1, api_key: sk-up, {prices}}}
general_settings:
  master_key: {MASTER}
"""


def test_absurd_usage_is_bounded_and_loses_no_row() -> None:
    with http_upstream(_Answer) as base, start_gateway(config(base)) as gw:
        status, out = call(gw.url, "/key/generate", {})
        assert status == 200, out
        key = out["key"]
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        msgs: Any = [{"role": "user", "content": "hello"}]
        ids = []
        for model in ("normal", "absurd", "normal"):
            raw = client.chat.completions.with_raw_response.create(model=model, messages=msgs)
            assert raw.parse().choices[0].message.content == "hi"
            ids.append(raw.headers["x-litellm-call-id"])
        stream = client.chat.completions.create(model="absurd", messages=msgs, stream=True,
                                                stream_options={"include_usage": True})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hi"
        rows = logged(gw.url, key, 4, MASTER, 15.0)
        assert {r["request_id"] for r in rows} >= set(ids) and len(rows) == 4, rows
        absurd = [r for r in rows if r["model_group"] == "absurd"]
        assert len(absurd) == 2
        for r in absurd:
            assert r["prompt_tokens"] == MAX_TOKENS and r["completion_tokens"] == MAX_TOKENS, r
            assert r["status"] == "success"
        normal = [r for r in rows if r["model_group"] == "normal"]
        assert [(r["prompt_tokens"], r["completion_tokens"]) for r in normal] == [(3, 1), (3, 1)]
        total = sum(r["spend"] for r in rows)
        info = call(gw.url, "/key/info?key=" + key)[1]["info"]
        assert info["spend"] == pytest.approx(total, rel=1e-9)
        assert total == pytest.approx(2 * MAX_COST + 2 * 5e-6)  # the absurd answers cost the most a request may
        assert call(gw.url, "/key/update", {"key": key, "max_budget": 1000.0})[0] == 200
        status, err = call(gw.url, "/v1/chat/completions", {"model": "normal", "messages": msgs}, key=key)
        assert status == 422 and err["error"]["type"] == "budget_exceeded", err
        log = gw.log()
        assert "OverflowError" not in log and "dropped" not in log, log
        assert log.count("absurd usage") == 1, log  # once a minute per deployment
