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
probe, the stamp, the store), most of what a miss cost beyond the key's own work; here they are C calls. The
exchange's and the cache state's members are read at their slots' offsets (taken from the classes' member
descriptors when the path is built, as CPython's own specialised attribute loads read them), not through
``getattr``'s type lookup and descriptor call; an object of another class goes to the Python path.

``fresh`` is a hit's body (``relaygate.cache.replay.fresh``: the stored answer with a new ``id``, ``created`` and
``model``) spliced from the stored bytes: the answer validated as JSON and its top-level members copied as they
stand, where the pure twin (``replay.fresh_decoded``) decodes the top level with msgspec and encodes it again. It
gives the twin's bytes or None (the twin answers), never other bytes (``tests/cache/test_fresh_twins.py``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t
from libc.math cimport fabs, floor, nearbyint, signbit
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeASCII
from libc.string cimport memcmp, memcpy

cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t hlen, const void* needle, size_t nlen)

cdef extern from *:
    """
    #include "structmember.h"
    /* The offset of a ``__slots__`` member (a member descriptor of an object slot), else -1. */
    static Py_ssize_t rg_member_offset(PyObject* descr) {
        PyMemberDef* m;
        if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) return -1;
        m = ((PyMemberDescrObject*)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }
    static inline PyObject* rg_member(PyObject* o, Py_ssize_t off) { return *(PyObject**)((char*)o + off); }
    static inline void rg_member_set(PyObject* o, Py_ssize_t off, PyObject* v) {
        PyObject** at = (PyObject**)((char*)o + off);
        PyObject* old = *at;
        Py_INCREF(v);
        *at = v;
        Py_XDECREF(old);
    }
    """
    Py_ssize_t rg_member_offset(PyObject* descr)
    PyObject* rg_member(PyObject* o, Py_ssize_t off)
    void rg_member_set(PyObject* o, Py_ssize_t off, PyObject* v)

EX_FIELDS = ("control", "who", "route", "body", "view", "group", "model", "cache", "stream", "scope", "call_id",
             "obs", "t0", "wait", "prompt_tokens", "completion_tokens", "cost")
"""The exchange's members read here by their slots' offsets (``FastPath`` takes the ``Exchange`` class)."""
STATE_FIELDS = ("key", "ttl", "no_store", "hit", "header_ttl", "vector", "similarity", "parts")
"""The cache state's members read likewise (never written so: msgspec tracks a struct's references itself)."""

cdef enum:  # EX_FIELDS' indexes
    X_CONTROL = 0
    X_WHO, X_ROUTE, X_BODY, X_VIEW, X_GROUP, X_MODEL, X_CACHE, X_STREAM, X_SCOPE, X_CALL_ID, X_OBS, X_T0
    X_WAIT, X_PROMPT, X_COMPLETION, X_COST, X_COUNT

cdef enum:  # STATE_FIELDS' indexes
    S_KEY = 0
    S_TTL, S_NO_STORE, S_HIT, S_HEADER_TTL, S_VECTOR, S_SIMILARITY, S_PARTS, S_COUNT


cdef inline object _m(object o, Py_ssize_t off):
    """Member ``off`` of ``o`` (an instance of the class it was read from), as ``getattr`` reads it; a member
    never set raises, as there."""
    cdef PyObject* v = rg_member(<PyObject*>o, off)
    if v == NULL:
        raise AttributeError(f"member at offset {off} of {type(o).__name__} is not set")
    return <object>v


cdef Py_ssize_t _offset(cls, str name) except -1:
    """The offset of ``cls``'s slot ``name`` (its own or a base class's)."""
    descr = getattr(cls, name)  # a class's member descriptor is itself its attribute
    cdef Py_ssize_t off = rg_member_offset(<PyObject*>descr)
    if off < 0:
        raise TypeError(f"{cls.__name__}.{name} is not a writable __slots__ member")
    return off

__all__ = ["FastPath", "GENERAL", "fresh"]

GENERAL = object()
"""The answer for a request the Python path must take (its controls, its key's rules, its route, its body)."""
cdef object _GENERAL = GENERAL

ctypedef object (*get_c_t)(object, object)
ctypedef object (*set_c_t)(object, object, object, object)
ctypedef int (*canonical_c_t)(const unsigned char*, Py_ssize_t, const char**, Py_ssize_t*) except -1
ctypedef int (*hex_c_t)(const unsigned char*, size_t, const unsigned char*, size_t, char*) noexcept nogil


cdef void* _capsule(str module, str name, object given, str own) except? NULL:
    """The C function ``module.name`` (a capsule the module exports) when ``given`` is ``module.own``, the compiled
    module's own function or class, else NULL: a helper replaced (a twin, a bench stub) is called as given."""
    try:
        mod = __import__("relaygate.core." + module, fromlist=[name])
    except ImportError:
        return NULL
    if given is not getattr(mod, own):
        return NULL
    return PyCapsule_GetPointer(getattr(mod, name), f"relaygate.core.{module}.{name}".encode())


include "_clock.pxi"

import time as _time
cdef object _TIME = _time.time


cdef const char* _CONTENT = b'"content":"'
cdef object _ZERO = 0.0
cdef Py_ssize_t STAMP = 8


cdef class FastPath:
    """One cache's compiled path (see the module docstring); its pieces are the cache's own objects."""

    cdef object _memory
    cdef get_c_t _get_c
    cdef set_c_t _set_c
    cdef canonical_c_t _canonical_c
    cdef hex_c_t _hex_c
    cdef object _get, _set, _canonical, _sha_hex, _state, _assembler, _has_output, _remember, _head
    cdef public object wall
    cdef dict _events, _memo, _heads
    cdef object _namespace, _miss_name, _routes, _counted
    cdef object _route_seen  # the last route looked up, and whether it is taken and counted (max_messages)
    cdef bint _route_taken, _route_counted
    cdef object _chat_view
    cdef Py_ssize_t _messages_at  # ChatView.messages' offset, or -1
    cdef bint _by_team, _header_ttl
    cdef Py_ssize_t _memo_body, _heads_max, _max_messages
    cdef object _general_lookup, _general_store
    cdef object _hit_name, _prefixes, _usage, _fresh_py, _json, _perf, _ex_type, _state_type
    cdef Py_ssize_t _x[X_COUNT]
    cdef Py_ssize_t _s[S_COUNT]
    cdef public Py_ssize_t misses
    """Misses counted here (the cache adds them to its own)."""
    cdef public Py_ssize_t hits
    """Hits served here (likewise)."""

    def __init__(self, memory, wall, events, memo, str miss_name, namespace, bint by_team, bint header_ttl, *,
                 max_messages, routes, counted, canonical_body, sha256_hex, heads, head, Py_ssize_t heads_max,
                 Py_ssize_t memo_body, state, assembler, has_output, remember, str hit_name, prefixes, usage,
                 fresh_py, bytes json, perf_counter, exchange, general_lookup, general_store, chat_view=None):
        cdef Py_ssize_t k
        for k in range(X_COUNT):
            self._x[k] = _offset(exchange, EX_FIELDS[k])
        for k in range(S_COUNT):
            self._s[k] = _offset(state, STATE_FIELDS[k])
        self._ex_type = exchange
        self._general_lookup = general_lookup
        self._general_store = general_store
        self._chat_view = chat_view
        self._messages_at = -1
        if chat_view is not None:
            try:
                self._messages_at = _offset(chat_view, "messages")
            except (TypeError, AttributeError):
                pass
        self._route_seen = None
        self._state_type = state
        self._memory = memory
        self._get = memory.get
        self._set = memory.set
        # the memory level, the canonical body and the digest called in C where they are the compiled modules' own
        # (they are then one C call each, and the canonical body is hashed in its buffer, never made bytes)
        self._get_c = <get_c_t>_capsule("_memcache_c", "GET_C", type(memory), "MemoryCache")
        self._set_c = <set_c_t>_capsule("_memcache_c", "SET_C", type(memory), "MemoryCache")
        self._canonical_c = <canonical_c_t>_capsule("_cachekey_c", "CANONICAL_C", canonical_body, "canonical_body")
        self._hex_c = <hex_c_t>_capsule("_sha_c", "HEX_C", sha256_hex, "sha256_hex")
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
        self._hit_name = hit_name
        self._prefixes = dict(prefixes)
        self._usage = usage
        self._fresh_py = fresh_py
        self._json = json
        self._perf = perf_counter
        self.misses = 0
        self.hits = 0

    @property
    def c_calls(self):
        """Which helpers are called in C, ``(memory get, memory set, canonical body, digest)``: those that are the
        compiled modules' own (the tests' view)."""
        return (self._get_c != NULL, self._set_c != NULL, self._canonical_c != NULL, self._hex_c != NULL)

    cdef object _key(self, str route, object group_name, bytes raw, object team):
        """``cache.key.body_key`` (the same scope prefixes, shared with it); None: not cached."""
        cdef const char* buf = NULL
        cdef Py_ssize_t size = 0
        cdef char out[64]
        cdef int done = 0
        scope = (route, group_name, team)
        head = self._heads.get(scope)
        if head is None:
            if len(self._heads) >= self._heads_max:
                self._heads.clear()
            head = self._head(route, group_name, team)
            self._heads[scope] = head
        if self._canonical_c != NULL and self._canonical_c(
                <const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &buf, &size):
            # the canonical body in _cachekey_c's buffer (until its next call): hashed there, or copied at once
            if self._hex_c != NULL and type(head) is bytes:
                done = self._hex_c(<const unsigned char*>PyBytes_AS_STRING(head), <size_t>PyBytes_GET_SIZE(head),
                                   <const unsigned char*>buf, <size_t>size, out)
            canon = None if done else PyBytes_FromStringAndSize(buf, size)
        else:
            canon = self._canonical(raw)  # (or a body the compiled walk does not take: the pure path's answer)
            if canon is None:
                return None
        digest = PyUnicode_DecodeASCII(out, 64, NULL) if done else self._sha_hex(canon, head)
        ns = self._namespace
        return f"{ns}:{digest}" if ns else digest

    def find(self, ex):
        """``ResponseCache.lookup``: :meth:`lookup`, and for what it does not take the cache's Python path."""
        found = self._lookup(ex)
        return self._general_lookup(ex) if found is _GENERAL else found

    def keep(self, ex, answer, ctype=None):
        """``ResponseCache.store``: :meth:`store`, and for what it does not take the cache's Python path."""
        if not self._store(ex, answer):
            self._general_store(ex, answer, ctype)

    def lookup(self, ex):
        """``ResponseCache.lookup`` of a common request: its stored answer (a hit), None (a miss, or not cached),
        or ``GENERAL``. Sets ``ex.cache`` as the Python path does."""
        return self._lookup(ex)

    cdef object _lookup(self, ex):
        cdef bint memoable
        if type(ex) is not self._ex_type or _m(ex, self._x[X_CONTROL]) is not None:
            return _GENERAL
        who = _m(ex, self._x[X_WHO])
        team = None
        if who is not None:
            info = who.key
            if info is not None and info.records:
                rules = info.cache_rules
                if rules is None or rules:  # not worked out yet, or some: the Python path reads them
                    return _GENERAL
            if self._by_team:
                team = who.team_id or ""
        route = _m(ex, self._x[X_ROUTE])
        raw = _m(ex, self._x[X_BODY])
        if route is not self._route_seen:
            self._route_taken = route in self._routes
            self._route_counted = route in self._counted
            self._route_seen = route
        if type(raw) is not bytes or not self._route_taken:
            return _GENERAL
        if self._max_messages >= 0 and self._route_counted:  # LiteLLM's max_messages: not looked up nor stored
            view = _m(ex, self._x[X_VIEW])
            if self._messages_at >= 0 and type(view) is self._chat_view:
                messages = _m(view, self._messages_at)
            else:
                messages = getattr(view, "messages", None)
            if type(messages) is not list or route != "chat":
                return _GENERAL
            if len(<list>messages) > self._max_messages:
                return None
        group = _m(ex, self._x[X_GROUP])
        group_name = group.name if group is not None else _m(ex, self._x[X_MODEL])
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
        rg_member_set(<PyObject*>ex, self._x[X_CACHE], <PyObject*>st)
        if _m(ex, self._x[X_STREAM]):
            st.assembler = self._assembler(route)
        stored = self._get_c(self._memory, key) if self._get_c != NULL else self._get(key)
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
        return self._store(ex, answer) == 1

    cdef int _store(self, ex, answer) except -1:
        cdef const char* at
        cdef const char* s
        cdef Py_ssize_t n, i
        cdef double now
        cdef uint64_t bits
        cdef unsigned char* out
        if type(ex) is not self._ex_type:
            return 0
        st = _m(ex, self._x[X_CACHE])
        if st is None or type(st) is not self._state_type:
            return 1 if st is None else 0
        if _m(st, self._s[S_HIT]) or _m(st, self._s[S_NO_STORE]):
            return 1
        if _m(st, self._s[S_PARTS]) is not None or _m(st, self._s[S_VECTOR]) is not None or type(answer) is not bytes:
            return 0
        ttl = _m(st, self._s[S_TTL])
        if _m(st, self._s[S_HEADER_TTL]):
            scope = _m(ex, self._x[X_SCOPE])
            if scope is not None:
                for pair in scope["headers"]:
                    if pair[0] == b"cache-control":
                        return 0  # its s-maxage is read by the Python path
        if ttl is not None and ttl == 0:
            return 1
        route = _m(ex, self._x[X_ROUTE])
        if route == "transcriptions":
            return 0
        s = PyBytes_AS_STRING(answer)
        n = PyBytes_GET_SIZE(answer)
        if (self._route_counted if route is self._route_seen else route in self._counted):
            at = NULL
            if route == "chat":
                at = <const char*>memmem(s, <size_t>n, _CONTENT, 11)
            if at == NULL or at + 11 >= s + n or at[11] == 34:  # no text found at once: the Python check
                if not self._has_output(route, answer):
                    return 1
        now = rg_realtime() if self.wall is _TIME else self.wall()
        memcpy(&bits, &now, 8)
        value = PyBytes_FromStringAndSize(NULL, n + STAMP)
        out = <unsigned char*>PyBytes_AS_STRING(value)
        for i in range(8):  # big-endian, as struct ">d"
            out[i] = <unsigned char>((bits >> (56 - 8 * i)) & 0xff)
        memcpy(out + STAMP, s, n)
        if self._set_c != NULL:
            self._set_c(self._memory, _m(st, self._s[S_KEY]), value, ttl)
        else:
            self._set(_m(st, self._s[S_KEY]), value, ttl)
        return 1

    def serve(self, ex, bytes stored, list headers):
        """``ResponseCache.serve`` of a unary chat or completions hit found by exact key: its body, ``headers``
        extended and ``ex``'s usage and cost set as there (the caller sends them); ``GENERAL`` for any other hit
        (a stream, a semantic hit, another route), which the Python path serves whole."""
        cdef double total, overhead
        if type(ex) is not self._ex_type:
            return _GENERAL
        st = _m(ex, self._x[X_CACHE])
        route = _m(ex, self._x[X_ROUTE])
        if type(st) is not self._state_type or _m(st, self._s[S_SIMILARITY]) is not None \
                or _m(ex, self._x[X_STREAM]) or PyBytes_GET_SIZE(stored) <= STAMP:
            return _GENERAL
        prefix = self._prefixes.get(route)
        if prefix is None:
            return _GENERAL
        self.hits += 1
        self._events[self._hit_name] += 1
        answer = stored[STAMP:]
        created = int(self.wall())
        call_id = _m(ex, self._x[X_CALL_ID])
        rid = prefix + call_id.decode("latin-1")
        usage = self._usage(answer)
        if usage:
            rg_member_set(<PyObject*>ex, self._x[X_PROMPT], <PyObject*>usage[0])
            rg_member_set(<PyObject*>ex, self._x[X_COMPLETION], <PyObject*>usage[1])
        rg_member_set(<PyObject*>ex, self._x[X_COST], <PyObject*>_ZERO)
        obs = _m(ex, self._x[X_OBS])
        if obs is not None:  # exporters show the answer served
            obs.output = answer
            obs.assembler = None
        group = _m(ex, self._x[X_GROUP])
        model = _m(ex, self._x[X_MODEL])
        headers.append((b"x-litellm-call-id", call_id))
        headers.append((b"x-litellm-cache-key", (<str?>_m(st, self._s[S_KEY])).encode()))
        headers.append((b"x-litellm-response-cost", b"0.0"))
        headers.append((b"x-litellm-model-group", (group.name if group is not None else model).encode()))
        body = fresh(answer, rid, created, model)
        if body is None:
            body = self._fresh_py(answer, rid, created, model)
        total = self._perf() - _m(ex, self._x[X_T0])
        overhead = total - _m(ex, self._x[X_WAIT])
        headers.append((b"x-litellm-response-duration-ms", _ms(total)))
        headers.append((b"x-litellm-overhead-duration-ms", _ms(overhead if overhead > 0.0 else 0.0)))
        headers.append((b"content-type", self._json))
        return body


cdef bytes _ms(double seconds):
    """``b"%.3f" % (seconds * 1000.0)``, as ``cache.stage._durations`` writes it: the thousandths rounded as an
    integer (half to even, as ``%.3f`` rounds the exact value) and written with the point put in, unless the
    product lies so near a half that its own rounding could decide (then, and for values out of range, as Python
    writes it; glibc's ``%.3f`` took ~2,000 instructions)."""
    cdef double ms = seconds * 1000.0
    cdef double m = ms * 1000.0
    cdef double r, frac
    cdef char num[32]
    cdef long long q
    cdef int k = 32, digits = 0
    if not (0.0 <= m < 1e12) or signbit(m):  # (a rounding error of the product below 2^-13 thousandths)
        return b"%.3f" % ms
    r = nearbyint(m)
    frac = m - floor(m)
    if fabs(frac - 0.5) < 1e-3:
        return b"%.3f" % ms
    q = <long long>r
    while digits < 4 or q:
        if digits == 3:
            k -= 1
            num[k] = 46
        k -= 1
        num[k] = <char>(48 + q % 10)
        q //= 10
        digits += 1
    return PyBytes_FromStringAndSize(num + k, 32 - k)

# --- a hit's fresh body: ``relaygate.cache.replay.fresh`` without decoding and encoding the answer -------------

include "_json_scan.pxi"


def fresh(bytes answer, str rid, object created, object model):
    """``relaygate.cache.replay.fresh``'s answer, or None when that function must give it (an answer that is not a
    JSON object this accepts: more than ``MAX_TOP`` top-level members, a member name that is not plain ASCII or
    comes twice, an ``id`` without ``created``, nesting deeper than ``MAX_DEPTH``, a surrogate escape alone;
    ``rid`` or ``model`` not plain ASCII, ``created`` not an int of 64 bits). Its twin decodes the top level (the
    values kept as raw bytes), sets ``id``, ``created`` and ``model`` and encodes it again: the same bytes come out
    of this splice, which validates the answer as msgspec does (or more strictly) and copies every other member as
    it stands."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(answer)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(answer)
    cdef Py_ssize_t ks[MAX_TOP]
    cdef Py_ssize_t ke[MAX_TOP]
    cdef Py_ssize_t vs[MAX_TOP]
    cdef Py_ssize_t ve[MAX_TOP]
    cdef Py_ssize_t count = 0, i, j, k, total, at, ln
    cdef int id_at = -1, created_at = -1, model_at = -1
    cdef const char* rid_s
    cdef const char* model_s = NULL
    cdef const char* put
    cdef Py_ssize_t rid_n, model_n = 0, created_n = 0
    cdef char created_s[24]
    cdef const char* created_p = NULL
    cdef unsigned long long v
    cdef long long when
    cdef unsigned char* out
    if type(created) is not int or not (-9223372036854775807 - 1 <= created <= 9223372036854775807):
        return None
    when = created
    i = _ws(p, 0, n)
    if i >= n or p[i] != 123:
        return None
    i = _ws(p, i + 1, n)
    if i < n and p[i] == 125:
        i += 1
    else:
        while True:
            if i >= n or p[i] != 34 or count == MAX_TOP:
                return None
            j = _string_end(p, i + 1, n)
            if j < 0 or not _plain(p + i + 1, j - i - 2):
                return None
            ks[count], ke[count] = i, j
            i = _ws(p, j, n)
            if i >= n or p[i] != 58:
                return None
            i = _ws(p, i + 1, n)
            if i >= n:
                return None
            j = _value_end(p, i, n, 1)
            if j < 0:
                return None
            vs[count], ve[count] = i, j
            count += 1
            i = _ws(p, j, n)
            if i >= n:
                return None
            if p[i] == 125:
                i += 1
                break
            if p[i] != 44:
                return None
            i = _ws(p, i + 1, n)
    if _ws(p, i, n) != n:
        return None
    for k in range(count):
        ln = ke[k] - ks[k]
        for j in range(k):
            if ke[j] - ks[j] == ln and memcmp(p + ks[j], p + ks[k], ln) == 0:
                return None
        if ln == 4 and memcmp(p + ks[k], b'"id"', 4) == 0:
            id_at = k
        elif ln == 9 and memcmp(p + ks[k], b'"created"', 9) == 0:
            created_at = k
        elif ln == 7 and memcmp(p + ks[k], b'"model"', 7) == 0:
            model_at = k
    if id_at < 0:
        created_at = -1
    elif created_at < 0:
        return None
    if model is None:
        model_at = -1
    rid_s = PyUnicode_AsUTF8AndSize(rid, &rid_n)
    if id_at >= 0 and not _plain(<const unsigned char*>rid_s, rid_n):
        return None
    if model_at >= 0:
        model_s = PyUnicode_AsUTF8AndSize(<str?>model, &model_n)
        if not _plain(<const unsigned char*>model_s, model_n):
            return None
    if created_at >= 0:  # its decimal digits, as msgspec writes an int
        v = (<unsigned long long>0) - <unsigned long long>when if when < 0 else <unsigned long long>when
        k = 24
        while True:
            k -= 1
            created_s[k] = <char>(48 + v % 10)
            v //= 10
            if v == 0:
                break
        if when < 0:
            k -= 1
            created_s[k] = 45
        created_p = created_s + k
        created_n = 24 - k
    total = 2 + (count - 1 if count else 0)
    for k in range(count):
        total += ke[k] - ks[k] + 1
        if k == id_at:
            total += rid_n + 2
        elif k == created_at:
            total += created_n
        elif k == model_at:
            total += model_n + 2
        else:
            total += ve[k] - vs[k]
    result = PyBytes_FromStringAndSize(NULL, total)
    out = <unsigned char*>PyBytes_AS_STRING(result)
    out[0] = 123
    at = 1
    for k in range(count):
        if k:
            out[at] = 44
            at += 1
        ln = ke[k] - ks[k]
        memcpy(out + at, p + ks[k], ln)
        at += ln
        out[at] = 58
        at += 1
        if k == id_at or k == model_at:
            put, ln = (rid_s, rid_n) if k == id_at else (model_s, model_n)
            out[at] = 34
            memcpy(out + at + 1, put, ln)
            out[at + 1 + ln] = 34
            at += ln + 2
        elif k == created_at:
            memcpy(out + at, created_p, created_n)
            at += created_n
        else:
            ln = ve[k] - vs[k]
            memcpy(out + at, p + vs[k], ln)
            at += ln
    out[at] = 125
    return result
