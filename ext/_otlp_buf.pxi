# Included by ext/_otlp_c.pyx and ext/_otelspan_c.pyx (Cython ``include``): the protobuf writers both compiled
# modules share, over the growing C buffer of ``_buf.pxi``. Not a module of its own.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLong
from cpython.mem cimport PyMem_Free
from libc.stdint cimport int64_t, uint64_t

from collections.abc import Mapping, Sequence

include "_buf.pxi"


cdef inline Py_ssize_t _vlen(uint64_t n) noexcept nogil:
    cdef Py_ssize_t k = 1
    while n >= 128:
        n >>= 7
        k += 1
    return k


cdef inline void _vput(Buf* b, uint64_t n) noexcept nogil:
    while n >= 128:
        b.data[b.size] = <char>((n & 0x7F) | 0x80)
        b.size += 1
        n >>= 7
    b.data[b.size] = <char>n
    b.size += 1


cdef inline void _double(Buf* b, double d) noexcept nogil:
    cdef uint64_t bits
    cdef int i
    memcpy(&bits, &d, 8)
    for i in range(8):  # little-endian whatever the machine's order
        b.data[b.size + i] = <char>((bits >> (8 * i)) & 0xFF)
    b.size += 8


cdef uint64_t _int64(object value) except? 0:
    cdef int64_t v
    try:
        v = PyLong_AsLongLong(value)
    except OverflowError:
        raise ValueError(f"Value out of range: {value}") from None
    return <uint64_t>v


def varint(n):
    """A non-negative integer as a protobuf varint."""
    cdef uint64_t u = n
    cdef Buf b
    _init(&b)
    try:
        _reserve(&b, 10)
        _vput(&b, u)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


def length_delimited(bytes tag, bytes payload):
    """A length-delimited field: its tag byte(s), the length, the payload."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
    cdef Py_ssize_t t = PyBytes_GET_SIZE(tag)
    cdef Buf b
    _init(&b)
    try:
        _reserve(&b, t + 10 + n)
        _put(&b, PyBytes_AS_STRING(tag), t)
        _vput(&b, <uint64_t>n)
        _put(&b, PyBytes_AS_STRING(payload), n)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


cdef bytes _ld(bytes tag, bytes payload):
    return length_delimited(tag, payload)


def any_value(value):
    """An ``AnyValue``'s payload; raises what the official encoder's message constructors raise."""
    cdef uint64_t u
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _ld(b"\x0a", value.encode())
    if isinstance(value, int):
        u = _int64(value)
        return b"\x18" + varint(u)
    if isinstance(value, float):
        return _scalar_double(value)
    if isinstance(value, bytes):
        return _ld(b"\x3a", value)
    t = type(value)
    if t is tuple or t is list:  # before the ABC checks, which cost ~1 µs each (the Sequence case below)
        return _ld(b"\x2a", b"".join([_ld(b"\x0a", any_value(v)) for v in value]))
    if t is dict:
        return _ld(b"\x32", b"".join([_ld(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]))
    if isinstance(value, Sequence):
        return _ld(b"\x2a", b"".join([_ld(b"\x0a", any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _ld(b"\x32", b"".join([_ld(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


cdef bytes _scalar_double(double d):
    cdef Buf b
    _init(&b)
    try:
        _reserve(&b, 9)
        _byte(&b, 0x21)
        _double(&b, d)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


cdef bytes _key_value(str key, value):
    return (_ld(b"\x0a", key.encode()) if key else b"") + _ld(b"\x12", any_value(value))


cdef int _field(Buf* b, const char* tp, Py_ssize_t tn, object key, object value) except -1:
    """One ``KeyValue`` field ``tag`` into ``b`` (rolled back by the caller if this raises)."""
    cdef Py_ssize_t kn = 0, vn = 0, anylen, kvlen, keyf
    cdef const char* kp = NULL
    cdef const char* vp = NULL
    cdef uint64_t u = 0
    cdef double d = 0.0
    cdef int kind
    cdef bytes other = None
    if type(key) is str:
        kp = PyUnicode_AsUTF8AndSize(key, &kn)
    else:
        kb = key.encode()  # what the pure twin calls (a non-str key raises there too)
        return _field_bytes(b, tp, tn, kb, value)
    keyf = (1 + _vlen(kn) + kn) if kn else 0
    t = type(value)
    if t is str:
        vp = PyUnicode_AsUTF8AndSize(value, &vn)
        kind = 0
        anylen = 1 + _vlen(vn) + vn
    elif t is bool:
        kind = 1
        anylen = 2
    elif t is int:
        u = _int64(value)
        kind = 2
        anylen = 1 + _vlen(u)
    elif t is float:
        d = value
        kind = 3
        anylen = 9
    else:
        other = any_value(value)
        kind = 4
        anylen = PyBytes_GET_SIZE(other)
    kvlen = keyf + 1 + _vlen(anylen) + anylen
    _reserve(b, tn + 10 + kvlen)
    _put(b, tp, tn)
    _vput(b, <uint64_t>kvlen)
    if kn:
        _byte(b, 0x0a)
        _vput(b, <uint64_t>kn)
        _put(b, kp, kn)
    _byte(b, 0x12)
    _vput(b, <uint64_t>anylen)
    if kind == 0:
        _byte(b, 0x0a)
        _vput(b, <uint64_t>vn)
        _put(b, vp, vn)
    elif kind == 1:
        _byte(b, 0x10)
        _byte(b, 1 if value else 0)
    elif kind == 2:
        _byte(b, 0x18)
        _vput(b, u)
    elif kind == 3:
        _byte(b, 0x21)
        _double(b, d)
    else:
        _put(b, PyBytes_AS_STRING(other), anylen)
    return 0


cdef int _field_bytes(Buf* b, const char* tp, Py_ssize_t tn, bytes kb, object value) except -1:
    cdef bytes kv = (_ld(b"\x0a", kb) if kb else b"") + _ld(b"\x12", any_value(value))
    cdef Py_ssize_t n = PyBytes_GET_SIZE(kv)
    _reserve(b, tn + 10 + n)
    _put(b, tp, tn)
    _vput(b, <uint64_t>n)
    _put(b, PyBytes_AS_STRING(kv), n)
    return 0


def encode_attributes(bytes tag, attributes, refused):
    """The repeated ``KeyValue`` field ``tag`` of ``attributes`` (see the pure twin)."""
    cdef Buf b
    cdef Py_ssize_t saved
    cdef const char* tp = PyBytes_AS_STRING(tag)
    cdef Py_ssize_t tn = PyBytes_GET_SIZE(tag)
    if not attributes:
        return b""
    _init(&b)
    try:
        for key, value in attributes.items():
            saved = b.size
            try:
                _field(&b, tp, tn, key, value)
            except Exception as exc:  # as the official encoder: the attribute is left out
                b.size = saved
                refused(key, exc)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


cdef inline void _fixed(Buf* b, uint64_t v, int n) noexcept nogil:
    cdef int i
    for i in range(n):  # little-endian whatever the machine's order
        b.data[b.size + i] = <char>((v >> (8 * i)) & 0xFF)
    b.size += n


cdef int _ld_into(Buf* b, char tag, const char* p, Py_ssize_t n) except -1:
    _reserve(b, 11 + n)
    _byte(b, tag)
    _vput(b, <uint64_t>n)
    _put(b, p, n)
    return 0


cdef int _text_into(Buf* b, char tag, str text) except -1:
    cdef Py_ssize_t n = 0
    cdef const char* p = PyUnicode_AsUTF8AndSize(text, &n)
    return _ld_into(b, tag, p, n)


cdef int _bytes_into(Buf* b, bytes data) except -1:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    _reserve(b, n)
    _put(b, PyBytes_AS_STRING(data), n)
    return 0


cdef int _varint_field(Buf* b, char tag, uint64_t n) except -1:
    _reserve(b, 11)
    _byte(b, tag)
    _vput(b, n)
    return 0


cdef int _attributes_into(Buf* b, char tag, attributes, refused) except -1:
    cdef Py_ssize_t saved
    cdef char tp = tag
    if not attributes:
        return 0
    for key, value in attributes.items():
        saved = b.size
        try:
            _field(b, &tp, 1, key, value)
        except Exception as exc:  # as the official encoder: the attribute is left out
            b.size = saved
            refused(key, exc)
    return 0


cdef int _span_head(Buf* b, bytes trace_id, bytes span_id, bytes trace_state, bytes parent_span_id, str name,
                    int kind, uint64_t t0, uint64_t t1) except -1:
    """A ``Span``'s fields 1 to 8: ids, trace state, parent, name, kind, start and end."""
    _ld_into(b, 0x0a, PyBytes_AS_STRING(trace_id), PyBytes_GET_SIZE(trace_id))
    _ld_into(b, 0x12, PyBytes_AS_STRING(span_id), PyBytes_GET_SIZE(span_id))
    _bytes_into(b, trace_state)
    if parent_span_id is not None:
        _ld_into(b, 0x22, PyBytes_AS_STRING(parent_span_id), PyBytes_GET_SIZE(parent_span_id))
    if name:
        _text_into(b, 0x2a, name)
    _varint_field(b, 0x30, <uint64_t>kind)
    _reserve(b, 18)
    if t0:
        _byte(b, 0x39)
        _fixed(b, t0, 8)
    if t1:
        _byte(b, 0x41)
        _fixed(b, t1, 8)
    return 0


cdef int _events_into(Buf* b, events, refused) except -1:
    """A ``Span``'s field 11: ``(time_unix_nano, name, attributes, dropped_attributes_count)`` each."""
    cdef Buf e
    cdef uint64_t at
    for ev_at, ev_name, ev_attributes, ev_dropped in events:
        _init(&e)
        try:
            at = ev_at
            _reserve(&e, 9)
            if at:
                _byte(&e, 0x09)
                _fixed(&e, at, 8)
            if ev_name:
                _text_into(&e, 0x12, ev_name)
            _attributes_into(&e, 0x1a, ev_attributes, refused)
            if ev_dropped:
                _varint_field(&e, 0x20, <uint64_t>ev_dropped)
            _ld_into(b, 0x5a, e.data, e.size)
        finally:
            PyMem_Free(e.data)
    return 0


cdef int _status_into(Buf* b, uint64_t code, description) except -1:
    """A ``Span``'s field 15, ``Status``: its description (text, or None) and code."""
    cdef Py_ssize_t n = 0
    cdef const char* p = NULL
    if description:
        p = PyUnicode_AsUTF8AndSize(description, &n)
    _reserve(b, 40 + n)  # tag, body length, description field, code field: at most 33 + n
    _byte(b, 0x7a)
    _vput(b, <uint64_t>((1 + _vlen(<uint64_t>n) + n if n else 0) + (1 + _vlen(code) if code else 0)))
    if n:
        _byte(b, 0x12)
        _vput(b, <uint64_t>n)
        _put(b, p, n)
    if code:
        _byte(b, 0x18)
        _vput(b, code)
    return 0


cdef int _flags_into(Buf* b, unsigned int flags) except -1:
    """A ``Span``'s field 16, ``flags`` (fixed32)."""
    _reserve(b, 6)
    _byte(b, <char>0x85)
    _byte(b, 0x01)
    _fixed(b, flags, 4)
    return 0
