"""``POST /v1/responses/input_tokens`` (``frontends.responses_count``) in-process against the real local upstream:
an ``openai/`` or ``azure/`` deployment is asked at its own ``/responses/input_tokens`` with only the fields that
endpoint takes, a translated one is estimated, an upstream refusal of the request is passed on and any other
failure estimated over, LiteLLM's 400s for a missing model or input, nothing charged."""

from __future__ import annotations

from typing import Any

from relaygate.sinks import CompletionRecord
from tests.asgi.conftest import Reply
from tests.responses.conftest import Upstream
from tests.responses.test_gateway import ask

TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather of a city, today and tomorrow",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def count(up: Upstream, body: dict[str, Any] | bytes, path: str = "/v1/responses/input_tokens",
          records: list[CompletionRecord] | None = None) -> Reply:
    return ask(up, body, path, records)


def test_native_deployments_count_upstream(upstream: Upstream) -> None:
    recs: list[CompletionRecord] = []
    r = count(upstream, {"model": "native", "input": "hello", "instructions": "be brief", "tools": TOOLS,
                         "stream": True, "store": True, "background": True, "metadata": {"a": "b"},
                         "max_output_tokens": 10, "temperature": 0.2}, records=recs)
    assert r.status == 200, r.body
    assert r.json() == {"object": "response.input_tokens", "input_tokens": 42, "litellm_count_source": "provider"}
    (sent,) = upstream.bodies("/responses/input_tokens")
    assert sent == {"model": "gpt-native-upstream", "input": "hello", "instructions": "be brief", "tools": TOOLS}
    assert not upstream.bodies("/responses") and not upstream.bodies("/chat/completions")  # nothing generated
    (rec,) = recs
    assert rec.route == "responses_input_tokens" and rec.status == 200
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cost) == (0, 0, 0.0)
    for path in ("/responses/input_tokens", "/openai/v1/responses/input_tokens"):  # LiteLLM's other paths
        r = count(upstream, {"model": "native", "input": "hello"}, path)
        assert r.status == 200 and r.json()["input_tokens"] == 42, (path, r.body)


def test_azure_counts_at_its_own_url(upstream: Upstream) -> None:
    r = count(upstream, {"model": "az", "input": [{"role": "user", "content": "hello"}]})
    assert r.status == 200 and r.json()["litellm_count_source"] == "provider", r.body
    path, headers = upstream.requests[-1]
    assert path == "/openai/responses/input_tokens?api-version=2025-04-01-preview"
    assert headers["api-key"] == "az-key" and "authorization" not in headers
    assert upstream.bodies("/responses/input_tokens")[-1]["model"] == "my-deploy"


def test_translated_deployments_are_estimated(upstream: Upstream) -> None:
    bare = count(upstream, {"model": "chat", "input": "What is the weather in Paris today?"})
    assert bare.status == 200, bare.body
    out = bare.json()
    assert out["object"] == "response.input_tokens" and out["litellm_count_source"] == "local_estimate"
    assert 5 <= out["input_tokens"] <= 40
    tooled = count(upstream, {"model": "chat", "input": "What is the weather in Paris today?", "tools": TOOLS})
    assert tooled.json()["input_tokens"] > out["input_tokens"] + 10
    longer = count(upstream, {"model": "chat", "input": "What is the weather in Paris today? " * 20,
                              "instructions": "Answer in French."})
    assert longer.json()["input_tokens"] > 10 * out["input_tokens"]
    # a built-in tool only a native deployment serves: still counted, over the request's JSON
    web = count(upstream, {"model": "chat", "input": "news?", "tools": [{"type": "web_search"}]})
    assert web.status == 200 and web.json()["input_tokens"] >= 1, web.body
    assert not upstream.seen  # no upstream was asked


def test_upstream_refusal_passed_on_failure_estimated(upstream: Upstream) -> None:
    refused = count(upstream, {"model": "native", "input": "refuse me"})
    assert refused.status == 400, refused.body
    assert refused.json()["error"]["message"].endswith("Invalid input")
    down = count(upstream, {"model": "native", "input": "fail me"})
    assert down.status == 200, down.body
    assert down.json()["litellm_count_source"] == "local_estimate" and down.json()["input_tokens"] >= 1


def test_litellm_refusals(upstream: Upstream) -> None:
    for body, param, words in (
            ({"input": "hi"}, "model", "Missing required parameter: 'model'."),
            ({"model": "native"}, "input", "Missing required parameter: 'input'."),
            ({"model": "native", "input": ""}, None, 'One of "input" or "previous_response_id"'),
            ({"model": "native", "input": []}, None, 'One of "input" or "previous_response_id"'),
            ({"model": "nope", "input": "hi"}, "model", "nope"),
            ({"model": "native", "input": "hi", "previous_response_id": "resp_x"}, "previous_response_id", "")):
        r = count(upstream, body)
        assert r.status == 400, (body, r.body)
        err = r.json()["error"]
        assert words in err["message"] and (param is None or err["param"] == param), (body, err)
    assert count(upstream, b"{not json").status == 400
    assert count(upstream, b"[1]").status == 400
    assert not upstream.seen
