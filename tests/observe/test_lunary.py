"""LiteLLM's ``lunary`` callback: the run events Lunary's ingest endpoint receives, at a real HTTP server standing in
for it (checking the bearer key, the path and each event's shape), from hand-built records and through a real
``relaygate serve``."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.lunary import make_lunary, parse_messages, run_id
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, detail, with_detail

API_KEY = "0b9d6f3e-7c41-4c1a-9a55-5f3f2c8e1d20"
BOTH = ObserveSettings(success_callbacks=("lunary",), failure_callbacks=("lunary",))
EVENT_KEYS = {"event", "type", "name", "userId", "userProps", "tags", "threadTags", "runId", "parentRunId",
              "timestamp", "message", "input", "output", "error", "feedback", "runtime", "tokensUsage", "metadata",
              "params", "templateId", "appId", "threadMetadata"}


def _check(request: Request) -> int | None:
    """Lunary's rules: the ingest path, a bearer key, ``{"events": [...]}`` of events with a UUID run id."""
    if request.path != "/v1/runs/ingest":
        return 404
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return 401
    events = request.body.get("events") if isinstance(request.body, dict) else None
    if not isinstance(events, list) or not events:
        return 400
    for e in events:
        if set(e) != EVENT_KEYS or e["event"] not in ("start", "end", "error"):
            return 400
        uuid.UUID(e["runId"])
    return None


class Lunary(JsonReceiver):
    """``POST /v1/runs/ingest``, answered ``{"results": [...]}`` as Lunary answers."""

    def __init__(self) -> None:
        super().__init__(200, {"results": []}, check=_check)

    def events(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items("events", want, timeout)


@pytest.fixture
def lunary() -> Iterator[Lunary]:
    with Lunary() as r:
        yield r


def env_for(r: JsonReceiver, **extra: str) -> dict[str, str]:
    return {"LUNARY_PUBLIC_KEY": API_KEY, "LUNARY_API_URL": r.url, **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_lunary, records, env, settings, events, **{"max_attempts": 1, **options})


def sdk_run_id(value: str, key: str) -> str:
    """The lunary SDK's ``create_uuid_from_string(value + key)``, written as the SDK writes it."""
    return str(uuid.UUID(hashlib.sha256((value + key).encode()).hexdigest()[:32]))


def test_start_and_end_events_as_litellm_sends_them(lunary: Lunary) -> None:
    body = {**CHAT_IN, "user": "end-user-7", "response_format": {"type": "json_object"},
            "extra_headers": {"Template-Id": "tmpl-1"}}
    ok = with_detail(detail(input=body, metadata={"parent_run_id": "parent-1", "app": "x"}), call_id="ok-1")
    sink = send([ok], env_for(lunary))
    (path, headers, _), = lunary.posts
    assert path == "/v1/runs/ingest" and headers["authorization"] == f"Bearer {API_KEY}"
    start, end = lunary.events(2)
    rid = sdk_run_id("ok-1", API_KEY)
    assert start["event"] == "start" and start["type"] == "llm" and start["runId"] == rid == run_id("ok-1", API_KEY)
    assert start["parentRunId"] == sdk_run_id("parent-1", API_KEY)
    assert start["name"] == "gpt-4o" and start["userId"] == "end-user-7" and start["tags"] == ["t1", "t2"]
    assert start["timestamp"] == "2023-11-14T22:13:20+00:00" and start["runtime"] == "litellm"
    assert start["input"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert start["params"] == {"temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "stop": ["\n"], "seed": 7,
                               "response_format": {"type": "json_object"}}
    assert start["templateId"] == "tmpl-1"
    assert start["metadata"]["app"] == "x" and start["metadata"]["user_api_key_alias"] == "my-key"
    assert start["output"] is None and start["tokensUsage"] is None and start["appId"] is None
    assert end["event"] == "end" and end["runId"] == rid and end["timestamp"] == "2023-11-14T22:13:21.500000+00:00"
    assert end["output"] == {"role": "assistant", "content": "hello"}  # one choice: its message
    assert end["tokensUsage"] == {"completion": 5, "prompt": 10}
    assert end["input"] is None and end["parentRunId"] is None and end["error"] is None
    assert sink.sent == 1 and sink.requests == 1


def test_a_failure_is_an_error_event_and_a_flush_is_one_post(lunary: Lunary) -> None:
    records = [with_detail(detail(), call_id=f"c{i}") for i in range(5)]
    failed = with_detail(detail(output=None), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    send([*records, failed], env_for(lunary))
    assert len(lunary.posts) == 1
    events = lunary.events(12)
    assert [e["event"] for e in events] == ["start", "end"] * 5 + ["start", "error"]
    start, error = events[-2:]
    assert start["input"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert error["error"]["stack"] == "upstream exploded" and error["output"] is None and error["tokensUsage"] is None
    assert start["userId"] is None  # LiteLLM sends "default"


def test_embeddings_tools_and_text_completions() -> None:
    assert parse_messages(["one"]) == "one" and parse_messages(["a", "b"]) == ["a", "b"]
    assert parse_messages([[1, 2, 3]]) == [1, 2, 3]
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert parse_messages([{"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool"}]) == [
        {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "content": None}]
    assert parse_messages([{"index": 0, "text": "done", "finish_reason": "stop"}]) == {
        "role": "assistant", "content": "done"}


def test_embedding_run(lunary: Lunary) -> None:
    emb = with_detail(detail(input={"model": "e", "input": ["a", "b"]}, output={"data": [], "usage": {}}),
                      route="embeddings", completion_tokens=0)
    send([emb], env_for(lunary))
    start, end = lunary.events(2)
    assert start["type"] == end["type"] == "embed" and start["input"] == ["a", "b"] and end["output"] is None
    assert end["tokensUsage"] == {"completion": 0, "prompt": 10}


def test_no_messages_when_message_logging_is_off(lunary: Lunary) -> None:
    send([with_detail(detail())], env_for(lunary),
         ObserveSettings(success_callbacks=("lunary",), turn_off_message_logging=True,
                         redact_user_api_key_info=True))
    start, end = lunary.events(2)
    assert start["input"] == {"role": "user", "content": "redacted-by-litellm"}
    assert end["output"] == {"role": "assistant", "content": "redacted-by-litellm"}
    text = json.dumps([start, end])
    assert "hello" not in text and '"hi"' not in text and "be brief" not in text
    assert not any(k.startswith("user_api_key") for k in start["metadata"])
    lunary.posts.clear()
    send([with_detail(detail())], env_for(lunary),
         ObserveSettings(success_callbacks=("lunary",), callback_settings={"lunary": {"message_logging": False}}))
    assert "hello" not in json.dumps(lunary.events(2))


def test_key_order_and_url(lunary: Lunary) -> None:
    private = "private-key-1"
    lunary.check = lambda r: None if r.headers["authorization"] == f"Bearer {private}" else 401
    send([with_detail(detail())], {"LUNARY_PRIVATE_KEY": private, "LUNARY_PUBLIC_KEY": API_KEY,
                                   "LUNARY_API_URL": lunary.url + "/"})
    assert [p for p, _, _ in lunary.posts] == ["/v1/runs/ingest"]
    assert lunary.events(2)[0]["runId"] == sdk_run_id("call-1", private)
    sink = make_lunary(BOTH, {"LUNARY_APP_ID": "app-1"}, None)
    assert sink.url == "https://api.lunary.ai/v1/runs/ingest" and sink.headers["Authorization"] == "Bearer app-1"
    sink.discard()


def test_failures_are_counted_and_never_raise(lunary: Lunary) -> None:
    lunary.status = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(3)], env_for(lunary), events=events,
                max_attempts=2, backoff=0.01)
    assert sink.dropped == 3 and sink.sent == 0 and len(lunary.posts) == 2
    assert ("lunary_send_failed", 1) in events and ("lunary_dropped", 3) in events
    assert CALLBACK_FAILURES["lunary_dropped"] == "lunary" == CALLBACK_FAILURES["lunary_send_failed"]


def test_failure_callback_only(lunary: Lunary) -> None:
    send([with_detail(detail(), call_id="ok"), with_detail(detail(), call_id="bad", outcome=Outcome.ERROR,
                                                         status=429)],
         env_for(lunary), ObserveSettings(failure_callbacks=("lunary",)))
    assert [e["event"] for e in lunary.events(2)] == ["start", "error"]


@pytest.mark.parametrize(("env", "name"), [
    ({}, "LUNARY_PUBLIC_KEY"),
    ({"LUNARY_PUBLIC_KEY": "k\r\nX-Injected: 1"}, "LUNARY_PUBLIC_KEY"),
    ({"LUNARY_PRIVATE_KEY": "k\nx"}, "LUNARY_PRIVATE_KEY"),
    ({"LUNARY_PUBLIC_KEY": "k", "LUNARY_API_URL": "ftp://x"}, "LUNARY_API_URL"),
    ({"LUNARY_PUBLIC_KEY": "k", "LUNARY_API_URL": "https://h.example/?a=1"}, "LUNARY_API_URL"),
    ({"LUNARY_PUBLIC_KEY": "k", "DEFAULT_BATCH_SIZE": "many"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_lunary(BOTH, env, None)


GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["lunary", "prometheus"]
general_settings:
  master_key: sk-lu-master
"""
AUTH = {"Authorization": "Bearer sk-lu-master"}


@pytest.mark.e2e
def test_lunary_callback_through_the_gateway(lunary: Lunary) -> None:
    with start_gateway(GATEWAY, env={**env_for(lunary), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "m", "user": "u-9", "messages": [{"role": "user", "content": "hello lunary"}],
                             "metadata": {"parent_run_id": "p-1"}})
        assert r.status_code == 200, r.text
        r2 = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                        json={"model": "m", "messages": [{"role": "user", "content": "x"}],
                              "mock_response": "litellm.RateLimitError"})
        assert r2.status_code == 429, r2.text
        events = lunary.events(4)
        by = {(e["runId"], e["event"]): e for e in events}
        rid = sdk_run_id(r.headers["x-litellm-call-id"], API_KEY)
        start, end = by[(rid, "start")], by[(rid, "end")]
        assert start["input"] == {"role": "user", "content": "hello lunary"} and start["userId"] == "u-9"
        assert start["name"] == "echo" and start["parentRunId"] == sdk_run_id("p-1", API_KEY)
        assert end["output"]["content"] == r.json()["choices"][0]["message"]["content"]
        assert end["tokensUsage"]["prompt"] > 0
        assert (sdk_run_id(r2.headers["x-litellm-call-id"], API_KEY), "error") in by
        assert API_KEY not in gw.log()
