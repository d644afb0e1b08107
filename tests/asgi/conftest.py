"""In-process ASGI tier: call the app directly, no sockets on the client side (fast tier only)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(app: Any, method: str, path: str, body: bytes | dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, body_parts: int = 1) -> Reply:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    body = body or b""
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    path, _, query = path.partition("?")
    scope = {"type": "http", "method": method, "path": path, "headers": hdrs, "query_string": query.encode(),
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 1)}
    step = max(1, -(-len(body) // body_parts))
    parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    chunks = [m["body"] for m in sent[1:] if m.get("body")]
    assert sent[-1].get("more_body", False) is False
    return Reply(start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, b"".join(chunks), chunks)


@contextmanager
def http_upstream(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on loopback answering with ``handler`` in threads; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_gateway(yaml_obj: dict[str, Any]) -> Gateway:
    return Gateway(from_litellm(yaml_obj, "<test>"))


def collect_records(gw: Gateway) -> list[Any]:
    """The completion records ``gw`` puts in its queue from now on, in a list a test reads (a sync sink)."""
    records: list[Any] = []

    class Sink:
        def handle(self, batch: list[Any]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return records


@pytest.fixture
def mock_gateway() -> Gateway:
    return make_gateway({
        "model_list": [
            {"model_name": "mock-echo", "litellm_params": {"model": "mock/echo", "mock_chunks": 4}},
            {"model_name": "fixed", "litellm_params": {"model": "mock/x", "mock_response": "hello there"}},
        ],
        "general_settings": {"master_key": "sk-test", "max_request_size_mb": 0.01},
    })
