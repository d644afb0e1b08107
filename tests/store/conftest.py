"""One test set, both backends: ``db_url`` is a fresh SQLite file in tmp_path or a fresh database on the
session's real PostgreSQL server (tests/pg.py); ``run(url, body)`` opens a store there, awaits
``body(store)`` and closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relaygate.store import Store, open_store
from tests.pg import PostgresServer

T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relaygate.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def run(url: str, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> Any:
        store = await open_store(url)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())  # type: ignore[no-any-return]
