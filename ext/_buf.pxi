# Included by the compiled modules that write into a growing C buffer (Cython ``include``; through
# ``_otlp_buf.pxi`` for the OTLP writers): the buffer and its plain writers (bytes, a decimal integer). Not a
# module of its own.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Realloc
from libc.string cimport memcpy

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef inline void _init(Buf* b) noexcept nogil:
    b.data = NULL
    b.size = 0
    b.cap = 0


cdef int _reserve(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need = b.size + extra
    cdef Py_ssize_t cap
    cdef char* p
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 1024
    while cap < need:
        cap *= 2
    p = <char*>PyMem_Realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef inline void _put(Buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    memcpy(b.data + b.size, s, n)
    b.size += n


cdef inline void _byte(Buf* b, char c) noexcept nogil:
    b.data[b.size] = c
    b.size += 1


cdef inline int _raw(Buf* b, const char* s, Py_ssize_t n) except -1:
    _reserve(b, n)
    _put(b, s, n)
    return 0


cdef inline int _lit(Buf* b, bytes s) except -1:
    return _raw(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef int _decimal(Buf* b, long long v) except -1:
    """A 64-bit integer in decimal."""
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned long long u = <unsigned long long>(-(v + 1)) + 1 if v < 0 else <unsigned long long>v
    while True:
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        tmp[i] = 45  # "-"
    return _raw(b, tmp + i, 24 - i)
