"""Spend-log retention against the spend sink's writes on SQLite: one ``DELETE`` of every expired row against
the batched run (``sinks.retention``).

    python -m bench.micro.retention_lock [--rows 300000]

For each way, a fresh SQLite store gets ``--rows`` spend rows forty days old; while the deletion runs, a
writer stands in for the spend sink and writes one row every 50 ms. Printed: the rows deleted and the time it
took, and how long the writer's writes waited (the worst and the median): SQLite has one write lock, so a
long transaction holds every other writer. Everything runs in this process, on a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from relaygate.sinks import retention
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.retention import CleanupMetrics
from relaygate.sinks.spend import spend_values
from relaygate.store import Store, open_store
from relaygate.store.spend import delete_spend_logs_before, write_spend_values

DAY = 86400.0


def _row(call_id: str, start: float, dialect: str) -> tuple[object, ...]:
    r = CompletionRecord(call_id, "chat", False, "m", "m", "d0", "openai", "m", "k0", None, None, None, 200,
                         Outcome.OK, 10, 5, 0, 0, 0.2, None, 0.001, 0.01, False, 0, 0, start)
    return spend_values(r, dialect)


async def _fill(store: Store, rows: int) -> None:
    old = time.time() - 40 * DAY
    for s in range(0, rows, 20_000):
        await write_spend_values(store, [_row(f"c{i}", old + i * 0.001, store.dialect)
                                         for i in range(s, min(rows, s + 20_000))])


async def _one_way(rows: int, batched: bool) -> str:
    path = tempfile.mktemp(suffix=".db")
    store = await open_store(f"sqlite:///{path}")
    try:
        await _fill(store, rows)
        waits: list[float] = []
        done = asyncio.Event()

        async def writer() -> None:
            i = 0
            while not done.is_set():
                t = time.perf_counter()
                await write_spend_values(store, [_row(f"w{i}", time.time(), store.dialect)])
                waits.append(time.perf_counter() - t)
                i += 1
                await asyncio.sleep(0.05)

        task = asyncio.ensure_future(writer())
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        if batched:
            m = CleanupMetrics()
            await retention.run(store, 30 * DAY, m)
            n = m.deleted
        else:
            n = await delete_spend_logs_before(store, datetime.now(UTC) - timedelta(days=30))
        took = time.perf_counter() - t0
        done.set()
        await task
        waits.sort()
        return (f"{'batched' if batched else 'one DELETE'}: {n:,} rows deleted in {took:.2f} s; a one-row spend "
                f"write waited at most {1000 * waits[-1]:.0f} ms (median {1000 * waits[len(waits) // 2]:.1f} ms, "
                f"{len(waits)} writes)")
    finally:
        await store.close()
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=300_000)
    a = p.parse_args(argv)
    for batched in (False, True):
        print(asyncio.run(_one_way(a.rows, batched)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
