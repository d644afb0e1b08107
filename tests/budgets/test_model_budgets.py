"""Per-model budgets of a team and of a user (LiteLLM 1.110's ``is_team_within_model_budget`` /
``is_user_within_model_budget``) beside a key's own, over SQLite and a real PostgreSQL: LiteLLM's wording, the
key's own entry replacing its team's for that model, a user's budget holding every key of the user, other
models not capped."""

from __future__ import annotations

import asyncio

from relaygate.store import Key, Team, User
from tests.budgets.conftest import gateway, token, upstream
from tests.budgets.test_budgets import BUDGET, _two_then_refused, ask, refused
from tests.store.conftest import db_url  # noqa: F401  (both backends)

PER_DAY = {"budget_limit": BUDGET, "time_period": "1d"}


def test_team_model_budget_holds_every_key_of_the_team(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t-mb", model_max_budget={"m": PER_DAY}))
            await gw.store.create_key(Key(token=token("sk-a"), team_id="t-mb"))
            await gw.store.create_key(Key(token=token("sk-b"), team_id="t-mb"))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-a")).status == 200
            assert (await ask(gw, "sk-b")).status == 200  # the team's spend on m: 6e-06 of 5e-06
            refused(await ask(gw, "sk-a"), "LiteLLM Team: t-mb, exceeded budget for model=m")
            refused(await ask(gw, "sk-b"), "LiteLLM Team: t-mb, exceeded budget for model=m")
            assert (await ask(gw, "sk-a", model="m2")).status == 200  # another model of the team is not capped

    asyncio.run(main())


def test_a_keys_own_entry_replaces_its_teams_for_that_model(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t-rep", model_max_budget={"m": PER_DAY}))
            await gw.store.create_key(Key(token=token("sk-own"), team_id="t-rep",
                                          model_max_budget={"m": {"budget_limit": 1.0, "time_period": "1d"}}))
            await gw.budgets.refresh()
            for _ in range(4):  # past the team's 5e-06 for m: the key's own 1.0 decides for it
                assert (await ask(gw, "sk-own")).status == 200

    asyncio.run(main())


def test_user_model_budget_holds_every_key_of_the_user(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_user(User(user_id="u-mb", model_max_budget={"m": PER_DAY}))
            await gw.store.create_key(Key(token=token("sk-u1"), user_id="u-mb"))
            await gw.store.create_key(Key(token=token("sk-u2"), user_id="u-mb"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-u1", "LiteLLM User: u-mb, exceeded budget for model=m")
            refused(await ask(gw, "sk-u2"), "LiteLLM User: u-mb, exceeded budget for model=m")  # a new key: no way out
            assert (await ask(gw, "sk-u2", model="m2")).status == 200

    asyncio.run(main())
