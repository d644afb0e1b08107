"""Principal resolution: who a request is, decided synchronously when cached, with one await on a miss.

What it owns: turning a request's headers into a :class:`Principal` — the master key (proxy admin), a
virtual key (:class:`~relaygate.auth.keys.KeyInfo`: allow-list, limit buckets, ids for records), or an
anonymous caller of an open gateway — through an in-process cache in front of a pluggable async
:class:`KeyLookup` (the config's keys, :class:`ConfigKeys`, then the database's,
:class:`~relaygate.auth.store_keys.StoreKeys`, chained with :class:`ChainedLookup`).

The hot path never creates a coroutine. :meth:`PrincipalResolver.resolve_cached` is synchronous: it reads
the token, compares it with the master key in constant time (``hmac.compare_digest``), hashes it
(SHA-256, the key's only form in memory) and looks the hash up in the positive cache, then in the negative
cache. It returns the :class:`Principal`, raises the 401, or returns ``None`` when only a lookup can tell;
only then does the caller await :meth:`PrincipalResolver.resolve`. A ``Principal`` is always truthy, so
the pipeline writes ``p = resolver.resolve_cached(headers) or await resolver.resolve(headers)``.

Caches (per worker, no locks: one event loop):

- **Positive**: token hash -> Principal, an LRU of at most ``maxsize`` entries, each fresh for ``ttl``
  seconds (LiteLLM's ``user_api_key_cache_ttl``). An expired entry stays until it is evicted or
  refreshed: if the lookup that should refresh it fails (database down) and ``serve_stale`` is on, the
  stale principal keeps answering (LiteLLM's ``allow_requests_on_db_unavailable`` for cached keys).
- **Negative**: hashes the lookup did not know, an LRU of at most ``negative_maxsize`` for
  ``negative_ttl`` seconds, so a repeated bad key costs no lookup. A flood of *distinct* bad keys still
  misses; it is bounded by ``max_lookups``: at most that many lookups are in flight per worker (the rest
  wait), so the store sees at most ``max_lookups`` concurrent queries per worker, i.e. at most
  ``max_lookups / query latency`` queries per second, whatever the flood. A lookup that costs a query
  (``lookup.remote``: the store) is also rate bounded: a token bucket of ``lookup_burst`` refilled at
  ``lookup_rate`` per second per worker; a miss waits for its slot (FIFO), or gets a 503 at once when
  that wait would pass ``max_lookup_wait``. So the database sees at most ``lookup_burst + lookup_rate x t``
  key lookups in ``t`` seconds per worker (defaults 200 + 200/s), whatever the flood.
- **Refused**: keys that exist but may not be used (blocked key or team, expired key: ``KeyInfo.refusal``)
  are cached as such for ``ttl``, so their 401 costs no lookup either. A key that expires later is cached
  no longer than its expiry.
- **Single flight**: concurrent misses on one hash share one lookup (a Task shielded from the callers'
  cancellation), so a burst on a new key costs one query.
- **Invalidation**: :meth:`PrincipalResolver.invalidate` (key updated, blocked, deleted or created: fed by
  ``Gateway.keys_changed``, the Redis key-change channel and the store change poll, ``auth.changes``)
  drops the hash from every cache and detaches any
  lookup in flight for it, whose answer then goes to its waiters but is never written back: no stale
  key object is cached after an invalidation. :meth:`PrincipalResolver.clear` drops everything (reload).

A lookup that raises anything but a ``GatewayError`` (the database is down) becomes a 503 saying the
database is unavailable, naming the cause's class (logged with its traceback at most once a minute); it is
never cached. A key cached earlier keeps answering while fresh and, with ``serve_stale``
(``allow_requests_on_db_unavailable``), after its TTL too until the database answers again.

JWTs (``enable_jwt_auth``, ``auth.jwt_auth``): with the switch on, :meth:`resolve` sends a bearer token that
looks like a JWT (``eyJ...``) to the JWT check instead of the key lookup: one signature check per token and
worker (single flight), then the principal sits in the positive cache (or the refused one) until the token's
``exp``, so later requests are ordinary cache hits. With the switch off :attr:`PrincipalResolver.jwt` is None
and the only trace of it is that attribute, read on the miss path. A JWT principal carries its route
permissions and claims in :attr:`Principal.jwt` (None for every other principal): the resolver does not know
the route, so its callers (the pipeline, the management and operational routes) check it.

Customers (end users): :meth:`PrincipalResolver.set_blocked_customers` installs a check of the customer
headers (and the runtime a ``before_route`` hook for the body's ``user``) only while some customer is
blocked; otherwise nothing on the request path looks for a customer.

Semantics kept from LiteLLM's proxy (and ``Authenticator``): with a master key, a missing or unknown key
is a 401; without a master key the gateway is open and an unknown or missing key is anonymous (no
limits); with neither a master key nor a lookup, every request is anonymous.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from relaygate.auth.key_routes import KeyRoutes, of_key
from relaygate.auth.keys import Authenticator, KeyInfo, access_groups, hash_key, key_header, read_token
from relaygate.auth.store_keys import customer_blocked
from relaygate.config.model import Config, KeyConfig
from relaygate.core import errors
from relaygate.core.sha import sha256_hex

if TYPE_CHECKING:
    from relaygate.auth.jwt_routes import JWTAccess

__all__ = ["ANONYMOUS", "ChainedLookup", "ConfigKeys", "KeyLookup", "Principal", "PrincipalKind",
           "PrincipalResolver", "TTLCache"]

log = logging.getLogger("relaygate.auth")

V = TypeVar("V")

_NO_KEY = "Authentication Error, No api key passed in."
_BAD_KEY = ("Authentication Error, Invalid proxy server token passed. "
            "Use a valid key in `Authorization: Bearer <key>`.")


PROXY_ADMIN = "proxy_admin"


MASTER_KEY_ALIAS = "litellm_proxy_master_key"
"""What records name the master key by, in place of its hash (LiteLLM's ``LITELLM_PROXY_MASTER_KEY_ALIAS``)."""
ADMIN_USER_ID = "default_user_id"
"""The user the master key's requests are recorded under (LiteLLM's ``litellm_proxy_admin_name`` default)."""


class PrincipalKind(enum.Enum):
    MASTER = "master"
    KEY = "key"
    ANONYMOUS = "anonymous"


class Principal:
    """Who a request is: the master key, a virtual key, or anonymous. Shared, never mutated: the
    resolver caches one per key and hands the same object to every request with that key."""

    __slots__ = ("kind", "key", "key_hash", "key_alias", "team_id", "user_id", "role", "jwt", "record_user", "routes")

    def __init__(self, kind: PrincipalKind, key: KeyInfo | None = None, key_hash: str | None = None,
                 key_alias: str | None = None) -> None:
        self.kind = kind
        self.key = key
        """The virtual key's rights (allow-list, limit buckets); ``None`` for master and anonymous."""
        self.key_hash = key.token if key is not None else key_hash
        """SHA-256 hex of the key (LiteLLM's ``token``): what records and spend logs carry."""
        self.key_alias = key.alias if key is not None else key_alias
        self.team_id = key.team_id if key is not None else None
        self.user_id = key.user_id if key is not None else None
        self.record_user = self.user_id if kind is not PrincipalKind.MASTER else ADMIN_USER_ID
        """The user its requests' records (spend logs, metrics, exporters) name: the key's user; for the master
        key LiteLLM's ``litellm_proxy_admin_name``, ``default_user_id`` (never a user whose budget it pays)."""
        self.role: str | None = key.role if key is not None else PROXY_ADMIN
        """LiteLLM's ``user_role``: ``proxy_admin`` for the master key (and, as LiteLLM, for an open gateway's
        anonymous caller); a stored key's owner's role (``internal_user`` ...); None when unknown."""
        self.jwt: JWTAccess | None = None
        """A JWT's route permissions and claims (``auth.jwt_routes.JWTAccess``), set by the JWT mapping before the
        principal is shared; None for every other principal, so every route checks it with one test."""
        self.routes: KeyRoutes | None = of_key(key.records) if key is not None else None
        """A stored key's ``allowed_routes`` (``auth.key_routes``); None when it has none (and for every other
        principal), so every route checks it with one test."""

    @classmethod
    def for_key(cls, info: KeyInfo) -> Principal:
        return cls(PrincipalKind.KEY, info)

    @property
    def is_master(self) -> bool:
        return self.kind is PrincipalKind.MASTER

    def allows(self, model: str) -> bool:
        """Whether this principal may use ``model`` (master and anonymous may use every model)."""
        return self.key is None or self.key.allows(model)

    def check_model(self, model: str) -> None:
        """Raise the 401 ``key_model_access_denied`` unless ``model`` is allowed."""
        if self.key is not None:
            Authenticator.check_model(self.key, model)

    def check_models(self, models: Iterable[str]) -> None:
        if self.key is not None:
            Authenticator.check_models(self.key, models)

    def __repr__(self) -> str:
        return f"Principal({self.kind.value}, alias={self.key_alias!r}, hash={(self.key_hash or '')[:12]!r})"


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
"""An open gateway's caller (no master key configured): no allow-list, no limits."""


class TTLCache(Generic[V]):
    """A bounded LRU whose entries are fresh for ``ttl`` seconds. ``now`` is passed in (sans-IO)."""

    __slots__ = ("maxsize", "ttl", "data")

    def __init__(self, maxsize: int, ttl: float) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.ttl = ttl
        self.data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str, now: float) -> V | None:
        """The fresh value (and mark it recently used), or ``None``."""
        entry = self.data.get(key)
        if entry is None or entry[0] <= now:
            return None
        self.data.move_to_end(key)
        return entry[1]

    def stale(self, key: str) -> V | None:
        """The value whether fresh or expired (still held until evicted), or ``None``."""
        entry = self.data.get(key)
        return None if entry is None else entry[1]

    def put(self, key: str, value: V, now: float, until: float | None = None) -> None:
        """Cache ``value`` for ``ttl`` seconds, or until ``until`` if that comes first."""
        data = self.data
        deadline = now + self.ttl
        data[key] = (deadline if until is None or until > deadline else until, value)
        data.move_to_end(key)
        while len(data) > self.maxsize:
            data.popitem(last=False)

    def pop(self, key: str) -> None:
        self.data.pop(key, None)

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data


@runtime_checkable
class KeyLookup(Protocol):
    """Where virtual keys live: ``find`` returns the key for a SHA-256 hex hash, or ``None`` if unknown.

    It may raise when its backend is down (the resolver answers 503 and caches nothing)."""

    async def find(self, token_hash: str) -> KeyInfo | None: ...


class ConfigKeys:
    """The config's ``[[keys]]`` (``relaygate_keys:``) in memory, by hash: a :class:`KeyLookup`."""

    def __init__(self, keys: Iterable[KeyConfig], groups: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.keys: dict[str, KeyInfo] = {}
        for kc in keys:
            token = hash_key(kc.key)
            self.keys[token] = KeyInfo(token, kc, groups)

    async def find(self, token_hash: str) -> KeyInfo | None:
        return self.keys.get(token_hash)

    def __len__(self) -> int:
        return len(self.keys)


class ChainedLookup:
    """Several lookups in order (config keys, then the store): the first that knows the hash wins."""

    def __init__(self, *lookups: KeyLookup) -> None:
        self.lookups = lookups
        self.remote = any(getattr(lookup, "remote", False) for lookup in lookups)

    async def find(self, token_hash: str) -> KeyInfo | None:
        for lookup in self.lookups:
            info = await lookup.find(token_hash)
            if info is not None:
                return info
        return None


class PrincipalResolver:
    """One worker's principal resolver: :meth:`resolve_cached` on every request, :meth:`resolve` on a miss."""

    def __init__(self, master_key: str | bytes | None = None, lookup: KeyLookup | None = None, *,
                 ttl: float = 60.0, maxsize: int = 10_000, negative_ttl: float = 10.0,
                 negative_maxsize: int = 10_000, max_lookups: int = 16, serve_stale: bool = True,
                 lookup_rate: float = 200.0, lookup_burst: int = 200, max_lookup_wait: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if max_lookups < 1:
            raise ValueError("max_lookups must be at least 1")
        if isinstance(master_key, str):
            master_key = master_key.encode()
        self.master_key: bytes | None = master_key or None
        self.master = Principal(PrincipalKind.MASTER, key_hash=MASTER_KEY_ALIAS if master_key else None)
        """The master key's principal. Its ``key_hash`` is LiteLLM 1.110's stable alias for the master key,
        ``litellm_proxy_master_key``: neither the key nor its hash reaches spend logs, metric labels or exporters
        (an unsalted SHA-256 of a guessable key can be brute-forced from any of them)."""
        self.lookup = lookup
        self.enabled = self.master_key is not None or lookup is not None
        self.cache: TTLCache[Principal] = TTLCache(maxsize, ttl)
        self.negative: TTLCache[bool] = TTLCache(negative_maxsize, negative_ttl)
        self.refused: TTLCache[KeyInfo] = TTLCache(negative_maxsize, ttl)
        """Keys that exist but may not be used (blocked, expired, team blocked): their 401 costs no lookup."""
        self._entries = self.cache.data  # the same OrderedDict (never rebound): one attribute less per hit
        self.serve_stale = serve_stale
        self.clock = clock
        self.wall = wall
        self.max_lookups = max_lookups
        remote = bool(getattr(lookup, "remote", False))
        self.lookup_rate = lookup_rate if remote and lookup_rate > 0 else 0.0
        """Lookups per second this worker may start (a token bucket of ``lookup_burst``); 0: unbounded (a
        lookup in memory, such as the config's keys, needs no bound)."""
        self.lookup_burst = max(1, lookup_burst)
        self.max_lookup_wait = max_lookup_wait
        self._tokens = float(self.lookup_burst)
        self._stamp = clock()
        self.lookups = 0
        """Lookups started (cache misses that reached the :class:`KeyLookup`)."""
        self.lookup_errors = 0
        self.throttled = 0
        """Lookups refused (503) because the lookup rate bound would have kept them waiting too long."""
        self._inflight: dict[str, asyncio.Task[Principal | None]] = {}
        self._sem: asyncio.Semaphore | None = None
        self._last_error_log = -1e18
        self.access_groups: Mapping[str, tuple[str, ...]] = {}
        """The config's model access groups (group -> model names), for lookups that build ``KeyInfo``."""
        self.blocked_customers: frozenset[str] = frozenset()
        """Customer ids refused (:meth:`set_blocked_customers`); empty: no customer check at all."""
        self.key_header: bytes | None = None
        """LiteLLM's ``litellm_key_header_name`` (lower-case): read before the usual key headers."""
        self.jwt: Any = None
        """``auth.jwt_auth.JWTAuth`` when ``enable_jwt_auth`` is on: :meth:`resolve` (the miss path only) hands it
        tokens that look like JWTs; None (the default): nothing JWT-related runs anywhere."""

    @classmethod
    def from_config(cls, config: Config, lookup: KeyLookup | None = None, **options: Any) -> PrincipalResolver:
        """The master key and ``[[keys]]`` of ``config``, then ``lookup`` (a store) if given; ``options`` are
        the constructor's keyword arguments (``ttl``, ``maxsize``, ``negative_ttl`` ...). ``ttl`` defaults to
        ``general_settings.user_api_key_cache_ttl``, ``maxsize`` to ``user_api_key_cache_max_size`` (else 10,000)
        and ``serve_stale`` to
        ``general_settings.allow_requests_on_db_unavailable``."""
        chain: list[KeyLookup] = []
        groups = access_groups(config)
        if config.keys:
            chain.append(ConfigKeys(config.keys, groups))
        if lookup is not None:
            chain.append(lookup)
        g = config.general
        if g.enable_jwt_auth and not chain:
            from relaygate.auth.jwt_auth import NoKeys

            chain.append(NoKeys())  # an uncached token then reaches resolve(), where JWTs are checked
        found: KeyLookup | None = None if not chain else chain[0] if len(chain) == 1 else ChainedLookup(*chain)
        options.setdefault("ttl", g.user_api_key_cache_ttl)
        if g.user_api_key_cache_max_size is not None:  # LiteLLM's bound on the keys kept in memory
            options.setdefault("maxsize", g.user_api_key_cache_max_size)
        options.setdefault("serve_stale", g.allow_requests_on_db_unavailable)
        resolver = cls(config.general.master_key, found, **options)
        resolver.access_groups = groups
        resolver.key_header = key_header(g.litellm_key_header_name)
        if g.enable_jwt_auth:
            from relaygate.auth.jwt_auth import JWTAuth

            store = getattr(lookup, "store", None)
            resolver.jwt = JWTAuth.from_config(config, store, groups)
        return resolver

    # -- hot path -----------------------------------------------------------------------------------

    def resolve_cached(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        """The principal when it is known without a lookup; ``None``: await :meth:`resolve`.

        Raises ``AuthError`` (401) for a missing key, or a key known to be bad, when a master key is set."""
        if not self.enabled:
            return ANONYMOUS
        token = read_token(headers, self.key_header)
        master = self.master_key
        if token is None:
            if master is None:
                return ANONYMOUS
            raise errors.AuthError(_NO_KEY, param="None")
        if master is not None and hmac.compare_digest(token, master):
            return self.master
        if self.lookup is None:
            return self._unknown()
        h = sha256_hex(token)
        now = self.clock()
        entries = self._entries
        entry = entries.get(h)
        if entry is not None and entry[0] > now:
            entries.move_to_end(h)
            return entry[1]
        return self._known_bad(h, now)

    def _known_bad(self, h: str, now: float) -> Principal | None:
        """Raise for a hash cached as refused or unknown (an open gateway's unknown key is anonymous);
        None: only a lookup can tell."""
        refused = self.refused.get(h, now)
        if refused is not None and refused.refusal is not None:
            raise refused.refusal()
        if self.negative.get(h, now) is not None:
            return self._unknown()
        return None

    async def resolve(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal:
        """The request's principal, awaiting the key lookup on a cache miss."""
        p = self.resolve_cached(headers)
        if p is not None:
            return p
        token = read_token(headers, self.key_header)
        assert token is not None  # resolve_cached returns None only for a present, uncached token
        if self.jwt is not None and token[:3] == b"eyJ":
            p = await self._resolve_jwt(token)
        else:
            p = await self.resolve_hash(sha256_hex(token))
        if self.blocked_customers:
            self.check_customer_headers(headers)
        return p

    async def resolve_hash(self, token_hash: str) -> Principal:
        """The principal of a key given by its SHA-256 hex (a miss path; also for management routes)."""
        now = self.clock()
        p = self.cache.get(token_hash, now)
        if p is not None:
            return p
        if self.lookup is None:
            return self._unknown()
        p = self._known_bad(token_hash, now)
        if p is not None:
            return p
        task = self._inflight.get(token_hash)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._find(token_hash))
            task.add_done_callback(_retrieve)
            self._inflight[token_hash] = task
        found = await asyncio.shield(task)
        return found if found is not None else self._unknown()

    async def _resolve_jwt(self, token: bytes) -> Principal:
        """A bearer JWT (``enable_jwt_auth``): verified and mapped to a principal once (concurrent requests
        with the same new token share one check), cached by its hash until its ``exp``; a token that is no
        JWT after all is looked up as a key."""
        h = sha256_hex(token)
        if not self.jwt.looks_like(token):
            return await self.resolve_hash(h)
        task = self._inflight.get(h)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._check_jwt(token, h))
            task.add_done_callback(_retrieve)
            self._inflight[h] = task
        p = await asyncio.shield(task)
        assert p is not None
        return p

    async def _check_jwt(self, token: bytes, h: str) -> Principal | None:
        """The one check of a JWT (run as a Task): writes the caches unless invalidated meanwhile."""
        jwt_auth = self.jwt
        task = asyncio.current_task()
        try:
            claims = await jwt_auth.verify(token)
            p: Principal = await jwt_auth.principal(token, claims)
        except (errors.GatewayError, asyncio.CancelledError):
            self._detach(h, task)
            raise
        except Exception as exc:  # the store failed while the token's team or user was read
            self._detach(h, task)
            log.error("JWT principal lookup failed", exc_info=exc)
            raise errors.GatewayError(
                f"Authentication Error, the database is unavailable ({type(exc).__name__}): the JWT's team or "
                "user could not be read; try again later", status=503, type="auth_error", param="None",
                code="503") from exc
        current = self._inflight.get(h) is task
        self._detach(h, task)
        refusal = p.key.refusal if p.key is not None else None
        if current:
            now = self.clock()
            exp = jwt_auth.expiry(claims)
            until = None if exp is None else now + (exp - self.wall())
            if p.key is not None and refusal is not None:
                self.refused.put(h, p.key, now, until)
            else:
                self.cache.put(h, p, now, until)
        if refusal is not None:
            raise refusal()
        return p

    def _unknown(self) -> Principal:
        if self.master_key is None:
            return ANONYMOUS  # no master key: LiteLLM's proxy is open; unknown keys pass without limits
        raise errors.AuthError(_BAD_KEY, param="None")

    async def _throttle(self) -> None:
        """Take one lookup slot of the rate bound: wait for it (FIFO: slots are reserved ahead), or 503 when
        the wait would exceed ``max_lookup_wait`` (nothing reaches the store for that request)."""
        now = self.clock()
        rate = self.lookup_rate
        tokens = min(float(self.lookup_burst), self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        wait = (1.0 - tokens) / rate if tokens < 1.0 else 0.0
        if wait > self.max_lookup_wait:
            self._tokens = tokens
            self.throttled += 1
            raise errors.GatewayError("Authentication Error, too many key lookups right now; try again later",
                                      status=503, type="auth_error", param="None", code="503")
        self._tokens = tokens - 1.0
        if wait > 0.0:
            await asyncio.sleep(wait)

    async def _find(self, token_hash: str) -> Principal | None:
        """The one lookup for ``token_hash`` (run as a Task); writes the caches unless invalidated."""
        assert self.lookup is not None
        task = asyncio.current_task()
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_lookups)
        try:
            if self.lookup_rate:
                await self._throttle()
            async with self._sem:
                self.lookups += 1
                info = await self.lookup.find(token_hash)
        except (errors.GatewayError, asyncio.CancelledError):
            self._detach(token_hash, task)
            raise
        except Exception as exc:
            current = self._inflight.get(token_hash) is task
            self._detach(token_hash, task)
            self.lookup_errors += 1
            now = self.clock()
            if now - self._last_error_log >= 60.0:
                self._last_error_log = now
                log.error("key lookup failed (%d failure(s) so far)", self.lookup_errors, exc_info=exc)
            if self.serve_stale and current:
                stale = self.cache.stale(token_hash)
                if stale is not None:
                    key = stale.key
                    if key is not None and key.expires is not None and key.expires <= self.wall():
                        raise errors.GatewayError(
                            "Authentication Error - Expired Key.", status=401, type="expired_key", param="None",
                            code="401") from None
                    return stale
            raise errors.GatewayError(
                f"Authentication Error, the database is unavailable ({type(exc).__name__}): the key could not be "
                "checked; try again later", status=503, type="auth_error", param="None", code="503") from exc
        if self._inflight.get(token_hash) is not task:
            # invalidated while the lookup ran: answer its waiters, but cache nothing
            if info is not None and info.refusal is not None:
                raise info.refusal()
            return Principal.for_key(info) if info is not None else None
        del self._inflight[token_hash]
        now = self.clock()
        if info is None:
            self.negative.put(token_hash, True, now)
            self.cache.pop(token_hash)
            return None
        if info.refusal is not None:
            self.refused.put(token_hash, info, now)
            self.cache.pop(token_hash)
            raise info.refusal()
        p = self.cache.stale(token_hash)
        if p is None or p.key is not info:
            p = Principal.for_key(info)
        ends = min((t for t in (info.expires, info.read_again) if t is not None), default=None)
        until = None if ends is None else now + (ends - self.wall())
        self.cache.put(token_hash, p, now, until)
        return p

    def _detach(self, token_hash: str, task: asyncio.Task[object] | None) -> None:
        if self._inflight.get(token_hash) is task:
            del self._inflight[token_hash]

    # -- customers ----------------------------------------------------------------------------------

    def set_blocked_customers(self, ids: frozenset[str]) -> None:
        """Refuse requests of these customers (end users). With none (the usual case) the request path
        does not look for a customer at all; with some, :meth:`resolve_cached` also reads the customer
        headers (``x-litellm-customer-id``, ``x-litellm-end-user-id``), and the pipeline's ``before_route``
        hook (:meth:`check_customer_body`, installed by the runtime) the body's ``user`` field."""
        self.blocked_customers = ids
        if ids:
            self.resolve_cached = self._resolve_cached_customers  # type: ignore[method-assign]
        else:
            self.__dict__.pop("resolve_cached", None)

    def _resolve_cached_customers(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        p = PrincipalResolver.resolve_cached(self, headers)
        if p is not None:
            self.check_customer_headers(headers)
        return p

    def check_customer_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        blocked = self.blocked_customers
        for k, v in headers:
            if k in _CUSTOMER_HEADERS:
                who = v.decode("latin-1").strip()
                if who in blocked:
                    raise customer_blocked(who)

    async def check_customer_body(self, ex: Any) -> None:
        """The ``before_route`` hook: the body's ``user`` field, or the header ``user_header_name`` names, is a
        blocked customer -> 400."""
        user = getattr(ex.view, "user", None)
        if isinstance(user, str) and user in self.blocked_customers:
            raise customer_blocked(user)
        over = ex.over
        if over is not None and over.end_user is not None and over.end_user in self.blocked_customers:
            raise customer_blocked(over.end_user)

    # -- invalidation -------------------------------------------------------------------------------

    def invalidate(self, token_hash: str) -> None:
        """Forget ``token_hash`` everywhere (key changed, blocked, deleted or created): the next request
        with it looks it up again, and a lookup already in flight is never written back."""
        self.cache.pop(token_hash)
        self.negative.pop(token_hash)
        self.refused.pop(token_hash)
        self._inflight.pop(token_hash, None)

    def clear(self) -> None:
        """Forget every cached key and detach every lookup in flight (a reload swapped the key set, or the
        store changed)."""
        self.cache.clear()
        self.negative.clear()
        self.refused.clear()
        self._inflight.clear()


_CUSTOMER_HEADERS = frozenset((b"x-litellm-customer-id", b"x-litellm-end-user-id"))


def _retrieve(task: asyncio.Task[Principal | None]) -> None:
    """Mark a lookup's exception as seen (its waiters may all have left): no "never retrieved" noise."""
    if not task.cancelled():
        task.exception()
