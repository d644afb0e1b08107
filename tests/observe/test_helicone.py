"""LiteLLM's ``helicone`` callback: the entries Helicone's async logging API receives, at a real HTTP server standing
in for it (checking the bearer key, the log path and the entry's shape), from hand-built records and through a real
``relaygate serve``."""

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
from relaygate.observe.helicone import entry_of, make_helicone, meta_of, route_of
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request, overlapping
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, T0, detail, with_detail

API_KEY = "sk-helicone-test-secret"
SUCCESS = ObserveSettings(success_callbacks=("helicone",))
PATHS = ("/oai/v1/log", "/anthropic/v1/log", "/custom/v1/log")
ENTRY_KEYS = {"providerRequest", "providerResponse", "timing"}


def _check(request: Request) -> int | None:
    """Helicone's rules: a known log path, the bearer key, one entry of the AsyncLogModel's shape per request."""
    if request.path not in PATHS:
        return 404
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return 401
    body = request.body
    if not isinstance(body, dict) or set(body) != ENTRY_KEYS or set(body["providerRequest"]) != {"url", "json", "meta"}:
        return 400
    if not all(isinstance(v, str) for v in body["providerRequest"]["meta"].values()):
        return 400  # Record<string, string>
    return None


class Helicone(JsonReceiver):
    def __init__(self) -> None:
        super().__init__(200, {"status": "success"}, check=_check)

    def entries(self, want: int, timeout: float = 15.0) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < want and time.monotonic() < deadline:
            time.sleep(0.02)
        return [(path, body) for path, _, body in list(self.posts)]


@pytest.fixture
def helicone() -> Iterator[Helicone]:
    with Helicone() as h:
        yield h


def env_for(h: Helicone, **extra: str) -> dict[str, str]:
    return {"HELICONE_API_KEY": API_KEY, "HELICONE_API_BASE": h.url + "/", **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = SUCCESS,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_helicone, records, env, settings, events, max_attempts=1, **options)


def test_an_entry_per_request_as_litellm_builds_it(helicone: Helicone) -> None:
    ok = with_detail(detail(metadata={"Helicone-Property-Hello": "World", "helicone-user-id": "u-7",
                                      "Helicone-Session-Id": 42, "Helicone-Cache-Enabled": True,
                                      "session_id": "not-helicone", "Helicone-Auth": "Bearer client-key",
                                      "Helicone-Property-Obj": {"x": 1}, "Helicone-Property-Bad": "a\r\nb",
                                      "Helicone Property": "space"}), call_id="ok-1")
    failed = with_detail(detail(), call_id="bad-1", status=500, outcome=Outcome.ERROR, error_type="internal")
    sink = send([ok, failed], env_for(helicone))
    ((path, body),) = helicone.entries(1)
    assert sink.sent == 1 and sink.dropped == 0
    assert path == "/oai/v1/log" and helicone.posts[0][1]["content-type"] == "application/json"
    request = body["providerRequest"]
    assert request["url"] == "https://api.openai.com/v1"
    assert request["json"] == {"model": "gpt-4o", "messages": CHAT_IN["messages"]}
    assert request["meta"] == {"Helicone-Auth": f"Bearer {API_KEY}", "Helicone-Property-Hello": "World",
                               "helicone-user-id": "u-7", "Helicone-Session-Id": "42",
                               "Helicone-Cache-Enabled": "true"}
    assert body["providerResponse"] == {"json": CHAT_OUT, "status": 200, "headers": {"openai-version": "2020-10-01"}}
    assert body["timing"] == {"startTime": {"seconds": int(T0), "milliseconds": 0},
                              "endTime": {"seconds": int(T0) + 1, "milliseconds": 500}}


def test_claude_goes_to_the_anthropic_log_as_an_anthropic_message(helicone: Helicone) -> None:
    answer = {"id": "chatcmpl-9", "model": "claude-3-5-sonnet", "usage": {"prompt_tokens": 12, "completion_tokens": 3},
              "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                  "role": "assistant", "content": "let me look",
                  "tool_calls": [{"id": "t1", "type": "function",
                                  "function": {"name": "find", "arguments": "{\"q\": \"x\"}"}}]}}]}
    claude = with_detail(detail(output=answer), provider="anthropic", upstream_model="claude-3-5-sonnet")
    vertex = with_detail(detail(), provider="vertex_ai", upstream_model="claude-3-5-sonnet@2024", call_id="v")
    gemini = with_detail(detail(), provider="gemini", upstream_model="gemini-2.0-flash", call_id="g")
    send([claude, vertex, gemini], env_for(helicone))
    by_path = dict(helicone.entries(3))
    body = by_path["/anthropic/v1/log"]
    assert body["providerRequest"]["url"] == "https://api.anthropic.com/v1/messages"
    assert body["providerResponse"]["json"] == {
        "id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet",
        "content": [{"type": "text", "text": "let me look"},
                    {"type": "tool_use", "id": "t1", "name": "find", "input": {"q": "x"}}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 3}}
    urls = sorted(b["providerRequest"]["url"] for p, b in helicone.entries(3) if p == "/custom/v1/log")
    assert urls == ["https://aiplatform.googleapis.com/v1", "https://generativelanguage.googleapis.com/v1beta"]


def test_routes_by_litellms_rules() -> None:
    assert route_of("gpt-4o", "openai") == ("/oai/v1/log", "https://api.openai.com/v1", False)
    assert route_of("o3-mini", "openai")[0] == "/oai/v1/log"  # sent as o3-mini (LiteLLM: gpt-3.5-turbo)
    assert route_of("anthropic.claude-3-haiku", "bedrock")[2] is True
    assert route_of("claude-3-haiku", "vertex_ai")[:2] == ("/custom/v1/log", "https://aiplatform.googleapis.com/v1")
    assert route_of("claude-3-haiku", "anthropic", "completions")[0] == "/oai/v1/log"
    assert meta_of("Bearer k", None) == {"Helicone-Auth": "Bearer k"}
    sink = make_helicone(SUCCESS, {"HELICONE_API_KEY": "k"}, None)
    sink.discard()
    assert sink.url == "https://api.hconeai.com/oai/v1/log" and sink.headers["Authorization"] == "Bearer k"


def test_embeddings_and_completions_and_other_apis() -> None:
    emb = with_detail(detail(input={"model": "e", "input": ["a", "b"]}, output={"data": [{"embedding": [0.1]}]}),
                      route="embeddings", upstream_model="text-embedding-3-small")
    path, _, body = entry_of(emb, auth="Bearer k")
    assert path == "/oai/v1/log" and body["providerRequest"]["json"]["messages"] == ["a", "b"]
    comp = with_detail(detail(input={"model": "x", "prompt": "say"}, output={"choices": [{"text": "hi"}]}),
                       route="completions")
    assert entry_of(comp, auth="Bearer k")[2]["providerRequest"]["json"]["messages"] == "say"
    sink = make_helicone(SUCCESS, {"HELICONE_API_KEY": "k"}, None)
    try:
        assert not sink.wants(with_detail(detail(), route="images"))
        assert not sink.wants(with_detail(detail(), route="messages"))
        assert sink.wants(emb) and not sink.wants(with_detail(detail(), outcome=Outcome.ERROR, status=500))
    finally:
        sink.discard()


@pytest.mark.parametrize("settings", [
    ObserveSettings(success_callbacks=("helicone",), turn_off_message_logging=True),
    ObserveSettings(success_callbacks=("helicone",), callback_settings={"helicone": {"message_logging": False}}),
])
def test_no_messages_when_message_logging_is_off(helicone: Helicone, settings: ObserveSettings) -> None:
    out = {**CHAT_OUT, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "hello", "reasoning_content": "secret thoughts",
        "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{\"hi\": 1}"}}]}}]}
    record = with_detail(detail(output=out))
    claude = with_detail(detail(output=out), provider="anthropic", upstream_model="claude-3-haiku", call_id="c")
    send([record, claude], env_for(helicone), settings)
    entries = helicone.entries(2)
    assert len(entries) == 2
    for _, body in entries:
        text = json.dumps(body)
        assert "hi" not in json.dumps(body["providerRequest"]["json"]["messages"])
        assert "hello" not in text and "secret thoughts" not in text and '\\"hi\\"' not in text
        assert "redacted-by-litellm" in text
    assert out["choices"][0]["message"]["content"] == "hello"  # the shared answer is left as it was


def test_a_redacted_request_is_left_out(helicone: Helicone) -> None:
    claude = with_detail(detail(input=None, output=None, redacted=True), provider="anthropic",
                         upstream_model="claude-3-haiku", call_id="c")
    send([with_detail(detail(input=None, output=None, redacted=True)), claude], env_for(helicone))
    by_path = dict(helicone.entries(2))
    body = by_path["/oai/v1/log"]
    assert body["providerRequest"]["json"]["messages"] == [{"role": "user", "content": "redacted-by-litellm"}]
    assert body["providerResponse"]["json"]["choices"] == [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "redacted-by-litellm"}}]
    assert body["providerResponse"]["json"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5,
                                                         "total_tokens": 15}
    assert by_path["/anthropic/v1/log"]["providerResponse"]["json"]["content"] == [
        {"type": "text", "text": "redacted-by-litellm"}]
    assert "hello" not in json.dumps(by_path)


def test_failures_are_counted_and_never_raise(helicone: Helicone) -> None:
    helicone.status = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(3)], env_for(helicone), events=events)
    assert sink.dropped == 3 and sink.sent == 0
    assert ("helicone_send_failed", 1) in events and sum(n for e, n in events if e == "helicone_dropped") == 3
    assert CALLBACK_FAILURES["helicone_dropped"] == "helicone" == CALLBACK_FAILURES["helicone_send_failed"]


def test_one_request_per_entry_at_bounded_concurrency(helicone: Helicone) -> None:
    helicone.check, most = overlapping(_check)
    records = [with_detail(detail(), call_id=f"c{i}") for i in range(40)]
    sink = send(records, env_for(helicone), concurrency=4)
    assert sink.sent == 40 and sink.requests == 40 and len(helicone.entries(40)) == 40
    assert {body["providerResponse"]["json"]["id"] for _, body in helicone.entries(40)} == {"chatcmpl-123"}
    assert 1 <= most[0] <= 4


def test_failure_callback_alone_sends_nothing(helicone: Helicone) -> None:
    send([with_detail(detail()), with_detail(detail(), outcome=Outcome.ERROR, status=500)], env_for(helicone),
         ObserveSettings(failure_callbacks=("helicone",)))
    assert helicone.posts == []


@pytest.mark.parametrize(("env", "name"), [
    ({}, "HELICONE_API_KEY"),
    ({"HELICONE_API_KEY": "k\r\nX-Injected: 1"}, "HELICONE_API_KEY"),
    ({"HELICONE_API_KEY": "k", "HELICONE_API_BASE": "ftp://x"}, "HELICONE_API_BASE"),
    ({"HELICONE_API_KEY": "k", "HELICONE_API_BASE": "https://h.example/?a=1"}, "HELICONE_API_BASE"),
    ({"HELICONE_API_KEY": "k", "DEFAULT_BATCH_SIZE": "many"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_helicone(SUCCESS, env, None)


@pytest.mark.e2e
def test_helicone_callback_through_the_gateway(helicone: Helicone) -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
  - model_name: c
    litellm_params: {model: mock/claude-3-haiku, mock_response: "claude says hi"}
litellm_settings:
  success_callback: ["helicone"]
general_settings:
  master_key: sk-hc-master
"""
    with start_gateway(config, env={**env_for(helicone), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw:
        auth = {"Authorization": "Bearer sk-hc-master"}
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=auth, timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hello helicone"}],
                             "metadata": {"Helicone-Property-App": "e2e"}})
        assert r.status_code == 200, r.text
        r2 = httpx.post(f"{gw.url}/v1/chat/completions", headers=auth, timeout=10,
                        json={"model": "c", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        assert r2.status_code == 200, r2.text
        by_path = dict(helicone.entries(2))
        body = by_path["/oai/v1/log"]
        assert body["providerRequest"]["json"] == {"model": "echo",
                                                   "messages": [{"role": "user", "content": "hello helicone"}]}
        assert body["providerRequest"]["meta"]["Helicone-Property-App"] == "e2e"
        assert body["providerResponse"]["json"]["id"] == r.json()["id"]
        claude = by_path["/anthropic/v1/log"]["providerResponse"]["json"]
        assert claude["type"] == "message" and claude["content"] == [{"type": "text", "text": "claude says hi"}]
        assert claude["stop_reason"] == "end_turn"
        assert all(h["authorization"] == f"Bearer {API_KEY}" for _, h, _ in helicone.posts)
        assert API_KEY not in gw.log()
