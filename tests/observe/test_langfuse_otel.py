"""LiteLLM's ``langfuse_otel`` callback: where it sends (Langfuse's OTLP endpoint, Basic auth, the ingestion
version header), Langfuse's span attributes as LiteLLM sets them, checked at a real OTLP/HTTP receiver that
decodes with the official protobuf messages; and through a real ``relaygate serve``."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.langfuse_otel import (
    US_CLOUD,
    LangfuseOtelSink,
    langfuse_otlp_settings,
    make_langfuse_otel,
    observation_output,
)
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.conftest import start_gateway
from tests.observe.otlp_receiver import Receiver, Span
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, PARENT, SERVER, TRACE, detail, with_detail

PATH = "/api/public/otel/v1/traces"
KEYS = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-secret"}
BOTH = ObserveSettings(success_callbacks=("langfuse_otel",), failure_callbacks=("langfuse_otel",))
BASIC = "Basic " + base64.b64encode(b"pk-lf-1:sk-lf-secret").decode()


@pytest.fixture(autouse=True)
def _no_process_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(path=PATH) as r:
        yield r


def export(records: list[CompletionRecord], env: dict[str, str], settings: ObserveSettings = BOTH,
           events: list[tuple[str, int]] | None = None) -> LangfuseOtelSink:
    sink = make_langfuse_otel(settings, env, (lambda e, n: events.append((e, n))) if events is not None else None)

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def request_span(spans: list[Span]) -> Span:
    (span,) = [s for s in spans if s.name == "Received Proxy Server Request"]
    return span


# -- where it sends -------------------------------------------------------------------------------------


def test_endpoint_and_headers_from_the_langfuse_variables() -> None:
    s = ObserveSettings()
    cfg = langfuse_otlp_settings(s, {**KEYS, "LANGFUSE_HOST": "langfuse.internal:3000/",
                                     "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                                     "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a", "OTEL_EXPORTER": "otlp_grpc",
                                     "OTEL_EXPORTER_OTLP_TIMEOUT": "3", "OTEL_SERVICE_NAME": "gw"})
    assert cfg.endpoint == "https://langfuse.internal:3000/api/public/otel/v1/traces"  # https added, as LiteLLM
    assert cfg.protocol == "http/protobuf"
    assert cfg.headers == {"Authorization": BASIC, "x-langfuse-ingestion-version": "4"}
    assert cfg.timeout == 3.0 and cfg.resource["service.name"] == "gw"  # the shared variables still apply
    cfg = langfuse_otlp_settings(s, {**KEYS, "LANGFUSE_OTEL_HOST": "http://otel-host", "LANGFUSE_HOST": "other"})
    assert cfg.endpoint == "http://otel-host/api/public/otel/v1/traces"
    assert langfuse_otlp_settings(s, KEYS).endpoint == US_CLOUD + "/v1/traces"


def test_without_keys_it_exports_as_the_otel_variables_say(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.observe"):
        cfg = langfuse_otlp_settings(ObserveSettings(), {"LANGFUSE_PUBLIC_KEY": "pk",
                                                         "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert cfg.endpoint == "http://collector:4318/v1/traces" and "Authorization" not in cfg.headers
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set" in caplog.text
    assert "pk" not in caplog.text.replace("LANGFUSE_PUBLIC_KEY", "")


# -- what it sends -------------------------------------------------------------------------------------


def test_a_chat_request_reaches_langfuse_with_its_attributes(rx: Receiver) -> None:
    d = detail(metadata={"session_id": "sess-1", "trace_user_id": "end-user-7", "generation_name": "gen-a",
                         "trace_id": "0af76519-16cd-43dd-8448-eb211c80319c", "trace_metadata": {"k": 1},
                         "version": "v3", "tags": "a, b", "update_trace_keys": ["output"]})
    export([with_detail(d, ttft=0.25)], {**KEYS, "LANGFUSE_HOST": rx.url, "LANGFUSE_TRACING_ENVIRONMENT": "staging",
                                         "OTEL_BSP_SCHEDULE_DELAY": "10"})
    spans = rx.wait_spans(2)
    (ex,) = rx.exports
    assert ex.headers["authorization"] == BASIC and ex.headers["x-langfuse-ingestion-version"] == "4"
    span = request_span(spans)
    a = span.attributes
    assert (span.trace_id, span.span_id) == (TRACE, SERVER)
    assert a["gen_ai.request.model"] == "gpt-4o-alias" and a["gen_ai.usage.input_tokens"] == 10  # otel's, kept
    assert a["langfuse.observation.type"] == "generation"
    assert a["langfuse.environment"] == "staging"
    assert a["session.id"] == "sess-1" and a["user.id"] == "end-user-7"
    assert a["langfuse.generation.name"] == "gen-a"
    assert a["langfuse.trace.id"] == TRACE  # dashes removed
    assert json.loads(a["langfuse.trace.metadata"]) == {"k": 1}
    assert a["langfuse.version"] == "v3"
    assert json.loads(a["langfuse.trace.update_keys"]) == ["output"]
    assert json.loads(a["langfuse.observation.input"]) == CHAT_IN["messages"]
    assert json.loads(a["langfuse.observation.output"]) == {"role": "assistant", "content": "hello"}
    assert json.loads(a["langfuse.observation.completion_start_time"]).startswith("2023-11-14T22:13:20.25")
    # it starts its own trace: the trace is named and carries input, output and tags
    assert a["langfuse.trace.name"] == "litellm-acompletion"
    assert a["langfuse.trace.input"] == a["langfuse.observation.input"]
    assert a["langfuse.trace.output"] == a["langfuse.observation.output"]
    assert json.loads(a["langfuse.trace.tags"]) == ["a", "b", "t1", "t2"]
    assert [s.name for s in spans if s is not span] == ["chat gpt-4o"]  # the attempt's span, as otel's


def test_masked_trace_content_a_named_trace_and_default_tags(rx: Receiver) -> None:
    d = detail(metadata={"mask_input": True, "mask_output": "true", "trace_name": "my-trace",
                         "tags": ["x", {"y": 1}]}, tags=[])
    export([with_detail(d)], {**KEYS, "LANGFUSE_HOST": rx.url},
           ObserveSettings(success_callbacks=("langfuse_otel",), langfuse_default_tags=("user_api_key_alias",
                                                                                         "cache_hit")))
    a = request_span(rx.wait_spans(2)).attributes
    assert a["langfuse.trace.name"] == "my-trace"
    assert a["langfuse.trace.input"] == a["langfuse.trace.output"] == "redacted-by-litellm"
    assert a["langfuse.generation.mask_input"] is True and a["langfuse.generation.mask_output"] == "true"
    assert json.loads(a["langfuse.observation.input"]) == CHAT_IN["messages"]  # the generation's own stays
    assert json.loads(a["langfuse.trace.tags"]) == ["x", '{"y": 1}', "user_api_key_alias:my-key", "cache_hit:False"]


def test_a_request_in_a_callers_trace_leaves_the_trace_alone(rx: Receiver) -> None:
    d = detail(parent_span_id=PARENT)
    export([with_detail(d)], {**KEYS, "LANGFUSE_HOST": rx.url})
    span = request_span(rx.wait_spans(2))
    assert span.parent_span_id == PARENT
    assert "langfuse.observation.input" in span.attributes
    assert not [k for k in span.attributes if k.startswith("langfuse.trace.")]


def test_no_content_when_message_logging_is_off(rx: Receiver) -> None:
    settings = ObserveSettings(success_callbacks=("langfuse_otel",),
                               callback_settings={"langfuse_otel": {"message_logging": False}})
    export([with_detail(detail())], {**KEYS, "LANGFUSE_HOST": rx.url}, settings)
    a = request_span(rx.wait_spans(2)).attributes
    assert a["langfuse.observation.type"] == "generation"
    assert not [k for k in a if k.endswith((".input", ".output"))]


def test_a_failure_has_no_output_and_callbacks_pick_outcomes(rx: Receiver) -> None:
    ok = with_detail(detail(), call_id="ok-1")
    failed = with_detail(detail(trace_id="1" * 32, attempts=[]), call_id="bad-1", status=500,
                         outcome=Outcome.ERROR, error_type="internal_server_error")
    export([ok, failed], {**KEYS, "LANGFUSE_HOST": rx.url}, ObserveSettings(failure_callbacks=("langfuse_otel",)))
    (span,) = rx.wait_spans(1)
    assert span.attributes["relaygate.call_id"] == "bad-1" and span.status == "ERROR"
    assert "langfuse.observation.output" not in span.attributes
    assert "langfuse.observation.input" in span.attributes


def test_receiver_refusing_counts_langfuse_otel_drops(rx: Receiver) -> None:
    rx.fail = 401
    events: list[tuple[str, int]] = []
    sink = export([with_detail(detail())], {**KEYS, "LANGFUSE_HOST": rx.url}, events=events)
    assert sink.dropped == 2 and ("langfuse_otel_dropped", 2) in events
    assert CALLBACK_FAILURES["langfuse_otel_dropped"] == "langfuse_otel"


@pytest.mark.parametrize(("answer", "expected"), [
    ({"id": "c1", "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}}]},
     [{"id": "c1", "name": "f", "call_id": "call_1", "type": "function_call", "arguments": {"x": 1}},
      {"id": "c1", "name": "g", "call_id": "call_2", "type": "function_call", "arguments": {}}]),
    ({"output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
                 {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]},
                 {"type": "function_call", "id": "fc", "call_id": "c", "name": "f", "arguments": '{"a": 2}'}]},
     [{"role": "reasoning_summary", "content": "think"}, {"role": "assistant", "content": "hi"},
      {"id": "fc", "name": "f", "call_id": "c", "type": "function_call", "arguments": {"a": 2}}]),
    (CHAT_OUT, {"role": "assistant", "content": "hello"}),
    ({"data": [{"embedding": [0.1]}]}, None),
    ("not an object", None),
])
def test_observation_output_shapes(answer: Any, expected: Any) -> None:
    got = observation_output(answer)
    assert (json.loads(got) if got is not None else None) == expected


# -- through the gateway ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_langfuse_otel_callback_through_the_gateway() -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["langfuse_otel"]
general_settings:
  master_key: sk-lfo-master
"""
    with Receiver(path=PATH) as rx, start_gateway(config, env={
            **KEYS, "LANGFUSE_HOST": rx.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-lfo-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello there"}],
                             "metadata": {"session_id": "s-9", "generation_name": "g-9"}}, timeout=10)
        assert r.status_code == 200, r.text
        spans = rx.wait_spans(1)
        a = request_span(spans).attributes
        assert rx.exports[0].headers["authorization"] == BASIC
        assert a["relaygate.call_id"] == r.headers["x-litellm-call-id"]
        assert a["session.id"] == "s-9" and a["langfuse.generation.name"] == "g-9"
        assert json.loads(a["langfuse.observation.input"]) == [{"role": "user", "content": "hello there"}]
        assert json.loads(a["langfuse.observation.output"])["role"] == "assistant"
        assert a["langfuse.trace.name"] == "litellm-acompletion"
        assert "sk-lf-secret" not in gw.log()


def test_a_keys_own_langfuse_otel_project_gets_its_spans(rx: Receiver) -> None:
    """A key's ``langfuse_otel`` entry with both keys (and a host) gets that key's spans instead of the configured
    project, with its own credentials only; one without both keys falls back to the configured project (as
    LiteLLM's); the configured callback's own records are unchanged."""
    from relaygate.observe.detail import LoggingTarget

    with Receiver(path=PATH) as own:
        keyed = with_detail(detail(logging=[LoggingTarget("langfuse_otel", "success", {
            "langfuse_public_key": "pk-own", "langfuse_secret_key": "sk-own", "langfuse_host": own.url})]),
            call_id="keyed")
        half = with_detail(detail(trace_id="3" * 32, logging=[LoggingTarget("langfuse_otel", "success", {
            "langfuse_public_key": "pk-only"})]), call_id="half")
        sink = export([keyed, half, with_detail(detail(trace_id="2" * 32), call_id="plain")],
                      {**KEYS, "LANGFUSE_HOST": rx.url}, ObserveSettings(success_callbacks=("langfuse_otel",)))
        mine = own.wait_spans(2)
        assert {s.trace_id for s in mine} == {TRACE}
        assert own.exports[0].headers["authorization"] == "Basic " + base64.b64encode(b"pk-own:sk-own").decode()
        assert request_span(mine).attributes["langfuse.observation.type"] == "generation"
        configured = rx.wait_spans(4)
        assert {s.trace_id for s in configured} == {"3" * 32, "2" * 32}
        assert all(e.headers["authorization"] == BASIC for e in rx.exports)
        assert sink.dropped == 0


def test_a_keys_unusable_or_one_too_many_destination_is_dropped_and_counted(rx: Receiver) -> None:
    from relaygate.observe.detail import LoggingTarget

    def keyed(n: int, host: str) -> CompletionRecord:
        return with_detail(detail(logging=[LoggingTarget("langfuse_otel", "success", {
            "langfuse_public_key": f"pk-{n}", "langfuse_secret_key": "sk", "langfuse_host": host})]), call_id=f"k{n}")

    events: list[tuple[str, int]] = []
    sink = make_langfuse_otel(ObserveSettings(success_callbacks=("langfuse_otel",)), {**KEYS, "LANGFUSE_HOST": rx.url},
                              lambda e, n: events.append((e, n)))
    sink.lanes_max = 2

    async def main() -> None:
        await sink.handle([keyed(1, rx.url), keyed(2, "http://bad" + chr(13) + chr(10) + "host"),
                           keyed(5, "http://user:pw@collector"), keyed(3, rx.url), keyed(4, rx.url)])
        await sink.aclose()

    asyncio.run(main())
    assert len(rx.wait_spans(4)) == 4  # two destinations (the same receiver, two projects), two spans each
    assert sink.dropped == 6 and ("langfuse_otel_dropped", 2) in events


def test_started_for_keys_only_without_configured_keys(rx: Receiver) -> None:
    """Started for keys' entries only (no ``langfuse_otel`` callback, no ``LANGFUSE_*`` keys): a key's own project
    gets its spans; an entry without its own keys has no project to fall back on and is dropped, counted; a
    record whose key names no entry is not exported."""
    from relaygate.observe.detail import LoggingTarget

    events: list[tuple[str, int]] = []
    keyed = with_detail(detail(logging=[LoggingTarget("langfuse_otel", "success", {
        "langfuse_public_key": "pk-own", "langfuse_secret_key": "sk-own", "langfuse_host": rx.url})]), call_id="k")
    bare = with_detail(detail(trace_id="3" * 32, logging=[LoggingTarget("langfuse_otel", "success", {})]),
                       call_id="bare")
    plain = with_detail(detail(trace_id="2" * 32), call_id="plain")
    sink = make_langfuse_otel(ObserveSettings(), {}, lambda e, n: events.append((e, n)), keys_only=True)

    async def main() -> None:
        await sink.handle([keyed, bare, plain])
        await sink.aclose()

    asyncio.run(main())
    spans = rx.wait_spans(2)
    assert {s.trace_id for s in spans} == {TRACE}
    assert {e.headers["authorization"] for e in rx.exports} == {"Basic " + base64.b64encode(b"pk-own:sk-own").decode()}
    assert sink.dropped == 2 and ("langfuse_otel_dropped", 2) in events  # the bare record's two spans
