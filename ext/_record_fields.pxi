# A completion record's fields read as one tuple, by index: included by the compiled writers that read many of
# them (``_otelspan_c``, ``_langfuse_c``, ``_jsonlog_c``): ``r[_f_<name>]`` once ``configure`` has called
# :func:`_record_index` with the record's struct type. A field a writer starts to read is added below.

cdef object _record_type = None
cdef object _astuple = None
cdef tuple _record_names = ()
cdef Py_ssize_t _f_cache_hit = -1
cdef Py_ssize_t _f_cache_read_tokens = -1
cdef Py_ssize_t _f_cache_write_tokens = -1
cdef Py_ssize_t _f_call_id = -1
cdef Py_ssize_t _f_completion_tokens = -1
cdef Py_ssize_t _f_cost = -1
cdef Py_ssize_t _f_cost_estimated = -1
cdef Py_ssize_t _f_deployment_id = -1
cdef Py_ssize_t _f_end_user_id = -1
cdef Py_ssize_t _f_error_class = -1
cdef Py_ssize_t _f_error_message = -1
cdef Py_ssize_t _f_error_type = -1
cdef Py_ssize_t _f_extra = -1
cdef Py_ssize_t _f_fallbacks = -1
cdef Py_ssize_t _f_header_tags = -1
cdef Py_ssize_t _f_key_alias = -1
cdef Py_ssize_t _f_key_hash = -1
cdef Py_ssize_t _f_latency = -1
cdef Py_ssize_t _f_model = -1
cdef Py_ssize_t _f_model_group = -1
cdef Py_ssize_t _f_org_alias = -1
cdef Py_ssize_t _f_org_id = -1
cdef Py_ssize_t _f_outcome = -1
cdef Py_ssize_t _f_overhead = -1
cdef Py_ssize_t _f_prompt_tokens = -1
cdef Py_ssize_t _f_provider = -1
cdef Py_ssize_t _f_request_route = -1
cdef Py_ssize_t _f_requester_ip = -1
cdef Py_ssize_t _f_retries = -1
cdef Py_ssize_t _f_route = -1
cdef Py_ssize_t _f_start_time = -1
cdef Py_ssize_t _f_status = -1
cdef Py_ssize_t _f_stream = -1
cdef Py_ssize_t _f_team_alias = -1
cdef Py_ssize_t _f_team_id = -1
cdef Py_ssize_t _f_ttft = -1
cdef Py_ssize_t _f_upstream_model = -1
cdef Py_ssize_t _f_user_agent = -1
cdef Py_ssize_t _f_user_email = -1
cdef Py_ssize_t _f_user_id = -1


cdef int _record_index(record_type, astuple) except -1:
    """Keep the record's struct type and ``msgspec.structs.astuple``, and each field's index in its tuple (a
    ``KeyError`` when the record has no such field: the writer must not load)."""
    global _record_type, _astuple, _record_names
    global _f_cache_hit, _f_cache_read_tokens, _f_cache_write_tokens, _f_call_id, _f_completion_tokens, _f_cost
    global _f_cost_estimated, _f_deployment_id, _f_end_user_id, _f_error_class, _f_error_message, _f_error_type
    global _f_extra, _f_fallbacks, _f_header_tags, _f_key_alias, _f_key_hash, _f_latency, _f_model, _f_model_group
    global _f_org_alias, _f_org_id, _f_outcome, _f_overhead, _f_prompt_tokens, _f_provider, _f_request_route
    global _f_requester_ip, _f_retries, _f_route, _f_start_time, _f_status, _f_stream, _f_team_alias, _f_team_id
    global _f_ttft, _f_upstream_model, _f_user_agent, _f_user_email, _f_user_id
    _record_type, _astuple, _record_names = record_type, astuple, tuple(record_type.__struct_fields__)
    index = {name: i for i, name in enumerate(_record_names)}
    _f_cache_hit = index["cache_hit"]
    _f_cache_read_tokens = index["cache_read_tokens"]
    _f_cache_write_tokens = index["cache_write_tokens"]
    _f_call_id = index["call_id"]
    _f_completion_tokens = index["completion_tokens"]
    _f_cost = index["cost"]
    _f_cost_estimated = index["cost_estimated"]
    _f_deployment_id = index["deployment_id"]
    _f_end_user_id = index["end_user_id"]
    _f_error_class = index["error_class"]
    _f_error_message = index["error_message"]
    _f_error_type = index["error_type"]
    _f_extra = index["extra"]
    _f_fallbacks = index["fallbacks"]
    _f_header_tags = index["header_tags"]
    _f_key_alias = index["key_alias"]
    _f_key_hash = index["key_hash"]
    _f_latency = index["latency"]
    _f_model = index["model"]
    _f_model_group = index["model_group"]
    _f_org_alias = index["org_alias"]
    _f_org_id = index["org_id"]
    _f_outcome = index["outcome"]
    _f_overhead = index["overhead"]
    _f_prompt_tokens = index["prompt_tokens"]
    _f_provider = index["provider"]
    _f_request_route = index["request_route"]
    _f_requester_ip = index["requester_ip"]
    _f_retries = index["retries"]
    _f_route = index["route"]
    _f_start_time = index["start_time"]
    _f_status = index["status"]
    _f_stream = index["stream"]
    _f_team_alias = index["team_alias"]
    _f_team_id = index["team_id"]
    _f_ttft = index["ttft"]
    _f_upstream_model = index["upstream_model"]
    _f_user_agent = index["user_agent"]
    _f_user_email = index["user_email"]
    _f_user_id = index["user_id"]
    return 0


cdef tuple _fields(record):
    """The record's fields in its struct's order: one ``astuple`` call for a completion record (a writer's dozens
    of attribute reads, each a type lookup and a descriptor call, were a fifth of the span writer's time), and
    ``getattr`` by name for any other object."""
    if type(record) is _record_type:
        return _astuple(record)
    return tuple([getattr(record, name) for name in _record_names])
