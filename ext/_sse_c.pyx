# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Server-sent events: compiled twin of ``relaygate.core._sse_py`` (same API, same behaviour).

See the pure twin for the design essay. This file scans with ``memchr`` over the raw buffer and slices
``bytes`` objects only for what it returns.
"""

from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize

__all__ = ["SSEDecoder", "DataReframer", "frame", "DONE_FRAME"]

cdef bytes _BOM = b"\xef\xbb\xbf"
cdef bytes _EMPTY = b""
DONE_FRAME = b"data: [DONE]\n\n"
cdef bytes _DONE_FRAME = DONE_FRAME


cpdef bytes frame(bytes payload):
    """One SSE data frame: ``data: <payload>\\n\\n``. ``payload`` must be a single line (JSON is)."""
    return b"data: " + payload + b"\n\n"


cdef bint _utf8_valid(const unsigned char* s, Py_ssize_t n) noexcept:
    """Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as Python's decoder checks it."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef unsigned char c, c1
    while i < n:
        if i + 8 <= n:
            memcpy(&word, s + i, 8)
            if (word & <uint64_t>0x8080808080808080ULL) == 0:
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80:
                return False
            if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F):
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
                return False
            i += 4
        else:
            return False
    return True


cdef inline bytes _utf8(bytes out):
    if _utf8_valid(<const unsigned char*>PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out)):
        return out
    return out.decode("utf-8", "replace").encode("utf-8")


cdef inline bytes _data_frame(bytes payload):
    if memchr(PyBytes_AS_STRING(payload), 10, PyBytes_GET_SIZE(payload)) != NULL:
        payload = payload.replace(b"\n", b"\ndata: ")
    return b"data: " + payload + b"\n\n"


cdef inline bint _is_done(const char* p, Py_ssize_t n) noexcept:
    return n == 6 and memcmp(p, b"[DONE]", 6) == 0


cdef inline bint _bom_prefix(bytes buf) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    return n < 3 and memcmp(PyBytes_AS_STRING(buf), b"\xef\xbb\xbf", n) == 0


cdef class SSEDecoder:
    """Incremental ``text/event-stream`` parser.

    ``feed(data)`` returns the events completed by ``data`` as ``(event, data)`` pairs; ``event`` is the
    ``event:`` field or None when absent or empty. Events without any ``data:`` line are not returned.
    ``last_event_id`` and ``retry`` keep the latest valid ``id:`` / ``retry:`` values.
    """

    cdef bytes _buf
    cdef bint _skip_lf
    cdef public bint _bom_done
    cdef object _event
    cdef list _data
    cdef public bytes last_event_id
    cdef public object retry

    def __init__(self):
        self._buf = _EMPTY
        self._skip_lf = False
        self._bom_done = False
        self._event = None
        self._data = []
        self.last_event_id = _EMPTY
        self.retry = None

    cpdef list feed(self, data):
        cdef bytes buf
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
        else:
            buf = bytes(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
        if self._skip_lf and n:
            self._skip_lf = False
            if PyBytes_AS_STRING(buf)[0] == b'\n':
                buf = buf[1:]
                n -= 1
        if not self._bom_done:
            if _bom_prefix(buf):
                self._buf = buf
                return []
            self._bom_done = True
            if n >= 3 and memcmp(PyBytes_AS_STRING(buf), b"\xef\xbb\xbf", 3) == 0:
                buf = buf[3:]
                n -= 3
        cdef list out = []
        cdef const char* p = PyBytes_AS_STRING(buf)
        cdef Py_ssize_t pos = 0, i = 0
        cdef char c
        while i < n:
            c = p[i]
            if c == b'\n':
                self._line(p + pos, i - pos, out)
                i += 1
                pos = i
            elif c == b'\r':
                self._line(p + pos, i - pos, out)
                i += 1
                if i < n:
                    if p[i] == b'\n':
                        i += 1
                else:
                    self._skip_lf = True
                pos = i
            else:
                i += 1
        self._buf = buf[pos:] if pos else buf
        return out

    cpdef list close(self):
        """Flush: a pending unterminated line and a final event without its blank line."""
        cdef list out = []
        cdef bytes buf = self._buf
        self._buf = _EMPTY
        if not self._bom_done:
            self._bom_done = True
            if buf == _BOM:
                buf = _EMPTY
        if PyBytes_GET_SIZE(buf):
            self._line(PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf), out)
        self._line(NULL, 0, out)
        return out

    cdef int _line(self, const char* p, Py_ssize_t n, list out) except -1:
        cdef const char* colon
        cdef Py_ssize_t nlen, vstart
        cdef bytes value
        if n == 0:
            if self._data:
                if len(self._data) == 1:
                    out.append((self._event, self._data[0]))
                else:
                    out.append((self._event, b"\n".join(self._data)))
                self._data = []
            self._event = None
            return 0
        if p[0] == b':':
            return 0
        colon = <const char*>memchr(p, b':', n)
        if colon == NULL:
            nlen = n
            vstart = n
        else:
            nlen = colon - p
            vstart = nlen + 1
            if vstart < n and p[vstart] == b' ':
                vstart += 1
        if nlen == 4 and memcmp(p, b"data", 4) == 0:
            self._data.append(PyBytes_FromStringAndSize(p + vstart, n - vstart))
        elif nlen == 5 and memcmp(p, b"event", 5) == 0:
            value = PyBytes_FromStringAndSize(p + vstart, n - vstart)
            self._event = value if n - vstart else None
        elif nlen == 2 and memcmp(p, b"id", 2) == 0:
            if memchr(p + vstart, 0, n - vstart) == NULL:
                self.last_event_id = PyBytes_FromStringAndSize(p + vstart, n - vstart)
        elif nlen == 5 and memcmp(p, b"retry", 5) == 0:
            value = PyBytes_FromStringAndSize(p + vstart, n - vstart)
            if value.isdigit():
                self.retry = int(value)
        return 0


cdef class DataReframer:
    """Re-frames an upstream OpenAI-style SSE stream into clean ``data: ...\\n\\n`` frames.

    ``feed(data)`` returns the bytes to send to the client for the events ``data`` completed (``b""``
    when none), always valid UTF-8. ``done`` turns true at ``data: [DONE]``; ``last_data`` is the last
    payload before it; ``frames`` counts the data frames emitted, not counting ``[DONE]``.
    """

    cdef bytes _buf
    cdef bint _bom_done
    cdef SSEDecoder _decoder
    cdef public bint done
    cdef public bytes last_data
    cdef public Py_ssize_t frames

    def __init__(self):
        self._buf = _EMPTY
        self._bom_done = False
        self._decoder = None
        self.done = False
        self.last_data = _EMPTY
        self.frames = 0

    cpdef bytes feed(self, data):
        return _utf8(self._feed(data))

    cpdef bytes close(self):
        """Flush a final event that lacks its blank line."""
        return _utf8(self._close())

    cdef bytes _feed(self, data):
        if self.done:
            return _EMPTY
        if self._decoder is not None:
            return self._emit_events(self._decoder.feed(data))
        cdef bytes buf
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + data
        else:
            buf = bytes(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
        if not self._bom_done:
            if _bom_prefix(buf):
                self._buf = buf
                return _EMPTY
            self._bom_done = True
            if n >= 3 and memcmp(PyBytes_AS_STRING(buf), b"\xef\xbb\xbf", 3) == 0:
                buf = buf[3:]
                n -= 3
        cdef const char* p = PyBytes_AS_STRING(buf)
        if memchr(p, b'\r', n) != NULL:
            self._buf = _EMPTY
            self._decoder = SSEDecoder()
            self._decoder._bom_done = True
            return self._emit_events(self._decoder.feed(buf))
        cdef list parts = None
        cdef Py_ssize_t pos = 0, run = 0, j, blen, last_start = -1, last_len = 0
        cdef const char* q
        while pos < n:
            q = <const char*>memchr(p + pos, b'\n', n - pos)
            # find "\n\n"
            while q != NULL:
                j = q - p
                if j + 1 >= n:
                    q = NULL
                    break
                if p[j + 1] == b'\n':
                    break
                q = <const char*>memchr(p + j + 1, b'\n', n - j - 1)
            if q == NULL:
                break
            blen = j - pos
            if (blen >= 6 and memcmp(p + pos, b"data: ", 6) == 0
                    and memchr(p + pos + 6, b'\n', blen - 6) == NULL):
                if _is_done(p + pos + 6, blen - 6):
                    if parts is None:
                        parts = []
                    if run < pos:
                        parts.append(buf[run:pos])
                    parts.append(_DONE_FRAME)
                    self.done = True
                    self._buf = _EMPTY
                    if last_start >= 0:
                        self.last_data = buf[last_start:last_start + last_len]
                    return b"".join(parts)
                last_start = pos + 6
                last_len = blen - 6
                self.frames += 1
            else:
                if parts is None:
                    parts = []
                if run < pos:
                    parts.append(buf[run:pos])
                if last_start >= 0:
                    self.last_data = buf[last_start:last_start + last_len]
                    last_start = -1
                if self._block(buf[pos:j], parts):
                    self._buf = _EMPTY
                    return b"".join(parts)
                run = j + 2
            pos = j + 2
        if last_start >= 0:
            self.last_data = buf[last_start:last_start + last_len]
        self._buf = buf[pos:] if pos else buf
        if parts is None:
            if run < pos:
                if run == 0 and pos == n:
                    return buf
                return buf[run:pos]
            return _EMPTY
        if run < pos:
            parts.append(buf[run:pos])
        if not parts:
            return _EMPTY
        return b"".join(parts)

    cdef bytes _close(self):
        if self.done:
            return _EMPTY
        if self._decoder is not None:
            return self._emit_events(self._decoder.close())
        cdef bytes buf = self._buf
        self._buf = _EMPTY
        if not self._bom_done:
            self._bom_done = True
            if buf == _BOM:
                buf = _EMPTY
        if buf.endswith(b"\n"):
            buf = buf[:PyBytes_GET_SIZE(buf) - 1]
        if not buf:
            return _EMPTY
        cdef list parts = []
        self._block(buf, parts)
        return b"".join(parts)

    cdef bint _block(self, bytes block, list parts) except -1:
        cdef list data = None
        cdef bytes line, value
        cdef Py_ssize_t colon
        for line in block.split(b"\n"):
            if not line:
                if data is not None and self._one(b"\n".join(data), parts):
                    return True
                data = None
                continue
            if line[0] == 58:
                continue
            colon = line.find(b":")
            if colon < 0:
                if line == b"data":
                    if data is None:
                        data = [_EMPTY]
                    else:
                        data.append(_EMPTY)
                continue
            if colon == 4 and line.startswith(b"data"):
                value = line[colon + 1:]
                if value[:1] == b" ":
                    value = value[1:]
                if data is None:
                    data = [value]
                else:
                    data.append(value)
        if data is not None:
            return self._one(b"\n".join(data), parts)
        return False

    cdef bint _one(self, bytes payload, list parts) except -1:
        if _is_done(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)):
            parts.append(_DONE_FRAME)
            self.done = True
            return True
        parts.append(_data_frame(payload))
        self.last_data = payload
        self.frames += 1
        return False

    cdef bytes _emit_events(self, list events):
        cdef list parts = []
        cdef tuple ev
        for ev in events:
            if self._one(ev[1], parts):
                break
        return b"".join(parts)
