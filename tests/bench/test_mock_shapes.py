"""The mock's wire shapes parse with the official openai and anthropic SDKs, and Gemini's with httpx."""

from __future__ import annotations

import json
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from bench.procs import MockHandle, start_mock

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                           "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockHandle]:
    with start_mock(name="shapes", chunks=5, response_tokens=10, models=["m-1", "m-2"]) as m:
        yield m


@pytest.fixture(scope="module")
def oai(mock: MockHandle) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=mock.openai_base, api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(mock: MockHandle) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=mock.url, api_key="sk-ant", max_retries=0)
    yield client
    client.close()


def test_openai_chat(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-mock-name"] == "shapes"
    assert int(raw.headers["x-ratelimit-limit-requests"]) >= int(raw.headers["x-ratelimit-remaining-requests"])
    resp = raw.parse()
    assert resp.model == "gpt-x" and resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert len(resp.choices[0].message.content.split()) == 10
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == 10
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 10


def test_openai_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 5
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert all(c.model == "gpt-x" and c.object == "chat.completion.chunk" for c in chunks)


def test_openai_chunks_header_override(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True,
                                         extra_headers={"x-mock-chunks": "12"})
    content = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(content) == 12


def test_openai_tool_call_and_streamed_arguments(oai: openai.OpenAI) -> None:
    msgs = [{"role": "user", "content": "weather?"}]
    resp = oai.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL],
                                       extra_headers={"x-mock-tool-calls": "1"})
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "unit": "c", "days": 1}
    fragments = []
    finish = None
    for chunk in oai.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL], stream=True,
                                             extra_headers={"x-mock-tool-calls": "1"}):
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            fragments.append(tc.function.arguments or "")
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert len([f for f in fragments if f]) > 1  # arguments arrive split across chunks
    assert json.loads("".join(fragments)) == {"city": "mock", "unit": "c", "days": 1}


def test_openai_completions_and_stream(oai: openai.OpenAI) -> None:
    resp = oai.completions.create(model="m", prompt="hi")
    assert resp.object == "text_completion" and resp.choices[0].finish_reason == "stop"
    texts = [c.choices[0].text for c in oai.completions.create(model="m", prompt="hi", stream=True) if c.choices]
    assert "".join(texts) == resp.choices[0].text


def test_openai_embeddings_float_and_base64(oai: openai.OpenAI, mock: MockHandle) -> None:
    resp = oai.embeddings.create(model="e", input=["a", "bb", "ccc"])  # the SDK asks for base64
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert all(len(d.embedding) == 16 and isinstance(d.embedding[0], float) for d in resp.data)
    floats = oai.embeddings.create(model="e", input="a", encoding_format="float")
    assert len(floats.data) == 1 and len(floats.data[0].embedding) == 16
    raw = httpx.post(mock.openai_base + "/embeddings", headers={"authorization": "Bearer k"},
                     json={"model": "e", "input": "x", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str)


def test_openai_models(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["m-1", "m-2"]


def test_openai_missing_key_is_401(mock: MockHandle) -> None:
    r = httpx.post(mock.openai_base + "/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_anthropic_message(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "claude-x"
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and len(msg.content[0].text.split()) == 10
    assert msg.usage.output_tokens == 10 and msg.usage.cache_read_input_tokens == 0


def test_anthropic_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-x", max_tokens=50,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) == 5
    assert final.content[0].text == "".join(texts)
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 10


def test_anthropic_stream_event_order(mock: MockHandle) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", mock.url + "/v1/messages", headers=headers,
                      json={"model": "c", "max_tokens": 5, "stream": True, "messages": []}) as r:
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[3:-3] == ["content_block_delta"] * 5
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_tool_use(claude: anthropic.Anthropic) -> None:
    tool = {"name": "lookup", "description": "d",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    msg = claude.messages.create(model="c", max_tokens=50, tools=[tool], messages=[{"role": "user", "content": "x"}],
                                 extra_headers={"x-mock-tool-calls": "1"})
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].type == "tool_use" and msg.content[0].input == {"q": "mock"}
    with claude.messages.stream(model="c", max_tokens=50, tools=[tool], messages=[{"role": "user", "content": "x"}],
                                extra_headers={"x-mock-tool-calls": "1"}) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"q": "mock"}


def test_anthropic_auth_and_version_errors(mock: MockHandle) -> None:
    r = httpx.post(mock.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={"model": "c"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(mock.url + "/v1/messages", headers={"x-api-key": "k"}, json={"model": "c"})
    assert r.status_code == 400 and r.json() == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"}}


def test_gemini_generate_and_stream(mock: MockHandle) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(mock.url + "/v1beta/models/gemini-x:generateContent?key=k", json=body)
    data = r.json()
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    text = "".join(p["text"] for p in cand["content"]["parts"])
    assert len(text.split()) == 10
    usage = data["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    frames = []
    with httpx.stream("POST", mock.url + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse",
                      headers={"x-goog-api-key": "k"}, json=body) as r:
        assert r.headers["content-type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith("data: "):
                frames.append(json.loads(line[6:]))
    assert len(frames) == 5
    assert "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in frames) == text
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in frames[-1]
    r = httpx.post(mock.url + "/v1beta/models/gemini-x:generateContent", json=body)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"


def test_gemini_json_array_stream(mock: MockHandle) -> None:
    r = httpx.post(mock.url + "/v1beta/models/g:streamGenerateContent", headers={"x-goog-api-key": "k"},
                   json={"contents": []})
    items = json.loads(r.text)
    assert isinstance(items, list) and len(items) == 5
