"""Key changes reach every worker of every instance within a second: :class:`KeyChanges`.

What it owns: keeping one worker's principal caches true to the database while it changes under them.
Two paths, both off the request path:

- **the change poll** (always, when a store is configured): once per ``interval`` (1 s) the worker reads
  ``store.change_version()`` (one row; every store write bumps it in its own transaction). When it moved,
  the resolver's caches are cleared (:meth:`PrincipalResolver.clear
  <relaygate.auth.resolver.PrincipalResolver.clear>`: positive, negative and refused entries, and any lookup
  in flight is detached so its answer is never written back) and the blocked customers are read again.
  The counter says *that* something changed, not *what*: a full clear, and the keys in use are looked up
  again on their next request (one query each, bounded by the resolver's lookup rate). Writes are
  management operations, rare next to requests; a writer that bumps the counter every second would turn
  the cache into a one-second cache, so spend counters must not go through ``Store.write``'s counter.
- **Redis pub/sub** (when Redis is configured, for immediacy): :meth:`KeyChanges.publish` sends the
  changed key hashes on ``relaygate:key-changes``; every worker subscribed (this one too, the same host's
  others, other instances) invalidates exactly those hashes (``*``: clear all). A customer blocked or
  unblocked is announced on the same channel as ``!customers`` (:meth:`KeyChanges.customers_changed`, never
  a key hash: an older worker would only forget a key that does not exist): every worker reads the blocked
  customers again at once. Reads of the blocked set may overlap (the poll, an announcement): the one that
  started last is kept, so a read begun before a write never overwrites one begun after it.

The management API calls ``Gateway.keys_changed(hashes)`` after a write that affects keys (a key created,
updated, blocked, deleted or regenerated: its hashes; a team, user, organization or customer changed:
no hashes, meaning "everything"): the local worker invalidates at once, Redis tells the others at once,
and the poll covers everyone within ``interval`` whether or not Redis delivered.

A database outage: the poll logs once and keeps trying; cached keys keep answering; when the database is
back, a changed version clears the caches as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from relaygate import events
from relaygate.auth.store_keys import blocked_customers

__all__ = ["CUSTOMERS_MESSAGE", "KEYS_CHANNEL", "KeyChanges"]

log = logging.getLogger("relaygate.auth")

KEYS_CHANNEL = "relaygate:key-changes"
CUSTOMERS_MESSAGE = "!customers"
"""On :data:`KEYS_CHANNEL`: the blocked customers changed; read them again."""


class KeyChanges:
    """One worker's invalidation: the change-version poll and the Redis channel.

    ``invalidate(hash)`` and ``clear()`` act on the current resolver; ``customers(ids)`` hands the blocked
    customers to the current runtime (the gateway passes closures, so a reload's new snapshot is covered)."""

    def __init__(self, store: Any, *, invalidate: Callable[[str], None], clear: Callable[[], None],
                 customers: Callable[[frozenset[str]], None], redis_url: str | None = None,
                 interval: float = 1.0) -> None:
        self.store = store
        self._invalidate = invalidate
        self._clear = clear
        self._customers = customers
        self.redis_url = redis_url
        self.interval = interval
        self.version: int | None = None
        self.shared: Any = None
        """The Redis key layer (``auth.shared.SharedKeys``) when there is one."""
        self.blocked: frozenset[str] = frozenset()
        self.polls = 0
        self.clears = 0
        self._down = False
        self._reads = 0
        self._read_applied = -1
        self._tasks: set[asyncio.Task[Any]] = set()

    async def prime(self) -> None:
        """Read the current version and blocked customers once (at startup); failures are logged."""
        await self.poll_once(initial=True)

    async def poll_once(self, *, initial: bool = False) -> bool:
        """One poll; True when the version moved (and the caches were cleared)."""
        self.polls += 1
        try:
            version = await self.store.change_version()
            moved = self.version is not None and version != self.version
            if moved or initial or self.version is None:
                await self._read_blocked()
        except Exception as exc:
            if not self._down:
                self._down = True
                log.warning("key changes: cannot read the database's change version (cached keys keep "
                            "working; retrying every %gs): %s: %s", self.interval, type(exc).__name__, exc)
                events.outage("database", f"{type(exc).__name__}: {exc}")
            return False
        if self._down:
            self._down = False
            log.info("key changes: the database answers again")
        self.version = version
        self._customers(self.blocked)
        if moved:
            self.clears += 1
            self._clear()
        return moved

    async def _read_blocked(self) -> None:
        """Read the blocked customers into :attr:`blocked`, unless a read that started later already did."""
        ticket = self._reads = self._reads + 1
        ids = await blocked_customers(self.store)
        if ticket > self._read_applied:
            self._read_applied = ticket
            self.blocked = ids

    async def refresh_customers(self) -> None:
        """Read the blocked customers again and hand them to the runtime (an announcement on Redis); a
        failure is logged, and the change poll tries again within ``interval``."""
        try:
            await self._read_blocked()
        except Exception as exc:
            log.warning("key changes: cannot read the blocked customers (the change poll retries): %s: %s",
                        type(exc).__name__, exc)
            return
        self._customers(self.blocked)

    def customers_changed(self) -> None:
        """The blocked customers changed: with Redis, tell every worker of every instance to read them again
        now (in the background; the change poll reaches them within ``interval`` anyway). Never awaits."""
        if self.redis_url is None:
            return
        task = asyncio.ensure_future(self._announce_customers())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_customers(self) -> None:
        try:
            await self._send(CUSTOMERS_MESSAGE)
        except Exception as exc:
            log.warning("customer change could not be announced on Redis: %s: %s", type(exc).__name__, exc)

    async def run(self) -> None:
        """Poll forever (a task, cancelled at shutdown)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.poll_once()

    def apply(self, hashes: Iterable[str] | None) -> None:
        """Invalidate ``hashes`` in this worker (None or empty: clear every cached key); with the Redis key
        layer, these keys are read from the database until the change version moves (``SharedKeys.bypass``)."""
        hashes = list(hashes or ())
        if self.shared is not None:
            self.shared.bypass(hashes or None)
        if not hashes:
            self.clears += 1
            self._clear()
            return
        for h in hashes:
            self._invalidate(h)

    async def publish(self, hashes: Iterable[str] | None, *, timeout: float = 2.0) -> int:
        """Tell every subscribed worker (this host's and others') to invalidate ``hashes`` (None: all);
        the number of subscribers reached (0 without Redis)."""
        return await self._send(" ".join(hashes or ()) or "*", timeout=timeout)

    async def _send(self, message: str, *, timeout: float = 2.0) -> int:
        if self.redis_url is None:
            return 0
        from redis.asyncio import Redis

        client = Redis.from_url(self.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return int(await client.publish(KEYS_CHANNEL, message))
        finally:
            await client.aclose()

    async def subscribe(self, retry: float = 1.0) -> None:
        """Listen on the channel until cancelled; Redis away: one warning, a new try every ``retry`` s (the
        poll still covers every change meanwhile)."""
        assert self.redis_url is not None
        from redis.asyncio import Redis

        down = False
        while True:
            client = Redis.from_url(self.redis_url, socket_connect_timeout=max(retry, 1.0), health_check_interval=30)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(KEYS_CHANNEL)
                    if down:
                        down = False
                        log.info("key changes: Redis pub/sub subscribed again")
                        self.apply(None)  # messages may have been missed meanwhile
                        await self.refresh_customers()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message.get("data")
                        text = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
                        if text.strip() == CUSTOMERS_MESSAGE:
                            await self.refresh_customers()
                        else:
                            self.apply(None if text.strip() == "*" else text.split())
            except Exception as exc:
                if not down:
                    down = True
                    log.warning("key changes: cannot listen on Redis pub/sub (retrying every %gs): %s: %s",
                                retry, type(exc).__name__, exc)
            finally:
                await client.aclose()
            await asyncio.sleep(retry)
