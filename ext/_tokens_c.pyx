# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Token accounting: compiled twin of ``relaygate.core._tokens_py`` (same API, same results).

See the pure twin for the design essay and the calibration of the weights, which are shared: this file
reads them from the pure module so the two can never drift apart. Byte classes come from a 256-entry
table; JSON is walked with pointers; only the small ``usage`` slice and escaped strings go to msgspec.
"""

from libc.string cimport memchr, memcmp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

import msgspec

from relaygate.core import _tokens_py as _ref

__all__ = [
    "MAX_TOKENS",
    "bound",
    "extract_usage",
    "estimate_tokens",
    "estimate_messages_tokens",
    "count_stream_content",
    "MEDIA_TOKENS",
]

MEDIA_TOKENS = _ref.MEDIA_TOKENS
MAX_TOKENS = _ref.MAX_TOKENS
bound = _ref.bound

cdef long long WORD = _ref.WORD
cdef long long WORD_EXTRA = _ref.WORD_EXTRA
cdef long long WORD_FREE = _ref.WORD_FREE
cdef long long DIGITS = _ref.DIGITS
cdef long long PUNCT = _ref.PUNCT
cdef long long PUNCT_EXTRA = _ref.PUNCT_EXTRA
cdef long long SPACE = _ref.SPACE
cdef long long NONASCII_2 = _ref.NONASCII_2
cdef long long NONASCII_3 = _ref.NONASCII_3
cdef long long NONASCII_4 = _ref.NONASCII_4
cdef long long C_MEDIA = _ref.MEDIA_TOKENS

cdef object _usage_decoder = _ref._usage_decoder
cdef object _str_decoder = _ref._str_decoder
cdef object DecodeError = msgspec.DecodeError

cdef enum:
    C_LETTER = 0
    C_DIGIT = 1
    C_SP = 2
    C_WS = 3
    C_PUNCT = 4
    C_CONT = 5
    C_N2 = 6
    C_N3 = 7
    C_N4 = 8

cdef unsigned char CLS[256]


cdef void _init_classes() noexcept:
    cdef int b
    for b in range(256):
        if (65 <= b <= 90) or (97 <= b <= 122):
            CLS[b] = C_LETTER
        elif 48 <= b <= 57:
            CLS[b] = C_DIGIT
        elif b == 32:
            CLS[b] = C_SP
        elif 9 <= b <= 13:
            CLS[b] = C_WS
        elif b < 128:
            CLS[b] = C_PUNCT
        elif b < 0xC0:
            CLS[b] = C_CONT
        elif b < 0xE0:
            CLS[b] = C_N2
        elif b < 0xF0:
            CLS[b] = C_N3
        else:
            CLS[b] = C_N4


_init_classes()


cdef inline bint _is_ws(unsigned char c) noexcept:
    return c == 32 or c == 9 or c == 10 or c == 13


cdef long long _estimate_milli(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef long long total = 0
    cdef Py_ssize_t i = 0, start, run
    cdef unsigned char c
    while i < n:
        c = CLS[p[i]]
        if c == C_LETTER:
            start = i
            i += 1
            while i < n and CLS[p[i]] == C_LETTER:
                i += 1
            run = i - start
            total += WORD
            if run > WORD_FREE:
                total += WORD_EXTRA * (run - WORD_FREE)
        elif c == C_DIGIT:
            start = i
            i += 1
            while i < n and CLS[p[i]] == C_DIGIT:
                i += 1
            total += DIGITS * ((i - start + 2) // 3)
        elif c == C_PUNCT:
            start = i
            i += 1
            while i < n and CLS[p[i]] == C_PUNCT:
                i += 1
            total += PUNCT + PUNCT_EXTRA * (i - start - 1)
        elif c == C_SP or c == C_WS:
            start = i
            i += 1
            while i < n and (CLS[p[i]] == C_SP or CLS[p[i]] == C_WS):
                i += 1
            if i - start >= 2 or c == C_WS:
                total += SPACE
        else:
            if c == C_N2:
                total += NONASCII_2
            elif c == C_N3:
                total += NONASCII_3
            elif c == C_N4:
                total += NONASCII_4
            i += 1
    return total


cdef inline long long _estimate_buf(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef long long t
    if n == 0:
        return 0
    t = (_estimate_milli(p, n) + 500) // 1000
    return t if t > 1 else 1


cpdef long long estimate_tokens(text) except -1:
    """A fast estimate of the token count of ``text`` (UTF-8 bytes or str); 0 only for empty text."""
    cdef bytes b
    if isinstance(text, str):
        b = (<str>text).encode("utf-8", "surrogatepass")
    elif type(text) is bytes:
        b = <bytes>text
    else:
        b = bytes(text)
    return _estimate_buf(<const unsigned char*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef Py_ssize_t _string_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Index of the closing quote of the string whose opening quote is at i-1, or -1."""
    cdef unsigned char c
    while i < n:
        c = p[i]
        if c == 34:
            return i
        if c == 92:
            i += 2
        else:
            i += 1
    return -1


cdef tuple _usage_span(bytes body):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t end = n, i, j, k, depth
    while True:
        i = body.rfind(b'"usage"', 0, end)
        if i < 0:
            return None
        j = i + 7
        while j < n and _is_ws(p[j]):
            j += 1
        if j < n and p[j] == 58:
            j += 1
            while j < n and _is_ws(p[j]):
                j += 1
            if j >= n or p[j] != 123:
                return None
            depth = 0
            k = j
            while k < n:
                if p[k] == 123:
                    depth += 1
                elif p[k] == 125:
                    depth -= 1
                    if depth == 0:
                        return (j, k + 1)
                elif p[k] == 34:
                    # the twin's regex skips only complete strings; an unterminated one is not skipped
                    i = _string_end(p, k + 1, n)
                    if i >= 0:
                        k = i
                k += 1
            return None
        end = i


cpdef object extract_usage(bytes body):
    """``(prompt, completion, total)`` from the last ``usage`` object in ``body``, or None."""
    cdef tuple span = _usage_span(body)
    if span is None:
        return None
    try:
        u = _usage_decoder.decode(body[<Py_ssize_t>span[0]:<Py_ssize_t>span[1]])
    except DecodeError:
        return None
    prompt = u.prompt_tokens if u.prompt_tokens is not None else u.input_tokens
    completion = u.completion_tokens if u.completion_tokens is not None else u.output_tokens
    if prompt is None and completion is None:
        return None
    prompt = prompt or 0
    completion = completion or 0
    total = u.total_tokens if u.total_tokens is not None else prompt + completion
    if not (0 <= prompt <= MAX_TOKENS and 0 <= completion <= MAX_TOKENS and 0 <= total <= MAX_TOKENS):
        prompt, completion, total = bound(prompt), bound(completion), bound(total)
    return (prompt, completion, total)


cdef long long _string_value_tokens(bytes body, Py_ssize_t s, Py_ssize_t e) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef bytes u
    if memchr(p + s, 92, e - s) != NULL:
        try:
            u = _str_decoder.decode(body[s - 1:e + 1]).encode("utf-8", "surrogatepass")
        except DecodeError:
            pass
        else:
            return _estimate_buf(<const unsigned char*>PyBytes_AS_STRING(u), PyBytes_GET_SIZE(u))
    return _estimate_buf(p + s, e - s)


cdef enum:
    MODE_MESSAGES = 0
    MODE_STREAM = 1


cdef inline bint _key_is(const unsigned char* p, Py_ssize_t ks, Py_ssize_t ke, const char* name,
                         Py_ssize_t ln) noexcept:
    return ke - ks == ln and memcmp(p + ks, name, ln) == 0


cdef long long _walk(bytes raw, int mode) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t i = 0, e, j, ks = 0, ke = 0
    cdef long long total = 0, messages = 0, depth = 0
    cdef unsigned char c
    cdef int kind = 0  # of the current key: 0 other, 1 type, 2 media, 3 stream content
    while i < n:
        c = p[i]
        if c == 34:
            e = _string_end(p, i + 1, n)
            if e < 0:
                i += 1
                continue
            j = e + 1
            while j < n and _is_ws(p[j]):
                j += 1
            if j < n and p[j] == 58:
                ks = i + 1
                ke = e
                if mode == MODE_MESSAGES:
                    if _key_is(p, ks, ke, b"type", 4):
                        kind = 1
                    elif (_key_is(p, ks, ke, b"url", 3) or _key_is(p, ks, ke, b"data", 4)
                          or _key_is(p, ks, ke, b"file_data", 9)):
                        kind = 2
                    else:
                        kind = 0
                else:
                    if (_key_is(p, ks, ke, b"content", 7) or _key_is(p, ks, ke, b"text", 4)
                            or _key_is(p, ks, ke, b"arguments", 9)
                            or _key_is(p, ks, ke, b"reasoning_content", 17)
                            or _key_is(p, ks, ke, b"refusal", 7)):
                        kind = 3
                    else:
                        kind = 0
                i = j + 1
                continue
            if mode == MODE_MESSAGES:
                if kind == 0:
                    total += _string_value_tokens(raw, i + 1, e)
                elif kind == 2:
                    total += C_MEDIA
            elif kind == 3 and e > i + 1:
                total += _string_value_tokens(raw, i + 1, e)
            i = j
            continue
        if mode == MODE_MESSAGES:
            if c == 123:
                if depth == 1:
                    messages += 1
                depth += 1
            elif c == 91:
                depth += 1
            elif c == 93 or c == 125:
                depth -= 1
        i += 1
    if mode == MODE_MESSAGES:
        return total + 3 * messages + 3
    return total


cpdef long long estimate_messages_tokens(bytes messages_raw) except -1:
    """Estimate the prompt tokens of a raw JSON ``messages`` array, with OpenAI's per-message overhead."""
    return _walk(messages_raw, MODE_MESSAGES)


cpdef long long count_stream_content(bytes chunk_json) except -1:
    """Estimated completion tokens in one streamed chunk (``delta.content``, ``text``, ``arguments`` ...)."""
    return _walk(chunk_json, MODE_STREAM)
