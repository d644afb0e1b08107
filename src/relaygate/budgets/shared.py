"""Spend shared by every worker and instance: one Redis counter per budgeted entity and period, and the
proxy's spend read from the spend logs.

What it owns: the Redis side of budgets (``router_settings.redis_*``, the limiter's Redis).

- **Counters**: ``relaygate:budget-nano:{kind}:{id}:{period start}`` holds integer nano-USD (64 bits hold 9.2
  billion USD a period; the pico-USD the guard counts in held 9.2 million, which a provider's or a large team's
  monthly budget can pass: Redis then refused every ``INCRBY`` of that counter). The guard's pico-USD are
  converted here: reads multiply, writes send whole nano-USD and carry the rest to the counter's next
  increment (at most :data:`CARRIED` counters carried; past it the rest, under a nano-USD each, is dropped).
  A worker adds its completions with ``INCRBY`` (aggregated per drain, one pipeline, off the request path)
  and sets the key to expire a minute after the period ends (``EXPIREAT``): a new period is a new key, so a
  reset needs no job.
  When a key's rows are read, each budget's counter is seeded with the row's spend (``SET NX``: only the
  first reader of a period seeds it; later ones find it).
- **Reads**: a request whose key (or customer, or the proxy) has a budget reads all its counters with one
  ``MGET``; the guard takes the larger of the counter and its own figure (row + this worker).
- **Redis down or slow** (``timeout`` 0.5 s): reads answer nothing (the guard uses its own figure: the row
  and this worker's spend), one warning a minute; the request never waits longer. Increments that could not be
  sent because no connection could be made are kept and sent again (after 1 s, doubling up to 30 s, with what
  was added meanwhile), so a Redis restart or a blip loses no spend; one that failed once sent (a timeout
  waiting for the answer) is dropped, since Redis may have counted it.
- **Spend set by an admin** (``/key/update`` or ``/user/update`` with ``spend``, ``/key/{key}/reset_spend``,
  ``/global/spend/reset`` ...): :meth:`SharedSpend.set_spend` sets the entity's counters to the new spend.
  Seeding only creates a counter that is missing, so without this a budget would go on binding on the
  period's old total until the period ends (for a budget without ``budget_duration``, for 400 days).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relaygate.budgets.limits import FOREVER, Limit
from relaygate.service_metrics import timed

if TYPE_CHECKING:
    from relaygate.store import Store

__all__ = ["PREFIX", "SharedSpend", "any_budget", "any_member_budget", "proxy_spend"]

log = logging.getLogger("relaygate.budgets")

PREFIX = "relaygate:budget-nano:"
"""Counter names' prefix (``relaygate:budget:`` named pico-USD counters before: another name, so that a
gateway of each kind never reads the other's unit during an upgrade)."""
UNIT = 1000
"""pico-USD per unit of a counter (nano-USD)."""
CARRIED = 10_000
"""Counters whose sub-nano-USD rest is carried at most (see the module docstring)."""
_NO_END_TTL = 400 * 86400


def counter(kind: str, ident: str, start: float) -> str:
    return f"{PREFIX}{kind}:{ident}:{int(start)}"


_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})
RETRY_FIRST = 1.0
RETRY_MOST = 30.0
"""Seconds before increments that never reached Redis are sent again: doubling from the first to the most."""


def unsent(exc: BaseException) -> bool:
    """Whether a failed Redis call surely sent nothing: the connection itself could not be made."""
    return type(exc).__name__ in ("ConnectionError", "TimeoutError", "ConnectionRefusedError", "OSError") and (
        "connecting" in str(exc).lower() or isinstance(exc, ConnectionRefusedError))
SET_TIMEOUT = 10.0
"""Seconds :meth:`SharedSpend.set_spend` may take at most (a scan of the whole keyspace, for an admin's call)."""


class SharedSpend:
    """Budget counters in Redis (redis-py asyncio, bounded by ``timeout``)."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self.redis: Any = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.timeout = timeout
        self._pending: dict[str, list[float]] = {}
        self._carry: dict[str, int] = {}
        """pico-USD of a counter not sent yet (under a nano-USD)."""
        self._flushing = False
        self._warned = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def _warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= 60.0:
            self._warned = now
            log.warning("budgets: Redis %s failed (%s: %s); using this worker's figures", what, type(exc).__name__,
                        exc)

    async def read(self, limits: Sequence[Limit]) -> list[int | None] | None:
        return await self.read_names([counter(lim.kind, lim.ident, lim.tally.start) for lim in limits])

    async def read_names(self, names: Sequence[str]) -> list[int | None] | None:
        """The pico-USD of the counters named (None: absent); None when Redis did not answer."""
        try:
            got = await asyncio.wait_for(self.redis.mget(names), self.timeout)
        except Exception as exc:
            self._warn("read", exc)
            return None
        return [int(v) * UNIT if v is not None else None for v in got]

    async def seed(self, limits: Sequence[Limit]) -> None:
        """Start each limit's counter at its row's spend, unless someone already did for this period."""
        items = [(lim, counter(lim.kind, lim.ident, lim.tally.start)) for lim in limits
                 if lim.base_start == lim.tally.start]
        if not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as p:
                for lim, name in items:
                    end = lim.tally.end
                    p.set(name, lim.base // UNIT, nx=True, exat=int(end) + 60 if end != FOREVER else None,
                          ex=_NO_END_TTL if end == FOREVER else None)
                await timed("redis", "pipeline", asyncio.wait_for(p.execute(), self.timeout))
        except Exception as exc:
            self._warn("seed", exc)

    async def set_spend(self, kind: str, ident: str | None, pico: int) -> int:
        """Set the counters of entity ``ident`` of ``kind`` (None: of every entity of that kind) to ``pico``, in
        every period Redis still holds (the current one is the one that binds; the others expire within a
        minute of their end); how many were set. A counter no worker seeded yet stays absent: its first reader
        seeds it from the row, which holds the new spend. Increments in flight (requests completed before the
        call, not yet sent) still arrive on top, as the spend sink still adds their cost to the row. Raises on
        a Redis failure or after :data:`SET_TIMEOUT` (the caller answers it)."""
        head = f"{PREFIX}{kind}:"
        pattern = f"{head}{ident.translate(_GLOB)}:*" if ident is not None else f"{head}*"
        want = ident.encode() if ident is not None else None
        cut = len(head.encode())

        async def run() -> int:
            names = [name async for name in self.redis.scan_iter(match=pattern, count=1000)
                     if want is None or name[cut:].rpartition(b":")[0] == want]  # "a:*" also matches "a:b:<start>"
            done = 0
            for i in range(0, len(names), 500):
                async with self.redis.pipeline(transaction=False) as p:
                    for name in names[i:i + 500]:
                        p.set(name, pico // UNIT, xx=True, keepttl=True)
                    done += sum(1 for ok in await p.execute() if ok)
            return done

        return await asyncio.wait_for(run(), SET_TIMEOUT)

    def add(self, kind: str, ident: str, start: float, end: float, pico: int) -> None:
        """Add ``pico`` to the entity's counter of the period ``[start, end)`` (sent with the next flush)."""
        name = counter(kind, ident, start)
        acc = self._pending.get(name)
        if acc is None:
            self._pending[name] = [pico, end]
        else:
            acc[0] += pico
        if not self._flushing:
            self._flushing = True
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        delay = RETRY_FIRST
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                carry = self._carry
                sends = [(name, int(pico) + carry.pop(name, 0), end) for name, (pico, end) in batch.items()]
                try:
                    async with self.redis.pipeline(transaction=False) as p:
                        for name, total, end in sends:
                            p.incrby(name, total // UNIT)
                            if end != FOREVER:
                                p.expireat(name, int(end) + 60)
                            else:
                                p.expire(name, _NO_END_TTL)
                        await timed("redis", "pipeline", asyncio.wait_for(p.execute(), self.timeout * 4))
                except Exception as exc:
                    self._warn("increment", exc)
                    if not unsent(exc):
                        continue  # it may have reached Redis: sent again, it could count twice
                    for name, total, end in sends:  # nothing reached Redis: sent again, with what came since
                        acc = self._pending.get(name)
                        if acc is None:
                            self._pending[name] = [total, end]
                        else:
                            acc[0] += total
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MOST)
                    continue
                delay = RETRY_FIRST
                for name, total, _end in sends:
                    rest = total % UNIT
                    if rest and len(carry) < CARRIED:
                        carry[name] = rest
        finally:
            self._flushing = False

    async def aclose(self) -> None:
        for task in list(self._tasks):
            try:
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            except Exception:
                task.cancel()
        await self.redis.aclose()


async def proxy_spend(store: Store, start: float | None, *, logs: bool = True) -> int | None:
    """The proxy's spend in nano-USD since ``start`` (all of it with None), from the spend logs; without them
    (``disable_spend_logs``) all of it from the global spend counter, and None (not known to the store)
    since a ``start``."""
    from datetime import UTC, datetime

    from relaygate.store import tables as t

    async with store._read() as c:
        if not logs:
            if start is not None:
                return None
            rows = await c.fetch("SELECT spend_nanos AS n FROM rg_spend_totals WHERE entity_type = 'global' "
                                 "AND entity_id = ''", [])
        elif start is None:
            rows = await c.fetch("SELECT COALESCE(SUM(spend_nanos), 0) AS n FROM rg_spend_logs", [])
        else:
            at = t.SPEND_LOGS.to_db("start_time", datetime.fromtimestamp(start, UTC), store.dialect)
            rows = await c.fetch("SELECT COALESCE(SUM(spend_nanos), 0) AS n FROM rg_spend_logs WHERE start_time >= ?",
                                 [at])
    return int(rows[0]["n"]) if rows else 0


_ANY = ("SELECT 1 FROM rg_keys WHERE max_budget IS NOT NULL OR soft_budget IS NOT NULL "
        "OR CAST(model_max_budget AS TEXT) NOT IN ('{}', 'null', '') "
        "OR CAST(budget_limits AS TEXT) NOT IN ('[]', 'null', '') "
        "UNION ALL SELECT 1 FROM rg_teams WHERE max_budget IS NOT NULL OR soft_budget IS NOT NULL "
        "OR CAST(model_max_budget AS TEXT) NOT IN ('{}', 'null', '') "
        "OR CAST(budget_limits AS TEXT) NOT IN ('[]', 'null', '') "
        "UNION ALL SELECT 1 FROM rg_users WHERE max_budget IS NOT NULL OR soft_budget IS NOT NULL "
        "OR CAST(model_max_budget AS TEXT) NOT IN ('{}', 'null', '') "
        "UNION ALL SELECT 1 FROM rg_organizations WHERE budget_id IS NOT NULL "
        "UNION ALL SELECT 1 FROM rg_customers WHERE budget_id IS NOT NULL "
        "UNION ALL SELECT 1 FROM rg_tags WHERE budget_id IS NOT NULL "
        "UNION ALL SELECT 1 FROM rg_team_members WHERE budget_id IS NOT NULL "
        "UNION ALL SELECT 1 FROM rg_teams WHERE CAST(metadata AS TEXT) LIKE '%team_member_budget_id%' LIMIT 1")
_ANY_MEMBER = ("SELECT 1 FROM rg_team_members WHERE budget_id IS NOT NULL "
               "UNION ALL SELECT 1 FROM rg_teams WHERE CAST(metadata AS TEXT) LIKE '%team_member_budget_id%' LIMIT 1")


async def any_budget(store: Store) -> bool:
    """Whether any key, team, team member, user, organization, customer or tag has a budget (the guard's hook
    is installed only then)."""
    async with store._read() as c:
        return bool(await c.fetch(_ANY, []))


async def any_member_budget(store: Store) -> bool:
    """Whether any team membership has a budget row, or any team a default member budget."""
    async with store._read() as c:
        return bool(await c.fetch(_ANY_MEMBER, []))
