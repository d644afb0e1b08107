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
