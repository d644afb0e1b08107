"""``files.batch_cost.read_usage``: an output file's lines priced whatever the chunks it arrives in, errors
and unreadable lines counted, a line over the bound skipped without holding it, half the synchronous price."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from relaygate.catalog import default_catalog
from relaygate.cost import PriceTable
from relaygate.files import batch_cost
from relaygate.files.batch_cost import read_usage

TABLE = PriceTable(default_catalog().lookup_name("gpt-4o-mini"), "openai", "gpt-4o-mini")


def line(prompt: int, completion: int, status: int = 200) -> bytes:
    body = {"object": "chat.completion", "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                                   "total_tokens": prompt + completion}}
    return orjson.dumps({"custom_id": "x", "response": {"status_code": status, "body": body}, "error": None})


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def usage_of(data: bytes, size: int) -> batch_cost.BatchUsage:
    return asyncio.run(read_usage(pieces(data, size), TABLE))


def test_any_chunking_gives_the_same_total() -> None:
    data = b"\n".join([line(1000, 200), line(10, 5, status=429), b"not json", b"", line(2000, 100)])  # no final \n
    totals = {(u.pico, u.prompt_tokens, u.completion_tokens, u.priced, u.unpriced, u.unread)
              for u in (usage_of(data, n) for n in (1, 2, 7, 64, 10_000))}
    assert len(totals) == 1
    u = usage_of(data, 64)
    assert (u.priced, u.unpriced, u.unread, u.prompt_tokens, u.completion_tokens) == (2, 1, 1, 3000, 300)
    assert u.cost == pytest.approx((3000 * 0.15e-6 + 300 * 0.6e-6) / 2)


def test_a_line_over_the_bound_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_cost, "MAX_LINE", 4096)
    huge = line(7, 7)[:-1] + b" " * 20_000 + b"}"
    data = line(1000, 0) + b"\n" + huge + b"\n" + line(0, 100) + b"\n"
    u = usage_of(data, 1024)
    assert (u.priced, u.unread, u.prompt_tokens, u.completion_tokens) == (2, 1, 1000, 100)


def test_unpriced_model_counts_tokens_at_no_cost() -> None:
    u = asyncio.run(read_usage(pieces(line(50, 5) + b"\n", 8), PriceTable(None)))
    assert (u.priced, u.prompt_tokens, u.cost) == (1, 50, 0.0)


def test_absurd_lines_are_bounded_as_requests_are() -> None:
    """A line reporting more tokens than any request has counts 2**40 of each (``extract_usage``) and costs at most
    ``MAX_COST`` (half of it at the batch price), as a request's record: the batch's record is their sum. A count
    past 64 bits is read as a float by the line's JSON decoding, so that line is not priced."""
    from relaygate.core.tokens import MAX_TOKENS
    from relaygate.sinks.record import MAX_COST

    data = b"\n".join([line(2**41, 2**50), line(1000, 200), line(-5, 3),
                       line(1, 1).replace(b'"prompt_tokens":1,', b'"prompt_tokens":1180591620717411303424,')])
    u = usage_of(data, 64)
    assert (u.priced, u.unpriced, u.prompt_tokens, u.completion_tokens) == (3, 1, MAX_TOKENS + 1000, MAX_TOKENS + 203)
    assert u.cost == pytest.approx((MAX_COST + 1000 * 0.15e-6 + 203 * 0.6e-6) / 2)
