"""Schema migrations (fresh, idempotent, concurrent, newer schema refused), the tables against the records,
and the start-up errors: an unreachable database is named without its password."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from relaygate.store import SchemaMismatch, Store, StoreUnavailable, migrations, open_store, redact_url, tables
from tests.conftest import dead_port
from tests.pg import PASSWORD, PostgresServer
from tests.store.conftest import run


async def _columns(s: Store, table: str) -> set[str]:
    async with s._read() as c:
        if s.dialect == "sqlite":
            rows = await c.fetch(f"PRAGMA table_info({table})", [])
            return {r["name"] for r in rows}
        rows = await c.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])
        return {r["column_name"] for r in rows}


def test_fresh_schema_matches_the_records(db_url: str) -> None:
    async def body(s: Store) -> None:
        assert await s.schema_version() == migrations.LATEST
        assert await s.change_version() == 0
        for table in tables.ALL:
            assert await _columns(s, table.name) == set(table.columns), table.name

    run(db_url, body)


def test_daily_rollup_is_filled_from_the_spend_logs_on_upgrade(db_url: str) -> None:
    """Step 10 creates the daily rollup and fills it from the spend logs a database already holds (a store
    upgraded from step 9 shows its history in the daily activity views at once)."""
    import time

    from relaygate.sinks.spend import spend_values
    from relaygate.store.spend import write_spend_values
    from tests.spend.helpers import check_daily, mixed

    async def body(s: Store) -> None:
        records = mixed(300, seed=7)
        for i, r in enumerate(records):
            r.start_time = time.time() - (i % 4) * 86400.0
        records[0].end_user_id = "c" * 3000  # a client's user of kilobytes: keyed by its digest, as the writer does
        assert await write_spend_values(s, [spend_values(r, s.dialect) for r in records]) == 300
        async with s._transaction() as c:  # back to step 9: no rollup (nor what steps 11 to 16 added)
            await c.execute("DROP TABLE rg_daily_spend", [])
            await c.execute("DROP TABLE rg_health_checks", [])
            await c.execute("DROP TABLE rg_credentials", [])
            await c.execute("DROP TABLE rg_deprecated_keys", [])
            await c.execute("ALTER TABLE rg_spend_logs DROP COLUMN requester_ip_address", [])
            await c.execute("ALTER TABLE rg_spend_logs DROP COLUMN proxy_server_request", [])
            await c.execute("ALTER TABLE rg_keys DROP COLUMN budget_fallbacks", [])
            await c.execute("DELETE FROM rg_schema_version WHERE version >= 10", [])
        assert await s.migrate() == (9, migrations.LATEST)
        await check_daily(s)

    run(db_url, body)


def test_migrations_are_idempotent(db_url: str) -> None:
    from relaygate.store import Key

    async def body(s: Store) -> None:
        await s.create_key(Key(token="t1", key_alias="kept"))
        assert await s.migrate() == (migrations.LATEST, migrations.LATEST)
        async with s._read() as c:
            rows = await c.fetch("SELECT version FROM rg_schema_version ORDER BY version", [])
        assert [r["version"] for r in rows] == list(range(1, migrations.LATEST + 1))
        assert (await s.get_key_by_alias("kept")).token == "t1"

    run(db_url, body)
    run(db_url, _reopen_check)


async def _reopen_check(s: Store) -> None:
    assert await s.schema_version() == migrations.LATEST
    assert (await s.get_key("t1")).key_alias == "kept"


def test_concurrent_upgrades_in_one_process(db_url: str) -> None:
    async def main() -> list[int]:
        stores = await asyncio.gather(*(open_store(db_url) for _ in range(4)))
        try:
            return [await s.schema_version() for s in stores]
        finally:
            for s in stores:
                await s.close()

    assert asyncio.run(main()) == [migrations.LATEST] * 4


def test_concurrent_upgrades_from_two_processes(db_url: str) -> None:
    argv = [sys.executable, "-m", "relaygate.cli", "db", "upgrade", "--database-url", db_url]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    texts = [o[0].decode() for o in outs]
    assert sum("upgraded from version 0" in t for t in texts) == 1, texts  # exactly one applied the steps
    assert sum("already up to date" in t for t in texts) == 2, texts

    async def body(s: Store) -> None:
        async with s._read() as c:
            rows = await c.fetch("SELECT version FROM rg_schema_version", [])
        assert sorted(r["version"] for r in rows) == list(range(1, migrations.LATEST + 1))

    run(db_url, body)


def test_newer_schema_is_refused(db_url: str) -> None:
    async def body(s: Store) -> None:
        now = "datetime('now')" if s.dialect == "sqlite" else "now()"
        async with s.write() as c:
            await c.execute(f"INSERT INTO rg_schema_version (version, applied_at) VALUES (?, {now})",
                            [migrations.LATEST + 1])

    run(db_url, body)
    with pytest.raises(SchemaMismatch, match="newer than this relaygate knows"):
        asyncio.run(open_store(db_url))
    proc = subprocess.run([sys.executable, "-m", "relaygate.cli", "db", "upgrade", "--database-url", db_url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "newer than this relaygate knows" in proc.stderr


def test_an_old_schema_is_refused_without_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(SchemaMismatch, match="relaygate db upgrade"):
        asyncio.run(open_store(url, migrate=False))


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@db.example:5432/app") == "postgresql://u:***@db.example:5432/app"
    assert redact_url("postgresql://u:p%40ss@[::1]/app?sslmode=require") == "postgresql://u:***@[::1]/app?sslmode=require"
    assert redact_url("postgresql://db/app?user=u&password=hunter2") == "postgresql://db/app?user=u&password=***"
    assert redact_url("sqlite:////var/lib/relaygate.db") == "sqlite:////var/lib/relaygate.db"


def test_unreachable_postgres_names_the_url_without_password() -> None:
    url = f"postgresql://relay:topsecret-pw@127.0.0.1:{dead_port()}/gateway"
    with pytest.raises(StoreUnavailable) as exc:
        asyncio.run(open_store(url, connect_timeout=2))
    msg = str(exc.value)
    assert "postgresql://relay:***@127.0.0.1" in msg and "/gateway" in msg and "topsecret" not in msg
    assert exc.value.status == 503


def test_wrong_password_is_not_echoed(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(password="wrong-" + PASSWORD)
    with pytest.raises(StoreUnavailable) as exc:
        asyncio.run(open_store(url, connect_timeout=5))
    assert "***" in str(exc.value) and PASSWORD not in str(exc.value)


def test_sqlite_file_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot open the database sqlite:///"):
        asyncio.run(open_store(f"sqlite:///{blocker}/sub/relaygate.db"))


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    async def body(s: Store) -> None:
        async with s._read() as c:
            assert (await c.fetch("PRAGMA journal_mode", []))[0]["journal_mode"] == "wal"

    run(f"sqlite:///{tmp_path / 'new' / 'dir' / 'relaygate.db'}", body)
    assert (tmp_path / "new" / "dir" / "relaygate.db").exists()
