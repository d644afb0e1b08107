# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The response cache's memory level, compiled (see ``relaygate.cache.memory``, whose pure ``PureMemoryCache`` is
its twin: the same operations, the same answers, the same evictions and expiries in the same order).

Each entry is a small object with no references to other entries that the garbage collector would have to follow
(``no_gc``): its key, its value, its expiry, and two raw pointers that chain the entries from the least to the most
recently used. The dict from key to entry holds the only reference to each; an entry is unlinked from the chain
before the dict lets it go. The expiry queue is a binary heap of ``(expiry, key)`` in a C array, ordered as
Python orders those tuples (the expiry, then the key), so :meth:`MemoryCache.sweep_step` pops what the pure
path's ``heapq`` pops. No operation awaits or calls back into the cache; the clock is called as the pure path
calls it.
"""

cimport cython
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem, PyDict_Size
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport Py_LT, PyObject, PyObject_RichCompareBool
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport Py_DECREF, Py_INCREF

__all__ = ["ENTRY_OVERHEAD", "MemoryCache"]

ENTRY_OVERHEAD = 160
"""Bytes counted per entry beyond its value (the pure module's constant; a twin test checks they agree)."""
cdef Py_ssize_t OVERHEAD = 160

include "_clock.pxi"

import time as _time
cdef object _MONOTONIC = _time.monotonic


@cython.final
@cython.no_gc
cdef class _Entry:
    cdef object key
    cdef object value
    cdef double expires
    cdef Py_ssize_t size  # len(value) + OVERHEAD
    cdef PyObject* prev  # toward the least recently used (borrowed: the dict owns every entry)
    cdef PyObject* next


cdef struct Item:
    double expires
    PyObject* key  # a reference the heap owns


cdef inline bint _before(Item* a, Item* b) except -1:
    """``(a.expires, a.key) < (b.expires, b.key)``, as Python compares the tuples."""
    if a.expires < b.expires:
        return True
    if a.expires == b.expires:
        if a.key == b.key:
            return False
        return PyObject_RichCompareBool(<object>a.key, <object>b.key, Py_LT)
    return False


@cython.final
@cython.no_gc_clear  # the garbage collector may not empty _map ahead of __dealloc__: a call in between would crash
cdef class MemoryCache:
    """Answers by key, LRU within ``max_bytes``, each with an expiry (see ``relaygate.cache.memory``)."""

    cdef public Py_ssize_t max_bytes
    cdef public Py_ssize_t max_item_bytes
    cdef public object default_ttl
    cdef public Py_ssize_t used
    cdef public Py_ssize_t hits
    cdef public Py_ssize_t misses
    cdef public Py_ssize_t evictions
    cdef object _clock
    cdef bint _monotonic  # the clock is time.monotonic: read here as it computes it, without a Python call
    cdef dict _map
    cdef PyObject* _head  # least recently used
    cdef PyObject* _tail  # most recently used
    cdef Item* _heap
    cdef Py_ssize_t _n
    cdef Py_ssize_t _cap

    def __cinit__(self):
        self._map = {}
        self._head = NULL
        self._tail = NULL
        self._heap = NULL
        self._n = 0
        self._cap = 0

    def __init__(self, max_bytes=64 * 1024 * 1024, *, default_ttl=600.0, max_item_bytes=None, clock=None):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if clock is None:
            import time
            clock = time.monotonic
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes if max_item_bytes is not None else max(max_bytes // 16, 1)
        self.default_ttl = default_ttl
        self._clock = clock
        self._monotonic = clock is _MONOTONIC
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __dealloc__(self):
        self._heap_clear()
        PyMem_Free(self._heap)

    def __len__(self):
        return PyDict_Size(self._map)

    # -- the chain, least to most recently used ---------------------------------------------------------

    cdef inline void _link_last(self, _Entry e):
        e.prev = self._tail
        e.next = NULL
        if self._tail != NULL:
            (<_Entry>self._tail).next = <PyObject*>e
        else:
            self._head = <PyObject*>e
        self._tail = <PyObject*>e

    cdef inline void _unlink(self, _Entry e):
        if e.prev != NULL:
            (<_Entry>e.prev).next = e.next
        else:
            self._head = e.next
        if e.next != NULL:
            (<_Entry>e.next).prev = e.prev
        else:
            self._tail = e.prev
        e.prev = NULL
        e.next = NULL

    cdef int _remove(self, _Entry e) except -1:
        """Unlink ``e``, take its bytes off the count and let the dict drop it (its last reference)."""
        self._unlink(e)
        self.used -= e.size
        PyDict_DelItem(self._map, e.key)
        return 0

    cdef inline double _now(self) except? -1.0:
        if self._monotonic:
            return rg_monotonic()
        return self._clock()

    # -- the expiry heap ----------------------------------------------------------------------------------

    cdef int _push(self, double expires, object key) except -1:
        cdef Py_ssize_t i, parent, cap
        cdef Item item
        cdef Item* grown
        if self._n == self._cap:
            cap = self._cap * 2 if self._cap else 64
            grown = <Item*>PyMem_Realloc(self._heap, cap * sizeof(Item))
            if grown == NULL:
                raise MemoryError()
            self._heap = grown
            self._cap = cap
        Py_INCREF(key)
        item.expires = expires
        item.key = <PyObject*>key
        i = self._n
        self._n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(&item, &self._heap[parent]):
                break
            self._heap[i] = self._heap[parent]
            i = parent
        self._heap[i] = item
        return 0

    cdef int _sift_down(self, Py_ssize_t i) except -1:
        cdef Py_ssize_t n = self._n, child
        cdef Item item = self._heap[i]
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _before(&self._heap[child + 1], &self._heap[child]):
                child += 1
            if not _before(&self._heap[child], &item):
                break
            self._heap[i] = self._heap[child]
            i = child
        self._heap[i] = item
        return 0

    cdef Item _pop(self) except *:
        """The first item (its key's reference passes to the caller); the heap is not empty."""
        cdef Item first = self._heap[0]
        self._n -= 1
        if self._n > 0:
            self._heap[0] = self._heap[self._n]
            self._sift_down(0)
        return first

    cdef void _heap_clear(self):
        cdef Py_ssize_t i
        for i in range(self._n):
            Py_DECREF(<object>self._heap[i].key)
        self._n = 0

    cdef int _rebuild(self) except -1:
        """The heap made again from the live entries (least recently used first, as the pure path lists them)."""
        cdef PyObject* p = self._head
        self._heap_clear()
        while p != NULL:
            self._push((<_Entry>p).expires, (<_Entry>p).key)
            p = (<_Entry>p).next
        return 0

    # -- operations ---------------------------------------------------------------------------------------

    def get(self, key):
        return self._get(key)

    cdef object _get(self, key):
        cdef PyObject* p = PyDict_GetItem(self._map, key)
        cdef _Entry e
        if p == NULL:
            self.misses += 1
            return None
        e = <_Entry>p
        if e.expires <= self._now():
            self._remove(e)
            self.misses += 1
            return None
        if self._tail != p:
            self._unlink(e)
            self._link_last(e)
        self.hits += 1
        return e.value

    def set(self, key, value, ttl=None):
        """Store ``value`` for ``ttl`` seconds (the default TTL when None); False when it is not stored (too
        large, or a TTL of zero or less)."""
        return self._set(key, value, ttl)

    cdef object _set(self, key, value, ttl):
        cdef Py_ssize_t n, size
        cdef PyObject* p
        cdef _Entry e
        if ttl is None:
            ttl = self.default_ttl
        n = len(value)
        size = n + OVERHEAD
        if ttl <= 0 or n > self.max_item_bytes or size > self.max_bytes:
            self.delete(key)
            return False
        p = PyDict_GetItem(self._map, key)
        if p != NULL:
            self._remove(<_Entry>p)
        while self._head != NULL and self.used + size > self.max_bytes:
            self._remove(<_Entry>self._head)
            self.evictions += 1
        e = _Entry.__new__(_Entry)
        e.key = key
        e.value = value
        e.expires = self._now() + ttl
        e.size = size
        PyDict_SetItem(self._map, key, e)
        self._link_last(e)
        self._push(e.expires, key)
        self.used += size
        return True

    def delete(self, key):
        cdef PyObject* p = PyDict_GetItem(self._map, key)
        if p == NULL:
            return False
        self._remove(<_Entry>p)
        return True

    def clear(self):
        self._head = NULL
        self._tail = NULL
        self._map.clear()
        self._heap_clear()
        self.used = 0

    def sweep(self):
        """Drop every expired entry; returns how many. For a periodic task, never per request."""
        cdef double now = self._now()
        cdef PyObject* p = self._head
        dead = []
        while p != NULL:
            if (<_Entry>p).expires <= now:
                dead.append((<_Entry>p).key)
            p = (<_Entry>p).next
        for k in dead:
            self.delete(k)
        return len(dead)

    def sweep_step(self, Py_ssize_t budget=2000):
        """Drop up to ``budget`` entries whose expiry has passed, soonest first; how many were dropped (see the
        pure path's docstring: stale items are skipped, the heap rebuilt when they outnumber the entries)."""
        cdef double now
        cdef Py_ssize_t dropped = 0, i
        cdef Item item
        cdef PyObject* p
        if self._n > 2 * PyDict_Size(self._map) + 1024:
            self._rebuild()
        now = self._now()
        for i in range(budget):
            if self._n == 0 or self._heap[0].expires > now:
                break
            item = self._pop()
            p = PyDict_GetItem(self._map, <object>item.key)
            if p != NULL and (<_Entry>p).expires == item.expires:
                self._remove(<_Entry>p)
                dropped += 1
            Py_DECREF(<object>item.key)
        return dropped

    # -- introspection (tests, the cache's info route) ----------------------------------------------------

    @property
    def _data(self):
        """``{key: (value, expiry)}``, least recently used first: the pure path's ``OrderedDict``, as a copy."""
        out = {}
        cdef PyObject* p = self._head
        while p != NULL:
            out[(<_Entry>p).key] = ((<_Entry>p).value, (<_Entry>p).expires)
            p = (<_Entry>p).next
        return out

    @property
    def _expiry(self):
        """The expiry heap's items ``(expiry, key)``, in the heap's order (a copy)."""
        cdef Py_ssize_t i
        return [(self._heap[i].expires, <object>self._heap[i].key) for i in range(self._n)]


# -- the C entry points other compiled modules call (``_cachefast_c``: a miss's probe and store) -------------------

cdef object _c_get(object cache, object key):
    """``cache.get(key)`` for a ``MemoryCache`` itself (not a subclass: the caller checks the type)."""
    return (<MemoryCache>cache)._get(key)


cdef object _c_set(object cache, object key, object value, object ttl):
    """``cache.set(key, value, ttl)`` likewise."""
    return (<MemoryCache>cache)._set(key, value, ttl)


GET_C = PyCapsule_New(<void*>_c_get, b"relaygate.core._memcache_c.GET_C", NULL)
"""``_c_get`` as a C function pointer, ``object (*)(object cache, object key)``: a compiled caller's probe without a
Python call."""
SET_C = PyCapsule_New(<void*>_c_set, b"relaygate.core._memcache_c.SET_C", NULL)
"""``_c_set``, ``object (*)(object cache, object key, object value, object ttl)``, likewise."""
