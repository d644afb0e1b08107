"""End to end: Gemini embeddings and image URLs through a real Granian gateway, the bench mock as Gemini.

The openai SDK asks for ``encoding_format: base64`` by default, so the gateway's float32 packing is what
the SDK decodes; ``dimensions`` reaches the upstream as ``outputDimensionality``. An image URL served by a
local HTTP server is downloaded by the gateway worker and reaches the mock inline.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-embed"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def config(url: str) -> str:
    return f"""
model_list:
  - model_name: gem-embed
    litellm_params: {{model: gemini/gemini-embedding-001, api_key: sk-up, api_base: {url}}}
  - model_name: gem
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: {url}}}
general_settings:
  master_key: {MASTER}
relaygate_settings:
  allow_private_media_urls: true
"""


class _Images(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.path.startswith("/cat.png"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Any]]:
    with start_mock(name="embed", seed=5, embedding_dims=12) as mock, start_gateway(config(mock.url)) as gw:
        yield gw, mock


@pytest.fixture
def client(stack: tuple[GatewayProc, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack[0].url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


def test_gemini_embeddings_base64_and_float(stack: tuple[GatewayProc, Any], client: openai.OpenAI) -> None:
    stack[1].reset()
    r = client.embeddings.create(model="gem-embed", input=["first", "second text", "third"])  # SDK: base64
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(d.embedding) == 12 and isinstance(d.embedding[0], float) for d in r.data)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    floats = client.embeddings.create(model="gem-embed", input="one", encoding_format="float", dimensions=4)
    assert len(floats.data) == 1 and len(floats.data[0].embedding) == 4
    sent = [q for q in stack[1].requests() if ":batchEmbedContents" in q["target"]]
    assert len(sent) == 2
    assert [x["content"]["parts"][0]["text"] for x in sent[0]["body"]["requests"]] == ["first", "second text", "third"]
    assert sent[1]["body"]["requests"][0]["outputDimensionality"] == 4


def test_gemini_embeddings_upstream_error_class(stack: tuple[GatewayProc, Any], client: openai.OpenAI) -> None:
    before = stack[1].config()["fault_429"]
    stack[1].set_config(fault_429=1.0)
    try:
        with pytest.raises(openai.RateLimitError) as ei:
            client.embeddings.create(model="gem-embed", input="x")
    finally:
        stack[1].set_config(fault_429=before)
    assert "litellm.RateLimitError: GeminiException" in str(ei.value)


def test_image_url_is_fetched_by_the_worker_and_sent_inline(stack: tuple[GatewayProc, Any], images: str,
                                                             client: openai.OpenAI) -> None:
    stack[1].reset()
    msg: Any = {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                            {"type": "image_url", "image_url": {"url": f"{images}/cat.png?sig=x"}}]}
    r = client.chat.completions.create(model="gem", messages=[msg])
    assert r.choices[0].message.content
    sent = [q for q in stack[1].requests() if ":generateContent" in q["target"]]
    parts = sent[-1]["body"]["contents"][0]["parts"]
    assert {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}} in parts
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gem", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"{images}/nope.png?sig=hide"}}]}])
    assert "Unable to fetch image from" in str(ei.value) and "/nope.png" in str(ei.value)
    assert "hide" not in str(ei.value)
