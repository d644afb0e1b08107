# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A request's OpenTelemetry spans written straight into OTLP bytes: the compiled twin of the ``otel`` sink's
default path.

The pure twin is ``relaygate.observe.otel``'s own path: :func:`relaygate.observe.otel_attrs.request_attributes`
and ``attempt_attributes`` build each span's attributes as a dict, which ``core.otlp.encode_span`` then
encodes. :func:`record_spans` produces the same bytes, span for span, without the dicts: each attribute is
written into the span's buffer as it is found (the same keys, values and order, with the pure path's
``setdefault`` decisions), and the span's fields around them as ``encode_span`` writes them. The JSON attributes
(the content's ``gen_ai.input.messages`` / ``gen_ai.system_instructions`` / ``gen_ai.output.messages`` for a
request whose answer has ``choices``, LiteLLM's ``usage_object`` and ``hidden_params``) are written as JSON
straight into a buffer, their scalars here and every other value by the pure module's msgspec encoder
(``_json_buf.pxi``), so their text is the encoder's by construction. The parts that build Python objects anyway
(an Anthropic or Responses answer's content, the answer's finish reasons, read once per record, a deployment's
parsed ``api_base``, an error's class) call the pure module's own functions, handed over by :func:`configure`
(this module imports nothing of relaygate's). ``tests/observe/test_otel_spans_twins.py`` compares the two on records of
every shape the sink exports.

Only the sink's default configuration comes here (the wire exporter, the attributes on LiteLLM's proxy span,
no attribute length limit, no backend decorating the attributes, a Detail); the sink takes its pure path for
the others.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

include "_otlp_buf.pxi"
include "_round.pxi"

__all__ = ["configure", "record_spans"]

cdef frozenset _callback_slots = None
cdef tuple _NO_BUDGETS = (None,) * 7
cdef object _content = None
cdef object _finish_reasons = None
cdef object _server = None
cdef object _error_class = None
cdef object _encode = None
cdef object _new_span_id = None
cdef object _time = None
cdef dict _providers = None
cdef dict _operations = None
cdef dict _call_types = None
cdef dict _outcome_text = None
cdef object _ok = None
cdef object _client_gone = None
cdef str _proxy_span = None

cdef tuple _FLOAT_PARAMS = (("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p"),
                            ("frequency_penalty", "gen_ai.request.frequency_penalty"),
                            ("presence_penalty", "gen_ai.request.presence_penalty"),
                            ("top_k", "gen_ai.request.top_k"))
cdef tuple _MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
cdef frozenset _REQUEST_KEYS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty", "top_k",
                                          "max_tokens", "max_completion_tokens", "max_output_tokens", "seed", "n",
                                          "stop", "stop_sequences"})
cdef char _ATTR = 0x4a

include "_json_buf.pxi"
include "_record_fields.pxi"


def configure(*, callback_slots, content, finish_reasons, server, error_class, encode, new_span_id, time, providers,
              operations, call_types, outcome_text, ok, client_gone, proxy_span, record_type, astuple):
    """Hand over the pure path's helpers and tables (``observe.otel_spans`` does, once, at import); ``record_type``:
    the completion record's struct type, whose ``__struct_fields__`` give each field's index in
    ``astuple(record)`` (``msgspec.structs.astuple``)."""
    global _callback_slots, _content, _finish_reasons, _server, _error_class, _encode, _new_span_id, _time
    global _providers, _operations, _call_types, _outcome_text, _ok, _client_gone, _proxy_span
    _record_index(record_type, astuple)
    _callback_slots, _content, _server, _error_class = callback_slots, content, server, error_class
    _finish_reasons = finish_reasons
    _encode, _new_span_id, _time = encode, new_span_id, time
    _providers, _operations, _call_types, _outcome_text = providers, operations, call_types, outcome_text
    _ok, _client_gone, _proxy_span = ok, client_gone, proxy_span


cdef inline int _attr(Buf* b, str key, value, refused) except -1:
    """One attribute; a value the encoder refuses is left out and reported, as ``encode_span`` does."""
    cdef Py_ssize_t saved = b.size
    try:
        _field(b, &_ATTR, 1, key, value)
    except Exception as exc:
        b.size = saved
        refused(key, exc)
    return 0


cdef bint _number(value):
    """``otel_attrs._number``: a finite int or float (not a bool) a span can carry as a double."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return isfinite(value)
    except OverflowError:
        return False


cdef int _json_attr(Buf* b, str key, Buf* j) except -1:
    """A string attribute whose value is the JSON text written in ``j`` (as ``_field`` writes a ``str``)."""
    cdef Py_ssize_t kn = 0
    cdef const char* kp = PyUnicode_AsUTF8AndSize(key, &kn)
    cdef Py_ssize_t vn = j.size
    cdef Py_ssize_t anylen = 1 + _vlen(<uint64_t>vn) + vn
    cdef Py_ssize_t kvlen = 1 + _vlen(<uint64_t>kn) + kn + 1 + _vlen(<uint64_t>anylen) + anylen
    _reserve(b, 11 + kvlen)
    _byte(b, _ATTR)
    _vput(b, <uint64_t>kvlen)
    _byte(b, 0x0a)
    _vput(b, <uint64_t>kn)
    _put(b, kp, kn)
    _byte(b, 0x12)
    _vput(b, <uint64_t>anylen)
    _byte(b, 0x0a)
    _vput(b, <uint64_t>vn)
    if vn:
        _put(b, j.data, vn)
    return 0


cdef int _jparts(Buf* j, content) except -1:
    """``otel_attrs._parts(content)`` as JSON."""
    cdef bint first = True
    if isinstance(content, str):
        _lit(j, b'[{"type":"text","content":')
        _jvalue(j, content)
        return _lit(j, b'}]')
    if isinstance(content, list):
        _lit(j, b'[')
        for p in content:
            if not first:
                _lit(j, b',')
            first = False
            if isinstance(p, dict):
                _jvalue(j, p)
            else:
                _lit(j, b'{"type":"text","content":')
                _jvalue(j, str(p))
                _lit(j, b'}')
        return _lit(j, b']')
    if content is None:
        return _lit(j, b'[]')
    _lit(j, b'[{"type":"text","content":')
    _jvalue(j, str(content))
    return _lit(j, b'}]')


cdef tuple _MESSAGE_KEYS = ("id", "tool_calls", "tool_call_id", "name")
cdef tuple _MESSAGE_KEY_JSON = (b',"id":', b',"tool_calls":', b',"tool_call_id":', b',"name":')


cdef int _jmessage(Buf* j, msg, bint answer) except -1:
    """``otel_attrs._message(msg)`` as JSON, without its closing brace; ``answer``: an output message (a role
    ``user`` becomes ``assistant``)."""
    cdef int i
    if not isinstance(msg, dict):
        _lit(j, b'{"role":"assistant","parts":' if answer else b'{"role":"user","parts":')
        return _jparts(j, msg)
    role = (<dict>msg).get("role") or "user"
    if answer and role == "user":
        role = "assistant"
    _lit(j, b'{"role":')
    _jvalue(j, role)
    _lit(j, b',"parts":')
    _jparts(j, (<dict>msg).get("content"))
    for i in range(4):
        key = _MESSAGE_KEYS[i]
        if key in msg:
            _lit(j, <bytes>_MESSAGE_KEY_JSON[i])
            _jvalue(j, (<dict>msg)[key])
    return 0


cdef int _content_attrs(Buf* b, str route, body, answer, refused) except -1:
    """The content attributes (``otel_attrs._content``) written here for the routes whose answer has ``choices``
    (or none); a ``messages`` or ``responses`` answer of its own shape goes to the pure function."""
    cdef Buf j
    cdef bint first
    if isinstance(answer, dict) and not isinstance((<dict>answer).get("choices"), list) and (
            route == "messages" or route == "responses"):
        content = {}
        _content(route, body, answer, content)
        for k, v in content.items():
            _attr(b, k, v, refused)
        return 0
    _init(&j)
    try:
        if isinstance(body, dict):
            messages = None
            text = None
            msgs = (<dict>body).get("messages")
            if isinstance(msgs, list):
                messages = msgs
            elif route == "responses" and isinstance((<dict>body).get("input"), list):
                messages = (<dict>body)["input"]
            else:
                text = (<dict>body).get("input") if route == "responses" or route == "embeddings" else \
                    (<dict>body).get("prompt")
            if messages is not None:
                _lit(&j, b'[')
                first = True
                for m in messages:
                    if not first:
                        _lit(&j, b',')
                    first = False
                    _jmessage(&j, m, False)
                    _lit(&j, b'}')
                _lit(&j, b']')
                _json_attr(b, "gen_ai.input.messages", &j)
            elif text is not None:
                _lit(&j, b'[{"role":"user","parts":')
                _jparts(&j, text)
                _lit(&j, b'}]')
                _json_attr(b, "gen_ai.input.messages", &j)
            system = (<dict>body).get("system", (<dict>body).get("instructions"))
            if system is not None:
                j.size = 0
                _jparts(&j, system)
                _json_attr(b, "gen_ai.system_instructions", &j)
        if not isinstance(answer, dict):
            return 0
        choices = (<dict>answer).get("choices")
        if not isinstance(choices, list):
            return 0
        j.size = 0
        first = True
        _lit(&j, b'[')
        for c in choices:
            if not isinstance(c, dict):
                continue
            if not first:
                _lit(&j, b',')
            first = False
            msg = (<dict>c).get("message") or ({"role": "assistant", "content": (<dict>c)["text"]} if "text" in c
                                              else {})
            _jmessage(&j, msg, True)
            reason = (<dict>c).get("finish_reason")
            if isinstance(reason, str):
                _lit(&j, b',"finish_reason":')
                _jvalue(&j, reason)
            _lit(&j, b'}')
        if not first:
            _lit(&j, b']')
            _json_attr(b, "gen_ai.output.messages", &j)
        return 0
    finally:
        PyMem_Free(j.data)


cdef int _request_params(Buf* b, body, refused) except -1:
    if not isinstance(body, dict) or _REQUEST_KEYS.isdisjoint(body):
        return 0
    cdef dict d = <dict>body
    for key, attr in _FLOAT_PARAMS:
        v = d.get(key)
        if v is None:
            continue
        if type(v) is float:
            if isfinite(v):
                _attr(b, attr, v, refused)
        elif _number(v):
            _attr(b, attr, float(v), refused)
    for key in _MAX_TOKENS:
        v = d.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            _attr(b, "gen_ai.request.max_tokens", v, refused)
            break
    seed = d.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        _attr(b, "gen_ai.request.seed", seed, refused)
    n = d.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        _attr(b, "gen_ai.request.choice.count", n, refused)
    stop = d.get("stop", d.get("stop_sequences"))
    if isinstance(stop, str):
        _attr(b, "gen_ai.request.stop_sequences", (stop,), refused)
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        _attr(b, "gen_ai.request.stop_sequences", tuple(stop), refused)
    return 0


cdef int _response(Buf* b, answer, reasons, refused) except -1:
    """``gen_ai.response.*`` from the answer (``reasons``: its finish reasons, read once per record); bit 1: the id
    was written, bit 2: the model was."""
    cdef int wrote = 0
    if not isinstance(answer, dict):
        return 0
    rid = (<dict>answer).get("id")
    if isinstance(rid, str) and rid:
        _attr(b, "gen_ai.response.id", rid, refused)
        wrote |= 1
    model = (<dict>answer).get("model")
    if isinstance(model, str) and model:
        _attr(b, "gen_ai.response.model", model, refused)
        wrote |= 2
    if reasons:
        _attr(b, "gen_ai.response.finish_reasons", reasons, refused)
    return wrote


cdef uint64_t _ns(double seconds) except? 0:
    """Epoch seconds as nanoseconds (``int(seconds * 1e9)``); one a span cannot carry raises, as the pure path's
    encoder does."""
    cdef double v = seconds * 1e9
    if not (v >= 0.0 and v < 18446744073709551616.0):
        raise OverflowError(f"span time out of range: {seconds!r}")
    return <uint64_t>v


cdef bytes _id(str text, int size):
    """A hex id as its ``size`` bytes (``int(text, 16).to_bytes(size, "big")``, as the pure path reads it)."""
    cdef bytes v
    if len(text) == 2 * size:
        try:
            v = bytes.fromhex(text)
        except ValueError:
            pass
        else:
            if len(v) == size:
                return v
    return int(text, 16).to_bytes(size, "big")


cdef inline int _meta(Buf* b, str name, value, refused) except -1:
    """One ``metadata.*`` attribute as the pure path keeps it: none for None or an empty object or list, a
    scalar as it is, anything else as JSON."""
    if value is None:
        return 0
    t = type(value)
    if t is not str and not value and isinstance(value, (dict, list)):
        return 0
    if t is str or t is int or t is float or t is bool or isinstance(value, (str, bool, int, float)):
        return _attr(b, name, value, refused)
    return _attr(b, name, _encode(value).decode(), refused)


cdef int _metadata_attrs(Buf* b, tuple r, detail, bint redact_key_info, refused) except -1:
    """LiteLLM's standard ``metadata`` as ``metadata.*`` attributes and its ``hidden_params``, written in the order
    of ``observe.standard.standard_metadata``'s objects (the pure path iterates them), without building them."""
    cdef bint keys = not redact_key_info
    extra = r[_f_extra]
    metadata = detail.metadata
    if not metadata:
        raw = extra.get("metadata") if isinstance(extra, dict) else None
        metadata = raw if isinstance(raw, dict) else {}
    spend_meta = extra.get("spend_logs_metadata") if isinstance(extra, dict) else None
    if spend_meta is None:
        spend_meta = metadata.get("spend_logs_metadata")
    c = r[_f_cost]
    cost = c if isfinite(c) and c > 0.0 else 0.0
    api_base = ""
    attempts = detail.attempts
    if attempts:
        api_base = attempts[len(attempts) - 1].api_base.rstrip("/")
    team_alias = detail.team_alias or r[_f_team_alias]
    cdef Buf u
    _init(&u)
    try:
        _usage_json(&u, r[_f_prompt_tokens], r[_f_completion_tokens], r[_f_cache_read_tokens], r[_f_cache_write_tokens])
        return _metadata_rest(b, r, detail, keys, metadata, spend_meta, cost, api_base, team_alias, &u, refused)
    finally:
        PyMem_Free(u.data)


cdef int _usage_json(Buf* j, pt, ct, cached, cwrite) except -1:
    """LiteLLM's usage object of the record (``usage_object``) as JSON."""
    _lit(j, b'{"prompt_tokens":')
    _jvalue(j, pt)
    _lit(j, b',"completion_tokens":')
    _jvalue(j, ct)
    _lit(j, b',"total_tokens":')
    _jvalue(j, pt + ct)
    if cached:
        _lit(j, b',"cache_read_input_tokens":')
        _jvalue(j, cached)
        _lit(j, b',"prompt_tokens_details":{"cached_tokens":')
        _jvalue(j, cached)
        _lit(j, b'}')
    if cwrite:
        _lit(j, b',"cache_creation_input_tokens":')
        _jvalue(j, cwrite)
    return _lit(j, b'}')


cdef int _metadata_rest(Buf* b, tuple r, detail, bint keys, metadata, spend_meta, cost, api_base, team_alias,
                        Buf* usage, refused) except -1:
    cdef Buf h
    budgets = detail.budgets if keys else None
    if budgets is None:
        budgets = _NO_BUDGETS
    if keys:
        _meta(b, "metadata.user_api_key_hash", r[_f_key_hash], refused)
        _meta(b, "metadata.user_api_key_alias", r[_f_key_alias], refused)
    spend, max_budget, reset_at, user_spend, user_max, team_spend, team_max = budgets
    _meta(b, "metadata.user_api_key_spend", spend, refused)
    _meta(b, "metadata.user_api_key_max_budget", max_budget, refused)
    _meta(b, "metadata.user_api_key_budget_reset_at", reset_at, refused)
    _meta(b, "metadata.user_api_key_user_spend", user_spend, refused)
    _meta(b, "metadata.user_api_key_user_max_budget", user_max, refused)
    _meta(b, "metadata.user_api_key_team_spend", team_spend, refused)
    _meta(b, "metadata.user_api_key_team_max_budget", team_max, refused)
    if keys:
        _meta(b, "metadata.user_api_key_org_id", r[_f_org_id], refused)
        _meta(b, "metadata.user_api_key_org_alias", r[_f_org_alias], refused)
        _meta(b, "metadata.user_api_key_team_id", r[_f_team_id], refused)
        _meta(b, "metadata.user_api_key_user_id", r[_f_user_id], refused)
        _meta(b, "metadata.user_api_key_user_email", r[_f_user_email], refused)
        _meta(b, "metadata.user_api_key_team_alias", team_alias, refused)
        _meta(b, "metadata.user_api_key_end_user_id", r[_f_end_user_id], refused)
    _meta(b, "metadata.user_api_key_request_route", r[_f_request_route] or None, refused)
    if keys:
        key_meta = detail.key_metadata
        if key_meta:
            _meta(b, "metadata.user_api_key_auth_metadata",
                  {k: v for k, v in key_meta.items() if k not in _callback_slots} or None, refused)
    _meta(b, "metadata.spend_logs_metadata", spend_meta if isinstance(spend_meta, dict) else None, refused)
    _meta(b, "metadata.requester_ip_address", r[_f_requester_ip], refused)
    _meta(b, "metadata.requester_metadata", metadata or None, refused)
    _json_attr(b, "metadata.usage_object", usage)
    _meta(b, "metadata.team_alias", team_alias, refused)
    _meta(b, "metadata.team_id", r[_f_team_id], refused)
    _init(&h)
    try:
        _lit(&h, b'{"model_id":')
        _jvalue(&h, r[_f_deployment_id] or None)
        _lit(&h, b',"cache_key":null,"api_base":')
        _jvalue(&h, api_base or None)
        _lit(&h, b',"response_cost":')
        _jvalue(&h, cost)
        _lit(&h, b',"litellm_overhead_time_ms":')
        _jvalue(&h, r[_f_overhead] * 1000.0)
        _lit(&h, b',"additional_headers":null,"batch_models":null,"batch_successful_requests":null,'
                  b'"batch_failed_requests":null,"litellm_model_name":')
        _jvalue(&h, r[_f_upstream_model] or None)
        _lit(&h, b',"usage_object":')
        _raw(&h, usage.data, usage.size)
        _lit(&h, b'}')
        return _json_attr(b, "hidden_params", &h)
    finally:
        PyMem_Free(h.data)


cdef bytes _request_span(tuple r, detail, bint logging_ok, bint redact_key_info, bytes trace_id, bytes span_id,
                         reasons, refused):
    cdef Buf b
    cdef bint ok = r[_f_outcome] is _ok
    cdef str route = r[_f_route]
    cdef int wrote
    cdef double start, end, latency
    body = detail.input
    answer = detail.output if ok else None
    provider = r[_f_provider]
    parent = detail.parent_span_id
    start = r[_f_start_time] or _time() - r[_f_latency]
    latency = r[_f_latency]
    end = start + (latency if latency > 0.0 else 0.0)
    _init(&b)
    try:
        _span_head(&b, trace_id, span_id, b"", _id(parent, 8) if parent else None, _proxy_span, 2, _ns(start),
                   _ns(end))
        _attr(&b, "gen_ai.operation.name", _operations.get(route, route or "chat"), refused)
        if provider:
            _attr(&b, "gen_ai.system", provider, refused)
            _attr(&b, "gen_ai.provider.name", _providers.get(provider, provider), refused)
        if r[_f_model]:
            _attr(&b, "gen_ai.request.model", r[_f_model], refused)
        stream = r[_f_stream]
        _attr(&b, "gen_ai.request.stream", stream, refused)
        _request_params(&b, body, refused)
        wrote = _response(&b, answer, reasons, refused)
        upstream_model = r[_f_upstream_model]
        if ok:
            if not wrote & 1:
                _attr(&b, "gen_ai.response.id", r[_f_call_id], refused)
            if upstream_model and not wrote & 2:
                _attr(&b, "gen_ai.response.model", upstream_model, refused)
        pt, ct = r[_f_prompt_tokens], r[_f_completion_tokens]
        if ok or pt or ct:
            _attr(&b, "gen_ai.usage.input_tokens", pt, refused)
            _attr(&b, "gen_ai.usage.output_tokens", ct, refused)
        if r[_f_cache_read_tokens]:
            _attr(&b, "gen_ai.usage.cache_read.input_tokens", r[_f_cache_read_tokens], refused)
        if r[_f_cache_write_tokens]:
            _attr(&b, "gen_ai.usage.cache_creation.input_tokens", r[_f_cache_write_tokens], refused)
        ttft = r[_f_ttft]
        if ttft is not None:
            _attr(&b, "gen_ai.response.time_to_first_chunk", float(ttft), refused)
        session = detail.metadata.get("session_id")
        if isinstance(session, str) and session:
            _attr(&b, "gen_ai.conversation.id", session, refused)
        _attr(&b, "http.response.status_code", r[_f_status], refused)

        _attr(&b, "llm.request.type", _call_types.get(route, route), refused)
        _attr(&b, "llm.is_streaming", str(stream), refused)
        total = pt + ct
        _attr(&b, "llm.usage.total_tokens", total, refused)
        _attr(&b, "gen_ai.usage.total_tokens", total, refused)
        if r[_f_request_route]:
            _attr(&b, "http.route", r[_f_request_route], refused)
        _metadata_attrs(&b, r, detail, redact_key_info, refused)

        call_id = r[_f_call_id]
        _attr(&b, "relaygate.call_id", call_id, refused)
        _attr(&b, "litellm.call_id", call_id, refused)
        _attr(&b, "relaygate.route", route, refused)
        _attr(&b, "relaygate.outcome", _outcome_text[r[_f_outcome]], refused)
        group = r[_f_model_group]
        if group:
            _attr(&b, "relaygate.model_group", group, refused)
            _attr(&b, "litellm.model_group", group, refused)
        if r[_f_deployment_id]:
            _attr(&b, "relaygate.deployment_id", r[_f_deployment_id], refused)
        if upstream_model:
            _attr(&b, "relaygate.upstream_model", upstream_model, refused)
            _attr(&b, "litellm.provider.model", upstream_model, refused)
        hit = r[_f_cache_hit]
        _attr(&b, "relaygate.cache_hit", hit, refused)
        _attr(&b, "litellm.cache_hit", hit, refused)
        _attr(&b, "relaygate.retries", r[_f_retries], refused)
        _attr(&b, "relaygate.fallbacks", r[_f_fallbacks], refused)
        cost = float(r[_f_cost])
        _attr(&b, "relaygate.cost", cost if isfinite(cost) else 0.0, refused)
        if r[_f_cost_estimated]:
            _attr(&b, "relaygate.cost_estimated", True, refused)
        extra = r[_f_extra]
        if type(extra) is dict and "cost_breakdown" in extra:
            for k, v in extra["cost_breakdown"].items():
                _attr(&b, "gen_ai.cost." + k, v, refused)
        _attr(&b, "relaygate.overhead_ms", _round(r[_f_overhead] * 1000.0, 3), refused)
        _attr(&b, "relaygate.attempts", len(detail.attempts), refused)
        if detail.tags:
            _attr(&b, "relaygate.tags", tuple(detail.tags), refused)
        if logging_ok:
            _content_attrs(&b, route, body, answer, refused)

        if ok:
            _status_into(&b, 1, None)
        elif r[_f_outcome] is _client_gone:
            _status_into(&b, 0, None)
        else:
            cls = r[_f_error_class] or _error_class(r[_f_status], r[_f_error_type])
            message = detail.error_message or r[_f_error_message] or r[_f_error_type] or f"HTTP {r[_f_status]}"
            _attr(&b, "error.type", cls, refused)
            _attr(&b, "error.message", message, refused)
            if r[_f_error_type]:
                _attr(&b, "relaygate.error_type", r[_f_error_type], refused)
            _events_into(&b, [(_ns(end), "exception", {"exception.type": cls, "exception.message": message}, 0)],
                         refused)
            _status_into(&b, 2, message)
        _flags_into(&b, 0x300 if parent else 0x100)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


cdef bytes _attempt_span(tuple r, detail, a, int n, prev, bint last, str op, bytes trace_id, bytes parent_id, reasons,
                         refused):
    cdef Buf b
    cdef double start, end
    status, error_type = a.status, a.error_type
    cdef bint failed = not (200 <= status < 300) or bool(error_type)
    provider, upstream_model = a.provider, a.upstream_model
    span = a.span_id
    span_id = _id(span, 8) if span else _id(_new_span_id(), 8)
    start = a.start or r[_f_start_time]
    end = a.end
    if end < start:
        end = start
    _init(&b)
    try:
        _span_head(&b, trace_id, span_id, b"", parent_id, f"{op} {upstream_model}" if upstream_model else op, 3,
                   _ns(start), _ns(end))
        _attr(&b, "gen_ai.operation.name", op, refused)
        if provider:
            _attr(&b, "gen_ai.system", provider, refused)
            _attr(&b, "gen_ai.provider.name", _providers.get(provider, provider), refused)
        if upstream_model:
            _attr(&b, "gen_ai.request.model", upstream_model, refused)
        server = _server(a.api_base)
        if server is not None:
            host, port, base = server
            _attr(&b, "server.address", host, refused)
            _attr(&b, "server.port", port, refused)
            _attr(&b, "gen_ai.api_base", base, refused)
        if status:
            _attr(&b, "http.response.status_code", status, refused)
        if failed:
            _attr(&b, "error.type", error_type or (str(status) if status else "_OTHER"), refused)
            if a.error_message:
                _attr(&b, "error.message", a.error_message, refused)
        elif last and r[_f_outcome] is _ok:
            _response(&b, detail.output, reasons, refused)
            _attr(&b, "gen_ai.usage.input_tokens", r[_f_prompt_tokens], refused)
            _attr(&b, "gen_ai.usage.output_tokens", r[_f_completion_tokens], refused)
        _attr(&b, "relaygate.attempt", n + 1, refused)
        if prev is None:
            kind = "first"
        else:
            kind = "retry" if prev.model_group == a.model_group else "fallback"
        _attr(&b, "relaygate.attempt.kind", kind, refused)
        if a.deployment_id:
            _attr(&b, "relaygate.deployment_id", a.deployment_id, refused)
        if a.model_group:
            _attr(&b, "relaygate.model_group", a.model_group, refused)
        _status_into(&b, 2 if failed else 1, (a.error_message or None) if failed else None)
        _flags_into(&b, 0x100)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


def record_spans(record, detail not None, bint logging_ok, bint redact_key_info, refused):
    """The encoded spans of one record with its Detail, in the order the sink hands them on: each attempt's
    ``CLIENT`` span, then the request's ``SERVER`` span (LiteLLM's proxy span, with the request's attributes).
    The record's fields are read once, as a tuple (``_record_fields.pxi``), and by index after."""
    cdef tuple r = _fields(record)
    cdef bytes trace_id = _id(detail.trace_id, 16)
    cdef bytes span_id = _id(detail.span_id, 8)
    cdef list out = []
    cdef int n = 0
    output = detail.output
    reasons = _finish_reasons(r[_f_route], output) if r[_f_outcome] is _ok and isinstance(output, dict) else ()
    attempts = detail.attempts
    if attempts:
        op = _operations.get(r[_f_route], r[_f_route] or "chat")
        last = len(attempts) - 1
        prev = None
        for a in attempts:
            out.append(_attempt_span(r, detail, a, n, prev, n == last, op, trace_id, span_id, reasons, refused))
            prev = a
            n += 1
    out.append(_request_span(r, detail, logging_ok, redact_key_info, trace_id, span_id, reasons, refused))
    return out
