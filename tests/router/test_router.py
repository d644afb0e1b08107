"""The router in-process: retries, fallbacks, cooldowns, limits and leases, with scripted attempt functions."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable

import pytest

from relaygate.auth import Authenticator
from relaygate.config import from_litellm
from relaygate.core.errors import BadRequest, ContextWindowExceeded, GatewayError, UpstreamError, UpstreamTimeout
from relaygate.route_context import RouteContext
from relaygate.router import Router, Target


def dep(name: str, id: str, **params: Any) -> dict[str, Any]:
    info = {"id": id, **params.pop("model_info", {})}
    return {"model_name": name, "litellm_params": {"model": f"openai/{id}", "api_base": "http://127.0.0.1:9/v1",
                                                   **params}, "model_info": info}


def make(deps: list[dict[str, Any]], seed: int = 3, **router_settings: Any) -> Router:
    cfg = from_litellm({"model_list": deps, "router_settings": router_settings}, "<test>")
    return Router(cfg, random.Random(seed))


class Script:
    """An attempt function: per deployment id, an error to raise (or None) ; records the calls."""

    def __init__(self, fail: dict[str, GatewayError | Callable[[], GatewayError]] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []

    async def __call__(self, target: Target) -> str:
        self.calls.append(target.dep.id)
        err = self.fail.get(target.dep.id)
        if err is not None:
            raise err() if callable(err) else err
        return target.dep.id


def run(router: Router, model: str, script: Script, **ctx: Any) -> tuple[str, RouteContext, Any]:
    c = RouteContext(**ctx)

    async def main() -> tuple[str, Any]:
        return await router.run(router.resolve(model), c, script)

    result, lease = asyncio.run(main())
    lease.finish(True, 0)
    return result, c, lease


def e500() -> GatewayError:
    return UpstreamError("litellm.InternalServerError: boom", status=500)


def test_failover_to_healthy_deployment_then_cooldown() -> None:
    r = make([dep("g", "bad"), dep("g", "good")], num_retries=2, allowed_fails=1, cooldown_time=60)
    script = Script({"bad": e500})
    results = [run(r, "g", script)[0] for _ in range(30)]
    assert results == ["good"] * 30
    assert script.calls.count("bad") == 2  # allowed_fails=1: the second failure cools it down
    bad = r.groups["g"].targets[0].stats
    assert bad.cooldown_until > r.clock()
    assert all(t.stats.inflight == 0 for t in r.groups["g"].targets)


def test_retry_counter_and_no_retry_without_num_retries() -> None:
    r = make([dep("g", "bad"), dep("g", "good")], num_retries=0)
    script = Script({"bad": e500})
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(run(r, "g", script)[0])
        except GatewayError as exc:
            outcomes.append(exc.status)
    assert 500 in outcomes and "good" in outcomes
    r = make([dep("g", "bad"), dep("g", "good")], num_retries=3)
    for _ in range(10):
        _, ctx, _ = run(r, "g", Script({"bad": e500}))
    r2 = make([dep("g", "bad"), dep("g", "good")], seed=1, num_retries=3)
    seen = set()
    for _ in range(10):
        _, ctx, _ = run(r2, "g", Script({"bad": e500}))
        seen.add(ctx.attempted_retries)
    assert seen <= {0, 1} and 1 in seen


def test_per_request_num_retries_only_lowers_the_policy() -> None:
    r = make([dep("g", "a")], num_retries=3, retry_after=0)
    n = {"left": 1}

    def flaky() -> GatewayError | None:
        return None

    calls: list[str] = []

    async def attempt(t: Target) -> str:
        calls.append(t.dep.id)
        if n["left"]:
            n["left"] -= 1
            raise UpstreamTimeout("timed out")
        return "ok"

    async def main() -> tuple[str, RouteContext]:
        c = RouteContext(num_retries=1)
        res, lease = await r.run(r.resolve("g"), c, attempt)
        lease.finish(True)
        return res, c

    r.groups["g"].targets[0].stats  # noqa: B018
    import relaygate.core.routing as routing

    orig = routing.retry_delay
    routing.retry_delay = lambda *a, **k: 0.0  # type: ignore[assignment]
    try:
        res, c = asyncio.run(main())
        assert res == "ok" and c.attempted_retries == 1 and calls == ["a", "a"]
        # a client asking for more retries than the operator configured gets the operator's number
        r0 = make([dep("g", "a")], num_retries=0, retry_after=0)
        n["left"] = 1
        calls.clear()

        async def more() -> None:
            await r0.run(r0.resolve("g"), RouteContext(num_retries=5), attempt)

        with pytest.raises(UpstreamTimeout):
            asyncio.run(more())
        assert calls == ["a"]
    finally:
        routing.retry_delay = orig  # type: ignore[assignment]


def test_fallback_group_and_headers_counters() -> None:
    r = make([dep("primary", "p1"), dep("backup", "b1")], num_retries=0,
             fallbacks=[{"primary": ["backup"]}])
    result, ctx, lease = run(r, "primary", Script({"p1": e500}))
    assert result == "b1" and ctx.attempted_fallbacks == 1
    assert lease.target.dep.model_name == "backup"


def test_star_and_default_and_request_fallbacks() -> None:
    deps = [dep("a", "a1"), dep("b", "b1"), dep("c", "c1")]
    r = make(deps, fallbacks=[{"*": ["b"]}])
    assert run(r, "a", Script({"a1": e500}))[0] == "b1"
    r = make(deps, default_fallbacks=["c"])
    assert run(r, "a", Script({"a1": e500}))[0] == "c1"
    r = make(deps, fallbacks=[{"a": ["b"]}])
    assert run(r, "a", Script({"a1": e500}), fallbacks=["c"])[0] == "c1"
    r = make(deps, fallbacks=[{"a": ["b", "c"]}], max_fallbacks=1)
    with pytest.raises(GatewayError) as ei:
        run(r, "a", Script({"a1": e500, "b1": e500}))
    assert "Available Model Group Fallbacks=['b', 'c']" in ei.value.message


@pytest.mark.parametrize("enforce", [None, True, False])
def test_enforce_fallback_model_access(enforce: bool | None) -> None:
    """A configured fallback the key may not call is passed over (LiteLLM's ``enforce_fallback_model_access``,
    on by default); with it false the router tries it whatever the key's models."""
    general: dict[str, Any] = {"master_key": "sk-master"}
    if enforce is not None:
        general["enforce_fallback_model_access"] = enforce
    cfg = from_litellm({"model_list": [dep("a", "a1"), dep("b", "b1"), dep("c", "c1")], "general_settings": general,
                        "router_settings": {"fallbacks": [{"a": ["b", "c"]}]},
                        "relaygate_keys": [{"key": "sk-user", "models": ["a", "c"]}]}, "<test>")
    r, auth = Router(cfg, random.Random(1)), Authenticator(cfg)
    key = auth.authenticate([(b"authorization", b"Bearer sk-user")])
    script = Script({"a1": e500})
    assert run(r, "a", script, key=key)[0] == ("b1" if enforce is False else "c1")
    assert ("b1" in script.calls) is (enforce is False)


def test_context_window_goes_to_its_fallbacks_only() -> None:
    deps = [dep("small", "s1"), dep("big", "b1"), dep("other", "o1")]
    cw = ContextWindowExceeded("litellm.ContextWindowExceededError: too long")
    r = make(deps, num_retries=3, context_window_fallbacks=[{"small": ["big"]}], fallbacks=[{"small": ["other"]}])
    script = Script({"s1": cw})
    assert run(r, "small", script)[0] == "b1"
    assert script.calls == ["s1", "b1"]  # no retry of the context-window error
    r = make(deps, num_retries=3, fallbacks=[{"small": ["other"]}])
    with pytest.raises(ContextWindowExceeded):
        run(r, "small", Script({"s1": cw}))


def test_client_errors_not_retried_nor_fallen_back() -> None:
    r = make([dep("a", "a1"), dep("a", "a2"), dep("b", "b1")], num_retries=3, fallbacks=[{"a": ["b"]}])
    script = Script({"a1": UpstreamError("bad", status=400), "a2": UpstreamError("bad", status=400)})
    with pytest.raises(UpstreamError):
        run(r, "a", script)
    assert len(script.calls) == 1
    assert all(t.stats.cooldown_until == 0 for t in r.groups["a"].targets)


def test_all_cooled_down_gives_litellm_429() -> None:
    r = make([dep("g", "x1"), dep("g", "x2")], num_retries=1, allowed_fails=0, cooldown_time=30)
    with pytest.raises(GatewayError):
        run(r, "g", Script({"x1": e500, "x2": e500}))
    with pytest.raises(GatewayError) as ei:
        run(r, "g", Script())
    exc = ei.value
    assert exc.status == 429
    assert exc.message.startswith("No deployments available for selected model, Try again in 30 seconds. "
                                  "Passed model=g. pre-call-checks=False, cooldown_list=")
    assert (b"retry-after", b"30") in exc.headers


def test_cooled_down_group_fails_over_to_fallbacks() -> None:
    r = make([dep("g", "x1"), dep("h", "y1")], allowed_fails=0, cooldown_time=30, fallbacks=[{"g": ["h"]}])
    assert run(r, "g", Script({"x1": e500}))[0] == "y1"
    script = Script()
    result, ctx, _ = run(r, "g", script)
    assert result == "y1" and script.calls == ["y1"] and ctx.attempted_fallbacks == 1


def test_upstream_429_retry_after_sets_cooldown() -> None:
    r = make([dep("g", "x1"), dep("g", "x2")], num_retries=1, allowed_fails=0, cooldown_time=5)
    err = UpstreamError("rate limited", status=429, retry_after=17.0)
    run(r, "g", Script({"x1": err}))
    st = r.groups["g"].targets[0].stats
    if st.fails:
        assert st.cooldown_until - r.clock() > 16.0


def test_order_tiers_in_router() -> None:
    r = make([dep("g", "primary", order=1), dep("g", "secondary", order=2)], num_retries=1, allowed_fails=0)
    assert {run(r, "g", Script())[0] for _ in range(20)} == {"primary"}
    assert run(r, "g", Script({"primary": e500}))[0] == "secondary"
    assert {run(r, "g", Script())[0] for _ in range(5)} == {"secondary"}  # primary cooled down


def test_deployment_rpm_skips_then_429_with_headers() -> None:
    r = make([dep("g", "d1", rpm=2), dep("g", "d2", rpm=3)])
    got = []
    leases = []
    for _ in range(5):
        res, _, lease = run(r, "g", Script())
        got.append(res)
        leases.append(lease)
    assert sorted(got) == ["d1", "d1", "d2", "d2", "d2"]
    assert dict(leases[0].headers)[b"x-ratelimit-limit-requests"] in (b"2", b"3")
    with pytest.raises(GatewayError) as ei:
        run(r, "g", Script())
    assert ei.value.status == 429 and "No deployments available" in ei.value.message
    assert dict(ei.value.headers)[b"retry-after"] in (b"20", b"21", b"30", b"31")


def key_router(**kc: Any) -> tuple[Router, Authenticator]:
    cfg = from_litellm({"model_list": [dep("g", "d1")], "general_settings": {"master_key": "sk-master"},
                        "relaygate_keys": [{"key": "sk-user", "models": ["g"], **kc}]}, "<test>")
    return Router(cfg, random.Random(1)), Authenticator(cfg)


def test_key_rpm_limit_wording_and_headers() -> None:
    r, auth = key_router(rpm_limit=2)
    key = auth.authenticate([(b"authorization", b"Bearer sk-user")])
    assert key is not None
    for _ in range(2):
        _, _, lease = run(r, "g", Script(), key=key)
        assert dict(lease.headers)[b"x-ratelimit-limit-requests"] == b"2"
    with pytest.raises(GatewayError) as ei:
        run(r, "g", Script(), key=key)
    exc = ei.value
    assert exc.status == 429 and exc.type == "None"
    assert exc.message.startswith("LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / RPM / "
                                  "Max Parallel Request Limit. current rpm: 2, rpm limit: 2")
    h = dict(exc.headers)
    assert h[b"x-ratelimit-remaining-requests"] == b"0" and int(h[b"retry-after"]) >= 1
    # the master key is not limited
    assert run(r, "g", Script(), key=None)[0] == "d1"


def test_key_parallel_slot_released_by_lease_and_on_failure() -> None:
    r, auth = key_router(max_parallel_requests=1)
    key = auth.authenticate([(b"x-api-key", b"sk-user")])

    async def main() -> list[Any]:
        out: list[Any] = []
        c1 = RouteContext(key=key)
        _, lease = await r.run(r.resolve("g"), c1, Script())
        try:
            await r.run(r.resolve("g"), RouteContext(key=key), Script())
        except GatewayError as exc:
            out.append(exc.status)
        lease.finish(True)
        _, lease2 = await r.run(r.resolve("g"), RouteContext(key=key), Script())
        lease2.finish(True)
        try:
            await r.run(r.resolve("g"), RouteContext(key=key), Script({"d1": UpstreamError("x", status=400)}))
        except GatewayError as exc:
            out.append(exc.status)
        _, lease3 = await r.run(r.resolve("g"), RouteContext(key=key), Script())  # slot was given back
        lease3.finish(True)
        out.append("ok")
        return out

    assert asyncio.run(main()) == [429, 400, "ok"]


def test_tpm_reserved_from_estimate_and_reconciled() -> None:
    r, auth = key_router(tpm_limit=1000)
    key = auth.authenticate([(b"authorization", b"Bearer sk-user")])
    import msgspec

    msgs = [msgspec.Raw(b'{"role":"user","content":"' + b"word " * 200 + b'"}')]

    async def main() -> list[float]:
        c = RouteContext(key=key, messages=msgs)
        _, lease = await r.run(r.resolve("g"), c, Script())
        reserved = c.prompt_tokens
        level = r.limiter.buckets.state[key.buckets[0].key][0]
        lease.finish(True, 10)  # the response reported 10 tokens in all
        after = r.limiter.buckets.state[key.buckets[0].key][0]
        return [reserved, level, after]

    reserved, level, after = asyncio.run(main())
    assert reserved > 150
    assert level == pytest.approx(1000 - reserved, abs=1)
    assert after == pytest.approx(990, abs=1)


@pytest.mark.parametrize(("count", "key_charge"), [("total", 15), ("input", 10), ("output", 5)])
def test_token_rate_limit_type_picks_what_a_key_s_tpm_counts(count: str, key_charge: int) -> None:
    """``general_settings.token_rate_limit_type``: a key's tpm window is charged the answer's total, input or
    output tokens (10 in, 5 out here); the deployment's own tpm always the total, as LiteLLM's router counts it.
    ``output`` reserves one token (so that an exhausted window still refuses) instead of the prompt's estimate;
    an answer whose split is unknown keeps an input window's reservation and charges an output one all of it."""
    cfg = from_litellm({"model_list": [dep("g", "d1", tpm=100000)],
                        "general_settings": {"master_key": "sk-master", "token_rate_limit_type": count},
                        "relaygate_keys": [{"key": "sk-user", "models": ["g"], "tpm_limit": 1000}]}, "<test>")
    r, auth = Router(cfg, random.Random(1)), Authenticator(cfg)
    r.limiter.clock = lambda: 1_000.0  # no refill between the steps (100,000 tpm refill ~1.7 tokens a ms)
    key = auth.authenticate([(b"authorization", b"Bearer sk-user")])
    assert key is not None and r.token_count == count
    import msgspec

    msgs = [msgspec.Raw(b'{"role":"user","content":"' + b"word " * 200 + b'"}')]
    dep_bucket = r.resolve("g").targets[0].buckets[0].key

    async def main() -> list[float]:
        state = r.limiter.buckets.state
        c = RouteContext(key=key, messages=msgs)
        _, lease = await r.run(r.resolve("g"), c, Script())
        reserved = 1000 - state[key.buckets[0].key][0]
        lease.finish(True, 15, prompt=10)
        settled = [1000 - state[key.buckets[0].key][0], 100000 - state[dep_bucket][0]]
        _, unknown = await r.run(r.resolve("g"), RouteContext(key=key, messages=msgs), Script())
        before = state[key.buckets[0].key][0]
        unknown.finish(True, 7)  # a stream without usage: 7 tokens estimated from its content
        return [reserved, *settled, before - state[key.buckets[0].key][0], c.prompt_tokens]

    reserved, key_used, dep_used, unknown_delta, estimate = asyncio.run(main())
    assert reserved == pytest.approx(1 if count == "output" else estimate, abs=0.5)
    assert key_used == pytest.approx(key_charge, abs=0.5)
    assert dep_used == pytest.approx(15, abs=0.5)
    if count == "input":
        assert unknown_delta == pytest.approx(0, abs=0.5)  # the prompt's estimate stands
    else:
        reserve = 1 if count == "output" else estimate
        assert unknown_delta == pytest.approx(7 - reserve, abs=0.5)


def test_token_rate_limit_type_output_still_refuses_an_exhausted_window() -> None:
    cfg = from_litellm({"model_list": [dep("g", "d1")],
                        "general_settings": {"master_key": "sk-master", "token_rate_limit_type": "output"},
                        "relaygate_keys": [{"key": "sk-user", "models": ["g"], "tpm_limit": 12}]}, "<test>")
    r, auth = Router(cfg, random.Random(1)), Authenticator(cfg)
    key = auth.authenticate([(b"authorization", b"Bearer sk-user")])

    async def main() -> int:
        served = 0
        for _ in range(5):
            try:
                _, lease = await r.run(r.resolve("g"), RouteContext(key=key), Script())
            except GatewayError as exc:
                assert exc.status == 429 and "current tpm" in exc.message
                return served
            lease.finish(True, 105, prompt=100)  # 5 output tokens an answer
            served += 1
        return served

    assert asyncio.run(main()) == 3  # 12 -> 7 -> 2 -> -3: the fourth is refused


def test_token_rate_limit_type_is_checked() -> None:
    from relaygate.config import ConfigError

    with pytest.raises(ConfigError, match="token_rate_limit_type"):
        from_litellm({"model_list": [dep("g", "d1")], "general_settings": {"token_rate_limit_type": "outptu"}},
                     "<test>")


def test_auth_and_model_allow_list() -> None:
    cfg = from_litellm({"model_list": [dep("g", "d1")], "general_settings": {"master_key": "sk-master"},
                        "relaygate_keys": [{"key": "sk-a", "models": ["g", "openai/*"]}]}, "<test>")
    auth = Authenticator(cfg)
    assert auth.authenticate([(b"authorization", b"Bearer sk-master")]) is None
    key = auth.authenticate([(b"authorization", b"Bearer sk-a")])
    assert key is not None and "sk-a" not in repr(vars(key) if hasattr(key, "__dict__") else key.token)
    auth.check_model(key, "g")
    auth.check_model(key, "openai/gpt-4o")
    with pytest.raises(GatewayError) as ei:
        auth.check_model(key, "h")
    assert ei.value.status == 401 and ei.value.type == "key_model_access_denied"
    assert ei.value.message == ("key not allowed to access model. This key can only access "
                                "models=['g', 'openai/*']. Tried to access h")
    for headers in ([], [(b"authorization", b"Basic abc")]):
        with pytest.raises(GatewayError) as ei:
            auth.authenticate(headers)
        assert ei.value.message == "Authentication Error, No api key passed in."
    with pytest.raises(GatewayError) as ei:
        auth.authenticate([(b"authorization", b"Bearer sk-wrong")])
    assert ei.value.status == 401 and "Invalid proxy server token" in ei.value.message
    open_auth = Authenticator(from_litellm({"model_list": [dep("g", "d1")]}, "<test>"))
    assert open_auth.authenticate([]) is None


def test_unknown_model_and_stream_ttft_recorded() -> None:
    r = make([dep("g", "d1")], routing_strategy="latency-based-routing")
    with pytest.raises(BadRequest):
        r.resolve("nope")
    run(r, "g", Script(), stream=True)
    st = r.groups["g"].targets[0].stats
    assert st.ttft_n == 1 and st.latency_n == 0


def test_a_groups_only_deployment_is_never_cooled_down() -> None:
    """As LiteLLM: failures of a solo deployment with no fallback group are answered, never turned into
    `cooldown_time` of 429s for every client (there is nothing to fail over to)."""
    r = make([dep("g", "only")], allowed_fails=0, cooldown_time=60)
    for _ in range(5):
        with pytest.raises(GatewayError):
            run(r, "g", Script({"only": e500}))
    assert run(r, "g", Script())[0] == "only"  # still served, no 429
    assert r.groups["g"].targets[0].stats.cooldown_until == 0.0
