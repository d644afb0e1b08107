"""The cache's compiled common path (``cache.fast``) against its pure twin, the Python path: the same requests
looked up and stored by a cache with it and by one without it give the same answers, keys, states, entries and
counts; requests it does not take reach the Python path whole; the caches that must not have it do not."""

from __future__ import annotations

import random
import struct
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from relaygate.cache import fast
from relaygate.cache.memory import PureMemoryCache
from relaygate.cache.stage import CACHE_HIT, CACHE_MISS, MEMO_BODY, CacheState, ResponseCache
from relaygate.config.cache import CacheSettings
from relaygate.core import _ext
from relaygate.core.views import decode_view
from relaygate.pipeline.exchange import Exchange
from tests.core.compiled_only import check_loaded

NOW = 1_700_000_000.25
ANSWER = b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}'
EMPTY = b'{"id":"c2","choices":[{"index":0,"message":{"role":"assistant","content":""}}]}'


def pair(**settings: Any) -> tuple[ResponseCache, ResponseCache]:
    """A cache with the compiled path and the same cache without it, both on a fixed clock."""
    metrics = [SimpleNamespace(events={}), SimpleNamespace(events={})]
    with_fast, pure = (ResponseCache(CacheSettings(**settings), metrics=m) for m in metrics)
    pure._bind(None)
    for c in (with_fast, pure):
        c._wall = lambda: NOW
    return with_fast, pure


def exchange(body: dict[str, Any] | bytes, route: str = "chat", *, team: str | None = None, key: Any = None,
             headers: list[tuple[bytes, bytes]] | None = None, group: str | None = "m") -> Exchange:
    raw = body if type(body) is bytes else orjson.dumps(body)
    ex = Exchange(route, 0.0, None, "")  # type: ignore[arg-type]
    ex.body = raw
    view = decode_view(route, raw) if route == "chat" else SimpleNamespace(messages=None)
    ex.view = view
    ex.model = "asked"
    ex.stream = bool(getattr(view, "stream", False))
    ex.group = SimpleNamespace(name=group) if group is not None else None
    if team is not None or key is not None:
        ex.who = SimpleNamespace(key=key, team_id=team)  # type: ignore[assignment]
    ex.scope = {"headers": headers or [(b"content-type", b"application/json")]}
    return ex


def state(ex: Exchange) -> Any:
    st = ex.cache
    if st is None:
        return None
    return (st.key, st.ttl, st.no_store, st.hit, st.header_ttl, type(st.assembler).__name__, st.namespace)


def run(cache: ResponseCache, ex: Exchange, answer: bytes | None) -> tuple[Any, Any]:
    """``ex`` looked up and its answer stored as the pipeline does (``find``, ``keep``: the compiled path's own
    where there is one, handing what it does not take to the Python path)."""
    found = cache.find(ex)
    assert found is None or type(found) is bytes
    if found is None and answer is not None and ex.cache is not None:
        cache.keep(ex, answer, None)
    return found, state(ex)


CHAT = {"model": "m", "messages": [{"role": "user", "content": "classify this"}]}
REQUESTS: list[tuple[str, Any, dict[str, Any], bytes | None]] = [
    ("a miss", CHAT, {}, ANSWER),
    ("its hit, other order and whitespace", b'{"messages": [{"content": "classify this", "role": "user"}], '
                                            b'"model": "m", "user": "u"}', {}, ANSWER),
    ("the same bytes: from the memo", CHAT, {}, ANSWER),
    ("a stream miss, an assembler", {**CHAT, "stream": True, "messages": [{"role": "user", "content": "s"}]}, {},
     None),
    ("an answer without output, not stored", {**CHAT, "messages": [{"role": "user", "content": "e"}]}, {}, EMPTY),
    ("asked again: a miss", {**CHAT, "messages": [{"role": "user", "content": "e"}]}, {}, ANSWER),
    ("a team", {**CHAT, "temperature": 1.0}, {"team": "t1"}, ANSWER),
    ("too many messages", {**CHAT, "messages": [{"role": "user", "content": str(i)} for i in range(5)]}, {},
     ANSWER),
    ("a control field: Python", {**CHAT, "cache": {"ttl": 30}}, {}, ANSWER),
    ("s-maxage header: Python store", {**CHAT, "top_p": 0.5},
     {"headers": [(b"cache-control", b"s-maxage=40")]}, ANSWER),
    ("a key with rules: Python", {**CHAT, "seed": 1},
     {"key": SimpleNamespace(records=[SimpleNamespace(allowed_cache_controls=["ttl"], metadata={})],
                             cache_rules=None)}, ANSWER),
    ("a key without rules", {**CHAT, "seed": 2},
     {"key": SimpleNamespace(records=[SimpleNamespace(allowed_cache_controls=None, metadata={})], cache_rules=())},
     ANSWER),
    ("no group: the model asked", {**CHAT, "seed": 3}, {"group": None}, ANSWER),
    ("completions", {"model": "m", "prompt": "p"}, {"route": "completions"}, b'{"choices":[{"text":"x"}]}'),
    ("a long answer", {"model": "m", "prompt": "long"}, {"route": "completions"},
     b'{"choices":[{"text":"' + b"x" * 1501 + b'"}]}'),
    ("an answer shorter than the stamp", {"model": "m", "prompt": "tiny"}, {"route": "completions"}, b"{}"),
]


@pytest.mark.parametrize("settings", [{}, {"scope": "team"}, {"namespace": "ns", "ttl": 60.0},
                                      {"max_messages": None}], ids=["default", "team", "namespace-ttl", "no-limit"])
def test_the_compiled_path_answers_as_the_python_path(settings: dict[str, Any]) -> None:
    with_fast, pure = pair(**settings)
    if fast._compiled is not None:
        assert with_fast._fast is not None and _ext.LOADED[fast.COMPONENT] == "c"
    for name, body, opts, answer in REQUESTS:
        route = opts.get("route", "chat")
        kw = {k: v for k, v in opts.items() if k != "route"}
        got = [run(c, exchange(body, route, **kw), answer) for c in (with_fast, pure)]
        assert got[0] == got[1], name
    keys = [sorted((k, c.memory.get(k)) for k in _keys(c)) for c in (with_fast, pure)]
    assert keys[0] == keys[1] and keys[0]
    assert keys[0][0][1][:8] == struct.pack(">d", NOW)
    assert (with_fast.hits, with_fast.misses) == (pure.hits, pure.misses)
    assert with_fast._events == pure._events and with_fast._events[CACHE_MISS] == pure.misses > 0
    assert with_fast._memo == pure._memo and with_fast._memo
    if with_fast._fast is not None:  # the compiled path took the common requests, the Python path the others
        assert with_fast._fast.misses > 0 and with_fast._misses > 0


def _keys(cache: ResponseCache) -> list[str]:
    mem = cache.memory
    return list(mem._map) if hasattr(mem, "_map") else list(mem._data)


def test_the_compiled_path_hands_every_other_request_to_python() -> None:
    check_loaded(fast.COMPONENT, fast._compiled)
    with_fast, _ = pair()
    fp = with_fast._fast
    assert fp is not None
    control = exchange(CHAT)
    control.control = {"cache": {"no-cache": True}}
    assert fp.lookup(control) is fast.GENERAL and control.cache is None
    unknown_rules = exchange(CHAT, key=SimpleNamespace(records=[object()], cache_rules=None))
    assert fp.lookup(unknown_rules) is fast.GENERAL
    assert fp.lookup(exchange({"model": "e", "input": "x"}, "embeddings")) is fast.GENERAL
    assert fp.lookup(exchange({"model": "m", "messages": []}, "messages")) is fast.GENERAL
    not_bytes = exchange(CHAT)
    not_bytes.body = {"model": "m"}  # type: ignore[assignment]
    assert fp.lookup(not_bytes) is fast.GENERAL
    missed = exchange(CHAT)
    assert fp.lookup(missed) is None and isinstance(missed.cache, CacheState)
    missed.scope = {"headers": [(b"cache-control", b"max-age=0")]}
    assert fp.store(missed, ANSWER) is False  # a Cache-Control header: the Python path reads it
    missed.cache.header_ttl = False
    assert fp.store(missed, ANSWER) is True and fp.lookup(exchange(CHAT)) is not None


DUPLICATE = b'{"model":"m","messages":[{"role":"user","content":"d"}],"temperature":0.5,"temperature":0.7}'
"""A body the compiled canonical walk leaves to the pure path (a duplicate key)."""


@pytest.mark.parametrize("sha_instructions", [True, False], ids=["sha-instructions", "pure-digest"])
def test_the_helpers_called_in_c_key_and_store_as_python(sha_instructions: bool) -> None:
    """The memory level, the canonical body and the digest are called in C (capsules) when they are the compiled
    modules' own; the keys and entries are the Python path's, with the CPU's SHA instructions or without them,
    and for a body the compiled walk leaves to the pure path."""
    check_loaded(fast.COMPONENT, fast._compiled)
    from relaygate.core import _sha_c
    with_fast, pure = pair()
    assert with_fast._fast is not None and with_fast._fast.c_calls == (True, True, True, True)
    _sha_c.use_sha_instructions(sha_instructions)
    try:
        for body in (CHAT, {**CHAT, "seed": 31}, DUPLICATE):
            got = [run(c, exchange(body), ANSWER) for c in (with_fast, pure)]
            assert got[0] == got[1] and got[0][1] is not None
        assert sorted(_keys(with_fast)) == sorted(_keys(pure)) and len(_keys(pure)) == 3
        assert with_fast._fast.misses == 3 and with_fast._misses == 0
    finally:
        _sha_c.use_sha_instructions(True)


def test_scopes_asked_in_turn_keep_their_own_keys() -> None:
    """Scopes asked in turn, in team scope, get their own keys on the compiled path as on the Python path: another
    team's request for the same body misses, the first team's hits, and a group or team of the same name but
    another object does not change the key."""
    check_loaded(fast.COMPONENT, fast._compiled)
    with_fast, pure = pair(scope="team")
    body = {**CHAT, "seed": 41}
    turns = [("t1", "m", False), ("t2", "m", False), ("t1", "m", True), (None, "m", False), ("t2", "other", False),
             ("t2", "".join(["o", "ther"]), True), ("".join(["t", "1"]), "m", True)]
    for team, group, hit in turns:
        got = [run(c, exchange(body, team=team, group=group), ANSWER) for c in (with_fast, pure)]
        found = got[0][0]
        assert got[0] == got[1] and (found[8:] == ANSWER if hit else found is None), (team, group)
    assert with_fast._fast is not None and with_fast._fast.misses == 4
    assert len({k for k in _keys(with_fast)}) == 4 and sorted(_keys(with_fast)) == sorted(_keys(pure))


def test_helpers_replaced_are_called_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """A canonical body or digest replaced (a bench stub, a twin) and a memory level of another class (the pure
    twin's) are called through Python, as given, never by the compiled modules' C entry points."""
    check_loaded(fast.COMPONENT, fast._compiled)
    from relaygate.cache import key
    seen: list[bytes] = []

    def raw_key(body: bytes) -> bytes:
        seen.append(body)
        return body

    monkeypatch.setattr(key, "canonical_body", raw_key)
    cache = ResponseCache(CacheSettings(), metrics=SimpleNamespace(events={}))  # type: ignore[arg-type]
    fp = cache._fast
    assert fp is not None and fp.c_calls == (True, True, False, True)
    ex = exchange(CHAT)
    assert cache.lookup(ex) is None and seen == [ex.body]
    from relaygate.core.sha import sha256_hex
    assert ex.cache is not None and ex.cache.key == sha256_hex(ex.body, key._head("chat", "m", None))

    class Counted(PureMemoryCache):
        calls = 0

        def get(self, k: str) -> Any:
            Counted.calls += 1
            return super().get(k)

    monkeypatch.setattr(key, "canonical_body", key.canonical_body)
    other = ResponseCache(CacheSettings(), metrics=SimpleNamespace(events={}))  # type: ignore[arg-type]
    other.memory = Counted(64 * 1024 * 1024)
    other._bind(fast.fast_path(other, CACHE_MISS, CACHE_HIT, CacheState, MEMO_BODY))
    assert other._fast is not None and other._fast.c_calls[:2] == (False, False)
    assert other.lookup(exchange(CHAT)) is None and Counted.calls == 1


@pytest.mark.parametrize("level", ["default_off", "redis", "shared", "semantic"])
def test_caches_whose_lookup_is_not_the_common_one_have_no_compiled_path(level: str) -> None:
    """``mode: default_off``, or a level beyond this worker's memory (Redis, an object store, semantic): every
    request takes the Python path."""
    other = SimpleNamespace()
    cache = ResponseCache(CacheSettings(default_off=level == "default_off"),
                          redis=other if level == "redis" else None,  # type: ignore[arg-type]
                          shared=other if level == "shared" else None,  # type: ignore[arg-type]
                          semantic=other if level == "semantic" else None)  # type: ignore[arg-type]
    assert cache._fast is None
    assert (ResponseCache(CacheSettings())._fast is None) == (fast._compiled is None)


def test_a_replaced_clock_stamps_the_compiled_paths_entries() -> None:
    with_fast, pure = pair()
    for c in (with_fast, pure):
        c._wall = lambda: NOW + 100
        ex = exchange({**CHAT, "seed": 9})
        assert c.lookup(ex) is None
        c.store(ex, ANSWER)
        assert ex.cache is not None
        stored = c.memory.get(ex.cache.key)
        assert stored is not None and stored[:8] == struct.pack(">d", NOW + 100)


USAGE = (b'{"id":"c9","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":'
         b'{"role":"assistant","content":"served"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,'
         b'"completion_tokens":3,"total_tokens":10}}')
HITS: list[tuple[str, Any, dict[str, Any], bytes]] = [
    ("a chat hit, usage read", {**CHAT, "seed": 20}, {}, USAGE),
    ("a completions hit", {"model": "m", "prompt": "hit"}, {"route": "completions"},
     b'{"id":"x","object":"text_completion","created":2,"model":"up","choices":[{"text":"y","index":0}]}'),
    ("no group: the model asked", {**CHAT, "seed": 21}, {"group": None}, USAGE),
    ("an answer the splice leaves: the twin's body", {**CHAT, "seed": 22}, {},
     b'{"id":"d","id":"e","created":1,"choices":[{"message":{"content":"dup"}}]}'),
    ("exporters on: the answer kept", {**CHAT, "seed": 23}, {"obs": True}, USAGE),
    ("a stream hit: Python", {**CHAT, "seed": 24, "stream": True}, {}, USAGE),
    ("a rerank hit: Python", {"model": "m", "query": "q", "documents": ["a"]}, {"route": "rerank"},
     b'{"id":"r","results":[{"index":0,"relevance_score":0.5}]}'),
]


def _served(cache: ResponseCache, body: Any, opts: dict[str, Any], answer: bytes) -> tuple[Any, ...]:
    import asyncio

    route = opts.get("route", "chat")
    kw = {k: v for k, v in opts.items() if k not in ("route", "obs")}
    first = exchange(body, route, **kw)
    assert cache.lookup(first) is None
    cache.store(first, answer)
    ex = exchange(body, route, **kw)
    ex.call_id = b"4f7c-call"
    ex.t0, ex.wait = 10.0, 0.0
    ex.obs = SimpleNamespace(output=None, assembler=object()) if opts.get("obs") else None  # type: ignore[assignment]
    stored = cache.lookup(ex)
    assert type(stored) is bytes
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(cache.serve(ex, send, stored, [(b"x-litellm-version", b"1")]))
    head = [(k, v if not k.endswith(b"duration-ms") else b"<ms>") for k, v in sent[0]["headers"]]
    obs = (ex.obs.output, ex.obs.assembler) if ex.obs is not None else None
    return (sent[0]["status"], head, [m.get("body") for m in sent[1:]], ex.prompt_tokens, ex.completion_tokens,
            ex.cost, obs)


def test_the_compiled_path_serves_hits_as_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same hits served by a cache with the compiled path and by one without: the same status, headers (the
    durations apart), body, usage, cost and answer kept for the exporters; the compiled path served the unary
    chat and completions hits found by exact key, the Python path the others."""
    import relaygate.cache.stage as stage_mod

    monkeypatch.setattr(stage_mod.time, "perf_counter", lambda: 10.5)
    with_fast, pure = pair()
    for name, body, opts, answer in HITS:
        got = [_served(c, body, opts, answer) for c in (with_fast, pure)]
        assert got[0] == got[1], name
        assert any(k == b"x-litellm-cache-key" for k, _ in got[0][1]), name
    assert (with_fast.hits, with_fast._events) == (pure.hits, pure._events) and pure.hits == len(HITS)
    if with_fast._fast is not None:
        assert (with_fast._fast.hits, with_fast._hits) == (5, 2)
    unary = _served(with_fast, {**CHAT, "seed": 25}, {}, USAGE)
    fresh = orjson.loads(unary[2][0])
    assert (fresh["id"], fresh["created"], fresh["model"]) == ("chatcmpl-4f7c-call", int(NOW), "asked")
    assert unary[3:6] == (7, 3, 0.0) and (b"x-litellm-response-cost", b"0.0") in unary[1]


def test_the_compiled_serve_writes_durations_as_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import relaygate.cache.stage as stage_mod

    check_loaded(fast.COMPONENT, fast._compiled)
    monkeypatch.setattr(stage_mod.time, "perf_counter", lambda: 100.0)
    with_fast, _ = pair()
    assert with_fast._fast is not None
    ex = exchange({**CHAT, "seed": 26})
    assert with_fast.lookup(ex) is None
    with_fast.store(ex, USAGE)
    rng = random.Random(7)
    cases = [(0.0123456, 0.002), (1.5, 2.0), (0.0, 0.0), (12345.6789, 0.1), (0.0004994, 0.0), (2e9, 0.0)]
    cases += [(k / 2e6, 0.0) for k in range(0, 4000, 7)]  # halves of a thousandth, and their neighbours
    cases += [(rng.uniform(0, 5) ** 3, rng.uniform(0, 1)) for _ in range(500)]
    for total, wait in cases:
        hit = exchange({**CHAT, "seed": 26})
        stored = with_fast.lookup(hit)
        hit.call_id, hit.t0, hit.wait = b"c", 100.0 - total, wait
        headers: list[tuple[bytes, bytes]] = []
        assert with_fast._fast.serve(hit, stored, headers) is not fast.GENERAL
        python: list[tuple[bytes, bytes]] = []
        stage_mod._durations(python, hit)
        got = dict(headers)
        assert [(k, got[k]) for k, _ in python] == python


def test_the_compiled_path_reads_exchanges_by_their_slots_and_leaves_other_objects() -> None:
    """It reads an ``Exchange``'s and a ``CacheState``'s members at their slots' offsets (read from the classes'
    member descriptors when the cache is built); any other object goes to the Python path, and a member never set
    raises as ``getattr`` does."""
    check_loaded(fast.COMPONENT, fast._compiled)
    assert fast._compiled is not None
    assert set(fast._compiled.EX_FIELDS) <= set(Exchange.__slots__)
    assert set(fast._compiled.STATE_FIELDS) <= set(CacheState.__struct_fields__)
    with_fast, _ = pair()
    fp = with_fast._fast
    assert fp is not None
    ex = exchange({**CHAT, "seed": 30})
    other = SimpleNamespace(**{name: getattr(ex, name) for name in Exchange.__slots__ if hasattr(ex, name)})
    assert fp.lookup(other) is fast.GENERAL and fp.serve(other, b"x" * 20, []) is fast.GENERAL
    other.cache = CacheState("k", None, False, False, False)
    assert fp.store(other, ANSWER) is False
    assert fp.lookup(ex) is None and isinstance(ex.cache, CacheState)  # (the exchange's own slot set)
    assert fp.store(ex, ANSWER) is True and with_fast.memory.get(ex.cache.key) is not None
    ex.cache = SimpleNamespace(hit=False)  # a state of another class: the Python path's to store
    assert fp.store(ex, ANSWER) is False
    bare = Exchange.__new__(Exchange)
    with pytest.raises(AttributeError):
        fp.lookup(bare)


def test_the_default_clocks_are_read_in_c_as_python_reads_them() -> None:
    """With the default clocks (``time.time`` for the stamp, ``time.monotonic`` for the memory level's expiry) the
    compiled modules read them with ``clock_gettime`` as CPython computes them: the stamp and the expiry lie
    between the Python clock's readings before and after, and the entry lives for its TTL."""
    import time
    check_loaded(fast.COMPONENT, fast._compiled)
    cache = ResponseCache(CacheSettings(), metrics=SimpleNamespace(events={}))  # type: ignore[arg-type]
    ex = exchange({**CHAT, "seed": 41})
    assert cache.find(ex) is None and ex.cache is not None
    wall0, mono0 = time.time(), time.monotonic()
    cache.keep(ex, ANSWER, None)
    wall1, mono1 = time.time(), time.monotonic()
    value, expires = cache.memory._data[ex.cache.key]
    assert wall0 <= struct.unpack(">d", value[:8])[0] <= wall1 and value[8:] == ANSWER
    ttl = CacheSettings().memory_ttl
    assert mono0 + ttl <= expires <= mono1 + ttl
    assert cache.find(exchange({**CHAT, "seed": 41})) == value
