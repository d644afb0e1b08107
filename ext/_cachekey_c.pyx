# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The response cache key's canonical body, written by compiled code (see ``relaygate.cache.key``).

``canonical_body(body)`` returns the same bytes as the pure path (``orjson.loads`` of the body, the fields the
key ignores dropped at the top level, top-level integral floats made integers, ``orjson.dumps`` with sorted keys
at every depth), or None where the pure path says the body is not cached. It walks the body's bytes once and
writes the canonical form as it goes: strings unescaped and escaped again as orjson escapes them, integers of at
most 18 digits as they are, each object's members sorted by key once the object is complete (by insertion up to
16 members, by ``qsort`` past that: a client's object of a million keys costs O(n log n)), a float written in
plain decimals with at most 15 significant digits as orjson writes the double (:func:`_plain_float`). Any other
float is formatted by ``configure``'s ``number`` (the pure module's own function); whatever else it does not
reproduce itself is handed to the pure path whole (``fallback``), so the two can only agree: a key with an escape
in it, a duplicate key, a longer integer, anything orjson would refuse (it refuses it again), a top level that is
not an object, nesting deeper than :data:`MAX_DEPTH`.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy

__all__ = ["MAX_DEPTH", "canonical_body", "configure"]

MAX_DEPTH = 200
"""Objects and arrays nested deeper go to the pure path (orjson encodes at most 255 levels)."""

cdef object _ignored = frozenset()
cdef object _number = None
cdef object _fallback = None
cdef bint _configured = False


def configure(ignored, number, fallback):
    """``ignored``: the top-level names dropped (bytes); ``number(token: bytes, top: bool)``: a float token's
    canonical bytes (None: not cached); ``fallback(body: bytes)``: the pure path's canonical body."""
    global _ignored, _number, _fallback, _configured
    _ignored = frozenset(ignored)
    _number = number
    _fallback = fallback
    _configured = True


cdef enum:
    OK = 0
    DEFER = 1


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef struct Member:
    Py_ssize_t start  # the member's "key":value in the output
    Py_ssize_t end
    Py_ssize_t klen   # the key's length (its bytes start at start + 1)


cdef struct Walk:
    const unsigned char* s
    Py_ssize_t n
    Py_ssize_t i
    Buf out
    Buf tmp
    Member* members
    Py_ssize_t nmembers
    Py_ssize_t cap_members


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


cdef inline int _put(Buf* b, const char* p, Py_ssize_t k) except -1:
    if b.size + k > b.cap:
        _reserve(b, k)
    memcpy(b.data + b.size, p, k)
    b.size += k
    return 0


cdef inline int _byte(Buf* b, char c) except -1:
    if b.size + 1 > b.cap:
        _reserve(b, 1)
    b.data[b.size] = c
    b.size += 1
    return 0


cdef inline void _ws(Walk* w) noexcept:
    cdef unsigned char c
    while w.i < w.n:
        c = w.s[w.i]
        if c == 32 or c == 10 or c == 13 or c == 9:
            w.i += 1
        else:
            return


cdef const char* HEX = b"0123456789abcdef"


cdef int _control(Buf* b, unsigned int cp) except -1:
    """A code point orjson escapes: a quote, a backslash, a control character."""
    if cp == 34:
        return _put(b, b'\\"', 2)
    if cp == 92:
        return _put(b, b"\\\\", 2)
    if cp == 8:
        return _put(b, b"\\b", 2)
    if cp == 9:
        return _put(b, b"\\t", 2)
    if cp == 10:
        return _put(b, b"\\n", 2)
    if cp == 12:
        return _put(b, b"\\f", 2)
    if cp == 13:
        return _put(b, b"\\r", 2)
    _reserve(b, 6)
    b.data[b.size] = 92
    b.data[b.size + 1] = 117  # u
    b.data[b.size + 2] = 48
    b.data[b.size + 3] = 48
    b.data[b.size + 4] = HEX[(cp >> 4) & 15]
    b.data[b.size + 5] = HEX[cp & 15]
    b.size += 6
    return 0


cdef int _utf8(Buf* b, unsigned int cp) except -1:
    _reserve(b, 4)
    if cp < 0x80:
        b.data[b.size] = <char>cp
        b.size += 1
    elif cp < 0x800:
        b.data[b.size] = <char>(0xC0 | (cp >> 6))
        b.data[b.size + 1] = <char>(0x80 | (cp & 0x3F))
        b.size += 2
    elif cp < 0x10000:
        b.data[b.size] = <char>(0xE0 | (cp >> 12))
        b.data[b.size + 1] = <char>(0x80 | ((cp >> 6) & 0x3F))
        b.data[b.size + 2] = <char>(0x80 | (cp & 0x3F))
        b.size += 3
    else:
        b.data[b.size] = <char>(0xF0 | (cp >> 18))
        b.data[b.size + 1] = <char>(0x80 | ((cp >> 12) & 0x3F))
        b.data[b.size + 2] = <char>(0x80 | ((cp >> 6) & 0x3F))
        b.data[b.size + 3] = <char>(0x80 | (cp & 0x3F))
        b.size += 4
    return 0


cdef inline int _hex4(Walk* w, unsigned int* cp) noexcept:
    """Four hex digits at ``w.i``; DEFER when they are not."""
    cdef unsigned int v = 0
    cdef unsigned char c
    cdef int k
    if w.i + 4 > w.n:
        return DEFER
    for k in range(4):
        c = w.s[w.i + k]
        if 48 <= c <= 57:
            v = v * 16 + (c - 48)
        elif 97 <= c <= 102:
            v = v * 16 + (c - 87)
        elif 65 <= c <= 70:
            v = v * 16 + (c - 55)
        else:
            return DEFER
    w.i += 4
    cp[0] = v
    return OK


cdef inline Py_ssize_t _utf8_len(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    """The length of the valid UTF-8 sequence of a non-ASCII lead byte at ``s[i]``; 0 when it is not valid
    (overlong, a surrogate, past U+10FFFF, cut short), as a strict decoder judges it."""
    cdef unsigned char c = s[i]
    cdef unsigned char c1
    if 0xC2 <= c <= 0xDF:
        if i + 1 < n and (s[i + 1] & 0xC0) == 0x80:
            return 2
        return 0
    if 0xE0 <= c <= 0xEF:
        if i + 2 >= n:
            return 0
        c1 = s[i + 1]
        if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80:
            return 0
        if c == 0xE0 and c1 < 0xA0:
            return 0
        if c == 0xED and c1 >= 0xA0:
            return 0
        return 3
    if 0xF0 <= c <= 0xF4:
        if i + 3 >= n:
            return 0
        c1 = s[i + 1]
        if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
            return 0
        if c == 0xF0 and c1 < 0x90:
            return 0
        if c == 0xF4 and c1 >= 0x90:
            return 0
        return 4
    return 0


cdef int _string(Walk* w, bint key) except -1:
    """The string at ``w.i`` (its opening quote), written canonically; a key may have no escape (DEFER)."""
    cdef const unsigned char* s = w.s
    cdef Py_ssize_t n = w.n
    cdef Py_ssize_t i = w.i + 1
    cdef Py_ssize_t run
    cdef Py_ssize_t k
    cdef unsigned char c
    cdef unsigned int cp
    cdef unsigned int lo
    cdef uint64_t x
    cdef uint64_t q
    cdef uint64_t b
    _byte(&w.out, 34)
    run = i
    while True:
        while i + 8 <= n:  # eight plain bytes at a time: none a quote, a backslash, a control or non-ASCII byte
            memcpy(&x, s + i, 8)
            q = x ^ 0x2222222222222222ULL
            b = x ^ 0x5C5C5C5C5C5C5C5CULL
            if (((x - 0x2020202020202020ULL) | (q - 0x0101010101010101ULL) | (b - 0x0101010101010101ULL) | x)
                    & 0x8080808080808080ULL) != 0:
                break
            i += 8
        if i >= n:
            return DEFER
        c = s[i]
        if c == 34:
            _put(&w.out, <const char*>(s + run), i - run)
            _byte(&w.out, 34)
            w.i = i + 1
            return OK
        if c < 32:
            return DEFER
        if c < 128 and c != 92:
            i += 1
            continue
        if c >= 128:
            k = _utf8_len(s, i, n)
            if k == 0:
                return DEFER
            i += k
            continue
        # a backslash
        if key:
            return DEFER
        _put(&w.out, <const char*>(s + run), i - run)
        if i + 1 >= n:
            return DEFER
        c = s[i + 1]
        i += 2
        if c == 34:
            _put(&w.out, b'\\"', 2)
        elif c == 92:
            _put(&w.out, b"\\\\", 2)
        elif c == 47:
            _byte(&w.out, 47)
        elif c == 98:
            _put(&w.out, b"\\b", 2)
        elif c == 102:
            _put(&w.out, b"\\f", 2)
        elif c == 110:
            _put(&w.out, b"\\n", 2)
        elif c == 114:
            _put(&w.out, b"\\r", 2)
        elif c == 116:
            _put(&w.out, b"\\t", 2)
        elif c == 117:
            w.i = i
            if _hex4(w, &cp) != OK:
                return DEFER
            i = w.i
            if 0xDC00 <= cp <= 0xDFFF:
                return DEFER
            if 0xD800 <= cp <= 0xDBFF:
                if i + 1 >= n or s[i] != 92 or s[i + 1] != 117:
                    return DEFER
                w.i = i + 2
                if _hex4(w, &lo) != OK or not 0xDC00 <= lo <= 0xDFFF:
                    return DEFER
                i = w.i
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
            if cp < 32 or cp == 34 or cp == 92:
                _control(&w.out, cp)
            else:
                _utf8(&w.out, cp)
        else:
            return DEFER
        run = i


cdef int _plain_float(Walk* w, Py_ssize_t start, Py_ssize_t end, bint top) except -1:
    """A float written ``-?D+.D+`` (no exponent) with at most 15 significant digits and a value of 0 or at least
    1e-5 (below 1e15 by its digits): orjson writes the double it decodes to as these digits, trailing zeros
    dropped (15 digits name one double, and no shorter string names it), in plain notation (orjson's for values
    from 1e-5 up to 1e16), ``.0`` when no fraction digit is left; at the top level such an integral value is an
    integer (``-0.0`` is 0). DEFER: the pure path's formatter decides."""
    cdef const unsigned char* s = w.s
    cdef Py_ssize_t dot = start
    cdef Py_ssize_t last
    cdef Py_ssize_t first
    cdef Py_ssize_t lead = 0
    cdef bint negative = s[start] == 45
    cdef Py_ssize_t int_start = start + 1 if negative else start
    cdef bint zero_int
    cdef Py_ssize_t sig
    while s[dot] != 46:
        dot += 1
    zero_int = dot - int_start == 1 and s[int_start] == 48
    last = end - 1
    while last > dot and s[last] == 48:  # trailing zeros of the fraction
        last -= 1
    if zero_int:
        first = dot + 1
        while first <= last and s[first] == 48:
            first += 1
        if first > last:  # zero
            if top:
                return _byte(&w.out, 48)
            return _put(&w.out, b"-0.0", 4) if negative else _put(&w.out, b"0.0", 3)
        lead = first - dot - 1
        if lead > 4:  # below 1e-5: orjson writes an exponent
            return DEFER
        sig = last - first + 1
    else:
        sig = (dot - int_start) + (last - dot)
    if sig > 15:
        return DEFER
    if last == dot:  # integral
        if top:
            return _put(&w.out, <const char*>(s + start), dot - start)
        _put(&w.out, <const char*>(s + start), dot - start)
        return _put(&w.out, b".0", 2)
    return _put(&w.out, <const char*>(s + start), last + 1 - start)


cdef int _number_at(Walk* w, bint top) except -1:
    cdef const unsigned char* s = w.s
    cdef Py_ssize_t n = w.n
    cdef Py_ssize_t start = w.i
    cdef Py_ssize_t i = w.i
    cdef Py_ssize_t digits
    cdef bint fraction = False
    cdef bint exponent = False
    cdef object token
    cdef object got
    if i < n and s[i] == 45:  # -
        i += 1
    if i >= n:
        return DEFER
    if s[i] == 48:
        i += 1
        digits = 1
    elif 49 <= s[i] <= 57:
        digits = 0
        while i < n and 48 <= s[i] <= 57:
            i += 1
            digits += 1
    else:
        return DEFER
    if i < n and s[i] == 46:  # .
        fraction = True
        i += 1
        if i >= n or not 48 <= s[i] <= 57:
            return DEFER
        while i < n and 48 <= s[i] <= 57:
            i += 1
    if i < n and (s[i] == 101 or s[i] == 69):  # e E
        fraction = exponent = True
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            i += 1
        if i >= n or not 48 <= s[i] <= 57:
            return DEFER
        while i < n and 48 <= s[i] <= 57:
            i += 1
    w.i = i
    if not fraction:
        if digits > 18:
            return DEFER
        if i - start == 2 and s[start] == 45 and s[start + 1] == 48:  # -0 is 0
            return _byte(&w.out, 48)
        return _put(&w.out, <const char*>(s + start), i - start)
    if not exponent and _plain_float(w, start, i, top) == OK:
        return OK
    token = PyBytes_FromStringAndSize(<const char*>(s + start), i - start)
    got = _number(token, top)
    if got is None:
        return DEFER
    return _put(&w.out, PyBytes_AS_STRING(got), PyBytes_GET_SIZE(got))


cdef inline int _literal(Walk* w, const char* word, Py_ssize_t k) except -1:
    if w.i + k > w.n or memcmp(w.s + w.i, word, k) != 0:
        return DEFER
    w.i += k
    return _put(&w.out, word, k)


cdef int _push(Walk* w, Py_ssize_t start, Py_ssize_t end, Py_ssize_t klen) except -1:
    cdef Py_ssize_t cap
    cdef Member* p
    if w.nmembers == w.cap_members:
        cap = w.cap_members * 2 if w.cap_members else 32
        p = <Member*>PyMem_Realloc(w.members, cap * sizeof(Member))
        if p == NULL:
            raise MemoryError()
        w.members = p
        w.cap_members = cap
    w.members[w.nmembers].start = start
    w.members[w.nmembers].end = end
    w.members[w.nmembers].klen = klen
    w.nmembers += 1
    return 0


cdef inline int _cmp(const char* data, Member* a, Member* b) noexcept nogil:
    cdef Py_ssize_t k = a.klen if a.klen < b.klen else b.klen
    cdef int c = memcmp(data + a.start + 1, data + b.start + 1, k)
    if c != 0:
        return c
    return (a.klen > b.klen) - (a.klen < b.klen)


cdef enum:
    SMALL_OBJECT = 16  # members sorted by insertion up to this many, by qsort past it


cdef const char* _sort_data = NULL  # qsort's comparator reads the keys here (the GIL is held throughout)


cdef int _qcmp(const void* a, const void* b) noexcept nogil:
    return _cmp(_sort_data, <Member*>a, <Member*>b)


cdef int _close(Walk* w, Py_ssize_t base, Py_ssize_t begin) except -1:
    """Members ``base..`` of the object whose ``{`` is at ``begin`` are written (each followed by a comma):
    sort them by key, write them again in that order when they were not, and close the object."""
    global _sort_data
    cdef Py_ssize_t count = w.nmembers - base
    cdef Member* m = w.members + base
    cdef Member tmp
    cdef Py_ssize_t j
    cdef Py_ssize_t k
    cdef int c
    cdef bint moved = False
    cdef Py_ssize_t length
    cdef char* data = w.out.data
    if count == 0:
        _byte(&w.out, 125)
        return OK
    if count > SMALL_OBJECT:  # a large object (a client's thousands of keys): O(n log n), never O(n^2)
        for j in range(1, count):
            if _cmp(data, &m[j - 1], &m[j]) >= 0:
                moved = True
                break
        if moved:
            _sort_data = data
            qsort(m, count, sizeof(Member), _qcmp)
        for j in range(1, count):
            if _cmp(data, &m[j - 1], &m[j]) == 0:
                return DEFER  # a duplicate key: orjson keeps the last; the pure path decides
    else:
        for j in range(1, count):  # insertion sort: most objects have a few members
            tmp = m[j]
            k = j - 1
            while k >= 0:
                c = _cmp(data, &m[k], &tmp)
                if c == 0:
                    return DEFER  # a duplicate key: orjson keeps the last; the pure path decides
                if c < 0:
                    break
                m[k + 1] = m[k]
                k -= 1
                moved = True
            m[k + 1] = tmp
    if moved:
        length = w.out.size - (begin + 1)
        w.tmp.size = 0
        _put(&w.tmp, data + begin + 1, length)
        w.out.size = begin + 1
        for j in range(count):
            _put(&w.out, w.tmp.data + (m[j].start - begin - 1), m[j].end - m[j].start)
            _byte(&w.out, 44)
        w.out.data[w.out.size - 1] = 125
    else:
        w.out.data[w.out.size - 1] = 125  # the last member's comma
    w.nmembers = base
    return OK


cdef int _value(Walk* w, int depth) except -1:
    cdef unsigned char c
    if w.i >= w.n:
        return DEFER
    c = w.s[w.i]
    if c == 34:
        return _string(w, False)
    if c == 123:
        return _object(w, depth + 1, False)
    if c == 91:
        return _array(w, depth + 1)
    if c == 116:
        return _literal(w, b"true", 4)
    if c == 102:
        return _literal(w, b"false", 5)
    if c == 110:
        return _literal(w, b"null", 4)
    return _number_at(w, False)


cdef int _array(Walk* w, int depth) except -1:
    cdef bint first = True
    if depth > MAX_DEPTH:
        return DEFER
    w.i += 1
    _byte(&w.out, 91)
    _ws(w)
    if w.i < w.n and w.s[w.i] == 93:
        w.i += 1
        return _byte(&w.out, 93)
    while True:
        if not first:
            _byte(&w.out, 44)
        first = False
        _ws(w)
        if _value(w, depth) != OK:
            return DEFER
        _ws(w)
        if w.i >= w.n:
            return DEFER
        if w.s[w.i] == 44:
            w.i += 1
            continue
        if w.s[w.i] == 93:
            w.i += 1
            return _byte(&w.out, 93)
        return DEFER


cdef int _object(Walk* w, int depth, bint top) except -1:
    cdef Py_ssize_t begin = w.out.size
    cdef Py_ssize_t base = w.nmembers
    cdef Py_ssize_t start
    cdef Py_ssize_t klen
    cdef int got
    if depth > MAX_DEPTH:
        return DEFER
    w.i += 1
    _byte(&w.out, 123)
    _ws(w)
    if w.i < w.n and w.s[w.i] == 125:
        w.i += 1
        return _byte(&w.out, 125)
    while True:
        _ws(w)
        if w.i >= w.n or w.s[w.i] != 34:
            return DEFER
        start = w.out.size
        if _string(w, True) != OK:
            return DEFER
        klen = w.out.size - start - 2
        _ws(w)
        if w.i >= w.n or w.s[w.i] != 58:
            return DEFER
        w.i += 1
        _byte(&w.out, 58)
        _ws(w)
        if top and w.i < w.n and (w.s[w.i] == 45 or 48 <= w.s[w.i] <= 57):
            got = _number_at(w, True)
        else:
            got = _value(w, depth)
        if got != OK:
            return DEFER
        if top and PyBytes_FromStringAndSize(w.out.data + start + 1, klen) in _ignored:
            w.out.size = start  # a field the key does not hash
        else:
            _push(w, start, w.out.size, klen)
            _byte(&w.out, 44)
        _ws(w)
        if w.i >= w.n:
            return DEFER
        if w.s[w.i] == 44:
            w.i += 1
            continue
        if w.s[w.i] == 125:
            w.i += 1
            return _close(w, base, begin)
        return DEFER


# The walk's buffers, kept between calls (C statics, zeroed: none at first): a request body's canonical form is
# rebuilt for every request, with no allocation and no free a call, in memory the last call left in the caches. A
# call takes them (a nested call, which nothing here makes, would start from none; one larger than KEEP_BYTES is
# freed then, so a huge body's buffer lives only until the next call) and gives them back when it ends.
cdef Buf _kept_out
cdef Buf _kept_tmp
cdef Member* _kept_members = NULL
cdef Py_ssize_t _kept_cap_members = 0
cdef Py_ssize_t KEEP_BYTES = 64 * 1024
cdef Py_ssize_t KEEP_MEMBERS = 4096


cdef inline void _take(Buf* kept, Buf* b) noexcept:
    b.data, b.size, b.cap = kept.data, 0, kept.cap
    kept.data, kept.cap = NULL, 0
    if b.cap > KEEP_BYTES:
        PyMem_Free(b.data)
        b.data, b.cap = NULL, 0


cdef inline void _give_back(Buf* kept, Buf* b) noexcept:
    if kept.data == NULL:
        kept.data, kept.cap = b.data, b.cap
    else:
        PyMem_Free(b.data)
    b.data, b.cap = NULL, 0


cdef int _canonical_into(const unsigned char* s, Py_ssize_t n, const char** out, Py_ssize_t* nout) except -1:
    """The canonical JSON of the body ``s[:n]`` at ``*out``, ``*nout`` bytes: 1; 0 when this walk does not take
    the body (the pure path answers: :func:`canonical_body`). ``*out`` is this module's buffer, valid until the
    next call: the caller copies or hashes it at once and does not free it."""
    global _kept_members, _kept_cap_members
    cdef Walk w
    cdef int got = DEFER
    if not _configured:
        raise RuntimeError("relaygate.core._cachekey_c: configure() was not called")
    w.s, w.n, w.i = s, n, 0
    _take(&_kept_out, &w.out)
    _take(&_kept_tmp, &w.tmp)
    w.members, w.nmembers, w.cap_members = _kept_members, 0, _kept_cap_members
    _kept_members, _kept_cap_members = NULL, 0
    try:
        _reserve(&w.out, w.n + 16)
        _ws(&w)
        if w.i < w.n and w.s[w.i] == 123:
            got = _object(&w, 1, True)
            if got == OK:
                _ws(&w)
                if w.i != w.n:
                    got = DEFER
        if got == OK:
            out[0] = w.out.data
            nout[0] = w.out.size
            return 1
    finally:
        _give_back(&_kept_out, &w.out)
        _give_back(&_kept_tmp, &w.tmp)
        if _kept_members == NULL and w.cap_members <= KEEP_MEMBERS:
            _kept_members, _kept_cap_members = w.members, w.cap_members
        else:
            PyMem_Free(w.members)
    return 0


def canonical_body(body):
    """The canonical JSON of a request body's hashed fields (see the module docstring); None: not cached. A value
    other than ``bytes`` (None included) goes to the pure path, which answers as for any input."""
    cdef const char* data = NULL
    cdef Py_ssize_t size = 0
    if not _configured:
        raise RuntimeError("relaygate.core._cachekey_c: configure() was not called")
    if type(body) is not bytes:
        return _fallback(body)
    if _canonical_into(<const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), &data, &size):
        return PyBytes_FromStringAndSize(data, size)
    return _fallback(body)


CANONICAL_C = PyCapsule_New(<void*>_canonical_into, b"relaygate.core._cachekey_c.CANONICAL_C", NULL)
"""``_canonical_into`` as a C function pointer, ``int (*)(s, n, out, nout) except -1``: a compiled caller's
canonical body in this module's buffer (``_cachefast_c`` hashes it there), without a bytes object made of it."""
