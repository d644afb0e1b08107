# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A JSON request log line written straight into a buffer: the compiled twin of ``JsonRequestLog.line``.

The pure twin builds the line's dict and writes it with ``logs.json_line`` (orjson, then the escape of every
control character). :func:`request_line` writes the same text without the dict for the lines that are plain
ASCII: its strings are copied when every character is printable ASCII other than a quote or a backslash, its
integers written in decimal when they fit 64 bits, its floats and lists by orjson itself (handed over by
:func:`configure`). A line with anything else (a string to escape or with a character outside ASCII, a larger
integer, a value of another type, the request and response bodies) is answered None, and the caller writes it
on the pure path, which is the one place that escapes. ``tests/observe/test_jsonlog_twins.py`` compares the two.
This module imports nothing of relaygate's.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeASCII

include "_buf.pxi"
include "_round.pxi"
include "_record_fields.pxi"

__all__ = ["configure", "request_line"]

cdef object _dumps = None
cdef object _iso_time = None
cdef object _redact = None
cdef dict _outcome_text = None
cdef object _detail = None


class _Other(Exception):
    """A value this writer leaves to the pure path."""


def configure(*, dumps, iso_time, redact, outcome_text, detail, record_type, astuple):
    """Hand over orjson's ``dumps``, the pure path's helpers and tables (``observe.jsonlog`` does, at import)."""
    global _dumps, _iso_time, _redact, _outcome_text, _detail
    _record_index(record_type, astuple)
    _dumps, _iso_time, _redact, _outcome_text, _detail = dumps, iso_time, redact, outcome_text, detail


cdef int _str(Buf* b, str s) except -1:
    """A string of printable ASCII without a quote or a backslash, between quotes; anything else raises _Other."""
    cdef Py_ssize_t n = 0, i
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    cdef unsigned char c
    for i in range(n):
        c = <unsigned char>p[i]
        if c < 0x20 or c > 0x7e or c == 0x22 or c == 0x5c:
            raise _Other()
    _reserve(b, n + 2)
    _byte(b, 0x22)
    _put(b, p, n)
    _byte(b, 0x22)
    return 0


cdef int _value(Buf* b, value) except -1:
    """str, None, bool, int and float as orjson writes them in a plain line; any other value raises _Other."""
    cdef long long v
    cdef int overflow = 0
    t = type(value)
    if t is str:
        return _str(b, <str>value)
    if value is None:
        return _lit(b, b"null")
    if t is bool:
        return _lit(b, b"true" if value else b"false")
    if t is int:
        v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            raise _Other()
        return _decimal(b, v)
    if t is float:
        return _lit(b, _dumps(value))
    raise _Other()


cdef inline int _kv(Buf* b, bytes key, value) except -1:
    """A member: ``key`` (its quoted name with the comma before and the colon after), then the value."""
    _lit(b, key)
    return _value(b, value)


cdef int _tags(Buf* b, tags) except -1:
    """A list of tags as orjson writes it, when that is plain ASCII (the line's rule); else _Other."""
    cdef bytes raw
    cdef Py_ssize_t n, i
    cdef const char* p
    if type(tags) is not list:
        raise _Other()
    raw = _dumps(tags)  # orjson's TypeError (an integer past 64 bits) sends the line to the pure path too
    p = PyBytes_AS_STRING(raw)
    n = PyBytes_GET_SIZE(raw)
    for i in range(n):
        if <unsigned char>p[i] > 0x7e:
            raise _Other()
    return _lit(b, raw)


def request_line(record, int pid):
    """``JsonRequestLog.line(r)`` followed by a newline (with ``log_bodies`` off), or None when the line is not one
    this writer writes (the caller writes it on the pure path)."""
    cdef Buf b
    cdef tuple r = _fields(record)  # its fields by index (_record_fields.pxi)
    ttft = r[_f_ttft]
    start = r[_f_start_time]
    latency = r[_f_latency]
    end = start + latency
    extra = r[_f_extra]
    detail = extra.get("observe") if isinstance(extra, dict) else None
    _init(&b)
    try:
        _kv(&b, b'{"ts":', _round(end, 3))
        _kv(&b, b',"timestamp":', _iso_time(end))
        _lit(&b, b',"level":"INFO"' if r[_f_status] < 400 else b',"level":"WARNING"')
        _lit(&b, b',"component":"relaygate.requests","logger":"relaygate.requests","pid":')
        _decimal(&b, pid)
        _kv(&b, b',"message":"request","call_id":', r[_f_call_id])
        _kv(&b, b',"route":', r[_f_route])
        _kv(&b, b',"stream":', r[_f_stream])
        _kv(&b, b',"model":', r[_f_model])
        _kv(&b, b',"model_group":', r[_f_model_group])
        _kv(&b, b',"deployment_id":', r[_f_deployment_id])
        _kv(&b, b',"provider":', r[_f_provider])
        _kv(&b, b',"upstream_model":', r[_f_upstream_model])
        _kv(&b, b',"status":', r[_f_status])
        _kv(&b, b',"outcome":', _outcome_text[r[_f_outcome]])
        _kv(&b, b',"start_time":', _round(start, 6))
        _kv(&b, b',"latency_ms":', _round(latency * 1000.0, 3))
        _kv(&b, b',"ttft_ms":', _round(ttft * 1000.0, 3) if ttft is not None else None)
        _kv(&b, b',"overhead_ms":', _round(r[_f_overhead] * 1000.0, 3))
        _kv(&b, b',"prompt_tokens":', r[_f_prompt_tokens])
        _kv(&b, b',"completion_tokens":', r[_f_completion_tokens])
        _kv(&b, b',"cache_read_tokens":', r[_f_cache_read_tokens])
        _kv(&b, b',"cache_write_tokens":', r[_f_cache_write_tokens])
        _kv(&b, b',"cost":', r[_f_cost])
        _kv(&b, b',"cost_estimated":', r[_f_cost_estimated])
        _kv(&b, b',"cache_hit":', r[_f_cache_hit])
        _kv(&b, b',"retries":', r[_f_retries])
        _kv(&b, b',"fallbacks":', r[_f_fallbacks])
        _kv(&b, b',"error_type":', r[_f_error_type] or None)
        _kv(&b, b',"key_hash":', r[_f_key_hash])
        _kv(&b, b',"key_alias":', r[_f_key_alias])
        _kv(&b, b',"team_id":', r[_f_team_id])
        _kv(&b, b',"user_id":', r[_f_user_id])
        _kv(&b, b',"org_id":', r[_f_org_id])
        _kv(&b, b',"end_user_id":', r[_f_end_user_id])
        if isinstance(detail, _detail):
            _kv(&b, b',"trace_id":', detail.trace_id)
            if detail.error_message:
                _kv(&b, b',"error":', _redact(detail.error_message))
            if detail.tags:
                _lit(&b, b',"tags":')
                _tags(&b, detail.tags)
        elif isinstance(extra, dict):
            tags = extra.get("tags")
            if tags:
                _lit(&b, b',"tags":')
                _tags(&b, tags)
        _lit(&b, b'}\n')
        return PyUnicode_DecodeASCII(b.data, b.size, NULL)
    except Exception:  # _Other, or a value the pure path may write after all (or refuse: its call decides)
        return None
    finally:
        PyMem_Free(b.data)
