"""End to end: the upstream's response headers reach the client as ``llm_provider-<name>``, as LiteLLM's proxy
returns them, on unary answers, streams and error answers; framing, hop-by-hop and cookie headers never do,
and a hostile upstream head cannot inject a header line.

A real Granian gateway (``relaygate serve``) in front of a threaded loopback upstream that answers like
OpenAI: ``x-ratelimit-*``, ``openai-processing-ms``, ``x-request-id``, a ``set-cookie``, chunked streams.
Clients: httpx (raw headers) and the openai SDK (``with_raw_response``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-provider-headers"
MSGS = [{"role": "user", "content": "hi"}]
CHAT = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
CHUNK = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,'
         b'"delta":{"content":"hello"},"finish_reason":null}]}\n\ndata: [DONE]\n\n')
PROVIDER = [("openai-processing-ms", "256"), ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "30000"), ("x-ratelimit-remaining-requests", "29999"),
            ("x-ratelimit-remaining-tokens", "149999990"), ("x-request-id", "req_123")]


class _OpenAILike(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        model, stream = req.get("model"), bool(req.get("stream"))
        if model == "evil":  # a value holding a bare CR: must never become a header line of the answer
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("x-evil", "a\rinjected: yes")
            self.send_header("content-length", str(len(CHAT)))
            self.end_headers()
            self.wfile.write(CHAT)
            return
        status = 429 if model == "limited" else 200
        self.send_response(status)
        for k, v in PROVIDER:
            self.send_header(k, v)
        self.send_header("set-cookie", "__cf_bm=secret; path=/")
        if status == 429:
            body = json.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                         "code": "rate_limit_exceeded"}}).encode()
            self.send_header("retry-after", "0")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif stream:
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNK), CHUNK))
        else:
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(CHAT)))
            self.end_headers()
            self.wfile.write(CHAT)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProc]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAILike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    models = "".join(f"""
  - model_name: {m}
    litellm_params: {{model: openai/{m}, api_key: sk-up, api_base: "{base}"}}""" for m in ("gpt-x", "limited", "evil"))
    config = f"""
model_list:{models}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER}
"""
    try:
        with start_gateway(config) as proc:
            yield proc
    finally:
        server.shutdown()
        server.server_close()


def _check_provider_headers(headers: httpx.Headers) -> None:
    for k, v in PROVIDER:
        assert headers.get_list(f"llm_provider-{k}") == [v], (k, headers)
    assert headers["x-ratelimit-remaining-requests"] == "29999"  # LiteLLM's unprefixed OpenAI rate-limit headers
    for name in headers:
        assert name not in ("llm_provider-set-cookie", "llm_provider-content-length",
                            "llm_provider-transfer-encoding", "llm_provider-connection"), name
    assert "set-cookie" not in headers


@pytest.mark.parametrize("stream", [False, True])
def test_provider_headers_reach_the_client(gw: GatewayProc, stream: bool) -> None:
    body = {"model": "gpt-x", "messages": MSGS, "stream": stream}
    with httpx.Client(timeout=20) as c:
        r = c.post(f"{gw.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200, r.text
    _check_provider_headers(r.headers)
    if stream:
        assert r.headers["content-type"] == "text/event-stream" and "hello" in r.text and "[DONE]" in r.text
        assert r.headers["llm_provider-content-type"] == "text/event-stream"
    else:
        assert r.json()["choices"][0]["message"]["content"] == "hello"
        assert int(r.headers["content-length"]) == len(r.content)  # the gateway's own framing, not the upstream's


def test_provider_headers_through_the_openai_sdk(gw: GatewayProc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-x", messages=MSGS)  # type: ignore[arg-type]
        assert raw.parse().choices[0].message.content == "hello"
        assert raw.headers["llm_provider-x-ratelimit-remaining-tokens"] == "149999990"
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(model="limited", messages=MSGS)  # type: ignore[arg-type]
    err = ei.value
    assert err.status_code == 429 and err.type == "throttling_error" and err.code == "429"
    assert err.response.headers["llm_provider-x-request-id"] == "req_123"
    assert err.response.headers["llm_provider-retry-after"] == "0"


def test_an_upstream_header_cannot_inject_a_line(gw: GatewayProc) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as s:
        body = json.dumps({"model": "evil", "messages": MSGS}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n"
                  b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                  % (MASTER.encode(), len(body), body))
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert raw.startswith(b"HTTP/1.1 502"), raw[:200]  # the upstream's head is refused as malformed
    assert b"injected" not in head and b"x-evil" not in head
