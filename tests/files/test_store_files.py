"""``store.files`` on SQLite and PostgreSQL: the record matches migration step 5's table, inserts are
idempotent, and ownership is a filter (the key's own rows, its team's, or all for the admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from relaygate.store import Store
from relaygate.store import files as rows
from tests.store.conftest import db_url, run  # noqa: F401  (the backend parametrisation)

A = rows.Owner("hash-a", None)
A_TEAM = rows.Owner("hash-a", "team-1")
B = rows.Owner("hash-b", None)
B_TEAM = rows.Owner("hash-b", "team-1")
ADMIN = rows.Owner(None, None, admin=True)


def obj(n: int, owner: rows.Owner, kind: str = "file", purpose: str = "batch") -> rows.FileObject:
    return rows.FileObject(object_id=f"{kind}-{n:03d}", kind=kind, api_key=owner.key_hash, team_id=owner.team_id,
                           upstream_id=f"up-{n}", deployment_id="dep", model="gpt", custom_llm_provider="openai",
                           purpose=purpose, filename=f"f{n}.jsonl", bytes=n, status="processed",
                           metadata={"id": f"{kind}-{n:03d}", "n": n},
                           created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n))


def test_columns_match_the_migrated_table(db_url: str) -> None:  # noqa: F811
    async def body(store: Store) -> list[str]:
        async with store._read() as c:
            if store.dialect == "sqlite":
                return [r["name"] for r in await c.fetch("SELECT name FROM pragma_table_info('rg_files')", [])]
            return [r["column_name"] for r in await c.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'rg_files' "
                "ORDER BY ordinal_position", [])]

    assert sorted(run(db_url, body)) == sorted(rows.FILES.columns)


def test_ownership_and_paging(db_url: str) -> None:  # noqa: F811
    async def body(store: Store) -> None:
        for n in range(1, 6):
            assert await rows.put_object(store, obj(n, A))
        assert not await rows.put_object(store, obj(1, B))  # an id already held keeps its owner
        await rows.put_object(store, obj(6, B_TEAM))
        await rows.put_object(store, obj(7, B, purpose="fine-tune"))
        await rows.put_object(store, obj(8, A, kind="batch"))

        got = await rows.get_owned(store, "file-001", "file", A)
        assert got is not None and got.api_key == "hash-a" and got.metadata == {"id": "file-001", "n": 1}
        assert await rows.get_owned(store, "file-001", "file", B) is None
        assert await rows.get_owned(store, "file-001", "batch", A) is None
        assert await rows.get_owned(store, "file-006", "file", A) is None
        assert await rows.get_owned(store, "file-006", "file", A_TEAM) is not None  # its team's
        assert await rows.get_owned(store, "file-007", "file", ADMIN) is not None
        assert await rows.get_owned(store, "file-001", "file", rows.Owner(None, None)) is None

        page, more = await rows.list_objects(store, "file", A, limit=2)
        assert [r.object_id for r in page] == ["file-005", "file-004"] and more
        page, more = await rows.list_objects(store, "file", A, limit=2, after="file-004")
        assert [r.object_id for r in page] == ["file-003", "file-002"] and more
        page, more = await rows.list_objects(store, "file", A, limit=2, after="file-002")
        assert [r.object_id for r in page] == ["file-001"] and not more
        page, _ = await rows.list_objects(store, "file", A, limit=10, ascending=True, after="file-003")
        assert [r.object_id for r in page] == ["file-004", "file-005"]
        page, _ = await rows.list_objects(store, "file", A_TEAM, limit=10)
        assert [r.object_id for r in page] == ["file-006", "file-005", "file-004", "file-003", "file-002", "file-001"]
        page, _ = await rows.list_objects(store, "file", B, limit=10, after="file-003")  # not its cursor: from top
        assert [r.object_id for r in page] == ["file-007", "file-006"]
        page, _ = await rows.list_objects(store, "file", ADMIN, limit=10, purpose="fine-tune")
        assert [r.object_id for r in page] == ["file-007"]
        page, _ = await rows.list_objects(store, "batch", ADMIN, limit=10)
        assert [r.object_id for r in page] == ["batch-008"]

        await rows.update_object(store, "batch-008", status="completed", metadata={"id": "batch-008", "s": 1})
        got = await rows.get_owned(store, "batch-008", "batch", A)
        assert got is not None and got.status == "completed" and got.metadata == {"id": "batch-008", "s": 1}
        assert await rows.delete_object(store, "file-001")
        assert not await rows.delete_object(store, "file-001")
        assert await rows.get_owned(store, "file-001", "file", ADMIN) is None

    run(db_url, body)


def test_expired_rows_are_deleted(db_url: str) -> None:  # noqa: F811
    now = datetime(2026, 6, 1, tzinfo=UTC)

    async def body(store: Store) -> None:
        await rows.put_object(store, msgspec.structs.replace(obj(1, A), expires_at=now - timedelta(seconds=1)))
        await rows.put_object(store, msgspec.structs.replace(obj(2, A), expires_at=now + timedelta(days=1)))
        await rows.put_object(store, obj(3, A))
        assert await rows.delete_expired(store, now) == 1
        page, _ = await rows.list_objects(store, "file", A, limit=10)
        assert [r.object_id for r in page] == ["file-003", "file-002"]

    run(db_url, body)
