"""A virtual key's and its team's rate limits as LiteLLM 1.110 reports them, over SQLite and a real
PostgreSQL: the answer carries its v3 limiter's per-descriptor headers (``x-ratelimit-api_key-limit-requests``
...) beside the OpenAI-style ones, and with ``callbacks: ["prometheus"]`` they become its gauges
``litellm_api_key_rate_limit_{allowed,used}_metric``, ``litellm_team_rate_limit_{allowed,used}_metric`` and a
key's per-model ``litellm_remaining_api_key_{requests,tokens}_for_model``; a key without limits adds none."""

from __future__ import annotations

import asyncio

from relaygate.store import Key, Team
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.observe.test_prometheus_dashboard import parse_exposition
from tests.store.conftest import db_url  # noqa: F401  (both backends)


def test_key_and_team_limits_in_headers_and_gauges(db_url: str) -> None:  # noqa: F811
    async def main() -> tuple[dict[str, str], dict[str, str], str]:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["prometheus"]}) as gw:
            await gw.store.create_team(Team(team_id="t-rl", team_alias="Limits", rpm_limit=1000))
            await gw.store.create_key(Key(token=token("sk-rl"), key_alias="limited", team_id="t-rl", rpm_limit=100,
                                          tpm_limit=50_000, model_rpm_limit={"m": 10}))
            await gw.store.create_key(Key(token=token("sk-free")))
            for _ in range(3):
                limited = await ask(gw, "sk-rl")
                assert limited.status == 200, limited.body
            free = await ask(gw, "sk-free")
            assert free.status == 200
            gw.completions.drain_now()
            scrape = await call(gw, "GET", "/metrics", headers={"authorization": f"Bearer {MASTER}"})
            return limited.headers, free.headers, scrape.body.decode()

    limited, free, text = asyncio.run(main())
    assert limited["x-ratelimit-api_key-limit-requests"] == "100"
    assert limited["x-ratelimit-api_key-remaining-requests"] == "97"
    assert limited["x-ratelimit-api_key-limit-tokens"] == "50000"
    assert limited["x-ratelimit-team-limit-requests"] == "1000"
    assert limited["x-ratelimit-model_per_key-limit-requests"] == "10"
    assert limited["x-ratelimit-model_per_key-remaining-requests"] == "7"
    assert limited["x-ratelimit-remaining-requests"] == "7"  # the OpenAI-style pair: the tightest bucket
    assert not any(h.startswith("x-ratelimit-api_key") for h in free)
    scrape = parse_exposition(text)

    def series(family: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.items())): v for s, v in zip(scrape.samples.get(family, []),
                                                            scrape.values.get(family, []), strict=True)}

    key = (("api_key_alias", "limited"), ("hashed_api_key", token("sk-rl")))
    assert series("litellm_api_key_rate_limit_allowed_metric") == {
        (*key, ("rate_limit_type", "requests")): 100.0, (*key, ("rate_limit_type", "tokens")): 50_000.0}
    used = series("litellm_api_key_rate_limit_used_metric")
    assert used[(*key, ("rate_limit_type", "requests"))] == 3.0
    assert used[(*key, ("rate_limit_type", "tokens"))] > 0
    team = (("rate_limit_type", "requests"), ("team", "t-rl"), ("team_alias", "Limits"))
    assert series("litellm_team_rate_limit_allowed_metric") == {team: 1000.0}
    assert series("litellm_team_rate_limit_used_metric") == {team: 3.0}
    per_model = series("litellm_remaining_api_key_requests_for_model")
    assert list(per_model.values()) == [7.0]
    labels = dict(next(iter(per_model)))
    assert (labels["hashed_api_key"], labels["model"]) == (token("sk-rl"), "m") and labels["model_id"]
    assert "litellm_remaining_api_key_tokens_for_model{" not in text  # no per-model token limit: no series
