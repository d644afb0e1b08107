"""End to end: CORS through a real Granian process, as a browser's fetch() sees it on the wire (httpx):
a preflight, then a streamed chat with Origin whose response head carries the Access-Control-* headers."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-cors"
SITE = "http://localhost:5173"
CONFIG = f"""
model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
      mock_chunks: 5
general_settings:
  master_key: {MASTER}
  cors_allow_origins: ["{SITE}"]
relaygate_settings:
  cors_expose_headers: ["x-litellm-call-id"]
  cors_max_age: 120
"""


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProc]:
    with start_gateway(CONFIG) as proc:
        yield proc


def test_preflight_then_streamed_chat(gw: GatewayProc) -> None:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        pre = client.options("/v1/chat/completions", headers={
            "Origin": SITE, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.text == "OK"
        assert pre.headers["access-control-allow-origin"] == SITE
        assert pre.headers["access-control-allow-headers"] == "authorization,content-type"
        assert "POST" in pre.headers["access-control-allow-methods"].split(", ")
        assert pre.headers["access-control-max-age"] == "120"
        assert pre.headers["access-control-allow-credentials"] == "true" and pre.headers["vary"] == "Origin"

        body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}
        with client.stream("POST", "/v1/chat/completions", json=body,
                           headers={"Origin": SITE, "Authorization": f"Bearer {MASTER}"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["access-control-allow-origin"] == SITE and r.headers["vary"] == "Origin"
            assert r.headers["access-control-allow-credentials"] == "true"
            assert r.headers["access-control-expose-headers"] == "x-litellm-call-id"
            assert r.headers["x-litellm-call-id"]
            text = "".join(r.iter_text())
        assert text.rstrip().endswith("data: [DONE]") and text.count("data: ") >= 5


def test_refused_origin_and_errors(gw: GatewayProc) -> None:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        pre = client.options("/v1/chat/completions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 400 and pre.text == "Disallowed CORS origin"
        assert "access-control-allow-origin" not in pre.headers

        unauth = client.post("/v1/chat/completions", json={"model": "chat", "messages": []},
                             headers={"Origin": SITE})
        assert unauth.status_code == 401 and unauth.headers["access-control-allow-origin"] == SITE

        plain = client.get("/health/liveliness")
        assert not any(k.startswith("access-control-") for k in plain.headers)
