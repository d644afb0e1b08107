"""LiteLLM's companion routes of the daily activity views (``management.daily_aggregated``) on SQLite and a real
PostgreSQL: the whole range at once with the top keys, the key page, the key search, a model's top keys, the
users page, the cache-leakage keys, the CSV and JSON exports; reporting ids of keys; who may read them."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

from relaygate.sinks.spend import spend_values
from relaygate.store import Key, Team, User, hash_token
from relaygate.store.spend import write_spend_values
from tests.asgi.conftest import Reply, call
from tests.budgets.conftest import MASTER, gateway, upstream
from tests.spend.test_spend_views import AUTH, DAY, get, rec
from tests.store.conftest import db_url  # noqa: F401  (both backends)

OWN = "sk-own-aggregated-1"


async def _seed(gw: Any) -> tuple[str, str, str, str]:
    """Three keys over two days: ``alpha`` (u-1's, stored), an unknown key, and no key at all."""
    await gw.store.create_team(Team(team_id="t-red", team_alias="Red Team"))
    await gw.store.create_user(User(user_id="u-1", user_email="ann@example.com", user_alias="Ann"))
    await gw.store.create_key(Key(token=hash_token(OWN), user_id="u-1", key_alias="=alpha", team_id="t-red"))
    k1 = hash_token(OWN)
    now = time.time()
    rows = [rec("a1", 0.5, now, user_id="u-1", key_hash=k1, team_id="t-red", upstream_model="gpt-x-1",
                cache_read_tokens=4),
            rec("a2", 0.25, now - DAY, user_id="u-1", key_hash=k1, team_id="t-red"),
            rec("a3", 1.0, now, user_id="u-2", key_hash="f" * 64, model_group="m2"),
            rec("a4", 0.125, now, user_id="u-3", key_hash=None)]
    assert await write_spend_values(gw.store, [spend_values(r, gw.store.dialect) for r in rows]) == 4
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - DAY))
    return k1, today, yesterday, f"start_date={yesterday}&end_date={today}"


def test_the_whole_range_with_its_top_keys(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            k1, today, yesterday, span = await _seed(gw)
            body = await get(gw, f"/user/daily/activity/aggregated?{span}&api_key_limit=1")
            assert [r["date"] for r in body["results"]] == [today, yesterday]
            meta = body["metadata"]
            assert (meta["page"], meta["total_pages"], meta["has_more"], meta["api_key_limit"]) == (1, 1, False, 1)
            assert meta["total_spend"] == 1.875 and meta["total_api_keys"] == 3
            assert meta["entity_total_api_keys"] == {"u-1": 1, "u-2": 1, "u-3": 1}
            first = body["results"][0]
            assert list(first["breakdown"]["api_keys"]) == ["f" * 64]  # the range's top key only
            assert first["metrics"]["spend"] == 1.625  # every key counted in the sums
            entities = first["breakdown"]["entities"]
            assert entities["u-1"]["metadata"] == {"user_email": "ann@example.com", "user_alias": "Ann"}
            assert entities["u-1"]["api_key_breakdown"] == {} and entities["u-3"]["metrics"]["spend"] == 0.125
            every = await get(gw, f"/user/daily/activity/aggregated?{span}")
            keys = every["results"][0]["breakdown"]["api_keys"]
            assert keys["unattributed"]["metadata"] == {"key_alias": "Unattributed", "team_id": None,
                                                        "user_id": None, "user_email": None, "key_exists": False}
            assert keys[k1]["metadata"] == {"key_alias": "=alpha", "team_id": "t-red", "user_id": "u-1",
                                            "user_email": "ann@example.com", "key_exists": True}
            assert keys["f" * 64]["metadata"]["key_exists"] is False
            only = await get(gw, f"/user/daily/activity/aggregated?{span}&api_key=unattributed")
            assert only["metadata"]["total_spend"] == 0.125
            mine = {"authorization": f"Bearer {OWN}"}
            assert (await get(gw, f"/user/daily/activity/aggregated?{span}", mine))["metadata"]["total_spend"] == 0.75
            team = await get(gw, f"/team/daily/activity/aggregated?{span}&team_ids=t-red")
            assert team["results"][0]["breakdown"]["entities"]["t-red"]["metadata"] == {"team_alias": "Red Team"}

    asyncio.run(main())


def test_keys_search_model_top_keys_users_and_leakage(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            k1, _, _, span = await _seed(gw)
            page = await get(gw, f"/user/daily/activity/aggregated/keys?{span}&limit=2")
            assert [k["api_key"] for k in page["api_keys"]] == ["f" * 64, k1]  # by spend
            assert (page["total_api_keys"], page["offset"], page["limit"]) == (3, 0, 2)
            assert page["api_keys"][1]["metrics"]["spend"] == 0.75
            rest = await get(gw, f"/user/daily/activity/aggregated/keys?{span}&offset=2")
            assert [k["api_key"] for k in rest["api_keys"]] == ["unattributed"]
            for text, want in (("ALPHA", [k1]), ("ann@EXAMPLE", [k1]), ("unatt", ["unattributed"]),
                               ("ffff", ["f" * 64]), ("nobody", [])):
                found = await get(gw, f"/user/daily/activity/aggregated/search?{span}&search={text}")
                assert [k["api_key"] for k in found["api_keys"]] == want, text
            await get(gw, f"/user/daily/activity/aggregated/search?{span}", status=400)
            top = await get(gw, f"/user/daily/activity/aggregated/model_top_keys?{span}&model_group=m2")
            assert (top["model"], top["by_model_group"], [k["api_key"] for k in top["api_keys"]]) == (
                "m2", True, ["f" * 64])
            top = await get(gw, f"/user/daily/activity/aggregated/model_top_keys?{span}&model_group=gpt-x-1"
                                "&by_model_group=false")
            assert [k["api_key"] for k in top["api_keys"]] == [k1]
            users = await get(gw, f"/user/daily/activity/aggregated/users?{span}")
            assert [(u["user_id"], u["spend"], u["user_email"]) for u in users["users"]] == [
                ("u-2", 1.0, None), ("u-1", 0.75, "ann@example.com"), ("u-3", 0.125, None)]
            assert users["total_users"] == 3
            leak = await get(gw, f"/user/daily/activity/aggregated/cache_leakage_keys?{span}")
            assert [k["api_key"] for k in leak["api_keys"]] == [k1, "f" * 64, "unattributed"]  # 20 - 4, 10, 10
            customers = await get(gw, f"/end_user/daily/activity/aggregated/keys?{span}")
            assert customers["total_api_keys"] == 0

    asyncio.run(main())


def test_exports(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            k1, today, yesterday, span = await _seed(gw)
            r: Reply = await call(gw, "GET", f"/team/daily/activity/export?{span}&export_type=daily_with_keys",
                                     headers=AUTH)
            assert r.status == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
            assert r.headers["content-disposition"] == (
                f'attachment; filename="team-usage-{yesterday}-{today}-daily_with_keys.csv"')
            assert r.headers["cache-control"] == "no-store" and r.body.endswith(b"\r\n")
            rows = list(csv.DictReader(io.StringIO(r.body.decode())))
            assert list(rows[0]) == ["date", "entity_id", "entity_alias", "api_key", "key_alias", "user_id",
                                     "user_email", "model", "spend", "flat_cost", "prompt_tokens",
                                     "completion_tokens", "api_requests", "successful_requests", "failed_requests",
                                     "cache_read_input_tokens", "cache_creation_input_tokens"]
            assert [(x["date"], x["entity_id"], x["entity_alias"], x["key_alias"], x["spend"]) for x in rows] == [
                (yesterday, "t-red", "Red Team", "'=alpha", "0.25"), (today, "t-red", "Red Team", "'=alpha", "0.5")]
            keyed = (await call(gw, "GET", f"/user/daily/activity/export?{span}&format=json"
                                           "&export_type=daily_with_keys", headers=AUTH)).json()
            assert [(x["entity_id"], x["api_key"], x["key_alias"], x["entity_alias"]) for x in keyed] == [
                ("u-1", k1, "=alpha", None), ("u-1", k1, "=alpha", None), ("u-2", "f" * 64, None, None),
                ("u-3", "unattributed", "Unattributed", None)]  # JSON cells as they are
            r = await call(gw, "GET", f"/user/daily/activity/export?{span}&format=json&export_type=daily_with_users",
                           headers=AUTH)
            assert r.headers["content-type"] == "application/json"
            got = [(x["date"], x["entity_id"], x["user_id"], x["user_email"], x["api_key"]) for x in r.json()]
            assert got == [(yesterday, "u-1", "u-1", "ann@example.com", None),
                           (today, "u-1", "u-1", "ann@example.com", None), (today, "u-2", None, None, None),
                           (today, "u-3", None, None, None)]  # by the key's owner: u-2's key is not stored
            models = await call(gw, "GET", f"/user/daily/activity/export?{span}&format=json"
                                           "&export_type=daily_with_models", headers=AUTH)
            assert {x["model"] for x in models.json()} == {"m", "gpt-x-1"}
            daily = (await call(gw, "GET", f"/user/daily/activity/export?{span}&format=json", headers=AUTH)).json()
            assert len(daily) == 4 and {x["api_key"] for x in daily} == {None}
            for bad in ("export_type=weekly", "format=xlsx"):
                await get(gw, f"/user/daily/activity/export?{span}&{bad}", status=400)
            empty = await call(gw, "GET", "/tag/daily/activity/export?start_date=2020-01-01&end_date=2020-01-02",
                               headers={"authorization": f"Bearer {MASTER}"})
            assert empty.body == (",".join(["date", "entity_id", "entity_alias", "api_key", "key_alias", "user_id",
                                            "user_email", "model", "spend", "flat_cost", "prompt_tokens",
                                            "completion_tokens", "api_requests", "successful_requests",
                                            "failed_requests", "cache_read_input_tokens",
                                            "cache_creation_input_tokens"]) + "\r\n").encode()

    asyncio.run(main())


def test_cache_activity(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/global/activity/cache_hits`` (its cache dashboard): per call type the provider-answered
    requests, hits and failures, the hit ratio, the filters (repeatable) and their choices, the failures by
    error code and class; a caller that is not the admin sees its own rows."""
    from relaygate.sinks.record import Outcome

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_key(Key(token=hash_token(OWN), user_id="u-1", key_alias="alpha"))
            k1, now, d = hash_token(OWN), time.time(), gw.store.dialect
            rows = [rec("c1", 0.1, now, key_hash=k1, user_id="u-1", completion_tokens=7),
                    rec("c2", 0.0, now, key_hash=k1, user_id="u-1", cache_hit=True, completion_tokens=7),
                    rec("c3", 0.0, now, key_hash=k1, user_id="u-1", cache_hit=True, completion_tokens=7),
                    rec("c4", 0.0, now, key_hash="e" * 64, status=429, outcome=Outcome.ERROR, upstream_model="gpt-y"),
                    rec("c5", 0.0, now, key_hash="e" * 64, route="embeddings")]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 5
            day = time.strftime("%Y-%m-%d", time.gmtime(now))
            span = f"start_date={day}&end_date={day}"
            body = await get(gw, f"/global/activity/cache_hits?{span}")
            assert body["groups"] == [
                {"call_type": "acompletion", "api_requests": 1, "cache_hits": 2, "failed_requests": 1,
                 "cached_completion_tokens": 14, "generated_completion_tokens": 12},
                {"call_type": "aembedding", "api_requests": 1, "cache_hits": 0, "failed_requests": 0,
                 "cached_completion_tokens": 0, "generated_completion_tokens": 5}]
            assert body["totals"] == {"api_requests": 2, "cache_hits": 2, "failed_requests": 1,
                                      "cached_completion_tokens": 14, "cache_hit_ratio": 40.0}
            assert body["filter_options"] == {"key_aliases": ["Unnamed Key", "alpha"], "models": ["gpt-y", "m"]}
            assert body["error_breakdown"] == [{"call_type": "acompletion", "error_code": "429",
                                                "error_class": "RateLimitError", "count": 1}]
            only = await get(gw, f"/global/activity/cache_hits?{span}&key_aliases=alpha&key_aliases=nobody")
            assert only["totals"]["cache_hits"] == 2 and only["totals"]["failed_requests"] == 0
            assert (await get(gw, f"/global/activity/cache_hits?{span}&models=gpt-y"))["totals"]["failed_requests"] == 1
            mine = await get(gw, f"/global/activity/cache_hits?{span}", {"authorization": f"Bearer {OWN}"})
            assert mine["totals"]["api_requests"] + mine["totals"]["cache_hits"] == 3
            assert mine["filter_options"]["key_aliases"] == ["alpha"]
            await get(gw, "/global/activity/cache_hits?start_date=2026-13-01&end_date=2026-12-01", status=400)

    asyncio.run(main())


def test_org_admins_and_tag_readers(db_url: str) -> None:  # noqa: F811
    """As LiteLLM's resolvers: an ``org_admin`` reads its organizations' days (another one is a 403, a user that
    administers none gets an empty answer), and a caller that is not the admin reads the tags of its own keys'
    requests only."""
    from relaygate.store import Organization, OrganizationMember

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_user(User(user_id="u-1"))
            await gw.store.create_organization(Organization(organization_id="o-1", organization_alias="Acme"))
            await gw.store.create_organization(Organization(organization_id="o-2"))
            await gw.store.add_organization_members("o-1", [OrganizationMember(organization_id="o-1", user_id="u-1",
                                                                               user_role="org_admin")])
            await gw.store.create_key(Key(token=hash_token(OWN), user_id="u-1"))
            other = "sk-other-aggregated-2"
            await gw.store.create_key(Key(token=hash_token(other), user_id="u-9"))
            now, d = time.time(), gw.store.dialect
            rows = [rec("o1", 0.5, now, org_id="o-1", key_hash=hash_token(OWN), user_id="u-1", tags=["a"]),
                    rec("o2", 0.25, now, org_id="o-2", key_hash=hash_token(other), user_id="u-9", tags=["a", "b"])]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 2
            day = time.strftime("%Y-%m-%d", time.gmtime(now))
            span = f"start_date={day}&end_date={day}"
            mine, theirs = {"authorization": f"Bearer {OWN}"}, {"authorization": f"Bearer {other}"}
            orgs = await get(gw, f"/organization/daily/activity/aggregated?{span}", mine)
            entities = orgs["results"][0]["breakdown"]["entities"]
            assert list(entities) == ["o-1"] and entities["o-1"]["metadata"] == {"organization_alias": "Acme"}
            await get(gw, f"/organization/daily/activity?{span}&organization_ids=o-2", mine, status=403)
            assert (await get(gw, f"/organization/daily/activity?{span}", theirs))["results"] == []
            assert len((await get(gw, f"/organization/daily/activity?{span}"))["results"][0]["breakdown"]
                       ["entities"]) == 2  # the admin
            tags = await get(gw, f"/tag/daily/activity/aggregated?{span}", mine)
            assert {n: e["metrics"]["spend"] for n, e in tags["results"][0]["breakdown"]["entities"].items()} == {
                "a": 0.5}
            tags = await get(gw, f"/tag/daily/activity/aggregated?{span}", theirs)
            assert set(tags["results"][0]["breakdown"]["entities"]) == {"a", "b"}

    asyncio.run(main())
