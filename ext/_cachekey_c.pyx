# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The response cache key's canonical body, written by compiled code (see ``relaygate.cache.key``).

``canonical_body(body)`` returns the same bytes as the pure path (``orjson.loads`` of the body, the fields the
key ignores dropped at the top level, top-level integral floats made integers, ``orjson.dumps`` with sorted keys
at every depth), or None where the pure path says the body is not cached. It walks the body's bytes once and
writes the canonical form as it goes: strings unescaped and escaped again as orjson escapes them, integers of at
most 18 digits as they are, each object's members sorted by key once the object is complete. Whatever it does not
reproduce itself is handed to the pure path whole (``configure``'s ``fallback``), so the two can only agree: a
float (formatted by ``number``, the pure module's own function), a key with an escape in it, a duplicate key, a
longer integer, anything orjson would refuse (it refuses it again), a top level that is not an object, nesting
deeper than :data:`MAX_DEPTH`.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <cpuid.h>
    #include <immintrin.h>
    #define RG_SHANI 1
    static const uint32_t rg_k[64] __attribute__((aligned(16))) = {
        0x428a2f98U, 0x71374491U, 0xb5c0fbcfU, 0xe9b5dba5U, 0x3956c25bU, 0x59f111f1U, 0x923f82a4U, 0xab1c5ed5U,
    0xd807aa98U, 0x12835b01U, 0x243185beU, 0x550c7dc3U, 0x72be5d74U, 0x80deb1feU, 0x9bdc06a7U, 0xc19bf174U,
    0xe49b69c1U, 0xefbe4786U, 0x0fc19dc6U, 0x240ca1ccU, 0x2de92c6fU, 0x4a7484aaU, 0x5cb0a9dcU, 0x76f988daU,
    0x983e5152U, 0xa831c66dU, 0xb00327c8U, 0xbf597fc7U, 0xc6e00bf3U, 0xd5a79147U, 0x06ca6351U, 0x14292967U,
    0x27b70a85U, 0x2e1b2138U, 0x4d2c6dfcU, 0x53380d13U, 0x650a7354U, 0x766a0abbU, 0x81c2c92eU, 0x92722c85U,
    0xa2bfe8a1U, 0xa81a664bU, 0xc24b8b70U, 0xc76c51a3U, 0xd192e819U, 0xd6990624U, 0xf40e3585U, 0x106aa070U,
    0x19a4c116U, 0x1e376c08U, 0x2748774cU, 0x34b0bcb5U, 0x391c0cb3U, 0x4ed8aa4aU, 0x5b9cca4fU, 0x682e6ff3U,
    0x748f82eeU, 0x78a5636fU, 0x84c87814U, 0x8cc70208U, 0x90befffaU, 0xa4506cebU, 0xbef9a3f7U, 0xc67178f2U
    };
    static int rg_sha_ni(void) {
        unsigned int a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
            return 0;  /* SSE4.1, SSSE3 */
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
            return 0;
        return (b >> 29) & 1;  /* SHA */
    }
    /* One 64-byte block into the state, with the SHA extensions. The state is kept as the instructions want
       it: ABEF and CDGH. */
    __attribute__((target("sha,sse4.1,ssse3")))
    static void rg_block(__m128i* abef, __m128i* cdgh, const unsigned char* p) {
        const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
        __m128i w[16];
        __m128i s0 = *abef, s1 = *cdgh, m;
        int i;
        for (i = 0; i < 4; i++)
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p + 16 * i)), swap);
        for (i = 4; i < 16; i++)
            w[i] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[i - 4], w[i - 3]),
                                                      _mm_alignr_epi8(w[i - 1], w[i - 2], 4)), w[i - 1]);
        for (i = 0; i < 16; i++) {
            m = _mm_add_epi32(w[i], _mm_load_si128((const __m128i*)(rg_k + 4 * i)));
            s1 = _mm_sha256rnds2_epu32(s1, s0, m);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m, 0x0E));
        }
        *abef = _mm_add_epi32(s0, *abef);
        *cdgh = _mm_add_epi32(s1, *cdgh);
    }
    /* SHA-256 of head + data as 64 lowercase hex digits into out. */
    __attribute__((target("sha,sse4.1,ssse3")))
    static void rg_sha256_hex(const unsigned char* head, size_t nhead, const unsigned char* data, size_t ndata,
                              char* out) {
        static const uint32_t h0[8] = {0x6a09e667U, 0xbb67ae85U, 0x3c6ef372U, 0xa54ff53aU, 0x510e527fU,
                                       0x9b05688cU, 0x1f83d9abU, 0x5be0cd19U};
        static const char hex[] = "0123456789abcdef";
        unsigned char block[128];
        uint32_t st[8];
        size_t total = nhead + ndata, done = 0, fill = 0, k, take;
        uint64_t bits = (uint64_t)total * 8;
        __m128i t = _mm_loadu_si128((const __m128i*)h0), s1 = _mm_loadu_si128((const __m128i*)(h0 + 4)), s0;
        int i;
        t = _mm_shuffle_epi32(t, 0xB1);           /* CDAB */
        s1 = _mm_shuffle_epi32(s1, 0x1B);         /* EFGH */
        s0 = _mm_alignr_epi8(t, s1, 8);           /* ABEF */
        s1 = _mm_blend_epi16(s1, t, 0xF0);        /* CDGH */
        /* the head (short) and the data, block by block; whole blocks of data are read in place */
        while (done < total) {
            if (fill == 0 && done >= nhead && total - done >= 64) {
                rg_block(&s0, &s1, data + (done - nhead));
                done += 64;
                continue;
            }
            if (done < nhead) {
                take = nhead - done;
                if (take > 64 - fill) take = 64 - fill;
                memcpy(block + fill, head + done, take);
            } else {
                take = total - done;
                if (take > 64 - fill) take = 64 - fill;
                memcpy(block + fill, data + (done - nhead), take);
            }
            fill += take;
            done += take;
            if (fill == 64) {
                rg_block(&s0, &s1, block);
                fill = 0;
            }
        }
        block[fill++] = 0x80;
        k = fill <= 56 ? 64 : 128;
        memset(block + fill, 0, k - fill);
        for (i = 0; i < 8; i++)
            block[k - 1 - i] = (unsigned char)(bits >> (8 * i));
        rg_block(&s0, &s1, block);
        if (k == 128)
            rg_block(&s0, &s1, block + 64);
        t = _mm_shuffle_epi32(s0, 0x1B);          /* FEBA */
        s1 = _mm_shuffle_epi32(s1, 0xB1);         /* DCHG */
        s0 = _mm_blend_epi16(t, s1, 0xF0);        /* DCBA */
        s1 = _mm_alignr_epi8(s1, t, 8);           /* HGFE */
        _mm_storeu_si128((__m128i*)st, s0);
        _mm_storeu_si128((__m128i*)(st + 4), s1);
        for (i = 0; i < 8; i++) {
            for (k = 0; k < 8; k++)
                out[8 * i + k] = hex[(st[i] >> (28 - 4 * k)) & 15];
        }
    }
    #else
    #define RG_SHANI 0
    static int rg_sha_ni(void) { return 0; }
    static void rg_sha256_hex(const unsigned char* head, size_t nhead, const unsigned char* data, size_t ndata,
                              char* out) { (void)head; (void)nhead; (void)data; (void)ndata; (void)out; }
    #endif
    """
    int rg_sha_ni()
    void rg_sha256_hex(const unsigned char* head, size_t nhead, const unsigned char* data, size_t ndata, char* out)


__all__ = ["MAX_DEPTH", "SHA_INSTRUCTIONS", "canonical_body", "configure", "digest_hex"]

MAX_DEPTH = 200
"""Objects and arrays nested deeper go to the pure path (orjson encodes at most 255 levels)."""

SHA_INSTRUCTIONS = bool(rg_sha_ni())
"""Whether :func:`digest_hex` hashes with the CPU's SHA instructions (x86-64 with the SHA extensions); otherwise
it calls the pure module's SHA-256."""
cdef bint _sha_ni = SHA_INSTRUCTIONS
cdef object _sha256 = None

cdef object _ignored = frozenset()
cdef object _number = None
cdef object _fallback = None
cdef bint _configured = False


def configure(ignored, number, fallback, sha256, sha_instructions=True):
    """``ignored``: the top-level names dropped (bytes); ``number(token: bytes, top: bool)``: a float token's
    canonical bytes (None: not cached); ``fallback(body: bytes)``: the pure path's canonical body; ``sha256``:
    the pure module's SHA-256 constructor (for :func:`digest_hex` on a CPU without SHA instructions, or with
    ``sha_instructions`` false: the tests' way to run that path anywhere)."""
    global _ignored, _number, _fallback, _configured, _sha256, _sha_ni
    _sha_ni = SHA_INSTRUCTIONS and bool(sha_instructions)
    _ignored = frozenset(ignored)
    _number = number
    _fallback = fallback
    _sha256 = sha256
    _configured = True


def digest_hex(bytes head, bytes data):
    """The SHA-256 of ``head + data``, as 64 lowercase hex digits (``hashlib.sha256(head + data).hexdigest()``)."""
    cdef char out[64]
    if not _sha_ni:
        if _sha256 is None:
            raise RuntimeError("relaygate.core._cachekey_c: configure() was not called")
        return _sha256(head + data).hexdigest()
    rg_sha256_hex(<const unsigned char*>PyBytes_AS_STRING(head), <size_t>PyBytes_GET_SIZE(head),
                  <const unsigned char*>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), out)
    return out[:64].decode("ascii")


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


cdef inline int _cmp(const char* data, Member* a, Member* b) noexcept:
    cdef Py_ssize_t k = a.klen if a.klen < b.klen else b.klen
    cdef int c = memcmp(data + a.start + 1, data + b.start + 1, k)
    if c != 0:
        return c
    return (a.klen > b.klen) - (a.klen < b.klen)


cdef int _close(Walk* w, Py_ssize_t base, Py_ssize_t begin) except -1:
    """Members ``base..`` of the object whose ``{`` is at ``begin`` are written (each followed by a comma):
    sort them by key, write them again in that order when they were not, and close the object."""
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
    for j in range(1, count):  # insertion sort: objects have few members
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


def canonical_body(bytes body):
    """The canonical JSON of a request body's hashed fields (see the module docstring); None: not cached."""
    cdef Walk w
    cdef int got
    if not _configured:
        raise RuntimeError("relaygate.core._cachekey_c: configure() was not called")
    w.s = <const unsigned char*>PyBytes_AS_STRING(body)
    w.n = PyBytes_GET_SIZE(body)
    w.i = 0
    w.out.data = NULL
    w.out.size = 0
    w.out.cap = 0
    w.tmp.data = NULL
    w.tmp.size = 0
    w.tmp.cap = 0
    w.members = NULL
    w.nmembers = 0
    w.cap_members = 0
    try:
        _reserve(&w.out, w.n + 16)
        _ws(&w)
        got = DEFER
        if w.i < w.n and w.s[w.i] == 123:
            got = _object(&w, 1, True)
            if got == OK:
                _ws(&w)
                if w.i != w.n:
                    got = DEFER
        if got == OK:
            return PyBytes_FromStringAndSize(w.out.data, w.out.size)
    finally:
        PyMem_Free(w.out.data)
        PyMem_Free(w.tmp.data)
        PyMem_Free(w.members)
    return _fallback(body)
