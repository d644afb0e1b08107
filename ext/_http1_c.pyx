# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""HTTP/1.1 responses from upstreams: compiled twin of ``relaygate.core._http1_py`` (same API and events).

See the pure twin for the design essay, the framing rules and the invariants. This file scans the head
with ``memchr`` and a 256-entry table that validates and lower-cases header names in one pass.
"""

from libc.string cimport memchr, memcmp
from libc.stdint cimport uint64_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize

from relaygate.core.errors import UpstreamProtocolError

__all__ = ["ResponseParser", "Head", "End", "END", "build_request", "build_request_head", "MAX_HEAD",
           "MAX_CHUNK_LINE"]

MAX_HEAD = 65536
MAX_CHUNK_LINE = 4096
cdef Py_ssize_t C_MAX_HEAD = MAX_HEAD
cdef Py_ssize_t C_MAX_CHUNK_LINE = MAX_CHUNK_LINE

cdef enum:
    S_HEAD = 0
    S_LENGTH = 1
    S_CHUNK_SIZE = 2
    S_CHUNK_DATA = 3
    S_CHUNK_END = 4
    S_TRAILERS = 5
    S_UNTIL_EOF = 6
    S_DONE = 7
    S_ERROR = 8

# token char -> lower-cased char; 0 for characters not allowed in a header name
cdef unsigned char TOKEN_LOWER[256]
# hex digit value, or 255
cdef unsigned char HEXVAL[256]


cdef void _init_tables() noexcept:
    cdef int b
    cdef bytes token = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for b in range(256):
        TOKEN_LOWER[b] = 0
        HEXVAL[b] = 255
    for b in token:
        TOKEN_LOWER[b] = b + 32 if 65 <= b <= 90 else b
    for b in range(10):
        HEXVAL[48 + b] = b
    for b in range(6):
        HEXVAL[97 + b] = 10 + b
        HEXVAL[65 + b] = 10 + b


_init_tables()

cdef bytes _EMPTY = b""
cdef bytes _V11 = b"1.1"
cdef bytes _V10 = b"1.0"
cdef bytes _CONTENT_LENGTH = b"content-length"
cdef bytes _TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes _CONNECTION = b"connection"
cdef frozenset _NO_BODY_METHODS = frozenset(("GET", "HEAD"))
cdef frozenset _SKIP_REQUEST_HEADERS = frozenset(("host", "content-length", "transfer-encoding"))


cdef class Head:
    """The response head: status line, headers and the framing decided from them."""

    cdef readonly int status
    cdef readonly bytes reason
    cdef readonly bytes http_version
    cdef readonly list headers
    cdef readonly bint keep_alive
    cdef readonly object content_length
    cdef readonly bint chunked

    def __init__(self, int status, bytes reason, bytes http_version, list headers, bint keep_alive,
                 content_length, bint chunked):
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked

    cpdef object header(self, bytes name):
        """First value of header ``name`` (lower-case), or None."""
        cdef tuple kv
        for kv in self.headers:
            if kv[0] == name:
                return kv[1]
        return None

    def __repr__(self):
        return (
            f"Head(status={self.status}, reason={self.reason!r}, headers={self.headers!r}, "
            f"keep_alive={self.keep_alive}, content_length={self.content_length}, chunked={self.chunked})"
        )


cdef class End:
    """The end of a response body. Use the singleton :data:`END`."""

    def __repr__(self):
        return "END"


END = End()
cdef End _END = END


cdef object _error(str message):
    return UpstreamProtocolError(f"invalid HTTP response from upstream: {message}")


cdef inline bint _ows(unsigned char c) noexcept:
    return c == 32 or c == 9


cdef list _header_tokens(bytes value):
    return [t.strip(b" \t").lower() for t in value.split(b",")]


cdef class ResponseParser:
    """Incremental parser for one HTTP/1.1 response (reusable with :meth:`reset` for the next)."""

    cdef bytes _buf
    cdef int _state
    cdef uint64_t _remaining
    cdef bint _method_is_head
    cdef public object head
    cdef public list trailers

    def __init__(self, bint method_is_head=False):
        self._buf = _EMPTY
        self._state = S_HEAD
        self._remaining = 0
        self._method_is_head = method_is_head
        self.head = None
        self.trailers = []

    @property
    def done(self):
        """True once the current response ended."""
        return self._state == S_DONE

    @property
    def buffered(self):
        """Bytes received but not consumed (after :data:`END`: bytes the upstream should not have sent)."""
        return PyBytes_GET_SIZE(self._buf)

    cpdef reset(self, bint method_is_head=False):
        """Prepare for the next response on the same connection."""
        self._state = S_HEAD
        self._remaining = 0
        self._method_is_head = method_is_head
        self.head = None
        self.trailers = []

    cpdef list feed(self, data):
        """Consume ``data``; return the events it completes (:class:`Head`, body ``bytes``, :data:`END`)."""
        cdef bytes buf
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
        elif type(data) is bytes:
            buf = <bytes>data
        else:
            buf = bytes(data)
        cdef list out = []
        cdef Py_ssize_t pos = 0, n = PyBytes_GET_SIZE(buf), take, end, nl, ln, k
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
        cdef const unsigned char* q
        cdef int state = self._state
        cdef uint64_t size
        cdef unsigned char hv
        cdef Head head
        try:
            while pos < n:
                if state == S_LENGTH or state == S_CHUNK_DATA:
                    take = n - pos
                    if <uint64_t>take > self._remaining:
                        take = <Py_ssize_t>self._remaining
                    out.append(buf if take == n else buf[pos:pos + take])
                    pos += take
                    self._remaining -= <uint64_t>take
                    if self._remaining == 0:
                        if state == S_LENGTH:
                            out.append(_END)
                            state = S_DONE
                        else:
                            state = S_CHUNK_END
                elif state == S_CHUNK_SIZE:
                    q = <const unsigned char*>memchr(p + pos, 10, n - pos)
                    if q == NULL:
                        if n - pos > C_MAX_CHUNK_LINE:
                            raise _error("chunk-size line too long")
                        break
                    nl = q - p
                    if nl - pos > C_MAX_CHUNK_LINE:
                        raise _error("chunk-size line too long")
                    # size: OWS-trimmed hex digits before ';' or the line end
                    k = pos
                    while k < nl and _ows(p[k]):
                        k += 1
                    size = 0
                    ln = 0
                    while k < nl:
                        hv = HEXVAL[p[k]]
                        if hv == 255:
                            break
                        size = (size << 4) | hv
                        ln += 1
                        k += 1
                    while k < nl and _ows(p[k]):
                        k += 1
                    if ln == 0 or ln > 16 or not (k == nl or p[k] == 59 or (p[k] == 13 and k == nl - 1)):
                        raise _error(f"bad chunk size {buf[pos:nl].split(b';', 1)[0].strip(b' \t\r')[:20]!r}")
                    pos = nl + 1
                    self._remaining = size
                    state = S_CHUNK_DATA if size else S_TRAILERS
                elif state == S_CHUNK_END:
                    if p[pos] == 10:
                        pos += 1
                    elif p[pos] == 13:
                        if pos + 1 >= n:
                            break
                        if p[pos + 1] != 10:
                            raise _error("missing CRLF after chunk data")
                        pos += 2
                    else:
                        raise _error("missing CRLF after chunk data")
                    state = S_CHUNK_SIZE
                elif state == S_TRAILERS:
                    q = <const unsigned char*>memchr(p + pos, 10, n - pos)
                    if q == NULL:
                        if n - pos > C_MAX_HEAD:
                            raise _error("trailer section too long")
                        break
                    nl = q - p
                    ln = nl - pos
                    if ln and p[nl - 1] == 13:
                        ln -= 1
                    if ln == 0:
                        pos = nl + 1
                        out.append(_END)
                        state = S_DONE
                        continue
                    self.trailers.append(_field(p + pos, ln))
                    pos = nl + 1
                    if len(self.trailers) > 1000:
                        raise _error("too many trailer fields")
                elif state == S_HEAD:
                    end = _head_end(p, pos, n)
                    if end < 0:
                        if n - pos > C_MAX_HEAD:
                            raise _error("response head too large")
                        break
                    if end - pos > C_MAX_HEAD:
                        raise _error("response head too large")
                    head = self._parse_head(p + pos, end - pos)
                    pos = end
                    if head is None:
                        continue
                    self.head = head
                    out.append(head)
                    if self._method_is_head or head.status == 204 or head.status == 304:
                        out.append(_END)
                        state = S_DONE
                    elif head.chunked:
                        state = S_CHUNK_SIZE
                    elif head.content_length is not None:
                        if head.content_length:
                            self._remaining = <uint64_t>head.content_length
                            state = S_LENGTH
                        else:
                            out.append(_END)
                            state = S_DONE
                    else:
                        state = S_UNTIL_EOF
                elif state == S_UNTIL_EOF:
                    out.append(buf if pos == 0 else buf[pos:])
                    pos = n
                elif state == S_DONE:
                    break
                else:
                    raise _error("parser used after an error")
        except UpstreamProtocolError:
            self._state = S_ERROR
            self._buf = _EMPTY
            raise
        self._state = state
        if pos == 0:
            self._buf = buf
        elif pos == n:
            self._buf = _EMPTY
        else:
            self._buf = buf[pos:]
        return out

    cpdef list feed_eof(self):
        """The connection closed: end a read-until-close body, or raise if the response is incomplete."""
        cdef int state = self._state
        if state == S_UNTIL_EOF:
            self._state = S_DONE
            return [_END]
        if state == S_DONE:
            return []
        self._state = S_ERROR
        if state == S_HEAD:
            raise _error("connection closed before the response head was complete")
        raise _error("connection closed before the response body was complete")

    cdef Head _parse_head(self, const unsigned char* p, Py_ssize_t n):
        # n includes the terminating blank line; find the status line end
        cdef const unsigned char* q = <const unsigned char*>memchr(p, 10, n)
        cdef Py_ssize_t sl = q - p  # q != NULL: the head contains a blank line
        cdef Py_ssize_t pos, ln, le
        cdef int status
        cdef bint http11, conn_close = False, conn_keep_alive = False, chunked = False, until_eof = False
        cdef list headers, te = None
        cdef object content_length = None
        cdef bytes name, value, part
        cdef tuple kv
        if sl and p[sl - 1] == 13:
            sl -= 1
        if (sl < 12 or memcmp(p, b"HTTP/1.", 7) != 0 or (p[7] != 48 and p[7] != 49) or p[8] != 32
                or not (48 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57)
                or (sl > 12 and p[12] != 32)):
            if sl == 0:
                raise _error("empty status line")
            raise _error(f"bad status line {PyBytes_FromStringAndSize(<const char*>p, sl)[:40]!r}")
        status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
        if status < 100:
            raise _error(f"bad status code {status}")
        http11 = p[7] == 49
        if status < 200:
            if status == 101:
                raise _error("unexpected 101 Switching Protocols")
            return None
        reason = PyBytes_FromStringAndSize(<const char*>p + 13, sl - 13) if sl > 13 else _EMPTY
        headers = []
        pos = (q - p) + 1
        while pos < n:
            q = <const unsigned char*>memchr(p + pos, 10, n - pos)
            le = q - p
            ln = le - pos
            if ln and p[le - 1] == 13:
                ln -= 1
            if ln == 0:
                break
            kv = _field(p + pos, ln)
            headers.append(kv)
            pos = le + 1
            name = <bytes>kv[0]
            value = <bytes>kv[1]
            if PyBytes_GET_SIZE(name) == 14 and name == _CONTENT_LENGTH:
                for part in value.split(b","):
                    part = part.strip(b" \t")
                    if not part.isdigit() or PyBytes_GET_SIZE(part) > 18:
                        raise _error(f"bad content-length {value[:40]!r}")
                    cl = int(part)
                    if content_length is not None and cl != content_length:
                        raise _error("conflicting content-length values")
                    content_length = cl
            elif PyBytes_GET_SIZE(name) == 17 and name == _TRANSFER_ENCODING:
                te = (te or []) + _header_tokens(value)
            elif PyBytes_GET_SIZE(name) == 10 and name == _CONNECTION:
                for tok in _header_tokens(value):
                    if tok == b"close":
                        conn_close = True
                    elif tok == b"keep-alive":
                        conn_keep_alive = True
        if te is not None:
            content_length = None
            if te[len(te) - 1] == b"chunked":
                chunked = True
            else:
                until_eof = True
        elif content_length is None:
            until_eof = True
        if self._method_is_head or status == 204 or status == 304:
            until_eof = False
        keep_alive = (not conn_close if http11 else (conn_keep_alive and not conn_close)) and not until_eof
        return Head(status, reason, _V11 if http11 else _V10, headers, keep_alive, content_length, chunked)


cdef Py_ssize_t _head_end(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n) noexcept:
    """Index just past the first blank line (``\\n\\n`` or ``\\n\\r\\n``) at or after pos, or -1."""
    cdef const unsigned char* q
    cdef Py_ssize_t i = pos
    while i < n:
        q = <const unsigned char*>memchr(p + i, 10, n - i)
        if q == NULL:
            return -1
        i = q - p + 1
        if i < n:
            if p[i] == 10:
                return i + 1
            if p[i] == 13:
                if i + 1 >= n:
                    return -1
                if p[i + 1] == 10:
                    return i + 2
    return -1


cdef tuple _field(const unsigned char* p, Py_ssize_t n):
    cdef Py_ssize_t colon = 0, vs, ve, i
    cdef unsigned char c
    cdef bytes name
    cdef char* w
    if n == 0:
        raise _error("empty header line")
    if _ows(p[0]):
        raise _error("obsolete line folding in header")
    while colon < n and p[colon] != 58:
        colon += 1
    if colon == n or colon == 0:
        raise _error(f"bad header line {PyBytes_FromStringAndSize(<const char*>p, n)[:40]!r}")
    name = PyBytes_FromStringAndSize(NULL, colon)
    w = PyBytes_AS_STRING(name)
    for i in range(colon):
        c = TOKEN_LOWER[p[i]]
        if c == 0:
            raise _error(f"bad header name {PyBytes_FromStringAndSize(<const char*>p, colon)[:40]!r}")
        w[i] = <char>c
    vs = colon + 1
    ve = n
    while vs < ve and _ows(p[vs]):
        vs += 1
    while ve > vs and _ows(p[ve - 1]):
        ve -= 1
    if memchr(p + vs, 13, ve - vs) != NULL or memchr(p + vs, 0, ve - vs) != NULL:
        raise _error("bad character in header value")
    return (name, PyBytes_FromStringAndSize(<const char*>p + vs, ve - vs))


cdef Py_ssize_t _head_start(list parts, list headers):
    """Append the caller's headers (less those we compute) to ``parts``; return how many lines they add."""
    cdef Py_ssize_t lines = 0
    cdef str name, value
    cdef tuple kv
    for kv in headers:
        name = <str>kv[0]
        value = <str>kv[1]
        if name.lower() in _SKIP_REQUEST_HEADERS:
            continue
        parts.append(name)
        parts.append(": ")
        parts.append(value)
        parts.append("\r\n")
        lines += 1
    return lines


cdef bytes _head_bytes(list parts, Py_ssize_t lines):
    """Join and encode a head; any CR or LF beyond the ``lines`` we wrote is header injection."""
    cdef str text = "".join(parts)
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF in request line or header")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"request head is not latin-1: {exc}") from None


cpdef bytes build_request(str method, str host, str path, list headers, bytes body):
    """Request bytes: request line, ``Host``, the given headers, ``Content-Length``, blank line, body.

    ``Host``, ``Content-Length`` and ``Transfer-Encoding`` in ``headers`` are replaced by the computed
    ones. ``Content-Length`` is sent unless the method is GET or HEAD with an empty body. Raises
    ValueError if any part contains CR or LF (header injection) or is not latin-1.
    """
    cdef list parts = [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    cdef Py_ssize_t lines = 2 + _head_start(parts, headers)
    if PyBytes_GET_SIZE(body) or method not in _NO_BODY_METHODS:
        parts.append("Content-Length: ")
        parts.append(str(PyBytes_GET_SIZE(body)))
        parts.append("\r\n\r\n")
        lines += 2
    else:
        parts.append("\r\n")
        lines += 1
    return _head_bytes(parts, lines) + body


def build_request_head(str method, str host, str path, list headers, content_length):
    """The head of a request whose body the caller streams after it (see the pure twin)."""
    cdef list parts = [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    cdef Py_ssize_t lines = 4 + _head_start(parts, headers)
    if content_length is None:
        parts.append("Transfer-Encoding: chunked\r\n\r\n")
    elif content_length < 0:
        raise ValueError("negative Content-Length")
    else:
        parts.append("Content-Length: ")
        parts.append(str(int(content_length)))
        parts.append("\r\n\r\n")
    return _head_bytes(parts, lines)
