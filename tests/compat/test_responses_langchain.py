"""End to end: LangChain's ``ChatOpenAI(use_responses_api=True, base_url=..., api_key=...)`` against a real
Granian gateway: ``invoke``, ``stream``, a ``bind_tools`` round trip (the tool call, a ``ToolMessage`` with
its output, the final answer), reasoning summaries and ``use_previous_response_id`` over three turns, each
against the ``openai/`` (passthrough), ``anthropic/`` and ``gemini/`` (translated) deployments of
:mod:`tests.compat.responses_mocks`; what LangChain got (text, tool calls, ids, ``usage_metadata``) and what
the mock received."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.compat.responses_mocks import (
    MODELS,
    PROVIDERS,
    THOUGHT,
    Mock,
    Received,
    check_reasoning_request,
    check_route,
    check_tool_result,
    check_translated_text,
    expected_usage,
    gateway_config,
    reply_text,
    serve_mock,
    tool_reply,
)
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-responses-langchain-master"


@tool
def get_weather(city: str) -> str:
    """The weather in a city"""
    return f"20C and sunny in {city}"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Mock]]:
    with serve_mock() as mock, start_gateway(gateway_config(mock.url, MASTER)) as gw:
        yield gw, mock


@pytest.fixture
def mock(stack: tuple[GatewayProc, Mock]) -> Iterator[Mock]:
    m = stack[1]
    before = len(m.problems)
    yield m
    assert m.problems[before:] == [], "the mock refused what the real provider would refuse"


def chat(stack: tuple[GatewayProc, Mock], provider: str) -> ChatOpenAI:
    return ChatOpenAI(model=MODELS[provider], use_responses_api=True, base_url=stack[0].url + "/v1",
                      api_key=MASTER, max_retries=0, timeout=20, temperature=0.25, max_tokens=200)  # type: ignore[arg-type]


def tag(name: str, provider: str) -> str:
    return f"{name} [{provider} {uuid.uuid4().hex[:8]}]"


def check_usage(msg: AIMessage | AIMessageChunk, provider: str) -> None:
    want = expected_usage(provider)
    u: Any = msg.usage_metadata
    assert u is not None
    assert (u["input_tokens"], u["output_tokens"], u["total_tokens"]) == (
        want["input_tokens"], want["output_tokens"], want["total_tokens"])
    assert u["input_token_details"]["cache_read"] == want["cached_tokens"]
    assert u["output_token_details"]["reasoning"] == want["reasoning_tokens"]


def check_prompt(rec: Received, provider: str, prompt: str, system: str | None) -> None:
    if provider == "openai":  # LangChain sends every message as an input item
        items = ([{"type": "message", "role": "system", "content": system}] if system else []) + [
            {"type": "message", "role": "user", "content": prompt}]
        assert [{k: it[k] for k in ("type", "role", "content")} for it in rec.body["input"]] == items
        assert rec.body["max_output_tokens"] == 200 and rec.body["temperature"] == 0.25
    elif system:
        check_translated_text(rec, provider, prompt, system, 200, 0.25)
    elif provider == "anthropic":
        assert rec.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        assert rec.body["max_tokens"] == 200 and "system" not in rec.body
    else:
        assert rec.body["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]
        assert rec.body["generationConfig"]["maxOutputTokens"] == 200 and "systemInstruction" not in rec.body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invoke(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    prompt = tag("hello from langchain", provider)
    r = chat(stack, provider).invoke([SystemMessage("be brief"), HumanMessage(prompt)])
    assert isinstance(r, AIMessage) and r.text == reply_text(prompt)
    assert r.id is not None and r.id.startswith("resp_") and r.response_metadata["id"] == r.id
    assert r.response_metadata["model_name"] == MODELS[provider] and r.response_metadata["status"] == "completed"
    check_usage(r, provider)
    [rec] = mock.for_prompt(prompt)
    check_route(rec, provider, False, MASTER)
    check_prompt(rec, provider, prompt, "be brief")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    prompt = tag("stream to langchain", provider)
    chunks = list(chat(stack, provider).stream(prompt))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 1 and "".join(texts) == reply_text(prompt)
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert isinstance(total, AIMessageChunk) and total.text == reply_text(prompt)
    assert total.response_metadata["model_name"] == MODELS[provider]
    check_usage(total, provider)
    [rec] = mock.for_prompt(prompt)
    check_route(rec, provider, True, MASTER)
    check_prompt(rec, provider, prompt, None)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bind_tools_round_trip(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    prompt = tag("What is the weather in Paris?", provider)
    model = chat(stack, provider).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage(prompt)]
    ai = model.invoke(messages)
    assert isinstance(ai, AIMessage)
    [call] = ai.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"} and call["id"]
    check_usage(ai, provider)
    output = get_weather.invoke(call["args"])
    messages += [ai, ToolMessage(output, tool_call_id=call["id"])]
    final = model.invoke(messages)
    assert isinstance(final, AIMessage) and final.text == tool_reply(output) and final.tool_calls == []
    check_usage(final, provider)

    asked, answered = mock.for_prompt(prompt)
    for rec in (asked, answered):
        check_route(rec, provider, False, MASTER)
    if provider == "gemini":
        assert call["id"].startswith("call_")  # Gemini sends no call ids: the gateway makes one
    else:
        assert call["id"] == asked.answer["call_id"]
    check_tool_result(answered, provider, call["id"], output)
    if provider == "anthropic":
        assert [t["name"] for t in asked.body["tools"]] == ["get_weather"]
        assert asked.body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    elif provider == "gemini":
        [decl] = asked.body["tools"][0]["functionDeclarations"]
        assert decl["name"] == "get_weather" and decl["parameters"]["required"] == ["city"]
    else:
        assert asked.body["tools"][0]["name"] == "get_weather"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reasoning_summary(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    llm = ChatOpenAI(model=MODELS[provider], use_responses_api=True, base_url=stack[0].url + "/v1", api_key=MASTER,
                     max_retries=0, timeout=20, reasoning={"effort": "low", "summary": "auto"})  # type: ignore[arg-type]
    prompt = tag("think, langchain", provider)
    r = llm.invoke(prompt)
    streamed = tag("think, langchain, streamed", provider)
    chunks = list(llm.stream(streamed))
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    for msg, p in ((r, prompt), (total, streamed)):
        blocks: Any = msg.content
        assert [b["type"] for b in blocks] == ["reasoning", "text"], blocks
        assert [s["text"] for s in blocks[0]["summary"]] == [THOUGHT] and msg.text == reply_text(p)
        check_usage(msg, provider)
    for p, stream in ((prompt, False), (streamed, True)):
        [rec] = mock.for_prompt(p)
        check_route(rec, provider, stream, MASTER)
        check_reasoning_request(rec, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_use_previous_response_id_three_turns(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    llm = ChatOpenAI(model=MODELS[provider], use_responses_api=True, use_previous_response_id=True,
                     base_url=stack[0].url + "/v1", api_key=MASTER, max_retries=0, timeout=20)  # type: ignore[arg-type]
    prompts = [tag(f"langchain turn {n}", provider) for n in (1, 2, 3)]
    history: list[BaseMessage] = []
    ids: list[str] = []
    for n, prompt in enumerate(prompts, 1):
        history.append(HumanMessage(prompt))
        ai = llm.invoke(history)
        assert isinstance(ai, AIMessage) and ai.text == reply_text(prompt, n) and ai.id is not None
        check_usage(ai, provider)
        history.append(ai)
        ids.append(ai.id)
    assert len(set(ids)) == 3
    [third] = mock.for_prompt(prompts[2])
    check_route(third, provider, False, MASTER)
    assert third.ask is not None
    assert [(t.role, t.text) for t in third.ask.turns] == [
        ("user", prompts[0]), ("assistant", reply_text(prompts[0], 1)), ("user", prompts[1]),
        ("assistant", reply_text(prompts[1], 2)), ("user", prompts[2])]
