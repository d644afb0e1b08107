"""The /v1/responses tests' upstream: a real local HTTP server (a thread, so both the in-process gateway and a
Granian process can reach it) that speaks chat completions (unary and SSE, with reasoning, interleaved tool
calls, usage, and a stream cut mid-way) and, for the native path, ``/v1/responses`` itself (and ``GET`` /
``cancel`` of a response it runs in the background). It records every request body it gets, by path.
``stored_gateway`` builds the gateway over a real database with keys of two teams (conversation state)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm

MASTER = "sk-master-responses"
AUTH = {"authorization": f"Bearer {MASTER}"}


@dataclass
class Script:
    """What the chat upstream answers next."""

    content: str = "Hello from the upstream"
    reasoning: str = ""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, arguments)
    finish: str = "stop"
    usage: dict[str, Any] = field(default_factory=lambda: {
        "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}})
    cut: bool = False  # a stream that breaks off after the first content chunk
    delay: float = 0.0  # seconds before answering (a background response still running)


NATIVE_RESPONSE = {
    "id": "resp_native1", "object": "response", "created_at": 1700000000, "status": "completed",
    "model": "gpt-native-upstream", "output": [{"id": "msg_n1", "type": "message", "role": "assistant",
                                                "status": "completed", "content": [
                                                    {"type": "output_text", "text": "native says hi",
                                                     "annotations": []}]}],
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "usage": {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 25}}


def native_events(rid: str = "resp_native1", prev: str | None = None) -> bytes:
    final = {**NATIVE_RESPONSE, "id": rid, "previous_response_id": prev}
    r = {**final, "status": "in_progress", "output": [], "usage": None}
    item = NATIVE_RESPONSE["output"][0]  # type: ignore[index]
    evs = [("response.created", {"response": r}),
           ("response.output_item.added", {"output_index": 0, "item": {**item, "content": [],
                                                                        "status": "in_progress"}}),
           ("response.content_part.added", {"output_index": 0, "item_id": "msg_n1", "content_index": 0,
                                            "part": {"type": "output_text", "text": "", "annotations": []}}),
           ("response.output_text.delta", {"output_index": 0, "item_id": "msg_n1", "content_index": 0,
                                           "delta": "native says hi", "logprobs": []}),
           ("response.output_item.done", {"output_index": 0, "item": item}),
           ("response.completed", {"response": final})]
    return b"".join(b"event: %s\ndata: %s\n\n" % (k.encode(), orjson.dumps({"type": k, "sequence_number": i, **v}))
                    for i, (k, v) in enumerate(evs))


def chat_frames(s: Script) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up-model"}

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta,
                                                               "finish_reason": finish}]}) + b"\n\n"

    out = [frame({"role": "assistant"})]
    for piece in _pieces(s.reasoning):
        out.append(frame({"reasoning_content": piece}))
    for piece in _pieces(s.content):
        out.append(frame({"content": piece}))
    for i, (cid, name, _) in enumerate(s.tool_calls):  # every call opens, then their arguments interleave
        out.append(frame({"tool_calls": [{"index": i, "id": cid, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
    halves = [(_half(a)) for _, _, a in s.tool_calls]
    for part in (0, 1):
        for i, h in enumerate(halves):
            out.append(frame({"tool_calls": [{"index": i, "function": {"arguments": h[part]}}]}))
    out.append(frame({}, s.finish))
    out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": s.usage}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)] if text else []


def _half(s: str) -> tuple[str, str]:
    return s[: len(s) // 2], s[len(s) // 2:]


def chat_body(s: Script) -> bytes:
    msg: dict[str, Any] = {"role": "assistant", "content": s.content or None}
    if s.reasoning:
        msg["reasoning_content"] = s.reasoning
    if s.tool_calls:
        msg["tool_calls"] = [{"id": c, "type": "function", "function": {"name": n, "arguments": a}}
                             for c, n, a in s.tool_calls]
    return orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up-model",
                         "choices": [{"index": 0, "message": msg, "finish_reason": s.finish}], "usage": s.usage})


class Upstream:
    def __init__(self) -> None:
        self.script = Script()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path with query, headers)
        self.url = ""
        self.native_ids = 0

    def native_id(self) -> str:
        """A new id for a response of the native path (``resp_native1``, ``resp_native2`` ...)."""
        self.native_ids += 1
        return f"resp_native{self.native_ids}"

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
            up.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            s = up.script
            if s.delay:
                time.sleep(s.delay)
            if path.endswith("/cancel"):
                self._json(orjson.dumps({**NATIVE_RESPONSE, "status": "cancelled", "background": True}))
            elif path.endswith("/responses"):
                rid = up.native_id()
                if body.get("background"):
                    self._json(orjson.dumps({**NATIVE_RESPONSE, "id": rid, "status": "queued", "output": [],
                                             "usage": None, "background": True}))
                    return
                if body.get("stream"):
                    events = native_events(rid, body.get("previous_response_id"))
                    frames = [f + b"\n\n" for f in events.split(b"\n\n") if f]
                    self._sse(frames[:3] if s.cut else frames, cut=s.cut)
                else:
                    self._json(orjson.dumps({**NATIVE_RESPONSE, "id": rid,
                                             "previous_response_id": body.get("previous_response_id")}))
            elif path.endswith("/responses/input_tokens"):  # OpenAI's count: 400 for a request it refuses
                if body.get("input") == "refuse me":
                    self._json(b'{"error": {"message": "Invalid input", "type": "invalid_request_error", '
                               b'"param": "input", "code": null}}', 400)
                elif body.get("input") == "fail me":
                    self._json(b'{"error": {"message": "upstream overloaded"}}', 503)
                else:
                    self._json(orjson.dumps({"object": "response.input_tokens", "input_tokens": 42}))
            elif path.endswith("/chat/completions"):
                if body.get("stream"):
                    frames = chat_frames(s)
                    self._sse(frames[:3] if s.cut else frames, cut=s.cut)
                else:
                    self._json(chat_body(s))
            else:
                self._json(b'{"error": {"message": "no such path"}}', 404)

        def do_GET(self) -> None:
            up.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if "/responses/" in self.path:
                rid = self.path.split("?")[0].rsplit("/", 1)[-1]
                self._json(orjson.dumps({**NATIVE_RESPONSE, "id": rid, "background": True}))
            else:
                self._json(b'{"error": {"message": "no such path"}}', 404)

        def do_DELETE(self) -> None:
            up.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            rid = self.path.split("?")[0].rsplit("/", 1)[-1]
            self._json(orjson.dumps({"id": rid, "object": "response", "deleted": True}))

        def _json(self, data: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the gateway gave up on it (a cancelled response)
                self.close_connection = True

        def _sse(self, frames: list[bytes], cut: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for f in frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(f), f))
                self.wfile.flush()
            if cut:  # a broken chunked body: the gateway's transport sees the connection end mid-stream
                self.wfile.write(b"ff\r\npartial")
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")

    return H


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serve() as up:
        yield up


@contextmanager
def serve() -> Iterator[Upstream]:
    """The upstream on a free port, served by a thread until the block ends."""
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    server.daemon_threads = True
    up.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()


def config(up: Upstream) -> dict[str, Any]:
    """``chat``: a chat-only OpenAI-compatible deployment (translated); ``native``: an ``openai/`` one (its
    own /responses); ``claude``: an ``anthropic/`` one, translated through the Anthropic adapter. Priced."""
    price = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    return {"model_list": [
        {"model_name": "chat", "litellm_params": {"model": "hosted_vllm/up-model", "api_base": up.url,
                                                  "api_key": "k"}, "model_info": price},
        {"model_name": "native", "litellm_params": {"model": "openai/gpt-native-upstream", "api_base": up.url,
                                                    "api_key": "k"}, "model_info": price},
        {"model_name": "az", "litellm_params": {"model": "azure/my-deploy", "api_base": up.url.removesuffix("/v1"),
                                                "api_key": "az-key", "api_version": "2025-04-01-preview"}},
    ], "general_settings": {"master_key": MASTER}}


@asynccontextmanager
async def gateway(up: Upstream) -> AsyncIterator[Gateway]:
    gw = Gateway(from_litellm(config(up), "<test>"))
    await gw.startup()
    try:
        yield gw
    finally:
        await gw.shutdown()


KEYS = {"a1": "sk-team1-a", "a2": "sk-team1-b", "b1": "sk-team2-a"}
"""Virtual keys: ``a1`` and ``a2`` of team ``t1``, ``b1`` of team ``t2``."""


def auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[name]}"}


def stored_config(up: Upstream, db_url: str, retention: str | None = "30d", **server: Any) -> dict[str, Any]:
    """:func:`config` over the database ``db_url`` with the keys of :data:`KEYS` (``server``: more
    ``relaygate_settings``)."""
    cfg = config(up)
    cfg["general_settings"]["database_url"] = db_url
    cfg["relaygate_settings"] = {"responses_retention": retention, **server}
    cfg["relaygate_keys"] = [{"key": KEYS["a1"], "team_id": "t1", "user_id": "u1"},
                             {"key": KEYS["a2"], "team_id": "t1", "user_id": "u2"},
                             {"key": KEYS["b1"], "team_id": "t2", "user_id": "u3"}]
    return cfg


@asynccontextmanager
async def stored_gateway(up: Upstream, db_url: str, retention: str | None = "30d",
                         **server: Any) -> AsyncIterator[Gateway]:
    gw = Gateway(from_litellm(stored_config(up, db_url, retention, **server), "<test>"))
    await gw.startup()
    try:
        yield gw
    finally:
        await gw.shutdown()
