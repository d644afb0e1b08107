"""``relaygate db import-litellm --spend-logs``: LiteLLM's ``LiteLLM_SpendLogs`` (created on the session's real
PostgreSQL from tests/store/litellm_schema.sql) copied into relaygate's spend logs on both backends, in
chunks: the field mapping, the counters agreeing with the rows after any number of runs, the entities' own
spend left as LiteLLM had it, and LiteLLM's ``/spend/logs`` shape served from the imported rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relaygate.store import hash_token
from relaygate.store.import_spend import import_spend_logs
from relaygate.store.importer import import_litellm
from relaygate.store.spend import entity_totals, read_spend_logs
from tests.pg import PostgresServer
from tests.store.conftest import db_url  # noqa: F401  (both backends)
from tests.store.test_importer import LITELLM_KEY, _sql, litellm_database

START = datetime(2026, 11, 2, 8, 30, 0, 123000)
MANY = 1500


def spend_rows(source: str) -> None:
    """Three described rows and :data:`MANY` plain ones in LiteLLM's spend table."""
    key = hash_token(LITELLM_KEY)
    meta_ok = {"user_api_key_alias": "alice-key", "usage_object": {"prompt_tokens_details": {"cached_tokens": 4}},
               "requester_metadata": {"env": "prod"}}
    meta_fail = {"error_information": {"error_code": "429", "error_class": "RateLimitError"}}
    rows = [
        ("r-ok", "acompletion", key, 0.0125, 30, 20, 10, START, START + timedelta(seconds=1), "gpt-a", "gpt-a",
         "openai", "alice", json.dumps(meta_ok), "False", json.dumps(["prod", "batch"]), "team1", "org1",
         "cust1", "success", json.dumps([{"role": "user", "content": "hi"}]), json.dumps({"id": "x"})),
        ("r-fail", "acompletion", key, 0.0, 0, 0, 0, START + timedelta(minutes=1),
         START + timedelta(minutes=1, seconds=1), "gpt-a", "gpt-a", "openai", "alice", json.dumps(meta_fail),
         "", "[]", "team1", None, None, "failure", "{}", "{}"),
        ("r-hit", "aembedding", "", 0.0, 5, 5, 0, START + timedelta(minutes=2),
         START + timedelta(minutes=2), "text-embedding-3-small", "emb", "openai", "", "{}", "True", "[]",
         None, None, None, "success", "{}", "{}"),
    ]
    rows += [(f"r-{i:05d}", "acompletion", key, 0.000001 * (i % 7 + 1), 3, 2, 1, START + timedelta(seconds=i),
              START + timedelta(seconds=i, milliseconds=300), "gpt-a", "gpt-a", "openai", "bob", "{}", "False",
              "[]", None, None, None, "success", "{}", "{}") for i in range(MANY)]

    async def fill() -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(source)
        try:
            await conn.executemany(
                'INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, '
                'completion_tokens, "startTime", "endTime", model, model_group, custom_llm_provider, "user", metadata, '
                "cache_hit, request_tags, team_id, organization_id, end_user, status, messages, response) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16::jsonb, $17, $18, "
                "$19, $20, $21::jsonb, $22::jsonb)", rows)
        finally:
            await conn.close()

    asyncio.run(fill())


def test_import_spend_logs(db_url: str, postgres_server: PostgresServer) -> None:  # noqa: F811
    from relaygate.asgi import Gateway
    from relaygate.config import from_litellm
    from relaygate.store import open_store
    from tests.asgi.conftest import call

    source = litellm_database(postgres_server)
    spend_rows(source)
    total = MANY + 3
    expected_nanos = 12_500_000 + sum(round(0.000001 * (i % 7 + 1) * 1e9) for i in range(MANY))

    async def main() -> None:
        store = await open_store(db_url)
        try:
            await import_litellm(source, store)  # keys, teams ... first (the key's spend is LiteLLM's 0.25)
            assert await import_spend_logs(source, store, chunk=700) == (total, total)
            ok = (await read_spend_logs(store, request_id="r-ok"))[0]
            assert (ok.api_key, ok.key_alias, ok.user_id, ok.team_id, ok.organization_id, ok.end_user) == (
                hash_token(LITELLM_KEY), "alice-key", "alice", "team1", "org1", "cust1")
            assert (ok.spend, ok.spend_nanos, ok.prompt_tokens, ok.completion_tokens, ok.cache_read_tokens) == (
                0.0125, 12_500_000, 20, 10, 4)
            assert ok.request_tags == ["prod", "batch"] and ok.status == "success" and ok.status_code == 200
            assert ok.start_time == START.replace(tzinfo=UTC) and ok.model_group == "gpt-a"
            assert ok.messages == [{"role": "user", "content": "hi"}] and ok.metadata["requester_metadata"] == {
                "env": "prod"}
            fail = (await read_spend_logs(store, request_id="r-fail"))[0]
            assert (fail.status, fail.status_code, fail.spend) == ("failure", 429, 0.0)
            hit = (await read_spend_logs(store, request_id="r-hit"))[0]
            assert hit.cache_hit and hit.api_key is None and hit.user_id is None and hit.call_type == "aembedding"

            def totals(rows: list[dict[str, int]]) -> tuple[int, int]:
                return rows[0]["spend_nanos"], rows[0]["requests"]

            assert totals(await entity_totals(store, "global", [""])) == (expected_nanos, total)
            assert totals(await entity_totals(store, "tag", ["prod"])) == (12_500_000, 1)
            assert (await store.get_key(hash_token(LITELLM_KEY))).spend == 0.25  # LiteLLM's, not added again
            # again: nothing new, the counters unchanged
            assert await import_spend_logs(source, store, chunk=700) == (total, 0)
            assert totals(await entity_totals(store, "global", [""])) == (expected_nanos, total)
            # a row LiteLLM wrote since: only it is new
            await _sql(source, """INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, "startTime",
                                  "endTime", model, requester_ip_address, proxy_server_request) VALUES ('r-late',
                                  'acompletion', 0.5, now(), now(), 'gpt-a', '10.1.2.3',
                                  '{"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}')""")
            assert await import_spend_logs(source, store) == (total + 1, 1)
            late = (await read_spend_logs(store, request_id="r-late"))[0]
            assert late.requester_ip_address == "10.1.2.3"
            assert late.proxy_server_request == {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}
            assert totals(await entity_totals(store, "global", [""])) == (expected_nanos + 500_000_000, total + 1)

            # LiteLLM's /spend/logs served from the imported rows
            gw = Gateway(from_litellm({"model_list": [], "general_settings": {"master_key": "sk-m"}}, "<test>"))
            gw.store = store
            gw.runtime.use_store(store)
            r = await call(gw, "GET", "/spend/logs?request_id=r-ok", headers={"authorization": "Bearer sk-m"})
            assert r.status == 200, r.body
            [row] = r.json()
            assert row["request_id"] == "r-ok" and row["spend"] == 0.0125 and row["user"] == "alice"
            assert row["request_tags"] == ["prod", "batch"] and row["metadata"]["user_api_key_alias"] == "alice-key"
            gw.store = None
        finally:
            await store.close()

    asyncio.run(main())


def test_cli_spend_logs(tmp_path: Path, postgres_server: PostgresServer,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from relaygate.cli import main

    source = litellm_database(postgres_server)
    spend_rows(source)
    target = f"sqlite:///{tmp_path / 'rg.db'}"
    assert main(["db", "import-litellm", source, "--database-url", target]) == 0
    assert "spend logs" not in capsys.readouterr().out  # only when asked
    assert main(["db", "import-litellm", source, "--database-url", target, "--spend-logs"]) == 0
    assert f"spend logs: {MANY + 3} read, {MANY + 3} new" in capsys.readouterr().out
    assert main(["db", "import-litellm", source, "--database-url", target, "--spend-logs"]) == 0
    assert f"spend logs: {MANY + 3} read, 0 new" in capsys.readouterr().out


def daily_rows(source: str) -> None:
    """LiteLLM's daily tables for 2026-10-01 (a user's two endpoints, a team, a tag, an organization, an end
    user) and 2026-10-02 (a user)."""
    rows = [
        ("LiteLLM_DailyUserSpend", "user_id", "alice", "2026-10-01", "/chat/completions", 0.25, 100, 40, 5, 3, 4, 1),
        ("LiteLLM_DailyUserSpend", "user_id", "alice", "2026-10-01", "/responses", 0.125, 10, 4, 0, 0, 2, 0),
        ("LiteLLM_DailyTeamSpend", "team_id", "team1", "2026-10-01", "/chat/completions", 0.375, 110, 44, 5, 3, 6, 1),
        ("LiteLLM_DailyTagSpend", "tag", "prod", "2026-10-01", "/chat/completions", 0.25, 100, 40, 5, 3, 4, 1),
        ("LiteLLM_DailyOrganizationSpend", "organization_id", "org1", "2026-10-01", None, 0.375, 110, 44, 0, 0, 6, 1),
        ("LiteLLM_DailyEndUserSpend", "end_user_id", "cust1", "2026-10-01", None, 0.5, 1, 1, 0, 0, 1, 0),
        ("LiteLLM_DailyEndUserSpend", "end_user_id", "", "2026-10-01", None, 9.0, 1, 1, 0, 0, 1, 0),  # no entity
        ("LiteLLM_DailyUserSpend", "user_id", "alice", "2026-10-02", None, 1.0, 1, 1, 0, 0, 1, 0),
    ]

    async def fill() -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(source)
        try:
            for i, (table, col, ident, day, endpoint, spend, pt, ct, cr, cw, n, failed) in enumerate(rows):
                await conn.execute(
                    f'INSERT INTO "{table}" (id, "{col}", date, api_key, model, model_group, custom_llm_provider, '
                    "endpoint, spend, prompt_tokens, completion_tokens, cache_read_input_tokens, "
                    "cache_creation_input_tokens, api_requests, successful_requests, failed_requests, updated_at) "
                    "VALUES ($1, $2, $3, 'hk1', 'gpt-a-0613', 'gpt-a', 'openai', $4, $5, $6, $7, $8, $9, $10, $11, "
                    "$12, now())", f"id-{i}", ident, day, endpoint, spend, pt, ct, cr, cw, n, n - failed, failed)
        finally:
            await conn.close()

    asyncio.run(fill())


def test_import_daily_spend(db_url: str, postgres_server: PostgresServer) -> None:  # noqa: F811
    """LiteLLM's daily tables fill the rollup for the days it has no row of (a day relaygate already has keeps
    relaygate's sums; running again copies nothing), and the daily activity views show them."""
    from relaygate.sinks.spend import spend_values
    from relaygate.store import open_store
    from relaygate.store.daily import read_daily
    from relaygate.store.import_spend import import_daily_spend
    from relaygate.store.spend import write_spend_values
    from tests.spend.test_spend_views import rec

    source = litellm_database(postgres_server)
    daily_rows(source)

    async def main() -> None:
        store = await open_store(db_url)
        try:
            own = rec("own-1", 0.5, datetime(2026, 10, 2, 12, tzinfo=UTC).timestamp(), user_id="alice")
            assert await write_spend_values(store, [spend_values(own, store.dialect)]) == 1  # relaygate's day
            assert await import_daily_spend(source, store) == (1, 1)
            span = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))
            users = await read_daily(store, *span, "user")
            assert [(r["day"], r["entity"], r["spend_nanos"], r["prompt_tokens"], r["completion_tokens"],
                     r["cache_read_tokens"], r["cache_write_tokens"], r["requests"], r["failed"]) for r in users] == [
                ("2026-10-02", "alice", 500_000_000, 10, 5, 0, 0, 1, 0),  # relaygate's own, not LiteLLM's 1.0
                ("2026-10-01", "alice", 375_000_000, 110, 44, 5, 3, 6, 1)]  # the two endpoints summed
            assert (users[1]["api_key"], users[1]["model_group"], users[1]["model"], users[1]["provider"]) == (
                "hk1", "gpt-a", "gpt-a-0613", "openai")
            for kind, ident, nanos in (("team", "team1", 375_000_000), ("tag", "prod", 250_000_000),
                                       ("organization", "org1", 375_000_000), ("customer", "cust1", 500_000_000)):
                [row] = await read_daily(store, *span, kind)
                assert (row["entity"], row["spend_nanos"]) == (ident, nanos)
            assert await import_daily_spend(source, store) == (0, 2)  # again: nothing counted twice
            assert len(await read_daily(store, *span, "user")) == 2
        finally:
            await store.close()

    asyncio.run(main())


def test_cli_daily_spend(tmp_path: Path, postgres_server: PostgresServer,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from relaygate.cli import main

    source = litellm_database(postgres_server)
    daily_rows(source)
    target = f"sqlite:///{tmp_path / 'rg.db'}"
    assert main(["db", "import-litellm", source, "--database-url", target, "--daily-spend"]) == 0
    assert "daily spend: 2 day(s) copied, 0 left as they were" in capsys.readouterr().out
    assert main(["db", "import-litellm", source, "--database-url", target, "--daily-spend"]) == 0
    assert "daily spend: 0 day(s) copied, 2 left as they were" in capsys.readouterr().out
