"""An upstream answering with JSON of an unexpected shape is a 502 (or an in-band stream error), never a 500.

A real HTTP server on loopback plays a Gemini upstream that sends well-formed JSON in the wrong shape; the
app runs in-process with the real keep-alive transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from .conftest import call, make_gateway

UNARY = b'{"candidates": 5, "usageMetadata": "x"}'
STREAM = b'data: {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}\n\ndata: {"candidates": [{"content": 7}]}\n\n'


@asynccontextmanager
async def weird_upstream() -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        stream = b"streamGenerateContent" in head.split(b"\r\n")[0]
        body, ctype = (STREAM, b"text/event-stream") if stream else (UNARY, b"application/json")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: %b\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                     % (ctype, len(body)))
        cut = body.index(b"\n\n") + 2 if stream else len(body)
        writer.write(body[:cut])
        await writer.drain()
        if stream:  # the bad event arrives after the good one went to the client
            await asyncio.sleep(0.05)
            writer.write(body[cut:])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def test_unexpected_upstream_shapes() -> None:
    async def go() -> None:
        async with weird_upstream() as base:
            gw = make_gateway({"model_list": [{"model_name": "g", "litellm_params": {
                "model": "gemini/gemini-x", "api_key": "k", "api_base": base}}]})
            body = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
            r = await call(gw, "POST", "/v1/chat/completions", body)
            assert r.status == 502, r.body
            assert "unexpected shape" in orjson.loads(r.body)["error"]["message"]
            r = await call(gw, "POST", "/v1/chat/completions", {**body, "stream": True})
            assert r.status == 200
            assert b'"content":"hi"' in r.body  # the good event went out before the bad one
            assert b'"error"' in r.body and b"unexpected shape" in r.body
            assert r.body.endswith(b"data: [DONE]\n\n")
            await gw.aclose()

    asyncio.run(go())
