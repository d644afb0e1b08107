"""The ``otel`` sink's compiled span writer (``observe.otel_spans``) against its pure twin, byte for byte.

The pure twin is the sink's own path (attribute dicts from ``otel_attrs``, encoded by ``core.otlp.encode_span``).
Both run through ``OtelSink._build`` on the same records, one sink with the compiled writer and one without,
and every span's bytes must be equal: records of every route and outcome, with and without content, with
retries and fallbacks, incoming parents, metadata of every type, key metadata, cost breakdowns, refused values.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from relaygate.config.observe import ObserveSettings
from relaygate.core import _ext
from relaygate.observe import otel_spans
from relaygate.observe.otel import OtelSink, otlp_settings
from relaygate.observe.otlp_wire import WireSpanExporter
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, PARENT, T0, attempt, detail, with_detail

BOTH = ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",))


class _Collect:
    def __init__(self) -> None:
        self.spans: list[bytes] = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span.data)


def _sink(fast: bool, settings: ObserveSettings = BOTH) -> tuple[OtelSink, _Collect]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    sink = OtelSink(settings, otlp_settings(settings, env),
                    exporter=WireSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    sink.processor.shutdown()  # type: ignore[no-untyped-call]
    got = _Collect()
    sink.processor = got  # type: ignore[assignment]
    if not fast:
        sink.fast = None
    return sink, got


def _with_extra(d: Any, extra: dict[str, Any], **kw: Any) -> CompletionRecord:
    r = with_detail(d, **kw)
    r.extra.update(extra)
    return r


def _records() -> list[CompletionRecord]:
    messages_in = {"model": "claude", "system": "be brief", "max_tokens": 50, "stop_sequences": ["END"],
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    messages_out = {"id": "msg_1", "model": "claude-3", "stop_reason": "end_turn",
                    "content": [{"type": "text", "text": "hello"}, {"type": "tool_use", "id": "t", "name": "f"}]}
    responses_in = {"model": "gpt", "instructions": "sys", "input": [{"role": "user", "content": "hey"}],
                    "max_output_tokens": 20, "temperature": 1}
    responses_out = {"id": "resp_1", "model": "gpt-x", "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "yo"}]},
        {"type": "reasoning", "summary": []}]}
    odd_meta = {"session_id": "s", "generation_name": "gen", "n": 3, "f": 1.5, "b": True, "nested": {"a": [1, 2]},
                "none": None, "empty": {}, "list": ["x", 1]}
    failed = attempt(status=429, error_type="RateLimitError", error_message="slow down", end=T0 + 0.5)
    second = attempt(span_id="2222222222222222", start=T0 + 0.6, end=T0 + 1.2, model_group="fallback-group",
                     api_base="http://[::1]:8080/v1?x=1", provider="azure", upstream_model="")
    return [
        with_detail(detail()),
        with_detail(detail(parent_span_id=PARENT), stream=True, ttft=0.25, cache_read_tokens=4,
                    cache_write_tokens=2, request_route="/v1/chat/completions"),
        with_detail(detail(attempts=[failed, second, attempt(span_id="3333333333333333", start=0.0)]), retries=1, fallbacks=1),
        with_detail(detail(input={**CHAT_IN, "n": 2, "top_k": 3, "frequency_penalty": 10 ** 400, "seed": True,
                                  "stop": "x", "presence_penalty": float("nan"), "max_tokens": "9"},
                           output={**CHAT_OUT, "id": "", "model": 5}), upstream_model=""),
        with_detail(detail(input=messages_in, output=messages_out), route="messages", provider="anthropic"),
        with_detail(detail(input=responses_in, output=responses_out), route="responses", provider="bedrock"),
        with_detail(detail(input={"input": ["a", "b"], "model": "e"}, output={"data": []}), route="embeddings",
                    provider="vertex_ai"),
        with_detail(detail(input={"prompt": "p", "model": "c"}, output={"choices": [{"text": "t", "index": 0}]}),
                    route="completions", provider="mystery"),
        with_detail(detail(metadata=odd_meta, key_metadata={"team": "x", "logging": [{"callback_name": "otel"}]},
                           budgets=(1.0, 10.0, "2026-01-01T00:00:00", 2.0, None, 3.0, 30.0), tags=[])),
        with_detail(detail(error_message="upstream said no", attempts=[failed]), outcome=Outcome.ERROR, status=429,
                    error_type="rate_limit_error", prompt_tokens=0, completion_tokens=0, cost=0.0),
        with_detail(detail(), outcome=Outcome.ERROR, status=500, error_type="", error_class="Custom",
                    error_message="boom", cost=math.inf),
        with_detail(detail(), outcome=Outcome.CLIENT_GONE, status=499, prompt_tokens=0, completion_tokens=3),
        _with_extra(detail(attempts=[]), {"cost_breakdown": {"discount": 0.1, "margin": 0.2}}, cost_estimated=True),
        with_detail(detail(input=None, output=None, redacted=True, metadata={"bad": 2 ** 70})),
        with_detail(detail(trace_id="0AF7651916CD43DD8448EB211C80319C", span_id="B7AD6B7169203331")),
        with_detail(detail(attempts=[attempt(status=2 ** 70), attempt(span_id="2222222222222222", status=0,
                                                                      error_type="", api_base="")])),
        with_detail(detail(input=[1, 2], output="text", team_alias=None), provider="", model="", model_group="",
                    deployment_id="", latency=-1.0),
        _with_extra(detail(metadata={}, key_metadata={"logging": [], "callback_settings": {}}),
                    {"metadata": {"spend_logs_metadata": {"a": 1}, "x": None}}, requester_ip="10.0.0.1",
                    user_email="u@example.com", org_id="org-1", org_alias="Org", end_user_id="end-1",
                    team_alias="record-team", key_hash=None, cost=-1.0),
        _with_extra(detail(metadata={"spend_logs_metadata": "not an object"}, team_alias=""),
                    {"spend_logs_metadata": {"from": "extra"}}, cost=3, overhead=0.0),
    ]


def test_the_compiled_writer_loaded() -> None:
    if _ext.NO_EXTENSIONS:
        assert otel_spans.record_spans is None and _ext.LOADED["otelspan"] == "py"
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure path is expected")
    assert "otelspan" not in _ext.FAILED, _ext.FAILED.get("otelspan")
    assert otel_spans.record_spans is not None and _ext.LOADED["otelspan"] == "c"
    sink, _ = _sink(True)
    assert sink.fast is otel_spans.record_spans


@pytest.mark.parametrize("settings", [BOTH, ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",),
                                                             turn_off_message_logging=True,
                                                             redact_user_api_key_info=True)])
def test_compiled_spans_equal_the_pure_path(settings: ObserveSettings) -> None:
    if otel_spans.record_spans is None:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")
    fast, fast_got = _sink(True, settings)
    pure, pure_got = _sink(False, settings)
    assert fast.fast is not None and pure.fast is None
    for r in _records():
        d = r.extra["observe"]
        fast_got.spans.clear()
        pure_got.spans.clear()
        errors = []
        for sink in (fast, pure):
            try:
                sink._build(r, d)
            except Exception as exc:  # both must refuse the same records
                errors.append(type(exc).__name__)
        assert len(errors) in (0, 2), (r, errors)
        assert fast_got.spans == pure_got.spans, r
        assert len(fast_got.spans) == (len(d.attempts) + 1 if not errors else 0)


def test_a_value_the_encoder_refuses_is_left_out_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    if otel_spans.record_spans is None:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")
    refused: list[str] = []
    monkeypatch.setattr("relaygate.observe.otel.refused", lambda key, exc: refused.append(key))
    r = _with_extra(detail(), {"cost_breakdown": {"big": 2 ** 70, "ok": 1.0}}, retries=-(2 ** 70))
    outs = []
    for fast in (True, False):
        sink, got = _sink(fast)
        sink._build(r, r.extra["observe"])
        outs.append(got.spans)
    assert outs[0] == outs[1] and len(outs[0]) == 2
    assert refused == ["relaygate.retries", "gen_ai.cost.big"] * 2
