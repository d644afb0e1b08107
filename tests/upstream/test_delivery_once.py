"""Through an in-process gateway: a chat completion reaches the upstream at most once per client request.

The upstream answers the first request on each connection and, on a reused connection, reads the request
whole and closes without answering (it received the completion, then dropped the connection). Every client
request is delivered exactly once; the dropped ones are a 502 to the client, never silently re-sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway
from relaygate.config.loader import from_litellm
from relaygate.upstream.aiohttp_transport import AiohttpTransport
from relaygate.upstream.base import Transport
from relaygate.upstream.h1 import H1Transport
from tests.asgi.conftest import call as app_call

from .conftest import Request, Upstream, response

Run = Callable[[Coroutine[Any, Any, Any]], Any]
COMPLETION = orjson.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


async def first_only(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
    if i > 0:
        return False  # the request was read whole: close without answering
    writer.write(response(COMPLETION, headers=[("Content-Type", "application/json")]))
    await writer.drain()
    return True


@pytest.mark.parametrize("kind", ["h1", "aiohttp"])
def test_each_client_request_is_delivered_once(run: Run, kind: str) -> None:
    async def main() -> None:
        async with Upstream(first_only) as up:
            transport: Transport = H1Transport() if kind == "h1" else AiohttpTransport()
            gw = Gateway(from_litellm({"model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_key": "k", "api_base": up.url + "/v1"}}]}, "<test>"),
                transport=transport)
            statuses = []
            for n in range(4):
                body = {"model": "m", "messages": [{"role": "user", "content": f"request {n}"}]}
                r = await app_call(gw, "POST", "/v1/chat/completions", body)
                statuses.append(r.status)
                if r.status != 200:
                    assert r.json()["error"]["type"] is None, r.body  # LiteLLM's APIConnectionError: no type
            # fresh connection: answered; reused connection: dropped after the read -> 502, not re-sent
            assert statuses == [200, 502, 200, 502]
            sent = [orjson.loads(q.body)["messages"][0]["content"] for q in up.requests]
            assert sent == [f"request {n}" for n in range(4)]
            await gw.aclose()

    run(main())
