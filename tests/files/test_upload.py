"""The upload's preamble (``files.upload.Preamble``) fed whole, a byte at a time and at random splits, and the
upstream body ``Upload`` makes from it: forwarded fields, the file part unchanged, the size bound."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.files.upload import BatchLines, Preamble, Upload
from relaygate.http.body import BodyLimits

B = b"----b0undary"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    ctype = b"Content-Type: application/octet-stream\r\n" if filename else b""
    return b"--" + B + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n" + ctype + b"\r\n" + value + b"\r\n"


FILE = b'{"a": 1}\r\n--not-a-boundary\r\n{"b": 2}\n'
BODY = (part("model", b"gpt-files") + part("purpose", b"batch") + part("target_model_names", b"x")
        + part("file", FILE, "in.jsonl") + b"--" + B + b"--\r\n")


def feed(pieces: list[bytes]) -> Preamble:
    pre = Preamble(B)
    for p in pieces:
        if pre.feed(p):
            break
    return pre


def check(pre: Preamble) -> None:
    assert pre.fields == {"model": "gpt-files", "purpose": "batch", "target_model_names": "x"}
    assert pre.filename == "in.jsonl"
    assert pre.file_start == BODY.index(b"--" + B + b'\r\nContent-Disposition: form-data; name="file"')


def test_whole_and_byte_by_byte() -> None:
    check(feed([BODY]))
    check(feed([BODY[i:i + 1] for i in range(len(BODY))]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_random_splits(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [BODY[a:b] for a, b in zip([0, *points], [*points, len(BODY)], strict=True)]
    check(feed(pieces))


def test_no_file_part() -> None:
    pre = Preamble(B)
    with pytest.raises(errors.BadRequest) as ei:
        pre.feed(part("purpose", b"batch") + b"--" + B + b"--\r\n")
    assert ei.value.param == "file"
    pre = Preamble(B)
    pre.feed(part("purpose", b"batch"))
    with pytest.raises(errors.BadRequest):
        pre.end()


def test_limit_without_a_file_part() -> None:
    pre = Preamble(B, limit=1000)
    with pytest.raises(errors.BadRequest) as ei:
        pre.feed(part("purpose", b"x" * 2000))
    assert "before the file" in ei.value.message


def _receive(pieces: list[bytes]) -> Any:
    queue = list(pieces)

    async def receive() -> dict[str, Any]:
        body = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    return receive


async def _collect(upload: Upload) -> bytes:
    return b"".join([p async for p in upload.body()])


def test_upstream_body_keeps_only_forwarded_fields() -> None:
    pre = Preamble(B)
    fed = 0
    while not pre.feed(BODY[fed:fed + 64]):
        fed += 64
    fed += 64
    assert fed < len(BODY)
    upload = Upload(pre, B, _receive([BODY[fed:fed + 7], BODY[fed + 7:]]), BodyLimits(1 << 20, 1e12, 1), 0.0,
                    len(BODY), True)
    out = asyncio.run(_collect(upload))
    assert out == part("purpose", b"batch") + part("file", FILE, "in.jsonl") + b"--" + B + b"--\r\n"
    assert upload.length == len(out)


def test_upstream_body_over_the_limit_is_413() -> None:
    pre = Preamble(B)
    head = BODY[:BODY.index(FILE)]
    assert pre.feed(head)
    upload = Upload(pre, B, _receive([b"x" * 600, b"x" * 600]), BodyLimits(len(head) + 1000, 1e12, 1), 0.0, None,
                    True)
    with pytest.raises(errors.PayloadTooLarge):
        asyncio.run(_collect(upload))


LINES = (b'{"custom_id": "1", "body": {"model": "grp", "messages": []}}\n'
         b'{"custom_id": "2", "body": {"model": "other"}}\r\n'
         b'not json but "model" named\n'
         b'{"custom_id": "3", "body": {"model": "alias"}}')
TAIL = b"\r\n--" + B + b"--\r\n"
EXPECTED = (b'{"custom_id":"1","body":{"model":"up-model","messages":[]}}\n'
            b'{"custom_id": "2", "body": {"model": "other"}}\r\n'
            b'not json but "model" named\n'
            b'{"custom_id":"3","body":{"model":"up-model"}}' + TAIL)


def rewrite(pieces: list[bytes], max_line: int = 1 << 20) -> tuple[bytes, int]:
    lines = BatchLines(B, frozenset({"grp", "alias"}), "up-model", max_line)
    out = b"".join(lines.feed(p) for p in pieces) + lines.close()
    return out, lines.rewritten


def test_batch_lines_whole_and_byte_by_byte() -> None:
    data = LINES + TAIL
    assert rewrite([data]) == (EXPECTED, 2)
    assert rewrite([data[i:i + 1] for i in range(len(data))]) == (EXPECTED, 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(LINES) + len(TAIL)), max_size=10))
def test_batch_lines_random_splits(cuts: list[int]) -> None:
    data = LINES + TAIL
    points = sorted(set(cuts))
    assert rewrite([data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]) == (EXPECTED, 2)


def test_batch_lines_long_line_and_after_the_delimiter_pass_unchanged() -> None:
    long = b'{"body": {"model": "grp"}, "pad": "' + b"x" * 200 + b'"}\n'
    after = b'--' + B + b'\r\nContent-Disposition: form-data; name="x"\r\n\r\n{"body": {"model": "grp"}}\n'
    data = long + b"\r\n" + after
    assert rewrite([data[:50], data[50:]], max_line=100) == (data, 0)
    assert rewrite([data], max_line=1000)[1] == 1
