"""Query counter for ``bench.scenarios_dbkeys``: counts every SQL statement a gateway process sends to SQLite.

The gateway exposes no count of its database queries, and the bench may not change ``src/``. This directory
goes first on the gateway's ``PYTHONPATH`` only, so Python imports this file at start-up in the main process
and in every Granian worker. When ``RELAYGATE_BENCH_QUERY_LOG`` names a file, it wraps the SQLite backend's
two statement methods (``relaygate.store.sqlite._Conn.fetch`` / ``execute``: every query the store runs,
pragmas and ``BEGIN`` / ``COMMIT`` aside) to append one byte per statement to that file (``O_APPEND``, one
``write`` per statement): ``k`` for a read of ``rg_keys`` (a key lookup), ``q`` for anything else (the
change-version poll, team/user reads). The file's byte counts are the query counts; a lookup costs one
extra ``write`` syscall, and a cached request costs nothing.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("RELAYGATE_BENCH_QUERY_LOG")


def _install(path: str) -> None:
    from relaygate.store import sqlite

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    conn = sqlite._Conn
    fetch, execute = conn.fetch, conn.execute

    def tag(sql: str) -> bytes:
        return b"k" if "rg_keys" in sql and sql.lstrip().upper().startswith("SELECT") else b"q"

    async def counted_fetch(self, sql, args):  # type: ignore[no-untyped-def]
        os.write(fd, tag(sql))
        return await fetch(self, sql, args)

    async def counted_execute(self, sql, args):  # type: ignore[no-untyped-def]
        os.write(fd, tag(sql))
        return await execute(self, sql, args)

    conn.fetch = counted_fetch  # type: ignore[method-assign]
    conn.execute = counted_execute  # type: ignore[method-assign]


if _PATH:
    _install(_PATH)
