"""LiteLLM's PostgreSQL URLs unchanged (``store.pgurl``): Prisma's options read and given their meaning, never sent
to the server (which refuses them), against the session's real PostgreSQL; the URL LiteLLM assembles from its
``DATABASE_*`` variables (what the official Helm chart sets); ``relaygate db import-litellm`` from a LiteLLM
database whose tables live in a schema the URL names."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relaygate.config.model import Config
from relaygate.store import Key, database_url, hash_token, make_store, open_store
from relaygate.store.errors import StoreError, StoreUnavailable
from relaygate.store.importer import import_litellm
from relaygate.store.pgurl import PgOptions, pg_options, quote_ident, url_from_env
from tests.pg import PostgresServer
from tests.store.test_importer import LITELLM_KEY, litellm_database


def test_prisma_options_are_read_and_taken_out() -> None:
    o = pg_options("postgresql://u:p@h:5432/db?schema=litellm&connection_limit=3&pool_timeout=7.5"
                   "&connect_timeout=4&socket_timeout=20&application_name=gw&sslmode=require")
    assert o == PgOptions("postgresql://u:p@h:5432/db?application_name=gw&sslmode=require", schema="litellm",
                          max_size=3, pool_timeout=7.5, connect_timeout=4.0, command_timeout=20.0)
    assert o.search_path == "litellm"
    assert pg_options("postgresql://h/db?pgbouncer=true").statement_cache_size == 0
    assert pg_options("postgresql://h/db?statement_cache_size=50").statement_cache_size == 50
    assert pg_options("postgresql://h/db") == PgOptions("postgresql://h/db")
    assert pg_options("postgresql://h/db?sslmode=disable") == PgOptions("postgresql://h/db?sslmode=disable")


def test_tls_options_in_prismas_spelling() -> None:
    # Prisma's sslcert is the server's CA (LiteLLM writes DATABASE_SSLROOTCERT there); with sslkey it is libpq's
    assert pg_options("postgresql://h/db?sslcert=/ca.pem&schema=s").dsn == "postgresql://h/db?sslrootcert=%2Fca.pem"
    both = "postgresql://h/db?sslcert=%2Fc.pem&sslkey=%2Fk.pem&schema=s"
    assert pg_options(both).dsn == "postgresql://h/db?sslcert=%2Fc.pem&sslkey=%2Fk.pem"
    assert pg_options("postgresql://h/db?sslaccept=strict").dsn == "postgresql://h/db?sslmode=verify-full"
    assert pg_options("postgresql://h/db?sslaccept=accept_invalid_certs").dsn == "postgresql://h/db?sslmode=require"
    assert pg_options("postgresql://h/db?sslaccept=strict&sslmode=prefer").dsn == "postgresql://h/db?sslmode=prefer"


@pytest.mark.parametrize(("query", "named"), [
    ("connection_limit=0", "connection_limit"), ("connection_limit=many", "connection_limit"),
    ("pool_timeout=-1", "pool_timeout"), ("sslaccept=maybe", "sslaccept"), ("sslidentity=/id.p12", "sslidentity"),
])
def test_malformed_options_name_themselves(query: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        pg_options(f"postgresql://h/db?{query}")
    with pytest.raises(StoreError, match=named):
        make_store(f"postgresql://u:secret@h/db?{query}")


def test_identifiers() -> None:
    assert quote_ident("litellm") == "litellm"
    assert quote_ident("My Schema") == '"My Schema"' and quote_ident('a"b') == '"a""b"'


def test_url_from_litellms_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert url_from_env({}) is None and url_from_env({"DATABASE_HOST": "h", "DATABASE_NAME": "n"}) is None
    env = {"DATABASE_HOST": "db.internal", "DATABASE_USERNAME": "lite llm", "DATABASE_PASSWORD": "p@ss:w/rd",
           "DATABASE_NAME": "litellm"}
    assert url_from_env(env) == "postgresql://lite+llm:p%40ss%3Aw%2Frd@db.internal:5432/litellm"
    env |= {"DATABASE_PORT": "6543", "DATABASE_SCHEMA": "gw", "DATABASE_SSLROOTCERT": "/etc/ca.pem"}
    assert url_from_env(env) == ("postgresql://lite+llm:p%40ss%3Aw%2Frd@db.internal:6543/litellm"
                                 "?schema=gw&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
    assert url_from_env({"DATABASE_HOST": "h:7000", "DATABASE_USER": "u", "DATABASE_NAME": "n",
                         "DATABASE_SSLMODE": "require"}) == "postgresql://u@h:7000/n?sslmode=require"
    # the store follows them when no DATABASE_URL is set (a file's database_url and DATABASE_URL win)
    for k, v in {"DATABASE_HOST": "h", "DATABASE_USER": "u", "DATABASE_NAME": "n"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url(Config(), "/etc/litellm/config.yaml") == "postgresql://u@h:5432/n"
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    assert database_url(Config(), "/etc/litellm/config.yaml") == "postgresql://x/y"


def _fetch(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg  # type: ignore[import-untyped]

    async def go() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(go())


def test_a_litellm_url_opens_the_store_in_its_schema(postgres_server: PostgresServer) -> None:
    base = postgres_server.new_database()
    url = base + "?schema=Gateway%20Data&connection_limit=2&pool_timeout=10&pgbouncer=true&connect_timeout=5"

    async def main() -> Key | None:
        store = await open_store(url)
        try:
            await store.create_key(Key(token=hash_token("sk-in-schema"), key_alias="in-schema"))
            return await store.get_key(hash_token("sk-in-schema"))
        finally:
            await store.close()

    got = asyncio.run(main())
    assert got is not None and got.key_alias == "in-schema"
    tables = {r[0] for r in _fetch(base, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                                   "Gateway Data")}
    assert "rg_keys" in tables and "rg_spend_logs" in tables
    assert not _fetch(base, "SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' "
                            "AND table_name = 'rg_keys'")


def test_import_from_a_litellm_database_in_a_schema(postgres_server: PostgresServer, tmp_path: Path) -> None:
    source = litellm_database(postgres_server, schema="litellm")
    target = f"sqlite:///{tmp_path / 'rg.db'}"

    async def main() -> Key | None:
        store = await open_store(target)
        try:
            await import_litellm(source + "?schema=litellm&connection_limit=1", store)
            return await store.get_key(hash_token(LITELLM_KEY))
        finally:
            await store.close()

    got = asyncio.run(main())
    assert got is not None and got.key_alias == "alice-key"


def test_litellms_pool_settings(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """``general_settings.database_connection_pool_limit`` / ``database_connection_timeout`` (LiteLLM's Prisma
    pool) size the pool and bound the wait for a free connection; relaygate_settings' own names win."""
    from relaygate.config import load_config

    cfg = tmp_path / "config.yaml"
    cfg.write_text("general_settings: {database_connection_pool_limit: 1, database_connection_timeout: 0.3}\n")
    c = load_config(str(cfg))
    assert c.server.database_pool_size == 1 and c.server.database_pool_timeout == 0.3
    cfg.write_text("general_settings: {database_connection_pool_limit: 1}\nrelaygate_settings: {database_pool_size: 4}\n")
    assert load_config(str(cfg)).server.database_pool_size == 4

    url = postgres_server.new_database()

    async def main() -> BaseException | None:
        store = await open_store(url, pool_size=1, pool_timeout=0.3)
        try:
            async with store._transaction():  # the only connection, held
                try:
                    await asyncio.wait_for(store.get_key(hash_token("sk-x")), 10)
                except BaseException as exc:
                    return exc
            return None
        finally:
            await store.close()

    got = asyncio.run(main())  # a 503 of the store's, not a wait without end (the hang guard is 10 s)
    assert isinstance(got, StoreUnavailable) and "TimeoutError" in str(got)
