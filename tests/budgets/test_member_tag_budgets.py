"""Team member and tag budgets through the gateway and its lifespan, on SQLite and a real PostgreSQL: a
member over its budget in a team (its own ``max_budget_in_team`` row, or the team's default member budget)
and a request carrying a tag over its budget get LiteLLM's ``budget_exceeded`` 400 before the upstream is
called; other members, and requests without the tag, are untouched; a tag's budget period resets at its
boundary; budget resets are compare-and-set writes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from relaygate.budgets.shared import PREFIX, UNIT
from relaygate.cost import to_pico
from relaygate.store import Budget, Customer, Key, Organization, Tag, Team, TeamMember, open_store
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.conftest import RedisServer

BUDGET = 0.000005  # two requests fit under it (3e-6 each); the third finds 6e-6 spent


def refused(r: Any, message: str) -> None:
    assert r.status == 422, (r.status, r.body)
    assert r.json() == {"error": {"message": message, "type": "budget_exceeded", "param": None, "code": "422"}}


async def _two_then_refused(gw: Any, up: Any, key: str, message: str, **body: Any) -> None:
    up.hits = 0
    assert (await ask(gw, key, **body)).status == 200
    assert (await ask(gw, key, **body)).status == 200
    refused(await ask(gw, key, **body), message)
    assert up.hits == 2  # the refused request never reached the upstream


def test_member_over_its_budget_in_the_team_is_refused_and_others_are_not(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_budget(Budget(budget_id="b-u1", max_budget=BUDGET))
            await gw.store.create_team(Team(team_id="t1"), [TeamMember(team_id="t1", user_id="u1", budget_id="b-u1"),
                                                            TeamMember(team_id="t1", user_id="u2")])
            await gw.store.create_key(Key(token=token("sk-u1"), team_id="t1", user_id="u1"))
            await gw.store.create_key(Key(token=token("sk-u2"), team_id="t1", user_id="u2"))
            await gw.store.create_key(Key(token=token("sk-t1"), team_id="t1"))  # a team key with no user
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-u1", "Budget has been exceeded! TeamMember=u1:t1 Current cost: "
                                    "6e-06, Max budget: 5e-06")
            for key in ("sk-u2", "sk-t1"):  # the other member and the team's own key are not capped
                for _ in range(3):
                    assert (await ask(gw, key)).status == 200
            assert gw.metrics.events.get("budget_exceeded") == 1
            deadline = time.monotonic() + 10
            while (await gw.store.get_team_member("t1", "u1")).spend < 6e-06 - 1e-12:  # the spend sink's write
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

    asyncio.run(main())


def test_team_default_member_budget_applies_to_members_without_their_own(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_budget(Budget(budget_id="b-default", max_budget=BUDGET))
            await gw.store.create_budget(Budget(budget_id="b-big", max_budget=1.0))
            await gw.store.create_team(Team(team_id="t2", metadata={"team_member_budget_id": "b-default"}),
                                       [TeamMember(team_id="t2", user_id="u3"),
                                        TeamMember(team_id="t2", user_id="u4", budget_id="b-big")])
            await gw.store.create_key(Key(token=token("sk-u3"), team_id="t2", user_id="u3"))
            await gw.store.create_key(Key(token=token("sk-u4"), team_id="t2", user_id="u4"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-u3", "Budget has been exceeded! User=u3 in Team=t2 Current cost: "
                                    "6e-06, Max budget: 5e-06")
            for _ in range(3):  # the member's own budget wins over the team's default
                assert (await ask(gw, "sk-u4")).status == 200

    asyncio.run(main())


def test_tag_over_its_budget_is_refused_and_requests_without_it_pass(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_budget(Budget(budget_id="b-tag", max_budget=BUDGET))
            await gw.store.create_tag(Tag(tag_name="capped", budget_id="b-tag"))
            await gw.store.create_tag(Tag(tag_name="free"))
            await gw.store.create_key(Key(token=token("sk-a")))
            await gw.store.create_key(Key(token=token("sk-tagged"), tags=["capped"]))
            await gw.budgets.refresh()
            assert gw.budgets.tags == frozenset({"capped"})
            message = "Budget has been exceeded! Tag=capped Current cost: 6e-06, Max budget: 5e-06"
            await _two_then_refused(gw, up, "sk-a", message, metadata={"tags": ["capped", "free"]})
            up.hits = 0
            assert (await ask(gw, "sk-a")).status == 200  # no tag
            assert (await ask(gw, "sk-a", metadata={"tags": ["free"]})).status == 200  # a tag without a budget
            refused(await ask(gw, "sk-a", tags=["capped"]), message)  # body ``tags`` as well
            refused(await ask(gw, "sk-tagged"), message)  # the key's own tags count
            assert up.hits == 2
            deadline = time.monotonic() + 10
            while (await gw.store.get_tag("capped")).spend < 6e-06 - 1e-12:  # the spend sink adds to the tag's row
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert (await gw.store.get_tag("free")).spend > 0

    asyncio.run(main())


def test_tag_budget_period_resets_at_its_boundary(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"user_api_key_cache_ttl": 0.5}) as gw:
            first_end = datetime.now(UTC) + timedelta(seconds=2)
            await gw.store.create_budget(Budget(budget_id="b-r", max_budget=BUDGET, budget_duration="2s",
                                                budget_reset_at=first_end))
            await gw.store.create_tag(Tag(tag_name="daily", budget_id="b-r"))
            await gw.store.create_key(Key(token=token("sk-r")))
            await gw.budgets.refresh()
            body = {"metadata": {"tags": ["daily"]}}
            assert (await ask(gw, "sk-r", **body)).status == 200
            assert (await ask(gw, "sk-r", **body)).status == 200
            refused(await ask(gw, "sk-r", **body), "Budget has been exceeded! Tag=daily Current cost: 6e-06, "
                    "Max budget: 5e-06")
            deadline = time.monotonic() + 15
            while (r := await ask(gw, "sk-r", **body)).status != 200:  # the next period starts at the boundary
                assert r.status == 422 and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            while True:  # the reset is written back to the budget row (off the request path)
                row = await gw.store.get_budget("b-r")
                assert row.budget_reset_at is not None
                if row.budget_reset_at.replace(tzinfo=UTC) > first_end:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
                await ask(gw, "sk-r", **body)

    asyncio.run(main())


def test_resets_are_compare_and_set(db_url: str) -> None:
    """Two workers resetting the same row for the same boundary: the second changes nothing, so spend
    recorded between the two writes is kept."""

    async def main() -> None:
        store = await open_store(db_url)
        try:
            past = datetime.now(UTC) - timedelta(hours=1)
            nxt = past + timedelta(days=1)
            await store.create_key(Key(token="k1", spend=5.0, budget_reset_at=past))
            await store.create_team(Team(team_id="t", spend=5.0, budget_reset_at=past))
            assert await store.reset_period("key", "k1", nxt) is True
            assert (await store.get_key("k1")).spend == 0.0
            await store.update_key("k1", spend=0.25)  # spend recorded after the first reset
            assert await store.reset_period("key", "k1", nxt) is False  # a second worker, same boundary
            key = await store.get_key("k1")
            assert key.spend == 0.25 and key.budget_reset_at == nxt
            assert await store.reset_period("team", "t", nxt) is True
            assert await store.reset_period("team", "t", nxt) is False

            await store.create_budget(Budget(budget_id="b", max_budget=1.0, budget_duration="1d",
                                             budget_reset_at=past))
            await store.create_organization(Organization(organization_id="o", budget_id="b", spend=1.0))
            await store.create_customer(Customer(user_id="c", budget_id="b", spend=1.0))
            await store.create_tag(Tag(tag_name="g", budget_id="b", spend=1.0))
            await store.create_team(Team(team_id="td", metadata={"team_member_budget_id": "b"}),
                                    [TeamMember(team_id="td", user_id="m1", spend=1.0),
                                     TeamMember(team_id="td", user_id="m2", budget_id="b", spend=1.0)])
            await store.create_team(Team(team_id="other"), [TeamMember(team_id="other", user_id="m3", spend=1.0)])
            assert await store.reset_budget_period("b", nxt) is True
            assert (await store.get_organization("o")).spend == 0.0
            assert (await store.get_customer("c")).spend == 0.0
            assert (await store.get_tag("g")).spend == 0.0
            assert [(m.user_id, m.spend) for m in await store.list_team_members("td")] == [("m1", 0.0), ("m2", 0.0)]
            assert (await store.get_team_member("other", "m3")).spend == 1.0  # not on that budget
            await store.update_tag("g", spend=0.5)
            assert await store.reset_budget_period("b", nxt) is False
            assert (await store.get_tag("g")).spend == 0.5
            assert (await store.get_budget("b")).budget_reset_at == nxt
        finally:
            await store.close()

    asyncio.run(main())


def test_team_member_budget_through_the_management_api(db_url: str) -> None:
    """``team_member_budget`` on /team/new and /team/update (LiteLLM's default member budget), members added
    by /team/member_add, keys by /key/generate; ``max_budget_in_team`` gives one member its own row."""

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            async def admin(path: str, body: dict[str, Any]) -> Any:
                r = await call(gw, "POST", path, body, headers={"authorization": f"Bearer {MASTER}"})
                assert r.status == 200, (path, r.status, r.body)
                return r.json()

            team = await admin("/team/new", {"team_id": "t3", "team_alias": "Red Team", "team_member_budget": BUDGET})
            default_id = team["metadata"]["team_member_budget_id"]
            assert default_id.startswith("team-Red-Team-budget-")
            assert (await gw.store.get_budget(default_id)).max_budget == BUDGET
            await admin("/team/member_add", {"team_id": "t3", "member": [{"user_id": "u5"}, {"user_id": "u6"}]})
            k5 = (await admin("/key/generate", {"team_id": "t3", "user_id": "u5"}))["key"]
            k6 = (await admin("/key/generate", {"team_id": "t3", "user_id": "u6"}))["key"]
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, k5, "Budget has been exceeded! User=u5 in Team=t3 Current cost: 6e-06, "
                                    "Max budget: 5e-06")
            out = await admin("/team/member_update", {"team_id": "t3", "user_id": "u6", "max_budget_in_team": 1.0})
            assert out["max_budget_in_team"] == 1.0
            assert (await gw.store.get_budget(default_id)).max_budget == BUDGET  # the default row is not touched
            for _ in range(3):
                assert (await ask(gw, k6)).status == 200
            await admin("/team/update", {"team_id": "t3", "team_member_budget": 1.0, "metadata": {"x": 1}})
            row = await gw.store.get_team("t3")
            assert row.metadata == {"x": 1, "team_member_budget_id": default_id}  # the link survives new metadata
            assert (await gw.store.get_budget(default_id)).max_budget == 1.0
            await gw.budgets.refresh()
            assert (await ask(gw, k5)).status == 200  # its key's rows re-read: the raised default applies
            r = await call(gw, "POST", "/team/new", {"team_member_budget": -1},
                           headers={"authorization": f"Bearer {MASTER}"})
            assert r.status == 400 and r.json()["error"]["param"] == "team_member_budget"

    asyncio.run(main())


def test_two_gateways_share_member_and_tag_counters(tmp_path: Path, redis_server: RedisServer) -> None:
    """The rows are not re-read (a 600 s key cache): only the Redis counters carry one gateway's spend on a member's
    and on a tag's budget to the other."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = {"router_settings": {"redis_url": redis_server.url},
                "general_settings": {"disable_spend_logs": True, "user_api_key_cache_ttl": 600}}

    async def main() -> None:
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_server.url)
        async with upstream() as up, gateway(url, up, **settings) as a, gateway(url, up, **settings) as b:
            await a.store.create_budget(Budget(budget_id="bm", max_budget=BUDGET))
            await a.store.create_budget(Budget(budget_id="bt", max_budget=BUDGET))
            await a.store.create_team(Team(team_id="ts"), [TeamMember(team_id="ts", user_id="um", budget_id="bm")])
            await a.store.create_key(Key(token=token("sk-m"), team_id="ts", user_id="um"))
            await a.store.create_tag(Tag(tag_name="tt", budget_id="bt"))
            await a.store.create_key(Key(token=token("sk-t")))
            for gw in (a, b):
                await gw.budgets.refresh()
            tagged = {"metadata": {"tags": ["tt"]}}
            for gw in (b, a):  # one request each: 6e-6 in Redis, 3e-6 seen by either gateway itself
                assert (await ask(gw, "sk-m")).status == 200
                assert (await ask(gw, "sk-t", **tagged)).status == 200
            deadline = time.monotonic() + 10
            for kind in ("member", "tag"):  # the increments reach Redis off the request path
                while sum(int(v) for v in await r.mget(await r.keys(f"{PREFIX}{kind}:*")) if v) < to_pico(6e-6) // UNIT:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            for gw in (a, b):
                refused(await ask(gw, "sk-m"), "Budget has been exceeded! TeamMember=um:ts Current cost: 6e-06, "
                        "Max budget: 5e-06")
                refused(await ask(gw, "sk-t", **tagged), "Budget has been exceeded! Tag=tt Current cost: 6e-06, "
                        "Max budget: 5e-06")
            assert up.hits == 4
        await r.aclose()

    asyncio.run(main())


def test_team_member_budget_duration(db_url: str) -> None:
    """LiteLLM 1.110's ``team_member_budget_duration``: the default member budget's own period (the team's
    ``budget_duration`` unless sent; null: it never resets), set on /team/new and changed by /team/update."""

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            async def admin(path: str, body: dict[str, Any], status: int = 200) -> Any:
                r = await call(gw, "POST", path, body, headers={"authorization": f"Bearer {MASTER}"})
                assert r.status == status, (path, r.status, r.body)
                return r.json()

            async def row_of(team: dict[str, Any]) -> Budget:
                return await gw.store.get_budget(team["metadata"]["team_member_budget_id"])

            own = await admin("/team/new", {"team_id": "d1", "budget_duration": "30d", "team_member_budget": 1.0,
                                            "team_member_budget_duration": "1h"})
            row = await row_of(own)
            assert (row.max_budget, row.budget_duration) == (1.0, "1h") and row.budget_reset_at is not None
            inherited = await row_of(await admin("/team/new", {"team_id": "d2", "budget_duration": "30d",
                                                               "team_member_budget": 1.0}))
            assert inherited.budget_duration == "30d"

            team = (await admin("/team/update", {"team_id": "d1", "team_member_budget_duration": "1d"}))["data"]
            row = await row_of(team)
            assert (row.max_budget, row.budget_duration) == (1.0, "1d") and row.budget_reset_at is not None
            row = await row_of((await admin("/team/update", {"team_id": "d1",
                                                             "team_member_budget_duration": None}))["data"])
            assert (row.max_budget, row.budget_duration, row.budget_reset_at) == (1.0, None, None)

            # a period alone makes the row, as LiteLLM's (a budget set later binds with it)
            await admin("/team/new", {"team_id": "d3"})
            row = await row_of((await admin("/team/update", {"team_id": "d3",
                                                             "team_member_budget_duration": "7d"}))["data"])
            assert (row.max_budget, row.budget_duration) == (None, "7d")
            err = await admin("/team/update", {"team_id": "d3", "team_member_budget_duration": "7x"}, 400)
            assert err["error"]["param"] == "team_member_budget_duration", err

    asyncio.run(main())


def test_member_reset_spend_and_reset_budget(db_url: str) -> None:
    """LiteLLM 1.110's ``/team/{team_id}/member/{user_id}/reset_spend`` (a member's spend in the team set back:
    its budget binds on the new spend at once) and ``/reset_budget`` (the member back on the team's default
    member budget)."""
    from tests.budgets.test_reset_spend import WRITE_NOW, admin, written

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **WRITE_NOW) as gw:
            assert gw.store is not None and gw.budgets is not None
            r = await admin(gw, "/team/new", {"team_id": "t", "team_member_budget": 1.0, "members_with_roles": [
                {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "u1"}]})
            assert r.status == 200, r.body
            r = await admin(gw, "/team/member_update", {"team_id": "t", "user_id": "u1", "max_budget_in_team": BUDGET})
            assert r.status == 200, r.body
            own = (await gw.store.get_team_member("t", "u1")).budget_id
            await gw.store.create_key(Key(token=token("sk-u1"), team_id="t", user_id="u1"))
            await gw.store.create_key(Key(token=token("sk-boss"), team_id="t", user_id="boss"))
            await gw.budgets.refresh()  # member budgets exist now (the guard's periodic read)
            await _two_then_refused(gw, up, "sk-u1", "Budget has been exceeded! TeamMember=u1:t Current cost: "
                                    "6e-06, Max budget: 5e-06")
            await written(gw, "member", "t\0u1")
            path = "/team/t/member/u1/reset_spend"
            for body, needle in (({"reset_to": 0.001}, "must be <= current spend"),
                                 ({"reset_to": -1}, "finite number >= 0")):
                r = await admin(gw, path, body)
                assert r.status == 400 and needle in r.json()["error"]["message"], r.body
            r = await admin(gw, "/team/t/member/nobody/reset_spend", {"reset_to": 0})
            assert r.status == 404 and "not a member of team t" in r.json()["error"]["message"], r.body
            # the team's admin may reset another member's spend, never its own
            boss = {"authorization": "Bearer sk-boss"}
            r = await call(gw, "POST", "/team/t/member/boss/reset_spend", {"reset_to": 0}, headers=boss)
            assert r.status == 403 and "Cannot reset your own spend" in r.json()["error"]["message"], r.body
            r = await call(gw, "POST", path, {"reset_to": 0.000001}, headers=boss)
            assert r.status == 200, r.body
            assert r.json() == {"team_id": "t", "user_id": "u1", "spend": 0.000001, "previous_spend": 6e-06,
                                "max_budget": BUDGET}
            assert (await gw.store.get_team_member("t", "u1")).spend == 0.000001
            up.hits = 0
            assert (await ask(gw, "sk-u1")).status == 200  # answered again at once: 1e-6 + 3e-6 ...
            assert (await ask(gw, "sk-u1")).status == 200  # ... is below 5e-6, then 7e-6 is past it
            refused(await ask(gw, "sk-u1"), "Budget has been exceeded! TeamMember=u1:t Current cost: 7e-06, "
                    "Max budget: 5e-06")
            # back on the team's default member budget ($1): answered, its spend kept
            r = await admin(gw, "/team/t/member/u1/reset_budget")
            assert r.status == 200, r.body
            default = (await gw.store.get_team("t")).metadata["team_member_budget_id"]
            assert r.json() == {"team_id": "t", "user_id": "u1", "budget_id": default, "previous_budget_id": own,
                                "budget_source": "team_default"}
            assert (await gw.store.get_team_member("t", "u1")).budget_id is None
            assert (await ask(gw, "sk-u1")).status == 200

    asyncio.run(main())
