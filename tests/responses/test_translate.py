"""The pure translation of the Responses API (``providers.responses_api``): requests to chat, chat answers and
chat streams back to Responses, fed whole and one byte at a time."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.core import errors
from relaygate.providers import responses_api as ra
from tests.responses.conftest import Script, chat_body, chat_frames

ECHO = ra.echo({"model": "m"}, None)


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        head, data = block.split(b"\n", 1)
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
        obj = orjson.loads(data[6:])
        assert obj["type"] == head[7:].decode()
        out.append((obj["type"], obj))
    return out


def test_request_mapping() -> None:
    req = {
        "model": "m", "instructions": "be brief", "max_output_tokens": 99, "temperature": 0.2, "top_p": 0.9,
        "user": "u1", "stream": True, "reasoning": {"effort": "low"}, "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "city", "strict": True,
                            "schema": {"type": "object", "properties": {"c": {"type": "string"}}}}},
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": True}],
        "input": [
            {"role": "developer", "content": "dev note"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look: "},
                {"type": "input_image", "image_url": "https://x/img.png", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,QUJD", "filename": "a.pdf"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "20C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "25C"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]}
    ra.validate(req)
    out = ra.to_chat(req, "m")
    assert out["messages"][0] == {"role": "system", "content": "be brief"}
    assert out["messages"][1] == {"role": "system", "content": "dev note"}
    assert out["messages"][2]["content"] == [
        {"type": "text", "text": "look: "}, {"type": "image_url", "image_url": {"url": "https://x/img.png",
                                                                               "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,QUJD", "filename": "a.pdf"}}]
    am = out["messages"][3]
    assert am["role"] == "assistant" and am["content"] == "calling"
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in am["tool_calls"]] == [
        ("call_1", "get_weather", '{"city":"Paris"}'), ("call_2", "get_weather", '{"city":"Rome"}')]
    assert out["messages"][4:] == [{"role": "tool", "tool_call_id": "call_1", "content": "20C"},
                                   {"role": "tool", "tool_call_id": "call_2", "content": "25C"}]
    assert out["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "strict": True,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False
    assert out["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "city", "strict": True, "schema": {"type": "object", "properties": {"c": {"type": "string"}}}}}
    assert out["reasoning_effort"] == "low" and out["max_completion_tokens"] == 99
    assert (out["temperature"], out["top_p"], out["user"]) == (0.2, 0.9, "u1")
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert ra.to_chat({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}, "m") == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}


@pytest.mark.parametrize(("req", "param", "words"), [
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input", "computer_call_output"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_audio"}]}]}, "input",
     "input_audio"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}, "input", "file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}, "input", "file_data"),
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools", "file_search"),
    ({"input": "x", "tools": [{"type": "mcp", "server_label": "s"}]}, "tools", "mcp"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input", "item_reference"),
])
def test_untranslatable(req: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(ra.Untranslatable) as ei:
        ra.to_chat({"model": "m", **req}, "m")
    assert ei.value.status == 400 and ei.value.param == param and words in ei.value.message


@pytest.mark.parametrize(("req", "param"), [
    ({"input": 5}, "input"),
    ({"input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
])
def test_refused_for_every_deployment(req: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.BadRequest) as ei:
        ra.validate({"model": "m", **req})
    assert ei.value.param == param
    assert not isinstance(ei.value, ra.Untranslatable)


def test_unary_answer() -> None:
    s = Script(content="It is sunny", reasoning="think first", tool_calls=[("call_9", "get_weather", '{"a":1}')])
    r = orjson.loads(ra.chat_to_response(chat_body(s), "client-model", 1234, ra.echo(
        {"model": "m", "instructions": "hi", "temperature": 0.5, "max_output_tokens": 50}, {"k": "v"})))
    assert r["id"].startswith("resp_") and r["object"] == "response" and r["created_at"] == 1234
    assert r["status"] == "completed" and r["incomplete_details"] is None and r["model"] == "client-model"
    assert [o["type"] for o in r["output"]] == ["reasoning", "message", "function_call"]
    assert r["output"][0]["content"] == [{"type": "reasoning_text", "text": "think first"}]
    msg = r["output"][1]
    assert msg["id"].startswith("msg_") and msg["role"] == "assistant" and msg["status"] == "completed"
    assert msg["content"][0]["type"] == "output_text" and msg["content"][0]["text"] == "It is sunny"
    fc = r["output"][2]
    assert fc["id"].startswith("fc_") and (fc["call_id"], fc["name"], fc["arguments"]) == (
        "call_9", "get_weather", '{"a":1}')
    assert r["usage"] == {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                          "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 18}
    assert (r["instructions"], r["temperature"], r["max_output_tokens"], r["metadata"], r["store"]) == (
        "hi", 0.5, 50, {"k": "v"}, False)
    assert r["tool_choice"] == "auto" and r["parallel_tool_calls"] is True and r["text"] == {
        "format": {"type": "text"}}
    cut = orjson.loads(ra.chat_to_response(chat_body(Script(finish="length")), "m", 1, ECHO))
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    with pytest.raises(errors.UpstreamProtocolError):
        ra.chat_to_response(b'{"choices": 5}', "m", 1, ECHO)


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_stream_sequence(split: str) -> None:
    s = Script(content="Hi there you", reasoning="hmm ok",
               tool_calls=[("call_a", "f_a", '{"x": 1}'), ("call_b", "f_b", '{"y": 22}')])
    raw = b"".join(chat_frames(s))
    st = ra.ResponsesStream("client-model", 99, ECHO)
    if split == "whole":
        out = st.feed(raw)
    else:
        out = b"".join(st.feed(raw[i:i + 1]) for i in range(len(raw)))
    out += st.close()
    assert st.done
    evs = events(out)
    assert [e["sequence_number"] for _, e in evs] == list(range(len(evs)))
    kinds = [k for k, _ in evs]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert evs[0][1]["response"]["status"] == "in_progress" and evs[0][1]["response"]["output"] == []
    added = [e["item"] for k, e in evs if k == "response.output_item.added"]
    assert [(i["type"], i.get("name")) for i in added] == [("reasoning", None), ("message", None),
                                                             ("function_call", "f_a"), ("function_call", "f_b")]
    text = "".join(e["delta"] for k, e in evs if k == "response.output_text.delta")
    assert text == "Hi there you"
    assert "".join(e["delta"] for k, e in evs if k == "response.reasoning_text.delta") == "hmm ok"
    by_item: dict[str, str] = {}
    for k, e in evs:
        if k == "response.function_call_arguments.delta":
            by_item[e["item_id"]] = by_item.get(e["item_id"], "") + e["delta"]
    assert sorted(by_item.values()) == ['{"x": 1}', '{"y": 22}']
    done = {e["item"]["id"]: e["item"] for k, e in evs if k == "response.output_item.done"}
    assert len(done) == 4
    assert [e["text"] for k, e in evs if k == "response.output_text.done"] == ["Hi there you"]
    final = evs[-1][1]["response"]
    assert final["status"] == "completed" and final["id"] == evs[0][1]["response"]["id"]
    assert [o["id"] for o in final["output"]] == [i["id"] for i in added]
    assert final["output"][3]["arguments"] == '{"y": 22}' and final["output"][3]["call_id"] == "call_b"
    assert final["usage"]["input_tokens"] == 11 and final["usage"]["output_tokens"] == 7


def test_stream_failures() -> None:
    st = ra.ResponsesStream("m", 1, ECHO)
    out = st.feed(chat_frames(Script(content="a b"))[1])
    out += st.failed(errors.UpstreamProtocolError("cut"))
    evs = events(out)
    assert [k for k, _ in evs] == ["response.created", "response.in_progress", "response.output_item.added",
                                   "response.content_part.added", "response.output_text.delta", "response.failed"]
    assert [e["sequence_number"] for _, e in evs] == list(range(6))
    assert evs[-1][1]["response"]["status"] == "failed" and evs[-1][1]["response"]["error"]["message"] == "cut"
    assert st.done and st.close() == b""
    inband = ra.ResponsesStream("m", 1, ECHO)
    evs = events(inband.feed(b'data: {"error": {"message": "boom", "code": "429"}}\n\n'))
    assert evs[-1][0] == "response.failed"
    assert evs[-1][1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "boom"}
    empty = ra.ResponsesStream("m", 1, ECHO)
    evs = events(empty.close())
    assert [k for k, _ in evs] == ["response.created", "response.in_progress", "response.completed"]


def test_stream_cut_by_max_output_tokens() -> None:
    st = ra.ResponsesStream("m", 1, ECHO)
    evs = events(b"".join(st.feed(f) for f in chat_frames(Script(content="a b c", finish="length"))) + st.close())
    assert evs[-1][0] == "response.incomplete"
    final = evs[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["content"][0]["text"] == "a b c"


def test_web_search_tool_becomes_web_search_options() -> None:
    """LiteLLM's bridge: a Responses web search tool is the chat request's ``web_search_options`` (its context size,
    its flat user location as chat's ``approximate``), the other tools kept."""
    fn = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    out = ra.to_chat({"model": "m", "input": "news?", "tools": [fn, {
        "type": "web_search_preview", "search_context_size": "high",
        "user_location": {"type": "approximate", "city": "Oslo", "country": "NO", "other": 1}}]}, "m")
    assert out["web_search_options"] == {"search_context_size": "high", "user_location": {
        "type": "approximate", "approximate": {"city": "Oslo", "country": "NO"}}}
    assert [t["function"]["name"] for t in out["tools"]] == ["f"]
    only = ra.to_chat({"model": "m", "input": "news?", "tools": [{"type": "web_search"}]}, "m")
    assert only["web_search_options"] == {} and "tools" not in only
