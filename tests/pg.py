"""A real PostgreSQL server for the tests: Debian's binaries, a throw-away cluster on a free port.

``postgres_server`` (session scope) runs ``initdb`` (as the ``postgres`` user when the tests run as root,
which initdb refuses), starts ``postgres`` on 127.0.0.1 with password authentication for TCP, and stops it at
the end of the session. A missing binary FAILS the test: the test command (tests/run.sh) installs Debian's
``postgresql`` package. ``PostgresServer.new_database()`` gives each test its own empty database.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "pg-s3cret-pw"


def pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class PostgresServer:
    port: int
    datadir: Path

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import asyncpg

        name = f"t_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(self.url())
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.url(name)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    from tests.conftest import free_port

    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed: run the README test command "
                    "(it installs Debian's postgresql package)")
    tmp = Path(tempfile.mkdtemp(prefix="rg-pg-"))
    datadir, sockdir, pwfile = tmp / "data", tmp / "sock", tmp / "pw"
    sockdir.mkdir()
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sockdir, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                                 "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = free_port()
    opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(_as_postgres([pg_ctl, "-D", str(datadir), "-o", opts, "-l", str(tmp / "log"), "-w", "-t", "30",
                                 "start"]), check=True, stdout=subprocess.DEVNULL)
    try:
        yield PostgresServer(port, datadir)
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(datadir), "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
