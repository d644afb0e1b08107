"""OtelSink end to end: hand-built records in, every span and attribute checked at a real OTLP/HTTP receiver.

The receiver (``otlp_receiver``) decodes what arrives with the official ``opentelemetry-proto`` messages.
Each test runs the sink on its own event loop (``asyncio.run``), as the completion queue's runner would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import Attempt, Detail, LoggingTarget
from relaygate.observe.otel import DROPPED_EVENT, OtelSink, make_otel
from relaygate.sinks.queue import CompletionQueue
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.observe.otlp_receiver import Receiver, Span

TRACE = "0af7651916cd43dd8448eb211c80319c"
SERVER = "b7ad6b7169203331"
PARENT = "00f067aa0ba902b7"
A1, A2, A3 = "1111111111111111", "2222222222222222", "3333333333333333"
T0 = 1_700_000_000.0
KEY = "ab" * 32
RESOURCE = {"service.name": "litellm", "deployment.environment": "production", "model_id": "litellm",
            "telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry"}
BOTH = ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",))


@pytest.fixture(autouse=True)
def _no_process_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the exporter also reads os.environ; the tests give the sink its environment explicitly
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def record(**kw: Any) -> CompletionRecord:
    values: dict[str, Any] = dict(
        call_id="call-1", route="chat", stream=False, model="gpt-4o-alias", model_group="gpt-4o-alias",
        deployment_id="dep-1", provider="openai", upstream_model="gpt-4o", key_hash=KEY, key_alias="my-key",
        team_id="team-1", user_id="user-1", status=200, outcome=Outcome.OK, prompt_tokens=10,
        completion_tokens=5, cache_read_tokens=0, cache_write_tokens=0, latency=1.5, ttft=None, overhead=0.002,
        cost=0.00025, cache_hit=False, retries=0, fallbacks=0, start_time=T0)
    values.update(kw)
    return CompletionRecord(**values)


def attempt(span_id: str = A1, **kw: Any) -> Attempt:
    values: dict[str, Any] = dict(deployment_id="dep-1", model_group="gpt-4o-alias", provider="openai",
                                  upstream_model="gpt-4o", api_base="https://api.openai.com/v1/", start=T0 + 0.1,
                                  end=T0 + 1.4, status=200, span_id=span_id)
    values.update(kw)
    return Attempt(**values)


CHAT_IN = {"model": "gpt-4o-alias", "messages": [{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "hi"}],
           "temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "stop": ["\n"], "seed": 7}
CHAT_OUT = {"id": "chatcmpl-123", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}


def detail(**kw: Any) -> Detail:
    values: dict[str, Any] = dict(trace_id=TRACE, span_id=SERVER, input=CHAT_IN, output=CHAT_OUT,
                                  metadata={"session_id": "sess-1"}, tags=["t1", "t2"], attempts=[attempt()],
                                  team_alias="team-alias")
    values.update(kw)
    return Detail(**values)


def with_detail(d: Detail, **kw: Any) -> CompletionRecord:
    return record(extra={"observe": d}, **kw)


def env_for(rx: Receiver, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url, **extra}


def export(records: list[CompletionRecord], env: dict[str, str], settings: ObserveSettings = BOTH,
           events: list[tuple[str, int]] | None = None) -> OtelSink:
    sink = make_otel(settings, env, (lambda e, n: events.append((e, n))) if events is not None else None)

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def by_id(spans: list[Span]) -> dict[str, Span]:
    out = {s.span_id: s for s in spans}
    assert len(out) == len(spans), "span ids must be unique"
    return out


def ns(t: float) -> int:
    return int(t * 1e9)


def common_request_attrs(**kw: Any) -> dict[str, Any]:
    """The request span's attributes for the default chat record and detail (override by keyword)."""
    a: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-alias", "gen_ai.request.stream": False,
        "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 100, "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stop_sequences": ("\n",), "gen_ai.request.seed": 7,
        "gen_ai.response.id": "chatcmpl-123", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
        "gen_ai.conversation.id": "sess-1", "http.response.status_code": 200,
        "llm.request.type": "acompletion", "llm.is_streaming": "False", "llm.usage.total_tokens": 15,
        "gen_ai.usage.total_tokens": 15, "litellm.call_id": "call-1", "litellm.cache_hit": False,
        "litellm.model_group": "gpt-4o-alias", "litellm.provider.model": "gpt-4o",
        "metadata.user_api_key_hash": KEY, "metadata.user_api_key_alias": "my-key",
        "metadata.user_api_key_team_id": "team-1", "metadata.user_api_key_user_id": "user-1",
        "metadata.user_api_key_team_alias": "team-alias", "metadata.team_alias": "team-alias",
        "metadata.team_id": "team-1", "metadata.requester_metadata": '{"session_id":"sess-1"}',
        "metadata.usage_object": '{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}',
        "relaygate.call_id": "call-1", "relaygate.route": "chat", "relaygate.outcome": "ok",
        "relaygate.model_group": "gpt-4o-alias", "relaygate.deployment_id": "dep-1",
        "relaygate.upstream_model": "gpt-4o", "relaygate.cache_hit": False, "relaygate.retries": 0,
        "relaygate.fallbacks": 0, "relaygate.cost": 0.00025, "relaygate.overhead_ms": 2.0,
        "relaygate.attempts": 1, "relaygate.tags": ("t1", "t2"),
        "gen_ai.input.messages": json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "user", "parts": [{"type": "text", "content": "hi"}]}], separators=(",", ":")),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}],
            separators=(",", ":")),
    }
    a.update(kw)
    return {k: v for k, v in a.items() if v is not None}


def hidden(span: Span) -> dict[str, Any]:
    value = json.loads(span.attributes.pop("hidden_params"))
    assert isinstance(value, dict)
    return value


def test_ok_unary_chat(rx: Receiver) -> None:
    export([with_detail(detail())], env_for(rx, OTEL_EXPORTER_OTLP_HEADERS="x-honeycomb-team=abc"))
    spans = rx.spans()
    assert len(spans) == 2
    ids = by_id(spans)
    req, att = ids[SERVER], ids[A1]
    assert req.trace_id == att.trace_id == TRACE
    assert req.parent_span_id == ""
    assert att.parent_span_id == SERVER
    assert (req.kind, req.name, req.status, req.status_message) == ("SERVER", "Received Proxy Server Request",
                                                                      "OK", "")
    assert (req.start_time_unix_nano, req.end_time_unix_nano) == (ns(T0), ns(T0 + 1.5))
    assert req.events == []
    assert req.flags == 0x100  # has-is-remote known, local (no remote parent)
    assert hidden(req) == {"model_id": "dep-1", "cache_key": None, "api_base": "https://api.openai.com/v1",
                           "response_cost": 0.00025, "litellm_overhead_time_ms": 2.0, "additional_headers": None,
                           "batch_models": None, "batch_successful_requests": None, "batch_failed_requests": None,
                           "litellm_model_name": "gpt-4o",
                           "usage_object": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    assert req.attributes == common_request_attrs()

    assert (att.kind, att.name, att.status) == ("CLIENT", "chat gpt-4o", "OK")
    assert (att.start_time_unix_nano, att.end_time_unix_nano) == (ns(T0 + 0.1), ns(T0 + 1.4))
    assert att.attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "server.address": "api.openai.com", "server.port": 443,
        "gen_ai.api_base": "https://api.openai.com/v1", "http.response.status_code": 200,
        "gen_ai.response.id": "chatcmpl-123", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5, "relaygate.attempt": 1, "relaygate.attempt.kind": "first",
        "relaygate.deployment_id": "dep-1", "relaygate.model_group": "gpt-4o-alias"}
    assert att.events == []
    for s in spans:
        assert {k: v for k, v in s.resource.items() if k != "telemetry.sdk.version"} == RESOURCE
        assert s.scope == "litellm"
    (exp,) = rx.exports
    assert exp.headers["x-honeycomb-team"] == "abc"
    assert exp.headers["content-type"] == "application/x-protobuf"


def test_stream_with_time_to_first_chunk_and_cache_tokens(rx: Receiver) -> None:
    d = detail(metadata={"generation_name": "my-gen"}, tags=[])
    r = with_detail(d, stream=True, ttft=0.25, cache_read_tokens=4, cache_write_tokens=2, cost_estimated=True)
    export([r], env_for(rx))
    req = by_id(rx.spans())[SERVER]
    assert req.name == "Received Proxy Server Request"  # LiteLLM's proxy: generation_name names no span
    assert req.attributes.pop("gen_ai.response.time_to_first_chunk") == 0.25
    assert req.attributes.pop("gen_ai.usage.cache_read.input_tokens") == 4
    assert req.attributes.pop("gen_ai.usage.cache_creation.input_tokens") == 2
    assert req.attributes.pop("relaygate.cost_estimated") is True
    hidden(req)
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cache_read_input_tokens": 4,
             "prompt_tokens_details": {"cached_tokens": 4}, "cache_creation_input_tokens": 2}
    assert req.attributes == common_request_attrs(
        **{"gen_ai.request.stream": True, "llm.is_streaming": "True", "gen_ai.conversation.id": None,
           "relaygate.tags": None, "metadata.requester_metadata": '{"generation_name":"my-gen"}',
           "metadata.usage_object": json.dumps(usage, separators=(",", ":"))})


def test_retry_then_fallback_three_attempts(rx: Receiver) -> None:
    attempts = [
        attempt(A1, start=T0 + 0.01, end=T0 + 0.2, status=429, error_type="rate_limit_error",
                error_message="slow down"),
        attempt(A2, start=T0 + 0.3, end=T0 + 0.5, status=0, error_type="APIConnectionError",
                error_message="connect refused", deployment_id="dep-2",
                api_base="http://10.0.0.5:8000/v1"),
        attempt(A3, start=T0 + 0.6, end=T0 + 1.4, status=200, deployment_id="dep-9", model_group="claude-fb",
                provider="anthropic", upstream_model="claude-3-5-sonnet", api_base=""),
    ]
    out = {"id": "msg_1", "model": "claude-3-5-sonnet-20241022", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}]}
    d = detail(attempts=attempts, output=out)
    r = with_detail(d, retries=1, fallbacks=1, model_group="claude-fb", deployment_id="dep-9",
                    provider="anthropic", upstream_model="claude-3-5-sonnet")
    export([r], env_for(rx))
    spans = rx.spans()
    assert len(spans) == 4
    ids = by_id(spans)
    req = ids[SERVER]
    assert req.attributes["relaygate.retries"] == 1
    assert req.attributes["relaygate.fallbacks"] == 1
    assert req.attributes["relaygate.attempts"] == 3
    assert req.attributes["gen_ai.system"] == "anthropic"
    assert req.attributes["gen_ai.provider.name"] == "anthropic"
    assert req.status == "OK"
    children = sorted((s for s in spans if s.span_id != SERVER), key=lambda s: s.start_time_unix_nano)
    assert [s.span_id for s in children] == [A1, A2, A3]
    assert all(s.parent_span_id == SERVER and s.trace_id == TRACE and s.kind == "CLIENT" for s in children)
    first, second, third = children
    assert (first.name, first.status, first.status_message) == ("chat gpt-4o", "ERROR", "slow down")
    assert first.attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "server.address": "api.openai.com", "server.port": 443,
        "gen_ai.api_base": "https://api.openai.com/v1", "http.response.status_code": 429,
        "error.type": "rate_limit_error", "error.message": "slow down", "relaygate.attempt": 1,
        "relaygate.attempt.kind": "first", "relaygate.deployment_id": "dep-1",
        "relaygate.model_group": "gpt-4o-alias"}
    assert (second.name, second.status, second.status_message) == ("chat gpt-4o", "ERROR", "connect refused")
    assert second.attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "server.address": "10.0.0.5", "server.port": 8000,
        "gen_ai.api_base": "http://10.0.0.5:8000/v1", "error.type": "APIConnectionError",
        "error.message": "connect refused", "relaygate.attempt": 2, "relaygate.attempt.kind": "retry",
        "relaygate.deployment_id": "dep-2", "relaygate.model_group": "gpt-4o-alias"}
    assert (third.name, third.status) == ("chat claude-3-5-sonnet", "OK")
    assert (third.start_time_unix_nano, third.end_time_unix_nano) == (ns(T0 + 0.6), ns(T0 + 1.4))
    assert third.attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet", "http.response.status_code": 200,
        "gen_ai.response.id": "msg_1", "gen_ai.response.model": "claude-3-5-sonnet-20241022",
        "gen_ai.response.finish_reasons": ("length",), "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5, "relaygate.attempt": 3, "relaygate.attempt.kind": "fallback",
        "relaygate.deployment_id": "dep-9", "relaygate.model_group": "claude-fb"}


def test_error(rx: Receiver) -> None:
    a = attempt(A1, status=429, error_type="rate_limit_error", error_message="quota")
    d = detail(attempts=[a], output=None, error_message="Rate limit reached for gpt-4o")
    r = with_detail(d, status=429, outcome=Outcome.ERROR, error_type="rate_limit_error", prompt_tokens=0,
                    completion_tokens=0, cost=0.0)
    export([r], env_for(rx))
    ids = by_id(rx.spans())
    req = ids[SERVER]
    assert (req.status, req.status_message) == ("ERROR", "Rate limit reached for gpt-4o")
    assert len(req.events) == 1
    ev = req.events[0]
    assert ev.name == "exception"
    assert ev.time_unix_nano == ns(T0 + 1.5)
    assert ev.attributes == {"exception.type": "RateLimitError", "exception.message": "Rate limit reached for gpt-4o"}
    assert hidden(req)["response_cost"] == 0.0
    assert req.attributes == common_request_attrs(**{
        "gen_ai.response.id": None, "gen_ai.response.model": None, "gen_ai.response.finish_reasons": None,
        "gen_ai.usage.input_tokens": None, "gen_ai.usage.output_tokens": None, "gen_ai.output.messages": None,
        "http.response.status_code": 429, "llm.usage.total_tokens": 0, "gen_ai.usage.total_tokens": 0,
        "relaygate.outcome": "error",
        "relaygate.cost": 0.0, "metadata.usage_object": '{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}',
        "error.type": "RateLimitError", "error.message": "Rate limit reached for gpt-4o",
        "relaygate.error_type": "rate_limit_error"})
    att = ids[A1]
    assert (att.status, att.attributes["error.type"], att.attributes["http.response.status_code"]) == (
        "ERROR", "rate_limit_error", 429)
    assert "gen_ai.usage.input_tokens" not in att.attributes


def test_client_gone_is_not_an_error(rx: Receiver) -> None:
    d = detail(output=None)
    export([with_detail(d, outcome=Outcome.CLIENT_GONE, status=499)], env_for(rx))
    req = by_id(rx.spans())[SERVER]
    assert req.status == "UNSET"
    assert req.events == []
    assert "error.type" not in req.attributes
    assert req.attributes["relaygate.outcome"] == "client_gone"


def test_redacted_request_exports_no_content(rx: Receiver) -> None:
    d = detail(input=None, output=None, redacted=True)
    export([with_detail(d)], env_for(rx))
    req = by_id(rx.spans())[SERVER]
    hidden(req)
    assert req.attributes == common_request_attrs(**{
        "gen_ai.input.messages": None, "gen_ai.output.messages": None, "gen_ai.request.temperature": None,
        "gen_ai.request.max_tokens": None, "gen_ai.request.top_p": None, "gen_ai.request.stop_sequences": None,
        "gen_ai.request.seed": None, "gen_ai.response.id": "call-1", "gen_ai.response.model": "gpt-4o",
        "gen_ai.response.finish_reasons": None})


@pytest.mark.parametrize("settings", [
    ObserveSettings(success_callbacks=("otel",), callback_settings={"otel": {"message_logging": False}}),
    ObserveSettings(success_callbacks=("otel",), turn_off_message_logging=True),
])
def test_message_logging_off_keeps_parameters_but_no_content(rx: Receiver, settings: ObserveSettings) -> None:
    export([with_detail(detail())], env_for(rx), settings)
    req = by_id(rx.spans())[SERVER]
    assert "gen_ai.input.messages" not in req.attributes
    assert "gen_ai.output.messages" not in req.attributes
    assert req.attributes["gen_ai.request.temperature"] == 0.2
    assert req.attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_redact_user_api_key_info(rx: Receiver) -> None:
    export([with_detail(detail())], env_for(rx), ObserveSettings(success_callbacks=("otel",),
                                                                 redact_user_api_key_info=True))
    req = by_id(rx.spans())[SERVER]
    assert not [k for k in req.attributes if k.startswith("metadata.user_api_key")]


def test_incoming_parent_is_continued(rx: Receiver) -> None:
    d = detail(parent_span_id=PARENT, trace_flags=1)
    export([with_detail(d)], env_for(rx))
    ids = by_id(rx.spans())
    req = ids[SERVER]
    assert req.parent_span_id == PARENT
    assert req.trace_id == TRACE
    assert req.flags == 0x300  # the parent is remote
    assert ids[A1].parent_span_id == SERVER
    assert ids[A1].flags == 0x100


def test_unsampled_incoming_parent_is_not_exported(rx: Receiver) -> None:
    events: list[tuple[str, int]] = []
    sink = export([with_detail(detail(parent_span_id=PARENT, trace_flags=0))], env_for(rx), events=events)
    assert rx.spans() == []
    assert events == [] and sink.dropped == 0


def test_use_otel_litellm_request_span_puts_the_attributes_on_a_child(rx: Receiver) -> None:
    """LiteLLM's ``USE_OTEL_LITELLM_REQUEST_SPAN=true``: the server span keeps its name, ids and status, and an
    ``INTERNAL`` child named by ``generation_name`` (else ``litellm_request``) carries the attributes."""
    d = detail(metadata={"generation_name": "my-gen"}, tags=[])
    export([with_detail(d), record(call_id="plain")], env_for(rx, USE_OTEL_LITELLM_REQUEST_SPAN="true"))
    spans = rx.spans()
    req = by_id(spans)[SERVER]
    assert (req.kind, req.name, req.status, req.parent_span_id) == ("SERVER", "Received Proxy Server Request",
                                                                      "OK", "")
    assert req.attributes == {"http.response.status_code": 200}
    (child,) = [s for s in spans if s.parent_span_id == SERVER and s.kind == "INTERNAL"]
    assert child.name == "my-gen" and child.trace_id == req.trace_id and child.status == "OK"
    assert child.attributes["gen_ai.operation.name"] == "chat" and child.attributes["relaygate.call_id"]
    assert "gen_ai.operation.name" not in req.attributes
    assert by_id(spans)[A1].parent_span_id == SERVER  # the attempt keeps the id it sent upstream's parent
    names = sorted(s.name for s in spans if s.trace_id != req.trace_id)
    assert names == ["Received Proxy Server Request", "litellm_request"]


def test_record_without_detail_gets_fresh_ids(rx: Receiver) -> None:
    export([record(), record(call_id="call-2")], env_for(rx))
    spans = rx.spans()
    assert len(spans) == 2
    for s in spans:
        assert len(s.trace_id) == 32 and s.trace_id != "0" * 32
        assert len(s.span_id) == 16 and s.span_id != "0" * 16
        assert s.parent_span_id == ""
        assert s.kind == "SERVER" and s.name == "Received Proxy Server Request"
        assert "relaygate.attempts" not in s.attributes
        assert "gen_ai.input.messages" not in s.attributes
        assert s.attributes["gen_ai.response.id"] == s.attributes["relaygate.call_id"]
    assert spans[0].trace_id != spans[1].trace_id


def test_routes_other_than_chat(rx: Receiver) -> None:
    emb = detail(span_id="aaaaaaaaaaaaaaa1", input={"model": "e", "input": ["a", "b"]}, output=None, attempts=[
        attempt("aaaaaaaaaaaaaaa2", upstream_model="text-embedding-3-small", provider="azure",
                api_base="https://x.openai.azure.com")])
    msg = detail(span_id="bbbbbbbbbbbbbbb1", attempts=[attempt("bbbbbbbbbbbbbbb2", provider="bedrock",
                                                               upstream_model="claude", api_base="")],
                 input={"model": "c", "system": "sys", "max_tokens": 50,
                        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]},
                 output={"id": "msg_9", "model": "claude-x", "stop_reason": "end_turn",
                         "content": [{"type": "text", "text": "a"}]})
    export([with_detail(emb, call_id="e1", route="embeddings", provider="azure"),
            with_detail(msg, call_id="m1", route="messages", provider="bedrock")], env_for(rx))
    ids = by_id(rx.spans())
    e, ea = ids["aaaaaaaaaaaaaaa1"], ids["aaaaaaaaaaaaaaa2"]
    assert e.attributes["gen_ai.operation.name"] == "embeddings"
    assert e.attributes["llm.request.type"] == "aembedding"
    assert e.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert json.loads(e.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "a"}, {"type": "text", "content": "b"}]}]
    assert ea.name == "embeddings text-embedding-3-small"
    assert ea.attributes["server.address"] == "x.openai.azure.com"
    m, ma = ids["bbbbbbbbbbbbbbb1"], ids["bbbbbbbbbbbbbbb2"]
    assert m.attributes["gen_ai.operation.name"] == "chat"
    assert m.attributes["llm.request.type"] == "anthropic_messages"
    assert m.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert m.attributes["gen_ai.request.max_tokens"] == 50
    assert m.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert json.loads(m.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "sys"}]
    assert json.loads(m.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "text": "q"}]}]
    assert json.loads(m.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "a"}], "finish_reason": "end_turn"}]
    assert ma.name == "chat claude"
    assert "server.address" not in ma.attributes


def test_hostile_request_values_never_break_the_batch(rx: Receiver) -> None:
    bad_in = {"temperature": "hot", "max_tokens": True, "top_p": float("nan"), "stop": [1, 2], "n": 3,
              "messages": "not a list", "metadata": {"x": [1, {"y": None}]}}
    d = detail(input=bad_in, output={"choices": "nope", "id": 5, "model": None},
               metadata={"generation_name": 12, "session_id": ["x"], "nested": {"a": [1]}})
    export([with_detail(d), record(call_id="c2")], env_for(rx))
    spans = rx.spans()
    assert len(spans) == 3
    req = by_id(spans)[SERVER]
    assert req.name == "Received Proxy Server Request"  # a generation_name that is no string changes nothing
    for k in ("gen_ai.request.temperature", "gen_ai.request.max_tokens", "gen_ai.request.top_p",
              "gen_ai.request.stop_sequences", "gen_ai.input.messages", "gen_ai.conversation.id"):
        assert k not in req.attributes
    assert req.attributes["gen_ai.request.choice.count"] == 3
    assert req.attributes["gen_ai.response.id"] == "call-1"
    assert json.loads(req.attributes["metadata.requester_metadata"])["nested"] == {"a": [1]}


def test_callbacks_decide_which_outcomes_are_exported(rx: Receiver) -> None:
    ok = record(call_id="ok")
    bad = record(call_id="bad", outcome=Outcome.ERROR, status=500)
    keyed = with_detail(detail(span_id="cccccccccccccccc", attempts=[], logging=[
        LoggingTarget("otel", "failure")]), call_id="keyed", outcome=Outcome.ERROR, status=500)
    keyed_ok = with_detail(detail(span_id="dddddddddddddddd", attempts=[], logging=[
        LoggingTarget("otel", "failure")]), call_id="keyed-ok")
    export([ok, bad, keyed, keyed_ok], env_for(rx), ObserveSettings(success_callbacks=("otel",)))
    got = sorted(s.attributes["relaygate.call_id"] for s in rx.spans())
    assert got == ["keyed", "keyed-ok", "ok"]


def test_gzip_and_litellm_aliases_reach_the_receiver(rx: Receiver) -> None:
    env = {"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": rx.url, "OTEL_HEADERS": "x-team=t1",
           "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_SERVICE_NAME": "gw",
           "OTEL_RESOURCE_ATTRIBUTES": "region=eu", "OTEL_TRACER_NAME": "relay"}
    export([with_detail(detail())], env)
    (exp,) = rx.exports
    assert exp.headers["x-team"] == "t1"
    assert exp.headers["content-encoding"] == "gzip"
    s = rx.spans()[0]
    assert s.resource["service.name"] == "gw"
    assert s.resource["region"] == "eu"
    assert s.scope == "relay"


def test_attribute_length_limit(rx: Receiver) -> None:
    export([with_detail(detail())], env_for(rx, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="12"))
    req = by_id(rx.spans())[SERVER]
    assert req.attributes["gen_ai.input.messages"] == '[{"role":"sy'
    assert req.attributes["relaygate.call_id"] == "call-1"


def test_through_the_completion_queue(rx: Receiver) -> None:
    """As the gateway runs it: the queue's runner feeds the sink and closes it at shutdown."""
    events: list[tuple[str, int]] = []
    sink = make_otel(BOTH, env_for(rx), lambda e, n: events.append((e, n)))
    q = CompletionQueue(on_event=lambda e, n: events.append((e, n)))
    q.add_sink(sink)

    async def main() -> None:
        q.start()
        for i in range(20):
            q.put(with_detail(detail(span_id=f"{i + 1:016x}", attempts=[attempt(f"{i + 501:016x}")]),
                              call_id=f"c{i}"))
        await asyncio.sleep(0.05)
        await q.aclose()

    asyncio.run(main())
    spans = rx.spans()
    assert len(spans) == 40
    assert {s.attributes["relaygate.call_id"] for s in spans if s.kind == "SERVER"} == {f"c{i}" for i in range(20)}
    assert events == []
    assert q.stats()["sink_error:otel"] == 0


# -- exporter down, slow, failing ---------------------------------------------------------------------------


def test_aclose_flushes_what_waits_for_the_schedule(rx: Receiver) -> None:
    sink = make_otel(BOTH, env_for(rx, OTEL_BSP_SCHEDULE_DELAY="60000"), None)

    async def main() -> None:
        await sink.handle([with_detail(detail())])
        await asyncio.sleep(0.2)
        assert rx.spans() == []  # waiting for the 60 s schedule
        await sink.aclose()

    asyncio.run(main())
    assert len(rx.spans()) == 2


def test_flush_and_schedule(rx: Receiver) -> None:
    sink = make_otel(BOTH, env_for(rx, OTEL_BSP_SCHEDULE_DELAY="20"), None)

    async def main() -> None:
        await sink.handle([record(call_id="a")])
        assert len(await asyncio.to_thread(rx.wait_spans, 1)) == 1  # the processor's schedule sent it
        await sink.handle([record(call_id="b")])
        assert await sink.flush()
        assert len(rx.spans()) == 2
        await sink.aclose()

    asyncio.run(main())


def closed_port() -> str:
    with Receiver() as r:
        url = r.url
    return url


def test_receiver_gone_requests_unaffected_drops_counted(caplog: pytest.LogCaptureFixture) -> None:
    events: list[tuple[str, int]] = []
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": closed_port(), "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5",
           "OTEL_BSP_SCHEDULE_DELAY": "10"}
    sink = make_otel(BOTH, env, lambda e, n: events.append((e, n)))

    async def main() -> None:
        t = time.monotonic()
        await sink.handle([with_detail(detail()), record(call_id="x")])
        assert time.monotonic() - t < 0.5
        await sink.flush()
        await sink.aclose()

    with caplog.at_level(logging.WARNING, "relaygate.otel"):
        asyncio.run(main())
    assert sum(n for e, n in events if e == DROPPED_EVENT) == 3 == sink.dropped
    assert {e for e, _ in events} == {DROPPED_EVENT}
    lines = [r for r in caplog.records if r.name == "relaygate.otel"]
    assert len(lines) >= 1
    assert "receiver did not take them" in lines[0].getMessage()
    sdk = [r for r in caplog.records if r.name.startswith("opentelemetry.")]
    assert len(sdk) == len({(r.name, r.msg) for r in sdk})  # each SDK message at most once a minute


def test_receiver_refusing_counts_drops(rx: Receiver) -> None:
    rx.fail = 400
    events: list[tuple[str, int]] = []
    sink = export([with_detail(detail())], env_for(rx), events=events)
    assert rx.requests == 1
    assert sink.dropped == 2 and events == [(DROPPED_EVENT, 2)]


def test_hung_receiver_bounded_queue_and_prompt_close(rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    rx.hang()
    events: list[tuple[str, int]] = []
    env = env_for(rx, OTEL_BSP_MAX_QUEUE_SIZE="6", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2",
                  OTEL_BSP_SCHEDULE_DELAY="10", OTEL_EXPORTER_OTLP_TIMEOUT="5")
    sink = make_otel(BOTH, env, lambda e, n: events.append((e, n)))
    records = [with_detail(detail(span_id=f"{i:016x}", attempts=[attempt(f"{i + 100:016x}")]), call_id=f"c{i}")
               for i in range(1, 11)]

    async def main() -> None:
        await sink.handle(records[:1])
        deadline = time.monotonic() + 5
        while rx.requests < 1 and time.monotonic() < deadline:  # the exporter thread is now stuck
            await asyncio.sleep(0.01)
        t = time.monotonic()
        await sink.handle(records[1:])
        assert time.monotonic() - t < 2.5  # not the 5 s export timeout (a loaded CI pauses a second or more)
        # 2 spans are held by the hung request; the queue takes 6 more (3 records); 6 records are dropped
        assert sink.dropped == 12
        t = time.monotonic()
        await sink.aclose(timeout=0.3)
        assert time.monotonic() - t < 2

    with caplog.at_level(logging.WARNING, "relaygate.otel"):
        asyncio.run(main())
    # at close, the 6 queued spans and the 2 of the hung request are counted as lost
    assert sink.dropped == 20
    assert sum(n for e, n in events if e == DROPPED_EVENT) == 20
    lines = [r.getMessage() for r in caplog.records if r.name == "relaygate.otel" and r.levelno >= logging.WARNING]
    assert len(lines) == 2  # the first drop at once, then the close summary; nothing per span
    assert "export queue is full" in lines[0]
    assert "not exported at shutdown" in lines[1]


def test_drops_are_logged_at_most_once_per_interval(rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    rx.hang()
    events: list[tuple[str, int]] = []
    env = env_for(rx, OTEL_BSP_MAX_QUEUE_SIZE="1", OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_EXPORTER_OTLP_TIMEOUT="5")
    sink = make_otel(BOTH, env, lambda e, n: events.append((e, n)))
    lines: list[str] = []

    async def main() -> None:
        for i in range(5):
            await sink.handle([record(call_id=f"a{i}"), record(call_id=f"b{i}")])
            await asyncio.sleep(0.01)
        # warnings only: the exporter's INFO start line is captured too when an earlier test in this
        # process left the relaygate loggers at INFO
        lines.extend(r.getMessage() for r in caplog.records
                     if r.name == "relaygate.otel" and r.levelno >= logging.WARNING)
        await sink.aclose(timeout=0.2)

    with caplog.at_level(logging.WARNING, "relaygate.otel"):
        asyncio.run(main())
    # one span in the hung export, at most one more in the queue of one: the other 8 or 9 dropped at once,
    # the admitted ones at close (never sent)
    assert sink.ended in (1, 2)
    assert len(lines) == 1 and "export queue is full" in lines[0]
    assert sum(n for _, n in events) == sink.dropped == 10


def test_sdk_export_logs_are_throttled(caplog: pytest.LogCaptureFixture) -> None:
    from relaygate.observe.otel_logs import _Throttle

    logger = logging.getLogger("test.relaygate.otel.throttle")
    logger.addFilter(_Throttle(60.0))
    with caplog.at_level(logging.WARNING, "test.relaygate.otel.throttle"):
        for i in range(5):
            logger.warning("Transient error %s encountered, retrying in %.2fs.", i, 1.0)
            logger.error("Failed to export batch")
    assert [r.getMessage() for r in caplog.records] == ["Transient error 0 encountered, retrying in 1.00s.",
                                                        "Failed to export batch"]


def test_a_hostile_number_costs_its_attribute_and_one_bad_record_only_its_own_spans(rx: Receiver) -> None:
    # an integer no double can hold, where the span reads a sampling parameter: that attribute is left out
    huge = int("9" * 400)
    odd = with_detail(detail(trace_id="1" * 32, span_id="2" * 16, attempts=[attempt(span_id="3" * 16)],
                             input={**CHAT_IN, "temperature": huge, "top_p": -huge}), call_id="odd")
    # a record whose spans cannot be built at all (here: a cost breakdown no attribute name can be made of, on the
    # compiled writer and on the pure path alike) loses only its own spans
    bad = with_detail(detail(trace_id="4" * 32, span_id="5" * 16, attempts=[attempt(span_id="6" * 16)]),
                      call_id="bad")
    assert isinstance(bad.extra, dict)
    bad.extra["cost_breakdown"] = {1: 0.5}
    events: list[tuple[str, int]] = []
    sink = export([odd, bad, with_detail(detail())], env_for(rx), events=events)
    ids = by_id(rx.spans())
    assert set(ids) == {"2" * 16, "3" * 16, SERVER, A1}  # the good records' spans, both of each
    odd_req = ids["2" * 16].attributes
    assert "gen_ai.request.temperature" not in odd_req and "gen_ai.request.top_p" not in odd_req
    assert odd_req["gen_ai.request.max_tokens"] == 100
    assert (DROPPED_EVENT, 2) in events and sink.dropped == 2


def test_a_record_that_fails_midway_counts_only_the_spans_it_did_not_hand_on(rx: Receiver) -> None:
    # the second attempt's span id is no hex number: its span cannot be made, on either path
    two = with_detail(detail(attempts=[attempt(span_id=A1, status=503, error_type="ServiceUnavailable"),
                                       attempt(span_id="not-a-span-id!!")]), retries=1)
    events: list[tuple[str, int]] = []
    sink = export([two], env_for(rx), events=events)
    if sink.fast is None:  # the pure path hands each span on as it is made
        assert set(by_id(rx.spans())) == {A1}  # the first attempt's span was handed on before the failure
        assert sink.dropped == 2 and (DROPPED_EVENT, 2) in events  # the second attempt's and the request's
        assert sink.ended == sink.built == 1
    else:  # the compiled writer makes a record's spans before handing any: the trace is lost whole
        assert rx.spans() == []
        assert sink.dropped == 3 and (DROPPED_EVENT, 3) in events
        assert sink.ended == sink.built == 0
