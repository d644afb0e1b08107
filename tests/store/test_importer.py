"""``relaygate db import-litellm``: a LiteLLM database (LiteLLM's Prisma tables, created on the session's real
PostgreSQL from tests/store/litellm_schema.sql) copied into relaygate's store on both backends: counts,
field mapping, idempotence (a second run updates, never duplicates), and an imported key answering in a
gateway by its original key (the hash is kept)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relaygate.store import hash_token
from relaygate.store.importer import import_litellm
from tests.pg import PASSWORD, PostgresServer
from tests.store.conftest import run

SCHEMA = Path(__file__).with_name("litellm_schema.sql")
LITELLM_KEY = "sk-litellm-original-1234"
SECOND_KEY = "sk-litellm-second-5678"

ROWS = [
    """INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, tpm_limit, rpm_limit, model_max_budget,
       budget_duration, created_by, updated_by) VALUES ('b-org', 100, 5000, 50, '{"gpt-a": {"max_budget": 1}}',
       '30d', 'admin', 'admin'), ('b-cust', 5, NULL, NULL, NULL, NULL, 'admin', 'admin')""",
    """INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, metadata, models,
       created_by, updated_by) VALUES ('org1', 'Org One', 'b-org', '{"tier": "gold"}', ARRAY['gpt-a'], 'a', 'a')""",
    """INSERT INTO "LiteLLM_ModelTable" (id, aliases, created_by, updated_by)
       VALUES (7, '{"fast": "gpt-a"}', 'a', 'a')""",
    """INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id, admins, members, members_with_roles,
       models, tpm_limit, max_budget, blocked, model_id) VALUES ('team1', 'Team One', 'org1', ARRAY['alice'],
       ARRAY['alice', 'bob'], '[{"role": "admin", "user_id": "alice", "user_email": null},
       {"role": "user", "user_id": "bob", "user_email": null}]', ARRAY['gpt-a', 'gpt-b'], 9000, 20, false, 7),
       ('team2', NULL, NULL, ARRAY[]::TEXT[], ARRAY[]::TEXT[], '{}', ARRAY[]::TEXT[], NULL, NULL, false, NULL)""",
    """INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams, models, password, max_budget,
       organization_id) VALUES ('alice', 'alice@x.io', 'internal_user', ARRAY['team1'], ARRAY[]::TEXT[],
       'hashed-pw', 10, 'org1'), ('bob', 'bob@x.io', 'internal_user_viewer', ARRAY['team1'], ARRAY[]::TEXT[],
       NULL, NULL, NULL)""",
    """INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, budget_id) VALUES ('alice', 'team1', 1.5,
       NULL)""",
    """INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id, user_role)
       VALUES ('alice', 'org1', 'org_admin')""",
    """INSERT INTO "LiteLLM_EndUserTable" (user_id, alias, budget_id, blocked, allowed_model_region)
       VALUES ('cust1', 'Customer', 'b-cust', false, 'eu'), ('cust-blocked', NULL, NULL, true, NULL)""",
    """INSERT INTO "LiteLLM_TagTable" (tag_name, description, models, model_info, spend, budget_id, created_by)
       VALUES ('prod', 'production traffic', ARRAY['gpt-a'], '{"m1": "gpt-a"}', 2.5, 'b-cust', 'admin')""",
    f"""INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, models, aliases, user_id, team_id,
       metadata, blocked, tpm_limit, rpm_limit, max_budget, spend, expires, organization_id, rotation_count)
       VALUES ('{hash_token(LITELLM_KEY)}', 'sk-...1234', 'alice-key', ARRAY['gpt-a'], '{{}}', 'alice', 'team1',
       '{{"env": "prod"}}', NULL, 100, 10, 3.5, 0.25, NULL, 'org1', 2),
       ('{hash_token(SECOND_KEY)}', 'sk-...5678', 'alice-key', ARRAY[]::TEXT[], '{{}}', 'bob', NULL, '{{}}', true,
       NULL, NULL, NULL, 0, '2030-01-01 00:00:00', NULL, 0)""",
]


def litellm_database(server: PostgresServer, schema: str | None = None) -> str:
    """A new database holding LiteLLM's tables and :data:`ROWS` (in ``schema`` when given); its URL."""
    import asyncpg  # type: ignore[import-untyped]

    url = server.new_database()

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            if schema is not None:
                await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
            await conn.execute(SCHEMA.read_text())
            for sql in ROWS:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(fill())
    return url


async def _sql(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_import_litellm(db_url: str, postgres_server: PostgresServer) -> None:
    source = litellm_database(postgres_server)

    async def body(store: object) -> None:
        from relaygate.store import Store

        assert isinstance(store, Store)
        counts = await import_litellm(source, store)
        assert counts.read == {"budgets": 2, "organizations": 1, "users": 2, "organization_members": 1, "teams": 2,
                               "team_members": 2, "customers": 2, "tags": 1, "keys": 2, "models": 0}
        assert counts.created == {k: n for k, n in counts.read.items() if n} and counts.updated == {}
        assert any("alice-key" in n for n in counts.notes)  # LiteLLM allows a repeated alias; relaygate does not
        key = await store.get_key(hash_token(LITELLM_KEY))
        assert (key.key_alias, key.models, key.team_id, key.user_id, key.tpm_limit, key.max_budget, key.spend,
                key.metadata, key.blocked, key.organization_id) == (
            "alice-key", ["gpt-a"], "team1", "alice", 100, 3.5, 0.25, {"env": "prod"}, False, "org1")
        other = await store.get_key(hash_token(SECOND_KEY))
        assert other.blocked and other.key_alias is None and other.expires is not None
        team = await store.get_team("team1")
        assert team.model_aliases == {"fast": "gpt-a"} and team.organization_id == "org1" and team.tpm_limit == 9000
        assert [(m.user_id, m.role) for m in await store.list_team_members("team1")] == [
            ("alice", "admin"), ("bob", "user")]
        assert (await store.get_team("team2")).members_with_roles == []
        alice = await store.get_user("alice")
        assert alice.user_email == "alice@x.io" and alice.teams == ["team1"] and alice.max_budget == 10
        org = await store.get_organization("org1")
        assert org.organization_alias == "Org One" and org.metadata == {"tier": "gold"} and org.budget_id == "b-org"
        assert [(m.user_id, m.user_role) for m in await store.list_organization_members("org1")] == [
            ("alice", "org_admin")]
        budget = await store.get_budget("b-org")
        assert budget.model_max_budget == {"gpt-a": {"max_budget": 1}} and budget.rpm_limit == 50
        cust = await store.get_customer("cust1")
        assert cust.budget_id == "b-cust" and cust.allowed_model_region == "eu"
        assert (await store.get_customer("cust-blocked")).blocked
        tag = await store.get_tag("prod")
        assert (tag.description, tag.models, tag.model_info, tag.spend, tag.budget_id) == (
            "production traffic", ["gpt-a"], {"m1": "gpt-a"}, 2.5, "b-cust")

        # a second run after changes in LiteLLM: updated in place, nothing duplicated
        await _sql(source, """UPDATE "LiteLLM_VerificationToken" SET tpm_limit = 7, blocked = true
                              WHERE key_name = 'sk-...1234'""")
        again = await import_litellm(source, store)
        assert again.created == {} and again.updated == counts.created
        key = await store.get_key(hash_token(LITELLM_KEY))
        assert key.tpm_limit == 7 and key.blocked and key.key_alias == "alice-key"
        assert (await store.list_keys()).total == 2 and (await store.list_teams()).total == 2
        assert len(await store.list_team_members("team1")) == 2

    run(db_url, body)


def test_imported_key_answers_in_a_gateway(db_url: str, postgres_server: PostgresServer) -> None:
    from relaygate.asgi import Gateway
    from relaygate.config import from_litellm
    from relaygate.store import open_store
    from tests.asgi.conftest import call

    source = litellm_database(postgres_server)

    async def main() -> None:
        store = await open_store(db_url)
        try:
            await import_litellm(source, store)
            gw = Gateway(from_litellm({
                "model_list": [{"model_name": m, "litellm_params": {"model": "mock/echo"}} for m in ("gpt-a", "gpt-b")],
                "general_settings": {"master_key": "sk-master"}}, "<test>"))
            gw.store = store
            gw.runtime.use_store(store)
            chat = {"messages": [{"role": "user", "content": "hi"}]}
            auth = {"authorization": f"Bearer {LITELLM_KEY}"}
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "gpt-a"}, headers=auth)
            assert r.status == 200, r.body
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "gpt-b"}, headers=auth)
            assert r.status == 401  # the key's own allow-list came along
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "gpt-a"},
                           headers={"authorization": f"Bearer {SECOND_KEY}"})
            assert r.status == 401 and "blocked" in r.json()["error"]["message"]
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "gpt-a", "user": "cust-blocked"},
                           headers=auth)
            assert r.status == 200  # blocked customers are read by the change poll (not started in-process)
            gw.store = None
        finally:
            await store.close()

    asyncio.run(main())


def test_cli_import(tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    from relaygate.cli import main

    source = litellm_database(postgres_server)
    target = f"sqlite:///{tmp_path / 'rg.db'}"
    assert main(["db", "import-litellm", source, "--database-url", target]) == 0
    assert main(["db", "import-litellm", source, "--database-url", target]) == 0
    out = capsys.readouterr().out
    assert "keys: 2 read, 2 new, 0 updated" in out and "keys: 2 read, 0 new, 2 updated" in out
    assert PASSWORD not in out and hash_token(LITELLM_KEY) not in out and LITELLM_KEY not in out
    assert main(["db", "import-litellm", source, "--database-url", source]) == 0  # the same database: its rg_ tables
    assert main(["db", "import-litellm", "sqlite:///x.db", "--database-url", target]) == 2
    bad = postgres_server.url("nope", password="wrong")
    assert main(["db", "import-litellm", bad, "--database-url", target]) == 1
    err = capsys.readouterr().err
    assert "wrong" not in err and "cannot connect to the LiteLLM database" in err


@pytest.mark.e2e
def test_first_start_on_litellms_own_database(postgres_server: PostgresServer) -> None:
    """A swap-in with ``DATABASE_URL`` unchanged: relaygate's first start on LiteLLM's database imports its
    rows, so a LiteLLM key answers from the first request; a second start imports nothing again."""
    import httpx

    from tests.conftest import start_gateway

    source = litellm_database(postgres_server)
    cfg = ("model_list:\n  - model_name: gpt-a\n    litellm_params: {model: mock/echo}\n"
           "general_settings:\n  master_key: sk-master-import\n")
    chat = {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}
    for start in (1, 2):
        with start_gateway(cfg, env={"DATABASE_URL": source}) as gw:
            r = httpx.post(gw.url + "/v1/chat/completions", json=chat, timeout=30,
                           headers={"authorization": f"Bearer {LITELLM_KEY}"})
            assert r.status_code == 200, r.text
            assert ("its keys, teams and users imported" in gw.log()) is (start == 1)
            assert PASSWORD not in gw.log()
