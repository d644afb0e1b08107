"""``/v1/messages`` streams in-process: keepalives before the first event, errors after them, disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from relaygate.core.errors import UpstreamTimeout
from relaygate.upstream.base import Timeouts, UpstreamRequest
from tests.asgi.conftest import call, make_gateway

KA = b": keepalive\n\n"
BODY = {"model": "slow", "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _gw(latency_ms: int, interval: float = 0.05) -> Any:
    return make_gateway({
        "model_list": [
            {"model_name": "slow", "litellm_params": {"model": "mock/echo", "mock_latency_ms": latency_ms}},
            {"model_name": "broken", "litellm_params": {"model": "openai/gpt-x", "api_key": "sk",
                                                        "api_base": "http://up/v1"}},
        ],
        "relaygate_settings": {"stream_keepalive_interval": interval},
    })


def _events(body: bytes) -> list[str]:
    return [line[7:].decode() for line in body.split(b"\n") if line.startswith(b"event: ")]


def test_keepalives_while_waiting_for_the_first_event() -> None:
    r = asyncio.run(call(_gw(300), "POST", "/v1/messages", BODY))
    assert r.status == 200 and r.headers["content-type"] == "text/event-stream"
    assert r.chunks[0] == KA and sum(c == KA for c in r.chunks) >= 2
    events = _events(r.body)
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events
    assert KA not in r.body[r.body.index(b"event: message_start"):]  # none once events flow


def test_no_keepalive_for_a_fast_stream() -> None:
    r = asyncio.run(call(_gw(0, interval=5.0), "POST", "/v1/messages", BODY))
    assert r.status == 200 and KA not in r.body and _events(r.body)[0] == "message_start"
    assert r.headers["x-litellm-model-group"] == "slow"


class _SlowFailure:
    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> Any:
        await asyncio.sleep(0.3)
        raise UpstreamTimeout("upstream first-byte timeout", phase="first_byte")

    async def aclose(self) -> None:
        return None


def test_failure_after_keepalives_is_an_error_event() -> None:
    gw = _gw(0)
    gw.transport = _SlowFailure()
    r = asyncio.run(call(gw, "POST", "/v1/messages", {**BODY, "model": "broken"}))
    assert r.status == 200 and r.chunks[0] == KA
    assert _events(r.body) == ["error"]
    err = orjson.loads(r.body.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert err["type"] == "error" and err["error"]["type"]
    assert "first-byte timeout" in err["error"]["message"]


def test_disconnect_while_waiting_cancels_the_stream() -> None:
    gw = _gw(30_000)
    raw = orjson.dumps(BODY)
    msgs = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if msgs:
            return msgs.pop(0)
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/v1/messages", "headers": [], "query_string": b""}

    async def main() -> None:
        await asyncio.wait_for(gw(scope, receive, send), 10)  # returns long before the 30 s mock answer

    asyncio.run(main())
    gw.completions.drain_now()  # the completion record reaches the metrics sink off the request path
    assert gw.metrics.events["client_disconnected"] == 1
    assert all(m.get("body", b"") in (b"", KA) for m in sent[1:])
