"""The spend sink's write of a batch, in the worker's own CPU per row: SQLite, and PostgreSQL when given.

    python -m bench.micro.spend_write [--rows 3000] [--seconds 6] [--keys 2000] [--active 500]
                                      [--postgres-url URL]

Fills each store with ``--keys`` virtual keys by the spend bench's own setup (half in 10 teams, half
owned by 100 users), then writes batches of ``--rows`` spend rows round robin over ``--active`` of them with
``store.spend.write_spend_values`` (rows built by ``sinks.spend.spend_values`` outside the timing) for
``--seconds``, and prints this process's CPU microseconds per row: the whole write, and its three parts
(the rows' insert, summing the rollups, writing them: the counters, the daily sums, the entities' ``spend``). That is what a gateway worker pays; a
PostgreSQL server's own work is its process's, not counted. A PostgreSQL server on this machine is moved
to the load core for the run (as ``bench.scenarios_spend`` does) and this process to the gateway core.
Give PostgreSQL a scratch database: the ``rg_*`` tables are dropped first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import relaygate.store.spend as spend
from bench.scenarios_spend import TEAMS, USERS, _fill
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import hash_token, open_store

PARTS = ("_insert_new", "rollups_of", "_add_rollups")


def _record(i: int, key: str, team: str | None, user: str | None) -> CompletionRecord:
    return CompletionRecord(
        call_id=f"bench-{os.getpid():x}-{i:012d}", route="chat", stream=False, model="m", model_group="m",
        deployment_id="d0", provider="openai", upstream_model="m", key_hash=key, key_alias=None, team_id=team,
        user_id=user, status=200, outcome=Outcome.OK, prompt_tokens=10, completion_tokens=5,
        cache_read_tokens=0, cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=0.00002,
        cache_hit=False, retries=0, fallbacks=0, start_time=time.time())


def _timed(acc: Counter[str]) -> Callable[[], None]:
    """Wrap the write's parts to add their CPU seconds to ``acc``; returns the undo."""
    saved = {name: getattr(spend, name) for name in PARTS}

    def wrap(name: str, f: Any) -> Any:
        async def part(*args: Any, **kw: Any) -> Any:
            c0 = time.process_time()
            try:
                return await f(*args, **kw)
            finally:
                acc[name] += time.process_time() - c0

        def sync_part(*args: Any, **kw: Any) -> Any:
            c0 = time.process_time()
            try:
                return f(*args, **kw)
            finally:
                acc[name] += time.process_time() - c0
        return part if asyncio.iscoroutinefunction(f) else sync_part

    for name, f in saved.items():
        setattr(spend, name, wrap(name, f))

    def undo() -> None:
        for name, f in saved.items():
            setattr(spend, name, f)

    return undo


async def measure(url: str, a: argparse.Namespace) -> dict[str, float]:
    keys = [f"sk-bench-{i:05d}" for i in range(a.keys)]
    await _fill(url, keys, False)  # the spend bench's own setup (its layout of teams and users)
    active = [(hash_token(k), f"team-{i % TEAMS}", None) if i % 2 == 0 else (hash_token(k), None, f"user-{i % USERS}")
              for i, k in enumerate(keys[:a.active])]
    store = await open_store(url)
    try:
        acc: Counter[str] = Counter()
        undo = _timed(acc)
        rows = n = 0
        cpu = 0.0
        end = time.monotonic() + a.seconds
        try:
            while time.monotonic() < end:
                batch = []
                for _ in range(a.rows):
                    key, team, user = active[n % len(active)]
                    batch.append(spend_values(_record(n, key, team, user), store.dialect))
                    n += 1
                c0 = time.process_time()
                await spend.write_spend_values(store, batch)
                cpu += time.process_time() - c0
                rows += len(batch)
        finally:
            undo()
        return {"rows": rows, "total": cpu / rows * 1e6, **{k: v / rows * 1e6 for k, v in acc.items()}}
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=3000, help="rows per batch (a second at ~3,000 req/s)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds of writing per store")
    p.add_argument("--keys", type=int, default=2000)
    p.add_argument("--active", type=int, default=500)
    p.add_argument("--postgres-url", default=None)
    a = p.parse_args(argv)
    urls = {"sqlite": f"sqlite:///{tempfile.mkdtemp(prefix='spend-write-')}/spend.db"}
    restore: dict[int, set[int]] = {}
    mine = os.sched_getaffinity(0)
    if a.postgres_url:
        from bench.scenarios_spend import pin_postgres
        from bench.selftest import core_split

        gw_cpus, load_cpus = core_split()
        how, restore = pin_postgres(a.postgres_url, load_cpus)
        if gw_cpus is not None:
            os.sched_setaffinity(0, {int(c) for c in gw_cpus.split(",")})
        print(f"the PostgreSQL server: {how}")
        urls["postgres"] = a.postgres_url
    try:
        for name, url in urls.items():
            r = asyncio.run(measure(url, a))
            parts = ", ".join(f"{k.strip('_')} {r.get(k, 0.0):.2f}" for k in PARTS)
            print(f"{name}: {r['total']:.2f} µs of this process's CPU per row over {int(r['rows']):,} rows "
                  f"({a.rows:,} a batch, {a.active} keys); of which {parts}")
    finally:
        os.sched_setaffinity(0, mine)
        if restore:
            from bench.scenarios_spend import restore_affinity

            restore_affinity(restore)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
