# Included by the compiled modules that write JSON into a growing C buffer (Cython ``include``, after
# ``_buf.pxi``, whose ``_raw`` / ``_lit`` / ``_decimal`` it uses): scalars written as msgspec writes them,
# anything else by the includer's module-level ``_encode`` (a ``msgspec.json.Encoder().encode`` handed over by
# its ``configure``), so the bytes are msgspec's by construction. Not a module of its own.

from cpython.long cimport PyLong_AsLongLongAndOverflow


cdef int _jstr(Buf* b, str s) except -1:
    """A JSON string as msgspec writes it: UTF-8 with nothing to escape copied between quotes, anything else (a
    control character, a quote, a backslash) through the encoder itself."""
    cdef Py_ssize_t n = 0, i
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)  # a lone surrogate raises, as msgspec does
    cdef unsigned char c
    for i in range(n):
        c = <unsigned char>p[i]
        if c < 0x20 or c == 0x22 or c == 0x5c:
            return _lit(b, _encode(s))
    _reserve(b, n + 2)
    _byte(b, 0x22)
    _put(b, p, n)
    _byte(b, 0x22)
    return 0


cdef int _jvalue(Buf* b, value) except -1:
    """Any value as msgspec encodes it: str, None, bool and 64-bit int written here, the rest by the encoder."""
    cdef long long v
    cdef int overflow = 0
    t = type(value)
    if t is str:
        return _jstr(b, <str>value)
    if value is None:
        return _raw(b, "null", 4)
    if t is bool:
        return _raw(b, "true", 4) if value else _raw(b, "false", 5)
    if t is int:
        v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            return _decimal(b, v)
    return _lit(b, _encode(value))


cdef inline int _jkv(Buf* b, bytes key, value) except -1:
    """A member: ``key`` (its quoted name with the comma before and the colon after, as given), then the value."""
    _lit(b, key)
    return _jvalue(b, value)
