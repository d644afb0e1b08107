"""bench.http1: request and response parsing fed whole, byte by byte and split at random points."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.http1 import ParseError, RequestParser, ResponseParser

PIPELINED = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Mock-Chunks: 3\r\n\r\nhello"
    b"POST /v1/embeddings HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\ntrailer: 1\r\n\r\n"
    b"GET /v1/models?x=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
)


def feed_split(data: bytes, cuts: list[int]) -> list:
    parser = RequestParser()
    out = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        out += parser.feed(data[prev:c])
        prev = c
    return out


def check(reqs: list) -> None:
    assert [r.method for r in reqs] == ["POST", "POST", "GET"]
    assert reqs[0].body == b"hello" and reqs[0].headers["x-mock-chunks"] == "3" and reqs[0].keep_alive
    assert reqs[1].body == b"abcdefg" and reqs[1].path == "/v1/embeddings"
    assert reqs[2].path == "/v1/models" and reqs[2].query_params() == {"x": "1"} and not reqs[2].keep_alive


def test_requests_whole() -> None:
    check(RequestParser().feed(PIPELINED))


def test_requests_byte_at_a_time() -> None:
    check(feed_split(PIPELINED, list(range(1, len(PIPELINED)))))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(PIPELINED)), max_size=12))
def test_requests_random_splits(cuts: list[int]) -> None:
    check(feed_split(PIPELINED, cuts))


@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\r\nbad header\r\n\r\n",
    b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n",
    b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
])
def test_malformed_requests_raise(raw: bytes) -> None:
    with pytest.raises(ParseError):
        RequestParser().feed(raw)


RESPONSES = (
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    b"7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\n\r\n"
    b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 3\r\n\r\nerr"
)


def parse_responses(data: bytes, cuts: list[int]) -> list:
    events: list = []
    bodies: list[bytes] = []
    parser = ResponseParser(lambda s, h: events.append(("head", s)), bodies.append,
                            lambda ka: events.append(("end", ka, b"".join(bodies))) or bodies.clear())
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        parser.feed(data[prev:c])
        prev = c
    assert parser.idle
    return events


def test_responses_whole_and_split() -> None:
    expected = [("head", 200), ("end", True, b"{}"), ("head", 200), ("end", True, b"data: 1data: 2"),
                ("head", 204), ("end", True, b""), ("head", 429), ("end", False, b"err")]
    assert parse_responses(RESPONSES, []) == expected
    assert parse_responses(RESPONSES, list(range(1, len(RESPONSES)))) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(RESPONSES)), max_size=12))
def test_responses_random_splits(cuts: list[int]) -> None:
    assert len(parse_responses(RESPONSES, cuts)) == 8


def test_response_read_until_close() -> None:
    ends: list[bool] = []
    body: list[bytes] = []
    p = ResponseParser(lambda s, h: None, body.append, ends.append)
    p.feed(b"HTTP/1.1 200 OK\r\n\r\npartial ")
    p.feed(b"body")
    assert ends == []
    assert p.eof() is True
    assert ends == [False] and b"".join(body) == b"partial body"
