"""CRUD, filters, paging, errors, transactions and the change counter, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relaygate.store import (
    Budget,
    Customer,
    Duplicate,
    InvalidField,
    Key,
    ModelRow,
    NotFound,
    Organization,
    OrganizationMember,
    Store,
    Team,
    TeamMember,
    User,
    hash_token,
    key_name,
)
from tests.store.conftest import run


def _key(raw: str, **kw: object) -> Key:
    return Key(token=hash_token(raw), key_name=key_name(raw), **kw)  # type: ignore[arg-type]


def test_hash_and_display_name_as_litellm() -> None:
    import hashlib

    assert hash_token("sk-1234") == hashlib.sha256(b"sk-1234").hexdigest()
    assert key_name("sk-abcdefgh1234") == "sk-...1234"


def test_key_crud_and_json_round_trip(db_url: str) -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

    async def body(s: Store) -> None:
        k = _key("sk-live-0001", key_alias="app", models=["gpt-4o", "claude-*"], aliases={"fast": "gpt-4o-mini"},
                 metadata={"env": "prod", "nested": {"a": [1, 2.5, None, True]}, "ünï": "çødé"},
                 tags=["t1", "t2"], permissions={"allow_pii": False}, max_budget=12.5, soft_budget=10.0,
                 budget_duration="30d", model_max_budget={"gpt-4o": {"budget_limit": 1.0, "time_period": "1d"}},
                 tpm_limit=1000, rpm_limit=10, max_parallel_requests=3, model_tpm_limit={"gpt-4o": 500},
                 model_rpm_limit={"gpt-4o": 5}, allowed_cache_controls=["no-cache"],
                 router_settings={"fallbacks": [{"gpt-4o": ["claude"]}], "num_retries": 2, "timeout": 30.0},
                 expires=expires, team_id="team-1", user_id="u-1", organization_id="org-1", created_by="admin")
        created = await s.create_key(k)
        assert created.created_at is not None and created.updated_at is not None
        got = await s.get_key(hash_token("sk-live-0001"))
        assert got == created
        assert got.key_name == "sk-...0001" and got.expires == expires
        assert got.metadata["nested"] == {"a": [1, 2.5, None, True]} and got.metadata["ünï"] == "çødé"
        assert got.router_settings["fallbacks"] == [{"gpt-4o": ["claude"]}]
        assert await s.get_key_by_alias("app") == created

        upd = await s.update_key(k.token, blocked=True, tpm_limit=5, metadata={"env": "dev"}, key_alias="app2")
        assert upd.blocked and upd.tpm_limit == 5 and upd.metadata == {"env": "dev"} and upd.key_alias == "app2"
        assert upd.models == ["gpt-4o", "claude-*"]  # untouched fields kept
        assert upd.updated_at is not None and created.updated_at is not None and upd.updated_at >= created.updated_at
        assert await s.get_key(k.token) == upd
        with pytest.raises(NotFound):
            await s.get_key_by_alias("app")
        assert (await s.delete_key(k.token)).key_alias == "app2"
        with pytest.raises(NotFound) as exc:
            await s.get_key(k.token)
        assert exc.value.status == 404

    run(db_url, body)


def test_duplicates_and_not_found(db_url: str) -> None:
    async def body(s: Store) -> None:
        await s.create_key(_key("sk-a", key_alias="dup"))
        with pytest.raises(Duplicate) as exc:
            await s.create_key(_key("sk-b", key_alias="dup"))
        assert exc.value.status == 400 and exc.value.field == "key_alias"
        with pytest.raises(Duplicate) as exc:
            await s.create_key(_key("sk-a"))
        assert exc.value.field == "token" and hash_token("sk-a") not in str(exc.value)
        await s.create_key(_key("sk-c", key_alias="other"))
        with pytest.raises(Duplicate):
            await s.update_key(hash_token("sk-c"), key_alias="dup")
        # several keys without an alias are fine
        await s.create_key(_key("sk-d"))
        await s.create_key(_key("sk-e"))
        await s.create_team(Team(team_id="t1", team_alias="alpha"))
        with pytest.raises(Duplicate):
            await s.create_team(Team(team_id="t2", team_alias="alpha"))
        with pytest.raises(Duplicate):
            await s.create_team(Team(team_id="t1"))
        for call in (s.get_user("nope"), s.get_team("nope"), s.get_organization("nope"), s.get_customer("nope"),
                     s.get_budget("nope"), s.get_model("nope"), s.update_key("nope", blocked=True),
                     s.delete_key("nope"), s.delete_team("nope"), s.remove_team_member("t1", "nobody"),
                     s.add_team_members("nope", [TeamMember(team_id="", user_id="u")]),
                     s.update_team_member("t1", "nobody", role="admin")):
            with pytest.raises(NotFound):
                await call
        with pytest.raises(InvalidField):
            await s.update_key(hash_token("sk-c"), no_such_field=1)
        with pytest.raises(InvalidField):
            await s.update_key(hash_token("sk-c"), token="x")
        with pytest.raises(InvalidField) as bad:
            await s.update_key(hash_token("sk-c"), tpm_limit="lots")
        assert bad.value.field == "tpm_limit"

    run(db_url, body)


def test_key_filters_and_paging(db_url: str) -> None:
    async def body(s: Store) -> None:
        for i in range(23):
            await s.create_key(_key(f"sk-{i:04d}", team_id="ta" if i % 2 else "tb", user_id=f"u{i % 3}",
                                    key_alias=f"alias-{i}"))
        page1 = await s.list_keys(team_id="ta", page=1, page_size=5)
        assert page1.total == 11 and len(page1.items) == 5 and page1.total_pages == 3
        seen = []
        for p in range(1, 4):
            pg = await s.list_keys(team_id="ta", page=p, page_size=5)
            seen += [k.token for k in pg.items]
        assert len(seen) == len(set(seen)) == 11
        assert all(k.team_id == "ta" for k in page1.items)
        both = await s.list_keys(team_id="ta", user_id="u1", page_size=100)
        assert {k.key_alias for k in both.items} == {f"alias-{i}" for i in range(23) if i % 2 and i % 3 == 1}
        assert (await s.list_keys(key_alias="alias-7")).items[0].token == hash_token("sk-0007")
        assert (await s.list_keys(page=9, page_size=5)).items == []
        assert (await s.list_keys()).total == 23
        with pytest.raises(InvalidField):
            await s.list_keys(page=0)
        with pytest.raises(InvalidField):
            await s.list_keys(page_size=100_000)

    run(db_url, body)


def test_regenerate_and_delete_many(db_url: str) -> None:
    async def body(s: Store) -> None:
        old = await s.create_key(_key("sk-old-1111", key_alias="regen", models=["m"], spend=1.5))
        new = await s.regenerate_key(old.token, _key("sk-new-2222"), max_budget=9.0)
        assert new.token == hash_token("sk-new-2222") and new.key_name == "sk-...2222"
        assert new.key_alias == "regen" and new.models == ["m"] and new.max_budget == 9.0 and new.spend == 1.5
        assert new.created_at == old.created_at
        with pytest.raises(NotFound):
            await s.get_key(old.token)
        assert (await s.get_key_by_alias("regen")).token == new.token
        await s.create_key(_key("sk-x"))
        with pytest.raises(NotFound):  # one missing: nothing deleted
            await s.delete_keys([new.token, "missing"])
        assert (await s.list_keys()).total == 2
        assert len(await s.delete_keys([new.token, hash_token("sk-x")])) == 2
        assert (await s.list_keys()).total == 0

    run(db_url, body)


def test_users(db_url: str) -> None:
    async def body(s: Store) -> None:
        u = await s.create_user(User(user_id="alice", user_email="a@x.io", user_role="internal_user",
                                     models=["gpt-4o"], max_budget=5.0, metadata={"k": "v"}, tpm_limit=7))
        assert await s.get_user("alice") == u
        await s.create_user(User(user_id="bob", user_role="proxy_admin"))
        await s.create_user(User(user_id="carol", user_role="internal_user", organization_id="o1"))
        assert {x.user_id for x in (await s.list_users(user_role="internal_user")).items} == {"alice", "carol"}
        assert [x.user_id for x in (await s.list_users(organization_id="o1")).items] == ["carol"]
        upd = await s.update_user("alice", user_role="internal_user_viewer", rpm_limit=3)
        assert upd.user_role == "internal_user_viewer" and upd.rpm_limit == 3 and upd.tpm_limit == 7
        with pytest.raises(Duplicate):
            await s.create_user(User(user_id="alice"))
        await s.delete_user("bob")
        assert (await s.list_users()).total == 2

    run(db_url, body)


def test_teams_and_members(db_url: str) -> None:
    async def body(s: Store) -> None:
        await s.create_user(User(user_id="u1"))
        await s.create_user(User(user_id="u2"))
        team = await s.create_team(Team(team_id="t1", team_alias="alpha", models=["gpt-4o"], tpm_limit=100,
                                        max_budget=50.0, organization_id="o1", metadata={"x": 1}),
                                   [TeamMember(team_id="", user_id="u1", role="admin", user_email="u1@x")])
        assert team.members_with_roles == [{"user_id": "u1", "user_email": "u1@x", "role": "admin"}]
        assert (await s.get_team("t1")).members_with_roles == team.members_with_roles
        assert (await s.get_user("u1")).teams == ["t1"]
        t2 = await s.add_team_members("t1", [TeamMember(team_id="", user_id="u2"),
                                             TeamMember(team_id="", user_id="ghost")])
        assert [m["user_id"] for m in t2.members_with_roles] == ["u1", "u2", "ghost"]
        assert (await s.get_user("u2")).teams == ["t1"]
        m = await s.update_team_member("t1", "u2", role="admin", budget_id="b1")
        assert m.role == "admin" and m.budget_id == "b1"
        assert {x["user_id"]: x["role"] for x in (await s.get_team("t1")).members_with_roles}["u2"] == "admin"
        assert [x.user_id for x in await s.list_team_members("t1")] == ["u1", "u2", "ghost"]
        t3 = await s.remove_team_member("t1", "u1")
        assert [x["user_id"] for x in t3.members_with_roles] == ["u2", "ghost"]
        assert (await s.get_user("u1")).teams == []
        with pytest.raises(InvalidField):
            await s.update_team("t1", members_with_roles=[])
        upd = await s.update_team("t1", blocked=True, models=["a", "b"], rpm_limit=9)
        assert upd.blocked and upd.models == ["a", "b"] and upd.tpm_limit == 100
        await s.create_team(Team(team_id="t2", organization_id="o2"))
        assert [x.team_id for x in (await s.list_teams(organization_id="o1")).items] == ["t1"]
        assert (await s.list_teams(team_alias="alpha")).total == 1
        await s.create_key(_key("sk-team-key", team_id="t1"))
        await s.create_key(_key("sk-other", team_id="t2"))
        await s.delete_team("t1", with_keys=True)
        assert (await s.get_user("u2")).teams == []
        assert await s.list_team_members("t1") == []
        assert [k.team_id for k in (await s.list_keys()).items] == ["t2"]
        await s.delete_user("u2")

    run(db_url, body)


def test_organizations_and_members(db_url: str) -> None:
    async def body(s: Store) -> None:
        await s.create_budget(Budget(budget_id="b-org", max_budget=100.0, tpm_limit=1000))
        org = await s.create_organization(Organization(organization_id="o1", organization_alias="Acme",
                                                       budget_id="b-org", models=["gpt-4o"], metadata={"a": 1}))
        assert await s.get_organization("o1") == org
        await s.create_organization(Organization(organization_id="o2", organization_alias="Beta"))
        assert [o.organization_id for o in (await s.list_organizations(organization_alias="Beta")).items] == ["o2"]
        members = await s.add_organization_members("o1", [
            OrganizationMember(organization_id="", user_id="u1", user_role="org_admin"),
            OrganizationMember(organization_id="", user_id="u2", user_role="internal_user")])
        assert [m.organization_id for m in members] == ["o1", "o1"]
        with pytest.raises(Duplicate):  # all or none: u3 is not added either
            await s.add_organization_members("o1", [OrganizationMember(organization_id="", user_id="u3"),
                                                    OrganizationMember(organization_id="", user_id="u1")])
        assert [m.user_id for m in await s.list_organization_members("o1")] == ["u1", "u2"]
        upd = await s.update_organization_member("o1", "u2", user_role="org_admin")
        assert upd.user_role == "org_admin"
        await s.remove_organization_member("o1", "u1")
        assert [m.user_id for m in await s.list_organization_members("o1")] == ["u2"]
        assert (await s.update_organization("o1", models=[])).models == []
        await s.delete_organization("o1")
        assert await s.list_organization_members("o1") == []
        with pytest.raises(NotFound):
            await s.add_organization_members("o1", [OrganizationMember(organization_id="", user_id="u9")])

    run(db_url, body)


def test_customers_budgets_models(db_url: str) -> None:
    reset = datetime.now(UTC) + timedelta(days=1)

    async def body(s: Store) -> None:
        b = await s.create_budget(Budget(budget_id="b1", max_budget=10.0, soft_budget=8.0, rpm_limit=60,
                                         budget_duration="1d", budget_reset_at=reset,
                                         model_max_budget={"gpt-4o": {"budget_limit": 2.0}}))
        assert await s.get_budget("b1") == b and b.budget_reset_at == reset
        await s.create_budget(Budget(budget_id="b2"))
        assert (await s.list_budgets()).total == 2
        assert (await s.update_budget("b2", max_budget=1.0)).max_budget == 1.0
        await s.delete_budget("b2")

        c = await s.create_customer(Customer(user_id="end-1", alias="Shop", budget_id="b1",
                                             allowed_model_region="eu", default_model="gpt-4o"))
        assert await s.get_customer("end-1") == c
        await s.create_customer(Customer(user_id="end-2", blocked=True))
        assert [x.user_id for x in (await s.list_customers(blocked=True)).items] == ["end-2"]
        assert [x.user_id for x in (await s.list_customers(blocked=False)).items] == ["end-1"]
        assert (await s.update_customer("end-1", blocked=True)).blocked
        assert (await s.list_customers(blocked=True)).total == 2
        assert [x.user_id for x in (await s.list_customers(budget_id="b1")).items] == ["end-1"]
        with pytest.raises(Duplicate):
            await s.create_customer(Customer(user_id="end-1"))
        await s.delete_customer("end-2")

        m = await s.create_model(ModelRow(model_id="m1", model_name="gpt-4o",
                                          litellm_params={"model": "openai/gpt-4o", "api_key": "os.environ/KEY"},
                                          model_info={"access_groups": ["beta"]}, created_by="admin"))
        assert await s.get_model("m1") == m
        await s.create_model(ModelRow(model_id="m2", model_name="claude"))
        assert [x.model_id for x in (await s.list_models(model_name="gpt-4o")).items] == ["m1"]
        upd = await s.update_model("m1", litellm_params={"model": "openai/gpt-4o-mini"})
        assert upd.litellm_params == {"model": "openai/gpt-4o-mini"} and upd.created_by == "admin"
        await s.delete_model("m1")
        assert (await s.list_models()).total == 1

    run(db_url, body)


def test_multi_row_writes_are_all_or_nothing(db_url: str) -> None:
    async def body(s: Store) -> None:
        await s.create_team(Team(team_id="t1"), [TeamMember(team_id="", user_id="a")])
        v = await s.change_version()
        with pytest.raises(Duplicate):  # b is fine, a is already a member: neither is added
            await s.add_team_members("t1", [TeamMember(team_id="", user_id="b"), TeamMember(team_id="", user_id="a")])
        assert [m.user_id for m in await s.list_team_members("t1")] == ["a"]
        assert [m["user_id"] for m in (await s.get_team("t1")).members_with_roles] == ["a"]
        with pytest.raises(Duplicate):  # the team row is rolled back with its members
            await s.create_team(Team(team_id="t2"), [TeamMember(team_id="", user_id="x"),
                                                     TeamMember(team_id="", user_id="x")])
        with pytest.raises(NotFound):
            await s.get_team("t2")
        assert await s.list_team_members("t2") == []
        await s.create_key(_key("sk-1", key_alias="one"))
        await s.create_key(_key("sk-2"))
        with pytest.raises(Duplicate):  # regenerate onto a taken token: the old key is not deleted
            await s.regenerate_key(hash_token("sk-1"), _key("sk-2"))
        assert (await s.get_key_by_alias("one")).token == hash_token("sk-1")
        assert await s.change_version() == v + 2  # only the two create_key committed

    run(db_url, body)


def test_change_version_moves_with_every_write_only(db_url: str) -> None:
    async def body(s: Store) -> None:
        v0 = await s.change_version()
        await s.create_key(_key("sk-1"))
        v1 = await s.change_version()
        assert v1 == v0 + 1
        await s.get_key(hash_token("sk-1"))
        await s.list_keys()
        assert await s.change_version() == v1  # reads do not move it
        await s.update_key(hash_token("sk-1"), blocked=True)
        await s.create_user(User(user_id="u"))
        await s.delete_key(hash_token("sk-1"))
        assert await s.change_version() == v1 + 3
        with pytest.raises(NotFound):
            await s.delete_key(hash_token("sk-1"))
        assert await s.change_version() == v1 + 3  # a failed write does not move it

    run(db_url, body)


def test_two_stores_on_one_database_see_each_others_writes(db_url: str) -> None:
    from relaygate.store import open_store

    async def body(a: Store) -> None:
        b = await open_store(a_url)
        try:
            v = await b.change_version()
            await a.create_key(_key("sk-shared", key_alias="shared"))
            assert await b.change_version() == v + 1
            assert (await b.get_key_by_alias("shared")).token == hash_token("sk-shared")
            await b.update_key(hash_token("sk-shared"), blocked=True)
            assert (await a.get_key(hash_token("sk-shared"))).blocked
        finally:
            await b.close()

    a_url = db_url
    run(db_url, body)
