"""LiteLLM's ``datadog_llm_observability`` callback: the spans Datadog's LLM Observability intake receives, at a
real HTTP server standing in for it (checking the ``DD-API-KEY`` header and decoding the body), from hand-built
records, against LiteLLM's own span builder run on the same payload, and through a real ``relaygate serve``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.datadog_llm_obs import INTAKE_PATH, NAME, make_datadog_llm_obs, normalize_tag
from relaygate.observe.standard import REDACTED, standard_payload
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, SERVER, T0, TRACE, detail, record, with_detail

API_KEY = "dd-api-key-test-secret-0123456789"
BOTH = ObserveSettings(success_callbacks=(NAME,), failure_callbacks=(NAME,))

TOOL_IN = {"model": "gpt-4o-alias", "tools": [
    {"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "weather "}, {"type": "text", "text": "in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 degrees"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
TOOL_OUT = {"id": "chatcmpl-9", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "reasoning_content": "think",
                "tool_calls": [{"id": "call_2", "type": "function",
                                "function": {"name": "get_weather", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52,
                      "completion_tokens_details": {"reasoning_tokens": 7}}}


class Intake(JsonReceiver):
    """``POST /api/intake/llm-obs/v1/trace/spans``: answers 202 (or ``status``) and keeps each request's headers
    and decoded body; refuses a request without the expected ``DD-API-KEY`` (when one is expected)."""

    def __init__(self, key: str | None = API_KEY) -> None:
        def check(request: Request) -> int | None:
            if request.path != INTAKE_PATH:
                return 404
            if key is not None and request.headers.get("dd-api-key") != key:
                return 403
            return None

        super().__init__(202, check=check)

    def spans(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items(lambda body: body["data"]["attributes"]["spans"], want, timeout)


@pytest.fixture
def intake() -> Iterator[Intake]:
    with Intake() as i:
        yield i


def env_for(intake: Intake, **extra: str) -> dict[str, str]:
    return {"DD_API_KEY": API_KEY, "DD_BASE_URL": intake.url, **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_datadog_llm_obs, records, env, settings, events, **{"max_attempts": 1, **options})


def test_a_span_per_request_as_litellm_builds_it(intake: Intake) -> None:
    ok = with_detail(detail(), call_id="ok-1")
    failed = with_detail(detail(attempts=[], output=None), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    send([ok, failed], env_for(intake, DD_ENV="prod", DD_SERVICE="my-gw", DD_VERSION="1.2", HOSTNAME="h1"))
    (path, headers, body), = intake.posts
    assert path == INTAKE_PATH and headers["dd-api-key"] == API_KEY
    assert headers["content-type"] == "application/json" and "content-encoding" not in headers
    assert body["data"]["type"] == "span"
    attrs = body["data"]["attributes"]
    base = ["env:prod", "service:my-gw", "version:1.2", "HOSTNAME:h1", "POD_NAME:unknown"]
    assert attrs["ml_app"] == "my-gw" and attrs["tags"] == base
    first, second = attrs["spans"]
    assert first["parent_id"] == "undefined" and first["trace_id"] == "sess-1"  # the client's session, as LiteLLM
    assert first["span_id"] == SERVER and first["name"] == "litellm_llm_call" and first["status"] == "ok"
    assert first["apm_id"] == str(int(TRACE, 16))
    assert first["start_ns"] == int(T0 * 1e9) and first["duration"] == 1_500_000_000
    meta = first["meta"]
    assert meta["kind"] == "llm" and meta["error"] is None and "tool_definitions" not in meta
    assert meta["input"]["messages"] == CHAT_IN["messages"]
    assert meta["output"]["messages"] == [{"role": "assistant", "content": "hello"}]
    md = meta["metadata"]
    assert (md["model_name"], md["model_provider"], md["id"], md["trace_id"]) == ("gpt-4o", "openai", "chatcmpl-123",
                                                                                  "sess-1")
    assert md["is_streamed_request"] is False and md["cache_hit"] is False
    assert md["latency_metrics"] == {"time_to_first_token_ms": 1500.0, "litellm_overhead_time_ms": 2.0}
    assert md["spend_metrics"] == {"response_cost": 0.00025}
    assert md["user_api_key_alias"] == "my-key" and md["requester_metadata"] == {"session_id": "sess-1"}
    assert md["_dd"] == {"cost_tags": ["team", "user", "key_alias", "model_group"]}
    assert first["metrics"] == {"input_tokens": 10.0, "output_tokens": 5.0, "total_tokens": 15.0,
                                "total_cost": 0.00025, "time_to_first_token": 1.5}
    assert first["tags"] == [*base, "request_tag:t1", "request_tag:t2", "team:team-alias", "user:user-1",
                             "key_alias:my-key", "model_group:gpt-4o-alias"]
    assert second["status"] == "error" and second["meta"]["output"]["messages"] == []
    assert second["meta"]["error"] == {"message": "upstream exploded", "type": "InternalServerError", "stack": ""}


def test_tools_cache_and_reasoning(intake: Intake) -> None:
    r = with_detail(detail(input=TOOL_IN, output=TOOL_OUT, metadata={"parent_id": "p-1", "span_id": 42,
                                                                     "name": "agent-step"}),
                    cache_read_tokens=30, cache_write_tokens=4, prompt_tokens=40, completion_tokens=12)
    emb = with_detail(detail(input={"model": "e", "input": ["one", "two"]}, output={"data": []},
                             metadata={"parent_id": "p-1"}), route="embeddings", call_id="emb")
    send([r, emb], env_for(intake))
    span, emb_span = intake.spans(2)
    assert (span["parent_id"], span["span_id"], span["name"]) == ("p-1", "42", "agent-step")
    meta = span["meta"]
    user, assistant, tool, image = meta["input"]["messages"]
    assert user == {"role": "user", "content": "weather in Paris?"}
    assert assistant == {"role": "assistant", "content": "", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}, "tool_id": "call_1", "type": "function"}]}
    assert tool == {"role": "tool", "content": "sunny, 21 degrees", "tool_results": [
        {"name": "get_weather", "result": "sunny, 21 degrees", "tool_id": "call_1", "type": "function"}]}
    assert image["content"] == TOOL_IN["messages"][3]["content"]  # no text: the parts as they are
    assert meta["output"]["messages"] == [{"role": "assistant", "content": "", "reasoning_content": "think",
                                           "tool_calls": [{"name": "get_weather", "arguments": "not json",
                                                           "tool_id": "call_2", "type": "function"}]}]
    assert meta["tool_definitions"] == [{"name": "get_weather", "description": "the weather",
                                         "schema": TOOL_IN["tools"][0]["function"]["parameters"]}]
    m = span["metrics"]
    assert (m["cache_read_input_tokens"], m["cache_write_input_tokens"], m["non_cached_input_tokens"]) == (30, 4, 6)
    assert m["reasoning_output_tokens"] == 7 and m["tool_output_tokens"] > 0
    assert meta["kind"] == "llm" and emb_span["meta"]["kind"] == "embedding"  # a child takes its call type's kind
    assert emb_span["meta"]["input"]["messages"] == [{"input": "one"}, {"input": "two"}]
    assert emb_span["meta"]["output"]["messages"] == []


def test_no_messages_when_message_logging_is_off(intake: Intake) -> None:
    settings = ObserveSettings(success_callbacks=(NAME,), callback_settings={NAME: {"message_logging": False}})
    send([with_detail(detail(input=TOOL_IN, output=TOOL_OUT))], env_for(intake), settings)
    send([with_detail(detail(input=None, output=None, redacted=True), call_id="hdr")], env_for(intake))
    params = ObserveSettings(success_callbacks=(NAME,),
                             datadog_llm_observability_params={"turn_off_message_logging": True})
    send([with_detail(detail(), call_id="params")], env_for(intake), params)
    own, by_header, by_params = intake.spans(3)
    text = json.dumps([own, by_header, by_params])
    for secret in ("Paris", "sunny", "think", "weather in", "be brief", "hello", '"hi"', "requester_metadata"):
        assert secret not in text
    user, assistant, tool, _ = own["meta"]["input"]["messages"]
    assert user == {"role": "user", "content": REDACTED}
    assert assistant["tool_calls"] == [{"name": "get_weather", "arguments": REDACTED, "tool_id": "call_1",
                                        "type": "function"}]
    assert tool["tool_results"][0]["result"] == REDACTED and "tool_definitions" not in own["meta"]
    assert by_header["meta"]["input"]["messages"] == [{"role": "user", "content": REDACTED}]
    assert by_header["meta"]["output"]["messages"] == [{"role": "assistant", "content": REDACTED}]
    assert [m["role"] for m in by_params["meta"]["input"]["messages"]] == ["system", "user"]


def test_redacted_key_info_leaves_no_key_tags(intake: Intake) -> None:
    send([with_detail(detail())], env_for(intake), ObserveSettings(success_callbacks=(NAME,),
                                                                  redact_user_api_key_info=True))
    (span,) = intake.spans(1)
    assert not any(t.startswith(("user:", "key_alias:")) for t in span["tags"])
    assert span["meta"]["metadata"]["user_api_key_alias"] is None
    assert span["meta"]["metadata"]["user_api_key_hash"] is None


def test_the_receiver_failing_is_counted_and_never_raises(intake: Intake) -> None:
    intake.status = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail()), with_detail(detail(), call_id="c2")], env_for(intake), events=events,
                max_attempts=2, backoff=0.01)
    assert len(intake.posts) == 2 and sink.dropped == 2
    assert (f"{NAME}_send_failed", 1) in events and (f"{NAME}_dropped", 2) in events
    assert CALLBACK_FAILURES[f"{NAME}_dropped"] == NAME and CALLBACK_FAILURES[f"{NAME}_send_failed"] == NAME


def test_a_client_value_of_another_type_never_spoils_the_batch(intake: Intake) -> None:
    odd = with_detail(detail(metadata={"parent_id": {"x": 1}, "span_id": ["s"], "name": True}), call_id="odd")
    send([odd], env_for(intake))
    (span,) = intake.spans(1)
    assert (span["parent_id"], span["span_id"], span["name"]) == ("undefined", SERVER, "litellm_llm_call")


def test_a_record_without_detail_still_makes_a_span(intake: Intake) -> None:
    send([record(call_id="bare")], env_for(intake))
    (span,) = intake.spans(1)
    assert span["trace_id"] == "bare" and len(span["span_id"]) == 36 and "apm_id" not in span
    assert span["meta"]["input"]["messages"] == [] and span["metrics"]["total_tokens"] == 15


def test_tag_values_are_normalised_as_litellm_does() -> None:
    assert normalize_tag("My Team!!  (EU)") == "my_team_eu"
    assert normalize_tag("a/b:c.d-e") == "a/b:c.d-e" and normalize_tag(12) == "12" and normalize_tag("__") == ""


@pytest.mark.parametrize(("env", "url"), [
    ({"DD_API_KEY": "k", "DD_SITE": "us5.datadoghq.com"}, "https://api.us5.datadoghq.com" + INTAKE_PATH),
    ({"LITELLM_DD_AGENT_HOST": "dd-agent"}, "http://dd-agent:8126" + INTAKE_PATH),
    ({"LITELLM_DD_AGENT_HOST": "dd-agent", "LITELLM_DD_LLM_OBS_PORT": "9126"}, "http://dd-agent:9126" + INTAKE_PATH),
    ({"DD_API_KEY": "k", "DD_BASE_URL": "http://proxy:8080/"}, "http://proxy:8080" + INTAKE_PATH),
])
def test_the_intake_url(env: dict[str, str], url: str) -> None:
    sink = make_datadog_llm_obs(BOTH, env, None)
    assert sink.url == url and ("DD-API-KEY" in sink.headers) == ("DD_API_KEY" in env)
    sink.discard()


def test_an_agent_takes_spans_without_a_key() -> None:
    agent = Intake(key=None)
    try:
        port = str(agent.server.server_address[1])
        send([with_detail(detail())], {"LITELLM_DD_AGENT_HOST": "127.0.0.1", "LITELLM_DD_LLM_OBS_PORT": port})
        (_, headers, _), = agent.posts
        assert "dd-api-key" not in headers and len(agent.spans(1)) == 1
    finally:
        agent.close()


@pytest.mark.parametrize(("env", "settings", "name"), [
    ({"DD_SITE": "datadoghq.com"}, BOTH, "DD_API_KEY"),
    ({"DD_API_KEY": "k"}, BOTH, "DD_SITE"),
    ({"DD_API_KEY": "k", "DD_SITE": "https://datadoghq.com"}, BOTH, "DD_SITE"),
    ({"DD_API_KEY": "k\r\nX-Injected: 1", "DD_SITE": "datadoghq.com"}, BOTH, "DD_API_KEY"),
    ({"LITELLM_DD_AGENT_HOST": "a", "LITELLM_DD_LLM_OBS_PORT": "x"}, BOTH, "LITELLM_DD_LLM_OBS_PORT"),
    ({"DD_API_KEY": "k", "DD_BASE_URL": "ftp://x"}, BOTH, "DD_BASE_URL"),
    ({"DD_API_KEY": "k", "DD_SITE": "datadoghq.com"},
     ObserveSettings(success_callbacks=(NAME,), datadog_llm_observability_params={"turn_off_message_logging": 3}),
     "turn_off_message_logging"),
])
def test_config_errors(env: dict[str, str], settings: ObserveSettings, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_datadog_llm_obs(settings, env, None)


# -- against LiteLLM's own span builder ----------------------------------------------------------------------

_LITELLM_SPANS = r"""
import json, sys
from datetime import datetime, timezone
from litellm.integrations.datadog.datadog_llm_obs import DataDogLLMObsLogger
out = []
for job in json.load(sys.stdin):
    logger = object.__new__(DataDogLLMObsLogger)
    logger.turn_off_message_logging = job["redact"]
    logger.message_logging = True
    payload = job["payload"]
    start = datetime.fromtimestamp(payload["startTime"], timezone.utc)
    end = datetime.fromtimestamp(payload["endTime"], timezone.utc)
    kwargs = {"standard_logging_object": payload, "litellm_params": {"metadata": job["metadata"]}}
    out.append(logger.create_llm_obs_payload(kwargs, start, end))
print(json.dumps(out, default=str))
"""

ANTHROPIC_IN = {"model": "claude", "max_tokens": 50, "tools": [
    {"name": "calc", "description": "adds", "input_schema": {"type": "object"}}], "messages": [
    {"role": "user", "content": [{"type": "text", "text": "one plus one?"}]},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "calc", "input": {"a": 1, "b": 1}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "2"}]}]}
ANTHROPIC_OUT = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "two"}]}


def test_the_span_is_litellms() -> None:
    """Each record's span equals the one LiteLLM's own ``create_llm_obs_payload`` builds from the same
    StandardLoggingPayload and request metadata (run in a subprocess: importing litellm fetches its price map)."""
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("litellm is not installed")
    env = {"DD_API_KEY": API_KEY, "DD_SITE": "datadoghq.com", "DD_ENV": "prod", "HOSTNAME": "h"}
    cases = [with_detail(detail(input=TOOL_IN, output=TOOL_OUT, metadata={"parent_id": "p-9", "name": "n"},
                                tags=["Big Tag", "x"]), cache_read_tokens=5, prompt_tokens=40,
                         completion_tokens=12),
             with_detail(detail(), route="embeddings"),
             with_detail(detail(input=ANTHROPIC_IN, output=ANTHROPIC_OUT), route="messages", cache_write_tokens=3),
             with_detail(detail(input={**CHAT_IN, "stream": True}), stream=True, ttft=0.25),
             with_detail(detail(attempts=[], output=None), status=429, outcome=Outcome.ERROR,
                         error_type="rate_limit_error", error_message="slow down")]
    jobs, ours = [], []
    for redact in (False, True):
        settings = ObserveSettings(success_callbacks=(NAME,), failure_callbacks=(NAME,),
                                   callback_settings={NAME: {"message_logging": not redact}})
        sink = make_datadog_llm_obs(settings, env, None)
        sink.discard()
        for r in cases:
            d = r.extra["observe"]
            payload = json.loads(json.dumps(standard_payload(r, d), default=str))
            usage = d.output.get("usage") if isinstance(d.output, dict) else None
            details = usage.get("completion_tokens_details") if usage else None
            if details:  # LiteLLM's usage object is the answer's usage, its token details included
                payload["metadata"]["usage_object"]["completion_tokens_details"] = details
            jobs.append({"payload": payload, "metadata": d.metadata, "redact": redact})
            ours.append(json.loads(sink.encode([sink.entry(r)]))["data"]["attributes"]["spans"][0])
    out = subprocess.run([sys.executable, "-c", _LITELLM_SPANS], input=json.dumps(jobs), capture_output=True,
                         text=True, env={**os.environ, **env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=120,
                         check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(theirs) == len(ours) == 2 * len(cases)
    for mine, litellms in zip(ours, theirs, strict=True):
        for span in (mine, litellms):  # ids LiteLLM draws at random; the tokenizer's count against our estimate
            span.pop("span_id", None)
            span.pop("apm_id", None)
            span["metrics"].pop("tool_output_tokens", None)
            span["meta"]["metadata"]["usage_object"].pop("completion_tokens_details", None)
        assert mine == litellms


# -- through the gateway -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_datadog_llm_obs_callback_through_the_gateway(intake: Intake) -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["datadog_llm_observability"]
general_settings:
  master_key: sk-dd-master
"""
    env = {"DD_API_KEY": API_KEY, "DD_SITE": "datadoghq.com", "DD_BASE_URL": intake.url, "DD_SERVICE": "gw-app",
           "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}
    with start_gateway(config, env=env) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-dd-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello datadog"}],
                             "metadata": {"tags": ["e2e"]}}, timeout=10)
        assert r.status_code == 200, r.text
        (span,) = intake.spans(1)
        (_, headers, body), = intake.posts
        assert headers["dd-api-key"] == API_KEY and body["data"]["attributes"]["ml_app"] == "gw-app"
        assert span["meta"]["input"]["messages"] == [{"role": "user", "content": "hello datadog"}]
        assert span["meta"]["output"]["messages"][0]["role"] == "assistant"
        assert span["meta"]["metadata"]["model_provider"] == "mock" and span["metrics"]["total_tokens"] > 0
        assert "request_tag:e2e" in span["tags"] and "model_group:m" in span["tags"]
        assert len(span["trace_id"]) == 32 and span["status"] == "ok"
        assert API_KEY not in gw.log()
