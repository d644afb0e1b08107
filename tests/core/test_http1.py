"""HTTP/1.1 response parser and request builder, both twins, fed whole, byte by byte and at random splits."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core.errors import UpstreamProtocolError

COMPONENT = "http1"


def norm(events: list[object]) -> list[object]:
    """Comparable form: heads as tuples, adjacent body pieces merged, END as a string."""
    out: list[object] = []
    for ev in events:
        if type(ev) is bytes:
            if out and type(out[-1]) is bytes:
                out[-1] = out[-1] + ev  # type: ignore[operator]
            else:
                out.append(ev)
        elif repr(ev) == "END":
            out.append("END")
        else:
            out.append(
                (
                    ev.status,
                    ev.reason,
                    ev.http_version,
                    ev.headers,
                    ev.keep_alive,
                    ev.content_length,
                    ev.chunked,
                )  # type: ignore[attr-defined]
            )
    return out


def parse(mod: ModuleType, pieces: list[bytes], *, head: bool = False, eof: bool = False) -> list[object]:
    p = mod.ResponseParser(head)
    events: list[object] = []
    for piece in pieces:
        events.extend(p.feed(piece))
    if eof:
        events.extend(p.feed_eof())
    return norm(events)


def three_ways(data: bytes) -> list[list[bytes]]:
    return [
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[:5], data[5:17], data[17:40], data[40:]],
    ]


def check(mod: ModuleType, data: bytes, expected: list[object], **kw: bool) -> None:
    for pieces in three_ways(data):
        assert parse(mod, pieces, **kw) == expected, pieces


def H(
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    reason: bytes = b"OK",
    ver: bytes = b"1.1",
    ka: bool = True,
    cl: int | None = None,
    chunked: bool = False,
) -> tuple[object, ...]:
    return (status, reason, ver, headers or [], ka, cl, chunked)


def test_content_length(impl: ModuleType) -> None:
    data = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"ok": true}\n'
    hdrs = [(b"content-type", b"application/json"), (b"content-length", b"13")]
    check(impl, data, [H(headers=hdrs, cl=13), b'{"ok": true}\n', "END"])


def test_head_helpers(impl: ModuleType) -> None:
    p = impl.ResponseParser()
    events = p.feed(b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n")
    head = events[0]
    assert isinstance(head, impl.Head)
    assert head.header(b"x-a") == b"1"
    assert head.header(b"missing") is None
    assert events[1] is impl.END
    assert p.head is head and p.done


def test_chunked_with_extensions_and_trailers(impl: ModuleType) -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"6 ; x\r\n world\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )
    check(impl, data, [H(headers=[(b"transfer-encoding", b"chunked")], chunked=True), b"hello world", "END"])
    p = impl.ResponseParser()
    p.feed(data)
    assert p.trailers == [(b"x-trailer", b"t")]
    assert p.buffered == 0


def test_chunked_wins_over_content_length(impl: ModuleType) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    events = parse(impl, [data])
    assert events[0][5] is None and events[0][6] is True  # type: ignore[index]
    assert events[1:] == [b"abc", "END"]


def test_lf_only_lines(impl: ModuleType) -> None:
    data = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n"
    check(impl, data, [H(headers=[(b"transfer-encoding", b"chunked")], chunked=True), b"abc", "END"])


def test_interim_responses_are_skipped(impl: ModuleType) -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    check(impl, data, [H(201, [(b"content-length", b"2")], reason=b"Created", cl=2), b"ok", "END"])


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(impl: ModuleType, status: int) -> None:
    data = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status
    check(impl, data, [H(status, [(b"content-length", b"10")], reason=b"X", cl=10), "END"])


def test_head_request_has_no_body(impl: ModuleType) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    check(impl, data, [H(headers=[(b"content-length", b"1000")], cl=1000), "END"], head=True)
    # Without Content-Length a HEAD response still ends at the head and keeps the connection.
    check(impl, b"HTTP/1.1 200 OK\r\n\r\n", [H(), "END"], head=True)


def test_read_until_close(impl: ModuleType) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body"
    check(
        impl, data, [H(headers=[(b"content-type", b"text/plain")], ka=False), b"some body", "END"], eof=True
    )
    # a non-chunked transfer coding also reads until close
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"
    check(impl, data, [H(headers=[(b"transfer-encoding", b"gzip")], ka=False), b"zz", "END"], eof=True)


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Keep-Alive, Close", False),
        (b"1.1", b"keep-alive", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"close", False),
    ],
)
def test_keep_alive_rules(
    impl: ModuleType, version: bytes, connection: bytes | None, keep_alive: bool
) -> None:
    data = b"HTTP/" + version + b" 200 OK\r\nContent-Length: 0\r\n"
    if connection is not None:
        data += b"Connection: " + connection + b"\r\n"
    events = parse(impl, [data + b"\r\n"])
    assert events[0][2] == version  # type: ignore[index]
    assert events[0][4] is keep_alive  # type: ignore[index]


def test_reason_variants(impl: ModuleType) -> None:
    assert parse(impl, [b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"])[0][1] == b""  # type: ignore[index]
    assert parse(impl, [b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"])[0][1] == b""  # type: ignore[index]
    assert (
        parse(impl, [b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"])[0][1]
        == b"Service Unavailable"
    )  # type: ignore[index]


def test_header_value_whitespace_and_case(impl: ModuleType) -> None:
    events = parse(
        impl,
        [b"HTTP/1.1 200 OK\r\nX-Request-ID:   abc def \t\r\nEMPTY:\r\nContent-Length: 5, 5\r\n\r\n12345"],
    )
    assert events[0][3] == [(b"x-request-id", b"abc def"), (b"empty", b""), (b"content-length", b"5, 5")]  # type: ignore[index]
    assert events[0][5] == 5  # type: ignore[index]


def test_reuse_after_reset_and_leftover(impl: ModuleType) -> None:
    p = impl.ResponseParser()
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
    assert norm(p.feed(first)) == [H(headers=[(b"content-length", b"1")], cl=1), b"a", "END"]
    assert p.buffered == 0
    p.reset()
    assert not p.done and p.head is None
    assert norm(p.feed(first + b"junk")) == [H(headers=[(b"content-length", b"1")], cl=1), b"a", "END"]
    assert p.buffered == 4  # bytes after the end of the response: the transport will not reuse this
    assert p.feed(b"more") == []
    assert p.buffered == 8


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"garbage\r\n\r\n",
        b"\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: empty-name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\rx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n bad trailer\r\n\r\n",
    ],
)
def test_garbage_raises(impl: ModuleType, data: bytes) -> None:
    for pieces in three_ways(data):
        p = impl.ResponseParser()
        with pytest.raises(UpstreamProtocolError):
            for piece in pieces:
                p.feed(piece)
        with pytest.raises(UpstreamProtocolError):
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # unusable after an error


def test_limits(impl: ModuleType) -> None:
    p = impl.ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(UpstreamProtocolError, match="too large"):
        for _ in range(impl.MAX_HEAD // 1000 + 1):
            p.feed(b"X-Big: " + b"a" * 990 + b"\r\n")
    p = impl.ResponseParser()
    with pytest.raises(UpstreamProtocolError, match="too large"):
        p.feed(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * impl.MAX_HEAD + b"\r\n\r\n")
    p = impl.ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(UpstreamProtocolError, match="chunk-size line"):
        p.feed(b"5;" + b"x" * impl.MAX_CHUNK_LINE)


def test_eof_incomplete_raises(impl: ModuleType) -> None:
    for data in (
        b"",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ):
        p = impl.ResponseParser()
        p.feed(data)
        with pytest.raises(UpstreamProtocolError):
            p.feed_eof()
    p = impl.ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert p.feed_eof() == []


def test_build_request(impl: ModuleType) -> None:
    req = impl.build_request(
        "POST",
        "api.example.com:8443",
        "/v1/chat/completions?x=1",
        [
            ("Authorization", "Bearer sk-1"),
            ("content-type", "application/json"),
            ("Host", "evil"),
            ("Content-Length", "999"),
        ],
        b'{"a":1}',
    )
    assert req == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.example.com:8443\r\n"
        b"Authorization: Bearer sk-1\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n"
        b'{"a":1}'
    )
    assert impl.build_request("GET", "h", "/", [], b"") == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    assert impl.build_request("DELETE", "h", "/x", [], b"").endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "host", "path", "headers"),
    [
        ("GET", "h", "/", [("X-A", "v\r\nInjected: 1")]),
        ("GET", "h", "/", [("X-A\n", "v")]),
        ("GET", "h\r\n", "/", []),
        ("GET", "h", "/ HTTP/1.1\r\nX: y", []),
        ("GET", "h", "/", [("X-A", "snow \u2603")]),
    ],
)
def test_build_request_rejects_injection(
    impl: ModuleType, method: str, host: str, path: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError):
        impl.build_request(method, host, path, headers, b"")


# ---- property tests -------------------------------------------------------------------------------

_hname = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_0123456789", min_size=1, max_size=12
)
_hvalue = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)
_eol = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    eol = draw(_eol)
    status = draw(st.sampled_from([200, 201, 204, 400, 429, 500]))
    headers = [
        (n.encode(), v.encode())
        for n, v in draw(st.lists(st.tuples(_hname, _hvalue), max_size=4))
        if n.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "eof"]))
    interim = draw(st.booleans())
    lines = [b"HTTP/1.1 %d Reason" % status] + [n + b": " + v for n, v in headers]
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 50), max_size=10))
        payload, rest = b"", body
        for s in sizes:
            if not rest:
                break
            piece, rest = rest[:s], rest[s:]
            payload += b"%x" % len(piece) + eol + piece + eol
        if rest:
            payload += b"%X;ext=1" % len(rest) + eol + rest + eol
        payload += b"0" + eol + (b"T: 1" + eol if draw(st.booleans()) else b"") + eol
    else:
        payload = body
    head = eol.join(lines) + eol + eol
    if interim:
        head = b"HTTP/1.1 100 Continue" + eol + eol + head
    if status == 204:
        payload, body = b"", b""
        if framing == "eof":
            framing = "length"
    return head + payload, body, framing == "eof"


@settings(max_examples=150, deadline=None)
@given(resp=responses(), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_split_invariance_and_twins_agree(
    twins: tuple[ModuleType, ModuleType], resp: tuple[bytes, bytes, bool], cuts: list[int]
) -> None:
    data, body, eof = resp
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for point in points:
        pieces.append(data[prev:point])
        prev = point
    pieces.append(data[prev:])
    expected = parse(twins[0], [data], eof=eof)
    assert expected[-1] == "END"
    assert (expected[1] if len(expected) == 3 else b"") == body
    for mod in twins:
        assert parse(mod, pieces, eof=eof) == expected


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=120),
    prefix=st.sampled_from(
        [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    ),
)
def test_fuzz_twins_agree_on_garbage(
    twins: tuple[ModuleType, ModuleType], data: bytes, prefix: bytes
) -> None:
    results = []
    for mod in twins:
        p = mod.ResponseParser()
        try:
            results.append(("ok", norm(p.feed(prefix + data)), p.buffered, p.done))
        except UpstreamProtocolError:
            results.append(("error",))
    assert results[0] == results[1]
