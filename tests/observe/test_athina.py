"""LiteLLM's ``athina`` callback: the inferences Athina's log API receives, at a real HTTP server standing in for
it (checking the ``athina-api-key`` header, the log path and the inference's shape), from hand-built records and
through a real ``relaygate serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.athina import METADATA_FIELDS, inference_of, make_athina
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request, overlapping
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, detail, with_detail

API_KEY = "athina-test-secret-key"
SUCCESS = ObserveSettings(success_callbacks=("athina",))
PATH = "/api/v1/log/inference"
REQUIRED = {"language_model_id", "request", "response", "prompt", "prompt_tokens", "completion_tokens",
            "total_tokens", "response_time"}


def _check(request: Request) -> int | None:
    """Athina's rules: the log path, the API key header, one inference with its model, prompt and response."""
    if request.path != PATH:
        return 404
    if request.headers.get("athina-api-key") != API_KEY:
        return 401
    body = request.body
    if not isinstance(body, dict) or not REQUIRED <= set(body) or not isinstance(body["language_model_id"], str):
        return 400
    return None


class Athina(JsonReceiver):
    def __init__(self) -> None:
        super().__init__(200, {"status": "success", "prompt_run_id": "run-1"}, check=_check)

    def inferences(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < want and time.monotonic() < deadline:
            time.sleep(0.02)
        return [body for _, _, body in list(self.posts)]


@pytest.fixture
def athina() -> Iterator[Athina]:
    with Athina() as a:
        yield a


def env_for(a: Athina, **extra: str) -> dict[str, str]:
    return {"ATHINA_API_KEY": API_KEY, "ATHINA_BASE_URL": a.url + "/", **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = SUCCESS,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_athina, records, env, settings, events, max_attempts=1, **options)


def test_an_inference_per_request_as_litellm_builds_it(athina: Athina) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    metadata = {name: f"v-{name}" for name in METADATA_FIELDS if name != "tags"}
    metadata.update({"context": {"docs": ["a"]}, "custom_attributes": {"x": 1}, "not_athinas": "left out"})
    ok = with_detail(detail(input={**CHAT_IN, "tools": tools, "user": "end-user-1", "metadata": {"k": "v"}},
                            metadata=metadata), call_id="ok-1")
    failed = with_detail(detail(), call_id="bad-1", status=500, outcome=Outcome.ERROR, error_type="internal")
    sink = send([ok, failed], env_for(athina))
    (body,) = athina.inferences(1)
    assert sink.sent == 1 and sink.dropped == 0 and len(athina.posts) == 1
    headers = athina.posts[0][1]
    assert headers["content-type"] == "application/json" and headers["athina-api-key"] == API_KEY
    params = {"temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "stop": ["\n"], "seed": 7, "tools": tools}
    assert body == {
        "language_model_id": "gpt-4o",
        "request": {"model": "gpt-4o", "messages": CHAT_IN["messages"], "optional_params": params,
                    "stream": False, "user": "end-user-1", "call_type": "acompletion", "litellm_call_id": "ok-1",
                    "response_cost": 0.00025, "cache_hit": False},
        "response": CHAT_OUT, "prompt": CHAT_IN["messages"],
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "response_time": 1500,
        "tools": tools, **{k: v for k, v in metadata.items() if k != "not_athinas"}, "tags": ["t1", "t2"],
    }


def test_metadata_fields_only_when_present_and_tags_from_metadata() -> None:
    bare = inference_of(with_detail(detail(metadata={}, tags=[])))
    assert not set(METADATA_FIELDS) & set(bare)
    tagged = inference_of(with_detail(detail(metadata={"tags": ["from-meta"], "session_id": "s"}, tags=[])))
    assert tagged["tags"] == ["from-meta"] and tagged["session_id"] == "s"
    emb = inference_of(with_detail(detail(input={"model": "e", "input": ["a", "b"]},
                                          output={"object": "list", "data": [{"embedding": [0.1]}]}),
                                   route="embeddings", upstream_model="text-embedding-3-small", completion_tokens=0))
    assert emb["prompt"] == ["a", "b"] and emb["request"]["call_type"] == "aembedding"
    assert emb["language_model_id"] == "text-embedding-3-small" and emb["total_tokens"] == 10
    comp = inference_of(with_detail(detail(input={"model": "x", "prompt": "say", "functions": [{"name": "g"}]},
                                           output={"choices": [{"text": "hi"}]}), route="completions", stream=True))
    assert comp["prompt"] == "say" and comp["functions"] == [{"name": "g"}] and comp["request"]["stream"] is True


@pytest.mark.parametrize("settings", [
    ObserveSettings(success_callbacks=("athina",), turn_off_message_logging=True),
    ObserveSettings(success_callbacks=("athina",), callback_settings={"athina": {"message_logging": False}}),
])
def test_no_messages_when_message_logging_is_off(athina: Athina, settings: ObserveSettings) -> None:
    out = {**CHAT_OUT, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "hello", "reasoning_content": "secret thoughts",
        "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{\"hi\": 1}"}}]}}]}
    send([with_detail(detail(output=out))], env_for(athina), settings)
    (body,) = athina.inferences(1)
    stand_in = [{"role": "user", "content": "redacted-by-litellm"}]
    assert body["prompt"] == stand_in == body["request"]["messages"]
    text = json.dumps(body)
    assert "be brief" not in text and "hello" not in text and "secret thoughts" not in text
    assert body["response"]["choices"][0]["message"]["content"] == "redacted-by-litellm"
    assert out["choices"][0]["message"]["content"] == "hello"  # the shared answer is left as it was


def test_a_redacted_request_is_left_out(athina: Athina) -> None:
    send([with_detail(detail(input=None, output=None, redacted=True))], env_for(athina))
    (body,) = athina.inferences(1)
    assert body["prompt"] == [{"role": "user", "content": "redacted-by-litellm"}]
    assert body["response"]["choices"] == [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "redacted-by-litellm"}}]
    assert body["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert body["request"]["optional_params"] == {} and "hi" not in json.dumps(body["prompt"])


def test_nothing_of_the_key_or_the_gateway_is_sent(athina: Athina) -> None:
    send([with_detail(detail(), key_alias="secret-alias", key_metadata={"logging": [{"x": "y"}]})], env_for(athina))
    text = json.dumps(athina.inferences(1))
    assert "ab" * 32 not in text and "secret-alias" not in text and "api_key" not in text


def test_failures_are_counted_and_never_raise(athina: Athina) -> None:
    athina.status = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(3)], env_for(athina), events=events)
    assert sink.dropped == 3 and sink.sent == 0 and len(athina.posts) == 3
    assert ("athina_send_failed", 1) in events and sum(n for e, n in events if e == "athina_dropped") == 3
    assert CALLBACK_FAILURES["athina_dropped"] == "athina" == CALLBACK_FAILURES["athina_send_failed"]


def test_one_request_per_inference_at_bounded_concurrency(athina: Athina) -> None:
    athina.check, most = overlapping(_check)
    sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(30)], env_for(athina), concurrency=3)
    assert sink.sent == 30 and sink.requests == 30
    assert sorted(b["request"]["litellm_call_id"] for b in athina.inferences(30)) == sorted(f"c{i}" for i in range(30))
    assert 1 <= most[0] <= 3


def test_failure_callback_alone_sends_nothing(athina: Athina) -> None:
    send([with_detail(detail()), with_detail(detail(), outcome=Outcome.ERROR, status=500)], env_for(athina),
         ObserveSettings(failure_callbacks=("athina",)))
    assert athina.posts == []


def test_default_endpoint_and_headers() -> None:
    sink = make_athina(SUCCESS, {"ATHINA_API_KEY": "k"}, None)
    sink.discard()
    assert sink.url == "https://log.athina.ai/api/v1/log/inference" and sink.name == "athina"
    assert sink.headers == {"athina-api-key": "k", "Content-Type": "application/json"}
    sink = make_athina(SUCCESS, {"ATHINA_API_KEY": "k", "ATHINA_BASE_URL": "https://proxy.example/athina/"}, None)
    sink.discard()
    assert sink.url == "https://proxy.example/athina/api/v1/log/inference"


@pytest.mark.parametrize(("env", "name"), [
    ({}, "ATHINA_API_KEY"),
    ({"ATHINA_API_KEY": "  "}, "ATHINA_API_KEY"),
    ({"ATHINA_API_KEY": "k\r\nX-Injected: 1"}, "ATHINA_API_KEY"),
    ({"ATHINA_API_KEY": "k", "ATHINA_BASE_URL": "ftp://x"}, "ATHINA_BASE_URL"),
    ({"ATHINA_API_KEY": "k", "ATHINA_BASE_URL": "https://h.example/?a=1"}, "ATHINA_BASE_URL"),
    ({"ATHINA_API_KEY": "k", "DEFAULT_BATCH_SIZE": "many"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_athina(SUCCESS, env, None)


GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["athina", "prometheus"]
general_settings:
  master_key: sk-at-master
"""
AUTH = {"Authorization": "Bearer sk-at-master"}


@pytest.mark.e2e
def test_athina_callback_through_the_gateway(athina: Athina) -> None:
    with start_gateway(GATEWAY, env={**env_for(athina), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hello athina"}],
                             "metadata": {"environment": "e2e", "session_id": "s-1"}, "tags": ["gw"]})
        assert r.status_code == 200, r.text
        r2 = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                        json={"model": "m", "messages": [{"role": "user", "content": "streamed"}], "stream": True})
        assert r2.status_code == 200, r2.text
        bodies = {b["request"]["litellm_call_id"]: b for b in athina.inferences(2)}
        body = bodies[r.headers["x-litellm-call-id"]]
        assert body["language_model_id"] == "echo" and body["prompt"] == [{"role": "user", "content": "hello athina"}]
        assert body["response"]["id"] == r.json()["id"] and body["total_tokens"] > 0
        assert body["environment"] == "e2e" and body["session_id"] == "s-1" and "gw" in body["tags"]
        streamed = bodies[r2.headers["x-litellm-call-id"]]
        assert streamed["request"]["stream"] is True
        assert streamed["response"]["choices"][0]["message"]["content"] == "streamed"
        assert all(h["athina-api-key"] == API_KEY for _, h, _ in athina.posts)
        assert API_KEY not in gw.log()
