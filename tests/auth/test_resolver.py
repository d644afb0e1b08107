"""PrincipalResolver on real asyncio loops: cache hits without awaiting, TTL and LRU bounds, negative
cache, single flight, bounded lookups, invalidation, store outages; and sameness with Authenticator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from relaygate.auth import (
    ANONYMOUS,
    Authenticator,
    ChainedLookup,
    ConfigKeys,
    KeyInfo,
    KeyLookup,
    Principal,
    PrincipalKind,
    PrincipalResolver,
    TTLCache,
    hash_key,
    read_token,
)
from relaygate.config.model import Config, GeneralSettings, KeyConfig
from relaygate.core import errors

Headers = list[tuple[bytes, bytes]]


def bearer(key: str) -> Headers:
    return [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + key.encode())]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Store:
    """A KeyLookup standing in for a database: counts queries, can be gated, can fail."""

    def __init__(self, keys: Iterable[KeyConfig] = ()) -> None:
        self.keys = {hash_key(kc.key): KeyInfo(hash_key(kc.key), kc) for kc in keys}
        self.queries = 0
        self.active = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    def add(self, kc: KeyConfig) -> str:
        h = hash_key(kc.key)
        self.keys[h] = KeyInfo(h, kc)
        return h

    async def find(self, token_hash: str) -> KeyInfo | None:
        self.queries += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.fail is not None:
                raise self.fail
            return self.keys.get(token_hash)
        finally:
            self.active -= 1


async def until(cond: object, n: int = 20) -> None:
    for _ in range(n):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def resolver(store: KeyLookup, **kw: object) -> PrincipalResolver:
    return PrincipalResolver("sk-master", store, **kw)  # type: ignore[arg-type]


ALICE = KeyConfig(key="sk-alice", key_alias="alice", team_id="t1", user_id="u1", models=["gpt-4o"])


def test_public_names_of_the_former_module_still_import() -> None:
    import relaygate.auth as auth

    assert auth.Authenticator is Authenticator and auth.KeyInfo is KeyInfo
    assert auth.hash_key("x") == hash_key(b"x")
    assert auth.read_token(bearer("k")) == b"k"


def test_master_key_resolves_without_awaiting() -> None:
    r = resolver(Store())
    p = r.resolve_cached(bearer("sk-master"))
    assert p is r.master and p.is_master and p.key is None
    assert p.key_hash == "litellm_proxy_master_key" and p.record_user == "default_user_id"  # LiteLLM 1.110's
    assert p.user_id is None  # no user's budget binds the master key
    assert p.allows("anything")
    p.check_model("anything")


def test_missing_key_is_401_with_master_and_anonymous_without() -> None:
    with pytest.raises(errors.AuthError) as e:
        resolver(Store()).resolve_cached([(b"content-type", b"application/json")])
    assert e.value.status == 401 and "No api key passed in" in e.value.message
    assert PrincipalResolver(None, Store()).resolve_cached([]) is ANONYMOUS
    assert PrincipalResolver(None, None).resolve_cached(bearer("whatever")) is ANONYMOUS


def test_virtual_key_miss_then_hit_is_the_same_principal() -> None:
    store = Store([ALICE])

    async def main() -> tuple[Principal | None, Principal, Principal | None]:
        r = resolver(store)
        first = r.resolve_cached(bearer("sk-alice"))
        p = await r.resolve(bearer("sk-alice"))
        return first, p, r.resolve_cached(bearer("sk-alice"))

    first, p, again = asyncio.run(main())
    assert first is None
    assert p.kind is PrincipalKind.KEY
    assert (p.key_hash, p.key_alias, p.team_id, p.user_id) == (hash_key("sk-alice"), "alice", "t1", "u1")
    assert again is p
    assert store.queries == 1
    assert p.allows("gpt-4o") and not p.allows("claude")
    with pytest.raises(errors.GatewayError) as e:
        p.check_models(["gpt-4o", "claude"])
    assert e.value.type == "key_model_access_denied"


def test_unknown_key_is_401_and_negative_cached() -> None:
    store = Store()

    async def main() -> PrincipalResolver:
        r = resolver(store)
        with pytest.raises(errors.AuthError):
            await r.resolve(bearer("sk-bad"))
        for _ in range(5):  # now answered synchronously from the negative cache
            with pytest.raises(errors.AuthError):
                r.resolve_cached(bearer("sk-bad"))
        return r

    r = asyncio.run(main())
    assert store.queries == 1
    assert hash_key("sk-bad") in r.negative


def test_unknown_key_without_master_is_anonymous() -> None:
    async def main() -> Principal:
        return await PrincipalResolver(None, Store()).resolve(bearer("sk-bad"))

    assert asyncio.run(main()) is ANONYMOUS


def test_ttl_expiry_looks_up_again() -> None:
    store, clock = Store([ALICE]), Clock()

    async def main() -> None:
        r = resolver(store, ttl=30.0, negative_ttl=5.0, clock=clock)
        p = await r.resolve(bearer("sk-alice"))
        clock.t += 29.0
        assert r.resolve_cached(bearer("sk-alice")) is p
        clock.t += 2.0
        assert r.resolve_cached(bearer("sk-alice")) is None
        assert await r.resolve(bearer("sk-alice")) is p  # same KeyInfo: the principal object is reused
        with pytest.raises(errors.AuthError):
            await r.resolve(bearer("sk-bad"))
        clock.t += 6.0
        assert r.negative.get(hash_key("sk-bad"), clock.t) is None
        with pytest.raises(errors.AuthError):
            await r.resolve(bearer("sk-bad"))

    asyncio.run(main())
    assert store.queries == 4


def test_positive_cache_is_a_bounded_lru() -> None:
    keys = [KeyConfig(key=f"sk-key-{i}") for i in range(3)]
    store = Store(keys)

    async def main() -> PrincipalResolver:
        r = resolver(store, maxsize=2)
        await r.resolve(bearer("sk-key-0"))
        await r.resolve(bearer("sk-key-1"))
        assert r.resolve_cached(bearer("sk-key-0")) is not None  # touch 0: 1 is now the oldest
        await r.resolve(bearer("sk-key-2"))
        assert len(r.cache) == 2
        assert r.resolve_cached(bearer("sk-key-1")) is None
        assert r.resolve_cached(bearer("sk-key-0")) is not None
        assert r.resolve_cached(bearer("sk-key-2")) is not None
        return r

    asyncio.run(main())
    assert store.queries == 3


def test_negative_cache_is_bounded() -> None:
    store = Store()

    async def main() -> PrincipalResolver:
        r = resolver(store, negative_maxsize=3)
        for i in range(10):
            with pytest.raises(errors.AuthError):
                await r.resolve(bearer(f"sk-random-{i}"))
        return r

    r = asyncio.run(main())
    assert len(r.negative) == 3
    assert all(hash_key(f"sk-random-{i}") in r.negative for i in (7, 8, 9))


def test_ttl_cache_unit() -> None:
    c: TTLCache[int] = TTLCache(2, 10.0)
    c.put("a", 1, 0.0)
    assert c.get("a", 9.9) == 1 and c.get("a", 10.0) is None and c.stale("a") == 1
    c.put("b", 2, 0.0)
    c.put("c", 3, 0.0)
    assert "a" not in c and len(c) == 2
    c.pop("b")
    c.clear()
    assert len(c) == 0
    with pytest.raises(ValueError):
        TTLCache(0, 1.0)


def test_invalidate_drops_positive_and_negative_entries() -> None:
    store = Store([ALICE])

    async def main() -> None:
        r = resolver(store)
        p = await r.resolve(bearer("sk-alice"))
        r.invalidate(p.key_hash or "")
        assert r.resolve_cached(bearer("sk-alice")) is None
        assert (await r.resolve(bearer("sk-alice"))).key_hash == p.key_hash
        del store.keys[hash_key("sk-alice")]  # deleted in the store, then announced
        r.invalidate(hash_key("sk-alice"))
        with pytest.raises(errors.AuthError):
            await r.resolve(bearer("sk-alice"))
        with pytest.raises(errors.AuthError):
            r.resolve_cached(bearer("sk-alice"))  # now negative-cached

    asyncio.run(main())
    assert store.queries == 3


def test_invalidate_then_create() -> None:
    store = Store()

    async def main() -> str | None:
        r = resolver(store)
        with pytest.raises(errors.AuthError):
            await r.resolve(bearer("sk-new"))
        with pytest.raises(errors.AuthError):
            r.resolve_cached(bearer("sk-new"))  # negative-cached
        h = store.add(KeyConfig(key="sk-new", key_alias="new"))
        r.invalidate(h)
        assert r.resolve_cached(bearer("sk-new")) is None
        p = await r.resolve(bearer("sk-new"))
        r.clear()
        assert len(r.cache) == 0 and len(r.negative) == 0
        return p.key_alias

    assert asyncio.run(main()) == "new"


def test_lookup_in_flight_during_invalidation_is_not_written_back() -> None:
    store = Store([ALICE])

    async def main() -> tuple[Principal, PrincipalResolver]:
        store.gate = asyncio.Event()
        r = resolver(store)
        waiter = asyncio.ensure_future(r.resolve(bearer("sk-alice")))
        await until(lambda: store.active == 1)
        r.invalidate(hash_key("sk-alice"))  # e.g. the key was blocked while the query ran
        store.gate.set()
        p = await waiter
        assert len(r.cache) == 0  # its answer went to the waiter only
        store.gate = None
        assert r.resolve_cached(bearer("sk-alice")) is None
        await r.resolve(bearer("sk-alice"))
        return p, r

    p, r = asyncio.run(main())
    assert p.key_alias == "alice"
    assert store.queries == 2 and len(r.cache) == 1


def test_concurrent_misses_share_one_lookup_and_survive_a_cancelled_caller() -> None:
    store = Store([ALICE])

    async def main() -> list[Principal]:
        store.gate = asyncio.Event()
        r = resolver(store)
        waiters = [asyncio.ensure_future(r.resolve(bearer("sk-alice"))) for _ in range(50)]
        await until(lambda: store.active == 1)
        waiters[0].cancel()  # a client that went away must not cancel the others' lookup
        await asyncio.sleep(0)
        store.gate.set()
        done = await asyncio.gather(*waiters[1:])
        assert waiters[0].cancelled()
        return done

    done = asyncio.run(main())
    assert store.queries == 1
    assert len({id(p) for p in done}) == 1


def test_a_flood_of_distinct_bad_keys_is_bounded_by_max_lookups() -> None:
    store = Store()

    async def main() -> PrincipalResolver:
        store.gate = asyncio.Event()
        r = resolver(store, max_lookups=3)
        waiters = [asyncio.ensure_future(r.resolve(bearer(f"sk-flood-{i}"))) for i in range(40)]
        await until(lambda: store.active == 3)
        for _ in range(5):
            await asyncio.sleep(0)
        assert store.active == 3
        store.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(x, errors.AuthError) for x in results)
        return r

    r = asyncio.run(main())
    assert store.peak == 3 and store.queries == 40 and r.lookups == 40


def test_store_down_is_503_uncached_and_cached_keys_keep_working(caplog: pytest.LogCaptureFixture) -> None:
    store, clock = Store([ALICE]), Clock()

    async def main() -> None:
        r = resolver(store, ttl=10.0, clock=clock)
        p = await r.resolve(bearer("sk-alice"))
        store.fail = ConnectionRefusedError("db down")
        with pytest.raises(errors.GatewayError) as e:
            await r.resolve(bearer("sk-other"))
        assert e.value.status == 503 and "ConnectionRefusedError" in e.value.message
        assert hash_key("sk-other") not in r.negative
        clock.t += 11.0  # alice's entry expired while the store is down: the stale one answers
        assert await r.resolve(bearer("sk-alice")) is p
        r.invalidate(hash_key("sk-alice"))  # but never once invalidated
        with pytest.raises(errors.GatewayError) as e2:
            await r.resolve(bearer("sk-alice"))
        assert e2.value.status == 503
        store.fail = None  # the store is back: recovery needs nothing
        assert (await r.resolve(bearer("sk-alice"))).key_alias == "alice"
        assert r.lookup_errors == 3

    asyncio.run(main())
    assert len([x for x in caplog.records if "key lookup failed" in x.getMessage()]) == 1


def test_from_config_and_chained_lookup() -> None:
    cfg = Config(keys=[ALICE], general=GeneralSettings(master_key="sk-master"))
    store = Store([KeyConfig(key="sk-db", key_alias="db")])

    async def main() -> tuple[str | None, str | None]:
        r = PrincipalResolver.from_config(cfg, store, ttl=5.0)
        assert isinstance(r.lookup, ChainedLookup)
        a = await r.resolve(bearer("sk-alice"))
        b = await r.resolve(bearer("sk-db"))
        return a.key_alias, b.key_alias

    assert asyncio.run(main()) == ("alice", "db")
    assert store.queries == 1  # alice came from the config keys
    assert isinstance(PrincipalResolver.from_config(cfg).lookup, ConfigKeys)
    assert not PrincipalResolver.from_config(Config()).enabled


CASES: list[Headers] = [
    [],
    bearer("sk-master"),
    bearer("sk-alice"),
    bearer("sk-unknown"),
    [(b"x-api-key", b"sk-alice")],
    [(b"authorization", b"Basic Zm9vOmJhcg==")],
    [(b"authorization", b"Bearer ")],
    [(b"api-key", b"sk-master")],
]


@pytest.mark.parametrize("master", ["sk-master", None])
@pytest.mark.parametrize("with_keys", [True, False])
def test_same_answers_as_authenticator(master: str | None, with_keys: bool) -> None:
    cfg = Config(keys=[ALICE] if with_keys else [], general=GeneralSettings(master_key=master))
    auth = Authenticator(cfg)

    async def main() -> None:
        r = PrincipalResolver.from_config(cfg)
        for _ in range(2):  # cold, then cached
            for h in CASES:
                try:
                    want: KeyInfo | type[Exception] | None = auth.authenticate(h)
                except errors.AuthError:
                    want = errors.AuthError
                try:
                    p = await r.resolve(h)
                    got: KeyInfo | type[Exception] | None = p.key
                    if p.key is None:
                        token = read_token(h)
                        expect_master = master is not None and token == master.encode()
                        assert p.is_master == expect_master, h
                except errors.AuthError:
                    got = errors.AuthError
                if isinstance(want, KeyInfo):
                    assert isinstance(got, KeyInfo) and got.token == want.token, h
                else:
                    assert got == want, h

    asyncio.run(main())
