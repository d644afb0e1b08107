"""LiteLLM's ``general_settings.global_max_parallel_requests`` through a real gateway: with a slow upstream,
requests past the bound get LiteLLM's 429 (and ``retry-after``) while the first is served; the count goes
back down after answers, failures and clients that leave, so the gateway never stays shut."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

ANSWER = orjson.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"},
                                    "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                                          "total_tokens": 2}})


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        text = body["messages"][-1]["content"]
        time.sleep(0.8 if text == "slow" else 0.0)
        status, out = (500, b'{"error": {"message": "boom"}}') if text == "fail" else (200, ANSWER)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def test_global_max_parallel_requests() -> None:
    up = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    cfg = (f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, api_key: sk-up, api_base: "
           f"http://127.0.0.1:{up.server_address[1]}/v1, num_retries: 0}}\n"
           "general_settings:\n  global_max_parallel_requests: 1\n")
    try:
        with start_gateway(cfg) as gw:
            async def ask(client: httpx.AsyncClient, text: str) -> httpx.Response:
                return await client.post(gw.url + "/v1/chat/completions", timeout=30,
                                         json={"model": "m", "messages": [{"role": "user", "content": text}]})

            async def burst() -> list[httpx.Response]:
                async with httpx.AsyncClient() as c:
                    first = asyncio.ensure_future(ask(c, "slow"))
                    await asyncio.sleep(0.3)  # the first is being served
                    others = await asyncio.gather(*(ask(c, "quick") for _ in range(3)))
                    return [await first, *others]

            got = asyncio.run(burst())
            assert got[0].status_code == 200 and [r.status_code for r in got[1:]] == [429, 429, 429]
            err = got[1].json()["error"]
            assert err["message"] == "Max parallel request limit reached Hit Global Limit: Limit=1, current: 1"
            assert err["code"] == "429" and 1 <= int(got[1].headers["retry-after"]) <= 60

            async def after() -> list[int]:
                async with httpx.AsyncClient() as c:
                    failed = await ask(c, "fail")
                    try:  # a client that leaves mid-request
                        await asyncio.wait_for(ask(c, "slow"), 0.2)
                    except TimeoutError:
                        pass
                    await asyncio.sleep(1.0)
                    return [failed.status_code, (await ask(c, "quick")).status_code]

            assert asyncio.run(after()) == [500, 200]  # nothing leaked: the bound admits again
    finally:
        up.shutdown()
        up.server_close()
