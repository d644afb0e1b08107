"""Through the app: a client's model name on a wildcard group cannot steer the upstream URL or the headers.

A real loopback HTTP server records the request lines it receives; the app runs in-process with the real
keep-alive transport. Hostile names are a 400 naming ``model`` and never reach the upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from .conftest import call, make_gateway

OPENAI = b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":' \
    b'{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,' \
    b'"completion_tokens":1,"total_tokens":2}}'
GEMINI = b'{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}'


@asynccontextmanager
async def recording_upstream(lines: list[bytes]) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        line = head.split(b"\r\n")[0]
        lines.append(line)
        body = GEMINI if b":generateContent" in line else OPENAI
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%b" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/base"
    finally:
        server.close()
        await server.wait_closed()


HOSTILE = ["../../../__mock/config?x=", "x?key=attacker#", "a/../../b", "a%2F..%2Fb", "a b", "a\rb", "a\x7fb",
           "a\x00b"]


@pytest.mark.parametrize("prefix", ["gemini", "azure", "openai"])
def test_wildcard_model_names(prefix: str) -> None:
    async def go() -> None:
        lines: list[bytes] = []
        async with recording_upstream(lines) as base:
            gw = make_gateway({"model_list": [{"model_name": f"{prefix}/*", "litellm_params": {
                "model": f"{prefix}/*", "api_key": "k", "api_base": base, "api_version": "v"}}]})
            msgs = [{"role": "user", "content": "hi"}]
            for name in HOSTILE:
                for stream in (False, True):
                    r = await call(gw, "POST", "/v1/chat/completions",
                                   {"model": f"{prefix}/{name}", "messages": msgs, "stream": stream})
                    if prefix == "openai" and not any(c in name for c in "\r\x7f\x00"):
                        continue  # the name only goes into the JSON body there
                    assert r.status == 400, (name, r.status, r.body)
                    err = orjson.loads(r.body)["error"]
                    assert err["param"] == "model", err
            assert all(b"attacker" not in line and b"__mock" not in line for line in lines), lines
            r = await call(gw, "POST", "/v1/chat/completions", {"model": f"{prefix}/good-1.0", "messages": msgs})
            assert r.status == 200, r.body
            want = {"gemini": b"POST /base/v1beta/models/good-1.0:generateContent HTTP/1.1",
                    "azure": b"POST /base/openai/deployments/good-1.0/chat/completions?api-version=v HTTP/1.1",
                    "openai": b"POST /base/chat/completions HTTP/1.1"}[prefix]
            assert lines[-1] == want
            await gw.aclose()

    asyncio.run(go())
