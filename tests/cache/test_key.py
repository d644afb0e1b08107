"""The cache key: equal for the same request however its JSON is spelled, split by anything that changes the
answer, blind to what does not."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from relaygate.cache import cache_key, canonical

BASE = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Classify: spam?"}], "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "b": 1, "a": 2}}}]}


def key(body: dict, **kw) -> str:  # type: ignore[no-untyped-def]
    return cache_key("chat", "gpt-4o", body, **kw)


def test_key_order_and_whitespace_do_not_split_the_key() -> None:
    raw = orjson.dumps(BASE)
    reordered = b'{ "temperature" : 0.2 ,\n "tools": [{"function": {"parameters": {"a": 2, "type": "object", ' \
                b'"b": 1}, "name": "f"}, "type": "function"}], "messages": [{"content": "Classify: spam?", ' \
                b'"role": "user"}], "model": "gpt-4o"}'
    assert key(orjson.loads(raw)) == key(orjson.loads(reordered))


def test_integral_floats_equal_ints() -> None:
    assert key({**BASE, "temperature": 1}) == key({**BASE, "temperature": 1.0})
    assert key({**BASE, "temperature": 1}) != key({**BASE, "temperature": 1.5})


def test_fields_that_do_not_change_the_answer_are_ignored() -> None:
    k = key(BASE)
    for extra in ({"user": "u1"}, {"metadata": {"a": "b"}}, {"stream": True},
                  {"stream_options": {"include_usage": True}}, {"num_retries": 3}, {"timeout": 5},
                  {"fallbacks": ["x"]}, {"tags": ["t"]}, {"cache": {"no-cache": True}}, {"model": "alias"},
                  {"service_tier": "flex"}, {"prompt_cache_key": "p"}):
        assert key({**BASE, **extra}) == k, extra


def test_fields_that_change_the_answer_split_the_key() -> None:
    k = key(BASE)
    for change in ({"temperature": 0.3}, {"messages": [{"role": "user", "content": "Classify: ham?"}]},
                   {"tools": []}, {"response_format": {"type": "json_object"}}, {"seed": 7}, {"n": 2},
                   {"max_tokens": 5}, {"tool_choice": "none"}, {"a_field_openai_adds_tomorrow": 1}):
        assert key({**BASE, **change}) != k, change


def test_route_group_team_and_namespace_scope_the_key() -> None:
    k = key(BASE)
    assert cache_key("completions", "gpt-4o", BASE) != k
    assert cache_key("chat", "other-group", BASE) != k
    assert key(BASE, team="t1") != k and key(BASE, team="t1") != key(BASE, team="t2")
    assert key(BASE, team="t1") == key(BASE, team="t1")
    spaced = key(BASE, namespace="litellm.caching")
    assert spaced == "litellm.caching:" + k


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=12)


@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=6))
def test_canonical_is_independent_of_insertion_order(body: dict) -> None:  # type: ignore[type-arg]
    def shuffled(v):  # type: ignore[no-untyped-def]
        if isinstance(v, dict):
            return {k: shuffled(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    assert canonical(body) == canonical(shuffled(body))


def test_a_body_nested_too_deep_to_encode_is_refused_as_an_encode_error() -> None:
    import pytest

    deep: dict = {}  # type: ignore[type-arg]
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(orjson.JSONEncodeError):
        cache_key("chat", "m", {"messages": deep})


def test_the_key_is_the_sha256_of_scope_and_canonical_body() -> None:
    """The built-in SHA-256 the key uses gives hashlib's digests: keys stored by an earlier relaygate (OpenSSL's
    SHA-256) are found again, and an operator can recompute one."""
    import hashlib

    from relaygate.cache.key import input_keys

    assert key(BASE) == hashlib.sha256(b"chat\0gpt-4o\0" + canonical(BASE)).hexdigest()
    assert key(BASE, namespace="ns", team="t1") == "ns:" + hashlib.sha256(
        b"chat\0gpt-4o\0team\0t1\0" + canonical(BASE)).hexdigest()
    body = {"model": "e", "input": ["a", "b"]}
    want = [hashlib.sha256(b"embeddings\0e\0" + canonical({"model": "e"}) + b"\0input\0" + orjson.dumps(i)).hexdigest()
            for i in ("a", "b")]
    assert input_keys("embeddings", "e", body, ["a", "b"]) == want
