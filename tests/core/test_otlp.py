"""OTLP attribute encoding, both twins: parsed back with the official ``opentelemetry-proto`` messages, equal to
what the official encoder's messages serialise to, and the same bytes from both twins for any attributes
hypothesis makes (text with non-ASCII and lone surrogates, int64 edges and beyond, floats, bools, None,
bytes, nested sequences and mappings, values of unknown types)."""

from __future__ import annotations

import enum
import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes, _encode_value
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

COMPONENT = "otlp"


class Level(enum.IntEnum):
    HIGH = 3


def encode(mod: ModuleType, attrs: dict[str, Any]) -> tuple[bytes, list[str]]:
    refused: list[str] = []
    out = mod.encode_attributes(b"\x4a", attrs, lambda key, exc: refused.append(key))
    return out, refused


def official(attrs: dict[str, Any]) -> bytes:
    """The attributes field of a Span built by the official encoder (the rest of the span left empty)."""
    return Span(attributes=_encode_attributes(attrs)).SerializeToString()


SAMPLE: dict[str, Any] = {
    "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "text": "héllo → 世界 🎉", "": "empty key",
    "empty": "", "long": "x" * 5000, "t": True, "f": False, "zero": 0, "one": 1, "neg": -1, "max": 2**63 - 1,
    "min": -(2**63), "pi": 3.14159, "negzero": -0.0, "inf": math.inf, "none": None, "raw": b"\x00\xff",
    "list": ["a", "b"], "ints": [1, -2, 2**40], "mixed": [1, "a", 2.5, True, None], "nested": [["x"], {"k": 1}],
    "map": {"a": 1, "b": {"c": "d"}}, "tuple": ("p", "q"), "enum": Level.HIGH,
}


def test_equal_to_the_official_encoder(impl: ModuleType) -> None:
    out, refused = encode(impl, SAMPLE)
    assert refused == []
    assert out == official(SAMPLE)
    back = Span.FromString(out)
    assert [kv.key for kv in back.attributes] == list(SAMPLE)
    assert back.attributes[2].value.string_value == "héllo → 世界 🎉"


def test_refused_values_are_left_out_and_reported(impl: ModuleType) -> None:
    attrs = {"ok": "kept", "big": 2**63, "small": -(2**63) - 1, "bad": "\udcff", "obj": object(), "after": 7,
             "inner": [1, 2**64]}
    out, refused = encode(impl, attrs)
    assert refused == ["big", "small", "bad", "obj", "inner"]
    assert out == official({"ok": "kept", "after": 7})


def test_helpers(impl: ModuleType) -> None:
    assert impl.varint(0) == b"\x00" and impl.varint(127) == b"\x7f" and impl.varint(300) == b"\xac\x02"
    assert impl.varint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    assert impl.length_delimited(b"\x0a", b"abc") == b"\x0a\x03abc"
    assert impl.length_delimited(b"\x0a", b"y" * 200)[:3] == b"\x0a\xc8\x01"
    for v in ("s", 1, -5, 2.5, True, b"b", [1, "x"], {"k": "v"}):
        assert impl.any_value(v) == _encode_value(v).SerializeToString(), v
    assert impl.any_value(None) == AnyValue().SerializeToString() == b""
    assert impl.encode_attributes(b"\x0a", {}, print) == b"" and impl.encode_attributes(b"\x0a", None, print) == b""
    kv = KeyValue.FromString(impl.encode_attributes(b"\x0a", {"k": "v"}, print)[2:])
    assert kv.key == "k" and kv.value.string_value == "v"


_leaf = st.one_of(
    st.none(), st.booleans(), st.text(), st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False), st.binary(max_size=20))
_value = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                      max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _value, max_size=12))
def test_twins_write_the_same_bytes(twins: tuple[ModuleType, ModuleType], attrs: dict[str, Any]) -> None:
    py, c = twins
    assert encode(py, attrs) == encode(c, attrs)


@pytest.mark.parametrize("tag", [b"\x4a", b"\x1a", b"\x0a"])
def test_the_tag_is_written_as_given(impl: ModuleType, tag: bytes) -> None:
    assert impl.encode_attributes(tag, {"a": 1}, print)[:1] == tag


def _span_args(trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8, trace_state: bytes = b"",
               parent: bytes | None = None, flags: int = 0x100, name: str = "", kind: int = 1, start: int = 0,
               end: int = 0, attributes: dict[str, Any] | None = None, dropped_attributes: int = 0,
               events: list[tuple[int, str, dict[str, Any] | None, int]] | None = None, dropped_events: int = 0,
               links: bytes = b"", dropped_links: int = 0, status: tuple[int, str] | None = None) -> tuple[Any, ...]:
    return (trace_id, span_id, trace_state, parent, flags, name, kind, start, end, attributes, dropped_attributes,
            events or [], dropped_events, links, dropped_links, status)


def test_a_span_equals_the_official_encoders(impl: ModuleType) -> None:
    """Every field the official encoder writes for an SDK span, in its order (remote parent, trace state,
    events with and without attributes, a link, dropped counts, an error status with a description)."""
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    state = TraceState([("vendor", "v1"), ("other", "x")])
    ctx = SpanContext(2**127 + 5, 2**63 + 7, is_remote=False, trace_flags=TraceFlags(1), trace_state=state)
    parent = SpanContext(ctx.trace_id, 99, is_remote=True, trace_flags=TraceFlags(1))
    link = Link(SpanContext(3, 4, is_remote=True, trace_flags=TraceFlags(1)), {"l": "v"})
    attrs = {"gen_ai.system": "openai", "n": 3, "ok": True, "t": 0.5, "seq": ("a", "b")}
    span = ReadableSpan("chat gpt-4o", context=ctx, parent=parent, attributes=attrs, kind=SpanKind.CLIENT,
                        events=[Event("exception", {"exception.type": "X"}, 1_700_000_000_123_456_789),
                                Event("plain", None, 5)],
                        links=[link], status=Status(StatusCode.ERROR, "upstream said no"),
                        start_time=1_700_000_000_000_000_001, end_time=1_700_000_000_999_999_999,
                        instrumentation_scope=InstrumentationScope("litellm"))
    from relaygate.observe import otlp_wire

    got = impl.encode_span(*_span_args(
        ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"), otlp_wire._trace_state(ctx),
        (99).to_bytes(8, "big"), 0x300, span.name, 3, span.start_time, span.end_time, attrs, 0,
        [(e.timestamp, e.name, e.attributes, 0) for e in span.events], 0, otlp_wire._link(link), 0,
        (2, "upstream said no")), print)
    assert got == _encode_span(span).SerializeToString()
    root = ReadableSpan("", context=ctx, kind=SpanKind.INTERNAL, status=Status(StatusCode.UNSET))
    assert impl.encode_span(*_span_args(
        ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"), otlp_wire._trace_state(ctx),
        status=(0, "")), print) == _encode_span(root).SerializeToString()


_event = st.tuples(st.integers(min_value=0, max_value=2**64 - 1), st.text(max_size=8),
                   st.none() | st.dictionaries(st.text(max_size=6), _value, max_size=3),
                   st.integers(min_value=0, max_value=2**32))


def _outcome(mod: ModuleType, args: tuple[Any, ...]) -> tuple[Any, list[str]]:
    refused: list[str] = []
    try:
        return mod.encode_span(*args, lambda key, exc: refused.append(key)), refused
    except Exception as exc:  # both twins must refuse alike (a name that is not valid Unicode)
        return type(exc), refused


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8),
       st.none() | st.binary(min_size=8, max_size=8), st.sampled_from([0x100, 0x300]), st.text(max_size=20),
       st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=2**64 - 1),
       st.integers(min_value=0, max_value=2**64 - 1), st.dictionaries(st.text(max_size=12), _value, max_size=8),
       st.integers(min_value=0, max_value=300), st.lists(_event, max_size=3),
       st.none() | st.tuples(st.integers(min_value=0, max_value=2), st.text(max_size=30)))
def test_twins_write_the_same_span(twins: tuple[ModuleType, ModuleType], trace_id: bytes, span_id: bytes,
                                   parent: bytes | None, flags: int, name: str, kind: int, start: int, end: int,
                                   attrs: dict[str, Any], dropped: int,
                                   events: list[tuple[int, str, dict[str, Any] | None, int]],
                                   status: tuple[int, str] | None) -> None:
    py, c = twins
    args = _span_args(trace_id, span_id, b"\x1a\x03a=b", parent, flags, name, kind, start, end, attrs, dropped,
                      events, dropped, b"", dropped, status)
    assert _outcome(py, args) == _outcome(c, args)


@pytest.mark.parametrize("field, value", [(0, None), (2, None), (3, "not bytes"), (13, None)])
def test_a_span_field_of_the_wrong_type_raises(impl: ModuleType, field: int, value: Any) -> None:
    """Ids, trace state and links must be bytes (the parent may be None): a wrong type is a TypeError in both
    twins, never a read of the wrong memory in the compiled one."""
    args = list(_span_args(name="n"))
    args[field] = value
    with pytest.raises(TypeError):
        impl.encode_span(*args, print)
