"""End to end: the official ``anthropic`` SDK against a real Granian process whose ``o3`` group is an
``openai/o3-pro`` deployment (Responses only) pointing at a real loopback upstream serving ``/v1/responses``:
a message, a stream, a tool-use round trip with the reasoning replayed, thinking both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from bench.shapes_responses import Answer
from tests.conftest import GatewayProc, start_gateway
from tests.crosspath.conftest import MASTER, Upstream, config_yaml, serve

pytestmark = pytest.mark.e2e

TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather in a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Upstream]]:
    with serve() as up, start_gateway(config_yaml(up)) as gw:
        yield gw, up


@pytest.fixture
def client(stack: tuple[GatewayProc, Upstream]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack[0].url, api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


def test_message(stack: tuple[GatewayProc, Upstream], client: anthropic.Anthropic) -> None:
    up = stack[1]
    up.answer = Answer(rid="e1", model="o3-pro", created=1, text=["Hello ", "from o3-pro"], input_tokens=25,
                       cached_tokens=5, output_tokens=7)
    m = client.messages.create(model="o3", max_tokens=256, system="be brief",
                               messages=[{"role": "user", "content": "hi"}])
    assert m.model == "o3" and m.stop_reason == "end_turn"
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == "Hello from o3-pro"  # type: ignore[union-attr]
    assert (m.usage.input_tokens, m.usage.output_tokens, m.usage.cache_read_input_tokens) == (20, 7, 5)
    sent = up.bodies("/v1/responses")[-1]
    assert sent["model"] == "o3-pro" and sent["instructions"] == "be brief" and sent["max_output_tokens"] == 256


def test_stream_with_thinking(stack: tuple[GatewayProc, Upstream], client: anthropic.Anthropic) -> None:
    up = stack[1]
    up.answer = Answer(rid="e2", model="o3-pro", created=1, text=["streamed ", "words ", "arrive"],
                       reasoning=["first ", "I think"], encrypted="ENC-e2", input_tokens=30, output_tokens=12)
    kinds: list[str] = []
    with client.messages.stream(model="o3", max_tokens=4096, messages=[{"role": "user", "content": "go"}],
                                thinking={"type": "enabled", "budget_tokens": 2048}) as s:
        for ev in s:
            kinds.append(ev.type)
        final = s.get_final_message()
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    think, text = final.content
    assert think.type == "thinking" and think.thinking == "first I think" and think.signature.startswith("rgrs1:")
    assert text.type == "text" and text.text == "streamed words arrive"
    assert final.usage.output_tokens == 12 and final.stop_reason == "end_turn"
    assert up.bodies("/v1/responses")[-1]["reasoning"] == {"effort": "medium"}


def test_tool_round_trip(stack: tuple[GatewayProc, Upstream], client: anthropic.Anthropic) -> None:
    up = stack[1]
    up.answer = Answer(rid="e3", model="o3-pro", created=1, reasoning=["need weather"], encrypted="ENC-e3",
                       calls=[("call_w1", "get_weather", ['{"city":', '"Paris"}'])])
    ask: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    with client.messages.stream(model="o3", max_tokens=1024, tools=TOOLS, messages=ask) as s:
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert (use.id, use.name, use.input) == ("call_w1", "get_weather", {"city": "Paris"})
    up.answer = Answer(rid="e4", model="o3-pro", created=1, text=["It is 20C in Paris"])
    second = client.messages.create(model="o3", max_tokens=1024, tools=TOOLS, messages=[
        *ask, {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "20C"}]}])
    assert second.content[0].text == "It is 20C in Paris"  # type: ignore[union-attr]
    items = up.bodies("/v1/responses")[-1]["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1]["encrypted_content"] == "ENC-e3" and items[1]["id"] == "rs_e3"
    assert items[2] == {"type": "function_call", "call_id": "call_w1", "name": "get_weather",
                        "arguments": '{"city":"Paris"}'}
    assert items[3] == {"type": "function_call_output", "call_id": "call_w1", "output": "20C"}
    assert up.bodies("/v1/responses")[-1]["tools"][0]["name"] == "get_weather"


def test_bad_input_is_anthropic_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model="o3", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "video", "source": {}}]}])  # type: ignore[list-item]
    assert ei.value.body["type"] == "error"  # type: ignore[index]
