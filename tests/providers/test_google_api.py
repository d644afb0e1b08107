"""Gemini's generateContent as an inbound format (``providers.google_api``), sans IO: every part kind and setting
translated to chat, chat answers and streams back to Gemini's shapes, and malformed requests refused with a
400 naming the place."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.core.errors import GatewayError
from relaygate.providers.google_api import GeminiStream, gemini_usage, openai_to_gemini, to_openai


def test_parts_and_roles() -> None:
    req = {"system_instruction": {"parts": [{"text": "be brief"}, {"text": "and kind"}]}, "contents": [
        {"role": "user", "parts": [{"text": "look: "}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                                   {"inline_data": {"mime_type": "audio/wav", "data": "UklGRg=="}},
                                   {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                                   {"fileData": {"fileUri": "gs://b/x.jpg", "mimeType": "image/jpeg"}},
                                   {"file_data": {"file_uri": "https://files/doc", "mime_type": "text/plain"}}]},
        {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "calling"},
                                    {"functionCall": {"name": "f", "args": {"x": 1}}},
                                    {"functionCall": {"name": "g", "args": {}, "id": "own"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {"ok": True}}},
                                   {"functionResponse": {"name": "f", "response": {"v": 2}}}, {"text": "thanks"}]}]}
    out = to_openai(req, "m", stream=True)
    assert out["model"] == "m" and out["stream"] is True
    system, user, model, tool_g, tool_f, last = out["messages"]
    assert system == {"role": "system", "content": "be brief\nand kind"}
    assert [p["type"] for p in user["content"]] == ["text", "image_url", "input_audio", "file", "image_url", "file"]
    assert user["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="
    assert user["content"][2]["input_audio"] == {"data": "UklGRg==", "format": "wav"}
    assert user["content"][4]["image_url"]["url"] == "gs://b/x.jpg" and user["content"][5]["file"]["file_id"]
    assert model["content"] == "calling" and [c["id"] for c in model["tool_calls"]] == ["call_1", "own"]
    assert model["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x":1}'}
    assert tool_g == {"role": "tool", "tool_call_id": "own", "content": '{"ok":true}'}
    assert tool_f == {"role": "tool", "tool_call_id": "call_1", "content": '{"v":2}'}
    assert last == {"role": "user", "content": "thanks"}
    assert to_openai({"contents": "hi"}, "m", False)["messages"] == [{"role": "user", "content": "hi"}]


def test_settings_tools_and_schema() -> None:
    out = to_openai({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {
        "temperature": 0.2, "topP": 0.9, "topK": 5, "maxOutputTokens": 99, "stopSequences": ["S"], "candidateCount": 2,
        "presencePenalty": 0.1, "frequencyPenalty": 0.2, "seed": 7, "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "ARRAY", "items": {"type": "STRING"}}}},
        "thinkingConfig": {"thinkingBudget": 2048}},
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}, "safetySettings": [{"category": "c"}]}, "m", False)
    assert (out["temperature"], out["top_p"], out["top_k"], out["max_tokens"], out["stop"], out["n"],
            out["presence_penalty"], out["frequency_penalty"], out["seed"]) == (0.2, 0.9, 5, 99, ["S"], 2, 0.1, 0.2, 7)
    assert out["response_format"]["json_schema"]["schema"] == {
        "type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}}
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
                            {"googleSearch": {}}]
    assert out["tool_choice"] == "none" and out["safety_settings"] == [{"category": "c"}]
    json_only = to_openai({"contents": "x", "generation_config": {"response_mime_type": "application/json"}}, "m", False)
    assert json_only["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("req, words", [
    ({}, "contents: required"), ({"contents": []}, "contents: required"), ({"contents": 3}, "contents: required"),
    ({"contents": [5]}, "contents[0]: expected an object"),
    ({"contents": [{"parts": "x"}]}, "contents[0].parts: expected a list"),
    ({"contents": [{"parts": [7]}]}, "contents[0].parts[0]: expected an object"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}, "not base64"),
    ({"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}, "expected mimeType"),
    ({"contents": [{"parts": [{"executableCode": {}}]}]}, "cannot translate"),
    ({"contents": "x", "tools": {"a": 1}}, "tools: expected a list"),
    ({"contents": "x", "tools": [{"functionDeclarations": [{"description": "no name"}]}]}, "each needs a name"),
    ({"contents": "x", "generationConfig": [1]}, "generationConfig: expected an object")])
def test_refusals(req: dict[str, Any], words: str) -> None:
    with pytest.raises(GatewayError) as ei:
        to_openai(req, "m", False)
    assert ei.value.status == 400 and words in ei.value.message


def test_answer_back() -> None:
    chat = {"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "hi", "reasoning_content": "hmm",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                       {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
                      "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}}
    out = orjson.loads(openai_to_gemini(orjson.dumps(chat), "m"))
    (cand,) = out["candidates"]
    assert cand["finishReason"] == "MAX_TOKENS" and cand["content"]["role"] == "model"
    assert cand["content"]["parts"] == [{"text": "hmm", "thought": True}, {"text": "hi"},
                                        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}},
                                        {"functionCall": {"name": "g", "args": {"arguments": "not json"}, "id": "c2"}}]
    assert out["usageMetadata"] == {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 16,
                                    "thoughtsTokenCount": 2, "cachedContentTokenCount": 4}
    assert (out["modelVersion"], out["responseId"]) == ("m", "chatcmpl-9")
    assert gemini_usage(None) == {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}


def _frames(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _events(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(e[6:]) for e in data.split(b"\r\n\r\n") if e.startswith(b"data: ")]


def test_stream_back() -> None:
    s = GeminiStream("m")
    raw = _frames({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                  {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]},
                  {"id": "c", "choices": [{"index": 0, "delta": {"content": "he"}}]},
                  {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
                      {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}]}}]},
                  {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
                      {"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]},
                  {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    out = b"".join(s.feed(raw[i:i + 7]) for i in range(0, len(raw), 7)) + s.close()  # cut anywhere
    events = _events(out)
    assert [e["candidates"][0]["content"]["parts"] for e in events] == [
        [{"text": "hm", "thought": True}], [{"text": "he"}], [{"functionCall": {"name": "f", "args": {"a": 1},
                                                                                 "id": "c1"}}]]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["promptTokenCount"] == 3 and all(e["responseId"] == "c" for e in events)
    assert b"[DONE]" not in out and s.close() == b""


def test_stream_usage_kept_aside_and_errors() -> None:
    kept = b'{"id":"c","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}}'
    s = GeminiStream("m", lambda: kept)
    out = s.feed(_frames({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}))
    assert _events(out)[-1]["usageMetadata"]["promptTokenCount"] == 8
    err = GeminiStream("m").feed(b'data: {"error": {"message": "boom", "code": "503"}}\n\n')
    assert _events(err) == [{"error": {"code": 503, "message": "boom", "status": "UNAVAILABLE"}}]
