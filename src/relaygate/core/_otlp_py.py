"""OTLP's protobuf pieces that every exported span repeats: attributes as ``KeyValue`` wire bytes (pure twin).

What it owns: the bytes of one ``Span`` message, :func:`encode_span` (``observe.otlp_wire`` groups spans
into requests; ``observe.otel`` encodes its spans with it as it builds them), and its attributes:
:func:`encode_attributes` turns a span's (an event's, a resource's ...) attribute mapping into the bytes of
a repeated ``KeyValue`` field, :func:`any_value` one ``AnyValue`` payload, with the helpers
:func:`varint` and :func:`length_delimited`. The compiled twin (``ext/_otlp_c.pyx``) writes the same bytes
into one growing buffer; attributes are ~60 a request in relaygate's spans, and in this twin each costs
several bytes objects and a dozen calls, so a cache keeps the encoded pair of short values seen before (the
model, the provider, the key's alias ...): a bounded dict, cleared when full.

Invariants, shared by both twins and checked against the official ``opentelemetry-proto`` messages in
``tests/observe/test_otlp_wire.py`` and ``tests/core/test_otlp.py``:

- the bytes are exactly what the official encoder's messages serialise to (proto3: an empty key is not
  written; ``None`` is an empty ``AnyValue``; a ``bool`` is a bool, not an int; an integer is a two's
  complement varint and must fit int64; text is UTF-8; sequences and mappings nest as array / kvlist);
- a value the official encoder refuses (an integer outside int64, text that is not valid Unicode, a type it
  does not know) is left out, and ``refused(key, exc)`` is called with what it would have raised; the rest
  of the attributes are written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["any_value", "encode_attributes", "encode_span", "length_delimited", "varint"]

_SMALL = [bytes((i,)) for i in range(128)]
_D = struct.Struct("<d").pack
_Q = struct.Struct("<Q").pack
_I = struct.Struct("<I").pack
_INT64 = 1 << 63
_CACHE_MAX = 8192
_CACHE_LEN = 96
"""Encoded key-value pairs kept: at most this many, of values up to this many characters."""

_kv_cache: dict[tuple[bytes, str, type, Any], bytes] = {}
_key_fields: dict[str, bytes] = {}
"""A ``KeyValue``'s key field per attribute name (bounded like the pairs)."""

_ANY_STR, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE, _ANY_ARRAY, _ANY_KVLIST, _ANY_BYTES = (
    b"\x0a", b"\x10", b"\x18", b"\x21", b"\x2a", b"\x32", b"\x3a")
_T1, _T2 = b"\x0a", b"\x12"


def varint(n: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the length, the payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else varint(n)) + payload


_ld = length_delimited


def any_value(value: Any) -> bytes:
    """An ``AnyValue``'s payload; raises what the official encoder's message constructors raise."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _ld(_ANY_STR, value.encode())
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"Value out of range: {value}")
        return _ANY_INT + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _ANY_DOUBLE + _D(value)
    if isinstance(value, bytes):
        return _ld(_ANY_BYTES, value)
    t = type(value)
    if t is tuple or t is list:  # before the ABC checks, which cost ~1 µs each (the Sequence case below)
        return _ld(_ANY_ARRAY, b"".join([_ld(_T1, any_value(v)) for v in value]))
    if t is dict:
        return _ld(_ANY_KVLIST, b"".join([_ld(_T1, _key_value(str(k), v)) for k, v in value.items()]))
    if isinstance(value, Sequence):
        return _ld(_ANY_ARRAY, b"".join([_ld(_T1, any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _ld(_ANY_KVLIST, b"".join([_ld(_T1, _key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue``'s payload (the key omitted when empty, as proto3 omits an empty string)."""
    return (_ld(_T1, key.encode()) if key else b"") + _ld(_T2, any_value(value))


def encode_attributes(tag: bytes, attributes: Mapping[str, Any] | None,
                      refused: Callable[[str, Exception], None]) -> bytes:
    """The repeated ``KeyValue`` field ``tag`` of ``attributes`` (see the module docstring)."""
    if not attributes:
        return b""
    cache = _kv_cache
    keys = _key_fields
    small = _SMALL
    out: list[bytes] = []
    append = out.append
    for key, value in attributes.items():
        t = type(value)
        ck = None
        if (t is str and len(value) <= _CACHE_LEN) or t is int or t is bool:
            ck = (tag, key, t, value)
            hit = cache.get(ck)
            if hit is not None:
                append(hit)
                continue
        try:
            kf = keys.get(key)
            if kf is None:
                if len(keys) >= _CACHE_MAX:
                    keys.clear()
                kf = keys[key] = _ld(_T1, key.encode()) if key else b""
            if t is str:
                vb = value.encode()
                n = len(vb)
                anyv = _ANY_STR + (small[n] if n < 128 else varint(n)) + vb
            else:
                anyv = any_value(value)
            n = len(anyv)
            kv = kf + _T2 + (small[n] if n < 128 else varint(n)) + anyv
            n = len(kv)
            field = tag + (small[n] if n < 128 else varint(n)) + kv
        except Exception as exc:  # as the official encoder: the attribute is left out, the rest is written
            refused(key, exc)
            continue
        if ck is not None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[ck] = field
        append(field)
    return b"".join(out)


def encode_span(trace_id: bytes, span_id: bytes, trace_state: bytes, parent_span_id: bytes | None, flags: int,
                name: str, kind: int, start: int, end: int, attributes: Mapping[str, Any] | None,
                dropped_attributes: int, events: Sequence[tuple[int, str, Mapping[str, Any] | None, int]],
                dropped_events: int, links: bytes, dropped_links: int, status: tuple[int, str] | None,
                refused: Callable[[str, Exception], None]) -> bytes:
    """A ``Span`` message's bytes, its fields in the official encoder's order: ids (16 and 8 bytes, big-endian),
    ``trace_state`` and ``links`` already encoded as their fields (``b""``: none), ``flags`` the
    ``Span.flags`` value, ``kind`` OTLP's number, times in epoch nanoseconds (0: not written), events as
    ``(time, name, attributes, dropped attributes)``, ``status`` as ``(code, description)`` (None: no status
    field). Attributes are written as :func:`encode_attributes` writes them."""
    parts = [_ld(_T1, trace_id), _ld(_T2, span_id), trace_state]
    if parent_span_id is not None:
        parts.append(_ld(b"\x22", parent_span_id))
    if name:
        parts.append(_ld(b"\x2a", name.encode()))
    parts.append(b"\x30" + varint(kind))
    if start:
        parts.append(b"\x39" + _Q(start))
    if end:
        parts.append(b"\x41" + _Q(end))
    parts.append(encode_attributes(b"\x4a", attributes, refused))
    if dropped_attributes:
        parts.append(b"\x50" + varint(dropped_attributes))
    for at, ev_name, ev_attributes, ev_dropped in events:
        body = (b"\x09" + _Q(at) if at else b"") + (_ld(_T2, ev_name.encode()) if ev_name else b"")
        body += encode_attributes(b"\x1a", ev_attributes, refused)
        if ev_dropped:
            body += b"\x20" + varint(ev_dropped)
        parts.append(_ld(b"\x5a", body))
    if dropped_events:
        parts.append(b"\x60" + varint(dropped_events))
    parts.append(links)
    if dropped_links:
        parts.append(b"\x70" + varint(dropped_links))
    if status is not None:
        code, description = status
        body = _ld(_T2, description.encode()) if description else b""
        if code:
            body += b"\x18" + varint(code)
        parts.append(_ld(b"\x7a", body))
    parts.append(b"\x85\x01" + _I(flags))
    return b"".join(parts)
