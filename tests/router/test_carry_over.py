"""Config reload: a router built with ``previous=`` takes over the old one's per-deployment state by id."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from relaygate.config import from_litellm
from relaygate.core.errors import GatewayError, RateLimited
from relaygate.limits import Limiter
from relaygate.limits.redis import RedisLimiter
from relaygate.route_context import RouteContext
from relaygate.router import Router, Target


def dep(name: str, id: str | None, **params: Any) -> dict[str, Any]:
    info = params.pop("model_info", {})
    if id is not None:
        info = {"id": id, **info}
    return {"model_name": name, "litellm_params": {"model": f"openai/{id or name}",
                                                   "api_base": "http://127.0.0.1:9/v1", **params},
            "model_info": info}


def make(deps: list[dict[str, Any]], previous: Router | None = None, metrics: Any = None,
         **router_settings: Any) -> Router:
    cfg = from_litellm({"model_list": deps, "router_settings": router_settings}, "<test>")
    return Router(cfg, random.Random(1), previous=previous, metrics=metrics)


def stats(router: Router, dep_id: str) -> Any:
    (st,) = router.by_id[dep_id]
    return st


async def ok(target: Target) -> str:
    return target.dep.id


def test_ewma_cooldown_and_inflight_survive_by_id() -> None:
    old = make([dep("g", "a"), dep("g", "b")])
    a = stats(old, "a")
    a.latency, a.latency_n, a.ttft, a.ttft_n = 0.25, 7, 0.1, 3
    a.cooldown_until = old.clock() + 60
    a.fails, a.window_end = 2, 300.0
    a.inflight = 4
    new = make([dep("g", "c", order=1), dep("g", "a", rpm=600, order=2, max_parallel_requests=9,
                                        model_info={"input_cost_per_token": 0.5})], previous=old)
    assert stats(new, "a") is a  # the same object, not a copy
    assert (a.latency, a.latency_n, a.ttft, a.ttft_n, a.fails, a.window_end, a.inflight) == (0.25, 7, 0.1, 3, 2, 300.0, 4)
    assert a.cooldown_until > new.clock()
    # config-derived fields follow the new deployment
    assert (a.order, a.max_inflight, a.rpm, a.rpm_left, a.cost) == (2, 9, 600, 600.0, 0.5)
    group = new.groups["g"]
    assert a.index == 1 and group.targets[1].stats is a
    assert [[s.id for s in tier] for tier in group.tiers] == [["c"], ["a"]]  # tiers rebuilt from the new orders


def test_new_id_starts_fresh_and_removed_id_is_gone() -> None:
    old = make([dep("g", None, api_key="k1"), dep("g", "b")])
    (old_id,) = [i for i in old.by_id if i != "b"]
    stats(old, old_id).latency = 1.0
    stats(old, "b").latency = 2.0
    # a changed deployment without an explicit id gets a new id (a hash of its params): fresh stats
    new = make([dep("g", None, api_key="k2"), dep("h", "x")], previous=old)
    (new_id,) = [i for i in new.by_id if i != "x"]
    assert new_id != old_id
    assert stats(new, new_id).latency == 0.0 and stats(new, new_id) is not stats(old, old_id)
    assert "b" not in new.by_id and old_id not in new.by_id
    assert stats(new, "x").latency == 0.0


def test_lease_from_old_router_finished_after_swap_releases_the_shared_slot() -> None:
    old = make([dep("g", "a", max_parallel_requests=1, order=1), dep("g", "b", order=2)])

    async def main() -> None:
        _, lease = await old.run(old.resolve("g"), RouteContext(), ok)
        assert lease.target.dep.id == "a"
        new = make([dep("g", "a", max_parallel_requests=1, order=1), dep("g", "b", order=2)], previous=old)
        a = stats(new, "a")
        assert a.inflight == 1
        # the slot the old router's request holds counts on the new router: `a` is full, `b` serves
        result, lease2 = await new.run(new.resolve("g"), RouteContext(), ok)
        assert result == "b"
        lease2.finish(True)
        lease.finish(True)  # the old router's lease, finished after the swap
        assert a.inflight == 0
        result, lease3 = await new.run(new.resolve("g"), RouteContext(), ok)
        assert result == "a"
        lease3.finish(True)

    asyncio.run(main())


def test_old_router_still_serves_after_its_stats_were_renumbered() -> None:
    old = make([dep("g", "a")], num_retries=1)
    new = make([dep("g", "x"), dep("g", "y"), dep("g", "a")], previous=old)
    a = stats(new, "a")
    assert a.index == 2 and stats(old, "a") is a
    assert old.groups["g"].target_of(a) is old.groups["g"].targets[0]
    calls: list[str] = []

    async def flaky(target: Target) -> str:
        calls.append(target.dep.id)
        if len(calls) == 1:
            raise GatewayError("boom", status=500)
        return target.dep.id

    async def main() -> str:  # a retry in flight on the old router: its group has one target, index 0
        result, lease = await old.run(old.resolve("g"), RouteContext(), flaky)
        lease.finish(True)
        return result

    assert asyncio.run(main()) == "a" and calls == ["a", "a"]


def test_wildcard_stats_carry_over_when_the_group_is_next_used() -> None:
    old = make([dep("*", "wild", model="openai/*")])
    st = old.resolve("foo").targets[0].stats
    st.latency = 0.5
    mid = make([dep("*", "wild", model="openai/*")], previous=old)  # never asked for foo
    new = make([dep("*", "wild", model="openai/*")], previous=mid)
    assert new.resolve("foo").targets[0].stats is st
    assert new.resolve("bar").targets[0].stats is not st
    gone = make([dep("g", "a")], previous=new)
    assert not gone._carry.by_key and not gone._carry.by_id


def test_limiter_reused_when_its_settings_are_unchanged() -> None:
    old = make([dep("g", "a", rpm=10)], redis_host="127.0.0.1", redis_port=1, num_retries=1)
    new = make([dep("g", "a", rpm=20)], previous=old, redis_host="127.0.0.1", redis_port=1, num_retries=3)
    assert new.limiter is old.limiter and new.retired_limiter is None
    # the shared-cooldown callback now points at the new router (replaced, not added)
    assert isinstance(new.limiter, RedisLimiter) and new.limiter._sink == new._remote_cooldowns
    local = make([dep("g", "a")])
    assert make([dep("g", "a")], previous=local).limiter is local.limiter


class ClosingLimiter(Limiter):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        self.sinks: list[Any] = []

    async def aclose(self) -> None:
        self.closed += 1

    def on_cooldowns(self, sink: Any) -> None:
        self.sinks.append(sink)


def test_limiter_replaced_when_its_settings_change_and_the_old_one_is_closed_by_the_caller() -> None:
    cfg = from_litellm({"model_list": [dep("g", "a", rpm=1)]}, "<test>")
    first = ClosingLimiter()
    old = Router(cfg, limiter=first)
    new = make([dep("g", "a", rpm=1)], previous=old, redis_host="127.0.0.1", redis_port=1)
    assert new.limiter is not first and new.retired_limiter is first
    other_metrics = make([dep("g", "a")], previous=make([dep("g", "a")]), metrics=object())
    assert other_metrics.retired_limiter is not None  # a new metrics object: a new limiter reports to it

    async def main() -> None:
        # a request admitted by the old limiter, still running across the swap, gives its budget back there
        _, lease = await old.run(old.resolve("g"), RouteContext(), ok)
        newer = Router(cfg, previous=old, limiter=ClosingLimiter())
        assert newer.retired_limiter is first
        lease.finish(True)
        await newer.close_retired()
        await newer.close_retired()  # once only
        assert first.closed == 1 and newer.retired_limiter is None

    asyncio.run(main())


def test_limiter_change_drops_out_of_budget_marks_but_keeps_cooldowns() -> None:
    old = make([dep("g", "a", rpm=1), dep("g", "b")])
    a = stats(old, "a")
    a.limited_until = a.cooldown_until = old.clock() + 60
    same = make([dep("g", "a", rpm=1), dep("g", "b")], previous=old)
    assert a.limited_until > 0  # same limiter, same limit: its bucket is still empty
    moved = make([dep("g", "a", rpm=1), dep("g", "b")], previous=same, redis_host="127.0.0.1", redis_port=1)
    assert stats(moved, "a") is a and a.limited_until == 0.0 and a.cooldown_until > moved.clock()


def test_no_deployment_left_is_a_429_not_a_crash() -> None:
    old = make([dep("g", "a", max_parallel_requests=1)])

    async def main() -> None:
        _, lease = await old.run(old.resolve("g"), RouteContext(), ok)
        new = make([dep("g", "a", max_parallel_requests=1)], previous=old)
        try:
            await new.run(new.resolve("g"), RouteContext(), ok)
        except RateLimited as exc:
            assert exc.status == 429
        else:
            raise AssertionError("the slot held on the old router was not counted")
        lease.finish(True)

    asyncio.run(main())


def test_default_max_parallel_requests_bounds_deployments_that_set_none() -> None:
    """LiteLLM's ``router_settings.default_max_parallel_requests``; a deployment's own value wins."""
    r = make([dep("g", "a"), dep("g", "b", max_parallel_requests=7)], default_max_parallel_requests=3)
    assert stats(r, "a").max_inflight == 3 and stats(r, "b").max_inflight == 7
    assert stats(make([dep("g", "a")]), "a").max_inflight == 0  # unset: no bound
    again = make([dep("g", "a")], previous=r, default_max_parallel_requests=3)
    assert stats(again, "a").max_inflight == 3  # a reload keeps it
