"""A hit's fresh body, the compiled splice (``relaygate.core._cachefast_c.fresh``) against its pure twin
(``cache.replay.fresh_decoded``: the top level decoded by msgspec, ``id``/``created``/``model`` set, encoded
again), byte for byte.

The splice either gives the twin's bytes or None (the twin then answers): never other bytes, whatever the stored
answer holds. Checked on hand-picked answers (whitespace, escapes, surrogates, invalid UTF-8, duplicate and
escaped member names, numbers of every form, nesting, trailing bytes, members missing) and on generated answers
written by three encoders, then damaged byte by byte; and the answers a hit commonly serves are shown to be
spliced, not handed back.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.cache import replay
from tests.cache.json_gen import spellings, values
from tests.core.compiled_only import check_loaded

pure = replay.fresh_decoded
RID, CREATED = "chatcmpl-5f1c3a8e-0b2d-4e6f-9a7b-1c2d3e4f5a6b", 1_765_000_000


def _splice() -> Any:
    check_loaded("cachefast", replay._splice)
    return importlib.import_module("relaygate.core._cachefast_c").fresh


def _agree(answer: bytes, rid: str = RID, created: int = CREATED, model: str | None = "gpt-4o") -> bytes | None:
    """The splice's bytes for ``answer`` (None: handed to the twin), asserted equal to the twin's when given, and
    :func:`replay.fresh` asserted to give the twin's bytes either way."""
    got = _splice()(answer, rid, created, model)
    want = pure(answer, rid, created, model)
    if got is not None:
        assert got == want, answer
    assert replay.fresh(answer, rid, created, model) == want
    return got


COMMON = [
    orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "mock-model",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello " * 200},
                               "finish_reason": "stop", "logprobs": None}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": 150, "total_tokens": 160},
                  "system_fingerprint": "fp_1"}),
    json.dumps({"id": "cmpl-2", "object": "text_completion", "created": 2, "model": "m",
                "choices": [{"text": "caf\u00e9 \U0001f600 \"q\" \\ \n", "index": 0, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}, indent=2).encode(),
    json.dumps({"id": "x", "created": 0, "model": "m", "choices": [{"message": {"content": "\u00e9\u20ac",
                "tool_calls": [{"function": {"arguments": "{\"a\": [1, 2.5e-3, -0]}"}}]}}]}).encode(),
    b'{"model":"m","data":[{"embedding":[0.1,-2e5,3]}]}',  # no id: only the model set
    b'{"id":"i","created":5}',
    b"{}",
]


@pytest.mark.parametrize("answer", COMMON, ids=range(len(COMMON)))
def test_common_answers_are_spliced(answer: bytes) -> None:
    assert _agree(answer) is not None
    assert _agree(answer, model=None) is not None


def test_the_splice_sets_what_the_twin_sets() -> None:
    got = _agree(COMMON[0], "chatcmpl-new", -7, "m")
    assert got is not None
    obj = orjson.loads(got)
    assert (obj["id"], obj["created"], obj["model"]) == ("chatcmpl-new", -7, "m")
    assert obj["choices"] == orjson.loads(COMMON[0])["choices"]
    for created in (0, 9, 10, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30):
        _agree(COMMON[4], created=created)


ODD = [
    b"", b" ", b"null", b"[]", b'"s"', b"1", b"{", b"}", b" {} ", b"{} x", b"{}{}", b"\xef\xbb\xbf{}",
    b'{"id":1,"id":2,"created":3}', b'{"a":1,"b":2,"a":3}', b'{"\\u0069d":"x","created":1}', b'{"a\\"b":1}',
    b'{"id":"x"}', b'{"id":"x","model":"m"}', b'{"created":1,"model":"m"}', b'{"\xc3\xa9":1}', b'{"a\xff":1}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00"}', b'{"a":"\\ud800\\u0041"}', b'{"a":"\\ud83d\\ude00"}', b'{"a":"\\u12"}',
    b'{"a":"\\x"}', b'{"a":"\\uZZZZ"}', b'{"a":"\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"}', b'{"a":"tab\there"}',
    b'{"a":"\x00"}', b'{"a":"\x1f"}', b'{"a":"\x7f"}', b'{"a":"\xc3"}', b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}',
    b'{"a":-0}', b'{"a":-0.0}', b'{"a":1E2}', b'{"a":1e+2}', b'{"a":1e-2}', b'{"a":1e400}', b'{"a":01}',
    b'{"a":1.}', b'{"a":.5}', b'{"a":+1}', b'{"a":-}', b'{"a":1e}', b'{"a":NaN}', b'{"a":Infinity}',
    b'{"a":123456789012345678901234567890}', b'{"a":tru}', b'{"a":true,}', b'{"a":[1,]}', b'{,"a":1}',
    b'{"a" 1}', b'{"a":1 "b":2}', b'{a:1}', b'{"a":[true,false,null,{},[],""]}', b'{"a":nul}', b'{"a":fals}',
    b'{\n\t"id" :\r\n "old" , "created" : 1 ,"model":"x", "a":[ 1 , 2 ] }\n', b'{"a":"' + b"x" * 5000 + b'"}',
    b'{"a":"' + b"\\\\" * 40 + b'"}', b'{"a":"' + b"y" * 15 + b'\\"' + b"z" * 17 + b'"}',
    b'{"a":' + b"[" * 63 + b"]" * 63 + b"}", b'{"a":' + b"[" * 64 + b"]" * 64 + b"}",
    b'{"a":' + b"[" * 300 + b"]" * 300 + b"}", b'{"a":' + b'{"b":' * 70 + b"1" + b"}" * 70 + b"}",
    b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(24)) + b"}",
    b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(25)) + b"}",
]


@pytest.mark.parametrize("answer", ODD, ids=range(len(ODD)))
def test_odd_answers_agree(answer: bytes) -> None:
    _agree(answer)
    _agree(answer, model=None)


@pytest.mark.parametrize(("rid", "model"), [("chatcmpl-\u00e9", "m"), ("a\"b", "m"), ("x", "caf\u00e9"),
                                            ("x", "a\\b"), ("x", "tab\t"), ("", ""), ("x", "a/b<c>&")])
def test_unusual_ids_and_models_agree(rid: str, model: str) -> None:
    _agree(COMMON[0], rid, CREATED, model)


_answer = st.dictionaries(st.sampled_from(["id", "created", "model", "object", "choices", "usage"])
                          | st.text(max_size=6), values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(_answer, st.sampled_from([None, "m", "gpt-4o-mini"]))
def test_generated_answers_agree(value: dict[str, Any], model: str | None) -> None:
    for answer in spellings(value):
        _agree(answer, model=model)


@settings(max_examples=300, deadline=None)
@given(_answer, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_damaged_answers_agree(value: dict[str, Any], at: int, byte: int) -> None:
    for answer in spellings(value):
        if not answer:
            continue
        i = at % len(answer)
        for damaged in (answer[:i] + bytes([byte]) + answer[i + 1:], answer[:i], answer[:i] + bytes([byte]) + answer[i:]):
            _agree(damaged)
