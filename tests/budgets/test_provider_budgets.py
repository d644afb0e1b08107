"""Provider and deployment budgets (``router_settings.provider_budget_config``, ``litellm_params.max_budget``
+ ``budget_duration``), through the gateway against real local upstreams: one model group with an
``openai/`` deployment and a ``groq/`` one (each its own upstream, so what reached which is counted).
Each request costs :data:`COST` (1 + 1 tokens priced by ``model_info``)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.budgets import periods
from relaygate.budgets.providers import CROSSED
from relaygate.config import ConfigError, from_litellm
from relaygate.config import litellm as litellm_rules
from tests.asgi.conftest import Reply, call
from tests.budgets.conftest import COST, MASTER, Upstream, started, upstream
from tests.conftest import RedisServer

ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


def config(a: Upstream, b: Upstream, budgets: dict[str, Any] | None = None, *, redis: str | None = None,
           dep_budget: dict[str, Any] | None = None, **general: Any) -> dict[str, Any]:
    router: dict[str, Any] = {}
    if budgets is not None:
        router["provider_budget_config"] = budgets
    if redis is not None:
        router["redis_url"] = redis
    return {
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "openai/gpt-x", "api_base": a.url, "api_key": "k",
                                                   **(dep_budget or {})},
             "model_info": {"id": "dep-openai", **PRICES}},
            {"model_name": "m", "litellm_params": {"model": "groq/gpt-x", "api_base": b.url, "api_key": "k"},
             "model_info": {"id": "dep-groq", **PRICES}},
        ],
        "router_settings": router,
        "general_settings": {"master_key": MASTER, **general},
        "relaygate_settings": {"embedded_database": False},
    }


gateway = started


async def ask(gw: Gateway) -> Reply:
    r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                   headers=ADMIN)
    gw.completions.drain_now()
    return r


def crossed(r: Reply) -> str:
    assert r.status == 429, (r.status, r.body)
    err = r.json()["error"]
    assert err["type"] == "None" and err["param"] == "None" and err["code"] == "429"
    assert err["message"].startswith(f"{CROSSED}: ")
    return str(err["message"])


def test_a_provider_over_budget_is_skipped_then_both_over_is_litellms_429() -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            budgets = {"openai": {"budget_limit": COST, "time_period": "1d"},
                       "groq": {"budget_limit": 2 * COST, "time_period": "1d"}}
            async with gateway(config(a, b, budgets)) as gw:
                for _ in range(3):  # in whatever order: openai's budget holds one request, groq's two
                    assert (await ask(gw)).status == 200
                assert (a.hits, b.hits) == (1, 2)
                msg = crossed(await ask(gw))
                assert msg == (f"{CROSSED}: Exceeded budget for provider openai: {COST!r} >= {COST!r}\n"
                               f"Exceeded budget for provider groq: {2 * COST!r} >= {2 * COST!r}\n")
                assert (a.hits, b.hits) == (1, 2)  # refused before any upstream call
                text = (await call(gw, "GET", "/metrics", headers=ADMIN)).body.decode()
                assert 'litellm_provider_remaining_budget_metric{api_provider="openai"} 0.0' in text
                assert 'litellm_provider_remaining_budget_metric{api_provider="groq"} 0.0' in text

    asyncio.run(main())


def test_a_deployment_budget_skips_that_deployment_only() -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            cfg = config(a, b, dep_budget={"max_budget": COST / 2, "budget_duration": "1h"})
            async with gateway(cfg) as gw:
                while a.hits == 0:
                    assert (await ask(gw)).status == 200
                before = b.hits
                for _ in range(5):
                    assert (await ask(gw)).status == 200
                assert a.hits == 1 and b.hits == before + 5
                cfg["model_list"].pop(1)  # only the over-budget deployment left
                await gw.swap(from_litellm(cfg, "<test>"), 1)
                msg = crossed(await ask(gw))
                assert msg == (f"{CROSSED}: Exceeded budget for deployment model_name: m, litellm_params.model: "
                               f"openai/gpt-x, model_id: dep-openai: {COST!r} >= {COST / 2!r}\n")

    asyncio.run(main())


def test_a_tag_over_its_budget_is_refused_other_requests_are_not() -> None:
    """LiteLLM's ``litellm_settings.tag_budget_config``: a request's tags (header, body, metadata) spend their
    budgets; once a tag is over, a request carrying it is refused (LiteLLM's 429, a line per deployment) before
    any upstream call, and requests without it are served."""
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            cfg = config(a, b)
            cfg["litellm_settings"] = {"tag_budget_config": {
                "product:chat-bot": {"max_budget": 1.5 * COST, "budget_duration": "1d"},
                "team:search": {"budget_limit": 100.0, "time_period": "30d"}}}
            async with gateway(cfg) as gw:
                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                for tagged in ({"tags": ["product:chat-bot"]}, {"metadata": {"tags": ["product:chat-bot", "x"]}}):
                    r = await call(gw, "POST", "/v1/chat/completions", {**chat, **tagged}, headers=ADMIN)
                    gw.completions.drain_now()
                    assert r.status == 200, r.body
                hits = a.hits + b.hits
                r = await call(gw, "POST", "/v1/chat/completions", chat,
                               headers={**ADMIN, "x-litellm-tags": "team:search,product:chat-bot"})
                msg = crossed(r)
                line = f"Exceeded budget for tag='product:chat-bot', tag_spend={2 * COST!r}, " \
                       f"tag_budget_limit={1.5 * COST!r}\n"
                assert msg == f"{CROSSED}: {line * 2}" and a.hits + b.hits == hits
                assert (await ask(gw)).status == 200  # no tag: served
                r = await call(gw, "POST", "/v1/chat/completions", {**chat, "tags": ["team:search"]}, headers=ADMIN)
                gw.completions.drain_now()
                assert r.status == 200, r.body
                budgets = gw.router.budgets
                assert budgets is not None and budgets.tags["team:search"].local > 0
                assert budgets.tags_over == {"product:chat-bot"}

    asyncio.run(main())
    with pytest.raises(ConfigError, match=r"tag_budget_config\.t"):
        from_litellm({"model_list": [], "litellm_settings": {"tag_budget_config": {"t": {"max_budget": 1}}}}, "c")


def test_the_budget_resets_at_the_period_boundary() -> None:
    """The clock is the budgets' own (injected): spent in one period, the provider is back in the next one,
    which starts exactly at the boundary computed from the epoch."""
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            cfg = config(a, b, {"openai": {"budget_limit": COST, "time_period": "1h"}})
            cfg["model_list"].pop(1)
            async with gateway(cfg) as gw:
                pb = gw.provider_budgets
                now = [7 * 3600 + 10.0]
                pb.clock = lambda: now[0]
                pb.configure(gw.config)
                assert (await ask(gw)).status == 200
                crossed(await ask(gw))
                report = (await call(gw, "GET", "/provider/budgets",
                                     headers=ADMIN)).json()
                assert report["providers"]["openai"]["budget_reset_at"] == "1970-01-01T08:00:00+00:00"
                now[0] = 8 * 3600 - 0.001
                crossed(await ask(gw))
                now[0] = 8 * 3600.0
                assert (await ask(gw)).status == 200
                assert a.hits == 2
                crossed(await ask(gw))

    asyncio.run(main())


def test_provider_budgets_route_in_litellms_shape() -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            budgets = {"openai": {"budget_limit": 100, "time_period": "1d"},
                       "anthropic": {"budget_limit": 0.5, "time_period": "1mo"}}
            async with gateway(config(a, b, budgets)) as gw:
                r = await call(gw, "GET", "/provider/budgets", headers={"authorization": "Bearer nope"})
                assert r.status == 401
                for _ in range(3):
                    assert (await ask(gw)).status == 200
                r = await call(gw, "GET", "/provider/budgets", headers=ADMIN)
                assert r.status == 200
                body = r.json()
                assert set(body) == {"providers"} and set(body["providers"]) == {"openai", "anthropic"}
                o = body["providers"]["openai"]
                assert set(o) == {"budget_limit", "time_period", "spend", "budget_reset_at"}
                assert o["budget_limit"] == 100.0 and o["time_period"] == "1d"
                assert o["spend"] == pytest.approx(a.hits * COST)
                reset = datetime.fromisoformat(o["budget_reset_at"])
                assert reset.tzinfo is not None and reset.hour == reset.minute == reset.second == 0
                assert reset > datetime.now(UTC)
                m = body["providers"]["anthropic"]
                assert m["spend"] == 0.0 and m["time_period"] == "1mo"
                assert datetime.fromisoformat(m["budget_reset_at"]).day == 1
            async with gateway(config(a, b)) as gw:
                r = await call(gw, "GET", "/provider/budgets", headers=ADMIN)
                assert r.status == 500 and r.json()["error"]["message"].startswith("No provider budget config found.")

    asyncio.run(main())


def test_no_budget_no_check() -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b, gateway(config(a, b)) as gw:
            assert gw.provider_budgets is None and gw.router.budgets is None
            assert gw.completions.sinks.count("provider_budgets") == 0
            for _ in range(4):
                assert (await ask(gw)).status == 200
            assert "litellm_provider_remaining_budget_metric" not in (await call(gw, "GET", "/metrics", headers=ADMIN)).body.decode()

    asyncio.run(main())


def test_two_gateways_share_provider_spend_through_redis(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            cfg = config(a, b, {"openai": {"budget_limit": 2 * COST, "time_period": "1d"}}, redis=redis_server.url)
            cfg["model_list"].pop(1)
            async with gateway(cfg) as one, gateway(cfg) as two:
                assert (await ask(one)).status == 200
                assert (await ask(two)).status == 200  # each spent COST: neither is over on its own
                for gw in (one, two):
                    for _ in range(200):  # the increments reach Redis off the request path
                        await gw.provider_budgets.refresh()
                        if gw.provider_budgets.providers["openai"].spend >= 2 * (COST * 1e12) - 1:
                            break
                        await asyncio.sleep(0.02)
                crossed(await ask(one))
                crossed(await ask(two))
                assert a.hits == 2
                body = (await call(two, "GET", "/provider/budgets",
                                   headers=ADMIN)).json()
                assert body["providers"]["openai"]["spend"] == pytest.approx(2 * COST)

    asyncio.run(main())


@pytest.mark.parametrize(("entry", "field"), [
    ({"budget_limit": 1, "time_period": "1y"}, "time_period"),
    ({"budget_limit": -1, "time_period": "1d"}, "budget_limit"),
    ({"budget_limit": "lots", "time_period": "1d"}, "budget_limit"),
    ({"time_period": "1d"}, "openai"),
    ("100", "openai"),
])
def test_bad_provider_budget_config_is_a_config_error(tmp_path: Path, entry: Any, field: str) -> None:
    up = Upstream()
    up.url = "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match=re.escape(field)) as info:
        from_litellm(config(up, up, {"openai": entry}), "<test>")
    assert "router_settings.provider_budget_config.openai" in str(info.value)


def test_bad_deployment_budget_is_a_config_error() -> None:
    up = Upstream()
    up.url = "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="budget_duration"):
        from_litellm(config(up, up, dep_budget={"max_budget": 1, "budget_duration": "soon"}), "<test>")
    cfg = from_litellm(config(up, up, dep_budget={"max_budget": 1}), "<test>")
    assert cfg.deployments[0].max_budget is None
    assert any("max_budget: ignored" in w for w in cfg.warnings)


@pytest.mark.parametrize("text", ["30s", "10m", "24h", "1d", "7d", "2w", "1mo", " 2mo ", "0d", "1y", "d", "1.5h"])
def test_config_periods_are_the_budget_periods(text: str) -> None:
    """The config checks periods itself (``budgets`` imports the config): both accept the same forms."""
    def accepts(check: Any) -> bool:
        try:
            check(text)
        except (ValueError, ConfigError):
            return False
        return True

    assert accepts(periods.parse) == accepts(lambda t: litellm_rules._period(t, "<test>", "p"))


@pytest.mark.parametrize("shared", [False, True])
def test_remaining_budget_metric_across_workers(tmp_path: Path, shared: bool) -> None:
    """Workers' figures of the latest period only: summed when each counts its own spend, the largest when
    all read the shared (Redis) total."""
    import os

    from relaygate.metrics import Metrics

    me, other = Metrics(str(tmp_path)), Metrics(str(tmp_path))
    other.pid = os.getppid()  # a live process: its snapshot counts
    me.set_provider_budget("openai", 10.0, 2.0, 3600.0, shared)
    other.set_provider_budget("openai", 10.0, 3.0, 3600.0, shared)
    other.set_provider_budget("azure", 5.0, 4.0, 0.0, shared)  # only this worker saw azure's older period
    me.set_provider_budget("azure", 5.0, 1.0, 3600.0, shared)
    other.flush()
    text = me.render().decode()
    expected = 7.0 if shared else 5.0
    assert f'litellm_provider_remaining_budget_metric{{api_provider="openai"}} {expected!r}' in text
    assert 'litellm_provider_remaining_budget_metric{api_provider="azure"} 4.0' in text


def test_a_reload_adds_and_removes_provider_budgets() -> None:
    async def main() -> None:
        async with upstream() as a, upstream() as b:
            cfg = config(a, b)
            cfg["model_list"].pop(1)
            async with gateway(cfg) as gw:
                assert (await ask(gw)).status == 200
                await gw.swap(from_litellm({**cfg, "router_settings": {"provider_budget_config": {
                    "openai": {"budget_limit": COST, "time_period": "1d"}}}}, "<test>"), 1)
                assert gw.router.budgets is gw.provider_budgets is not None
                assert (await ask(gw)).status == 200  # counted from the reload on: now over
                crossed(await ask(gw))
                await gw.swap(from_litellm(cfg, "<test>"), 2)
                assert gw.router.budgets is None
                assert (await ask(gw)).status == 200
                assert a.hits == 3

    asyncio.run(main())
