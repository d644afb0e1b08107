"""A recording upstream for the compat suite: a real HTTP server (a thread) that answers like OpenAI or
Anthropic and keeps exactly what it received (path, headers, body) for the tests to assert on.

``recording_upstream(openai_like=True)`` answers more as OpenAI does (the default answers stay as they are):
a path with a ``/status-NNN/`` segment answers status NNN with OpenAI's error body; a chat request with
``tools`` gets a call of its first tool (arguments ``TOOL_ARGS``), streamed in pieces; a stream asked with
``stream_options.include_usage`` ends with a usage chunk (``choices: []``); every answer carries
``x-request-id: UPSTREAM_REQUEST_ID``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UPSTREAM_MODEL = "upstream-model-2025"
UPSTREAM_REQUEST_ID = "req-upstream-1"
TOOL_ARGS = {"location": "Paris"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Recorder:
    url: str = ""
    seen: list[Received] = field(default_factory=list)

    def last(self) -> Received:
        return self.seen[-1]

    def for_prompt(self, prompt: str) -> list[Received]:
        """The requests whose last message has ``prompt`` as one of its lines (the completions bridge wraps a
        prompt in ``user:`` / ``assistant:`` lines): how a suite that tags each case by its prompt finds them."""
        out = []
        for r in self.seen:
            content = ((r.body.get("messages") or [{}])[-1] or {}).get("content")
            if isinstance(content, str) and prompt in content.split("\n"):
                out.append(r)
        return out


def _chat(stream: bool) -> bytes:
    if not stream:
        return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": UPSTREAM_MODEL,
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}).encode()
    frames = []
    for text in ("hel", "lo"):
        frames.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": UPSTREAM_MODEL,
                       "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    frames.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": UPSTREAM_MODEL,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames) + b"data: [DONE]\n\n"


def _message() -> bytes:
    return json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": UPSTREAM_MODEL,
                       "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": UPSTREAM_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _openai_like(path: str, body: dict[str, Any]) -> tuple[int, bytes, str] | None:
    """The ``openai_like`` answer for this request, or None for the default one."""
    status = next((int(seg[7:]) for seg in path.split("/") if seg.startswith("status-") and seg[7:].isdigit()), 0)
    if status:
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                429: "rate_limit_exceeded"}.get(status, "server_error")
        err = {"error": {"message": f"upstream says {status}", "type": kind, "param": None, "code": None}}
        return status, json.dumps(err).encode(), "application/json"
    if path.endswith("/messages"):
        return None
    stream = bool(body.get("stream"))
    usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    tools = body.get("tools") or []
    if not tools or (body.get("messages") or [{}])[-1].get("role") == "tool":
        if not usage:
            return None
        raw = _chat(True).rsplit(b"data: [DONE]", 1)[0]
        tail = {**_chunk({}), "choices": [], "usage": USAGE}
        return 200, raw + b"data: " + json.dumps(tail).encode() + b"\n\ndata: [DONE]\n\n", "text/event-stream"
    name = tools[0]["function"]["name"]
    args = json.dumps(TOOL_ARGS)
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}
    if not stream:
        out = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": UPSTREAM_MODEL,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                            "finish_reason": "tool_calls"}], "usage": USAGE}
        return 200, json.dumps(out).encode(), "application/json"
    half = len(args) // 2
    frames = [_chunk({"role": "assistant", "content": None, "tool_calls": [
                  {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
              _chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[:half]}}]}),
              _chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]}),
              _chunk({}, "tool_calls")]
    if usage:
        frames.append({**_chunk({}), "choices": [], "usage": USAGE})
    out_b = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames) + b"data: [DONE]\n\n"
    return 200, out_b, "text/event-stream"


@contextmanager
def recording_upstream(*, openai_like: bool = False) -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.loads(raw) if raw else {}
            rec.seen.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            special = _openai_like(self.path, body) if openai_like else None
            if special is not None:
                status, out, ctype = special
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(out)))
                self.send_header("x-request-id", UPSTREAM_REQUEST_ID)
                self.end_headers()
                self.wfile.write(out)
                return
            if self.path.endswith("/messages"):
                out, ctype = _message(), "application/json"
            else:
                stream = bool(body.get("stream"))
                out, ctype = _chat(stream), ("text/event-stream" if stream else "application/json")
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
            if openai_like:
                self.send_header("x-request-id", UPSTREAM_REQUEST_ID)
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def client_config(up: str, master: str, key: str) -> str:
    """A LiteLLM ``config.yaml`` over an ``openai_like`` recorder at ``up`` for the client suites: ``gpt-4o`` and
    ``gpt-4o-mini`` answer, ``tools`` calls the request's first tool, ``flaky`` always fails with 500 (its own
    ``num_retries: 2``), ``limited`` with 429; ``key`` is a virtual key with rpm/tpm limits."""
    dep = "litellm_params: {{model: openai/" + UPSTREAM_MODEL + ", api_key: sk-up, api_base: \"" + up + "/{}/v1\"{}}}"
    return f"""
model_list:
  - model_name: gpt-4o
    {dep.format("oa", "")}
  - model_name: gpt-4o-mini
    {dep.format("mini", "")}
  - model_name: tools
    {dep.format("tools", "")}
  - model_name: flaky
    {dep.format("status-500", ", num_retries: 2")}
  - model_name: limited
    {dep.format("status-429", "")}
general_settings:
  master_key: {master}
relaygate_keys:
  - key: {key}
    key_alias: compat-clients
    rpm_limit: 100000
    tpm_limit: 10000000
"""
