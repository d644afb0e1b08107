"""A recording upstream for the compat suite: a real HTTP server (a thread) that answers like OpenAI or
Anthropic and keeps exactly what it received (path, headers, body) for the tests to assert on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UPSTREAM_MODEL = "upstream-model-2025"


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


@contextmanager
def recording_upstream() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.loads(raw) if raw else {}
            rec.seen.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path.endswith("/messages"):
                out, ctype = _message(), "application/json"
            else:
                stream = bool(body.get("stream"))
                out, ctype = _chat(stream), ("text/event-stream" if stream else "application/json")
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
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
