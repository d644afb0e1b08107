# Included by the compiled writers that round as Python's ``round(x, ndigits)`` (Cython ``include``). Not a module
# of its own.

from libc.math cimport floor, isfinite, nextafter, rint


cdef double _POW10[7]
_POW10[:] = [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0]


cdef object _round(object value, int ndigits):
    """``round(value, ndigits)`` (0 <= ndigits <= 6), the same float: a positive float below 2**31 rounded
    here, anything else (and the rare value within a few ulps of a half) by ``round`` itself.

    Python rounds the exact decimal value of ``x`` to ``ndigits`` half to even and returns the double nearest to
    that decimal (``_Py_dg_dtoa`` then ``_Py_dg_strtod``: ~0.4 µs). Here ``x = i + f`` with ``i = floor(x)`` (``f``
    is exact), ``r = rint(f * p)`` is the rounded ``f * 10**ndigits`` unless the product lies within four ulps of a
    half (then ``round`` decides), ``i * p + r`` is an exact integer below 2**53, and its correctly rounded
    division by ``p`` is the double nearest to the decimal, as ``strtod`` reads it."""
    cdef double x, i, f, p, y, r, half
    if type(value) is not float:
        return round(value, ndigits)
    x = value
    if not (x > 0.0 and x < 2147483648.0) or ndigits < 0 or ndigits > 6:  # zero too: its sign
        return round(value, ndigits)
    p = _POW10[ndigits]
    i = floor(x)
    f = x - i
    y = f * p
    half = floor(y) + 0.5
    if abs(y - half) <= 4.0 * (nextafter(y, 2.0 * p) - y):
        return round(value, ndigits)
    r = rint(y)
    return (i * p + r) / p
