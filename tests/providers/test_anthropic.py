"""Anthropic adapter: request translation, responses, every stream event (three ways), errors."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.anthropic import AnthropicProvider, AnthropicStream, to_anthropic

from .conftest import call, chat, collect, feed_all, frames, normalize, provider, three_ways

URL = "https://api.anthropic.com/v1/messages"


def _ev(name: str, obj: dict) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n"


STREAM = b"".join([
    _ev("message_start", {"type": "message_start", "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": "claude-opus-4",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 10}}}),
    _ev("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": "Need weather."}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _ev("content_block_start", {"type": "content_block_start", "index": 1,
                                "content_block": {"type": "text", "text": ""}}),
    _ev("ping", {"type": "ping"}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "Okay"}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": ", let's check – ünïcode"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 1}),
    _ev("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": ""}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": " \"San Francisco, CA\"}"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 2}),
    _ev("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 3,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"tz\": \"PST\"}"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 3}),
    _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 89}}),
    _ev("message_stop", {"type": "message_stop"}),
])


def _stream(include_usage: bool = True) -> AnthropicStream:
    body = chat([{"role": "user", "content": "hi"}], stream=True,
                stream_options={"include_usage": include_usage})
    return AnthropicStream(call(body, "claude-opus-4"))


# ----------------------------------------------------------------------------------------- requests


def test_request_shape_headers_and_defaults() -> None:
    p = provider("anthropic/claude-x", api_key="sk-ant")
    req = p.build_request(call(chat([{"role": "user", "content": "hi"}]), "claude-x"))
    assert req.url == URL
    h = dict(req.headers)
    assert h["x-api-key"] == "sk-ant" and h["anthropic-version"] == "2023-06-01"
    body = orjson.loads(req.body)
    assert body == {"model": "claude-x", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    "max_tokens": 4096}


def test_api_base_variants() -> None:
    for base in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/messages"):
        p = provider("anthropic/c", api_base=base)
        assert isinstance(p, AnthropicProvider) and p.messages_url == "http://h:1/v1/messages"


def test_system_lifting_merge_and_tool_results() -> None:
    req = chat([
        {"role": "system", "content": "sys one"},
        {"role": "developer", "content": [{"type": "text", "text": "sys two", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "I start"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "thanks"},
    ], max_completion_tokens=50, stop="END", temperature=0.2, top_k=5, user="u1")
    out = to_anthropic(req, "claude-x")
    assert out["system"] == [{"type": "text", "text": "sys one"},
                             {"type": "text", "text": "sys two", "cache_control": {"type": "ephemeral"}}]
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "."}]
    assert out["messages"][2]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    asst = out["messages"][3]["content"]
    assert asst[0] == {"type": "text", "text": "calling"}
    assert asst[1] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}
    assert asst[2] == {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}
    last = out["messages"][4]["content"]
    assert last[0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "one"}
    assert last[1] == {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "two"}]}
    assert last[2] == {"type": "text", "text": "thanks"}
    assert out["max_tokens"] == 50 and out["stop_sequences"] == ["END"]
    assert out["temperature"] == 0.2 and out["top_k"] == 5 and out["metadata"] == {"user_id": "u1"}


def test_images_tools_and_tool_choice() -> None:
    req = chat([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}}]}],
        tools=[{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                 "parameters": {"type": "object", "properties": {"c": {"type": "string"}}}}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False)
    out = to_anthropic(req, "c")
    content = out["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                      "data": "iVBORw0KGgo="}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert content[3]["type"] == "document" and content[3]["source"]["media_type"] == "application/pdf"
    assert out["tools"] == [{"name": "get_weather", "description": "Weather",
                             "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}}}]
    assert out["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert to_anthropic(chat([{"role": "user", "content": "x"}], tools=req["tools"], tool_choice="required"),
                        "c")["tool_choice"] == {"type": "any"}
    none = to_anthropic(chat([{"role": "user", "content": "x"}], tools=req["tools"], tool_choice="none"), "c")
    assert "tools" not in none and "tool_choice" not in none


def test_audio_is_a_clear_400() -> None:
    req = chat([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}])
    with pytest.raises(errors.BadRequest, match=r"claude-x.*input_audio"):
        to_anthropic(req, "claude-x")


def test_deployment_defaults_apply_when_absent() -> None:
    p = provider("anthropic/c", temperature=0.7, max_tokens=99)
    body = orjson.loads(p.build_request(call(chat([{"role": "user", "content": "x"}], temperature=0.1), "c")).body)
    assert body["temperature"] == 0.1 and body["max_tokens"] == 99


# ---------------------------------------------------------------------------------------- responses


def test_response_translation_text_tools_usage() -> None:
    body = orjson.dumps({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me check"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 20}})
    p = provider("anthropic/c")
    out = orjson.loads(p.translate_response(call(chat([{"role": "user", "content": "x"}]), "c"), body))
    msg = out["choices"][0]["message"]
    assert out["object"] == "chat.completion" and out["model"] == "claude-opus-4"
    assert msg["content"] == "Let me check" and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    u = out["usage"]
    assert (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]) == (130, 5, 135)
    assert u["prompt_tokens_details"] == {"cached_tokens": 100}


@pytest.mark.parametrize(("reason", "finish"), [("end_turn", "stop"), ("max_tokens", "length"),
                                                ("stop_sequence", "stop"), ("tool_use", "tool_calls")])
def test_stop_reasons(reason: str, finish: str) -> None:
    body = orjson.dumps({"id": "m", "model": "c", "content": [{"type": "text", "text": "x"}], "stop_reason": reason,
                         "usage": {"input_tokens": 1, "output_tokens": 1}})
    out = orjson.loads(provider("anthropic/c").translate_response(call(chat([{"role": "user", "content": "x"}])), body))
    assert out["choices"][0]["finish_reason"] == finish


# ------------------------------------------------------------------------------------------ streams


def test_stream_every_event() -> None:
    out = three_ways(_stream, STREAM)
    fs = frames(out)
    assert fs[-1] == "[DONE]"
    assert fs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(f["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U" for f in fs[:-1])
    got = collect(fs)
    assert got["content"] == "Okay, let's check – ünïcode"
    assert got["reasoning"] == "Need weather."
    assert got["tools"] == [
        {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"},
        {"id": "toolu_02", "name": "get_time", "arguments": "{\"tz\": \"PST\"}"}]
    assert got["finish"] == "tool_calls"
    assert got["usage"]["prompt_tokens"] == 582 and got["usage"]["completion_tokens"] == 89
    assert got["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}
    assert fs[-2]["choices"] == []  # the usage chunk


def test_stream_without_include_usage_still_accounts() -> None:
    t = _stream(include_usage=False)
    out = t.feed(STREAM) + t.close()
    assert all(f == "[DONE]" or f["choices"] for f in frames(out))
    assert b'"completion_tokens":89' in t.last_data


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=25))
def test_stream_random_splits(splits: list[int]) -> None:
    assert normalize(feed_all(_stream, STREAM, splits)) == normalize(feed_all(_stream, STREAM))


def test_stream_error_event_raises_mapped_error() -> None:
    t = _stream()
    t.feed(STREAM.split(b"event: content_block_start")[0])
    with pytest.raises(errors.GatewayError) as ei:
        t.feed(_ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert ei.value.status == 529 and "Overloaded" in ei.value.message


def test_stream_truncated_upstream_still_ends_cleanly() -> None:
    t = _stream()
    out = t.feed(STREAM[: STREAM.index(b"event: message_delta")]) + t.close()
    fs = frames(out)
    assert fs[-1] == "[DONE]" and fs[-2]["choices"][0]["finish_reason"] == "stop"


# ------------------------------------------------------------------------------------------- errors


def _err(status: int, etype: str, message: str) -> errors.GatewayError:
    body = orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})
    return provider("anthropic/c").map_error(status, body, 3.0 if status == 429 else None)


def test_error_mapping() -> None:
    cw = _err(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    assert isinstance(cw, errors.ContextWindowExceeded) and "AnthropicException" in cw.message
    rl = _err(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    assert rl.status == 429 and "RateLimitError" in rl.message and rl.headers == [(b"retry-after", b"3")]
    assert "AuthenticationError" in _err(401, "authentication_error", "invalid x-api-key").message
    assert _err(404, "not_found_error", "model: claude-x").status == 404
    assert _err(529, "overloaded_error", "Overloaded").status == 529
    bad = _err(400, "invalid_request_error", "messages: roles must alternate")
    assert type(bad) is errors.UpstreamError and bad.status == 400


# ------------------------------------------------------------------------------------- JSON mode

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
JSON_RF = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}


def test_json_mode_becomes_one_forced_tool() -> None:
    req = chat([{"role": "user", "content": "where?"}], response_format=JSON_RF)
    out = to_anthropic(req, "claude-sonnet-4-5")
    assert out["tools"] == [{"name": "json_tool_call", "input_schema": SCHEMA}]
    assert out["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert "response_format" not in out
    anything = to_anthropic({**req, "response_format": {"type": "json_object"}}, "m")
    assert anything["tools"][0]["input_schema"]["type"] == "object"
    # with thinking on, a forced tool is refused by Anthropic: the tool is only offered
    thinking = to_anthropic({**req, "thinking": {"type": "enabled", "budget_tokens": 1024}}, "m")
    assert "tool_choice" not in thinking and thinking["tools"][0]["name"] == "json_tool_call"
    assert "tools" not in to_anthropic({**req, "response_format": {"type": "text"}}, "m")
    with pytest.raises(errors.BadRequest):
        to_anthropic({**req, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "m")


def test_json_mode_answer_is_the_tool_input_as_content() -> None:
    p = provider("anthropic/claude-sonnet-4-5")
    c = call(chat([{"role": "user", "content": "where?"}], response_format=JSON_RF), "claude-sonnet-4-5")
    body = orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                         "content": [{"type": "tool_use", "id": "toolu_1", "name": "json_tool_call",
                                      "input": {"city": "Paris"}}],
                         "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}})
    out = orjson.loads(p.translate_response(c, body))
    msg = out["choices"][0]["message"]
    assert orjson.loads(msg["content"]) == {"city": "Paris"} and not msg.get("tool_calls")
    assert out["choices"][0]["finish_reason"] == "stop"
    # without response_format, a tool named json_tool_call is an ordinary tool call
    plain = call(chat([{"role": "user", "content": "where?"}]), "claude-sonnet-4-5")
    assert orjson.loads(p.translate_response(plain, body))["choices"][0]["message"]["tool_calls"]


def test_json_mode_stream_sends_the_tool_input_as_content() -> None:
    events = b"".join([
        _ev("message_start", {"type": "message_start", "message": {
            "id": "msg_2", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        _ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_9", "name": "json_tool_call", "input": {}}}),
        _ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        _ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta", "partial_json": " \"Oslo\"}"}}),
        _ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                              "usage": {"output_tokens": 7}}),
        _ev("message_stop", {"type": "message_stop"}),
    ])

    def make() -> AnthropicStream:
        body = chat([{"role": "user", "content": "where?"}], stream=True, response_format=JSON_RF,
                    stream_options={"include_usage": True})
        return AnthropicStream(call(body, "claude-sonnet-4-5"))

    got = collect(frames(three_ways(make, events)))
    assert orjson.loads(got["content"]) == {"city": "Oslo"}
    assert not got["tools"] and got["finish"] == "stop"


def test_web_search_options() -> None:
    """OpenAI's ``web_search_options`` as Anthropic's server web search tool (LiteLLM's map), beside the functions."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    out = to_anthropic(chat([{"role": "user", "content": "news?"}], tools=[tool], web_search_options={
        "search_context_size": "high", "user_location": {"type": "approximate", "approximate": {
            "city": "Lyon", "country": "FR", "timezone": "Europe/Paris", "bogus": 1}}}), "claude")
    assert out["tools"][-1] == {"type": "web_search_20250305", "name": "web_search", "max_uses": 10,
                                "user_location": {"type": "approximate", "city": "Lyon", "country": "FR",
                                                  "timezone": "Europe/Paris"}}
    assert out["tools"][0]["name"] == "f"
    assert to_anthropic(chat([{"role": "user", "content": "x"}], web_search_options={}), "c")["tools"] == [
        {"type": "web_search_20250305", "name": "web_search"}]
    for bad in ({"search_context_size": "huge"}, "yes"):
        with pytest.raises(errors.BadRequest, match="web_search_options"):
            to_anthropic(chat([{"role": "user", "content": "x"}], web_search_options=bad), "c")


def test_native_tools_alone_and_tool_choice_without_tools() -> None:
    """Anthropic's own tools pass through without any function beside them (they were dropped); a tool_choice
    without tools is left out (Anthropic refuses it)."""
    out = to_anthropic(chat([{"role": "user", "content": "x"}], tools=[{"type": "bash_20250124", "name": "bash"}],
                            tool_choice="auto"), "c")
    assert out["tools"] == [{"type": "bash_20250124", "name": "bash"}] and out["tool_choice"] == {"type": "auto"}
    assert "tool_choice" not in to_anthropic(chat([{"role": "user", "content": "x"}], tool_choice="auto"), "c")
