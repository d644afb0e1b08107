# Included by the compiled modules that read Python's default clocks themselves (Cython ``include``): the response
# cache's stamp (``time.time``, ``_cachefast_c``) and its memory level's expiries (``time.monotonic``,
# ``_memcache_c``), read without a Python call. Not a module of its own.

cdef extern from *:
    """
    #include <time.h>
    #include <stdint.h>
    /* The clock in seconds as CPython's time.time() / time.monotonic() compute it: clock_gettime, whole
       nanoseconds, then a double (exact for a whole second, else the nanoseconds divided by 1e9). */
    static double rg_clock_seconds(clockid_t which) {
        struct timespec ts;
        int64_t ns;
        clock_gettime(which, &ts);
        ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        if (ns % 1000000000 == 0) return (double)(ns / 1000000000);
        return (double)ns / 1e9;
    }
    #define rg_realtime() rg_clock_seconds(CLOCK_REALTIME)
    #define rg_monotonic() rg_clock_seconds(CLOCK_MONOTONIC)
    """
    double rg_realtime() nogil
    double rg_monotonic() nogil
