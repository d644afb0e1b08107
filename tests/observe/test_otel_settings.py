"""The OTLP exporter's configuration from the environment: standard variables, LiteLLM's aliases, errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe.otel import OtlpSettings, make_otel, otlp_settings

ON = ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",), exporter_queue=300)


def cfg(**env: str) -> OtlpSettings:
    return otlp_settings(ON, env)


def test_defaults_are_the_sdks_and_litellms() -> None:
    c = cfg()
    assert c.protocol == "http/protobuf"
    assert c.endpoint == "http://localhost:4318/v1/traces"
    assert c.headers == {}
    assert c.timeout == 10.0
    assert c.compression == "none"
    assert (c.certificate, c.client_key, c.client_certificate) == (None, None, None)
    assert c.resource["service.name"] == "litellm"
    assert c.resource["deployment.environment"] == "production"
    assert c.resource["model_id"] == "litellm"
    assert c.resource["telemetry.sdk.language"] == "python"
    assert c.tracer_name == "litellm"
    assert (c.schedule_delay_ms, c.max_export_batch, c.max_queue) == (5000.0, 300, 300)
    assert c.attribute_length is None


@pytest.mark.parametrize(("env", "endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c.example/otlp"}, "https://c.example/otlp/v1/traces"),
    # LiteLLM's normalisation: a path that already names the signal is kept, another signal's is replaced
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://api.honeycomb.io/v1/traces"}, "https://api.honeycomb.io/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/v1/logs"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/v1"}, "http://c:4318/v1/traces"),
    # LiteLLM's alias
    ({"OTEL_ENDPOINT": "https://api.honeycomb.io/v1/traces"}, "https://api.honeycomb.io/v1/traces"),
    ({"OTEL_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
    # the standard name wins over the alias; the traces-specific one is used exactly as given
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://std:4318", "OTEL_ENDPOINT": "http://alias:4318"},
     "http://std:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom/path", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://std"},
     "http://t:4318/custom/path"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, "http://localhost:4318/v1/traces"),
])
def test_endpoint(env: dict[str, str], endpoint: str) -> None:
    assert cfg(**env).endpoint == endpoint


@pytest.mark.parametrize(("env", "protocol"), [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "grpc"),
    ({"OTEL_EXPORTER": "otlp_http"}, "http/protobuf"),
    ({"OTEL_EXPORTER": "otlp_grpc"}, "grpc"),
    ({"OTEL_EXPORTER": "console"}, "console"),
    ({"OTEL_EXPORTER": "OTLP_HTTP"}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER": "otlp_grpc"}, "http/protobuf"),
])
def test_protocol_standard_and_litellm(env: dict[str, str], protocol: str) -> None:
    assert cfg(**env).protocol == protocol


def test_http_json_is_sent_as_protobuf_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.otel"):
        assert cfg(OTEL_EXPORTER_OTLP_PROTOCOL="http/json").protocol == "http/protobuf"
    assert "http/json" in caplog.text


def test_grpc_endpoint_is_used_as_given() -> None:
    assert cfg(OTEL_EXPORTER_OTLP_PROTOCOL="grpc").endpoint == "http://localhost:4317"
    assert cfg(OTEL_EXPORTER="grpc", OTEL_ENDPOINT="collector:4317").endpoint == "collector:4317"


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        cfg(OTEL_EXPORTER="zipkin")
    assert e.value.field == "OTEL_EXPORTER"
    assert "zipkin" in str(e.value)


def test_endpoint_must_be_a_url_for_http() -> None:
    with pytest.raises(ConfigError) as e:
        cfg(OTEL_ENDPOINT="collector:4318")
    assert e.value.field == "OTEL_ENDPOINT"


def test_grpc_without_its_exporter_is_a_clear_error() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.fail("this test expects the gRPC exporter not to be installed")
    with pytest.raises(ConfigError) as e:
        make_otel(ON, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, None)
    assert "opentelemetry-exporter-otlp-proto-grpc" in str(e.value)


@pytest.mark.parametrize(("env", "headers"), [
    ({"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=abc,x-b=1"}, {"x-honeycomb-team": "abc", "x-b": "1"}),
    ({"OTEL_HEADERS": "x-honeycomb-team=B85YgLm9"}, {"x-honeycomb-team": "B85YgLm9"}),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20dXNlcjpwYXNz"}, {"authorization": "Basic dXNlcjpwYXNz"}),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_HEADERS": "b=2"}, {"a": "1"}),
    ({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "t=1", "OTEL_EXPORTER_OTLP_HEADERS": "a=1"}, {"t": "1"}),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "k=v=w"}, {"k": "v=w"}),
])
def test_headers(env: dict[str, str], headers: dict[str, str]) -> None:
    assert cfg(**env).headers == headers


def test_timeout_compression_certificates() -> None:
    c = cfg(OTEL_EXPORTER_OTLP_TIMEOUT="3", OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
            OTEL_EXPORTER_OTLP_CERTIFICATE="/ca.pem", OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY="/k.pem",
            OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE="/c.pem")
    assert (c.timeout, c.compression) == (3.0, "gzip")
    assert (c.certificate, c.client_key, c.client_certificate) == ("/ca.pem", "/k.pem", "/c.pem")
    assert cfg(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="0.5", OTEL_EXPORTER_OTLP_TIMEOUT="9").timeout == 0.5
    with pytest.raises(ConfigError):
        cfg(OTEL_EXPORTER_OTLP_TIMEOUT="soon")
    with pytest.raises(ConfigError):
        cfg(OTEL_EXPORTER_OTLP_TIMEOUT="0")


def test_unknown_compression_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.otel"):
        assert cfg(OTEL_EXPORTER_OTLP_COMPRESSION="brotli").compression == "none"
    assert "brotli" in caplog.text


def test_resource_service_name_precedence() -> None:
    c = cfg(OTEL_RESOURCE_ATTRIBUTES="service.name=from-attrs,team=ml%2Cai,deployment.environment=staging,bad")
    assert c.resource["service.name"] == "from-attrs"
    assert c.resource["team"] == "ml,ai"
    assert c.resource["deployment.environment"] == "staging"
    assert c.resource["model_id"] == "from-attrs"
    c = cfg(OTEL_RESOURCE_ATTRIBUTES="service.name=from-attrs", OTEL_SERVICE_NAME="gateway",
            OTEL_ENVIRONMENT_NAME="dev", OTEL_MODEL_ID="m1")
    assert c.resource["service.name"] == "gateway"
    assert c.resource["deployment.environment"] == "dev"
    assert c.resource["model_id"] == "m1"


def test_batch_processor_sizes() -> None:
    c = cfg(OTEL_BSP_MAX_QUEUE_SIZE="64", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1000", OTEL_BSP_SCHEDULE_DELAY="25")
    assert (c.max_queue, c.max_export_batch, c.schedule_delay_ms) == (64, 64, 25.0)
    assert cfg(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100").attribute_length == 100
    assert cfg(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100", OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="7").attribute_length == 7
    with pytest.raises(ConfigError):
        cfg(OTEL_BSP_MAX_QUEUE_SIZE="many")


def test_tracer_name() -> None:
    assert cfg(OTEL_TRACER_NAME="gw").tracer_name == "gw"


def test_check_builds_and_discards_the_sink() -> None:
    check(ON, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    with pytest.raises(ConfigError):
        check(ON, {"OTEL_EXPORTER": "zipkin"})


def test_console_exporter_is_built() -> None:
    sink = make_otel(ON, {"OTEL_EXPORTER": "console"}, None)
    try:
        assert type(sink.exporter.inner).__name__ == "ConsoleSpanExporter"
    finally:
        asyncio.run(sink.aclose())


def test_grpc_exporter_gets_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gRPC exporter package is not installed here: a stand-in module records how it is built."""
    import sys
    import types

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    built: list[dict[str, object]] = []

    class FakeGrpcExporter(SpanExporter):
        def __init__(self, **kw: object) -> None:
            built.append(kw)

        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    mod = types.ModuleType("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    mod.OTLPSpanExporter = FakeGrpcExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", mod)
    import grpc  # type: ignore[import-untyped]

    sink = make_otel(ON, {"OTEL_EXPORTER": "otlp_grpc", "OTEL_ENDPOINT": "http://collector:4317",
                          "OTEL_HEADERS": "x-k=v", "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
                          "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, None)
    try:
        assert isinstance(sink.exporter.inner, FakeGrpcExporter)
        assert built == [{"endpoint": "http://collector:4317", "headers": {"x-k": "v"}, "timeout": 2.0,
                          "compression": grpc.Compression.Gzip}]
    finally:
        sink.discard()


def test_standard_samplers() -> None:
    from relaygate.config.observe import ObserveSettings as _S
    from relaygate.observe.otel import otlp_settings as _settings
    from relaygate.observe.otel import sampled

    st = _S(success_callbacks=("otel",))
    low, high = int("0" * 16 + "00000000000000ff", 16), int("0" * 16 + "ffffffffffffff00", 16)
    on = _settings(st, {})
    assert on.sampler == "parentbased_always_on"
    assert sampled(on, low, None) and sampled(on, high, 1) and not sampled(on, high, 0)  # the parent decides
    off = _settings(st, {"OTEL_TRACES_SAMPLER": "always_off"})
    assert not sampled(off, low, 1)
    half = _settings(st, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
    assert half.ratio == 0.5 and sampled(half, low, 0) and not sampled(half, high, 1)  # no parent rule
    pb = _settings(st, {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    assert not sampled(pb, low, None) and sampled(pb, high, 1)
    for bad in ({"OTEL_TRACES_SAMPLER": "sometimes"},
                {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
                {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}):
        with pytest.raises(ConfigError):
            _settings(st, bad)
