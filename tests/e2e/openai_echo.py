"""An OpenAI-shaped upstream for end-to-end tests: it answers a chat completion with the last message's text, as a
``chat.completion`` or as a stream of one chunk per word, a finish chunk and, only when the body asks
(``stream_options.include_usage``), OpenAI's usage-only chunk; it keeps every body it was sent. And
:func:`spend_row`, a request's spend row as the gateway logged it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.conftest import http_server

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@contextmanager
def openai_echo() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The upstream's ``/v1`` base URL and the bodies it got, in order."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append(body)
            text = body["messages"][-1]["content"]
            base = {"id": "c1", "created": 1, "model": "m"}
            if body.get("stream"):
                words = re.findall(r"\S+\s*", text) or [text]
                chunks = [{**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": w}, "finish_reason": None}]} for w in words]
                chunks.append({**base, "object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": USAGE})
                out = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
                ctype = "text/event-stream"
            else:
                out = json.dumps({**base, "object": "chat.completion", "usage": USAGE, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).encode()
                ctype = "application/json"
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    with http_server(Handler) as url:
        yield url + "/v1", seen


def spend_row(url: str, master: str, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The gateway's ``/spend/logs`` row of ``request_id`` once the spend sink wrote it ({} after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/spend/logs", params={"request_id": request_id},
                         headers={"Authorization": f"Bearer {master}"}, timeout=10).json()
        if rows:
            return dict(rows[0])
        time.sleep(0.2)
    return {}
