"""A 2xx upstream answer that is not what the API promises is a 502 (or an in-band error), never a 200.

A real loopback HTTP server answers every request with ``200 text/html`` and a proxy's HTML page (or an
empty body); the app runs in-process with the real keep-alive transport. Chat (unary and stream) and
``/v1/messages`` (unary and stream) on OpenAI-compatible and translating deployments must all fail with
a 502 the SDKs raise as an error, before any byte of a stream went out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from .conftest import call, make_gateway

HTML = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n<h1>Bad Gateway</h1>\n" \
    b"<p>data: not an event</p>\n</body></html>\n"


@asynccontextmanager
async def upstream(body: bytes, ctype: bytes) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: %b\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%b"
                     % (ctype, len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["openai/gpt-x", "azure/dep", "gemini/gemini-x", "ollama_chat/llama3",
                                   "anthropic/claude-x", "cohere/command-r"])
@pytest.mark.parametrize(("body", "ctype"), [(HTML, b"text/html"), (b"", b"text/html"),
                                             (b"", b"application/json"), (HTML, b"text/event-stream")])
def test_chat_on_a_non_json_200_is_a_502(model: str, body: bytes, ctype: bytes) -> None:
    async def go() -> None:
        async with upstream(body, ctype) as base:
            gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
                "model": model, "api_key": "k", "api_base": base, "api_version": "v"}}]})
            for stream in (False, True):
                r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": stream})
                assert r.status == 502, (stream, r.status, r.body)
                assert r.headers["content-type"] == "application/json"
                err = orjson.loads(r.body)["error"]
                assert err["type"] is None and err["code"] == "502", err  # LiteLLM's APIConnectionError: no type
            await gw.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("model", ["openai/gpt-x", "azure/dep"])
def test_messages_route_on_a_non_json_200_is_a_502(model: str) -> None:
    async def go() -> None:
        async with upstream(HTML, b"text/html") as base:
            gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
                "model": model, "api_key": "k", "api_base": base, "api_version": "v"}}]})
            for stream in (False, True):
                r = await call(gw, "POST", "/v1/messages",
                               {"model": "m", "max_tokens": 5, "messages": MSGS, "stream": stream})
                assert r.status == 502, (stream, r.status, r.body)
                obj = orjson.loads(r.body)
                assert obj["type"] == "error", obj
            await gw.aclose()

    asyncio.run(go())


def test_messages_route_on_a_json_200_of_the_wrong_shape_is_a_502() -> None:
    async def go() -> None:
        async with upstream(b'{"choices": 7}', b"application/json") as base:
            gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/x", "api_key": "k", "api_base": base}}]})
            r = await call(gw, "POST", "/v1/messages", {"model": "m", "max_tokens": 5, "messages": MSGS})
            assert r.status == 502, r.body
            assert "unexpected shape" in orjson.loads(r.body)["error"]["message"]
            await gw.aclose()

    asyncio.run(go())


def test_invalid_utf8_in_a_stream_reaches_the_client_as_valid_utf8() -> None:
    chunk = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,' \
        b'"delta":{"content":"caf\xe9 \xff"},"finish_reason":null}]}'
    body = b"data: " + chunk + b"\n\ndata: [DONE]\n\n"

    async def go() -> None:
        async with upstream(body, b"text/event-stream") as base:
            gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/x", "api_key": "k", "api_base": base}}]})
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True})
            assert r.status == 200
            frames = [f for f in r.body.decode().split("\n\n") if f.startswith("data: {")]
            assert orjson.loads(frames[0][6:])["choices"][0]["delta"]["content"] == "caf\ufffd \ufffd"
            await gw.aclose()

    asyncio.run(go())
