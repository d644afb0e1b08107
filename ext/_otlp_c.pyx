# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""OTLP span and attribute encoding: compiled twin of ``relaygate.core._otlp_py`` (same API, same bytes).

See the pure twin for the design and the invariants. Here a span (``encode_span``: its fields, attributes,
events and status) or an attribute mapping is written into one growing C buffer: text, booleans, integers and floats (nearly every attribute) are sized and copied without an
intermediate bytes object; other values (``None``, bytes, sequences, mappings, subclasses) go through
:func:`any_value`, which follows the pure twin's order of checks. A pair that raises is rolled back out of
the buffer and reported to ``refused``, as the pure twin does.
"""

include "_otlp_buf.pxi"

__all__ = ["any_value", "encode_attributes", "encode_span", "length_delimited", "varint"]


def encode_span(bytes trace_id not None, bytes span_id not None, bytes trace_state not None, bytes parent_span_id,
                unsigned int flags, str name, int kind, start, end, attributes, dropped_attributes, events,
                dropped_events, bytes links not None, dropped_links, status, refused):
    """A ``Span`` message's bytes (see the pure twin)."""
    cdef Buf b
    cdef uint64_t t0 = start
    cdef uint64_t t1 = end
    _init(&b)
    try:
        _span_head(&b, trace_id, span_id, trace_state, parent_span_id, name, kind, t0, t1)
        _attributes_into(&b, 0x4a, attributes, refused)
        if dropped_attributes:
            _varint_field(&b, 0x50, <uint64_t>dropped_attributes)
        _events_into(&b, events, refused)
        if dropped_events:
            _varint_field(&b, 0x60, <uint64_t>dropped_events)
        _bytes_into(&b, links)
        if dropped_links:
            _varint_field(&b, 0x70, <uint64_t>dropped_links)
        if status is not None:
            st_code, description = status
            _status_into(&b, <uint64_t>st_code, description)
        _flags_into(&b, flags)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)
