"""The response cache's Redis level behind Redis Sentinel: a real master, a real replica and a real
``redis-server --sentinel`` (all with passwords: ``pw`` for the data nodes, ``spw`` for the sentinel).

Shown here: LiteLLM's sentinel settings and variables read (and malformed ones refused); the master found
through the sentinels (a dead sentinel listed first is skipped); a forced ``SENTINEL failover`` followed
without a restart — new stores land on the new master and what was stored before still hits (replicated);
no sentinel answering is a miss with one warning; and end to end, two gateways share hits through the
sentinel-managed master before and after a failover. Sentinel timeouts are short so each test is bounded."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from relaygate.cache.redis import RedisCache
from relaygate.config.cache import CacheConfigError, from_litellm
from relaygate.limits.topology import Sentinel
from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client
from tests.conftest import free_port, start_gateway, stop_process

pytestmark = pytest.mark.redis

SERVICE = "rgmaster"


@dataclass
class SentinelSet:
    dir: Path
    ports: list[int]
    """The data nodes: the first starts as the master, the second as its replica."""
    sentinel: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, port: int, *args: str) -> str:
        pw = "spw" if port == self.sentinel else "pw"
        r = subprocess.run(["redis-cli", "-p", str(port), "-a", pw, "--no-auth-warning", *args], capture_output=True,
                           text=True, timeout=15)
        return r.stdout.strip()

    def master(self) -> int:
        return int(self.cli(self.sentinel, "SENTINEL", "get-master-addr-by-name", SERVICE).split()[1])

    def role(self, port: int) -> str:
        return self.cli(port, "ROLE").split("\n")[0]

    def failover(self) -> int:
        """Force a failover; wait until the sentinel names the other node and it is a master; its port."""
        old = self.master()
        deadline = time.monotonic() + 20
        # a replica the sentinel found moments ago may not be "good" yet (NOGOODSLAVE): asked again
        while (said := self.cli(self.sentinel, "SENTINEL", "failover", SERVICE)) != "OK":
            assert said.startswith("NOGOODSLAVE") and time.monotonic() < deadline, said
            time.sleep(0.2)
        while time.monotonic() < deadline:
            now = self.master()
            if now != old and self.role(now) == "master":
                return now
            time.sleep(0.1)
        pytest.fail("the sentinel did not fail over")

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {timeout} s")


def start_sentinel_set(tmp: Path) -> SentinelSet:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run the README test command (it installs it with apt-get)")
    s = SentinelSet(tmp, [free_port(), free_port()], free_port())
    try:
        for i, port in enumerate(s.ports):
            extra = ["--replicaof", "127.0.0.1", str(s.ports[0])] if i else []
            s.procs.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                 str(tmp), "--requirepass", "pw", "--masterauth", "pw", *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(lambda: all(s.cli(p, "PING") == "PONG" for p in s.ports), "the data nodes did not start")
        _wait(lambda: "master_link_status:up" in s.cli(s.ports[1], "INFO", "replication"),
              "the replica did not sync")
        conf = tmp / "sentinel.conf"
        conf.write_text(f"port {s.sentinel}\nbind 127.0.0.1\ndir {tmp}\nrequirepass spw\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {s.ports[0]} 1\n"
                        f"sentinel auth-pass {SERVICE} pw\n"
                        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                        f"sentinel failover-timeout {SERVICE} 3000\n")
        s.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        # the sentinel must know the replica before it can fail over to it
        _wait(lambda: str(s.ports[1]) in s.cli(s.sentinel, "SENTINEL", "replicas", SERVICE),
              "the sentinel did not find the replica")
        return s
    except BaseException:
        s.stop()
        raise


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    s = start_sentinel_set(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def cache_on(s: SentinelSet, **kw: float) -> RedisCache:
    dead = free_port()  # listed first: skipped, the next sentinel answers
    return RedisCache(Sentinel([("127.0.0.1", dead), ("127.0.0.1", s.sentinel)], SERVICE, password="pw",
                               sentinel_password="spw"), **kw)


async def settled(cache: RedisCache, key: str, want: bytes | None = None) -> bytes | None:
    got = None
    for _ in range(200):
        got = await cache.get(key)
        if got is not None and (want is None or got == want):
            return got
        await asyncio.sleep(0.02)
    return got


def test_sentinel_settings() -> None:
    w: list[str] = []
    s = from_litellm(True, {"type": "redis", "service_name": "mymaster", "sentinel_nodes": [["10.0.0.1", 26379],
                                                                                          ["10.0.0.2", "26380"]],
                            "sentinel_password": "spw", "password": "pw", "db": 2}, w, environ={})
    assert s is not None and s.redis_sentinel_nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26380)) and not w
    assert (s.redis_service_name, s.redis_sentinel_password, s.redis_password, s.redis_db) == ("mymaster", "spw",
                                                                                                 "pw", 2)
    env = {"REDIS_SENTINEL_NODES": '[["localhost", 26379]]', "REDIS_SERVICE_NAME": "envmaster",
           "REDIS_SENTINEL_PASSWORD": "envspw"}
    s = from_litellm(True, {"type": "redis"}, w, environ=env)
    assert s is not None and s.redis_sentinel_nodes == (("localhost", 26379),)
    assert (s.redis_service_name, s.redis_sentinel_password, s.redis_password) == ("envmaster", "envspw", None)
    # a cluster wins over sentinels, as LiteLLM's
    s = from_litellm(True, {"type": "redis", "redis_startup_nodes": [{"host": "a", "port": 1}], "service_name": "m",
                            "sentinel_nodes": [["b", 2]]}, w, {})
    assert s is not None and s.redis_startup_nodes and not s.redis_sentinel_nodes
    for params, name in (({"service_name": "m"}, "sentinel_nodes"), ({"sentinel_nodes": [["a", 1]]}, "service_name"),
                         ({"service_name": "m", "sentinel_nodes": [{"host": "a", "port": 1}]}, "sentinel_nodes"),
                         ({"service_name": "m", "sentinel_nodes": [["a", 1, 2]]}, "sentinel_nodes"),
                         ({"service_name": "m", "sentinel_nodes": "[[1, 2]]"}, "sentinel_nodes"),
                         ({"service_name": 5, "sentinel_nodes": [["a", 1]]}, "service_name"),
                         ({"host": "h", "db": "x"}, "db")):
        with pytest.raises(CacheConfigError) as e:
            from_litellm(True, {"type": "redis", **params}, [], {})
        assert e.value.field == f"litellm_settings.cache_params.{name}", params
    w.clear()
    s = from_litellm(True, {"type": "redis", "host": "h", "sentinel_password": "x"}, w, {})
    assert s is not None and s.redis_host == "h" and w == [
        "litellm_settings.cache_params.sentinel_password: ignored (no sentinel_nodes / service_name)"]


def test_the_master_is_found_and_a_failover_followed(sentinels: SentinelSet) -> None:
    async def main() -> None:
        c = cache_on(sentinels)
        try:
            await scenario(c)
        finally:
            await c.aclose()

    async def scenario(c: RedisCache) -> None:
        c.set("rg:before", b"stored before", 60)
        assert await settled(c, "rg:before") == b"stored before"
        topo = c.topology
        assert isinstance(topo, Sentinel) and topo.master == f"127.0.0.1:{sentinels.ports[0]}"
        assert "rgmaster" in c.describe() and "pw" not in c.describe()
        _wait(lambda: sentinels.cli(sentinels.ports[1], "GET", "rg:before") == "stored before",
              "the replica did not get the entry")

        new = await asyncio.to_thread(sentinels.failover)
        assert new == sentinels.ports[1]
        for _ in range(300):  # followed without a restart: the watch re-asks the sentinels every second
            if topo.master == f"127.0.0.1:{new}":
                break
            await c.get("rg:before")
            await asyncio.sleep(0.05)
        assert topo.master == f"127.0.0.1:{new}"
        assert await c.get("rg:before") == b"stored before"
        c.set("rg:after", b"stored after", 60)
        assert await settled(c, "rg:after") == b"stored after"
        assert sentinels.cli(new, "GET", "rg:after") == "stored after"
        info = await c.info_nodes()
        assert list(info) == [f"127.0.0.1:{new}"] and info[f"127.0.0.1:{new}"]["role"] == "master"

    asyncio.run(main())


def test_no_sentinel_answers_is_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        c = RedisCache(Sentinel([("127.0.0.1", free_port()), ("127.0.0.1", free_port())], SERVICE),
                       connect_timeout=0.3, retry_after=30)
        with caplog.at_level(logging.WARNING, logger="relaygate.cache"):
            for _ in range(5):
                assert await c.get("rg:x") is None
        warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(warnings) == 1 and "no sentinel named a master" in warnings[0] and c.failures >= 5
        assert await c.ping_nodes() == {"sentinel service 'rgmaster' (master not resolved yet)": False}
        await c.aclose()

    asyncio.run(main())


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.mark.e2e
def test_gateways_share_hits_through_the_sentinels_master_across_a_failover(sentinels: SentinelSet,
                                                                           upstream: Upstream) -> None:
    cfg = orjson.dumps({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up-model", "api_base": upstream.url,
                                                               "api_key": "sk-up"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"cache": True, "cache_params": {
            "type": "redis", "namespace": "rgsent", "ttl": 60, "password": "pw", "service_name": SERVICE,
            "sentinel_nodes": [["127.0.0.1", free_port()], ["127.0.0.1", sentinels.sentinel]],
            "sentinel_password": "spw"}},
        "relaygate_settings": {"embedded_database": False},
    }).decode()
    h = {"authorization": f"Bearer {MASTER}"}
    with start_gateway(cfg, workers=2) as gw1, start_gateway(cfg) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first, hit = ask(c1, "s1")
        assert not hit and upstream.calls == 1
        # polled with no-store: a miss while the store is on its way does not store another answer
        _wait(lambda: ask(c2, "s1", cache={"no-store": True}) == (first, True), "gw2 did not hit gw1's answer")
        info = httpx.get(gw1.url + "/cache/redis/info", headers=h).json()
        assert info["master"] == f"127.0.0.1:{sentinels.ports[0]}" and info["info"]["role"] == "master"
        ping = httpx.get(gw1.url + "/cache/ping", headers=h).json()
        assert ping["status"] == "healthy" and ping["redis_nodes"] == {
            f"sentinel service {SERVICE!r} (master 127.0.0.1:{sentinels.ports[0]})": True}
        assert "spw" not in orjson.dumps(ping).decode() and '"pw"' not in orjson.dumps(ping).decode()

        new = sentinels.failover()
        for i in range(5):  # nothing fails meanwhile
            text, _ = ask(c1, f"during {i}")
            assert text.startswith("answer")
        assert ask(c2, "s1") == (first, True)  # replicated before the failover (or still in gw2's memory)

        def follows() -> bool:
            info = httpx.get(gw2.url + "/cache/redis/info", headers=h).json()
            return bool(info.get("master") == f"127.0.0.1:{new}")

        _wait(follows, "gw2 did not follow the new master")
        after, hit = ask(c2, "s2")
        assert not hit
        _wait(lambda: ask(c1, "s2", cache={"no-store": True}) == (after, True),
              "gw1 did not hit gw2's answer on the new master")

        def hit_key() -> str | None:  # a new connection each time: any of gw1's two workers answers
            return httpx.post(gw1.url + "/v1/chat/completions", headers=h, json={
                "model": "m", "messages": [{"role": "user", "content": "s2"}], "cache": {"no-store": True}},
            ).headers.get("x-litellm-cache-key")

        # each worker asks the sentinels every second: until gw1's other worker has, it may still read the
        # demoted master, which has not replicated s2 yet (a miss, never a wrong answer)
        _wait(lambda: all(hit_key() for _ in range(8)), "gw1's workers did not all hit on the new master")
        calls = upstream.calls
        key = hit_key()
        assert key and sentinels.cli(new, "EXISTS", key) == "1" and upstream.calls == calls  # on the new master
        assert "Traceback" not in gw1.log() + gw2.log()


def test_the_limiter_follows_a_failover(sentinels: SentinelSet) -> None:
    """The rate limiter's Redis on the same sentinel code: exact through the master, and after a failover it
    talks to the new master (the bucket replicated, still spent) without a restart."""
    from relaygate.core.ratelimit import Bucket
    from relaygate.limits.redis import RedisLimiter

    bucket = Bucket("{relaygate}:t:sentinel", "t", 20, 20 / 86400, "key", "requests")  # 20 a day: no refill

    async def main() -> None:
        lim = RedisLimiter(Sentinel([("127.0.0.1", sentinels.sentinel)], SERVICE, password="pw",
                                    sentinel_password="spw"), timeout=2.0)
        try:
            verdicts = [await lim.acquire((bucket,), (1.0,)) for _ in range(25)]
            assert sum(v.ok for v in verdicts) == 20 and not any(v.degraded for v in verdicts)
            await lim.sync()
            await asyncio.to_thread(_wait, lambda: sentinels.cli(sentinels.ports[1], "EXISTS", bucket.key) == "1",
                                    "the replica did not get the bucket")
            new = await asyncio.to_thread(sentinels.failover)
            for _ in range(300):
                await lim.sync()
                node = lim.node
                if node is not None and node.addr.port == new and not lim.down:
                    break
                await asyncio.sleep(0.05)
            assert lim.node is not None and lim.node.addr.port == new and not lim.down
            v = await lim.acquire((bucket,), (1.0,))
            assert not v.ok and not v.degraded  # the shared bucket, replicated, is still spent
        finally:
            await lim.aclose()

    asyncio.run(main())
