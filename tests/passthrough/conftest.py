"""The pass-through tests' upstream: a real HTTP server on loopback (a thread, reachable from the in-process
gateway and from a Granian process) that speaks just enough of Anthropic's Messages API, OpenAI's chat
completions and Gemini's ``generateContent`` (unary and streamed, with usage), echoes any other request
(method, path, query, headers, body size), reads uploads slowly in small pieces, and can hold or cut an
answer mid-way. It records every request's path, headers and body."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

UPSTREAM_KEY = "sk-upstream-anthropic-0123456789"
OPENAI_KEY = "sk-upstream-openai-0123456789"
GEMINI_KEY = "gm-upstream-gemini-0123456789"
MASTER = "sk-master-passthrough-1234"

ANTHROPIC_MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
    "content": [{"type": "text", "text": "Hello from the upstream"}], "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 0,
              "cache_creation_input_tokens": 0}}


def anthropic_events() -> list[bytes]:
    start = {**ANTHROPIC_MESSAGE, "content": [], "stop_reason": None,
             "usage": {"input_tokens": 1000, "output_tokens": 1, "cache_read_input_tokens": 0,
                       "cache_creation_input_tokens": 0}}
    evs: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hello from "}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "the upstream"}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 200}}),
        ("message_stop", {})]
    return [b"event: %s\ndata: %s\n\n" % (k.encode(), orjson.dumps({"type": k, **v})) for k, v in evs]


OPENAI_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def openai_body() -> bytes:
    return orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                                      "finish_reason": "stop"}], "usage": OPENAI_USAGE})


def openai_frames() -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    out = [b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": p},
                                                          "finish_reason": None}]}) + b"\n\n"
           for p in ("hi ", "there")]
    out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": OPENAI_USAGE}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


GEMINI_ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "gemini says hi"}]},
                                 "finishReason": "STOP"}],
                 "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 10, "totalTokenCount": 50},
                 "modelVersion": "gemini-1.5-flash"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    size: int
    body: bytes


@dataclass
class Upstream:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    received: int = 0
    """Body bytes of the current slow upload read so far."""
    hold: threading.Event = field(default_factory=threading.Event)
    """Set by a test to release an answer held mid-way (``/hold``)."""
    broken: threading.Event = field(default_factory=threading.Event)
    """Set when writing the rest of a held answer failed: the gateway had closed the connection."""

    def last(self, path: str) -> Seen:
        return [s for s in self.seen if s.path.split("?")[0].endswith(path)][-1]


def _read_body(h: BaseHTTPRequestHandler, up: Upstream, slow: bool) -> tuple[int, bytes]:
    """The request body (chunked or with a length); ``slow``: read in 16 KiB pieces with pauses, keeping
    only the count, as a slow upstream would."""
    keep = not slow
    parts: list[bytes] = []
    size = 0
    up.received = 0

    def take(n: int) -> None:
        nonlocal size
        while n > 0:
            piece = h.rfile.read(min(n, 16384) if slow else n)
            if not piece:
                raise ConnectionError("body ended early")
            n -= len(piece)
            size += len(piece)
            up.received = size
            if keep:
                parts.append(piece)
            if slow:
                time.sleep(0.001)

    if h.headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            line = h.rfile.readline().strip()
            n = int(line.split(b";")[0], 16)
            if n == 0:
                h.rfile.readline()
                break
            take(n)
            h.rfile.readline()
    else:
        take(int(h.headers.get("content-length") or 0))
    return size, b"".join(parts)


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            path = self.path.split("?")[0]
            size, body = _read_body(self, up, slow=path.endswith("/upload"))
            headers = {k.lower(): v for k, v in self.headers.items()}
            up.seen.append(Seen(self.command, self.path, headers, size, body))
            req: dict[str, Any] = {}
            if body[:1] == b"{":
                req = orjson.loads(body)
            if path.endswith("/v1/messages"):
                if headers.get("x-api-key") != UPSTREAM_KEY:
                    self._json(orjson.dumps({"type": "error", "error": {"type": "authentication_error",
                                                                        "message": "invalid x-api-key"}}), 401)
                elif req.get("stream"):
                    self._chunks(anthropic_events(), "text/event-stream")
                else:
                    self._json(orjson.dumps(ANTHROPIC_MESSAGE))
            elif path.endswith("/chat/completions"):
                if headers.get("authorization") != f"Bearer {OPENAI_KEY}":
                    self._json(b'{"error": {"message": "bad key", "type": "invalid_request_error"}}', 401)
                elif req.get("stream"):
                    self._chunks(openai_frames(), "text/event-stream")
                else:
                    self._json(openai_body())
            elif ":generateContent" in path or ":streamGenerateContent" in path:
                if headers.get("x-goog-api-key") != GEMINI_KEY or "key=" in self.path:
                    self._json(b'{"error": {"code": 403, "message": "bad key", "status": "PERMISSION_DENIED"}}', 403)
                elif "stream" in path:
                    self._chunks([b"data: " + orjson.dumps(GEMINI_ANSWER) + b"\r\n\r\n"], "text/event-stream")
                else:
                    self._json(orjson.dumps(GEMINI_ANSWER))
            elif path.endswith("/slow-head"):
                up.hold.wait(5)
                self._json(b"{}")
            elif "/converse" in path:
                self._json(orjson.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                                         "stopReason": "end_turn",
                                         "usage": {"inputTokens": 30, "outputTokens": 3, "totalTokens": 33}}))
            elif path.endswith("/hold"):
                self._chunks([b"first part;"], "text/plain", then=[b"second part"])
            elif path.endswith("/cut"):
                self._chunks(anthropic_events()[:3], "text/event-stream", cut=True)
            elif path.endswith("/cut-plain"):
                self._chunks([b"x" * 100], "application/octet-stream", cut=True)
            else:
                self._json(orjson.dumps({"method": self.command, "path": self.path, "headers": headers,
                                         "size": size}))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def _json(self, data: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunks(self, frames: list[bytes], ctype: str, cut: bool = False, then: list[bytes] | None = None) -> None:
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for f in frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(f), f))
                self.wfile.flush()
            if then is not None:
                up.hold.wait(10)
                try:
                    for f in then:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(f), f))
                        self.wfile.flush()
                    time.sleep(0.05)  # lets the peer's reset arrive before the end is written
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    up.broken.set()
                    self.close_connection = True
                return
            if cut:  # the connection ends inside a chunk: the gateway's transport sees the break
                self.wfile.write(b"ff\r\npartial")
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")

    return H


@contextmanager
def serve() -> Iterator[Upstream]:
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    server.daemon_threads = True
    up.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serve() as up:
        yield up


def config_text(url: str, extra: str = "") -> str:
    """A LiteLLM config whose pass-through credentials point at ``url`` (with made-up prices for the
    upstream models, so spend is known exactly)."""
    return f"""
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_key: {UPSTREAM_KEY}
      api_base: {url}
      use_in_pass_through: true
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000005
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {OPENAI_KEY}
      api_base: {url}/v1
      use_in_pass_through: true
      input_cost_per_token: 0.000002
      output_cost_per_token: 0.000004
  - model_name: gem
    litellm_params:
      model: gemini/gemini-1.5-flash
      api_key: {GEMINI_KEY}
      api_base: {url}
      use_in_pass_through: true
      input_cost_per_token: 0.0000001
      output_cost_per_token: 0.0000003
general_settings:
  master_key: {MASTER}
{extra}
"""
