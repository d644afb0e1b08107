"""SSE decoder and re-framer, both twins, fed whole, byte by byte and at hypothesis-chosen splits."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

COMPONENT = "sse"

Events = list[tuple[bytes | None, bytes]]


def decode(mod: ModuleType, pieces: list[bytes]) -> tuple[Events, object]:
    dec = mod.SSEDecoder()
    out: Events = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    out.extend(dec.close())
    return out, dec


def reframe(mod: ModuleType, pieces: list[bytes]) -> tuple[bytes, object]:
    rf = mod.DataReframer()
    out = [rf.feed(piece) for piece in pieces]
    out.append(rf.close())
    return b"".join(out), rf


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points:
        pieces.append(data[prev:p])
        prev = p
    pieces.append(data[prev:])
    return pieces


def three_ways(data: bytes) -> list[list[bytes]]:
    return [[data], [data[i : i + 1] for i in range(len(data))], split_at(data, [1, 7, 13, 29])]


# ---- decoder ----------------------------------------------------------------------------------------

DECODER_CASES: list[tuple[bytes, Events]] = [
    (b"data: a\n\n", [(None, b"a")]),
    (b"data:a\n\n", [(None, b"a")]),
    (b"data:  two spaces\n\n", [(None, b" two spaces")]),
    (b"data: a\r\n\r\ndata: b\r\rdata: c\n\n", [(None, b"a"), (None, b"b"), (None, b"c")]),
    (b"event: delta\ndata: x\n\n", [(b"delta", b"x")]),
    (b"event: delta\n\ndata: y\n\n", [(None, b"y")]),  # event name resets at the blank line
    (b"data: one\ndata: two\ndata\n\n", [(None, b"one\ntwo\n")]),
    (b": comment\n\n: another\ndata: z\n\n", [(None, b"z")]),
    (b"id: 7\nretry: 3000\n\n", []),  # no data: not dispatched
    (b"\xef\xbb\xbfdata: bom\n\n", [(None, b"bom")]),
    (b"data: no blank line at end", [(None, b"no blank line at end")]),
    (b"data: tail\n", [(None, b"tail")]),
    (b"event\ndata\n\n", [(None, b"")]),
    (b"unknown: field\ndata: q\n\n", [(None, b"q")]),
    (b"", []),
    (b"\xef\xbb\xbf", []),
]


@pytest.mark.parametrize(("stream", "expected"), DECODER_CASES)
def test_decoder_cases_three_ways(impl: ModuleType, stream: bytes, expected: Events) -> None:
    for pieces in three_ways(stream):
        events, _ = decode(impl, pieces)
        assert events == expected, pieces


def test_decoder_id_and_retry(impl: ModuleType) -> None:
    events, dec = decode(impl, [b"id: abc\nretry: 1500\nretry: x\nid: a\x00b\ndata: 1\n\n"])
    assert events == [(None, b"1")]
    assert dec.last_event_id == b"abc"
    assert dec.retry == 1500


def test_decoder_returns_only_completed_events(impl: ModuleType) -> None:
    dec = impl.SSEDecoder()
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"\ndata: b") == [(None, b"a")]
    assert dec.feed(b"\r") == []
    assert dec.feed(b"\n\r\n") == [(None, b"b")]
    assert dec.close() == []


def test_decoder_bom_only_at_start(impl: ModuleType) -> None:
    events, _ = decode(impl, [b"data: a\n\n\xef\xbb\xbfdata: b\n\n"])
    assert events == [(None, b"a")]  # the BOM mid-stream makes the field name unknown


def test_cr_then_lf_in_next_feed_is_one_line_end(impl: ModuleType) -> None:
    events, _ = decode(impl, [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [(None, b"a\nb")]


# ---- reframer ---------------------------------------------------------------------------------------


def openai_stream(n: int = 20, usage: bool = True) -> bytes:
    chunks = [
        b'{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok%d"}}]}'
        % i
        for i in range(n)
    ]
    if usage:
        chunks.append(
            b'{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":20,"total_tokens":25}}'
        )
    return b"".join(b"data: " + c + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def test_reframer_clean_stream_passes_through_unchanged(impl: ModuleType) -> None:
    stream = openai_stream()
    for pieces in three_ways(stream):
        out, rf = reframe(impl, pieces)
        assert out == stream
        assert rf.done is True
        assert rf.frames == 21
        assert rf.last_data.startswith(b'{"id":"c1","choices":[],"usage"')


def test_reframer_single_feed_returns_slices(impl: ModuleType) -> None:
    rf = impl.DataReframer()
    assert rf.feed(b"data: {}\n\nda") == b"data: {}\n\n"
    assert rf.feed(b"ta: [1]\n") == b""
    assert rf.feed(b"\n") == b"data: [1]\n\n"
    assert rf.last_data == b"[1]"
    assert rf.frames == 2
    assert rf.done is False


def test_reframer_cleans_messy_upstream(impl: ModuleType) -> None:
    messy = (
        b": keepalive\n\n"
        b'id: 1\nevent: message\ndata:{"a":1}\n\n'
        b"data: line1\ndata: line2\n\n"
        b"retry: 10\n\n"
        b"\n\n"
        b"data: [DONE]\n\n"
        b"data: after done is dropped\n\n"
    )
    expected = b'data: {"a":1}\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n'
    for pieces in three_ways(messy):
        out, rf = reframe(impl, pieces)
        assert out == expected, pieces
        assert rf.done is True
        assert rf.frames == 2
        assert rf.last_data == b"line1\nline2"


def test_reframer_crlf_upstream(impl: ModuleType) -> None:
    stream = openai_stream(3).replace(b"\n", b"\r\n")
    for pieces in three_ways(stream):
        out, rf = reframe(impl, pieces)
        assert out == openai_stream(3)
        assert rf.frames == 4
        assert rf.done


def test_reframer_flushes_final_event_on_close(impl: ModuleType) -> None:
    for stream in (
        b"data: {}\n\ndata: last",
        b"data: {}\n\ndata: last\n",
        b"\xef\xbb\xbfdata: {}\n\ndata: last",
    ):
        for pieces in three_ways(stream):
            out, rf = reframe(impl, pieces)
            assert out == b"data: {}\n\ndata: last\n\n"
            assert rf.last_data == b"last"
            assert rf.done is False


def test_reframer_extra_blank_lines_and_empty_payload(impl: ModuleType) -> None:
    out, rf = reframe(impl, [b"\n\n\ndata: \n\n\n\ndata: x\n\n"])
    assert out == b"data: \n\ndata: x\n\n"
    assert rf.frames == 2


def test_frame(impl: ModuleType) -> None:
    assert impl.frame(b'{"x":1}') == b'data: {"x":1}\n\n'
    assert impl.DONE_FRAME == b"data: [DONE]\n\n"


# ---- property tests: split invariance and c == py ----------------------------------------------------

_line = st.one_of(
    st.builds(
        lambda v: b"data: " + v,
        st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ),
    st.builds(lambda v: b"data:" + v, st.sampled_from([b"x", b" y", b"", b"[DONE]", b" [DONE]"])),
    st.sampled_from([b"", b": c", b"event: e", b"id: 1", b"retry: 5", b"data", b"foo: bar", b"\xef\xbb\xbf"]),
)
_eol = st.sampled_from([b"\n", b"\r\n", b"\r"])
_stream = st.lists(st.tuples(_line, _eol), max_size=20).map(lambda ls: b"".join(a + b for a, b in ls))


@settings(max_examples=150, deadline=None)
@given(stream=_stream, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6), tail=st.booleans())
def test_split_invariance_and_twins_agree(
    twins: tuple[ModuleType, ModuleType], stream: bytes, cuts: list[int], tail: bool
) -> None:
    if tail:
        stream += b"data: unterminated"
    py, c = twins
    whole_events, _ = decode(py, [stream])
    whole_frames, rf_whole = reframe(py, [stream])
    pieces = split_at(stream, cuts)
    for mod in (py, c):
        assert decode(mod, pieces)[0] == whole_events
        frames, rf = reframe(mod, pieces)
        assert frames == whole_frames
        assert (rf.done, rf.frames, rf.last_data) == (rf_whole.done, rf_whole.frames, rf_whole.last_data)
    # The reframer's output agrees with the decoder up to [DONE].
    expected = []
    for _event, data in whole_events:
        if data == b"[DONE]":
            expected.append(b"data: [DONE]\n\n")
            break
        expected.append(b"data: " + data.replace(b"\n", b"\ndata: ") + b"\n\n")
    # ... with invalid UTF-8 replaced by U+FFFD
    assert whole_frames == b"".join(expected).decode("utf-8", "replace").encode()


def test_crlf_at_piece_end_then_blank_line(impl: ModuleType) -> None:
    """Regression (found by hypothesis): a piece ending in a complete CRLF must not swallow the next LF."""
    stream = b"data: a\r\nevent: e\r\n\ndata: b\n\n"
    cut = stream.index(b"\r\n\n") + 2
    dec = impl.SSEDecoder()
    assert dec.feed(stream[:cut]) + dec.feed(stream[cut:]) + dec.close() == [(b"e", b"a"), (None, b"b")]


# ---- the re-framer's output is valid UTF-8 ------------------------------------------------------------

UTF8_CASES = [
    b"\x80", b"\xbf\xbf", b"\xe2\x82", b"\xc0\xaf", b"\xc1\xbf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xff", b"\xf0\x9f\x98", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"ok\xe9ok",
    b"abcdefgh\xffabcdefgh", b"\xe2\x82\xac", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xed\x9f\xbf", b"\xf4\x8f\xbf\xbf",
]


@pytest.mark.parametrize("bad", UTF8_CASES)
def test_reframer_replaces_invalid_utf8(impl: ModuleType, bad: bytes) -> None:
    payload = b'{"choices":[{"delta":{"content":"x' + bad + b'y"}}]}'
    for stream, crlf in ((b"data: " + payload + b"\n\ndata: [DONE]\n\n", False),
                         (b"data: " + payload + b"\r\n\r\ndata: [DONE]\r\n\r\n", True),
                         (b": c\n\ndata: " + payload + b"\n\n", False),
                         (b"data: " + payload, False)):
        for pieces in three_ways(stream):
            out, _ = reframe(impl, pieces)
            out.decode()  # valid UTF-8
            want = payload.decode("utf-8", "replace").encode()
            assert b"data: " + want + b"\n\n" in out, (pieces, crlf)
            if bad.decode("utf-8", "ignore").encode() == bad:
                assert want == payload  # valid input is untouched


_utf8ish = st.lists(st.one_of(
    st.sampled_from([b"\x80", b"\xc3", b"\xa9", b"\xe2", b"\x82", b"\xac", b"\xf0", b"\x9f", b"\xed", b"\xa0",
                     b"\xf4", b"\x90", b"\xff", b"\xc0", b"\xe0"]),
    st.text(max_size=4).map(lambda t: t.encode()),
    st.sampled_from([b"a", b"bcdefghij", b" "]),
), max_size=30).map(lambda xs: b"".join(xs).replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(_utf8ish, min_size=1, max_size=4), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_reframer_utf8_twins_agree_at_any_split(
    twins: tuple[ModuleType, ModuleType], payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(b"data: " + p + b"\n\n" for p in payloads)
    want = stream.decode("utf-8", "replace").encode()
    for mod in twins:
        for pieces in ([stream], split_at(stream, cuts), [stream[i:i + 1] for i in range(len(stream))]):
            out, _ = reframe(mod, pieces)
            assert out == want
