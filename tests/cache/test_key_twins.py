"""The cache key's compiled canonical body (``ext/_cachekey_c.pyx``) against the pure path, byte for byte.

Both twins must give the same bytes for every body, so that workers running either share their entries (Redis,
object stores): the pure path is ``orjson.loads`` then ``cache.key.canonical``; the compiled one writes the same
form from the body's bytes and hands what it does not reproduce to the pure path. Checked on hand-picked bodies
(escapes, surrogates, invalid UTF-8, duplicate keys, numbers of every form, nesting, trailing bytes) and on
generated JSON written by three encoders, then damaged byte by byte.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.cache import key
from relaygate.core import _ext
from tests.cache.json_gen import spellings, values

pure = key._canonical_body_py


def _compiled() -> Any:
    if _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure path alone")
    return importlib.import_module("relaygate.core._cachekey_c")


def test_the_compiled_twin_is_loaded_unless_disabled() -> None:
    if os.environ.get("RELAYGATE_NO_EXTENSIONS", "") not in ("", "0"):
        assert key.canonical_body is pure and _ext.LOADED["cachekey"] == "py"
        return
    assert "cachekey" not in _ext.FAILED, _ext.FAILED.get("cachekey")
    assert _ext.LOADED["cachekey"] == "c"
    assert key.canonical_body is _compiled().canonical_body


@contextmanager
def _no_fallback() -> Iterator[list[bytes]]:
    """The compiled twin configured with a fallback that records what it was handed (and answers as the pure path)."""
    mod = _compiled()
    handed: list[bytes] = []

    def fallback(body: bytes) -> bytes | None:
        handed.append(body)
        return pure(body)

    mod.configure([name.encode() for name in key.IGNORED], key._number, fallback)
    try:
        yield handed
    finally:
        mod.configure([name.encode() for name in key.IGNORED], key._number, pure)


CHAT = (b'{"model": "gpt-4o", "messages": [{"role": "system", "content": "You are terse."}, {"content": "caf\\u00e9 '
        b'\\ud83d\\ude00 \\"quoted\\" \\\\ \\/ \\n\\t\\b\\f\\r \\u0001 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "role": '
        b'"user"}], "temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "n": 1, "stream": true, "user": "u-1", '
        b'"metadata": {"b": 1}, "seed": -0, "stop": ["\\n\\n"], "tools": [{"type": "function", "function": {"name": '
        b'"f", "parameters": {"type": "object", "properties": {"x": {"type": "number", "minimum": -1.5e3}}}}}], '
        b'"response_format": {"type": "json_object"}, "logit_bias": {"50256": -100}}')


def test_a_chat_body_is_written_by_the_compiled_twin_alone() -> None:
    with _no_fallback() as handed:
        got = key.canonical_body(CHAT)
        assert key.canonical_body(b' {"z": [], "a": {}, "m": [{"y": 1, "x": [true, false, null]}]} ') == \
            b'{"a":{},"m":[{"x":[true,false,null],"y":1}],"z":[]}'
    assert handed == []
    assert got == pure(CHAT)
    assert got is not None and b'"temperature":0.7' in got and b'"top_p":1}' in got and b'u-1' not in got
    assert b'"minimum":-1500.0' in got and b'"seed":0' in got


ODD = [
    b"", b" ", b"null", b"[]", b"[1]", b'"s"', b"1", b"{", b"}", b"{}", b" {} ", b"{} x", b"{}{}", b"\xef\xbb\xbf{}",
    b'{"a":1,"a":2}', b'{"a":1,"b":2,"a":{"c":1}}', b'{"a":{"x":1,"x":1}}', b'{"\\u0061":1}', b'{"a\\"b":1,"a":2}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00"}', b'{"a":"\\ud800\\u0041"}', b'{"a":"\\ud800x"}', b'{"a":"\\u12"}',
    b'{"a":"\\x"}', b'{"a":"\\uZZZZ"}', b'{"a":"tab\there"}', b'{"a":"\x00"}', b'{"a":"\x7f"}',
    b'{"a":"\xc3"}', b'{"a":"\xc3\x28"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xe0\x80\xaf"}', b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\xf4\x90\x80\x80"}', b'{"a":"\xf0\x8f\xbf\xbf"}', b'{"a":"\xf0\x9f\x98"}', b'{"a":"\xff"}',
    b'{"\xc3\xa9":1,"e":2,"\xf0\x9f\x98\x80":3,"\xef\xbf\xbf":4}', b'{"a\xff":1}',
    b'{"a":-0}', b'{"a":-0.0}', b'{"a":0.0}', b'{"a":1E2}', b'{"a":1e+2}', b'{"a":1e-2}', b'{"a":1.5e300}',
    b'{"a":1e400}', b'{"a":-1e400}', b'{"a":[1e400]}', b'{"a":01}', b'{"a":1.}', b'{"a":.5}', b'{"a":+1}',
    b'{"a":-}', b'{"a":1e}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":123456789012345678}',
    b'{"a":1234567890123456789}', b'{"a":18446744073709551615}', b'{"a":18446744073709551616}',
    b'{"a":-9223372036854775809}', b'{"a":[123456789012345678901234567890]}', b'{"a":[1.0,2.50,-0.0,1e22]}',
    b'{"temperature":2.0,"top_p":1e0,"x":[2.0]}', b'{"temperature":9007199254740993.0}', b'{"t":1e16}',
    b'{"a":tru}', b'{"a":true,}', b'{"a":[1,]}', b'{,"a":1}', b'{"a" 1}', b'{"a":1 "b":2}', b'{a:1}',
    b'{"user":1,"model":"m","metadata":{"x":1}}', b'{"stream":true}', b'{"user":{"a":1,"a":2}}',
    b'{\n\t"b" :\r\n 1 , "a":[ 1 , 2 ] }', b'{"a":"' + b"x" * 5000 + b'"}',
    b'{"k' + b"k" * 300 + b'":1,"k":2}',
    b"[" * 300 + b"]" * 300, b'{"a":' + b"[" * 250 + b"]" * 250 + b"}", b'{"a":' + b"[" * 198 + b"]" * 198 + b"}",
    b'{"a":' + b'{"b":' * 199 + b"1" + b"}" * 199 + b"}", b'{"a":' + b'{"b":' * 260 + b"1" + b"}" * 260 + b"}",
    CHAT,
]


@pytest.mark.parametrize("body", ODD, ids=range(len(ODD)))
def test_odd_bodies_agree(body: bytes) -> None:
    assert _compiled().canonical_body(body) == pure(body)


@pytest.mark.parametrize("count", [15, 16, 17, 1000, 200_000])
def test_many_members_are_sorted(count: int) -> None:
    """Small objects sorted by insertion, large ones by qsort (a body of 200,000 keys in O(n log n)); a
    duplicate among many goes to the pure path as among few."""
    members = {f"k{(i * 7919) % count:07d}": {"b": i, "a": [i]} for i in range(count)}
    body = json.dumps(members).encode()
    with _no_fallback() as handed:
        assert _compiled().canonical_body(body) == pure(body)
    assert handed == []
    sorted_body = json.dumps(members, sort_keys=True).encode()
    assert _compiled().canonical_body(sorted_body) == pure(sorted_body)
    duplicated = body[:-1] + b', "k0000000": 1}'
    with _no_fallback() as handed:
        assert _compiled().canonical_body(duplicated) == pure(duplicated)
    assert handed == [duplicated]


_top = st.dictionaries(st.sampled_from(["model", "messages", "temperature", "user", "n", "tools", "stream"])
                       | st.text(max_size=6), values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(_top)
def test_generated_bodies_agree(value: dict[str, Any]) -> None:
    mod = _compiled()
    for body in spellings(value):
        assert mod.canonical_body(body) == pure(body)


@settings(max_examples=300, deadline=None)
@given(_top, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_damaged_bodies_agree(value: dict[str, Any], at: int, byte: int) -> None:
    mod = _compiled()
    for body in spellings(value):
        if not body:
            continue
        i = at % len(body)
        for damaged in (body[:i] + bytes([byte]) + body[i + 1:], body[:i], body[:i] + bytes([byte]) + body[i:]):
            assert mod.canonical_body(damaged) == pure(damaged)


_digits = st.text(alphabet="0123456789", min_size=1, max_size=18)


@settings(max_examples=500, deadline=None)
@given(st.booleans(), st.sampled_from(["0", "1", "7", "12", "999999999999999", "1000000000000000", "123456789012"])
       | _digits.filter(lambda d: d == "0" or not d.startswith("0")),
       st.integers(min_value=0, max_value=8), _digits, st.sampled_from(["", "0", "000"]))
def test_plain_decimals_agree_at_the_top_and_nested(negative: bool, whole: str, zeros: int, fraction: str,
                                                      trailing: str) -> None:
    token = ("-" if negative else "") + whole + "." + "0" * zeros + fraction + trailing
    for body in (f'{{"temperature":{token}}}', f'{{"x":[{token}],"y":{{"z":{token}}}}}'):
        assert _compiled().canonical_body(body.encode()) == pure(body.encode()), body


def test_common_sampling_values_need_no_fallback() -> None:
    with _no_fallback() as handed:
        for token in ("0.7", "1.0", "0.0", "-0.0", "2.00", "0.25", "0.00001", "0.95", "1.5", "123.456"):
            for body in (f'{{"temperature":{token}}}'.encode(), f'{{"x":[{token}]}}'.encode()):
                assert _compiled().canonical_body(body) == pure(body), body
    assert handed == []


def test_body_key_equals_cache_key_of_the_decoded_body() -> None:
    decoded = orjson.loads(CHAT)
    for team in (None, "t1"):
        for namespace in (None, "ns"):
            assert key.body_key("chat", "g", CHAT, namespace=namespace, team=team) == \
                key.cache_key("chat", "g", decoded, namespace=namespace, team=team)
    assert key.body_key("chat", "g", b"[1]") is None
    assert key.body_key("chat", "g", b'{"a":' + b"[" * 300 + b"]" * 300 + b"}") is None


def test_body_keys_scope_prefixes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # the (route, group, team) prefixes body_key keeps: one per scope, emptied past HEADS_MAX, keys unchanged
    monkeypatch.setattr(key, "_HEADS", {})
    monkeypatch.setattr(key, "HEADS_MAX", 8)
    decoded = orjson.loads(CHAT)
    for i in range(30):
        team = f"team-{i}"
        assert key.body_key("chat", "g", CHAT, None, team) == key.cache_key("chat", "g", decoded, team=team)
        assert key.body_key("chat", "g", CHAT, None, team) == key.cache_key("chat", "g", decoded, team=team)
        assert 1 <= len(key._HEADS) <= 8


@pytest.mark.parametrize("value", [None, bytearray(b'{"a":1}'), memoryview(b'{"a":1}'), '{"a":1}', 7])
def test_a_value_other_than_bytes_is_answered_as_the_pure_path_answers_it(value: Any) -> None:
    assert _compiled().canonical_body(value) == pure(value)


def test_the_kept_buffers_serve_bodies_large_and_small_in_turn() -> None:
    """The walk keeps its buffers between calls and frees one past 64 KiB at the next call: a huge body's output
    is read whole, and the small bodies after it (and the huge one again) come out as the pure path's."""
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 200_000}], "model": "m"}).encode()
    small = b'{"model": "m", "messages": [{"content": "s", "role": "user"}], "b": 1, "a": 2}'
    for body in (small, huge, small, huge, huge, small):
        assert _compiled().canonical_body(body) == pure(body)
