"""Every exchange ends as exactly one completion record, whatever route and however it ended."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from relaygate.asgi import Gateway
from relaygate.sinks import CompletionRecord, Outcome

from .conftest import call, make_gateway

AUTH = {"Authorization": "Bearer sk-test"}
MSGS = [{"role": "user", "content": "hello there"}]


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.records: list[CompletionRecord] = []

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        self.records.extend(batch)


def _gateway() -> tuple[Gateway, Recorder]:
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo", "mock_chunks": 3}}],
        "general_settings": {"master_key": "sk-test"},
    })
    rec = Recorder()
    gw.completions.add_sink(rec)
    return gw, rec


def test_one_record_per_exchange_with_its_outcome() -> None:
    gw, rec = _gateway()

    async def main() -> list[Any]:
        replies = [
            await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": MSGS}, AUTH),
            await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True}, AUTH),
            await call(gw, "POST", "/v1/chat/completions", {"model": "nope", "messages": MSGS}, AUTH),
            await call(gw, "POST", "/v1/messages", {"model": "m", "max_tokens": 5, "messages": MSGS}, AUTH),
            await call(gw, "POST", "/v1/embeddings", {"model": "m", "input": "x"}, AUTH),
        ]
        await gw.aclose()  # drains the queue
        return replies

    replies = asyncio.run(main())
    assert [r.status for r in replies] == [200, 200, 400, 200, 200]
    assert len(rec.records) == 5
    by_route = {r.route: r for r in rec.records}
    ok = [r for r in rec.records if r.route == "chat" and r.outcome is Outcome.OK]
    assert len(ok) == 2 and {r.stream for r in ok} == {True, False}
    for r in ok:
        assert r.status == 200 and r.model == "m" and r.model_group == "m" and r.deployment_id
        assert r.completion_tokens > 0 and r.latency >= r.overhead >= 0
        assert r.prompt_tokens > 0 or r.stream  # a stream without include_usage counts its content only
    assert [r.ttft is not None for r in ok if r.stream] == [True]
    err = [r for r in rec.records if r.outcome is Outcome.ERROR]
    assert len(err) == 1 and err[0].status == 400 and err[0].model == "nope" and err[0].deployment_id == ""
    assert err[0].error_type == "invalid_request_error"
    assert by_route["messages"].outcome is Outcome.OK and by_route["embeddings"].outcome is Outcome.OK
    # the call id in each record is the one the client got back
    assert {r.call_id for r in rec.records} == {r.headers["x-litellm-call-id"] for r in replies}


def test_a_client_gone_mid_call_is_one_client_gone_record() -> None:
    gw = make_gateway({"model_list": [{"model_name": "slow", "litellm_params": {
        "model": "mock/x", "mock_response": "late", "mock_latency_ms": 5000}}]})
    rec = Recorder()
    gw.completions.add_sink(rec)
    body = b'{"model": "slow", "messages": [{"role": "user", "content": "x"}]}'
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
    first = [True]

    async def receive() -> dict[str, Any]:
        if first[0]:
            first[0] = False
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent to a client that left")

    async def main() -> None:
        await asyncio.wait_for(gw(scope, receive, send), 10)
        await gw.aclose()

    asyncio.run(main())
    assert [(r.outcome, r.ttft) for r in rec.records] == [(Outcome.CLIENT_GONE, None)]
    assert gw.metrics.events["client_disconnected"] == 1
