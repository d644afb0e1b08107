"""The router's dealings with the limiter, as plain functions: what a finished or refunded attempt gives
back to its buckets, the ``x-ratelimit-*`` headers of a verdict and LiteLLM's 429 for a key-level limit.

Sans IO: they take buckets, costs and a :class:`~relaygate.core.ratelimit.Verdict` and return deltas,
headers or an error; :mod:`relaygate.router` applies them. :class:`KeyHold` is a cache hit's payment of its
key's buckets (``Router.admit_key``), settled once the hit went out as a lease settles an answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from relaygate.core.errors import GatewayError, KeyLimitExceeded, ModelLimitExceeded
from relaygate.core.ratelimit import Bucket, Verdict

if TYPE_CHECKING:
    from relaygate.limits import Limiter

__all__ = ["KeyHold", "key_limit_error", "ratelimit_headers", "refund", "retry_after_header", "settle"]

_UNLIMITED = 9223372036854775807


def settle(buckets: Sequence[Bucket], costs: Sequence[float], used: int, prompt: int | None = None,
           count: str = "total") -> list[float]:
    """The deltas that settle a reservation of ``costs`` with the answer's usage: ``used`` tokens in all (0:
    unknown, the reservation stands), ``prompt`` of them the input's (None: the split is unknown). Parallel
    slots are given back. ``count`` is LiteLLM's ``general_settings.token_rate_limit_type`` (``total``,
    ``input``, ``output``) for the buckets that are not a deployment's (a deployment's ``tpm`` counts all, as
    LiteLLM's router does): ``input`` counts the prompt (unknown: the reservation, an estimate of it, stands),
    ``output`` the rest (unknown: all of ``used``, a stream's estimate from its content)."""
    keyed = used
    if count != "total":
        if prompt is not None:
            keyed = prompt if count == "input" else used - prompt
        elif count == "input":
            keyed = -1
    deltas = [0.0] * len(buckets)
    for i, b in enumerate(buckets):
        if b.kind == "p":
            deltas[i] = -1.0
        elif b.unit == "tokens" and used > 0:
            if b.scope == "deployment":
                deltas[i] = costs[i] - used
            elif keyed >= 0:
                deltas[i] = costs[i] - keyed
    return deltas


def refund(buckets: Sequence[Bucket], costs: Sequence[float]) -> list[float]:
    """Deltas that undo a reservation of a request that produced nothing (requests stay counted)."""
    deltas = [0.0] * len(buckets)
    for i, b in enumerate(buckets):
        if b.kind == "p":
            deltas[i] = -1.0
        elif b.unit == "tokens":
            deltas[i] = costs[i]
    return deltas


def _duration(seconds: float) -> bytes:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1.0:
        return b"%dms" % (seconds * 1000.0) if seconds > 0.0 else b"0ms"
    if seconds < 60.0:
        return (b"%.1fs" % seconds).replace(b".0s", b"s")
    m = int(seconds // 60.0)
    return b"%dm%ds" % (m, int(seconds - 60.0 * m))


def ratelimit_headers(buckets: Sequence[Bucket], verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` from the tightest bucket of each unit, then
    LiteLLM's v3 limiter's per-descriptor pair of each key, team, user and per-model bucket
    (``x-ratelimit-api_key-limit-requests``, ``x-ratelimit-api_key-remaining-requests`` ...)."""
    rem = verdict.remaining
    req = tok = -1
    named = None
    for i in range(len(buckets)):
        b = buckets[i]
        if b.kind != "t":
            continue
        if b.named is not None:
            r = rem[i]
            if named is None:
                named = []
            named.append((b.named[0], b.limit))
            named.append((b.named[1], b"%d" % r if r >= 0.0 else b"0"))
        if b.unit == "requests":
            if req < 0 or rem[i] < rem[req]:
                req = i
        elif tok < 0 or rem[i] < rem[tok]:
            tok = i
    out = []
    if req >= 0:
        r = rem[req]
        out.append((b"x-ratelimit-limit-requests", buckets[req].limit))
        out.append((b"x-ratelimit-remaining-requests", b"%d" % r if r >= 0.0 else b"0"))
        out.append((b"x-ratelimit-reset-requests", _duration(verdict.reset[req])))
    if tok >= 0:
        r = rem[tok]
        out.append((b"x-ratelimit-limit-tokens", buckets[tok].limit))
        out.append((b"x-ratelimit-remaining-tokens", b"%d" % r if r >= 0.0 else b"0"))
        out.append((b"x-ratelimit-reset-tokens", _duration(verdict.reset[tok])))
    if named is not None:
        out.extend(named)
    return out


def retry_after_header(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", b"%d" % max(1, math.ceil(seconds)))


def key_limit_error(buckets: Sequence[Bucket], verdict: Verdict, fallback: bool = False) -> GatewayError:
    """LiteLLM's parallel-request-limiter 429 for a key/team/user bucket that refused; with ``fallback``, a
    per-model bucket's is a :class:`ModelLimitExceeded`, which the router's fallbacks may answer."""
    failed = buckets[verdict.fail]
    scope = failed.scope
    cur = {"requests": 0, "tokens": 0, "parallel": 0}
    lim = {"requests": _UNLIMITED, "tokens": _UNLIMITED, "parallel": _UNLIMITED}
    for i, b in enumerate(buckets):
        if b.scope != scope:
            continue
        cap = int(b.capacity)
        lim[b.unit] = cap
        cur[b.unit] = max(0, cap - math.floor(verdict.remaining[i]))
    msg = (f"LiteLLM Rate Limit Handler for rate limit type = {scope}. Crossed TPM / RPM / Max Parallel "
           f"Request Limit. current rpm: {int(cur['requests'])}, rpm limit: {int(lim['requests'])}, "
           f"current tpm: {int(cur['tokens'])}, tpm limit: {int(lim['tokens'])}, current max_parallel_requests: "
           f"{int(cur['parallel'])}, max_parallel_requests: {int(lim['parallel'])}")
    headers = [retry_after_header(verdict.reset[verdict.fail]), *ratelimit_headers(buckets, verdict)]
    kind = ModelLimitExceeded if fallback and failed.model else KeyLimitExceeded
    return kind(msg, type="None", param="None", code="429", headers=headers)


class KeyHold:
    """What a cache hit paid of its key's (team's, user's) limits: the verdict's ``x-ratelimit-*`` headers,
    and :meth:`finish` to settle the buckets once the hit was sent."""

    __slots__ = ("headers", "_limiter", "_buckets", "_costs", "_count")

    def __init__(self, limiter: Limiter, buckets: tuple[Bucket, ...], costs: tuple[float, ...],
                 headers: list[tuple[bytes, bytes]], count: str = "total") -> None:
        self.headers = headers
        self._limiter = limiter
        self._buckets = buckets
        self._costs = costs
        self._count = count

    def finish(self, used: int, prompt: int | None = None) -> None:
        """Give the parallel slot back and settle the token reservation with the hit's usage (``used``
        tokens, ``prompt`` of them the input's; 0: unknown, the reservation stands), as ``Lease.finish``
        settles a routed answer. Call once."""
        self._limiter.adjust(self._buckets, settle(self._buckets, self._costs, used, prompt, self._count))
