# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A record's Langfuse ingestion events written straight into JSON: the compiled twin of the ``langfuse`` sink's
default path.

The pure twin is ``relaygate.observe.langfuse_payload.build_events``, whose event dicts the sink then encodes
with msgspec, one ``msgspec.json.encode`` per event. :func:`record_events` produces the same bytes, event for
event, without the dicts: the envelope's and the bodies' fields are written in the pure path's order as it
decides them, the scalars by this module (a string with nothing to escape copied as its UTF-8, an integer of
64 bits in decimal), every other value (a float, an object, a list, a string with a character to escape) by
the same msgspec encoder (handed over by :func:`configure`: its bytes are by definition the pure path's). The
request's content and the answer's are encoded once and written into both events, where the pure path encodes
each twice. The parts that build Python objects anyway (the answer's output field, a failure's status message,
the tags, a model parameter that is not a scalar) call the pure module's own functions. This module imports
nothing of relaygate's.

Only what the sink's default configuration sends comes here: a record with its Detail, whose request does not
steer its events (no Langfuse key with a value in its ``metadata``, no ``langfuse_*`` header), and no
``langfuse_default_tags``; :func:`record_events` answers None for a request that steers, and the caller builds
its events on the pure path. ``tests/observe/test_langfuse_twins.py`` compares the two.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free
from libc.math cimport isfinite, rint

include "_buf.pxi"
include "_round.pxi"

cdef extern from "time.h" nogil:
    ctypedef long time_t
    struct tm:
        int tm_sec
        int tm_min
        int tm_hour
        int tm_mday
        int tm_mon
        int tm_year
    tm* gmtime_r(const time_t* timep, tm* result)

__all__ = ["configure", "record_events"]

cdef object _encode = None  # the encoder _json_buf.pxi writes with
cdef object _ok = None
cdef object _client_gone = None
cdef dict _call_types = None
cdef dict _outcome_text = None
cdef frozenset _not_params = None
cdef frozenset _not_input = None
cdef frozenset _steering = None
cdef object _param = None
cdef object _answer_output = None
cdef object _status_message = None
cdef object _tag_list = None
cdef object _header_tags_of = None
cdef object _iso_py = None
cdef bytes _redacted = None

include "_json_buf.pxi"
include "_record_fields.pxi"

cdef double _YEAR_10000 = 253402300800.0
"""Epoch seconds of 10000-01-01: the pure path's ``datetime`` refuses that and later."""


def configure(*, encode, ok, client_gone, call_types, outcome_text, not_params, not_input, steering, param,
              answer_output, status_message, tag_list, header_tags_of, iso, redacted, record_type, astuple):
    """Hand over the pure path's encoder, helpers and tables (``observe.langfuse_payload`` does, once, at import)."""
    global _encode, _ok, _client_gone, _call_types, _outcome_text, _not_params, _not_input, _steering, _param
    global _answer_output, _status_message, _tag_list, _header_tags_of, _iso_py, _redacted
    _record_index(record_type, astuple)
    _encode, _ok, _client_gone, _call_types, _outcome_text = encode, ok, client_gone, call_types, outcome_text
    _not_params, _not_input, _steering, _param = not_params, not_input, steering, param
    _answer_output, _status_message, _tag_list, _header_tags_of = answer_output, status_message, tag_list, header_tags_of
    _iso_py = iso
    _redacted = encode(redacted)


cdef inline void _digits(char* p, int value, int n) noexcept nogil:
    """``value`` as exactly ``n`` decimal digits, zero-padded, at ``p``."""
    while n > 0:
        n -= 1
        p[n] = <char>(48 + value % 10)
        value //= 10


cdef int _iso_into(Buf* b, double ts) except -1:
    """``langfuse_payload.iso(ts)`` as a JSON string: UTC to the microsecond, rounded half to even as ``round``.
    A time the pure function refuses or would write otherwise (before 1970, past 9999, not finite) goes to it."""
    cdef time_t secs
    cdef double micros
    cdef tm t
    cdef char tmp[32]
    if not (ts >= 0.0 and ts < _YEAR_10000):
        return _lit(b, _encode(_iso_py(ts)))
    secs = <time_t>ts
    micros = rint((ts - <double>secs) * 1e6)
    if micros >= 1000000.0:
        secs += 1
        micros -= 1000000.0
        if secs >= <time_t>_YEAR_10000:
            return _lit(b, _encode(_iso_py(ts)))
    if gmtime_r(&secs, &t) == NULL:
        return _lit(b, _encode(_iso_py(ts)))
    memcpy(tmp, b'"0000-00-00T00:00:00.000000Z"', 29)
    _digits(tmp + 1, t.tm_year + 1900, 4)
    _digits(tmp + 6, t.tm_mon + 1, 2)
    _digits(tmp + 9, t.tm_mday, 2)
    _digits(tmp + 12, t.tm_hour, 2)
    _digits(tmp + 15, t.tm_min, 2)
    _digits(tmp + 18, t.tm_sec, 2)
    _digits(tmp + 21, <int>micros, 6)
    return _raw(b, tmp, 29)


cdef int _member(Buf* b, bytes name, value) except -1:
    """``name`` (its quoted key and colon) with ``value`` and a comma after, unless the value is None."""
    if value is not None:
        _lit(b, name)
        _jvalue(b, value)
        _lit(b, b',')
    return 0


cdef int _bodies(Buf* b, inp_b, out_b) except -1:
    """An event's ``input`` and ``output`` members (each encoded once per record for both events), if any."""
    if inp_b is not None:
        _lit(b, b',"input":')
        _lit(b, inp_b)
    if out_b is not None:
        _lit(b, b',"output":')
        _lit(b, out_b)
    return 0


cdef bint _steers(metadata, headers):
    """Whether the request steers its events (the pure path's ``_steering`` is not empty)."""
    if metadata:
        for k, v in (<dict>metadata).items():
            if v is not None and k in _steering:
                return True
    for name, value in headers.items():
        if name.startswith("langfuse_") and value:
            return True
    return False


cdef object _parameters(body):
    """``model_parameters(body)`` encoded, or None when there are none."""
    cdef dict out = {}
    for k, v in (<dict>body).items():
        if v is None or k in _not_params:
            continue
        t = type(v)
        out[k] = v if t is str or t is int or t is bool else _param(v)
    return _encode(out) if out else None


cdef object _attempts(attempts):
    return _encode([{"model_id": a.deployment_id, "model_group": a.model_group, "provider": a.provider,
                     "status": a.status, "duration_ms": _round((a.end - a.start) * 1000.0, 3),
                     **({"error_type": a.error_type} if a.error_type else {})} for a in attempts])


def record_events(record, detail not None, bint redact_key_info, release, environment, double now, new_id):
    """The record's ``trace-create`` and ``generation-create`` events, encoded, in the pure path's order and
    bytes; None when the request steers its events (the caller builds those on the pure path). ``release`` and
    ``environment`` are ``LANGFUSE_RELEASE`` and ``LANGFUSE_TRACING_ENVIRONMENT`` (or None); ``new_id()`` names
    each envelope, the trace's first."""
    cdef Buf b
    cdef Py_ssize_t mark
    cdef double start, end
    cdef tuple r = _fields(record)  # its fields by index (_record_fields.pxi)
    raw_meta = detail.metadata
    metadata = raw_meta if isinstance(raw_meta, dict) else {}
    headers = detail.request_headers
    if type(headers) is not dict or _steers(metadata, headers):
        return None
    extra = r[_f_extra]
    if not isinstance(extra, dict):
        extra = {}
    outcome = r[_f_outcome]
    cdef bint ok = outcome is _ok
    route = r[_f_route]
    route_type = _call_types.get(route, route)
    body = detail.input

    trace_id = None
    if isinstance(body, dict):
        own = (<dict>body).get("litellm_trace_id")
        if isinstance(own, str):
            trace_id = own
    if not trace_id:
        trace_id = detail.trace_id if detail.trace_id else r[_f_call_id]

    out = None
    inp_b = out_b = None
    if detail.redacted:
        inp_b = out_b = _redacted
    else:
        if isinstance(body, dict):
            inp_b = _encode({k: v for k, v in (<dict>body).items() if k in _not_params and k not in _not_input})
        elif body is not None:
            inp_b = _encode(body)
        answer = detail.output
        if answer is not None:
            out = _answer_output(route, answer)
            if out is not None:
                out_b = _encode(out)
    status_message = None if ok else _status_message(record, detail)
    if out_b is None and status_message is not None:
        out_b = _encode(status_message)

    dtags = detail.tags
    tags = list(dtags) if dtags else _tag_list(extra.get("tags"))
    if r[_f_user_agent] or r[_f_header_tags]:
        tags.extend(_header_tags_of(record))
    if len(tags) > 1:
        tags = list(dict.fromkeys(tags))
    tags_b = _encode(tags)
    params_b = _parameters(body) if isinstance(body, dict) else None
    spend_meta = extra.get("spend_logs_metadata", metadata.get("spend_logs_metadata"))
    c = r[_f_cost]
    cdef double cd = c  # what math.isfinite reads (a huge int or a non-number raises, as there)
    cost_b = _encode(c if isfinite(cd) and c > 0.0 else 0.0)
    start = r[_f_start_time]
    latency = r[_f_latency]
    end = start + (latency if not (0.0 > latency) else 0.0)

    _init(&b)
    try:
        # the trace (no existing_trace_id on this path)
        _jkv(&b, b'{"id":', new_id())
        _lit(&b, b',"timestamp":')
        mark = b.size
        _iso_into(&b, now)
        stamp = PyBytes_FromStringAndSize(b.data + mark, b.size - mark)
        _jkv(&b, b',"type":"trace-create","body":{"id":', trace_id)
        _lit(&b, b',"timestamp":')
        mark = b.size
        _iso_into(&b, start)
        started = PyBytes_FromStringAndSize(b.data + mark, b.size - mark)
        _jkv(&b, b',"name":', f"litellm-{route_type}")
        user = r[_f_end_user_id]
        if user is not None:
            _jkv(&b, b',"userId":', user)
        _bodies(&b, inp_b, out_b)
        _lit(&b, b',"tags":')
        _lit(&b, tags_b)
        if release is not None:
            _jkv(&b, b',"release":', release)
        if environment:
            _jkv(&b, b',"environment":', environment)
        _lit(&b, b'}}')
        trace = PyBytes_FromStringAndSize(b.data, b.size)

        # the generation
        b.size = 0
        _jkv(&b, b'{"id":', new_id())
        _lit(&b, b',"timestamp":')
        _lit(&b, stamp)
        _jkv(&b, b',"type":"generation-create","body":{"id":', r[_f_call_id])
        _jkv(&b, b',"traceId":', trace_id)
        _lit(&b, b',"name":')
        alias = None if redact_key_info else r[_f_key_alias]
        _jvalue(&b, f"litellm:{alias}" if alias else f"litellm-{route_type}")
        _lit(&b, b',"startTime":')
        _lit(&b, started)
        _lit(&b, b',"endTime":')
        _iso_into(&b, end)
        model = r[_f_upstream_model] or r[_f_model]
        if model:
            _jkv(&b, b',"model":', model)
        if params_b is not None:
            _lit(&b, b',"modelParameters":')
            _lit(&b, params_b)
        _bodies(&b, inp_b, out_b)
        pt, ct, cached = r[_f_prompt_tokens], r[_f_completion_tokens], r[_f_cache_read_tokens]
        _jkv(&b, b',"usageDetails":{"input":', max(pt - cached, 0))
        _jkv(&b, b',"output":', ct)
        _jkv(&b, b',"total":', pt + ct)
        _jkv(&b, b',"cache_read_input_tokens":', cached)
        _jkv(&b, b',"cache_creation_input_tokens":', r[_f_cache_write_tokens])
        _lit(&b, b'},"costDetails":{"total":')
        _lit(&b, cost_b)
        _lit(&b, b'},"metadata":{')
        if not redact_key_info:
            _member(&b, b'"user_api_key_hash":', r[_f_key_hash])
            _member(&b, b'"user_api_key_alias":', r[_f_key_alias])
            _member(&b, b'"user_api_key_team_id":', r[_f_team_id])
            _member(&b, b'"user_api_key_team_alias":', detail.team_alias)
            _member(&b, b'"user_api_key_user_id":', r[_f_user_id])
            _member(&b, b'"user_api_key_org_id":', r[_f_org_id])
            _member(&b, b'"user_api_key_end_user_id":', user)
        _lit(&b, b'"requester_metadata":')
        _lit(&b, _encode(metadata))
        if spend_meta is not None:
            _lit(&b, b',"spend_logs_metadata":')
            _lit(&b, _encode(spend_meta))
        _jkv(&b, b',"litellm_call_id":', r[_f_call_id])
        _lit(&b, b',"litellm_response_cost":')
        _lit(&b, cost_b)
        _jkv(&b, b',"cache_hit":', r[_f_cache_hit])
        if r[_f_model_group]:
            _jkv(&b, b',"model_group":', r[_f_model_group])
        if r[_f_deployment_id]:
            _jkv(&b, b',"model_id":', r[_f_deployment_id])
        if r[_f_provider]:
            _jkv(&b, b',"custom_llm_provider":', r[_f_provider])
        _jkv(&b, b',"status_code":', r[_f_status])
        _jkv(&b, b',"outcome":', _outcome_text[outcome])
        _jkv(&b, b',"litellm_overhead_time_ms":', _round(r[_f_overhead] * 1000.0, 3))
        _jkv(&b, b',"span_id":', detail.span_id)
        attempts = detail.attempts
        if attempts:
            base = attempts[len(attempts) - 1].api_base
            if base:
                _jkv(&b, b',"api_base":', base)
            if len(attempts) > 1 or not ok:
                _lit(&b, b',"attempts":')
                _lit(&b, _attempts(attempts))
        if r[_f_retries]:
            _jkv(&b, b',"attempted_retries":', r[_f_retries])
        if r[_f_fallbacks]:
            _jkv(&b, b',"attempted_fallbacks":', r[_f_fallbacks])
        if r[_f_cost_estimated]:
            _lit(&b, b',"cost_estimated":true')
        if not ok and r[_f_error_type]:
            _jkv(&b, b',"error_type":', r[_f_error_type])
        if ok:
            _lit(&b, b'},"level":"DEFAULT"')
        elif outcome is _client_gone:
            _lit(&b, b'},"level":"WARNING"')
        else:
            _lit(&b, b'},"level":"ERROR"')
        if status_message is not None:
            _jkv(&b, b',"statusMessage":', status_message)
        if environment is not None:
            _jkv(&b, b',"environment":', environment)
        ttft = r[_f_ttft]
        if ttft is not None:
            _lit(&b, b',"completionStartTime":')
            _iso_into(&b, start + ttft)
        _lit(&b, b'}}')
        return [trace, PyBytes_FromStringAndSize(b.data, b.size)]
    finally:
        PyMem_Free(b.data)
