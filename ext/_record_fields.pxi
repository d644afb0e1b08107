# A completion record's fields read as one tuple, by index: included by the compiled writers that read many of
# them (``_otelspan_c``, ``_langfuse_c``, ``_jsonlog_c``). Each includer declares a ``cdef Py_ssize_t _f_<name>``
# per field it reads and sets them in its ``configure`` from :func:`_record_index`.

cdef object _record_type = None
cdef object _astuple = None
cdef tuple _record_names = ()


cdef dict _record_index(record_type, astuple):
    """Keep the record's struct type and ``msgspec.structs.astuple``; each field's index in its tuple."""
    global _record_type, _astuple, _record_names
    _record_type, _astuple, _record_names = record_type, astuple, tuple(record_type.__struct_fields__)
    return {name: i for i, name in enumerate(_record_names)}


cdef tuple _fields(record):
    """The record's fields in its struct's order: one ``astuple`` call for a completion record (a writer's dozens
    of attribute reads, each a type lookup and a descriptor call, were a fifth of the span writer's time), and
    ``getattr`` by name for any other object."""
    if type(record) is _record_type:
        return _astuple(record)
    return tuple([getattr(record, name) for name in _record_names])
