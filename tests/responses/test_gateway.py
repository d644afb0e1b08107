"""``/v1/responses`` through the gateway in-process, against a real local HTTP upstream: translated to chat
(unary, stream, a stream cut mid-way), natively to an ``openai/`` deployment's /responses, every refusal in
OpenAI's error shape, and usage and cost recorded like chat."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate.sinks import CompletionRecord
from tests.asgi.conftest import Reply, call
from tests.responses.conftest import AUTH, Script, Upstream, gateway
from tests.responses.test_translate import events


def ask(up: Upstream, body: dict[str, Any] | bytes, path: str = "/v1/responses",
        records: list[CompletionRecord] | None = None) -> Reply:
    async def go() -> Reply:
        async with gateway(up) as gw:
            q = gw.pipeline.completions
            put = q.put

            def keep(r: CompletionRecord) -> None:
                if records is not None:
                    records.append(r)
                put(r)

            q.put = keep  # type: ignore[method-assign]
            return await call(gw, "POST", path, body, AUTH)

    return asyncio.run(go())


def test_unary_translated(upstream: Upstream) -> None:
    upstream.script = Script(content="Paris is sunny")
    recs: list[CompletionRecord] = []
    r = ask(upstream, {"model": "chat", "input": "weather?", "instructions": "be brief", "max_output_tokens": 30,
                       "metadata": {"trace": "t1"}, "store": True}, records=recs)
    assert r.status == 200, r.body
    body = r.json()
    assert body["object"] == "response" and body["model"] == "chat" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "Paris is sunny"
    assert body["usage"]["input_tokens"] == 11 and body["usage"]["output_tokens"] == 7
    assert body["store"] is False and body["metadata"] == {"trace": "t1"} and body["instructions"] == "be brief"
    sent = upstream.bodies("/chat/completions")[-1]
    assert sent["model"] == "up-model" and sent["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"}]
    assert sent["max_completion_tokens"] == 30 and "metadata" not in sent and "store" not in sent
    assert float(r.headers["x-litellm-response-cost"]) > 0
    (rec,) = recs
    assert rec.route == "responses" and rec.status == 200
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cache_read_tokens) == (11, 7, 3)


def test_other_path_and_tools(upstream: Upstream) -> None:
    upstream.script = Script(content="", tool_calls=[("call_1", "get_weather", '{"city":"Paris"}')],
                             finish="tool_calls")
    r = ask(upstream, {"model": "chat", "input": "weather?", "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}, path="/responses")
    assert r.status == 200, r.body
    (fc,) = r.json()["output"]
    assert fc["type"] == "function_call" and fc["name"] == "get_weather" and fc["arguments"] == '{"city":"Paris"}'
    assert upstream.bodies("/chat/completions")[-1]["tools"][0]["function"]["name"] == "get_weather"


def test_stream_translated(upstream: Upstream) -> None:
    upstream.script = Script(content="one two three", tool_calls=[("call_x", "f", '{"k": "v"}')])
    recs: list[CompletionRecord] = []
    r = ask(upstream, {"model": "chat", "input": "count", "stream": True}, records=recs)
    assert r.status == 200 and r.headers["content-type"] == "text/event-stream"
    evs = events(r.body)
    assert [e["sequence_number"] for _, e in evs] == list(range(len(evs)))
    assert evs[0][0] == "response.created" and evs[-1][0] == "response.completed"
    assert "".join(e["delta"] for k, e in evs if k == "response.output_text.delta") == "one two three"
    final = evs[-1][1]["response"]
    assert final["model"] == "chat" and final["output"][1]["arguments"] == '{"k": "v"}'
    assert final["usage"]["total_tokens"] == 18
    sent = upstream.bodies("/chat/completions")[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    (rec,) = recs
    assert rec.route == "responses" and rec.stream and (rec.prompt_tokens, rec.completion_tokens) == (11, 7)


def test_stream_cut_midway(upstream: Upstream) -> None:
    upstream.script = Script(content="alpha beta gamma delta", cut=True)
    recs: list[CompletionRecord] = []
    r = ask(upstream, {"model": "chat", "input": "x", "stream": True}, records=recs)
    evs = events(r.body)
    assert [e["sequence_number"] for _, e in evs] == list(range(len(evs)))
    assert evs[-1][0] == "response.failed" and evs[-1][1]["response"]["status"] == "failed"
    assert "response.output_text.delta" in [k for k, _ in evs]
    assert recs[0].status == 599


def test_native_openai(upstream: Upstream) -> None:
    tools = [{"type": "web_search"}]
    r = ask(upstream, {"model": "native", "input": "hi", "tools": tools, "metadata": {"tags": ["a"]},
                       "store": True})
    assert r.status == 200, r.body
    body = r.json()
    assert body["output"][0]["content"][0]["text"] == "native says hi" and body["model"] == "native"
    sent = upstream.bodies("/v1/responses")[-1]
    assert sent["model"] == "gpt-native-upstream" and sent["tools"] == tools and sent["store"] is False
    assert "metadata" not in sent  # LiteLLM's metadata (not all strings) is the gateway's own
    assert not upstream.bodies("/chat/completions")
    r = ask(upstream, {"model": "native", "input": "hi", "stream": True})
    evs = events(r.body)
    assert evs[-1][0] == "response.completed" and [e["sequence_number"] for _, e in evs] == list(range(6))
    assert evs[-1][1]["response"]["model"] == "native"


def test_native_azure(upstream: Upstream) -> None:
    r = ask(upstream, {"model": "az", "input": "hi"})
    assert r.status == 200, r.body
    assert r.json()["output"][0]["content"][0]["text"] == "native says hi" and r.json()["model"] == "az"
    path, headers = upstream.requests[-1]
    assert path == "/openai/responses?api-version=2025-04-01-preview" and headers["api-key"] == "az-key"
    assert upstream.bodies("/responses")[-1]["model"] == "my-deploy"


def test_native_stream_cut_midway(upstream: Upstream) -> None:
    upstream.script = Script(cut=True)
    recs: list[CompletionRecord] = []
    r = ask(upstream, {"model": "native", "input": "hi", "stream": True}, records=recs)
    evs = events(r.body)
    assert [k for k, _ in evs] == ["response.created", "response.output_item.added", "response.content_part.added",
                                   "error"]
    assert [e["sequence_number"] for _, e in evs] == [0, 1, 2, 3]
    assert evs[-1][1]["code"] == "server_error" and evs[-1][1]["message"]
    assert recs[0].status == 599


def test_mock_response_is_translated(upstream: Upstream) -> None:
    r = ask(upstream, {"model": "native", "input": "hi", "mock_response": "mocked answer"})
    assert r.status == 200, r.body
    assert r.json()["output"][0]["content"][0]["text"] == "mocked answer"
    assert not upstream.seen


@pytest.mark.parametrize(("body", "status", "param", "words"), [
    (b"[1, 2]", 400, None, "JSON object"),
    (b"{nope", 400, None, "Invalid JSON"),
    ({"input": "x"}, 400, "model", "model"),
    ({"model": "chat", "input": "x", "previous_response_id": "resp_1"}, 400, "previous_response_id",
     "conversation state"),
    ({"model": "chat", "input": [{"type": "local_shell_call_output", "call_id": "c"}]}, 400, "input",
     "local_shell_call_output"),
    ({"model": "chat", "input": "x", "tools": [{"type": "code_interpreter"}]}, 400, "tools", "code_interpreter"),
    ({"model": "chat", "input": "x", "tools": [{"type": "file_search"}], "stream": True}, 400, "tools",
     "file_search"),
    ({"model": "nope", "input": "x"}, 400, None, "nope"),
])
def test_errors_in_openai_shape(upstream: Upstream, body: Any, status: int, param: str | None,
                                words: str) -> None:
    r = ask(upstream, body)
    assert r.status == status, r.body
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param
    assert not upstream.bodies("/chat/completions")

