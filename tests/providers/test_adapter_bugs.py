"""Only client content an adapter refuses on purpose is a 400; any other exception in an adapter is a bug:
a 500 with the traceback in the log, never blamed on the client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.asgi.conftest import call, make_gateway

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _gw() -> Any:
    return make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "anthropic/claude-x", "api_key": "k", "api_base": "http://127.0.0.1:9"}}]})


def test_an_adapter_bug_is_a_500_with_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    gw = _gw()
    provider = gw.router.groups["m"].targets[0].provider

    def broken(c: Any) -> Any:
        return {}["missing"]

    provider.build_request = broken
    with caplog.at_level(logging.ERROR, logger="relaygate"):
        r = asyncio.run(call(gw, "POST", "/v1/chat/completions", BODY))
    assert r.status == 500
    assert any(rec.exc_info and rec.exc_info[0] is KeyError for rec in caplog.records)


def test_client_content_the_adapter_cannot_take_is_a_400_naming_the_field() -> None:
    gw = _gw()
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 7}]}]}
    r = asyncio.run(call(gw, "POST", "/v1/chat/completions", body))
    assert r.status == 400, r.body
    assert r.json()["error"]["message"].startswith("Invalid request body: `messages[0].content[0].image_url`")
    assert r.json()["error"]["param"] == "messages"
