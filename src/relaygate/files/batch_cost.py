"""A finished batch's cost, logged once: its output file read, each answer's usage priced, one spend row
charged to the batch's owner (LiteLLM tracks batch costs in its Enterprise edition only).

- **When.** A retrieve (or the create) that shows a batch ``completed``, ``cancelled`` or ``expired`` with an
  output file (a cancelled or expired batch is billed for the requests it finished), when the gateway has a
  store: the first worker, of any instance, to claim the batch's row (``store.files.claim_cost``: it sets
  ``costed_at`` only where it is empty) reads the file in the background; the client's answer never waits.
  A read that fails (upstream error, connection lost, a shutdown) gives the claim back, so a later
  retrieve tries again; the spend row's id is the batch's id, so a row is never written twice either.
- **What.** Each line of the output file is ``{"custom_id", "response": {"status_code", "body"}, "error"}``.
  A line answered 200 whose body has ``usage`` is priced as the gateway prices that deployment's answers
  (``cost.details``: cached, reasoning and audio tokens, service tier), at :data:`BATCH_PRICE` of it: OpenAI's
  and Azure's Batch API price is half the synchronous one, which is also what LiteLLM charges when its map has
  no batch prices. Other lines (errors, expired requests) cost nothing and are counted.
- **Bounded.** The file is read as a stream and split into lines as it arrives; a line longer than
  :data:`MAX_LINE` bytes is skipped (counted as unread), and the loop gets a turn every :data:`SLICE` lines.
- **The row.** One completion record (route ``aretrieve_batch``, LiteLLM's call type; ``request_id`` the
  batch's id): the model group and deployment that ran the batch, the owner's key, team and user (from the
  batch's row, whoever retrieved it), the summed tokens and cost, and ``spend_logs_metadata``
  ``{"batch_id", "requests_priced", "requests_unpriced", "lines_unread"}``. It reaches the spend logs, the
  counters and the budgets as any request's record does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.core import tokens
from relaygate.cost import PriceTable, details, pico_of, usd
from relaygate.sinks.record import MAX_COST

log = logging.getLogger("relaygate.files")

BATCH_PRICE = (1, 2)
"""A batch request's price as a fraction of the same synchronous request's (numerator, denominator)."""
MAX_LINE = 16 * 1024 * 1024
"""Bytes of one output line read at most; a longer line is skipped."""
SLICE = 256
"""Lines priced between two turns of the event loop."""
TERMINAL = frozenset({"completed", "cancelled", "expired"})
"""Batch states whose output file is final."""
_LINE_PICO = pico_of(MAX_COST)
"""pico-USD one line may cost at most (a request's bound, ``sinks.record.bound_usage``)."""


@dataclass
class BatchUsage:
    """What a batch's output file adds up to."""

    pico: int = 0
    """The cost at synchronous prices, pico-USD (:meth:`cost` applies :data:`BATCH_PRICE`)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    priced: int = 0
    """Lines answered 200 with a usage."""
    unpriced: int = 0
    """Other lines (errors, expired requests, answers without usage)."""
    unread: int = 0
    """Lines that were not JSON or longer than :data:`MAX_LINE`."""

    @property
    def cost(self) -> float:
        num, den = BATCH_PRICE
        return usd(self.pico * num // den)

    def add_line(self, line: bytes, table: PriceTable) -> None:
        """One output line: priced when it is a successful answer with usage."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.unread += 1
            return
        response = obj.get("response") if isinstance(obj, dict) else None
        if not isinstance(response, dict) or response.get("status_code") != 200:
            self.unpriced += 1
            return
        body = response.get("body")
        if not isinstance(body, dict):
            self.unpriced += 1
            return
        data = orjson.dumps(body)
        usage = tokens.extract_usage(data)
        if not usage:
            self.unpriced += 1
            return
        prompt, completion = usage[0], usage[1]
        d = details(data, table.service)
        self.priced += 1
        self.prompt_tokens += prompt + tokens.bound(d.prompt_extra)
        self.completion_tokens += completion
        self.cached_tokens += tokens.bound(d.cache_read)
        if table.known:  # a line is bounded as a request is: the batch's record is their sum
            self.pico += min(max(d.price(table, prompt, completion), 0), _LINE_PICO)


async def read_usage(chunks: Any, table: PriceTable) -> BatchUsage:
    """The usage and cost of an output file arriving as ``chunks`` (an async iterator of bytes)."""
    total = BatchUsage()
    pending = bytearray()
    skipping = False
    lines = 0
    async for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        while True:
            nl = pending.find(b"\n")
            if nl < 0:
                break
            line = bytes(pending[:nl])
            del pending[:nl + 1]
            if skipping:  # the rest of a line too long to read
                skipping = False
                continue
            if line.strip():
                total.add_line(line, table)
                lines += 1
                if not lines % SLICE:
                    await asyncio.sleep(0)
        if len(pending) > MAX_LINE:
            pending.clear()
            if not skipping:
                total.unread += 1
            skipping = True
    if pending.strip() and not skipping:
        total.add_line(bytes(pending), table)
    return total


__all__ = ["BATCH_PRICE", "MAX_LINE", "SLICE", "TERMINAL", "BatchUsage", "read_usage"]
