"""Loopback mock upstreams for the Responses API client suites (``test_responses_*.py``): one real HTTP server
(a thread) that speaks three provider APIs as the providers do (:mod:`tests.compat.responses_apis`), so a real
gateway in front of it can be driven by real clients, and the gateway config that puts one deployment of each
provider on it.

* ``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``: OpenAI's Responses API (the ``openai/``
  deployment, native passthrough);
* ``POST /v1/messages``: Anthropic's Messages API (the ``anthropic/`` deployment, translated);
* ``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent?alt=sse``: Gemini (the
  ``gemini/`` deployment, translated).

Every request is answered by one rule (:mod:`tests.compat.responses_rule`) and kept as a ``Received`` with the
answer's ids, found by its prompt (``Mock.for_prompt``). A request the real provider would refuse gets the
provider's error body and is listed in ``Mock.problems`` (each test asserts it empty). ``check_*`` say what
an upstream request must look like.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.compat.responses_apis import anthropic_answer, gemini_answer, openai_answer, openai_error
from tests.compat.responses_rule import (
    ANTHROPIC_VERSION,
    GEMINI_3,
    KEYS,
    OVERLOADED,
    PREAMBLE,
    THOUGHT,
    UPSTREAM_MODELS,
    Mock,
    Received,
    Refused,
    expected_usage,
    hex_id,
    reply_text,
    sample,
    tool_reply,
)

__all__ = [
    "GEMINI_3_GROUP",
    "ANTHROPIC_VERSION",
    "KEYS",
    "MODELS",
    "Mock",
    "OVERLOADED",
    "PREAMBLE",
    "PROVIDERS",
    "Received",
    "THOUGHT",
    "UPSTREAM_MODELS",
    "check_reasoning_request",
    "check_route",
    "check_tool_result",
    "check_translated_text",
    "expected_usage",
    "gateway_config",
    "reply_text",
    "sample",
    "serve_mock",
    "tool_reply",
]

# ----------------------------------------------------------------------------------------- the server


def _handler(mock: Mock) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _record(self, method: str) -> Received:
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"<not json>": raw.decode(errors="replace")}
            path = self.path.split("?")[0]
            provider = ("openai" if path.startswith("/v1/responses") else "anthropic" if path == "/v1/messages"
                        else "gemini" if path.startswith("/v1beta/models/") else "unknown")
            rec = Received(provider, method, self.path, headers, body)
            with mock.lock:
                mock.seen.append(rec)
            return rec

        def do_POST(self) -> None:
            rec = self._record("POST")
            try:
                if rec.provider == "openai":
                    self._check_bearer(rec)
                    out, _ = openai_answer(mock, rec)
                elif rec.provider == "anthropic":
                    out = anthropic_answer(rec)
                elif rec.provider == "gemini":
                    out = gemini_answer(rec)
                else:
                    raise openai_error(404, f"no such path {rec.path}")
            except Refused as exc:
                rec.status = exc.status
                with mock.lock:
                    mock.problems.append(f"{rec.provider} {rec.path}: {exc}")
                self._json(exc.status, exc.body)
                return
            if isinstance(out, list):
                self._sse(out)
            else:
                self._json(200, out)

        def _check_bearer(self, rec: Received) -> None:
            if rec.headers.get("authorization") != f"Bearer {KEYS['openai']}":
                raise Refused(401, {"error": {"message": "Incorrect API key provided.", "type":
                                              "invalid_request_error", "param": None, "code": "invalid_api_key"}},
                              "wrong bearer")

        def _stored(self, method: str) -> None:
            rec = self._record(method)
            rid = rec.path.split("?")[0].removeprefix("/v1/responses/")
            try:
                self._check_bearer(rec)
            except Refused as exc:
                self._json(exc.status, exc.body)
                return
            with mock.lock:
                s = mock.stored.get(rid)
                if s is not None and method == "DELETE":
                    del mock.stored[rid]
            if s is None:
                self._json(404, {"error": {"message": f"Response with id '{rid}' not found.",
                                           "type": "invalid_request_error", "param": None, "code": None}})
            elif method == "DELETE":
                self._json(200, {"id": rid, "object": "response.deleted", "deleted": True})
            else:
                self._json(200, s["response"])

        def do_GET(self) -> None:
            self._stored("GET")

        def do_DELETE(self) -> None:
            self._stored("DELETE")

        def _json(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", "req_" + hex_id(8))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, frames: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-cache")
            self.end_headers()
            for f in frames:
                if f.startswith((b"event: error\n", b'data: {"error"')):  # an error arrives mid-generation
                    time.sleep(0.5)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(f), f))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return H


@contextmanager
def serve_mock() -> Iterator[Mock]:
    """The three providers' mock on a free loopback port until the block ends."""
    mock = Mock()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mock))
    server.daemon_threads = True
    mock.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield mock
    finally:
        server.shutdown()
        server.server_close()


def check_route(rec: Received, provider: str, stream: bool, client_key: str) -> None:
    """``rec`` went to the provider's own endpoint with the config's credentials (never the client's key) and the
    upstream model name."""
    h = rec.headers
    assert client_key not in json.dumps(h), "the client's key reached the upstream"
    if provider == "openai":
        assert rec.path == "/v1/responses" and h["authorization"] == f"Bearer {KEYS['openai']}"
        assert rec.body["model"] == UPSTREAM_MODELS["openai"] and bool(rec.body.get("stream")) == stream
    elif provider == "anthropic":
        assert rec.path == "/v1/messages" and h["x-api-key"] == KEYS["anthropic"]
        assert h["anthropic-version"] == ANTHROPIC_VERSION and "authorization" not in h
        assert rec.body["model"] == UPSTREAM_MODELS["anthropic"] and bool(rec.body.get("stream")) == stream
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        assert rec.path == f"/v1beta/models/{UPSTREAM_MODELS['gemini']}:{method}"
        assert h["x-goog-api-key"] == KEYS["gemini"] and "authorization" not in h and "model" not in rec.body


def check_translated_text(rec: Received, provider: str, prompt: str, system: str, max_tokens: int,
                          temperature: float) -> None:
    """A one-prompt request with a system text, a token limit and a temperature, as the Anthropic or Gemini
    adapter must have written it."""
    b = rec.body
    if provider == "anthropic":
        assert b["system"] == [{"type": "text", "text": system}]
        assert b["messages"] == [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        assert b["max_tokens"] == max_tokens and b["temperature"] == temperature
    else:
        assert provider == "gemini"
        assert b["systemInstruction"]["parts"] == [{"text": system}]
        assert b["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]
        gc = b["generationConfig"]
        assert gc["maxOutputTokens"] == max_tokens and gc["temperature"] == temperature


def check_reasoning_request(rec: Received, provider: str) -> None:
    """``reasoning: {effort: low, summary: auto}`` as the provider takes it (LiteLLM's budgets: low = 1024)."""
    b = rec.body
    if provider == "openai":
        assert b["reasoning"] == {"effort": "low", "summary": "auto"}
    elif provider == "anthropic":
        assert b["thinking"] == {"type": "enabled", "budget_tokens": 1024} and b["max_tokens"] > 1024
        assert "temperature" not in b
    else:
        assert b["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}


def check_tool_result(rec: Received, provider: str, call_id: str, output: str) -> None:
    """The second request of a tool round trip carries the call and its output in the provider's own shape."""
    b = rec.body
    if provider == "openai":
        items = [it for it in b["input"] if isinstance(it, dict) and it.get("type")]
        assert [it["type"] for it in items][-2:] == ["function_call", "function_call_output"]
        assert items[-2]["call_id"] == items[-1]["call_id"] == call_id and items[-1]["output"] == output
    elif provider == "anthropic":
        assert b["messages"][-2:] == [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": output}]}]
    else:  # the mock signs the call: its signature rides in the call id (LiteLLM's ``<id>__thought__<sig>``)
        signature = call_id.partition("__thought__")[2]
        assert signature.startswith("c2ln")
        assert b["contents"][-2:] == [
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                         "thoughtSignature": signature}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                             "response": {"content": output}}}]}]


MODELS = {"openai": "rg-openai", "anthropic": "rg-claude", "gemini": "rg-gemini"}
"""Each deployment's model group (its name differs from the upstream's model, which the gateway must swap)."""
PROVIDERS = tuple(MODELS)
GEMINI_3_GROUP = "rg-gemini-3"
"""A model group on the mock's Gemini 3 model (not one of :data:`PROVIDERS`: only its own tests use it)."""


def gateway_config(mock_url: str, master: str, keys: tuple[str, ...] = ()) -> str:
    """The gateway's LiteLLM config: one deployment per provider, all on the mock, the provider keys from the
    config; ``keys`` are virtual keys of no team (each sees only its own stored responses)."""
    vkeys = "".join(f"\n  - {{key: {k}, key_alias: client-{i}}}" for i, k in enumerate(keys))
    return f"""
model_list:
  - model_name: {MODELS["openai"]}
    litellm_params: {{model: openai/{UPSTREAM_MODELS["openai"]}, api_key: {KEYS["openai"]}, api_base: "{mock_url}/v1"}}
  - model_name: {MODELS["anthropic"]}
    litellm_params: {{model: anthropic/{UPSTREAM_MODELS["anthropic"]}, api_key: {KEYS["anthropic"]}, api_base: "{mock_url}"}}
  - model_name: {MODELS["gemini"]}
    litellm_params: {{model: gemini/{UPSTREAM_MODELS["gemini"]}, api_key: {KEYS["gemini"]}, api_base: "{mock_url}"}}
  - model_name: {GEMINI_3_GROUP}
    litellm_params: {{model: gemini/{GEMINI_3}, api_key: {KEYS["gemini"]}, api_base: "{mock_url}"}}
general_settings:
  master_key: {master}
""" + (f"relaygate_keys:{vkeys}\n" if keys else "")
