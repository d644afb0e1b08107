"""``callbacks: ["otel"]`` through a real ``relaygate serve``: the incoming traceparent is continued, each
upstream attempt gets its own span id in the traceparent it sends, and the spans that reach a real OTLP/HTTP
receiver carry exactly those ids (retries and fallbacks included)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from relaygate.observe.tracecontext import parse_traceparent
from tests.conftest import start_gateway
from tests.observe.otlp_receiver import Receiver

pytestmark = pytest.mark.e2e

MASTER = "sk-otel-master"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class _Upstream(BaseHTTPRequestHandler):
    """OpenAI-like: ``bad-model`` answers 500, anything else a chat completion; records each traceparent."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        model = body.get("model")
        _Upstream.seen.append((model, self.headers.get("traceparent")))
        if model == "bad-model":
            out = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
            status = 500
        else:
            out = json.dumps({"id": "chatcmpl-e2e", "object": "chat.completion", "created": 1, "model": model,
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, Receiver]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    config = f"""
model_list:
  - model_name: primary
    litellm_params: {{model: openai/bad-model, api_key: k, api_base: "{base}"}}
  - model_name: backup
    litellm_params: {{model: openai/good-model, api_key: k, api_base: "{base}"}}
router_settings:
  num_retries: 1
  fallbacks: [{{"primary": ["backup"]}}]
litellm_settings:
  callbacks: ["otel"]
general_settings:
  master_key: {MASTER}
"""
    try:
        with Receiver() as rx, start_gateway(config, env={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
                                                          "OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
            yield gw.url, rx
    finally:
        server.shutdown()
        server.server_close()


def test_traceparent_continued_and_ids_agree(stack: tuple[str, Receiver]) -> None:
    url, rx = stack
    _Upstream.seen.clear()
    with httpx.Client(base_url=url, timeout=20) as c:
        r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}",
                                                     "traceparent": f"00-{TRACE}-{PARENT}-01"},
                   json={"model": "backup", "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200
    call_id = r.headers["x-litellm-call-id"]
    [(model, sent)] = _Upstream.seen
    assert model == "good-model" and sent is not None
    parsed = parse_traceparent(sent.encode())
    assert parsed is not None
    up_trace, up_span, flags = parsed
    assert (up_trace, flags) == (TRACE, 1)
    spans = [s for s in rx.wait_spans(2) if s.trace_id == TRACE]
    assert len(spans) == 2, spans
    req = next(s for s in spans if s.kind == "SERVER")
    att = next(s for s in spans if s.kind == "CLIENT")
    assert req.parent_span_id == PARENT
    assert req.attributes["relaygate.call_id"] == call_id
    assert att.span_id == up_span
    assert att.parent_span_id == req.span_id
    assert att.name == "chat good-model"
    assert att.attributes["server.address"] == "127.0.0.1"
    assert req.attributes["gen_ai.response.id"] == "chatcmpl-e2e"
    assert req.attributes["gen_ai.usage.input_tokens"] == 3
    assert json.loads(req.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}]


def test_retries_and_fallback_are_sibling_spans(stack: tuple[str, Receiver]) -> None:
    url, rx = stack
    _Upstream.seen.clear()
    with httpx.Client(base_url=url, timeout=20) as c:
        r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                   json={"model": "primary", "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200, r.text
    call_id = r.headers["x-litellm-call-id"]
    sent = [parse_traceparent(tp.encode()) for _, tp in _Upstream.seen if tp]
    assert len(sent) == len(_Upstream.seen) >= 2
    assert [m for m, _ in _Upstream.seen][-1] == "good-model"
    trace_ids = {p[0] for p in sent if p}
    assert len(trace_ids) == 1
    (trace_id,) = trace_ids
    n = len(sent) + 1
    spans = []
    for _ in range(3):
        spans = [s for s in rx.wait_spans(n) if s.trace_id == trace_id]
        if len(spans) == n:
            break
    req = next(s for s in spans if s.kind == "SERVER")
    assert req.attributes["relaygate.call_id"] == call_id
    assert req.parent_span_id == ""
    clients = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_time_unix_nano)
    assert [s.span_id for s in clients] == [p[1] for p in sent if p]
    assert all(s.parent_span_id == req.span_id for s in clients)
    kinds = [s.attributes["relaygate.attempt.kind"] for s in clients]
    assert kinds[0] == "first" and kinds[-1] == "fallback"
    assert all(k == "retry" for k in kinds[1:-1])
    assert [s.status for s in clients] == ["ERROR"] * (len(clients) - 1) + ["OK"]
    assert clients[0].attributes["http.response.status_code"] == 500
    assert req.attributes["relaygate.fallbacks"] == 1
