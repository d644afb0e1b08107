"""What the completion record keeps of a request for spend logs (issue 13): the customer (``user`` field,
``x-litellm-end-user-id`` / ``x-litellm-customer-id``), request tags and metadata, and
``x-litellm-spend-logs-metadata``; a plain request builds nothing extra."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from relaygate.sinks.record import CompletionRecord
from tests.asgi.conftest import call, make_gateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def gateway() -> tuple[Any, list[CompletionRecord]]:
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}]})
    records: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: list[CompletionRecord]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return gw, records


def test_record_carries_what_spend_logs_keep() -> None:
    async def main() -> None:
        gw, records = gateway()
        r = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert r.status == 200
        r = await call(gw, "POST", "/v1/chat/completions",
                       {**CHAT, "user": "cust-1", "tags": ["a", "b"], "metadata": {"team": "x"}},
                       headers={"x-litellm-spend-logs-metadata": '{"job": "nightly"}'})
        assert r.status == 200
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "user": "cust-1"},
                       headers={"x-litellm-customer-id": "cust-2"})
        assert r.status == 200
        r = await call(gw, "POST", "/v1/chat/completions", CHAT,
                       headers={"x-litellm-spend-logs-metadata": "not json"})
        assert r.status == 400 and orjson.loads(r.body)["error"]["param"] == "x-litellm-spend-logs-metadata"
        await gw.completions.aclose()
        plain, tagged, header, bad = records[:4]
        assert plain.end_user_id is None and plain.extra is None  # nothing built for a plain request
        assert tagged.end_user_id == "cust-1"
        assert tagged.extra == {"tags": ["a", "b"], "metadata": {"team": "x"}, "spend_logs_metadata": {"job": "nightly"}}
        assert header.end_user_id == "cust-2" and header.extra is None  # the header wins over the body
        assert bad.status == 400

    asyncio.run(main())
