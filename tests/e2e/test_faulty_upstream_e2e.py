"""End to end: the openai SDK against a real Granian gateway whose upstream misbehaves, and hostile model names.

A threaded loopback upstream answers by the request's model: ``html`` with ``200 text/html`` (a proxy's
error page), ``badutf8`` with an SSE stream holding invalid UTF-8. The SDK must raise its own ``APIError``
classes (never a JSON or Unicode decode error) and read valid text; model names that would steer the
upstream URL or carry control characters are a ``BadRequestError``, on streams too (never Granian's
plain-text 500).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-faulty"
HTML = b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n"
CHUNK = (b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,'
         b'"delta":{"content":"caf\xe9 \xff ok"},"finish_reason":null}]}')


class _Faulty(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        self.seen.append(self.path)
        if req.get("model") == "badutf8":
            body, ctype = b"data: " + CHUNK + b"\n\ndata: [DONE]\n\n", "text/event-stream"
        else:
            body, ctype = HTML, "text/html"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProc]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    config = f"""
model_list:
  - model_name: html
    litellm_params: {{model: openai/html, api_key: k, api_base: "{base}"}}
  - model_name: badutf8
    litellm_params: {{model: openai/badutf8, api_key: k, api_base: "{base}"}}
  - model_name: "gemini/*"
    litellm_params: {{model: "gemini/*", api_key: k, api_base: "{base}"}}
  - model_name: "azure/*"
    litellm_params: {{model: "azure/*", api_key: k, api_base: "{base}", api_version: v}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_key: k, api_base: "{base}"}}
general_settings:
  master_key: {MASTER}
"""
    try:
        with start_gateway(config) as proc:
            yield proc
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(gw: GatewayProc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


MSGS = [{"role": "user", "content": "hi"}]


def test_html_200_is_an_api_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="html", messages=MSGS)  # type: ignore[arg-type]
    assert ei.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as ei:
        for _ in client.chat.completions.create(model="html", messages=MSGS, stream=True):  # type: ignore[arg-type]
            pass
    assert ei.value.status_code == 502


def test_html_200_on_the_messages_route_is_an_api_error(gw: GatewayProc) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=20) as c:
        with pytest.raises(anthropic.APIStatusError) as ei:
            c.messages.create(model="html", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert ei.value.status_code == 502


def test_invalid_utf8_in_a_stream_reads_as_replacement_characters(client: openai.OpenAI) -> None:
    text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
        model="badutf8", messages=MSGS, stream=True) if ch.choices)  # type: ignore[arg-type]
    assert text == "caf\ufffd \ufffd ok"


@pytest.mark.parametrize("model", ["gemini/../../../__mock/config?x=", "azure/x?key=attacker#", "gemini/a\rb",
                                   "azure/a\x7fb", "openai/a\x00b", "openai/a\rb"])
@pytest.mark.parametrize("stream", [False, True])
def test_hostile_model_names_are_a_bad_request(client: openai.OpenAI, model: str, stream: bool) -> None:
    before = len(_Faulty.seen)
    with pytest.raises(openai.BadRequestError) as ei:
        r = client.chat.completions.create(model=model, messages=MSGS, stream=stream)  # type: ignore[arg-type]
        for _ in r if stream else ():  # type: ignore[union-attr]
            pass
    assert "model" in str(ei.value)
    assert len(_Faulty.seen) == before  # nothing reached the upstream
