"""End to end: the official ``openai`` SDK's ``client.responses`` against a real Granian process whose
deployments point at the local upstream (``chat``: translated to chat completions; ``native``: an ``openai/``
deployment answered by its own /responses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway
from tests.responses.conftest import MASTER, Script, Upstream, serve

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
"""
        with start_gateway(cfg) as gw:
            yield gw, up


@pytest.fixture
def client(stack: tuple[GatewayProc, Upstream]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack[0].url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


def test_create_text(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    stack[1].script = Script(content="Hello from the upstream")
    r = client.responses.create(model="chat", input="hello", instructions="be brief")
    assert r.output_text == "Hello from the upstream" and r.status == "completed" and r.model == "chat"
    assert r.id.startswith("resp_") and r.instructions == "be brief"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert r.usage.input_tokens_details.cached_tokens == 3 and r.usage.output_tokens_details.reasoning_tokens == 2


def test_function_tool_round_trip(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    up = stack[1]
    up.script = Script(content="", tool_calls=[("call_w1", "get_weather", '{"city":"Paris"}')], finish="tool_calls")
    first = client.responses.create(model="chat", input="weather in Paris?", tools=TOOLS)
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert (call.name, call.call_id, json.loads(call.arguments)) == ("get_weather", "call_w1", {"city": "Paris"})
    up.script = Script(content="It is 20C in Paris")
    second = client.responses.create(model="chat", tools=TOOLS, input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C"}])
    assert second.output_text == "It is 20C in Paris"
    sent = up.bodies("/chat/completions")[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_w1" and sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "20C"}


def test_json_schema(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    stack[1].script = Script(content='{"city": "Paris", "temp": 20}')
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
              "required": ["city", "temp"], "additionalProperties": False}
    r = client.responses.create(model="chat", input="json please", text={"format": {
        "type": "json_schema", "name": "weather", "schema": schema, "strict": True}})
    assert json.loads(r.output_text) == {"city": "Paris", "temp": 20}
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"
    rf = stack[1].bodies("/chat/completions")[-1]["response_format"]
    assert rf == {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}}


def test_stream(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    stack[1].script = Script(content="streamed words arrive", reasoning="let me think",
                             tool_calls=[("call_s1", "get_weather", '{"city":"Rome"}'),
                                         ("call_s2", "get_weather", '{"city":"Oslo"}')])
    kinds: list[str] = []
    seqs: list[int] = []
    with client.responses.stream(model="chat", input="go", tools=TOOLS) as s:
        for ev in s:
            kinds.append(ev.type)
            seqs.append(ev.sequence_number)
        final = s.get_final_response()
    assert seqs == list(range(len(seqs)))
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    for k in ("response.content_part.added", "response.output_text.delta", "response.output_text.done",
              "response.content_part.done", "response.function_call_arguments.delta",
              "response.function_call_arguments.done", "response.output_item.done", "response.reasoning_text.delta"):
        assert k in kinds, k
    assert final.output_text == "streamed words arrive"
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, json.loads(c.arguments)) for c in calls] == [("call_s1", {"city": "Rome"}),
                                                                     ("call_s2", {"city": "Oslo"})]
    assert final.usage is not None and final.usage.total_tokens == 18


def test_native_and_errors(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    r = client.responses.create(model="native", input="hi", tools=[{"type": "web_search"}])
    assert r.output_text == "native says hi" and r.model == "native"
    assert r.usage is not None and r.usage.input_tokens == 21
    with client.responses.stream(model="native", input="hi") as s:
        final = s.get_final_response()
    assert final.output_text == "native says hi"
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model="chat", input="hi", tools=[{"type": "code_interpreter",
                                                                  "container": {"type": "auto"}}])
    assert ei.value.body is not None and "code_interpreter" in ei.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as ei:  # an id nobody stored (the gateway has its database)
        client.responses.create(model="chat", input="hi", previous_response_id="resp_old")
    assert ei.value.param == "previous_response_id"  # type: ignore[attr-defined]
    assert "not found" in str(ei.value)


@pytest.fixture(scope="module")
def providers() -> Iterator[GatewayProc]:
    """The bench mock speaking each provider's own API: the request reaches it through that adapter."""
    with start_mock(name="responses", chunks=4, seed=7) as mock:
        cfg = f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk-up, api_base: "{mock.url}"}}
  - model_name: gem
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: "{mock.url}"}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(cfg) as gw:
            yield gw


@pytest.mark.parametrize("model", ["claude", "gem"])
def test_through_provider_adapters(providers: GatewayProc, model: str) -> None:
    with openai.OpenAI(base_url=providers.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        r = c.responses.create(model=model, input="hello", instructions="be brief", max_output_tokens=64)
        assert r.status == "completed" and r.model == model and len(r.output_text.split()) >= 4
        assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
        seqs: list[int] = []
        with c.responses.stream(model=model, input="hello", max_output_tokens=64) as s:
            for ev in s:
                seqs.append(ev.sequence_number)
            final = s.get_final_response()
        assert seqs == list(range(len(seqs))) and len(final.output_text.split()) >= 4
        assert final.usage is not None and final.usage.output_tokens > 0


def test_input_tokens_counted(stack: tuple[GatewayProc, Upstream], client: openai.OpenAI) -> None:
    """``client.responses.input_tokens.count``: the native deployment's own count, the translated one estimated."""
    native = client.responses.input_tokens.count(model="native", input="hello", tools=TOOLS)
    assert native.object == "response.input_tokens" and native.input_tokens == 42
    assert native.to_dict()["litellm_count_source"] == "provider"
    assert stack[1].bodies("/responses/input_tokens")[-1]["model"] == "gpt-native-upstream"
    local = client.responses.input_tokens.count(model="chat", input="hello there, how are you today?")
    assert 3 < local.input_tokens < 40 and local.to_dict()["litellm_count_source"] == "local_estimate"
    with pytest.raises(openai.BadRequestError):
        client.responses.input_tokens.count(model="native", input="refuse me")
