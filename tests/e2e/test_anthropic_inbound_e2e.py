"""End to end: the official anthropic SDK against the gateway's /v1/messages (real Granian, bench mock).

``gpt`` is an ``openai/`` deployment (the request is translated both ways, the stream re-emitted as
Anthropic events); ``claude`` an ``anthropic/`` one (native passthrough).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-messages"
TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Any]]:
    with start_mock(name="msgs", chunks=4, seed=5) as mock:
        cfg = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-x, api_key: sk-up, api_base: {mock.openai_base}}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk-up, api_base: {mock.url}}}
  - model_name: gem
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: {mock.url}}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(cfg) as gw:
            yield gw, mock


@pytest.fixture
def client(stack: tuple[GatewayProc, Any]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack[0].url, api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


@contextmanager
def tools_on(mock: Any) -> Iterator[None]:
    mock.set_config(tool_calls=True)
    try:
        yield
    finally:
        mock.set_config(tool_calls=False)


@pytest.mark.parametrize("model", ["gpt", "claude", "gem"])
def test_create(client: anthropic.Anthropic, model: str) -> None:
    m = client.messages.create(model=model, max_tokens=64, system="be brief",
                               messages=[{"role": "user", "content": "hello"}])
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and len(m.content[0].text.split()) >= 4
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude", "gem"])
def test_stream(client: anthropic.Anthropic, model: str) -> None:
    kinds = []
    with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "hello"}]) as s:
        for ev in s:
            kinds.append(ev.type)
        text = s.get_final_text()
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert len(text.split()) >= 4 and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_tool_use(stack: tuple[GatewayProc, Any], client: anthropic.Anthropic, model: str) -> None:
    with tools_on(stack[1]):
        m = client.messages.create(model=model, max_tokens=64, tools=TOOLS,
                                   messages=[{"role": "user", "content": "weather in Paris?"}])
        assert m.stop_reason == "tool_use"
        block = next(b for b in m.content if b.type == "tool_use")
        assert block.name == "get_weather" and block.input == {"city": "mock"}
        with client.messages.stream(model=model, max_tokens=64, tools=TOOLS,
                                    messages=[{"role": "user", "content": "weather?"}]) as s:
            final = s.get_final_message()
        tb = next(b for b in final.content if b.type == "tool_use")
        assert tb.input == {"city": "mock"} and final.stop_reason == "tool_use"
        follow = client.messages.create(model=model, max_tokens=64, tools=TOOLS, messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "20C"}]}])
        assert follow.content


def test_errors_in_anthropic_shape(stack: tuple[GatewayProc, Any], client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == "invalid_request_error"
    with anthropic.Anthropic(base_url=stack[0].url, api_key="wrong", max_retries=0) as bad, \
            pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="gpt", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    stack[1].set_config(fault_429=1.0)
    try:
        with pytest.raises(anthropic.RateLimitError) as rl:
            client.messages.create(model="gpt", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        assert rl.value.body["error"]["type"] == "rate_limit_error"
    finally:
        stack[1].set_config(fault_429=0.0)


def test_count_tokens(client: anthropic.Anthropic) -> None:
    r = client.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "hello there, how are you?"}])
    assert 3 < r.input_tokens < 30
    assert r.to_dict()["litellm_count_source"] == "local_estimate"  # LiteLLM 1.110's: no anthropic/ deployment


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_client_disconnect_cancels_upstream(stack: tuple[GatewayProc, Any], model: str) -> None:
    """A client that goes away mid-stream closes the upstream request (translated and native alike)."""
    gw, mock = stack
    body = (b'{"model": "%s", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "x"}]}'
            % model.encode())
    req = (f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {MASTER}\r\nanthropic-version: 2023-06-01\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    mock.set_config(chunks=200, chunk_gap_ms=50)
    try:
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(req)
            got = b""
            while got.count(b"event: content_block_delta") < 2:
                data = s.recv(65536)
                assert data, got
                got += data
            assert mock.stats()["in_flight"] >= 1
        # the client is gone; the upstream stream (200 chunks x 50 ms = 10 s) must be cut well before its end
        deadline = time.time() + 5
        while time.time() < deadline and mock.stats()["in_flight"] != 0:
            time.sleep(0.05)
        assert mock.stats()["in_flight"] == 0, mock.stats()
    finally:
        mock.set_config(chunks=4, chunk_gap_ms=0)
