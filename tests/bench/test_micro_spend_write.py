"""``bench.micro.spend_write`` runs on both stores and reports a figure for every part of the write."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

from bench.micro import spend_write
from tests.pg import PostgresServer


def test_spend_write_measures_every_part_on_both_stores(postgres_server: PostgresServer,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = postgres_server.new_database()
    mine = os.sched_getaffinity(0)
    assert spend_write.main(["--rows", "64", "--seconds", "0.3", "--keys", "40", "--active", "20",
                             "--postgres-url", url]) == 0
    out = capsys.readouterr().out
    for name in ("sqlite", "postgres"):
        line = next(x for x in out.splitlines() if x.startswith(f"{name}: "))
        figures = dict(re.findall(r"(insert_new|rollups_of|add_rollups) ([0-9.]+)", line))
        assert set(figures) == {"insert_new", "rollups_of", "add_rollups"}, line
        assert all(float(v) > 0 for v in figures.values()), line
    assert os.sched_getaffinity(0) == mine  # this process's cores given back
    # the rows went in: the last run left its rows and their counters in the scratch database
    from relaygate.store import open_store
    from relaygate.store.spend import read_spend_logs

    async def count() -> int:
        store = await open_store(url)
        try:
            return len(await read_spend_logs(store, limit=100_000))
        finally:
            await store.close()

    assert asyncio.run(count()) >= 64
