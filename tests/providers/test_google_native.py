"""A ``gemini/`` deployment behind the gateway's Gemini routes (``frontends.google``), in process against a real
local HTTP server speaking Gemini: it is sent the client's own request at its own ``:generateContent`` /
``:countTokens`` with the deployment's key (never the client's), its answer passes as Google sent it, usage
prices it, a refusal of the request is the caller's 400, and a count it cannot give is estimated."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from tests.asgi.conftest import call

ANSWER = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "native hi"}]},
                                       "finishReason": "STOP", "index": 0}],
                       "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10},
                       "modelVersion": "gemini-2.0-flash"}, option=orjson.OPT_INDENT_2)  # Google's pretty JSON


class Gemini:
    def __init__(self, count_status: int = 200) -> None:
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        self.count_status = count_status
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = orjson.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
        self.seen.append((path, headers, body))
        status, data = 200, ANSWER
        if path.endswith(":countTokens"):
            status = self.count_status
            data = b'{"totalTokens": 42}' if status == 200 else b'{"error": {"code": 503, "message": "busy"}}'
        elif body.get("contents") == "refuse":
            status, data = 400, b'{"error": {"code": 400, "message": "bad contents", "status": "INVALID_ARGUMENT"}}'
        writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%s" % (status, len(data), data))
        await writer.drain()
        writer.close()


async def _with(up: Gemini, body: Any, action: str = "generateContent") -> tuple[int, Any, dict[str, str]]:
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    gw = Gateway(from_litellm({"model_list": [{"model_name": "flash", "litellm_params": {
        "model": "gemini/gemini-2.0-flash", "api_key": "sk-gemini-up", "api_base": up.url},
        "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}],
        "general_settings": {"master_key": "sk-m"}}, "<t>"))
    await gw.startup()
    try:
        r = await call(gw, "POST", f"/v1beta/models/flash:{action}", body, headers={"x-goog-api-key": "sk-m"})
    finally:
        await gw.shutdown()
        server.close()
    return r.status, r.json(), r.headers


def test_native_generate_and_count() -> None:
    up = Gemini()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "cachedContent": "cachedContents/abc",
            "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}
    status, out, headers = asyncio.run(_with(up, body))
    assert status == 200 and out["candidates"][0]["content"]["parts"] == [{"text": "native hi"}]
    path, sent_headers, sent = up.seen[-1]
    assert path == "/v1beta/models/gemini-2.0-flash:generateContent" and sent == body  # Gemini-only fields kept
    assert sent_headers["x-goog-api-key"] == "sk-gemini-up"
    assert abs(float(headers["x-litellm-response-cost"]) - (7e-6 + 6e-6)) < 1e-12
    status, out, _ = asyncio.run(_with(up, {"contents": "count me"}, "countTokens"))
    assert (status, out) == (200, {"totalTokens": 42}) and up.seen[-1][0].endswith(":countTokens")


def test_refusal_passed_and_count_estimated_when_upstream_cannot() -> None:
    status, out, _ = asyncio.run(_with(Gemini(), {"contents": "refuse"}))
    assert status == 400 and "bad contents" in out["error"]["message"] and out["error"]["status"] == "INVALID_ARGUMENT"
    status, out, _ = asyncio.run(_with(Gemini(count_status=503), {"contents": "count me please"}, "countTokens"))
    assert status == 200 and out["totalTokens"] > 0 and out != {"totalTokens": 42}
