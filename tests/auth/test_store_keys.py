"""Keys in the database (auth.store_keys, auth.changes) on SQLite and a real PostgreSQL, through the gateway
called in-process: a stored key answers; blocked / expired / deleted / team-blocked keys are refused as
LiteLLM refuses them; team allow-lists intersect; access groups; limits; the change poll invalidates;
a database outage keeps cached keys working; a flood of bad keys is bounded; blocked customers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from relaygate.asgi import Gateway
from relaygate.auth import PrincipalResolver, StoreKeys
from relaygate.config import ConfigError, from_litellm
from relaygate.store import Customer, Key, Store, Team, User, hash_token, key_name
from tests.asgi.conftest import Reply, call
from tests.pg import PostgresServer
from tests.store.conftest import db_url  # noqa: F401  (the backend parametrisation)

T = TypeVar("T")
MASTER = "sk-master-store-keys"


def make_gateway(url: str, **general: Any) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [
            {"model_name": "gpt-a", "litellm_params": {"model": "mock/echo"}, "model_info": {"access_groups": ["grp"]}},
            {"model_name": "gpt-b", "litellm_params": {"model": "mock/echo"}, "model_info": {"access_groups": ["grp"]}},
            {"model_name": "gpt-c", "litellm_params": {"model": "mock/echo"}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": url, **general},
    }, "<test>"))


class Env:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        assert gw.store is not None
        self.store: Store = gw.store

    async def chat(self, key: str, model: str = "gpt-a", headers: dict[str, str] | None = None,
                   **body: Any) -> Reply:
        return await call(self.gw, "POST", "/v1/chat/completions",
                          {"model": model, "messages": [{"role": "user", "content": "hi"}], **body},
                          headers={"authorization": f"Bearer {key}", **(headers or {})})

    async def key(self, key: str, **fields: Any) -> str:
        await self.store.create_key(Key(token=hash_token(key), key_name=key_name(key), **fields))
        return key


def run(url: str, body: Callable[[Env], Awaitable[T]], **general: Any) -> T:
    async def main() -> Any:
        gw = make_gateway(url, **general)
        await gw.startup()
        try:
            return await body(Env(gw))
        finally:
            await gw.shutdown()

    return asyncio.run(main())  # type: ignore[no-any-return]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> float:
    t0 = time.monotonic()
    while not await check():
        assert time.monotonic() - t0 < within, "not within the bound"
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def error(r: Reply) -> dict[str, Any]:
    out: dict[str, Any] = r.json()["error"]
    return out


def test_stored_key_answers_and_unknown_is_401(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-stored-1", key_alias="one", models=["gpt-a"], user_id="u1")
        await env.store.create_user(User(user_id="u1", user_role="internal_user"))
        env.gw.keys_changed([hash_token(key)])
        assert (await env.chat(key)).status == 200
        assert (await env.chat(key)).status == 200  # cached
        denied = await env.chat(key, "gpt-c")
        assert denied.status == 401 and error(denied)["type"] == "key_model_access_denied"
        bad = await env.chat("sk-not-there")
        assert bad.status == 401 and "Invalid proxy server token" in error(bad)["message"]
        who = await env.gw.principals.resolve_hash(hash_token(key))
        assert who.key_alias == "one" and who.user_id == "u1" and who.role == "internal_user"
        assert env.gw.principals.master.role == "proxy_admin"

    run(db_url, body)


def test_refusals_as_litellm(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        blocked = await env.key("sk-blocked-1", blocked=True)
        expired = await env.key("sk-expired-1", expires=datetime.now(UTC) - timedelta(minutes=1))
        await env.store.create_team(Team(team_id="t-off", blocked=True))
        team_off = await env.key("sk-team-off", team_id="t-off")
        r = await env.chat(blocked)
        assert r.status == 401
        assert error(r)["message"] == ("Authentication Error, Key is blocked. Update via `/key/unblock` if you're "
                                       "an admin.")
        assert error(r)["type"] == "auth_error"
        before = env.gw.principals.lookups
        assert (await env.chat(blocked)).status == 401
        assert env.gw.principals.lookups == before  # a refused key is cached as refused
        r = await env.chat(expired)
        assert r.status == 401 and error(r)["type"] == "expired_key"
        assert error(r)["message"].startswith("Authentication Error - Expired Key. Key Expiry time ")
        assert error(r)["param"] == key_name(expired)
        r = await env.chat(team_off)
        assert r.status == 401
        assert error(r)["message"] == ("Authentication Error, Team=t-off is blocked. Update via `/team/unblock` "
                                       "if you're an admin.")
        # deleted while cached: refused once the management API says so
        gone = await env.key("sk-deleted-1")
        assert (await env.chat(gone)).status == 200
        await env.store.delete_key(hash_token(gone))
        env.gw.keys_changed([hash_token(gone)])
        assert (await env.chat(gone)).status == 401
        # a key that expires soon is cached no longer than its expiry
        soon = await env.key("sk-soon-1", expires=datetime.now(UTC) + timedelta(seconds=0.6))
        assert (await env.chat(soon)).status == 200
        await asyncio.sleep(0.7)
        r = await env.chat(soon)
        assert r.status == 401 and error(r)["type"] == "expired_key"

    run(db_url, body)


def test_team_allow_list_and_access_groups(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="t1", models=["gpt-a", "gpt-c"]))
        both = await env.key("sk-both", team_id="t1", models=["grp"])  # grp = gpt-a, gpt-b; team: a, c
        assert (await env.chat(both, "gpt-a")).status == 200
        assert (await env.chat(both, "gpt-b")).status == 401
        assert (await env.chat(both, "gpt-c")).status == 401
        team_only = await env.key("sk-team-only", team_id="t1")  # no models: the team's
        assert (await env.chat(team_only, "gpt-c")).status == 200
        assert (await env.chat(team_only, "gpt-b")).status == 401
        group = await env.key("sk-group", models=["grp"])
        assert (await env.chat(group, "gpt-b")).status == 200
        assert (await env.chat(group, "gpt-c")).status == 401
        anything = await env.key("sk-anything")
        assert (await env.chat(anything, "gpt-c")).status == 200

    run(db_url, body)


def test_key_and_team_aliases(db_url: str) -> None:  # noqa: F811
    """LiteLLM's key ``aliases`` (over the team's ``model_aliases``): the client's name is served by the alias's
    model, answers carry the client's name, and the key must be allowed the model actually served."""
    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="ta", model_aliases={"fast": "gpt-c", "smart": "gpt-b"}))
        k = await env.key("sk-aliased", team_id="ta", aliases={"smart": "gpt-a"}, models=["gpt-a", "gpt-c"])
        r = await env.chat(k, "smart")  # the key's alias wins over the team's
        assert r.status == 200, r.body
        assert r.json()["model"] == "smart" and r.headers["x-litellm-model-group"] == "gpt-a"
        assert (await env.chat(k, "fast")).headers["x-litellm-model-group"] == "gpt-c"
        narrow = await env.key("sk-alias-narrow", aliases={"x": "gpt-b"}, models=["x"])
        r = await env.chat(narrow, "x")  # an alias is no way around the allow-list
        assert r.status == 401 and error(r)["type"] == "key_model_access_denied"

    run(db_url, body)


def test_key_and_team_limits_use_the_limiter(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-rpm-2", rpm_limit=2)
        assert [(await env.chat(key)).status for _ in range(3)] == [200, 200, 429]
        await env.store.create_team(Team(team_id="t-rpm", rpm_limit=1))
        a = await env.key("sk-team-a", team_id="t-rpm")
        b = await env.key("sk-team-b", team_id="t-rpm")
        assert (await env.chat(a)).status == 200
        assert (await env.chat(b)).status == 429  # the team's bucket is shared by its keys
        info = (await env.gw.principals.resolve_hash(hash_token(key))).key
        assert info is not None and info.headers == ((b"x-litellm-key-rpm-limit", b"2"),)

    run(db_url, body)


def test_key_router_settings(db_url: str) -> None:  # noqa: F811
    """A key's ``router_settings``: its fallbacks serve its requests that name none (kept to the models the key
    may use), and a request's own fallbacks win."""
    async def body(env: Env) -> None:
        k = await env.key("sk-routed", router_settings={"num_retries": 0, "timeout": 30,
                                                        "fallbacks": [{"gpt-a": ["gpt-b", "gpt-c"]}]},
                          models=["gpt-a", "gpt-c"])
        r = await env.chat(k, "gpt-a", mock_testing_fallbacks=True)  # gpt-a fails, the key's fallback answers
        assert r.status == 200, r.body
        assert r.headers["x-litellm-model-group"] == "gpt-c" and r.headers["x-litellm-attempted-fallbacks"] == "1"
        r = await env.chat(k, "gpt-a", mock_testing_fallbacks=True, fallbacks=["gpt-b"])
        assert r.status == 401  # the request's own fallbacks are checked against the allow-list as ever
        plain = await env.key("sk-unrouted", models=["gpt-a", "gpt-c"])
        assert (await env.chat(plain, "gpt-a", mock_testing_fallbacks=True)).status == 500

    run(db_url, body)


def test_per_model_limits_of_key_and_team(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``model_rpm_limit`` / ``model_tpm_limit`` on a key and on its team: only that model's requests
    pay them, on top of the key's own limits."""
    async def body(env: Env) -> None:
        key = await env.key("sk-per-model", model_rpm_limit={"gpt-a": 1}, rpm_limit=10)
        assert [(await env.chat(key, "gpt-a")).status for _ in range(2)] == [200, 429]
        assert [(await env.chat(key, "gpt-c")).status for _ in range(3)] == [200, 200, 200]
        await env.store.create_team(Team(team_id="t-pm", model_rpm_limit={"gpt-c": 1}))
        a = await env.key("sk-pm-a", team_id="t-pm")
        b = await env.key("sk-pm-b", team_id="t-pm")
        assert (await env.chat(a, "gpt-c")).status == 200
        assert (await env.chat(b, "gpt-c")).status == 429  # the team's per-model bucket is shared
        assert (await env.chat(b, "gpt-a")).status == 200

    run(db_url, body)


@pytest.mark.parametrize("disabled", [False, True])
def test_a_per_model_limit_is_answered_by_the_fallbacks(db_url: str, disabled: bool) -> None:  # noqa: F811
    """As LiteLLM: a key's ``model_rpm_limit`` refusing a request tries the configured fallbacks (other model
    groups, whose own per-model limits the key pays then); with ``disable_fallbacks_on_per_model_rate_limits``
    it is the 429. The key's own (not per-model) limits are never answered by a fallback."""
    async def body(env: Env) -> None:
        key = await env.key("sk-pm-fallback", model_rpm_limit={"gpt-a": 1, "gpt-c": 1},
                            router_settings={"fallbacks": [{"gpt-a": ["gpt-c"]}]})
        assert (await env.chat(key, "gpt-a")).status == 200
        r = await env.chat(key, "gpt-a")
        if disabled:
            assert r.status == 429 and "rate limit type = key" in error(r)["message"]
            return
        assert r.status == 200 and r.headers["x-litellm-model-group"] == "gpt-c"
        assert r.headers["x-litellm-attempted-fallbacks"] == "1"
        r = await env.chat(key, "gpt-a")  # gpt-c's own per-model limit is spent too now
        assert r.status == 429 and "Available Model Group Fallbacks=['gpt-c']" in error(r)["message"]
        whole = await env.key("sk-key-limit", rpm_limit=1, router_settings={"fallbacks": [{"gpt-a": ["gpt-c"]}]})
        assert [(await env.chat(whole, "gpt-a")).status for _ in range(2)] == [200, 429]

    run(db_url, body, disable_fallbacks_on_per_model_rate_limits=disabled)


def test_an_id_never_makes_a_limit_per_model(db_url: str) -> None:  # noqa: F811
    """Which limits the fallbacks may answer is the bucket's own flag, not its storage key's text: a user whose id
    looks like a per-model key (``:m:``) still gets the user limit's 429, and LiteLLM's ``user`` headers."""
    async def body(env: Env) -> None:
        await env.store.create_user(User(user_id="u:m:x", rpm_limit=1))
        key = await env.key("sk-colon-user", user_id="u:m:x", router_settings={"fallbacks": [{"gpt-a": ["gpt-c"]}]})
        r = await env.chat(key, "gpt-a")
        assert r.status == 200 and r.headers["x-ratelimit-user-limit-requests"] == "1"
        r = await env.chat(key, "gpt-a")
        assert r.status == 429 and "rate limit type = user" in error(r)["message"]

    run(db_url, body)


def test_change_poll_invalidates_within_a_second(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-poll-1", models=["gpt-a"])
        assert (await env.chat(key)).status == 200
        # written behind the gateway's back (another instance): no keys_changed call
        await env.store.update_key(hash_token(key), blocked=True)

        async def refused() -> bool:
            return (await env.chat(key)).status == 401

        assert await eventually(refused) < 3.0
        await env.store.update_key(hash_token(key), blocked=False, models=["gpt-c"])

        async def changed() -> bool:
            return (await env.chat(key, "gpt-c")).status == 200

        await eventually(changed)
        # a never-seen key created elsewhere: its negative cache entry goes too
        assert (await env.chat("sk-later-1")).status == 401
        await env.key("sk-later-1")

        async def known() -> bool:
            return (await env.chat("sk-later-1")).status == 200

        await eventually(known)

    run(db_url, body)


def test_outage_serves_cached_keys_503_for_unknown_and_recovers(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-cached-1")
        assert (await env.chat(key)).status == 200
        await env.store.close()
        assert (await env.chat(key)).status == 200  # cached
        r = await env.chat("sk-unknown-during-outage")
        assert r.status == 503 and "database is unavailable" in error(r)["message"]
        await env.store.connect()
        assert (await env.chat("sk-unknown-during-outage")).status == 401  # not cached as a failure
        assert (await env.chat(key)).status == 200

    run(db_url, body)


def test_outage_serves_stale_keys_when_allowed(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-stale-1")
        assert (await env.chat(key)).status == 200
        await env.store.close()
        await asyncio.sleep(0.25)  # past the cache TTL
        assert (await env.chat(key)).status == 200
        await env.store.connect()

    run(db_url, body, user_api_key_cache_ttl=0.2, allow_requests_on_db_unavailable=True)


def test_outage_past_ttl_is_503_by_default(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-stale-2")
        assert (await env.chat(key)).status == 200
        await env.store.close()
        await asyncio.sleep(0.25)
        assert (await env.chat(key)).status == 503
        await env.store.connect()
        assert (await env.chat(key)).status == 200

    run(db_url, body, user_api_key_cache_ttl=0.2)


def test_real_postgres_refusing_connections(postgres_server: PostgresServer) -> None:
    """The database itself goes away (connections refused and the pool's own killed), then comes back."""
    import asyncpg

    url = postgres_server.new_database()
    name = url.rsplit("/", 1)[1]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def body(env: Env) -> None:
        key = await env.key("sk-pg-cached")
        assert (await env.chat(key)).status == 200
        await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            assert (await env.chat(key)).status == 200
            r = await env.chat("sk-pg-unknown")
            assert r.status == 503 and "database is unavailable" in error(r)["message"]
        finally:
            await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        async def recovered() -> bool:
            return (await env.chat("sk-pg-unknown")).status == 401

        await eventually(recovered, within=10.0)
        assert (await env.chat(key)).status == 200

    run(url, body)


class CountingStore:
    """The real store, counting key reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    async def get_key(self, token: str) -> Key:
        self.reads += 1
        return await self.store.get_key(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_flood_of_distinct_bad_keys_is_bounded(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        counting = CountingStore(env.store)
        rate, burst = 100.0, 20
        resolver = PrincipalResolver(MASTER, StoreKeys(counting), lookup_rate=rate, lookup_burst=burst,
                                     max_lookup_wait=0.3)
        t0 = time.monotonic()

        async def one(i: int) -> int:
            try:
                await resolver.resolve_hash(hash_token(f"sk-bad-{i}"))
            except Exception as exc:
                return int(getattr(exc, "status", 0))
            return 200

        statuses = await asyncio.gather(*(one(i) for i in range(2000)))
        elapsed = time.monotonic() - t0
        assert set(statuses) <= {401, 503} and statuses.count(503) > 1000
        assert counting.reads <= burst + rate * elapsed + 1
        assert counting.reads == resolver.lookups
        # the same bad keys again: the negative cache answers them, no query
        reads = counting.reads
        for i in range(50):
            if statuses[i] == 401:
                assert await one(i) == 401
        assert counting.reads == reads

    run(db_url, body)


def test_blocked_customers(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        key = await env.key("sk-cust-1")
        resolver = env.gw.principals
        assert not resolver.blocked_customers and "resolve_cached" not in vars(resolver)  # nothing on the path
        assert env.gw.runtime.before_route == ()
        assert (await env.chat(key, user="c-bad")).status == 200
        await env.store.create_customer(Customer(user_id="c-bad", blocked=True))
        await env.store.create_customer(Customer(user_id="c-good"))

        async def blocked() -> bool:
            return (await env.chat(key, user="c-bad")).status == 400

        await eventually(blocked)
        r = await env.chat(key, user="c-bad")
        assert error(r)["message"] == "User blocked from making LLM API Calls. User=c-bad"
        for header in ("x-litellm-customer-id", "x-litellm-end-user-id"):
            assert (await env.chat(key, headers={header: "c-bad"})).status == 400
            assert (await env.chat(key, headers={header: "c-good"})).status == 200
        assert (await env.chat(key, user="c-good")).status == 200
        assert (await env.chat("sk-unknown-cust", headers={"x-litellm-customer-id": "c-bad"})).status == 401
        await env.store.update_customer("c-bad", blocked=False)

        async def unblocked() -> bool:
            return (await env.chat(key, user="c-bad")).status == 200

        await eventually(unblocked)
        assert "resolve_cached" not in vars(env.gw.principals) and env.gw.runtime.before_route == ()

    run(db_url, body)


def test_no_store_costs_nothing() -> None:
    gw = Gateway(from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                               "general_settings": {"master_key": MASTER}}, "<test>"))
    assert gw.database_url is None and gw.principals.lookup is None and gw.principals.lookup_rate == 0
    assert gw.key_changes is None


@pytest.mark.parametrize("ttl", [30.0])
def test_settings_from_litellm_yaml(ttl: float) -> None:
    cfg = from_litellm({"general_settings": {"user_api_key_cache_ttl": ttl,
                                             "allow_requests_on_db_unavailable": True}}, "<test>")
    assert not cfg.warnings
    r = PrincipalResolver.from_config(cfg)
    assert r.cache.ttl == ttl and r.serve_stale is True and r.cache.maxsize == 10_000
    sized = from_litellm({"general_settings": {"user_api_key_cache_max_size": 500}}, "<test>")
    assert not sized.warnings and PrincipalResolver.from_config(sized).cache.maxsize == 500
    with pytest.raises(ConfigError, match="user_api_key_cache_max_size"):
        from_litellm({"general_settings": {"user_api_key_cache_max_size": 0}}, "<test>")
