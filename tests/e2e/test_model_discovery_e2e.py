"""End to end: ``check_provider_endpoint`` lists what wildcard deployments' providers serve on ``/v1/models``,
through a real Granian gateway against real local HTTP servers (an OpenAI-compatible ``/v1/models`` and an
Ollama ``/api/tags``); a provider that is down leaves the configured entries and one log line."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-disc"


class _Upstream(BaseHTTPRequestHandler):
    auth: list[str] = []

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            type(self).auth.append(self.headers.get("Authorization", ""))
            body = {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}, {"id": "gpt-4o-mini"}]}
        elif self.path == "/api/tags":
            body = {"models": [{"name": "llama3:latest", "model": "llama3:latest"}, {"name": "qwen2:7b"}]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def config(url: str, dead: str) -> str:
    return f"""
model_list:
  - model_name: fixed
    litellm_params: {{model: openai/gpt-4.1, api_key: sk-up, api_base: {url}/v1}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_key: sk-up, api_base: {url}/v1, timeout: 2}}
  - model_name: "ollama/*"
    litellm_params: {{model: "ollama/*", api_base: {url}}}
  - model_name: "down/*"
    litellm_params: {{model: "hosted_vllm/*", api_base: {dead}/v1, timeout: 1}}
litellm_settings:
  check_provider_endpoint: true
general_settings:
  master_key: {MASTER}
"""


def test_wildcards_list_their_providers_models(upstream: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_gateway(config(upstream, dead)) as gw:
        h = {"Authorization": f"Bearer {MASTER}"}
        ids: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the first listing waits at most a moment for the fetches
            r = httpx.get(gw.url + "/v1/models", headers=h, timeout=10)
            assert r.status_code == 200, r.text
            ids = [m["id"] for m in r.json()["data"]]
            if "ollama/qwen2:7b" in ids:
                break
            time.sleep(0.2)
        assert ids == ["fixed", "openai/gpt-4o", "openai/gpt-4o-mini", "ollama/llama3:latest", "ollama/qwen2:7b"]
        assert all(m["object"] == "model" and m["owned_by"] == "openai" for m in r.json()["data"])
        assert _Upstream.auth and _Upstream.auth[-1] == "Bearer sk-up"
        calls = len(_Upstream.auth)
        r = httpx.get(gw.url + "/v1/models?return_wildcard_routes=true", headers=h, timeout=10)
        assert "openai/*" in [m["id"] for m in r.json()["data"]]
        assert len(_Upstream.auth) == calls  # cached: no fetch on the request path
        log = gw.log_path.read_text()
        assert log.count("model discovery for down/*") == 1
