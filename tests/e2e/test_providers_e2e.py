"""End to end: the bench mock's OpenAI, Anthropic and Gemini endpoints behind a real Granian gateway.

The openai SDK must see identical shapes (text, tool calls, streams, usage) whichever provider serves the
model group; upstream errors arrive with LiteLLM's classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-providers"
MODELS = ("oai", "claude", "gem")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def config(url: str) -> str:
    return f"""
model_list:
  - model_name: oai
    litellm_params: {{model: openai/gpt-x, api_key: sk-up, api_base: {url}/v1}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk-up, api_base: {url}}}
  - model_name: gem
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: {url}}}
general_settings:
  master_key: {MASTER}
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Any]]:
    with start_mock(name="prov", chunks=5, seed=3) as mock, start_gateway(config(mock.url)) as gw:
        yield gw, mock


@pytest.fixture
def client(stack: tuple[GatewayProc, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack[0].url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


@contextmanager
def mock_options(mock: Any, **options: Any) -> Iterator[None]:
    before = mock.config()
    mock.set_config(**options)
    try:
        yield
    finally:
        mock.set_config(**{k: before[k] for k in options})


def _shape(obj: Any) -> Any:
    """The structure of a JSON value: keys and types, not values."""
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in sorted(obj.items()) if k not in ("system_fingerprint", "logprobs")}
    if isinstance(obj, list):
        return [_shape(v) for v in obj[:1]]
    return type(obj).__name__


@pytest.mark.parametrize("model", MODELS)
def test_text(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "be brief"},
                                                              {"role": "user", "content": "hello"}])
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_identical_shapes(client: openai.OpenAI) -> None:
    shapes = []
    for model in MODELS:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
        body = json.loads(raw.text)
        body.get("usage", {}).pop("prompt_tokens_details", None)
        for k in ("cache_creation_input_tokens", "cache_read_input_tokens", "completion_tokens_details"):
            body.get("usage", {}).pop(k, None)
        shapes.append(_shape(body))
        assert raw.headers["x-litellm-model-group"] == model
    assert shapes[0] == shapes[1] == shapes[2]


@pytest.mark.parametrize("model", MODELS)
def test_stream_with_usage(client: openai.OpenAI, model: str) -> None:
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) >= 5
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    plain = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.usage is None for c in plain)


@pytest.mark.parametrize("model", MODELS)
def test_tool_calls(stack: tuple[GatewayProc, Any], client: openai.OpenAI, model: str) -> None:
    with mock_options(stack[1], tool_calls=True):
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS)
        tc = r.choices[0].message.tool_calls
        assert r.choices[0].finish_reason == "tool_calls" and tc and tc[0].function.name == "get_weather"
        assert json.loads(tc[0].function.arguments) == {"city": "mock"} and tc[0].id
        args = ""
        names = []
        finish = None
        for c in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "weather?"}],
                                                tools=TOOLS, stream=True):
            for d in c.choices:
                for t in d.delta.tool_calls or ():
                    assert t.index == 0
                    args += t.function.arguments or "" if t.function else ""
                    if t.function and t.function.name:
                        names.append(t.function.name)
                finish = d.finish_reason or finish
        assert names == ["get_weather"] and json.loads(args) == {"city": "mock"} and finish == "tool_calls"
        # a follow-up turn with the tool result is accepted by every provider's translation
        follow = client.chat.completions.create(model=model, tools=TOOLS, messages=[
            {"role": "user", "content": "weather?"}, r.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": tc[0].id, "content": "{\"temp\": 20}"}])
        assert follow.choices[0].message.tool_calls


@pytest.mark.parametrize("model", MODELS)
def test_upstream_errors_keep_litellm_classes(stack: tuple[GatewayProc, Any], client: openai.OpenAI,
                                              model: str) -> None:
    with mock_options(stack[1], fault_429=1.0), pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert "litellm.RateLimitError" in str(ei.value)
