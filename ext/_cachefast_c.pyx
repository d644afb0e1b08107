# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The response cache's common request, looked up and stored by compiled code (see ``relaygate.cache.stage``).

``FastPath`` is made by a ``ResponseCache`` whose only level is this worker's memory (no Redis, object store or
semantic level) and that caches every request (no ``mode: default_off``). It takes the requests such a cache sees
most: no control field in the body, a key without cache rules (or no key), a chat request's ``messages`` a list
(counted against ``max_messages``), on a route whose key is the JSON body alone (chat, completions, rerank), the
body as bytes. For those it does what ``ResponseCache.lookup`` and ``ResponseCache.store`` do, in the same order and
with the same helpers (the canonical body, the SHA-256, the key memo, the memory level, the stream assembler, the
answer check), and answers ``GENERAL`` for any other request, which the Python path then takes whole: the Python
path is this module's pure twin (``tests/cache/test_fast.py`` runs the same requests through both and compares the
keys, states, answers and stored entries).

Why compiled: a miss ran ~400 bytecodes of glue in the serving worker (its key's inputs, its state, the
probe, the stamp, the store), most of what a miss cost beyond the key's own work; here they are C calls.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t hlen, const void* needle, size_t nlen)

__all__ = ["FastPath", "GENERAL"]

GENERAL = object()
"""The answer for a request the Python path must take (its controls, its key's rules, its route, its body)."""
cdef object _GENERAL = GENERAL

cdef const char* _CONTENT = b'"content":"'
cdef Py_ssize_t STAMP = 8


cdef class FastPath:
    """One cache's compiled path (see the module docstring); its pieces are the cache's own objects."""

    cdef object _get, _set, _canonical, _sha_hex, _state, _assembler, _has_output, _remember, _head
    cdef public object wall
    cdef dict _events, _memo, _heads
    cdef object _namespace, _miss_name, _routes, _counted
    cdef bint _by_team, _header_ttl
    cdef Py_ssize_t _memo_body, _heads_max, _max_messages
    cdef public Py_ssize_t misses
    """Misses counted here (the cache adds them to its own)."""

    def __init__(self, memory, wall, events, memo, str miss_name, namespace, bint by_team, bint header_ttl, *,
                 max_messages, routes, counted, canonical_body, sha256_hex, heads, head, Py_ssize_t heads_max,
                 Py_ssize_t memo_body, state, assembler, has_output, remember):
        self._get = memory.get
        self._set = memory.set
        self.wall = wall
        self._events = events
        self._memo = memo
        self._miss_name = miss_name
        self._namespace = namespace
        self._by_team = by_team
        self._max_messages = -1 if max_messages is None else max_messages
        self._routes = frozenset(routes)
        self._counted = frozenset(counted)
        self._header_ttl = header_ttl
        self._canonical = canonical_body
        self._sha_hex = sha256_hex
        self._heads = heads
        self._head = head
        self._heads_max = heads_max
        self._memo_body = memo_body
        self._state = state
        self._assembler = assembler
        self._has_output = has_output
        self._remember = remember
        self.misses = 0

    cdef object _key(self, str route, object group_name, bytes raw, object team):
        """``cache.key.body_key`` (the same scope prefixes, shared with it); None: not cached."""
        canon = self._canonical(raw)
        if canon is None:
            return None
        scope = (route, group_name, team)
        head = self._heads.get(scope)
        if head is None:
            if len(self._heads) >= self._heads_max:
                self._heads.clear()
            head = self._head(route, group_name, team)
            self._heads[scope] = head
        digest = self._sha_hex(canon, head)
        ns = self._namespace
        return f"{ns}:{digest}" if ns else digest

    def lookup(self, ex):
        """``ResponseCache.lookup`` of a common request: its stored answer (a hit), None (a miss, or not cached),
        or ``GENERAL``. Sets ``ex.cache`` as the Python path does."""
        cdef bint memoable
        if ex.control is not None:
            return _GENERAL
        who = ex.who
        team = None
        if who is not None:
            info = who.key
            if info is not None and info.records:
                rules = info.cache_rules
                if rules is None or rules:  # not worked out yet, or some: the Python path reads them
                    return _GENERAL
            if self._by_team:
                team = who.team_id or ""
        route = ex.route
        raw = ex.body
        if type(raw) is not bytes or route not in self._routes:
            return _GENERAL
        if self._max_messages >= 0 and route in self._counted:  # LiteLLM's max_messages: not looked up nor stored
            messages = getattr(ex.view, "messages", None)
            if type(messages) is not list or route != "chat":
                return _GENERAL
            if len(<list>messages) > self._max_messages:
                return None
        group = ex.group
        group_name = group.name if group is not None else ex.model
        ns = self._namespace
        key = None
        memoable = PyBytes_GET_SIZE(raw) <= self._memo_body
        if memoable and self._memo:  # (empty while nothing hit: a miss neither builds nor hashes a memo entry)
            key = self._memo.get((route, group_name, team, ns, raw))
            memoable = key is None  # known already
        if key is None:
            key = self._key(route, group_name, <bytes>raw, team)
            if key is None:
                return None
        st = self._state(key, None, False, False, self._header_ttl)
        ex.cache = st
        if ex.stream:
            st.assembler = self._assembler(route)
        stored = self._get(key)
        if stored is None or len(stored) <= STAMP:
            self.misses += 1
            self._events[self._miss_name] += 1
            return None
        if memoable:  # an exact hit: the next identical request skips the key
            self._remember((route, group_name, team, ns, raw), key)
        st.hit = True
        return stored

    def store(self, ex, answer):
        """``ResponseCache.store`` of a unary answer to a common request: True when done (stored, or not to be),
        False when the Python path must store it (embeddings' parts, a vector, a ``Cache-Control`` header, a
        transcription)."""
        cdef const char* at
        cdef const char* s
        cdef Py_ssize_t n, i
        cdef double now
        cdef uint64_t bits
        cdef unsigned char* out
        st = ex.cache
        if st is None or st.hit or st.no_store:
            return True
        if st.parts is not None or st.vector is not None or type(answer) is not bytes:
            return False
        ttl = st.ttl
        if st.header_ttl:
            scope = ex.scope
            if scope is not None:
                for pair in scope["headers"]:
                    if pair[0] == b"cache-control":
                        return False  # its s-maxage is read by the Python path
        if ttl is not None and ttl == 0:
            return True
        route = ex.route
        if route == "transcriptions":
            return False
        s = PyBytes_AS_STRING(answer)
        n = PyBytes_GET_SIZE(answer)
        if route in self._counted:
            at = NULL
            if route == "chat":
                at = <const char*>memmem(s, <size_t>n, _CONTENT, 11)
            if at == NULL or at + 11 >= s + n or at[11] == 34:  # no text found at once: the Python check
                if not self._has_output(route, answer):
                    return True
        now = self.wall()
        memcpy(&bits, &now, 8)
        value = PyBytes_FromStringAndSize(NULL, n + STAMP)
        out = <unsigned char*>PyBytes_AS_STRING(value)
        for i in range(8):  # big-endian, as struct ">d"
            out[i] = <unsigned char>((bits >> (56 - 8 * i)) & 0xff)
        memcpy(out + STAMP, s, n)
        self._set(st.key, value, ttl)
        return True
