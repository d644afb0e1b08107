"""End to end: conversation state through the official ``openai`` SDK against a real Granian process with its
embedded SQLite database (``chat``: translated to chat completions; ``native``: an ``openai/`` deployment that
stores the turns itself), two workers, keys of two teams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import GatewayProc, start_gateway
from tests.responses.conftest import KEYS, MASTER, Script, Upstream, serve

pytestmark = pytest.mark.e2e

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"], "additionalProperties": False}, "strict": True}]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Upstream]]:
    with serve() as up:
        cfg = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: hosted_vllm/up-model, api_key: k, api_base: "{up.url}"}}
  - model_name: native
    litellm_params: {{model: openai/gpt-native-upstream, api_key: k, api_base: "{up.url}"}}
general_settings:
  master_key: {MASTER}
relaygate_keys:
  - {{key: {KEYS["a1"]}, team_id: t1}}
  - {{key: {KEYS["a2"]}, team_id: t1}}
  - {{key: {KEYS["b1"]}, team_id: t2}}
"""
        with start_gateway(cfg, workers=2) as gw:
            yield gw, up


def client_of(stack: tuple[GatewayProc, Upstream], key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack[0].url + "/v1", api_key=KEYS[key], max_retries=0, timeout=20)


@pytest.mark.parametrize("model", ["chat", "native"])
def test_three_turns(stack: tuple[GatewayProc, Upstream], model: str) -> None:
    up = stack[1]
    up.script = Script(content="first answer")
    with client_of(stack, "a1") as client:
        one = client.responses.create(model=model, input="hello", instructions="be brief")
        assert one.id.startswith("resp_") and one.model == model
        up.script = Script(content="second answer")
        with client.responses.stream(model=model, input="and then?", previous_response_id=one.id) as s:
            two = s.get_final_response()
        assert two.previous_response_id == one.id and two.id not in (one.id,)
        up.script = Script(content="third answer")
        three = client.responses.create(model=model, input="last", previous_response_id=two.id)
        assert three.previous_response_id == two.id
    if model == "chat":
        assert three.output_text == "third answer"
        assert up.bodies("/chat/completions")[-1]["messages"] == [
            {"role": "user", "content": "hello"}, {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "and then?"}, {"role": "assistant", "content": "second answer"},
            {"role": "user", "content": "last"}]
    else:  # the upstream holds the conversation: it gets its own id and this turn only
        sent = up.bodies("/responses")[-1]
        assert sent["input"] == "last" and str(sent["previous_response_id"]).startswith("resp_native")
    with client_of(stack, "a2") as teammate:
        got = teammate.responses.retrieve(three.id)
        assert got.id == three.id and got.output_text == three.output_text


def test_function_call_round_trip(stack: tuple[GatewayProc, Upstream]) -> None:
    up = stack[1]
    up.script = Script(content="", tool_calls=[("call_w1", "get_weather", '{"city":"Paris"}')], finish="tool_calls")
    with client_of(stack, "a1") as client:
        first = client.responses.create(model="chat", input="weather in Paris?", tools=TOOLS)
        (call,) = [o for o in first.output if o.type == "function_call"]
        up.script = Script(content="It is 20C in Paris")
        second = client.responses.create(model="chat", tools=TOOLS, previous_response_id=first.id, input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "20C"}])
    assert second.output_text == "It is 20C in Paris"
    sent = up.bodies("/chat/completions")[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_w1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "20C"}


def test_retrieve_list_delete_and_other_keys(stack: tuple[GatewayProc, Upstream]) -> None:
    stack[1].script = Script(content="stored")
    with client_of(stack, "a1") as client, client_of(stack, "b1") as stranger:
        r = client.responses.create(model="chat", input=[{"role": "user", "content": "one"},
                                                         {"role": "user", "content": "two"}])
        items = client.responses.input_items.list(r.id, order="asc")
        assert [i.content[0].text for i in items.data] == ["one", "two"]  # type: ignore[union-attr]
        with pytest.raises(openai.NotFoundError):
            stranger.responses.retrieve(r.id)
        with pytest.raises(openai.NotFoundError):
            stranger.responses.delete(r.id)
        with pytest.raises(openai.NotFoundError) as ei:
            stranger.responses.create(model="chat", input="x", previous_response_id=r.id)
        assert ei.value.param == "previous_response_id"  # type: ignore[attr-defined]
        client.responses.delete(r.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(r.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="chat", input="hi", previous_response_id="resp_old")


def test_background_and_cancel(stack: tuple[GatewayProc, Upstream]) -> None:
    up = stack[1]
    up.script = Script(content="in the background", delay=0.2)
    with client_of(stack, "a1") as client:
        queued = client.responses.create(model="chat", input="slow", background=True)
        assert queued.status == "queued"
        got = queued
        deadline = time.monotonic() + 20
        while got.status in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.1)
            got = client.responses.retrieve(queued.id)
        assert got.status == "completed" and got.output_text == "in the background"
        up.script = Script(content="never", delay=3)
        slow = client.responses.create(model="chat", input="slower", background=True)
        with client_of(stack, "a2") as teammate:  # its own connection: maybe the other worker
            assert teammate.responses.cancel(slow.id).status == "cancelled"
        assert client.responses.retrieve(slow.id).status == "cancelled"
        up.script = Script()
