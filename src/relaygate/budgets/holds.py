"""Budget reservations: what an admitted request may cost is held against its budgets until it completes.

What it owns: LiteLLM 1.110's optimistic budget reservation (``general_settings.disable_budget_reservation``,
default off, so reservations are on), as a worker does it without IO.

- **Why.** A budget check reads the spend completed so far. Without reservations, every request admitted
  while a budget still has room runs, so 50 concurrent requests of a key $0.01 under its budget all go
  upstream and the key ends far over it. With them, an admitted request holds its worst-case cost
  (:class:`Estimator`) on each budget it answers to (key, team, team member, user, organization, customer,
  tags, a key's per-model budget, the proxy's), and the next request's check counts the holds of the
  requests in flight: a budget whose remaining room is all held refuses with LiteLLM's ``budget_exceeded``,
  its "Current cost" the spend and the holds together, as LiteLLM's.
- **How much.** As LiteLLM's ``estimate_request_max_cost``: the prompt's tokens (a conversation of at most
  :data:`_SMALL` bytes held at a token a byte, a longer one at the gateway's token estimate; capped at the
  model's ``max_input_tokens``) at the input price, plus the requested output tokens (``max_completion_tokens``,
  ``max_tokens``, ``max_output_tokens``; else 16,384), capped at the model's ``max_output_tokens``, times
  ``n`` / ``best_of``, at the higher of the output and reasoning prices; the most expensive deployment of the
  model group. Embeddings hold their input only. A route priced otherwise (images, audio, rerank), a model
  without prices and a wildcard group hold nothing: their budgets bind when their spend is counted, as
  before. When less room is left than the estimate the request holds what is left (LiteLLM's resize).
- **Lifetime.** A hold stays until the budget guard's completion sink counts the request's real cost in the
  tallies, and is released in that same step (``Pipeline.complete`` names it in the record: ``CompletionRecord.hold``),
  so a completed request's cost is never out of both; a failure's record (cost 0) releases it the same way, within
  the queue's drain delay (~1 ms). A check that finds a budget's room all held first has the queue deliver the
  records waiting in it (``BudgetGuard.settle``), so a request that ended does not refuse the next one (a client
  asking again the moment its answer arrives) with a hold that is already over. A record the completion queue
  drops releases its hold there; a request that ends without a record (a cancelled ``fastest_response`` part)
  releases it at its end; anything left (a task cancelled at shutdown) is released after :data:`MAX_AGE` by the
  guard's refresh.
- **Scope.** Holds are this worker's: across workers and instances (Redis counters) a budget can be overshot
  by what the *other* workers hold in flight, where without reservations it was what every worker had in
  flight. LiteLLM keeps its reservations in the Redis counters themselves (and renews their leases);
  relaygate's counters stay spend only, so a worker that dies leaves nothing held.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import msgspec

from relaygate.core import tokens
from relaygate.core.views import ChatView, CompletionView

__all__ = ["DEFAULT_MAX_OUTPUT", "MAX_AGE", "Estimator", "Hold", "Holds"]

DEFAULT_MAX_OUTPUT = 16384
"""Output tokens held for a request that names no cap (LiteLLM's ``DEFAULT_MAX_OUTPUT_TOKENS_FALLBACK``)."""
MAX_AGE = 3600.0
"""Seconds after which a hold nobody released is released by the guard's refresh (a record lost at shutdown)."""
_ROUTES = {"chat": True, "completions": True, "messages": True, "responses": True, "embeddings": False}
"""The routes a request holds on: True, its input and output; False, its input only (embeddings)."""
_CAPPED = frozenset({ChatView, CompletionView})
"""Views that carry the output caps (:func:`caps_of`)."""
_MAX_GROUPS = 4096
_SMALL = 1024
"""A conversation of at most this many bytes is held at one token a byte (more than it has: a few hundred tokens
at most, beside the output's thousands), without the token estimate's scan."""


class Hold:
    """One admitted request's reservation: ``pico`` held on each of ``tallies`` (``limits.Tally.held``)."""

    __slots__ = ("at", "id", "owner", "pico", "tallies")

    def __init__(self, owner: Holds, ident: int, pico: int, tallies: Sequence[Any], at: float) -> None:
        self.owner = owner
        self.id = ident
        self.pico = pico
        self.tallies = tallies
        self.at = at
        for t in tallies:
            t.held += pico

    def release(self) -> None:
        """Nothing held any more (the cost is counted, or the record is gone); a second call does nothing."""
        p = self.pico
        if p:
            for t in self.tallies:
                t.held -= p
            self.pico = 0
        self.owner.live.pop(self.id, None)


class Holds:
    """A worker's holds in flight, by :attr:`Hold.id` (what ``CompletionRecord.hold`` names)."""

    __slots__ = ("live", "next_id")

    def __init__(self) -> None:
        self.live: dict[int, Hold] = {}
        self.next_id = 0

    def take(self, tallies: Sequence[Any], pico: int) -> Hold:
        self.next_id += 1
        h = self.live[self.next_id] = Hold(self, self.next_id, pico, tallies, time.monotonic())
        return h

    def release(self, records: Iterable[Any]) -> None:
        """Release the holds of ``records`` (completed, or dropped by the completion queue)."""
        live = self.live
        for rec in records:
            if rec.hold:
                h = live.get(rec.hold)
                if h is not None:
                    h.release()

    def sweep(self, now: float) -> None:
        """Release the holds older than :data:`MAX_AGE` (requests that never completed)."""
        for h in [h for h in self.live.values() if now - h.at > MAX_AGE]:
            h.release()


_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Caps(msgspec.Struct):
    """The output caps of a request body (a value of another type, or negative: the body names no cap)."""

    max_completion_tokens: _Count | None = None
    max_tokens: _Count | None = None
    max_output_tokens: _Count | None = None
    n: _Count | None = None
    best_of: _Count | None = None


_CAPS = msgspec.json.Decoder(_Caps)


def output_tokens(body: bytes) -> tuple[int | None, int]:
    """(the output tokens the body asks for at most, None when it names no cap; the answers it asks for)."""
    try:
        caps = _CAPS.decode(body)  # (~0.2 us for a small body: as cheap as looking for the names)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, 1
    want = caps.max_completion_tokens
    if want is None:
        want = caps.max_tokens
        if want is None:
            want = caps.max_output_tokens
    if caps.n is None and caps.best_of is None:
        return want, 1
    return want, max(caps.n or 1, caps.best_of or 1)


def caps_of(view: Any) -> tuple[int | None, int]:
    """:func:`output_tokens` of the body a chat or completions view was decoded from, read from the view's own
    fields (``core.views``' ``max_completion_tokens``, ``max_tokens``, ``max_output_tokens``, ``n``, ``best_of``)
    instead of decoding the body a second time; the same answer for every body (a value of another type, or
    negative, makes it name no cap, as there). Each value is tested inline: this runs for every request."""
    most = view.max_completion_tokens
    if most is not None and not (type(most) is int and most >= 0):
        return None, 1
    tokens_ = view.max_tokens
    if tokens_ is not None and not (type(tokens_) is int and tokens_ >= 0):
        return None, 1
    output = view.max_output_tokens
    if output is not None and not (type(output) is int and output >= 0):
        return None, 1
    n = view.n
    if n is not None and not (type(n) is int and n >= 0):
        return None, 1
    best = view.best_of
    if best is not None and not (type(best) is int and best >= 0):
        return None, 1
    want = most if most is not None else tokens_ if tokens_ is not None else output
    if n is None and best is None:
        return want, 1
    return want, max(n or 1, best or 1)


class _Rates:
    """One priced deployment of a group: its table, and its base input and output rates (pico-USD a token)
    with its windows, read once."""

    __slots__ = ("input", "max_in", "max_out", "output", "table", "tiered")

    def __init__(self, table: Any, max_in: int | None, max_out: int) -> None:
        self.table = table
        self.tiered = bool(table.tiers)
        self.input = table.base.input
        self.output = max(table.base.output, table.base.reasoning)
        self.max_in = max_in
        self.max_out = max_out


class Estimator:
    """What a request may cost at most (pico-USD; 0: nothing to hold), from its model group's prices."""

    def __init__(self) -> None:
        self._rates: dict[Any, tuple[Any, tuple[_Rates, ...]]] = {}

    def _group_rates(self, pricer: Any, group: Any) -> tuple[Any, tuple[_Rates, ...]]:
        """(``pricer``, the rates of each priced deployment of ``group``), kept per group."""
        out = []
        for target in group.targets:
            dep = target.dep
            if dep.is_wildcard:
                continue
            table = pricer.peek(dep)
            if not table.known:
                continue
            entry = pricer.catalog.for_deployment(dep)
            max_in = entry.max_input_tokens if entry is not None else None
            max_out = entry.max_output_tokens if entry is not None and entry.max_output_tokens else DEFAULT_MAX_OUTPUT
            out.append(_Rates(table, max_in, max_out))
        rates = self._rates
        if len(rates) >= _MAX_GROUPS:
            rates.clear()
        found = rates[group] = (pricer, tuple(out))
        return found

    def __call__(self, ex: Any) -> int:
        outputs = _ROUTES.get(ex.route)
        if outputs is None:
            return 0
        group = ex.group
        pricer = ex.rt.prices
        got = self._rates.get(group)
        if got is None or got[0] is not pricer:
            if group is None:
                return 0
            got = self._group_rates(pricer, group)
        rates = got[1]
        if not rates:
            return 0
        body = ex.body
        if type(body) is not bytes:
            body = b""
        messages = getattr(ex.view, "messages", None)
        if messages:
            prompt = sum(map(len, messages))
            if prompt <= _SMALL:  # a short conversation: its bytes (a token is a byte or more), no scan
                prompt += 4 * len(messages)
            else:  # the estimate proper, which counts an image as an image, not its bytes
                prompt = tokens.estimate_messages_tokens(b"[" + b",".join([bytes(m) for m in messages]) + b"]")
        else:
            prompt = tokens.estimate_tokens(body) if body else 0
        n_out = many = 0
        if outputs:
            view = ex.view
            if type(view) in _CAPPED:  # the caps decoded with the view: the body is not read again
                want, many = caps_of(view)
            else:
                want, many = output_tokens(body) if body else (None, 1)
            n_out = DEFAULT_MAX_OUTPUT if want is None else want
        most = 0
        for r in rates:
            n_in = prompt if r.max_in is None or prompt <= r.max_in else r.max_in
            out = n_out if n_out <= r.max_out else r.max_out
            if r.tiered:
                p = r.table.rates(n_in)
                cost = n_in * p.input + out * many * max(p.output, p.reasoning)
            else:
                cost = n_in * r.input + out * many * r.output
            if cost > most:
                most = cost
        return most
