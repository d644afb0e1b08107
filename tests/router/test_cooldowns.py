"""Cooldown rules as LiteLLM's (``router_utils/cooldown_handlers.py``): the failure share over a minimum
volume, the statuses that cool at once, the count rule of ``allowed_fails`` / ``allowed_fails_policy``,
how long (deployment ``cooldown_time`` > ``Retry-After`` > router ``cooldown_time``), and the solo rule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from relaygate.config import from_litellm
from relaygate.config.loader import validate
from relaygate.core import routing
from relaygate.core.errors import GatewayError, UpstreamConnectError, UpstreamError, UpstreamTimeout
from relaygate.core.routing import DeploymentStats as S
from relaygate.router import Router
from tests.router.test_router import Script, dep, e500, make, run

T0 = 6000.0  # the start of a counting window


def clocked(r: Router, t: float = T0 + 1.0) -> list[float]:
    now = [t]
    r.clock = lambda: now[0]
    return now


def stats(r: Router, dep_id: str) -> S:
    return r.by_id[dep_id][0]


# ------------------------------------------------------------------------------------------ pure rules


def test_share_rule_needs_the_minimum_volume() -> None:
    s = S(0, "a")
    for i in range(routing.SHARE_MIN_REQUESTS - 1):
        assert not routing.record_failure(s, T0 + i, None), i  # 100 % failures, but fewer than 5 requests
    assert routing.record_failure(s, T0 + 10, None)  # 5 of 5


def test_share_rule_counts_successes_and_needs_more_than_half() -> None:
    s = S(0, "a")
    for _ in range(6):
        routing.record_success(s, T0)
    for i in range(6):
        assert not routing.record_failure(s, T0 + 1, None), i  # at most 6 of 12: not more than half
    assert routing.record_failure(s, T0 + 2, None)  # 7 of 13
    t = S(0, "b")
    routing.record_success(t, T0)
    routing.record_success(t, T0)
    assert not routing.record_failure(t, T0, None)
    assert not routing.record_failure(t, T0, None)  # 2 of 4: below the volume and not more than half
    assert routing.record_failure(t, T0, None)  # 3 of 5


def test_share_window_is_the_current_minute() -> None:
    s = S(0, "a")
    for _ in range(4):
        routing.record_failure(s, T0 + 50, None)
    assert not routing.record_failure(s, T0 + 61, None)  # a new window: 1 of 1
    assert (s.fails, s.window_end) == (1, T0 + 120)
    for _ in range(20):
        routing.record_success(s, T0 + 130)  # another window: the failure above no longer counts
    assert (s.fails, s.successes) == (0, 20)
    for i in range(20):
        assert not routing.record_failure(s, T0 + 131, None), i
    assert routing.record_failure(s, T0 + 131, None)


def test_immediate_only_under_the_share_rule() -> None:
    assert routing.record_failure(S(0, "a"), T0, None, immediate=True)
    assert not routing.record_failure(S(0, "b"), T0, 3, immediate=True)  # the count rule only counts


def test_which_rule() -> None:
    e = UpstreamError("x", status=500)
    assert routing.allowed_fails_for(e, routing.DEFAULT_ALLOWED_FAILS, {}) is None  # share rule
    assert routing.allowed_fails_for(e, 0, {}) == 0
    assert routing.allowed_fails_for(e, 5, {}) == 5
    policy = {"TimeoutErrorAllowedFails": 0}
    assert routing.allowed_fails_for(UpstreamTimeout("t"), 3, policy) == 0  # 0 means 0 (LiteLLM: `or` -> 3)
    assert routing.allowed_fails_for(e, 3, policy) == 3  # a policy switches every class to the count rule


def test_cooldown_seconds_precedence() -> None:
    assert routing.cooldown_seconds(2.0, 17.0, 60.0) == 2.0  # the deployment's own wins
    assert routing.cooldown_seconds(0.0, 17.0, 60.0) == 0.0  # ... even 0: never cooled
    assert routing.cooldown_seconds(-1.0, 17.0, 60.0) == 17.0  # (negative: refused by validate(), else unset)
    assert routing.cooldown_seconds(None, 17.0, 60.0) == 17.0  # then Retry-After
    assert routing.cooldown_seconds(None, 0.0, 60.0) == 0.0  # Retry-After: 0 -> no cooldown
    assert routing.cooldown_seconds(None, 500.0, 60.0) == routing.MAX_RETRY_AFTER  # bounded
    assert routing.cooldown_seconds(None, math.inf, 60.0) == routing.MAX_RETRY_AFTER
    assert routing.cooldown_seconds(None, None, 60.0) == 60.0  # then the router's


def test_cool_never_shortens() -> None:
    s = S(0, "a")
    routing.cool(s, T0, 30.0)
    routing.cool(s, T0 + 1, 2.0)
    assert s.cooldown_until == T0 + 30.0


# ------------------------------------------------------------------------------------------ the router


def two(**router_settings: Any) -> Router:
    """x1 first (order 1), x2 takes the retries (order 2)."""
    return make([dep("g", "x1", order=1, **router_settings.pop("x1", {})), dep("g", "x2", order=2)],
                num_retries=1, **router_settings)


def test_5xx_cools_only_when_the_share_says_so() -> None:
    r = two(cooldown_time=30)
    now = clocked(r)
    x1 = stats(r, "x1")
    for _ in range(6):
        assert run(r, "g", Script())[0] == "x1"  # successes are counted (one increment each)
    assert x1.successes == 6
    for i in range(6):
        assert run(r, "g", Script({"x1": e500}))[0] == "x2"  # retried on x2
        assert x1.cooldown_until == 0.0, i  # at most 6 failures of 12
    assert run(r, "g", Script({"x1": e500}))[0] == "x2"  # 7 of 13
    assert x1.cooldown_until == now[0] + 30
    script = Script()
    assert run(r, "g", script)[0] == "x2" and script.calls == ["x2"]  # x1 is out


def test_5xx_below_the_minimum_volume_never_cools() -> None:
    r = two(cooldown_time=30)
    clocked(r)
    for exc in (e500(), UpstreamTimeout("t"), UpstreamConnectError("c"), UpstreamError("x", status=408)):
        run(r, "g", Script({"x1": exc}))
    assert stats(r, "x1").cooldown_until == 0.0 and stats(r, "x1").fails == 4
    run(r, "g", Script({"x1": UpstreamError("bad", status=503)}))
    assert stats(r, "x1").cooldown_until > 0.0  # 5 of 5


@pytest.mark.parametrize("status", [429, 401, 403, 404])
def test_statuses_that_cool_at_once(status: int) -> None:
    r = two(cooldown_time=30)
    now = clocked(r)
    if status == 404:  # not retried (LiteLLM's retry rules), but x1 is out for the next request
        with pytest.raises(UpstreamError):
            run(r, "g", Script({"x1": UpstreamError("x", status=status)}))
    else:
        assert run(r, "g", Script({"x1": UpstreamError("x", status=status)}))[0] == "x2"
    assert stats(r, "x1").cooldown_until == now[0] + 30


def test_client_errors_do_not_count() -> None:
    r = two(cooldown_time=30)
    clocked(r)
    for _ in range(10):
        with pytest.raises(GatewayError):
            run(r, "g", Script({"x1": UpstreamError("bad", status=400)}))
    assert (stats(r, "x1").fails, stats(r, "x1").cooldown_until) == (0, 0.0)


def test_retry_after_sets_and_bounds_the_cooldown() -> None:
    r = two(cooldown_time=5)
    now = clocked(r)
    run(r, "g", Script({"x1": UpstreamError("rate limited", status=429, retry_after=17.0)}))
    assert stats(r, "x1").cooldown_until == now[0] + 17.0
    r = two(cooldown_time=5)
    now = clocked(r)
    run(r, "g", Script({"x1": UpstreamError("rate limited", status=429, retry_after=3600.0)}))
    assert stats(r, "x1").cooldown_until == now[0] + routing.MAX_RETRY_AFTER
    r = two(cooldown_time=5)
    now = clocked(r)
    run(r, "g", Script({"x1": UpstreamError("rate limited", status=429, retry_after=0.0)}))
    assert stats(r, "x1").cooldown_until == 0.0  # "retry now"
    r = two(cooldown_time=5, allowed_fails=0)  # any status's Retry-After, once a rule cools
    now = clocked(r)
    run(r, "g", Script({"x1": UpstreamError("down", status=503, retry_after=9.0)}))
    assert stats(r, "x1").cooldown_until == now[0] + 9.0


def test_deployment_cooldown_time_wins() -> None:
    r = two(cooldown_time=60, x1={"cooldown_time": 2})
    now = clocked(r)
    assert r.groups["g"].targets[0].dep.cooldown_time == 2.0
    assert "cooldown_time" not in r.groups["g"].targets[0].dep.extra  # never sent upstream
    run(r, "g", Script({"x1": UpstreamError("rate limited", status=429, retry_after=17.0)}))
    assert stats(r, "x1").cooldown_until == now[0] + 2.0  # over Retry-After and the router's
    now[0] += 2.5
    assert run(r, "g", Script())[0] == "x1"  # back
    r = two(cooldown_time=60, x1={"cooldown_time": 0})
    clocked(r)
    for _ in range(8):
        run(r, "g", Script({"x1": UpstreamError("bad key", status=401)}))
    assert stats(r, "x1").cooldown_until == 0.0  # 0: this deployment is never cooled down


def test_count_rule_when_allowed_fails_or_policy_is_set() -> None:
    r = two(allowed_fails=1, cooldown_time=30)
    clocked(r)
    run(r, "g", Script({"x1": UpstreamError("rl", status=429)}))
    assert stats(r, "x1").cooldown_until == 0.0  # no at-once statuses: 1 failure allowed
    run(r, "g", Script({"x1": e500}))
    assert stats(r, "x1").cooldown_until > 0.0
    r = two(allowed_fails_policy={"RateLimitErrorAllowedFails": 2}, cooldown_time=30)
    clocked(r)
    for _ in range(2):
        run(r, "g", Script({"x1": UpstreamError("rl", status=429)}))
    assert stats(r, "x1").cooldown_until == 0.0
    run(r, "g", Script({"x1": UpstreamError("rl", status=429)}))
    assert stats(r, "x1").cooldown_until > 0.0


def test_solo_deployment_is_never_cooled_under_any_rule() -> None:
    for settings in ({}, {"allowed_fails": 0}):
        r = make([dep("g", "only")], cooldown_time=60, **settings)
        clocked(r)
        for exc in [UpstreamError("x", status=s) for s in (429, 401, 404)] + [e500() for _ in range(10)]:
            with pytest.raises(GatewayError):
                run(r, "g", Script({"only": exc}))
        assert stats(r, "only").cooldown_until == 0.0
        assert run(r, "g", Script())[0] == "only"


def test_reload_follows_the_new_cooldown_time() -> None:
    old = two(x1={"cooldown_time": 2})
    cfg = from_litellm({"model_list": [dep("g", "x1", order=1, cooldown_time=7), dep("g", "x2", order=2)]}, "<t>")
    new = Router(cfg, previous=old)
    assert stats(new, "x1") is stats(old, "x1") and stats(new, "x1").cooldown_time == 7.0


@pytest.mark.parametrize(("value", "ok"), [(0, True), (2.5, True), (-1, False), ("inf", False), ("nan", False)])
def test_validate_cooldown_time(value: Any, ok: bool) -> None:
    cfg = from_litellm({"model_list": [dep("g", "x1", cooldown_time=value)]}, "<test>")
    errors = validate(cfg)
    assert (not errors) is ok, errors
    if not ok:
        assert errors == ["model_list[0].litellm_params.cooldown_time: expected a number of seconds >= 0"]
