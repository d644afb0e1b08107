"""``relaygate.realtime`` in-process (the fast tier; ``tests/e2e/test_realtime_e2e.py`` runs real sessions through
Granian): a WebSocket to another path is refused at the handshake, a worker past its session bound refuses with
1013, no upstream that answers is an error event and 1011, and hostile usage numbers are bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from relaygate import realtime
from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from tests.conftest import dead_port

MASTER = "sk-realtime-inproc"


def _gateway() -> Gateway:
    return Gateway(from_litellm({"model_list": [{"model_name": "rt", "litellm_params": {
        "model": "openai/gpt-realtime", "api_key": "k", "api_base": f"http://127.0.0.1:{dead_port()}/v1"}}],
        "general_settings": {"master_key": MASTER}}, "<test>"))


def _session(gw: Gateway, path: str, query: bytes, then: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.connect"}, *(then or [])]

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "websocket", "path": path, "query_string": query, "headers": [
        (b"authorization", f"Bearer {MASTER}".encode())], "subprotocols": []}

    async def main() -> None:
        try:
            await asyncio.wait_for(gw.websocket(scope, receive, send), 30)
        finally:
            await realtime.aclose(gw)

    asyncio.run(main())
    return sent


def test_other_paths_are_refused_at_the_handshake() -> None:
    assert _session(_gateway(), "/v1/chat/completions", b"model=rt") == [{"type": "websocket.close", "code": 1008}]


def test_a_worker_past_its_bound_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "MAX_SESSIONS", 0)
    sent = _session(_gateway(), "/v1/realtime", b"model=rt")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert json.loads(sent[1]["text"])["error"]["type"] == "rate_limit_error" and sent[2]["code"] == 1013


def test_no_upstream_is_an_error_event_and_1011() -> None:
    sent = _session(_gateway(), "/realtime", b"model=rt")  # the one deployment's port listens to nothing
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    err = json.loads(sent[1]["text"])["error"]
    assert "could not be reached" in err["message"] and sent[2]["code"] == 1011


def test_usage_numbers_are_bounded() -> None:
    assert realtime.usage_counts({"input_tokens": 20, "output_tokens": 10, "input_token_details": {
        "cached_tokens": 5, "audio_tokens": 8}, "output_token_details": {"audio_tokens": 6}}) == (20, 10, 5, 8, 6)
    assert realtime.usage_counts({"input_tokens": -4, "output_tokens": True, "input_token_details": "x",
                                  "output_token_details": {"audio_tokens": 10**30}})[:2] == (0, 0)
    assert realtime.usage_counts({"output_token_details": {"audio_tokens": 10**30}})[4] < 10**30
