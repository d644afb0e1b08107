"""The SQLite backend's reader pool across a close and a reopen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relaygate.store import open_store


def test_sqlite_read_in_flight_across_close_and_reopen(tmp_path: Path) -> None:
    """A read still running when the store closes does not hand its closed connection to the reopened pool
    (found by the budgets' startup refresh racing a test's close)."""
    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow_read() -> None:
            async with store._read() as c:
                started.set()
                await release.wait()
                await c.fetch("SELECT 1 AS one", [])

        task = asyncio.ensure_future(slow_read())
        await started.wait()
        await store.close()
        release.set()
        await asyncio.gather(task, return_exceptions=True)  # its connection is closed: the read may fail
        await store.connect()
        try:
            for _ in range(5):  # every pooled reader works
                assert await store.ping()
                await store.list_models()
        finally:
            await store.close()

    asyncio.run(main())
