# Included by ``_cachefast_c`` (Cython ``include``): a JSON answer's values found where they end, validated as
# msgspec validates them (or more strictly), for ``fresh``'s splice of a hit's body. Not a module of its own.

cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* The first index at or after i (below n) of a '"', a '\\\\' or a control byte, else n. */
    static inline Py_ssize_t rg_plain_until(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) {
    #if defined(__SSE2__)
        const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\\\'), c = _mm_set1_epi8(0x1f);
        while (i + 16 <= n) {
            __m128i x = _mm_loadu_si128((const __m128i*)(p + i));
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)),
                                     _mm_cmpeq_epi8(_mm_min_epu8(x, c), x));
            int mask = _mm_movemask_epi8(m);
            if (mask) return i + __builtin_ctz((unsigned)mask);
            i += 16;
        }
    #endif
        while (i < n) {
            unsigned char ch = p[i];
            if (ch == '"' || ch == '\\\\' || ch < 0x20) return i;
            i++;
        }
        return n;
    }
    """
    Py_ssize_t rg_plain_until(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) nogil

cdef enum:
    MAX_DEPTH = 64     # deeper answers go to the twin (msgspec's limit is higher: stricter is safe)
    MAX_TOP = 24       # top-level members kept in place; more go to the twin


cdef inline Py_ssize_t _ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (p[i] == 32 or p[i] == 10 or p[i] == 13 or p[i] == 9):
        i += 1
    return i


cdef inline int _hex4(const unsigned char* p) noexcept nogil:
    cdef int v = 0, k, d
    cdef unsigned char ch
    for k in range(4):
        ch = p[k]
        if 48 <= ch <= 57:
            d = ch - 48
        elif 97 <= ch <= 102:
            d = ch - 87
        elif 65 <= ch <= 70:
            d = ch - 55
        else:
            return -1
        v = (v << 4) | d
    return v


cdef Py_ssize_t _string_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """After the string whose body starts at ``i``, or -1: not a valid JSON string (an unpaired surrogate escape
    counts as invalid, as msgspec has it)."""
    cdef unsigned char ch
    cdef int u, w
    while True:
        i = rg_plain_until(p, i, n)
        if i >= n:
            return -1
        ch = p[i]
        if ch == 34:
            return i + 1
        if ch != 92 or i + 1 >= n:
            return -1
        ch = p[i + 1]
        if ch == 117:  # \uXXXX
            if i + 6 > n:
                return -1
            u = _hex4(p + i + 2)
            if u < 0 or 0xDC00 <= u <= 0xDFFF:
                return -1
            i += 6
            if 0xD800 <= u <= 0xDBFF:  # a high surrogate: its low half must follow
                if i + 6 > n or p[i] != 92 or p[i + 1] != 117:
                    return -1
                w = _hex4(p + i + 2)
                if w < 0xDC00 or w > 0xDFFF:
                    return -1
                i += 6
        elif ch == 34 or ch == 92 or ch == 47 or ch == 98 or ch == 102 or ch == 110 or ch == 114 or ch == 116:
            i += 2
        else:
            return -1


cdef inline Py_ssize_t _digits(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and 48 <= p[i] <= 57:
        i += 1
    return i


cdef Py_ssize_t _number_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    if p[i] == 45:
        i += 1
    if i >= n:
        return -1
    if p[i] == 48:
        i += 1
    elif 49 <= p[i] <= 57:
        i = _digits(p, i + 1, n)
    else:
        return -1
    if i < n and p[i] == 46:
        j = _digits(p, i + 1, n)
        if j == i + 1:
            return -1
        i = j
    if i < n and (p[i] == 101 or p[i] == 69):
        i += 1
        if i < n and (p[i] == 43 or p[i] == 45):
            i += 1
        j = _digits(p, i, n)
        if j == i:
            return -1
        i = j
    return i


cdef Py_ssize_t _value_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, int depth) noexcept nogil:
    """After the JSON value starting at ``i`` (no whitespace before it), or -1: not valid JSON here."""
    cdef unsigned char ch = p[i]
    cdef unsigned char close
    if ch == 34:
        return _string_end(p, i + 1, n)
    if ch == 123 or ch == 91:
        if depth >= MAX_DEPTH:
            return -1
        close = 125 if ch == 123 else 93
        i = _ws(p, i + 1, n)
        if i < n and p[i] == close:
            return i + 1
        while True:
            if i >= n:
                return -1
            if close == 125:
                if p[i] != 34:
                    return -1
                i = _string_end(p, i + 1, n)
                if i < 0:
                    return -1
                i = _ws(p, i, n)
                if i >= n or p[i] != 58:
                    return -1
                i = _ws(p, i + 1, n)
                if i >= n:
                    return -1
            i = _value_end(p, i, n, depth + 1)
            if i < 0:
                return -1
            i = _ws(p, i, n)
            if i >= n:
                return -1
            if p[i] == close:
                return i + 1
            if p[i] != 44:
                return -1
            i = _ws(p, i + 1, n)
    if ch == 116:
        return i + 4 if i + 4 <= n and memcmp(p + i, b"true", 4) == 0 else -1
    if ch == 102:
        return i + 5 if i + 5 <= n and memcmp(p + i, b"false", 5) == 0 else -1
    if ch == 110:
        return i + 4 if i + 4 <= n and memcmp(p + i, b"null", 4) == 0 else -1
    if ch == 45 or 48 <= ch <= 57:
        return _number_end(p, i, n)
    return -1


cdef inline bint _plain(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Printable ASCII without a quote or a backslash: copied as it is, what msgspec would write for it."""
    cdef Py_ssize_t k
    for k in range(n):
        if p[k] < 32 or p[k] > 126 or p[k] == 34 or p[k] == 92:
            return False
    return True
