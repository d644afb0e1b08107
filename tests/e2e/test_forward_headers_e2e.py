"""End to end: LiteLLM's ``forward_client_headers_to_llm_api`` and ``forward_openai_org_id`` through a real
Granian process to a real upstream that records what it receives — the client's ``x-`` headers and
``anthropic-beta`` go on, the gateway's key (in any of its headers), ``x-litellm-*``, ``x-stainless-*``,
``x-amz-*`` / ``x-goog-*`` and the client's address never do; off, nothing of the client's goes on. Clients:
the openai SDK (its ``OpenAI-Organization``) and httpx, unary, stream and the completions-to-chat bridge."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-forward"
SEEN: list[dict[str, str]] = []


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        SEEN.append({k.lower(): v for k, v in self.headers.items()})
        if req.get("stream"):
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            ctype = "text/event-stream"
        else:
            body = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _config(port: int, on: bool) -> str:
    return f"""
model_list:
  - model_name: chat
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{port}/v1", api_key: sk-upstream}}
  - model_name: comp
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{port}/v1", api_key: sk-upstream}}
general_settings:
  master_key: {MASTER}
  litellm_key_header_name: X-Gateway-Key
  forward_client_headers_to_llm_api: {str(on).lower()}
  forward_openai_org_id: {str(on).lower()}
"""


CLIENT = {"X-Trace-Id": "trace-1", "anthropic-beta": "tools-2024", "x-litellm-tags": "t1", "x-stainless-os": "Linux",
          "x-amz-security-token": "nope", "x-goog-user-project": "other", "X-Forwarded-For": "203.0.113.9",
          "x-api-key": MASTER}


@pytest.fixture(scope="module")
def gw(upstream: int) -> Iterator[GatewayProc]:
    with start_gateway(_config(upstream, True)) as proc:
        yield proc


def _last() -> dict[str, Any]:
    return SEEN[-1]


def _check(seen: dict[str, Any]) -> None:
    assert seen["x-trace-id"] == "trace-1" and seen["anthropic-beta"] == "tools-2024"
    assert seen["authorization"] == "Bearer sk-upstream"  # the adapter's auth, never replaced
    for name in ("x-litellm-tags", "x-stainless-os", "x-amz-security-token", "x-goog-user-project",
                 "x-forwarded-for", "x-api-key", "x-gateway-key"):
        assert name not in seen, name
    assert MASTER not in json.dumps(seen)


@pytest.mark.parametrize("stream", [False, True])
def test_the_clients_headers_go_on(gw: GatewayProc, stream: bool) -> None:
    body = {"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=CLIENT, timeout=30)
    assert r.status_code == 200, r.text
    _check(_last())
    # the completions route bridged to chat carries them too, and the custom key header is never one of them
    r = httpx.post(gw.url + "/v1/completions", json={"model": "comp", "prompt": "x", "stream": stream},
                   headers={**{k: v for k, v in CLIENT.items() if k != "x-api-key"}, "X-Gateway-Key": MASTER},
                   timeout=30)
    assert r.status_code == 200, r.text
    _check(_last())


def test_openai_organization_through_the_sdk(gw: GatewayProc) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, organization="org-e2e", max_retries=0)
    assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}]).id
    seen = _last()
    assert seen["openai-organization"] == "org-e2e"
    assert not any(k.startswith("x-stainless") for k in seen)  # what the SDK adds about itself stays here


def test_off_nothing_of_the_clients_goes_on(upstream: int) -> None:
    with start_gateway(_config(upstream, False)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, organization="org-e2e", max_retries=0,
                               default_headers={"X-Trace-Id": "trace-1", "anthropic-beta": "b"})
        assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}]).id
        seen = _last()
        assert "x-trace-id" not in seen and "anthropic-beta" not in seen and "openai-organization" not in seen


def test_forwarded_for_listed_model_groups_only(upstream: int) -> None:
    """LiteLLM's ``litellm_settings.model_group_settings.forward_client_headers_to_llm_api``: the client's headers
    go on for the model groups listed (a name or a ``*`` pattern), not for the others; the gateway's key never."""
    from relaygate.pipeline.overrides import forwards_for

    assert forwards_for(("chat", "team-*"), "chat") and forwards_for(("team-*",), "alias", "team-a")
    assert not forwards_for(("chat",), "comp", "comp") and not forwards_for(("cha",), "chat")
    config = _config(upstream, False) + "litellm_settings:\n  model_group_settings:\n" \
        "    forward_client_headers_to_llm_api: [ch*]\n"
    with start_gateway(config) as gw:
        for model in ("chat", "comp"):
            SEEN.clear()
            r = httpx.post(f"{gw.url}/v1/chat/completions", headers={**CLIENT, "X-Gateway-Key": f"Bearer {MASTER}"},
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            assert r.status_code == 200, r.text
            (seen,) = SEEN
            assert (seen.get("x-trace-id"), seen.get("anthropic-beta")) == (
                ("trace-1", "tools-2024") if model == "chat" else (None, None)), (model, seen)
            assert "x-gateway-key" not in seen and "x-litellm-tags" not in seen and MASTER not in json.dumps(seen)
