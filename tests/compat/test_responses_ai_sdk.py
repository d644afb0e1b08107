"""End to end: the Vercel AI SDK's default OpenAI provider (``createOpenAI({baseURL, apiKey})(model)``, the
Responses API in ai 6) against a real Granian gateway: ``generateText``, ``streamText``, a tool with
``execute`` over several steps (unary, streamed, two calls in one step, a step after a text preamble),
reasoning summaries, a stream the provider breaks off, and three turns over ``previousResponseId``, each
against the ``openai/`` (passthrough), ``anthropic/`` and ``gemini/`` (translated) deployments of
:mod:`tests.compat.responses_mocks`.

``tests/compat/node/responses_ai_sdk.mjs`` runs every case once per deployment and prints what the SDK saw;
the tests here check it and what the mock received for the case's prompt. Without ``node`` on PATH they skip
(the only legitimate skip); with ``node`` but no ``node_modules`` they fail, saying to run ``npm ci``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.responses_mocks import (
    MODELS,
    PREAMBLE,
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
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parent / "node"
MASTER = "sk-responses-ai-sdk-master"
TOOL_OUTPUT = "20C and sunny in Paris"

Results = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def ran() -> Iterator[tuple[Results, Mock]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the Vercel AI SDK cannot run on this machine")
    for pkg in ("ai", "@ai-sdk/openai"):
        assert (NODE_DIR / "node_modules" / pkg / "package.json").exists(), (
            f"{pkg} is not installed in {NODE_DIR}: run `npm ci --no-audit --no-fund` there (tests/run.sh does)")
    with serve_mock() as mock, start_gateway(gateway_config(mock.url, MASTER)) as gw:
        proc = subprocess.run([node, "responses_ai_sdk.mjs"], cwd=NODE_DIR, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "RG_URL": gw.url, "RG_KEY": MASTER,
                                               "RG_MODELS": json.dumps(MODELS)})
        assert proc.returncode == 0, f"node exited {proc.returncode}:\n{proc.stderr}"
        yield json.loads(proc.stdout), mock


def case(ran: tuple[Results, Mock], name: str, provider: str) -> tuple[dict[str, Any], list[Received]]:
    """What the SDK got in case ``name`` against ``provider``'s deployment, and what the mock received for it."""
    results, mock = ran
    got = results[f"{name}:{provider}"]
    assert "unexpected" not in got and "error" not in got, got
    sent = mock.for_prompt(got["prompt"])
    assert {r.provider for r in sent} == {provider}, [(r.provider, r.path) for r in sent]
    problems = [p for p in mock.problems if got["prompt"] in p]
    assert problems == [], problems
    return got, sent


def check_usage(usage: dict[str, Any], provider: str, times: int = 1) -> None:
    want = expected_usage(provider)
    assert usage["inputTokens"] == times * want["input_tokens"]
    assert usage["outputTokens"] == times * want["output_tokens"]
    assert usage["totalTokens"] == times * want["total_tokens"]
    assert usage["inputTokenDetails"]["cacheReadTokens"] == times * want["cached_tokens"]
    assert usage["outputTokenDetails"]["reasoningTokens"] == times * want["reasoning_tokens"]


def check_system_prompt(rec: Received, provider: str, prompt: str, max_tokens: int, temperature: float) -> None:
    if provider == "openai":  # the AI SDK sends the system text as a message of the input
        assert rec.body["input"] == [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": [{"type": "input_text", "text": prompt}]}]
        assert rec.body["max_output_tokens"] == max_tokens and rec.body["temperature"] == temperature
    else:
        check_translated_text(rec, provider, prompt, "be brief", max_tokens, temperature)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_generate_text(ran: tuple[Results, Mock], provider: str) -> None:
    got, [rec] = case(ran, "generate", provider)
    assert got["text"] == reply_text(got["prompt"]) and got["finishReason"] == "stop"
    assert got["modelId"] == MODELS[provider] and got["responseId"].startswith("resp_")
    assert got["providerMetadata"]["openai"]["responseId"] == got["responseId"]
    check_usage(got["usage"], provider)
    check_route(rec, provider, False, MASTER)
    check_system_prompt(rec, provider, got["prompt"], 200, 0.25)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_text(ran: tuple[Results, Mock], provider: str) -> None:
    got, [rec] = case(ran, "stream", provider)
    want = reply_text(got["prompt"])
    assert got["text"] == want and "".join(got["deltas"]) == want and len(got["deltas"]) > 1
    parts = got["parts"]
    assert parts[:3] == ["start", "start-step", "text-start"] and parts[-3:] == ["text-end", "finish-step", "finish"]
    assert got["finishReason"] == "stop" and got["modelId"] == MODELS[provider]
    assert got["responseId"].startswith("resp_")
    check_usage(got["usage"], provider)
    check_route(rec, provider, True, MASTER)
    check_system_prompt(rec, provider, got["prompt"], 120, 0.5)


@pytest.mark.parametrize("name", ["tools", "tools_stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_execute_multi_step(ran: tuple[Results, Mock], provider: str, name: str) -> None:
    got, sent = case(ran, name, provider)
    assert got["executed"] == ["Paris"]  # the SDK ran the tool with the arguments the model sent
    first, second = got["steps"]
    [call] = first["toolCalls"]
    assert call["toolName"] == "get_weather" and call["input"] == {"city": "Paris"}
    assert first["finishReason"] == "tool-calls" and first["text"] == ""
    assert first["toolResults"] == [{"toolCallId": call["toolCallId"], "output": TOOL_OUTPUT}]
    assert second["text"] == got["text"] == tool_reply(TOOL_OUTPUT) and got["finishReason"] == "stop"
    assert second["toolCalls"] == [] and first["responseId"] != second["responseId"]
    for step in (first, second):
        check_usage(step["usage"], provider)
        assert step["modelId"] == MODELS[provider]
    check_usage(got["totalUsage"], provider, times=2)
    if name == "tools_stream":
        assert got["parts"].count("start-step") == 2 and "tool-call" in got["parts"]
        assert "tool-result" in got["parts"]

    asked, answered = sent
    for rec in (asked, answered):
        check_route(rec, provider, name == "tools_stream", MASTER)
    if provider == "gemini":
        assert call["toolCallId"].startswith("call_")  # Gemini sends no call ids: the gateway makes one
    else:  # the provider's own call id reaches the SDK and comes back with the output
        assert call["toolCallId"] == asked.answer["call_id"]
    check_tool_result(answered, provider, call["toolCallId"], TOOL_OUTPUT)
    if provider == "anthropic":
        assert asked.body["tools"] == [{"name": "get_weather", "description": "The weather in a city",
                                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                                         "required": ["city"], "additionalProperties": False}}]
        assert asked.body["tool_choice"] == {"type": "auto"}
    elif provider == "gemini":
        [decl] = asked.body["tools"][0]["functionDeclarations"]
        assert decl["name"] == "get_weather" and decl["description"] == "The weather in a city"
    else:
        assert asked.body["tools"][0]["name"] == "get_weather" and asked.body["tool_choice"] == "auto"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_tool_calls_streamed(ran: tuple[Results, Mock], provider: str) -> None:
    got, sent = case(ran, "parallel_stream", provider)
    assert got["executed"] == ["Paris", "Rome"]
    first, second = got["steps"]
    assert [c["input"] for c in first["toolCalls"]] == [{"city": "Paris"}, {"city": "Rome"}]
    ids = [c["toolCallId"] for c in first["toolCalls"]]
    assert len(set(ids)) == 2 and [r["toolCallId"] for r in first["toolResults"]] == ids
    assert second["text"] == tool_reply("20C and sunny in Paris; 20C and sunny in Rome")
    asked, answered = sent
    for rec in (asked, answered):
        check_route(rec, provider, True, MASTER)
    if provider != "gemini":
        assert ids == asked.answer["call_ids"]
    assert answered.ask is not None
    assert [r[1] for r in answered.ask.turns[-1].results] == ["20C and sunny in Paris", "20C and sunny in Rome"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reasoning_summary(ran: tuple[Results, Mock], provider: str) -> None:
    got, sent = case(ran, "reasoning", provider)
    assert got["text"] == reply_text(got["prompt"]) and got["reasoningText"] == THOUGHT
    streamed = got["streamed"]
    assert streamed["reasoning"] == streamed["reasoningText"] == THOUGHT
    assert streamed["text"] == reply_text(got["prompt"] + " (streamed)")
    assert streamed["parts"].index("reasoning-start") < streamed["parts"].index("text-start")
    check_usage(got["usage"], provider)
    [rec] = sent
    check_route(rec, provider, False, MASTER)
    check_reasoning_request(rec, provider)
    [rec] = ran[1].for_prompt(got["prompt"] + " (streamed)")
    check_route(rec, provider, True, MASTER)
    check_reasoning_request(rec, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_broken_off_mid_way(ran: tuple[Results, Mock], provider: str) -> None:
    """The provider fails after the first words: streamText keeps them and reports one error part."""
    got, [rec] = case(ran, "overloaded", provider)
    assert got["text"] == "turn 1: " and got["finishReason"] == "error"
    [err] = got["streamErrors"]
    words = {"openai": "The server had an error", "anthropic": "Overloaded",
             "gemini": "The model is overloaded"}[provider]
    assert words in err["message"], err
    check_route(rec, provider, True, MASTER)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_step_after_text_refers_to_the_stored_item(ran: tuple[Results, Mock], provider: str) -> None:
    got, sent = case(ran, "tools_preamble", provider)
    first, second = got["steps"]
    assert first["text"] == PREAMBLE and [c["toolName"] for c in first["toolCalls"]] == ["get_weather"]
    assert second["text"] == got["text"] == tool_reply(TOOL_OUTPUT) and got["executed"] == ["Paris"]
    asked, answered = sent
    if provider == "openai":  # passed through: the upstream stored the text and resolves the reference itself
        refs = [it for it in answered.body["input"] if it.get("type") == "item_reference"]
        assert [r["id"] for r in refs] == [asked.answer["item_ids"][0]]
    assert answered.ask is not None
    [user, assistant, results] = answered.ask.turns
    assert user.text == got["prompt"] and assistant.text == PREAMBLE
    assert [c[1] for c in assistant.calls] == ["get_weather"] and [r[1] for r in results.results] == [TOOL_OUTPUT]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_previous_response_id_three_turns(ran: tuple[Results, Mock], provider: str) -> None:
    results, mock = ran
    got = results[f"conversation:{provider}"]
    assert "unexpected" not in got, got
    prompts = [f"{got['prompt']} #{n}" for n in (1, 2, 3)]
    turns = got["turns"]
    assert [t["text"] for t in turns] == [reply_text(p, n) for n, p in enumerate(prompts, 1)]
    assert len({t["responseId"] for t in turns}) == 3 and all(t["responseId"].startswith("resp_") for t in turns)
    for t in turns:
        check_usage(t["usage"], provider)
    [third] = mock.for_prompt(prompts[2])
    check_route(third, provider, False, MASTER)
    assert third.ask is not None
    assert [(t.role, t.text) for t in third.ask.turns] == [
        ("user", prompts[0]), ("assistant", reply_text(prompts[0], 1)), ("user", prompts[1]),
        ("assistant", reply_text(prompts[1], 2)), ("user", prompts[2])]
    assert [p for p in mock.problems if got["prompt"] in p] == []
