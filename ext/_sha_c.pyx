# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""SHA-256 hex digests: compiled twin of ``relaygate.core._sha_py`` (same API, same digests).

On x86-64 with the CPU's SHA extensions (checked once, with ``cpuid``) the digest is computed here with them
(``sha256rnds2`` and the message-schedule instructions: ~0.2 µs for a 50-byte key, ~0.8 µs for a 1 KB body,
where OpenSSL's through ``hashlib`` costs ~0.6 µs for the key in a tight loop and several in a loaded worker,
most of it setting up a context). Elsewhere it calls the pure twin.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.pycapsule cimport PyCapsule_New

from relaygate.core import _sha_py as _ref

__all__ = ["SHA_INSTRUCTIONS", "sha256", "sha256_hex", "use_sha_instructions"]

sha256 = _ref.sha256
"""The pure twin's SHA-256 constructor (for a digest built in parts)."""

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
    void rg_sha256_hex(const unsigned char* head, size_t nhead, const unsigned char* data, size_t ndata,
                       char* out) nogil


SHA_INSTRUCTIONS = bool(rg_sha_ni())
"""Whether this CPU has the SHA extensions (:func:`sha256_hex` uses them unless told not to)."""
cdef bint _sha_ni = SHA_INSTRUCTIONS
cdef object _pure = _ref.sha256_hex


def use_sha_instructions(bint on):
    """Use the CPU's SHA instructions where it has them (the default), or the pure twin: the tests' way to run
    both paths on one machine."""
    global _sha_ni
    _sha_ni = SHA_INSTRUCTIONS and on


def sha256_hex(data, prefix=b""):
    """The SHA-256 of ``prefix + data`` as 64 lowercase hex digits (``hashlib.sha256(prefix + data).hexdigest()``);
    bytes-like values other than ``bytes`` go to the pure twin."""
    cdef char out[64]
    if not _sha_ni or type(data) is not bytes or type(prefix) is not bytes:
        return _pure(data, prefix)
    rg_sha256_hex(<const unsigned char*>PyBytes_AS_STRING(prefix), <size_t>PyBytes_GET_SIZE(prefix),
                  <const unsigned char*>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), out)
    return out[:64].decode("ascii")


cdef int _hex_c(const unsigned char* head, size_t nhead, const unsigned char* data, size_t ndata,
                char* out) noexcept nogil:
    """:func:`sha256_hex` of ``head + data`` into ``out`` (64 hex digits): 1; 0 when the SHA instructions are not
    in use (the caller then calls :func:`sha256_hex`, whose pure twin answers)."""
    if not _sha_ni:
        return 0
    rg_sha256_hex(head, nhead, data, ndata, out)
    return 1


HEX_C = PyCapsule_New(<void*>_hex_c, b"relaygate.core._sha_c.HEX_C", NULL)
"""``_hex_c`` as a C function pointer, ``int (*)(head, nhead, data, ndata, out)``: a compiled caller's digest of
bytes it holds in a C buffer (``_cachefast_c``: the canonical body, never made a bytes object)."""
