"""Cohere v2, Ollama (chat and generate), Azure and Azure AI adapters."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.cohere import CohereStream, to_cohere
from relaygate.providers.ollama import OllamaStream, to_ollama_chat, to_ollama_generate

from .conftest import call, chat, collect, feed_all, frames, normalize, provider, three_ways


def _cev(obj: dict) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


COHERE_STREAM = b"".join(_cev(o) for o in [
    {"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
                                                              "tool_calls": [], "citations": []}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call"}}},
    {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        "id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}},
    {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"city\""}}}}},
    {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": ":\"Oslo\"}"}}}}},
    {"type": "tool-call-end", "index": 0},
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Done – ø"}}}},
    {"type": "content-end", "index": 0},
    {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {
        "billed_units": {"input_tokens": 9, "output_tokens": 7}, "tokens": {"input_tokens": 90, "output_tokens": 7}}}},
])

OLLAMA_STREAM = b"".join(orjson.dumps(o) + b"\n" for o in [
    {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": "Hel"},
     "done": False},
    {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": "lo ✓"},
     "done": False},
    {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": "",
     "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}, "done": False},
    {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
     "done": True, "done_reason": "stop", "total_duration": 1, "prompt_eval_count": 26, "eval_count": 259},
])


def _cohere() -> CohereStream:
    return CohereStream(call(chat([{"role": "user", "content": "x"}], stream=True,
                                  stream_options={"include_usage": True}), "command-r"))


def _ollama(generate: bool = False) -> OllamaStream:
    return OllamaStream(call(chat([{"role": "user", "content": "x"}], stream=True,
                                  stream_options={"include_usage": True}), "llama3.2"), generate)


# ------------------------------------------------------------------------------------------ Cohere


def test_cohere_request() -> None:
    p = provider("cohere/command-r-plus", api_key="co-key")
    r = p.build_request(call(chat([{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                                   {"role": "assistant", "content": None, "tool_calls": [
                                       {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                                   {"role": "tool", "tool_call_id": "t1", "content": "r"}],
                                  top_p=0.3, stop=["x"], max_tokens=5), "command-r-plus"))
    assert r.url == "https://api.cohere.com/v2/chat" and ("Authorization", "Bearer co-key") in r.headers
    body = orjson.loads(r.body)
    assert body["p"] == 0.3 and body["stop_sequences"] == ["x"] and body["max_tokens"] == 5 and body["stream"] is False
    assert body["messages"][2] == {"role": "assistant", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert body["messages"][3] == {"role": "tool", "content": "r", "tool_call_id": "t1"}
    with pytest.raises(errors.BadRequest, match="cohere"):
        to_cohere(chat([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]), "c", False)


def test_cohere_response_and_stream() -> None:
    body = orjson.dumps({"id": "c1", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [
        {"type": "text", "text": "Hello"}]}, "usage": {"tokens": {"input_tokens": 3, "output_tokens": 1}}})
    out = orjson.loads(provider("cohere/c").translate_response(call(chat([{"role": "user", "content": "x"}]), "c"), body))
    assert out["choices"][0]["message"]["content"] == "Hello" and out["usage"]["total_tokens"] == 4
    got = collect(frames(three_ways(_cohere, COHERE_STREAM)))
    assert got["tools"] == [{"id": "get_weather_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}]
    assert got["content"] == "Done – ø" and got["reasoning"] == "I will call"
    assert got["finish"] == "tool_calls" and got["usage"]["prompt_tokens"] == 90


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(COHERE_STREAM)), max_size=20))
def test_cohere_random_splits(splits: list[int]) -> None:
    assert normalize(feed_all(_cohere, COHERE_STREAM, splits)) == normalize(feed_all(_cohere, COHERE_STREAM))


def test_cohere_errors() -> None:
    p = provider("cohere/c")
    assert p.map_error(429, b'{"message":"You are using a Trial key"}', None).status == 429
    assert isinstance(p.map_error(400, b'{"message":"too many tokens: size limit exceeded"}', None),
                      errors.ContextWindowExceeded)


# ------------------------------------------------------------------------------------------ Ollama


def test_ollama_requests() -> None:
    p = provider("ollama_chat/llama3.2")
    r = p.build_request(call(chat([{"role": "user", "content": [
        {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}],
        max_tokens=7, temperature=0, response_format={"type": "json_object"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]), "llama3.2"))
    assert r.url == "http://localhost:11434/api/chat"
    body = orjson.loads(r.body)
    assert body["messages"] == [{"role": "user", "content": "see", "images": ["QUJD"]}]
    assert body["options"] == {"temperature": 0, "num_predict": 7} and body["format"] == "json"
    assert body["stream"] is False and body["tools"][0]["function"]["name"] == "f"
    g = to_ollama_generate(chat([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]), "m", True)
    assert g == {"model": "m", "prompt": "U", "system": "S", "stream": True}
    assert provider("ollama/m", api_base="http://o:1").build_request(
        call(chat([{"role": "user", "content": "x"}]))).url == "http://o:1/api/generate"
    with pytest.raises(errors.BadRequest, match="base64 data URIs"):
        to_ollama_chat(chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]),
                       "m", False)


def test_ollama_response_and_stream() -> None:
    body = orjson.dumps({"model": "llama3.2", "message": {"role": "assistant", "content": "hi"}, "done": True,
                         "done_reason": "length", "prompt_eval_count": 4, "eval_count": 2})
    out = orjson.loads(provider("ollama_chat/llama3.2").translate_response(call(chat([{"role": "user", "content": "x"}])), body))
    assert out["choices"][0]["finish_reason"] == "length" and out["usage"]["total_tokens"] == 6
    got = collect(frames(three_ways(_ollama, OLLAMA_STREAM)))
    assert got["content"] == "Hello ✓" and got["tools"][0]["arguments"] == "{\"a\":1}"
    assert got["finish"] == "tool_calls"
    assert got["usage"] == {"prompt_tokens": 26, "completion_tokens": 259, "total_tokens": 285}
    gen = b'{"model":"m","response":"a","done":false}\n{"model":"m","response":"b","done":true,"eval_count":2}\n'
    assert collect(frames(three_ways(lambda: _ollama(True), gen)))["content"] == "ab"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(OLLAMA_STREAM)), max_size=20))
def test_ollama_random_splits(splits: list[int]) -> None:
    assert normalize(feed_all(_ollama, OLLAMA_STREAM, splits)) == normalize(feed_all(_ollama, OLLAMA_STREAM))


def test_ollama_errors() -> None:
    e = provider("ollama_chat/m").map_error(404, b'{"error":"model \\"m\\" not found, try pulling it first"}', None)
    assert e.status == 404 and "not found" in e.message


# ------------------------------------------------------------------------------------------- Azure


def test_azure_url_key_and_version() -> None:
    p = provider("azure/my-gpt4o", api_base="https://res.openai.azure.com/", api_key="az", api_version="2024-10-21")
    r = p.build_request(call(chat([{"role": "user", "content": "x"}]), "my-gpt4o"))
    assert r.url == "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    assert ("api-key", "az") in r.headers and not any(h[0] == "Authorization" for h in r.headers)
    e = provider("azure/d", api_base="https://r.openai.azure.com").build_request(
        call({"model": "m", "input": "hi"}, "d", endpoint="embeddings"))
    assert e.url == "https://r.openai.azure.com/openai/deployments/d/embeddings?api-version=2025-02-01-preview"
    ad = provider("azure/d", api_base="https://r.openai.azure.com", azure_ad_token="eyJ")
    assert ("Authorization", "Bearer eyJ") in ad.build_request(call(chat([{"role": "user", "content": "x"}]), "d")).headers
    v1 = provider("azure/d", api_base="https://r.openai.azure.com/openai/v1", api_key="k")
    assert v1.build_request(call(chat([{"role": "user", "content": "x"}]), "d")).url == \
        "https://r.openai.azure.com/openai/v1/chat/completions"


def test_azure_ai_and_content_filter_errors() -> None:
    p = provider("azure_ai/mistral-large", api_base="https://x.services.ai.azure.com", api_key="k")
    r = p.build_request(call(chat([{"role": "user", "content": "x"}]), "mistral-large"))
    assert r.url == "https://x.services.ai.azure.com/models/chat/completions" and ("api-key", "k") in r.headers
    other = provider("azure_ai/m", api_base="https://my.endpoint.example/v1", api_key="k")
    assert ("Authorization", "Bearer k") in other.build_request(call(chat([{"role": "user", "content": "x"}]))).headers
    body = orjson.dumps({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                                              "content management policy.", "type": None, "param": "prompt",
                                   "code": "content_filter", "status": 400}})
    assert isinstance(provider("azure/d", api_base="https://r").map_error(400, body, None), errors.ContentPolicyViolation)
