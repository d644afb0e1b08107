"""End to end: Google's ``google-genai`` SDK against a real Granian process (``frontends.google``): its
``generate_content``, ``generate_content_stream`` and ``count_tokens`` reach an OpenAI-compatible deployment (the
local upstream of ``tests.responses.conftest``) translated to chat, and come back as Gemini's answers — text,
thoughts, function calls and their responses, usage — priced as any request; refusals are Google's errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from bench.procs import MockHandle, start_mock
from tests.conftest import GatewayProc, start_gateway
from tests.responses.conftest import MASTER, Script, Upstream, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Upstream]]:
    with serve() as up, start_mock(name="genai") as mock:
        cfg = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: hosted_vllm/up-model, api_key: k, api_base: "{up.url}"}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: flash
    litellm_params: {{model: gemini/gemini-2.0-flash, api_key: sk-gemini-up, api_base: "{mock.url}"}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(cfg) as gw:
            STACK["mock"] = mock
            yield gw, up


STACK: dict[str, MockHandle] = {}


def _client(gw: GatewayProc, key: str = MASTER) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url, timeout=30_000))


def test_generate_content(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    up.script = Script(content="Paris is sunny", reasoning="thinking it over")
    client = _client(gw)  # held: the SDK closes its HTTP client with the Client object
    r = client.models.generate_content(
        model="chat", contents="weather in Paris?",
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.3, max_output_tokens=50,
                                           stop_sequences=["END"]))
    assert r.text == "Paris is sunny"
    (cand,) = r.candidates or []
    assert cand.finish_reason == types.FinishReason.STOP
    assert [p.thought for p in cand.content.parts or []] == [True, None]
    um = r.usage_metadata
    assert um is not None and (um.prompt_token_count, um.candidates_token_count, um.thoughts_token_count,
                               um.cached_content_token_count, um.total_token_count) == (11, 5, 2, 3, 18)
    sent = up.bodies("/chat/completions")[-1]
    assert sent["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "weather in Paris?"}]
    assert (sent["model"], sent["temperature"], sent["max_tokens"], sent["stop"]) == ("up-model", 0.3, 50, ["END"])
    raw = httpx.post(gw.url + "/v1beta/models/chat:generateContent", headers={"x-goog-api-key": MASTER},
                     json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert raw.status_code == 200 and float(raw.headers["x-litellm-response-cost"]) > 0
    assert raw.json()["modelVersion"] == "chat"


def test_stream(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    up.script = Script(content="one two three")
    client = _client(gw)
    chunks = list(client.models.generate_content_stream(model="models/chat", contents="count"))
    assert "".join(c.text or "" for c in chunks) == "one two three"
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.prompt_token_count == 11
    assert up.bodies("/chat/completions")[-1]["stream"] is True


def test_function_calling_round_trip(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    client = _client(gw)
    weather = types.FunctionDeclaration(name="get_weather", description="The weather of a city",
                                        parameters=types.Schema(type=types.Type.OBJECT, properties={
                                            "city": types.Schema(type=types.Type.STRING)}, required=["city"]))
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])],
                                      tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                                          mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"])))
    up.script = Script(content="", tool_calls=[("call_w1", "get_weather", '{"city":"Paris"}')], finish="tool_calls")
    first = client.models.generate_content(model="chat", contents="weather in Paris?", config=cfg)
    (call,) = first.function_calls or []
    assert (call.name, call.args, call.id) == ("get_weather", {"city": "Paris"}, "call_w1")
    sent = up.bodies("/chat/completions")[-1]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    up.script = Script(content="It is 20C in Paris")
    contents = [types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
                types.Content(role="model", parts=[types.Part(function_call=call)]),
                types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
                    name="get_weather", response={"temp": "20C"}))])]
    second = client.models.generate_content(model="chat", contents=contents, config=cfg)
    assert second.text == "It is 20C in Paris"
    msgs = up.bodies("/chat/completions")[-1]["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == "call_w1" and msgs[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp":"20C"}'}


def test_count_tokens_and_refusals(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    client = _client(gw)
    seen = len(up.seen)
    n = client.models.count_tokens(model="chat", contents="hello there, how are you today?").total_tokens
    assert n is not None and 3 < n < 40 and len(up.seen) == seen  # the gateway's estimate, nothing sent
    with pytest.raises(genai_errors.ClientError) as ei:
        client.models.generate_content(model="nope", contents="hi")
    assert ei.value.code == 400 and ei.value.status == "INVALID_ARGUMENT"
    stranger = _client(gw, "sk-wrong")
    with pytest.raises(genai_errors.ClientError) as ei:
        stranger.models.generate_content(model="chat", contents="hi")
    assert ei.value.code == 401
    bad = httpx.post(gw.url + "/v1beta/models/chat:generateContent", headers={"x-goog-api-key": MASTER},
                     json={"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png",
                                                                                   "data": "%%%"}}]}]})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_deployments_get_the_request_natively(stack: tuple[GatewayProc, Upstream]) -> None:
    """A ``gemini/`` deployment is sent the client's own request at its ``:generateContent`` (as LiteLLM passes
    it) and its answer comes back as Google sent it; usage still prices the request."""
    gw, _up = stack
    mock = STACK["mock"]
    before = mock.stats()
    client = _client(gw)
    r = client.models.generate_content(model="flash", contents="hello from the sdk")
    assert r.text and r.usage_metadata is not None and (r.usage_metadata.prompt_token_count or 0) > 0
    chunks = list(client.models.generate_content_stream(model="flash", contents="stream please"))
    assert "".join(c.text or "" for c in chunks) and chunks[-1].usage_metadata is not None
    n = client.models.count_tokens(model="flash", contents="count me").total_tokens
    assert n is not None and n > 0
    after = mock.stats()
    grew = {k: v for k, v in after.get("by_path", {}).items() if v != before.get("by_path", {}).get(k)}
    assert any(":generateContent" in k for k in grew) and any(":streamGenerateContent" in k for k in grew), grew
    raw = httpx.post(gw.url + "/v1beta/models/flash:generateContent", headers={"x-goog-api-key": MASTER},
                     json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert raw.status_code == 200 and float(raw.headers["x-litellm-response-cost"]) > 0
    assert "usageMetadata" in raw.json() and raw.headers["x-litellm-model-api-base"].startswith(mock.url)
