"""The cross-path tests' upstream: a real local HTTP server (a thread, so both the in-process gateway and a
Granian process reach it) speaking OpenAI's ``/v1/responses`` (unary and SSE, shaped by
``bench.shapes_responses``) and Anthropic's ``/v1/messages`` (unary and SSE, with thinking blocks and their
signatures). Either stream can be cut in the middle of an event. Every request body is recorded by path."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from bench.shapes_responses import Answer, response_body, response_stream
from relaygate.asgi import Gateway
from relaygate.config import from_litellm

MASTER = "sk-master-crosspath"
AUTH = {"authorization": f"Bearer {MASTER}"}


@dataclass
class Claude:
    """What the Anthropic upstream answers next."""

    text: str = "The answer is 4"
    thinking: str = "two plus two"
    signature: str = "sig-claude-1"
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 12, "output_tokens": 9,
                                                           "cache_read_input_tokens": 4})


def claude_message(c: Claude, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if c.thinking:
        content.append({"type": "thinking", "thinking": c.thinking, "signature": c.signature})
    content.append({"type": "text", "text": c.text})
    return {"id": "msg_up1", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "end_turn", "stop_sequence": None, "usage": c.usage}


def claude_events(c: Claude, model: str) -> list[bytes]:
    def ev(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **obj}) + b"\n\n"

    start = {**claude_message(c, model), "content": [], "stop_reason": None,
             "usage": {"input_tokens": c.usage["input_tokens"], "output_tokens": 1}}
    out = [ev("message_start", {"message": start}), ev("ping", {})]
    i = 0
    if c.thinking:
        out.append(ev("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                            "signature": ""}}))
        for w in c.thinking.split(" "):
            out.append(ev("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta",
                                                                        "thinking": w + " "}}))
        out.append(ev("content_block_delta", {"index": 0, "delta": {"type": "signature_delta",
                                                                    "signature": c.signature}}))
        out.append(ev("content_block_stop", {"index": 0}))
        i = 1
    out.append(ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}}))
    for w in c.text.split(" "):
        out.append(ev("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": w + " "}}))
    out.append(ev("content_block_stop", {"index": i}))
    out.append(ev("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": c.usage["output_tokens"]}}))
    out.append(ev("message_stop", {}))
    return out


class Upstream:
    def __init__(self) -> None:
        self.answer = Answer(rid="up1", model="o3-pro", created=1700000000, text=["Hello ", "there"])
        self.claude = Claude()
        self.cut = False  # a stream breaks off in the middle of an event
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.url = ""

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [b for p, b in self.seen if p.endswith(path)]


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            n = int(self.headers.get("content-length") or 0)
            body = orjson.loads(self.rfile.read(n)) if n else {}
            path = self.path.split("?")[0]
            up.seen.append((path, body))
            if path.endswith("/responses"):
                if body.get("stream"):
                    self._sse(response_stream(up.answer))
                else:
                    self._json(response_body(up.answer))
            elif path.endswith("/v1/messages"):
                if body.get("stream"):
                    self._sse(claude_events(up.claude, body["model"]))
                else:
                    self._json(orjson.dumps(claude_message(up.claude, body["model"])))
            else:
                self._json(b'{"error": {"message": "no such path"}}', 404)

        def _json(self, data: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, frames: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if up.cut:  # the first half of the events, then half of the next one, then the connection ends
                half = len(frames) // 2
                frames = [*frames[:half], frames[half][: len(frames[half]) // 2]]
            for f in frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(f), f))
                self.wfile.flush()
            if up.cut:
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")

    return H


@contextmanager
def serve() -> Iterator[Upstream]:
    """The upstream on a free port, served by a thread until the block ends."""
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    server.daemon_threads = True
    up.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serve() as up:
        yield up


def config_yaml(up: Upstream) -> str:
    """``o3``: an ``openai/o3-pro`` deployment (the catalog says Responses only); ``mine``: an ``openai/``
    model the deployment's ``model_info.mode`` marks Responses only; ``az``: the same on ``azure/``;
    ``claude``: an ``anthropic/`` deployment (native for /v1/messages, translated for /v1/responses)."""
    return f"""
model_list:
  - model_name: o3
    litellm_params: {{model: openai/o3-pro, api_key: sk-up, api_base: "{up.url}/v1"}}
    model_info: {{input_cost_per_token: 0.00002, output_cost_per_token: 0.00008}}
  - model_name: mine
    litellm_params: {{model: openai/my-model, api_key: sk-up, api_base: "{up.url}/v1"}}
    model_info: {{mode: responses}}
  - model_name: az
    litellm_params: {{model: azure/my-o3, api_key: az-key, api_base: "{up.url}", api_version: "2025-04-01-preview"}}
    model_info: {{mode: responses}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-20250514, api_key: sk-ant, api_base: "{up.url}"}}
general_settings:
  master_key: {MASTER}
"""


@asynccontextmanager
async def gateway(up: Upstream) -> AsyncIterator[Gateway]:
    import yaml

    gw = Gateway(from_litellm(yaml.safe_load(config_yaml(up)), "<test>"))
    await gw.startup()
    try:
        yield gw
    finally:
        await gw.shutdown()
