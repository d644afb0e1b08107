"""OTLP span and attribute encoding (selector).

Re-exports the compiled ``relaygate.core._otlp_c`` when it is built and allowed, else the pure twin
``relaygate.core._otlp_py``, which is the reference and documents the design and invariants. Type checkers
see the pure twin. ``relaygate.core._ext.LOADED["otlp"]`` says which one runs ("c" or "py"). Imported only
by ``observe.otlp_wire``, so only a gateway exporting OpenTelemetry loads either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaygate.core import _ext

if TYPE_CHECKING:
    from relaygate.core._otlp_py import any_value, encode_attributes, encode_span, length_delimited, varint
else:
    _impl = _ext.load("otlp")
    any_value = _impl.any_value
    encode_attributes = _impl.encode_attributes
    encode_span = _impl.encode_span
    length_delimited = _impl.length_delimited
    varint = _impl.varint

__all__ = ["any_value", "encode_attributes", "encode_span", "length_delimited", "varint"]
