"""LiteLLM's ``arize`` and ``arize_phoenix`` callbacks: where they send (endpoints, protocols, auth headers,
projects), the OpenInference attributes on their spans, checked at a real OTLP/HTTP receiver that decodes
with the official protobuf messages; Phoenix started beside ``otel``; and through a real ``relaygate serve``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import KNOWN_CALLBACKS, ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.arize import (
    ArizeSink,
    PhoenixSink,
    arize_otlp_settings,
    make_arize,
    make_arize_phoenix,
    phoenix_otlp_settings,
)
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.conftest import start_gateway
from tests.observe.otlp_receiver import Receiver, Span
from tests.observe.test_otel_export import PARENT, SERVER, TRACE, detail, with_detail

ARIZE = {"ARIZE_API_KEY": "ak-secret-1", "ARIZE_SPACE_ID": "space-1"}
GRPC = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None
S = ObserveSettings()


@pytest.fixture(autouse=True)
def _no_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "ARIZE_", "PHOENIX_")):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def both(name: str) -> ObserveSettings:
    return ObserveSettings(success_callbacks=(name,), failure_callbacks=(name,))


def export(sink: ArizeSink, records: list[CompletionRecord]) -> None:
    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())


def by_name(spans: list[Span], name: str) -> Span:
    (span,) = [s for s in spans if s.name == name]
    return span


# -- where they send ---------------------------------------------------------------------------------------


def test_arize_endpoints_headers_and_project() -> None:
    cfg = arize_otlp_settings(S, {**ARIZE, "ARIZE_HTTP_ENDPOINT": "https://otlp.arize.com/v1",
                                  "ARIZE_PROJECT_NAME": "proj-a", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318",
                                  "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a", "OTEL_EXPORTER_OTLP_TIMEOUT": "3"})
    assert (cfg.protocol, cfg.endpoint) == ("http/protobuf", "https://otlp.arize.com/v1/traces")
    assert cfg.headers == {"space_id": "space-1", "api_key": "ak-secret-1"}  # the otel callback's headers are not
    assert cfg.timeout == 3.0 and cfg.tracer_name == "litellm"
    assert (cfg.resource["service.name"], cfg.resource["model_id"]) == ("proj-a", "proj-a")
    # ARIZE_SPACE_KEY wins over ARIZE_SPACE_ID; OTEL_SERVICE_NAME over the project (LiteLLM's resource merge)
    cfg = arize_otlp_settings(S, {**ARIZE, "ARIZE_SPACE_KEY": "sk-space", "ARIZE_HTTP_ENDPOINT": "http://h:1/x",
                                  "ARIZE_PROJECT_NAME": "proj-a", "OTEL_SERVICE_NAME": "svc"})
    assert cfg.headers["space_id"] == "sk-space" and cfg.endpoint == "http://h:1/x/v1/traces"
    assert cfg.resource["service.name"] == "svc"


@pytest.mark.parametrize(("env", "variable"), [
    ({"ARIZE_SPACE_ID": "s"}, "ARIZE_API_KEY"),
    ({"ARIZE_API_KEY": "k"}, "ARIZE_SPACE_ID"),
    ({**ARIZE, "ARIZE_HTTP_ENDPOINT": "otlp.arize.com/v1"}, "ARIZE_HTTP_ENDPOINT"),
    ({"ARIZE_API_KEY": "k\r\nx-injected: 1", "ARIZE_SPACE_ID": "s", "ARIZE_HTTP_ENDPOINT": "http://h"},
     "ARIZE_API_KEY"),
])
def test_arize_refuses_what_cannot_work(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as err:
        arize_otlp_settings(S, env)
    assert variable in str(err.value)
    assert "k\r\n" not in str(err.value)


def test_arize_defaults_to_grpc() -> None:
    if GRPC:
        cfg = arize_otlp_settings(S, ARIZE)
        assert (cfg.protocol, cfg.endpoint) == ("grpc", "https://otlp.arize.com/v1/traces")
        return
    with pytest.raises(ConfigError) as err:  # the gRPC exporter is not installed: the error says what to do
        arize_otlp_settings(S, ARIZE)
    assert "ARIZE_ENDPOINT" in str(err.value) and "ARIZE_HTTP_ENDPOINT" in str(err.value)


def test_phoenix_endpoints_auth_and_project() -> None:
    cfg, project = phoenix_otlp_settings(S, {})
    assert (cfg.protocol, cfg.endpoint, cfg.headers, project) == (
        "http/protobuf", "http://localhost:6006/v1/traces", {}, "default")
    cfg, project = phoenix_otlp_settings(S, {"PHOENIX_COLLECTOR_ENDPOINT": "https://app.phoenix.arize.com/s/me",
                                             "PHOENIX_API_KEY": "px-1", "ARIZE_PROJECT_NAME": "fallback"})
    assert cfg.endpoint == "https://app.phoenix.arize.com/s/me/v1/traces"
    assert cfg.headers == {"authorization": "Bearer px-1"} and project == "fallback"
    assert {k: cfg.resource[k] for k in ("openinference.project.name", "model_id", "service.name")} == {
        "openinference.project.name": "fallback", "model_id": "fallback", "service.name": "fallback"}
    cfg, project = phoenix_otlp_settings(S, {"PHOENIX_COLLECTOR_HTTP_ENDPOINT": "http://phoenix:6006/",
                                             "PHOENIX_COLLECTOR_ENDPOINT": "http://ignored:1",
                                             "PHOENIX_PROJECT_NAME": "p1", "ARIZE_PROJECT_NAME": "p2"})
    assert (cfg.endpoint, project) == ("http://phoenix:6006/v1/traces", "p1")
    with pytest.raises(ConfigError, match="PHOENIX_API_KEY"):  # Phoenix Cloud needs its key (LiteLLM's error)
        phoenix_otlp_settings(S, {"PHOENIX_COLLECTOR_ENDPOINT": "https://app.phoenix.arize.com/s/me"})
    if not GRPC:
        with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-grpc"):
            phoenix_otlp_settings(S, {"PHOENIX_COLLECTOR_ENDPOINT": "grpc://phoenix:4317"})


def test_the_callbacks_are_known_and_their_drops_counted() -> None:
    assert {"arize", "arize_phoenix"} <= KNOWN_CALLBACKS
    assert CALLBACK_FAILURES["arize_dropped"] == "arize"
    assert CALLBACK_FAILURES["arize_phoenix_dropped"] == "arize_phoenix"


# -- what they send ----------------------------------------------------------------------------------------


def test_an_arize_span_carries_openinference_attributes(rx: Receiver) -> None:
    d = detail(parent_span_id=PARENT, metadata={"session_id": "sess-1", "generation_name": "gen-7"})
    sink = make_arize(both("arize"), {**ARIZE, "ARIZE_HTTP_ENDPOINT": rx.url, "ARIZE_PROJECT_NAME": "proj"})
    export(sink, [with_detail(d, cache_read_tokens=3)])
    (span,) = rx.wait_spans(1)
    assert rx.exports[0].headers["space_id"] == "space-1" and rx.exports[0].headers["api_key"] == "ak-secret-1"
    assert (span.name, span.kind, span.trace_id, span.span_id, span.parent_span_id) == (
        "gen-7", "INTERNAL", TRACE, SERVER, PARENT)
    assert span.status == "OK" and span.resource["service.name"] == "proj"
    a = span.attributes
    assert a["openinference.span.kind"] == "LLM"
    assert (a["llm.model_name"], a["llm.provider"], a["llm.request.type"]) == ("gpt-4o", "openai", "acompletion")
    assert (a["llm.request.temperature"], a["llm.request.top_p"], a["llm.request.max_tokens"]) == (0.2, 0.9, 100)
    assert a["llm.is_streaming"] == "False"
    assert json.loads(a["llm.invocation_parameters"]) == {"temperature": 0.2, "max_tokens": 100, "top_p": 0.9,
                                                          "stop": ["\n"], "seed": 7}
    assert a["input.value"] == "hi"
    assert [(a[f"llm.input_messages.{i}.message.role"], a[f"llm.input_messages.{i}.message.content"])
            for i in (0, 1)] == [("system", "be brief"), ("user", "hi")]
    assert (a["output.value"], a["llm.output_messages.0.message.role"]) == ("hello", "assistant")
    assert (a["llm.response.id"], a["llm.response.model"]) == ("chatcmpl-123", "gpt-4o-2024-08-06")
    assert (a["llm.token_count.prompt"], a["llm.token_count.completion"], a["llm.token_count.total"]) == (10, 5, 15)
    assert a["llm.token_count.prompt_details.cache_read"] == 3
    assert a["llm.cost.total"] == a["llm.response.cost"] == 0.00025
    assert (a["session.id"], a["litellm.trace_id"], a["user.id"]) == ("sess-1", "sess-1", "user-1")
    assert (a["litellm.team_id"], a["litellm.key_alias"], a["litellm.team_alias"]) == ("team-1", "my-key",
                                                                                        "team-alias")
    assert list(a["tag.tags"]) == ["t1", "t2"]
    meta = json.loads(a["metadata"])
    assert meta["user_api_key_team_id"] == "team-1" and meta["requester_metadata"]["session_id"] == "sess-1"
    assert not any(k.startswith("gen_ai.") for k in a)  # OpenInference's names, not the GenAI conventions


def test_tools_parts_and_tool_calls() -> None:
    from relaygate.observe.openinference import openinference_attributes

    body = {"model": "m", "stream": True, "user": "end-1", "num_retries": 2, "metadata": {"x": 1},
            "tools": [{"type": "function", "function": {"name": "get", "description": "d",
                                                        "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                      {"type": "input_audio", "input_audio": {}},
                                                      {"type": "image_url", "image_url": {"url": "https://i/x.png"}}]},
                         {"role": "assistant", "content": None,
                          "tool_calls": [{"id": "c1", "type": "function",
                                          "function": {"name": "get", "arguments": "{\"q\":1}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    answer = {"id": "r1", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
              "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "get", "arguments": "{}"}}]}}]}
    r = with_detail(detail(input=body, output=answer), stream=True)
    a = openinference_attributes(r, r.extra["observe"], content=True)
    assert a["llm.tools.0.name"] == "get" and json.loads(a["llm.tools.0.parameters"]) == {"type": "object"}
    assert json.loads(a["llm.invocation_parameters"]) == {"stream": True, "user": "end-1", "tools": body["tools"]}
    assert (a["llm.user"], a["user.id"], a["llm.is_streaming"]) == ("end-1", "end-1", "True")
    p = "llm.input_messages.0.message"
    assert (a[f"{p}.contents.0.message_content.type"], a[f"{p}.contents.0.message_content.text"]) == ("text", "look")
    assert f"{p}.contents.1.message_content.type" not in a  # audio: skipped, its index kept
    assert a[f"{p}.contents.2.message_content.image.image.url"] == "https://i/x.png"
    assert f"{p}.content" not in a
    q = "llm.input_messages.1.message.tool_calls.0.tool_call"
    assert (a[f"{q}.id"], a[f"{q}.function.name"], a[f"{q}.function.arguments"]) == ("c1", "get", "{\"q\":1}")
    assert a["llm.input_messages.2.message.tool_call_id"] == "c1" and a["input.value"] == "42"
    assert json.loads(a["output.value"]) == {"tool_calls": answer["choices"][0]["message"]["tool_calls"]}
    assert a["llm.output_messages.0.message.tool_calls.0.tool_call.id"] == "c2"


def test_a_phoenix_trace_has_the_proxy_span_and_the_request_span(rx: Receiver) -> None:
    sink = make_arize_phoenix(both("arize_phoenix"), {"PHOENIX_COLLECTOR_HTTP_ENDPOINT": rx.url,
                                                      "PHOENIX_API_KEY": "px-secret", "PHOENIX_PROJECT_NAME": "p1"})
    export(sink, [with_detail(detail(parent_span_id=PARENT))])
    spans = rx.wait_spans(2)
    proxy, request = by_name(spans, "litellm_proxy_request"), by_name(spans, "litellm_request")
    assert rx.exports[0].headers["authorization"] == "Bearer px-secret"
    assert (proxy.kind, proxy.span_id, proxy.parent_span_id) == ("SERVER", SERVER, PARENT)
    assert (request.kind, request.parent_span_id, request.trace_id) == ("INTERNAL", SERVER, TRACE)
    assert proxy.attributes == request.attributes and request.attributes["openinference.span.kind"] == "LLM"
    assert request.resource["openinference.project.name"] == "p1" and request.resource["service.name"] == "p1"


def test_a_keys_own_arize_space_gets_its_spans(rx: Receiver) -> None:
    """A key's ``arize`` entry with its own API key and space gets that key's spans (its credentials only) on the
    configured endpoint; one without them falls back to the configured space; Phoenix entries always do."""
    from relaygate.observe.detail import LoggingTarget

    keyed = with_detail(detail(logging=[LoggingTarget("arize", "success_and_failure", {
        "arize_api_key": "ak-own", "arize_space_key": "space-own"})], metadata={}), call_id="keyed")
    bare = with_detail(detail(trace_id="4" * 32, logging=[LoggingTarget("arize", "success", {})], metadata={}),
                       call_id="bare")
    export(make_arize(ObserveSettings(), {**ARIZE, "ARIZE_HTTP_ENDPOINT": rx.url}), [keyed, bare])
    spans = rx.wait_spans(2)
    by_headers = {e.headers["api_key"]: e.headers["space_id"] for e in rx.exports}
    assert by_headers == {"ak-own": "space-own", "ak-secret-1": "space-1"}
    assert {s.attributes["litellm.trace_id"] for s in spans} == {"keyed", "bare"}
    phoenix = make_arize_phoenix(ObserveSettings(), {"PHOENIX_COLLECTOR_ENDPOINT": rx.url})
    assert phoenix.destination(LoggingTarget("arize_phoenix", "success", {"arize_api_key": "x",
                                                                            "arize_space_key": "y"})) is None
    phoenix.discard()


def test_a_keys_phoenix_project_and_auth_metadata(rx: Receiver) -> None:
    """A key's own Phoenix project (its metadata, never the client's) and LiteLLM's
    ``user_api_key_auth_metadata`` without the key's callback settings; ``redact_user_api_key_info`` hides it."""
    sink = make_arize_phoenix(both("arize_phoenix"), {"PHOENIX_COLLECTOR_ENDPOINT": rx.url})
    secret = {"logging": [{"callback_name": "langfuse", "callback_vars": {"langfuse_secret_key": "sk-hidden"}}],
              "callback_settings": {"x": 1}}
    export(sink, [with_detail(detail(key_metadata={"phoenix_project_name": "proj-k", "team": "a", **secret},
                                     metadata={}),
                              call_id="k"),
                  with_detail(detail(metadata={"phoenix_project_name": "client-says"}), call_id="c")])
    spans = rx.wait_spans(4)
    projects = {s.attributes["litellm.trace_id"]: s.resource["openinference.project.name"] for s in spans}
    assert projects == {"k": "proj-k", "c": "default"}
    keyed = next(s for s in spans if s.attributes["litellm.trace_id"] == "k")
    assert json.loads(keyed.attributes["metadata"])["user_api_key_auth_metadata"] == {
        "phoenix_project_name": "proj-k", "team": "a"}
    assert "sk-hidden" not in json.dumps([s.attributes for s in spans])
    from relaygate.observe.standard import standard_metadata
    r = with_detail(detail(key_metadata={"team": "a"}))
    assert standard_metadata(r, r.extra["observe"], redact_key_info=True)[0]["user_api_key_auth_metadata"] is None
    assert standard_metadata(r, r.extra["observe"])[0]["user_api_key_auth_metadata"] == {"team": "a"}


def test_a_failure_and_redacted_content(rx: Receiver) -> None:
    settings = ObserveSettings(success_callbacks=("arize",), failure_callbacks=("arize",),
                               turn_off_message_logging=True)
    failed = with_detail(detail(output=None, error_message="upstream said no"), call_id="f", status=429,
                         outcome=Outcome.ERROR, error_type="rate_limit_error", completion_tokens=0)
    export(make_arize(settings, {**ARIZE, "ARIZE_HTTP_ENDPOINT": rx.url}), [failed, with_detail(detail())])
    spans = rx.wait_spans(2)
    bad = next(s for s in spans if s.status == "ERROR")
    good = next(s for s in spans if s.status == "OK")
    a = bad.attributes
    assert bad.status_message == "upstream said no"
    assert (a["error.code"], a["http.response.status_code"], a["error.message"]) == ("429", 429, "upstream said no")
    assert a["error.type"] and a["error.llm_provider"] == "openai"
    assert [(e.name, e.attributes["exception.message"]) for e in bad.events] == [("exception", "upstream said no")]
    assert "output.value" not in a and a["input.value"] == "redacted-by-litellm"
    g = good.attributes
    assert g["input.value"] == g["output.value"] == g["llm.input_messages.0.message.content"] == \
        "redacted-by-litellm"
    assert "llm.input_messages.1.message.role" not in g and "hi" not in json.dumps(g)
    assert "llm.invocation_parameters" in g  # parameters are not message content (LiteLLM keeps them too)


def test_a_receiver_refusing_counts_drops(rx: Receiver) -> None:
    rx.fail = 401
    events: list[tuple[str, int]] = []
    sink = make_arize_phoenix(both("arize_phoenix"), {"PHOENIX_COLLECTOR_ENDPOINT": rx.url},
                              lambda e, n: events.append((e, n)))
    export(sink, [with_detail(detail())])
    assert sink.dropped == 2 and ("arize_phoenix_dropped", 2) in events


def test_phoenix_starts_beside_otel_when_its_variables_are_set(rx: Receiver) -> None:
    from relaygate.metrics import Metrics
    from relaygate.observe import install
    from relaygate.sinks.queue import CompletionQueue

    otel_only = ObserveSettings(success_callbacks=("otel",))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url, "PHOENIX_COLLECTOR_ENDPOINT": rx.url}
    out = install(otel_only, CompletionQueue(), Metrics(), None, env)
    phoenix = [s for s in out.sinks if isinstance(s, PhoenixSink)]
    assert len(phoenix) == 1 and phoenix[0].success and phoenix[0].failure  # every request, as LiteLLM's
    assert not any(isinstance(s, PhoenixSink) for s in install(otel_only, CompletionQueue(), Metrics(), None, {
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url}).sinks)
    # one that cannot start is a warning, not a refusal: it was not asked for by name
    cloud = install(otel_only, CompletionQueue(), Metrics(), None,
                    {**env, "PHOENIX_COLLECTOR_ENDPOINT": "https://app.phoenix.arize.com/s/x"})
    assert not any(isinstance(s, PhoenixSink) for s in cloud.sinks)
    for s in [*out.sinks, *cloud.sinks]:
        s.discard()


# -- through the gateway ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_arize_phoenix_through_the_gateway() -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["arize_phoenix"]
general_settings:
  master_key: sk-px-master
"""
    with Receiver() as rx, start_gateway(config, env={
            "PHOENIX_COLLECTOR_ENDPOINT": rx.url, "PHOENIX_API_KEY": "px-secret-key",
            "PHOENIX_PROJECT_NAME": "gw-project", "OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-px-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello there"}],
                             "metadata": {"session_id": "s-9"}}, timeout=10)
        assert r.status_code == 200, r.text
        spans = rx.wait_spans(2)
        request = by_name(spans, "litellm_request")
        a = request.attributes
        assert rx.exports[0].headers["authorization"] == "Bearer px-secret-key"
        assert request.resource["openinference.project.name"] == "gw-project"
        assert a["input.value"] == "hello there" and a["session.id"] == "s-9"
        assert a["llm.output_messages.0.message.role"] == "assistant" and a["output.value"]
        assert a["llm.token_count.total"] > 0
        # a key whose metadata names its own project (and holds a logging entry with a secret)
        admin = {"Authorization": "Bearer sk-px-master"}
        key = httpx.post(f"{gw.url}/key/generate", headers=admin, timeout=10, json={"metadata": {
            "phoenix_project_name": "key-project", "cost_center": "cc-7",
            "logging": [{"callback_name": "langfuse", "callback_vars": {"langfuse_secret_key": "sk-lf-hidden"}}]}}
        ).json()["key"]
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "again"}]}, timeout=10)
        assert r.status_code == 200, r.text
        spans = rx.wait_spans(4)
        keyed = [s for s in spans if s.name == "litellm_request" and s.attributes["input.value"] == "again"]
        assert [s.resource["openinference.project.name"] for s in keyed] == ["key-project"]
        meta = json.loads(keyed[0].attributes["metadata"])
        assert meta["user_api_key_auth_metadata"] == {"phoenix_project_name": "key-project", "cost_center": "cc-7"}
        assert "sk-lf-hidden" not in json.dumps([s.attributes for s in spans])
        assert "px-secret-key" not in gw.log()


@pytest.mark.e2e
def test_keys_own_arize_spaces_without_the_callback_configured() -> None:
    """No ``arize`` callback and no ``ARIZE_*`` keys, only the endpoint: a key whose ``metadata.logging`` names
    its own Arize space starts the exporter and gets its spans there, with its credentials only; a key whose
    entry has no keys has nowhere to go (dropped, counted in ``/metrics``); other requests export nothing."""
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
general_settings:
  master_key: sk-az-master
"""
    with Receiver() as rx, start_gateway(config, env={"ARIZE_HTTP_ENDPOINT": rx.url, "OTEL_BSP_SCHEDULE_DELAY": "50",
                                                      "ARIZE_API_KEY": "", "ARIZE_SPACE_KEY": "", "ARIZE_SPACE_ID": ""}
                                         ) as gw:
        admin = {"Authorization": "Bearer sk-az-master"}

        def key(entry: dict[str, str]) -> str:
            r = httpx.post(f"{gw.url}/key/generate", headers=admin, timeout=10, json={"metadata": {"logging": [
                {"callback_name": "arize", "callback_type": "success", "callback_vars": entry}]}})
            assert r.status_code == 200, r.text
            return str(r.json()["key"])

        own, bare = key({"arize_api_key": "ak-team-own", "arize_space_key": "space-team"}), key({})
        for k, text in ((own, "mine"), (bare, "nowhere"), ("sk-az-master", "plain")):
            r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {k}"},
                           json={"model": "m", "messages": [{"role": "user", "content": text}]}, timeout=10)
            assert r.status_code == 200, r.text
        spans = rx.wait_spans(1)
        deadline = time.monotonic() + 10
        metrics = ""
        while time.monotonic() < deadline and 'event="arize_dropped"' not in metrics:
            metrics = httpx.get(f"{gw.url}/metrics", headers=admin, timeout=10).text
            time.sleep(0.1)
        time.sleep(0.3)
        assert [s.attributes["input.value"] for s in rx.spans()] == ["mine"]
        assert {(e.headers["api_key"], e.headers["space_id"]) for e in rx.exports} == {("ak-team-own", "space-team")}
        assert spans[0].name == "litellm_request"
        assert 'event="arize_dropped"' in metrics
        assert "observability: arize started for keys' logging targets" in gw.log()
        assert "ak-team-own" not in gw.log()
