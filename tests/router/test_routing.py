"""core.routing and core.ewma: pure decisions over stats structs, no IO, no clock."""

from __future__ import annotations

import random

import pytest

from relaygate.core import ewma, routing
from relaygate.core.errors import (
    BadRequest,
    ContentPolicyViolation,
    ContextWindowExceeded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from relaygate.core.routing import DeploymentStats as S


def group(*stats: S) -> tuple[tuple[S, ...], ...]:
    for i, s in enumerate(stats):
        s.index = i
    return routing.build_tiers(stats)


def draws(strategy: int, tiers, n: int = 4000, *, stream: bool = False, exploration: float = 0.0,
          excluded: int = 0, now: float = 100.0, seed: int = 7) -> dict[int, int]:
    rnd = random.Random(seed).random
    out: dict[int, int] = {}
    for _ in range(n):
        s = routing.choose(strategy, tiers, now, excluded, stream, rnd, exploration)
        k = -1 if s is None else s.index
        out[k] = out.get(k, 0) + 1
    return out


def test_ewma_seeds_then_moves_by_alpha() -> None:
    e = ewma.Ewma(0.5)
    assert e.add(10.0) == 10.0
    assert e.add(20.0) == 15.0
    assert ewma.update(0.0, 0, 3.0, 0.1) == 3.0
    with pytest.raises(ValueError):
        ewma.Ewma(0.0)


def test_tiers_by_order_none_last() -> None:
    a, b, c, d = S(0, "a", order=2), S(0, "b"), S(0, "c", order=1), S(0, "d", order=2)
    tiers = group(a, b, c, d)
    assert [[s.id for s in t] for t in tiers] == [["c"], ["a", "d"], ["b"]]


def test_lower_tier_only_when_higher_unavailable() -> None:
    hi, lo = S(0, "hi", order=1), S(0, "lo", order=2)
    tiers = group(hi, lo)
    assert draws(routing.SHUFFLE, tiers, 50) == {0: 50}
    hi.cooldown_until = 200.0
    assert draws(routing.SHUFFLE, tiers, 50) == {1: 50}
    hi.cooldown_until = 0.0
    hi.limited_until = 150.0  # out of rpm/tpm budget
    assert draws(routing.SHUFFLE, tiers, 50) == {1: 50}
    assert draws(routing.SHUFFLE, tiers, 50, now=151.0) == {0: 50}
    lo.cooldown_until = hi.cooldown_until = 500.0
    assert draws(routing.SHUFFLE, tiers, 5) == {-1: 5}
    assert routing.next_free(tiers, 100.0) == 400.0


def test_excluded_mask_and_max_inflight() -> None:
    a, b = S(0, "a", max_inflight=1), S(0, "b")
    tiers = group(a, b)
    assert draws(routing.LEAST_BUSY, tiers, 20, excluded=1) == {1: 20}
    a.inflight = 1
    assert draws(routing.SHUFFLE, tiers, 20) == {1: 20}


def test_shuffle_follows_weights() -> None:
    tiers = group(S(0, "a", weight=3.0), S(0, "b", weight=1.0))
    got = draws(routing.SHUFFLE, tiers, 8000)
    assert 0.70 < got[0] / 8000 < 0.80
    zero = group(S(0, "a", weight=0.0), S(0, "b", weight=0.0))
    assert set(draws(routing.SHUFFLE, zero, 200)) == {0, 1}


def test_least_busy_and_random_ties() -> None:
    a, b, c = S(0, "a"), S(0, "b"), S(0, "c")
    tiers = group(a, b, c)
    a.inflight, b.inflight, c.inflight = 3, 1, 1
    got = draws(routing.LEAST_BUSY, tiers, 2000)
    assert set(got) == {1, 2} and min(got.values()) > 800


def test_latency_prefers_fast_explores_and_measures_new_first() -> None:
    fast, slow = S(0, "fast"), S(0, "slow")
    tiers = group(fast, slow)
    # never measured: both get tried
    assert set(draws(routing.LATENCY, tiers, 100)) == {0, 1}
    for _ in range(5):
        routing.record_latency(fast, 0.01, 0.2)
    # slow has a first request in flight: don't pile more onto it before it is measured
    slow.inflight = 1
    assert draws(routing.LATENCY, tiers, 100) == {0: 100}
    slow.inflight = 0
    routing.record_latency(slow, 0.5, 0.2)
    got = draws(routing.LATENCY, tiers, 10000, exploration=0.1)
    assert got[0] > 9000 and 300 < got[1] < 700  # 10 % exploration, half of it lands on slow
    # streams rank by time to first token once known
    routing.record_ttft(slow, 0.001, 0.2)
    routing.record_ttft(fast, 0.2, 0.2)
    assert draws(routing.LATENCY, tiers, 100, stream=True) == {1: 100}
    assert draws(routing.LATENCY, tiers, 100, stream=False) == {0: 100}


def test_latency_recovery_is_noticed() -> None:
    a, b = S(0, "a"), S(0, "b")
    tiers = group(a, b)
    routing.record_latency(a, 2.0, 0.3)  # a was slow
    routing.record_latency(b, 0.1, 0.3)
    rnd = random.Random(1).random
    for _ in range(3000):  # a recovered: exploration samples feed its EWMA back down
        s = routing.choose(routing.LATENCY, tiers, 0.0, 0, False, rnd, 0.05)
        assert s is not None
        routing.record_latency(s, 0.05 if s is a else 0.1, 0.3)
    assert a.latency < b.latency
    assert draws(routing.LATENCY, tiers, 100) == {0: 100}


def test_usage_prefers_headroom() -> None:
    a, b, c = S(0, "a", rpm=100), S(0, "b", rpm=10), S(0, "c", tpm=1000)
    tiers = group(a, b, c)
    a.rpm_left, b.rpm_left, c.tpm_left = 20.0, 9.0, 500.0
    assert draws(routing.USAGE, tiers, 50) == {1: 50}  # 90 % left beats 50 % and 20 %
    b.rpm_left = 1.0
    assert draws(routing.USAGE, tiers, 50) == {2: 50}


def test_cost_picks_cheapest_available() -> None:
    a, b = S(0, "a", cost=3e-6), S(0, "b", cost=1e-6)
    tiers = group(a, b)
    assert draws(routing.COST, tiers, 50) == {1: 50}
    b.cooldown_until = 1e9
    assert draws(routing.COST, tiers, 50) == {0: 50}


def test_count_rule_cools_after_allowed_fails_per_minute() -> None:
    s = S(0, "a")
    assert not routing.record_failure(s, 10.0, 2)
    assert not routing.record_failure(s, 11.0, 2)
    assert routing.record_failure(s, 12.0, 2)
    t = S(0, "b")
    routing.record_failure(t, 59.0, 1)
    assert not routing.record_failure(t, 61.0, 1)  # a new minute starts counting afresh
    assert not routing.record_failure(S(0, "c"), 0.0, 100, immediate=True)  # the count rule has no at-once


def test_error_classes_and_cooldown_counting() -> None:
    e429 = UpstreamError("x", status=429, retry_after=2.0)
    assert routing.error_class(e429) == "RateLimitError"
    assert routing.error_class(UpstreamTimeout("t")) == "TimeoutError"
    assert routing.error_class(UpstreamConnectError("c")) == "InternalServerError"
    assert routing.error_class(UpstreamError("x", status=503)) == "InternalServerError"
    assert routing.error_class(UpstreamError("x", status=401)) == "AuthenticationError"
    assert routing.error_class(ContextWindowExceeded("x")) == "ContextWindowExceededError"
    assert routing.error_class(ContentPolicyViolation("x")) == "ContentPolicyViolationError"
    assert routing.error_class(UpstreamError("x", status=400)) == "BadRequestError"
    for exc in (e429, UpstreamTimeout("t"), UpstreamConnectError("c"), UpstreamError("x", status=500),
                UpstreamError("x", status=401), UpstreamError("x", status=408)):
        assert routing.counts_for_cooldown(exc)
    for exc in (UpstreamError("x", status=400), BadRequest("b"), ContextWindowExceeded("x"),
                UpstreamError("x", status=422)):
        assert not routing.counts_for_cooldown(exc)
    for st in (401, 403, 404, 429):
        assert routing.cools_at_once(UpstreamError("x", status=st))
    for exc in (UpstreamError("x", status=500), UpstreamError("x", status=408), UpstreamTimeout("t"),
                UpstreamConnectError("c")):
        assert not routing.cools_at_once(exc)


def test_retries_for_policy() -> None:
    e429 = UpstreamError("x", status=429)
    assert routing.retries_for(e429, 3, {}) == 3
    assert routing.retries_for(e429, 3, {"RateLimitErrorRetries": 0}) == 0
    assert routing.retries_for(UpstreamTimeout("t"), 1, {"TimeoutErrorRetries": 4}) == 4
    assert routing.retries_for(UpstreamError("x", status=400), 3, {}) == 0
    assert routing.retries_for(UpstreamError("x", status=400), 3, {"BadRequestErrorRetries": 1}) == 1
    assert routing.retries_for(ContextWindowExceeded("x"), 3, {}) == 0
    assert routing.retries_for(UpstreamError("x", status=503), 2, {"InternalServerErrorRetries": 5}) == 5
    assert routing.allowed_fails_for(e429, 3, {"RateLimitErrorAllowedFails": 10}) == 10
    assert routing.allowed_fails_for(UpstreamTimeout("t"), 3, {"RateLimitErrorAllowedFails": 10}) == 3


def test_retry_delay() -> None:
    assert routing.retry_delay(0, 5.0, 0.0, True, 0.5) == 0.0  # another healthy deployment: at once
    assert routing.retry_delay(0, 5.0, 0.0, False, 0.5) == 5.0  # upstream Retry-After
    assert routing.retry_delay(0, 500.0, 0.0, False, 0.5) == routing.MAX_RETRY_AFTER  # bounded
    assert routing.retry_delay(0, None, 0.0, False, 0.0) == 0.5
    assert routing.retry_delay(10, None, 0.0, False, 0.0) == routing.MAX_DELAY
    assert routing.retry_delay(1, None, 0.0, False, 1.0) == 0.75  # 25 % jitter
    assert routing.retry_delay(0, None, 3.0, False, 0.0) == 3.0  # router_settings.retry_after minimum
    assert routing.retry_delay(0, None, 3.0, True, 0.0) == 3.0


def test_fallback_table() -> None:
    table = [{"a": ["b", "c"]}, {"*": ["z"]}]
    assert routing.fallback_groups(table, "a") == ["b", "c"]
    assert routing.fallback_groups(table, "q") == ["z"]
    assert routing.fallback_groups([{"a": ["b"]}], "q") is None
