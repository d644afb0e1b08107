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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.config.observe import ObserveSettings
from relaygate.observe import otel_spans
from relaygate.observe.otel import OtelSink, otlp_settings
from relaygate.observe.otlp_wire import WireSpanExporter
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.core.compiled_only import check_loaded
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
    check_loaded("otelspan", otel_spans.record_spans)
    sink, _ = _sink(True)
    assert sink.fast is otel_spans.record_spans


def test_a_record_of_another_type_is_read_by_name_alike() -> None:
    """The writer reads a completion record's fields as one tuple, by index; any other object with the same
    attributes (a subclass, a stand-in) is read attribute by attribute, and gives the same bytes."""
    if otel_spans.record_spans is None:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")
    from types import SimpleNamespace

    def refused(key: str, exc: Exception) -> None:
        raise AssertionError((key, exc))

    for r in _records()[:8]:
        d = r.extra["observe"]
        stand_in = SimpleNamespace(**{name: getattr(r, name) for name in r.__struct_fields__})
        assert otel_spans.record_spans(stand_in, d, True, False, refused) == \
            otel_spans.record_spans(r, d, True, False, refused)


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


_part = st.one_of(st.text(max_size=12), st.integers(), st.none(), st.floats(allow_nan=False),
                  st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "tool_use"])},
                                        optional={"text": st.text(max_size=12) | st.integers()}))
_content = st.one_of(st.none(), st.text(max_size=20), st.integers(), st.lists(_part, max_size=3),
                     st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
_role = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", ""]), st.none(), st.integers())
_message = st.one_of(
    st.fixed_dictionaries({}, optional={"role": _role, "content": _content, "id": st.text(max_size=6),
                                        "tool_calls": st.lists(st.dictionaries(st.text(max_size=4), st.text(max_size=4),
                                                                               max_size=2), max_size=2),
                                        "tool_call_id": st.text(max_size=6), "name": st.text(max_size=6) | st.none(),
                                        "extra": st.integers()}),
    st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=2))
_choice = st.one_of(
    st.fixed_dictionaries({}, optional={"message": st.none() | _message | st.just({}) | st.just(""),
                                        "text": _content, "finish_reason": st.sampled_from(["stop", "length"]) |
                                        st.integers() | st.none(), "index": st.integers(0, 3)}),
    st.integers(), st.none())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(["chat", "completions", "embeddings", "responses", "messages", "rerank", ""]),
       body=st.one_of(st.none(), st.integers(), st.fixed_dictionaries(
           {}, optional={"messages": st.lists(_message, max_size=4) | _content,
                         "input": st.lists(_message, max_size=3) | _content, "prompt": _content,
                         "system": _content, "instructions": _content, "model": st.text(max_size=5),
                         "temperature": st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=2)})),
       answer=st.one_of(st.none(), st.text(max_size=5), st.fixed_dictionaries(
           {}, optional={"choices": st.lists(_choice, max_size=3) | st.integers(), "id": st.text(max_size=6),
                         "model": st.text(max_size=6), "content": st.lists(_part, max_size=2),
                         "stop_reason": st.sampled_from(["end_turn", "tool_use"]), "status": st.just("completed"),
                         "output": st.lists(st.dictionaries(st.sampled_from(["type", "role", "content"]),
                                                            st.sampled_from(["message", "x"]) | st.lists(_part, max_size=2),
                                                            max_size=3), max_size=2)})),
       ok=st.booleans(), logging=st.booleans())
def test_generated_content_equals_the_pure_path(route: str, body: Any, answer: Any, ok: bool, logging: bool) -> None:
    if otel_spans.record_spans is None:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")
    settings_ = BOTH if logging else ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",),
                                                     turn_off_message_logging=True)
    r = with_detail(detail(input=body, output=answer), route=route,
                    **({} if ok else {"outcome": Outcome.ERROR, "status": 500, "error_type": "x"}))
    d = r.extra["observe"]
    spans, errors = [], []
    for fast in (True, False):
        sink, got = _sink(fast, settings_)
        try:
            sink._build(r, d)
        except Exception as exc:  # both must refuse the same records
            errors.append(type(exc).__name__)
        spans.append(got.spans)
    assert len(errors) in (0, 2), (r, errors)
    assert spans[0] == spans[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(["chat", "completions", "responses", "messages", "embeddings"]),
       messages=st.lists(_message, min_size=1, max_size=4), system=st.none() | _content,
       choices=st.lists(_choice, min_size=1, max_size=3), text=st.none() | _content)
def test_generated_chat_messages_and_choices_equal_the_pure_path(route: str, messages: list[Any], system: Any,
                                                                 choices: list[Any], text: Any) -> None:
    if otel_spans.record_spans is None:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")
    body: dict[str, Any] = {"model": "m", "messages": messages} if text is None else {"model": "m", "input": text}
    if system is not None:
        body["instructions" if route == "responses" else "system"] = system
    r = with_detail(detail(input=body, output={"id": "x", "choices": choices}), route=route)
    spans = []
    for fast in (True, False):
        sink, got = _sink(fast)
        sink._build(r, r.extra["observe"])
        spans.append(got.spans)
    assert spans[0] == spans[1]
    # the messages are read on every route; an "input" text only on the routes whose input it is
    assert (b"gen_ai.input.messages" in spans[0][-1]) == (text is None or route in ("responses", "embeddings"))
