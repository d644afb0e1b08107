"""LiteLLM's OpenTelemetry presets ``logfire``, ``signoz`` and ``langtrace``: where they send and with which credential, checked
at a real OTLP/HTTP receiver that decodes with the official protobuf messages, and through a real
``relaygate serve`` beside ``otel``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe import check
from relaygate.observe.otel_presets import LOGFIRE_DEFAULT, PresetOtelSink, make_preset, preset_settings
from relaygate.sinks.record import CompletionRecord
from tests.conftest import start_gateway
from tests.observe.otlp_receiver import Receiver
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, SERVER, TRACE, detail, with_detail


@pytest.fixture(autouse=True)
def _no_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LOGFIRE_", "SIGNOZ_", "LANGTRACE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _settings(name: str) -> ObserveSettings:
    return ObserveSettings(success_callbacks=(name,), failure_callbacks=(name,))


def export(name: str, records: list[CompletionRecord], env: dict[str, str],
           events: list[tuple[str, int]] | None = None) -> PresetOtelSink:
    sink = make_preset(name)(_settings(name), env, (lambda e, n: events.append((e, n))) if events is not None
                             else None)

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def test_logfire_destination() -> None:
    s = ObserveSettings()
    cfg = preset_settings("logfire", s, {"LOGFIRE_TOKEN": "pylf_v1_us_x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                                         "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a", "OTEL_EXPORTER": "otlp_grpc",
                                         "OTEL_EXPORTER_OTLP_TIMEOUT": "3"})
    assert cfg.endpoint == LOGFIRE_DEFAULT + "/v1/traces" and cfg.protocol == "http/protobuf"
    assert cfg.headers == {"Authorization": "pylf_v1_us_x"} and cfg.timeout == 3.0  # otel's destination not used
    cfg = preset_settings("logfire", s, {"LOGFIRE_TOKEN": "t", "LOGFIRE_BASE_URL": "https://logfire-eu.example/"})
    assert cfg.endpoint == "https://logfire-eu.example/v1/traces"
    with pytest.raises(ConfigError, match="LOGFIRE_TOKEN"):
        preset_settings("logfire", s, {})
    with pytest.raises(ConfigError, match="control character"):
        preset_settings("logfire", s, {"LOGFIRE_TOKEN": "t\r\nX-Evil: 1"})
    with pytest.raises(ConfigError, match="LOGFIRE_TOKEN"):  # serve and check-config refuse before any worker
        check(_settings("logfire"), {})


def test_signoz_destination() -> None:
    s = ObserveSettings()
    cfg = preset_settings("signoz", s, {"SIGNOZ_INGESTION_ENDPOINT": "https://ingest.us.signoz.cloud:443"})
    assert cfg.endpoint == "https://ingest.us.signoz.cloud:443/v1/traces" and cfg.headers == {}
    cfg = preset_settings("signoz", s, {"SIGNOZ_INGESTION_ENDPOINT": "http://otel:4318/v1/traces",
                                        "SIGNOZ_INGESTION_KEY": "k-1"})
    assert cfg.endpoint == "http://otel:4318/v1/traces" and cfg.headers == {"signoz-ingestion-key": "k-1"}
    with pytest.raises(ConfigError, match="SIGNOZ_INGESTION_ENDPOINT"):
        preset_settings("signoz", s, {"SIGNOZ_INGESTION_KEY": "k"})
    with pytest.raises(ConfigError, match="http"):
        preset_settings("signoz", s, {"SIGNOZ_INGESTION_ENDPOINT": "otel:4318"})


@pytest.mark.parametrize("name", ["logfire", "signoz"])
def test_spans_reach_the_preset_with_its_credential(name: str, rx: Receiver) -> None:
    env = ({"LOGFIRE_TOKEN": "lf-token", "LOGFIRE_BASE_URL": rx.url} if name == "logfire" else
           {"SIGNOZ_INGESTION_ENDPOINT": rx.url, "SIGNOZ_INGESTION_KEY": "sz-key"})
    export(name, [with_detail(detail())], {**env, "OTEL_BSP_SCHEDULE_DELAY": "10"})
    spans = rx.wait_spans(2)
    (ex,) = rx.exports
    if name == "logfire":
        assert ex.headers["authorization"] == "lf-token"
    else:
        assert ex.headers["signoz-ingestion-key"] == "sz-key"
    (server,) = [s for s in spans if s.name == "Received Proxy Server Request"]
    assert (server.trace_id, server.span_id) == (TRACE, SERVER)
    assert server.attributes["gen_ai.request.model"] == "gpt-4o-alias"  # the otel callback's spans
    assert [s.name for s in spans if s is not server] == ["chat gpt-4o"]


def test_langtrace_destination_and_attributes() -> None:
    s = _settings("langtrace")
    cfg = preset_settings("langtrace", s, {"LANGTRACE_API_KEY": "lt-key"})
    assert cfg.endpoint == "https://app.langtrace.ai/api/trace" and cfg.headers == {"x-api-key": "lt-key"}
    assert cfg.protocol == "http/protobuf"
    cfg = preset_settings("langtrace", s, {"LANGTRACE_API_KEY": "k", "LANGTRACE_API_HOST": "http://lt:3000/api/trace/"})
    assert cfg.endpoint == "http://lt:3000/api/trace"
    with pytest.raises(ConfigError, match="LANGTRACE_API_KEY"):  # as LiteLLM: no key, no callback
        preset_settings("langtrace", s, {"LANGTRACE_API_HOST": "http://lt:3000"})
    with pytest.raises(ConfigError, match="LANGTRACE_API_KEY"):
        preset_settings("langtrace", s, {"LANGTRACE_API_KEY": "k\nX-Evil: 1"})


def test_langtrace_spans_carry_litellms_langtrace_attributes() -> None:
    with Receiver(path="/api/trace") as rx:
        body = {**CHAT_IN, "top_k": 5, "user": "u-9", "presence_penalty": 0.5, "frequency_penalty": 0}
        answer = {**CHAT_OUT, "system_fingerprint": "fp_1"}
        export("langtrace", [with_detail(detail(input=body, output=answer))],
               {"LANGTRACE_API_KEY": "lt-key", "LANGTRACE_API_HOST": rx.url, "OTEL_BSP_SCHEDULE_DELAY": "10"})
        spans = rx.wait_spans(2)
        assert rx.exports[0].headers["x-api-key"] == "lt-key"
    (server,) = [sp for sp in spans if sp.name == "Received Proxy Server Request"]
    a = server.attributes
    assert a["langtrace.service.name"] == "openai" and a["llm.top_k"] == 5 and a["llm.user"] == "u-9"
    assert a["llm.presence_penalty"] == 0.5 and "llm.frequency_penalty" not in a  # empty values left out, as LiteLLM
    assert list(a["llm.response.stop_reason"]) == ["\n"]
    assert a["gen_ai.response_id"] == "chatcmpl-123" and a["gen_ai.system_fingerprint"] == "fp_1"
    assert a["gen_ai.usage.prompt_tokens"] > 0 and a["gen_ai.request.model"] == "gpt-4o-alias"
    # the other presets' spans stay the otel callback's
    with Receiver() as plain:
        export("logfire", [with_detail(detail(input=body, output=answer))],
               {"LOGFIRE_TOKEN": "t", "LOGFIRE_BASE_URL": plain.url, "OTEL_BSP_SCHEDULE_DELAY": "10"})
        (other,) = [sp for sp in plain.wait_spans(2) if sp.name == "Received Proxy Server Request"]
    assert "langtrace.service.name" not in other.attributes


def test_a_refusing_receiver_counts_drops(rx: Receiver) -> None:
    rx.fail = 401
    events: list[tuple[str, int]] = []
    sink = export("logfire", [with_detail(detail())], {"LOGFIRE_TOKEN": "t", "LOGFIRE_BASE_URL": rx.url}, events)
    assert sink.dropped == 2 and ("logfire_dropped", 2) in events
    assert CALLBACK_FAILURES["logfire_dropped"] == "logfire" and CALLBACK_FAILURES["signoz_dropped"] == "signoz"


def test_logfire_beside_otel_through_the_gateway() -> None:
    """Each callback exports to its own destination (LiteLLM would hand ``logfire`` the ``otel`` logger)."""
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["otel", "logfire"]
general_settings:
  master_key: sk-preset-master
"""
    with Receiver() as collector, Receiver() as logfire, start_gateway(config, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "LOGFIRE_TOKEN": "lf-secret-token",
            "LOGFIRE_BASE_URL": logfire.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-preset-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello there"}]}, timeout=10)
        assert r.status_code == 200, r.text
        for rx in (collector, logfire):
            (span,) = [s for s in rx.wait_spans(1) if s.name == "Received Proxy Server Request"]
            assert span.attributes["litellm.call_id"] == r.headers["x-litellm-call-id"]
        assert logfire.exports[0].headers["authorization"] == "lf-secret-token"
        assert "authorization" not in collector.exports[0].headers
        assert "lf-secret-token" not in gw.log()
