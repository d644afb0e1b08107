"""The response cache's Redis level on a real 3-primary Redis Cluster (``redis-server --cluster-enabled yes``,
joined by ``redis-cli --cluster create``), and the sans-IO parts of ``limits.topology``.

Shown here: key slots equal the server's ``CLUSTER KEYSLOT`` (the oracle) for hash tags and edge cases;
the slot map read from one startup node; entries spread over the primaries, read back, deleted across slots
and flushed on every primary (other data kept); a slot resharded by hand answers ``ASK`` while it migrates
and ``MOVED`` after, both followed; a killed primary is a quick miss for its slots only (one warning), the
others keep hitting. The ``RedisCluster`` fixture is reused by the end-to-end test module."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relaygate.cache.redis import RedisCache
from relaygate.config.cache import CacheConfigError, from_litellm
from relaygate.limits.resp import RedisAddress, RespError, connect
from relaygate.limits.topology import SLOTS, Cluster, key_slot, parse_slots, redirection
from tests.cache.test_redis import settled
from tests.conftest import free_port, stop_process

pytestmark = pytest.mark.redis


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, both below the kernel's ephemeral range (where
    outgoing connections take their source ports; see ``free_port``)."""
    for _ in range(200):
        p = free_port(10000, 22000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        return p
    pytest.fail("no free port pair for a cluster node")


class NodeDidNotStart(RuntimeError):
    """A node exited or never answered ``PING``: its port or bus port, picked free, was taken before it bound them
    (CI, on a loaded machine, where other tests open and close connections all the time)."""


@dataclass
class RedisCluster:
    dir: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run the README test command (it installs it with apt-get)")
        # the node's log goes to a file in the cluster's directory, so a node that exits at once says why
        with open(self.dir / f"node-{port}.log", "wb") as log:
            proc = self.procs[port] = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                 str(self.dir), "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if self.cli(port, "PING") == "PONG":
                return
            time.sleep(0.05)
        tail = (self.dir / f"node-{port}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise NodeDidNotStart(f"cluster node {port} did not start (exit {proc.poll()}): {' | '.join(tail)}")

    def cli(self, port: int, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=15)
        return r.stdout.strip()

    def node_id(self, port: int) -> str:
        return self.cli(port, "CLUSTER", "MYID")

    def owner(self, slot: int) -> int:
        for line in self.cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            parts = line.split()
            for rng in parts[8:]:
                if rng.startswith("["):
                    continue
                first, _, last = rng.partition("-")
                if int(first) <= slot <= int(last or first):
                    return int(parts[1].split("@")[0].rpartition(":")[2])
        raise AssertionError(f"nobody owns slot {slot}")

    def kill(self, port: int) -> None:
        stop_process(self.procs[port])

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)


def start_cluster(tmp: Path, attempts: int = 3) -> RedisCluster:
    """Three masters on fresh ports, all slots assigned, ``cluster_state:ok``. A cluster whose nodes never agree
    (``redis-cli --cluster create`` waiting to join) or a node that does not start (it exits when its port or bus
    port is taken: both seen in CI on a loaded machine, where a port picked free may be taken by another test's
    connection before the node binds it) is torn down and made again on other ports, at most ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        c = RedisCluster(tmp / f"try{attempt}", [_cluster_port() for _ in range(3)])
        c.dir.mkdir(parents=True, exist_ok=True)
        try:
            for p in c.ports:
                c.spawn(p)
            subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in c.ports),
                            "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=30, check=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all("cluster_state:ok" in c.cli(p, "CLUSTER", "INFO") for p in c.ports):
                    return c
                time.sleep(0.1)
            raise TimeoutError("the cluster did not reach cluster_state:ok")
        except (subprocess.TimeoutExpired, TimeoutError, NodeDidNotStart):
            c.stop()
            if attempt == attempts:
                raise
        except BaseException:
            c.stop()
            raise
    raise AssertionError("unreachable")


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    c = start_cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def cache_on(c: RedisCluster, retry_after: float = 5.0, connect_timeout: float = 1.0) -> RedisCache:
    # a 2 s deadline per call, not the 50 ms default: these tests are about redirections and dead nodes (a
    # refused connection), and a loaded CI machine can hold a GET past 50 ms, which the cache counts a failure
    return RedisCache(Cluster([("127.0.0.1", c.ports[1])]), timeout=2.0, retry_after=retry_after,
                      connect_timeout=connect_timeout)


# -- sans IO ----------------------------------------------------------------------------------------------


def test_parse_slots_apply_and_redirections() -> None:
    reply = [[0, 5460, [b"10.0.0.1", 7001, b"id1"], [b"10.0.0.4", 7004, b"id4"]],
             [5461, 10922, [b"", 7002, b"id2"]],
             [10923, 16383, [b"?", 7003, b"id3"]]]
    ranges = parse_slots(reply, "10.9.9.9")
    assert ranges == [(0, 5460, "10.0.0.1:7001"), (5461, 10922, "10.9.9.9:7002"), (10923, 16383, "10.9.9.9:7003")]
    with pytest.raises(ValueError):
        parse_slots(b"ERR", "h")
    with pytest.raises(ValueError):
        parse_slots([[0, 1]], "h")

    topo = Cluster([("10.0.0.1", 7001)], password="pw")
    assert topo.node_for("anything") is None  # no map yet
    topo.apply(ranges)
    assert [n.name for n in topo.primaries()] == ["10.0.0.1:7001", "10.9.9.9:7002", "10.9.9.9:7003"]
    assert topo.primaries()[0].addr.password == "pw"
    assert topo.slots[0] is topo.slots[5460] is topo.node_at("10.0.0.1:7001")
    assert topo.slots[16383] is topo.node_at("10.9.9.9:7003") and len(topo.slots) == SLOTS
    node = topo.node_for("{user1000}.following")
    assert node is topo.slots[key_slot(b"user1000")]
    old = topo.node_at("10.0.0.1:7001")
    topo.apply([(0, 16383, "10.0.0.1:7001")])
    assert topo.node_at("10.0.0.1:7001") is old  # nodes (and their connections) survive a refresh

    assert redirection(RespError("MOVED 3999 127.0.0.1:6381")) == ("MOVED", 3999, "127.0.0.1:6381")
    assert redirection(RespError("ASK 12 10.0.0.2:7002")) == ("ASK", 12, "10.0.0.2:7002")
    assert redirection(RespError("ERR unknown command")) is None
    assert redirection(RespError("MOVED x y")) is None


def test_cluster_settings(tmp_path: Path) -> None:
    w: list[str] = []
    s = from_litellm(True, {"type": "redis", "redis_startup_nodes": [{"host": "127.0.0.1", "port": "7001"},
                                                                     {"host": "127.0.0.2", "port": 7002}],
                            "password": "pw"}, w, environ={})
    assert s is not None and s.redis_startup_nodes == (("127.0.0.1", 7001), ("127.0.0.2", 7002))
    assert s.redis_password == "pw" and s.redis_host is None and not w
    env = {"REDIS_CLUSTER_NODES": '[{"host": "10.0.0.9", "port": 7009}]', "REDIS_PASSWORD": "envpw"}
    s = from_litellm(True, {"type": "redis"}, w, environ=env)
    assert s is not None and s.redis_startup_nodes == (("10.0.0.9", 7009),) and s.redis_password == "envpw"
    # a url wins, as LiteLLM's (with a warning saying the nodes are not used)
    s = from_litellm(True, {"type": "redis", "url": "redis://h:1", "redis_startup_nodes": [{"host": "a",
                                                                                           "port": 1}]}, w, {})
    assert s is not None and s.redis_url == "redis://h:1" and not s.redis_startup_nodes and "url" in w[-1]
    w.clear()
    s = from_litellm(True, {"type": "redis-semantic", "similarity_threshold": 0.9,
                            "redis_startup_nodes": [{"host": "a", "port": 1}]}, w, {})
    assert s is not None and s.redis_startup_nodes and any("RediSearch" in m for m in w)
    for bad in ([], [{"host": "a"}], [{"host": "a", "port": 1, "tls": True}], [["a", 1]], "not json", "{}",
                [{"host": "", "port": 1}], [{"host": "a", "port": 70000}], [{"host": "a", "port": True}]):
        with pytest.raises(CacheConfigError) as e:
            from_litellm(True, {"type": "redis", "redis_startup_nodes": bad}, [], {})
        assert e.value.field == "litellm_settings.cache_params.redis_startup_nodes"
    with pytest.raises(CacheConfigError) as e:
        from_litellm(True, {"type": "redis"}, [], {"REDIS_CLUSTER_NODES": "[oops"})
    assert e.value.field == "REDIS_CLUSTER_NODES"
    with pytest.raises(CacheConfigError) as e:
        from_litellm(True, {"type": "redis", "db": 2, "redis_startup_nodes": [{"host": "a", "port": 1}]}, [], {})
    assert "database 0" in str(e.value)
    w.clear()
    from_litellm(True, {"type": "local", "redis_startup_nodes": [{"host": "a", "port": 1}]}, w, {})
    assert w == ["litellm_settings.cache_params.redis_startup_nodes: ignored (type 'local' uses no Redis)"]


# -- a real cluster -----------------------------------------------------------------------------------------

EDGE_KEYS = [b"", b"a", b"foo", b"123456789", b"{user1000}.following", b"{user1000}.followers", b"foo{}{bar}",
             b"foo{{bar}}zap", b"foo{bar}{zap}", b"{}", b"}{", b"{a", b"a}", b"{a}", b"x{a}y{b}", b"\xff\x00{\xfe}",
             b"rgtest:" + b"0" * 64, b"relaygate:semantic:chat|m|team", "ключ{тег}".encode()]


def test_key_slots_are_the_servers(redis_cluster: RedisCluster) -> None:
    import random

    rnd = random.Random(15)
    keys = EDGE_KEYS + [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40))) for _ in range(300)]

    async def main() -> None:
        conn = await connect(RedisAddress("127.0.0.1", redis_cluster.ports[0]), 5)
        try:
            replies = await asyncio.gather(*(conn.call("CLUSTER", "KEYSLOT", k) for k in keys))
        finally:
            conn.close()
        assert [key_slot(k) for k in keys] == replies

    asyncio.run(main())


def test_entries_spread_delete_and_flush_every_primary(redis_cluster: RedisCluster) -> None:
    async def main() -> None:
        c = cache_on(redis_cluster)
        try:
            keys = [f"rgtest:{i:064x}" for i in range(60)]
            for i, k in enumerate(keys):
                c.set(k, b"answer %d" % i, 60)
            c.set("b" * 64, b"no namespace", 60)
            assert await settled(c, keys[-1]) == b"answer 59"
            assert [await c.get(k) for k in keys] == [b"answer %d" % i for i in range(60)]
            # one MGET per hash slot, answered in the keys' order (no CROSSSLOT)
            assert await c.get_many([*keys, "rgtest:absent"]) == [*(b"answer %d" % i for i in range(60)), None]
            per_node = {p: int(redis_cluster.cli(p, "DBSIZE")) for p in redis_cluster.ports}
            assert sum(per_node.values()) == 61 and all(n > 5 for n in per_node.values()), per_node
            assert c.topology.refreshes == 1 and c.redirects == 0 and c.failures == 0
            assert await c.ping_nodes() == {f"127.0.0.1:{p}": True for p in redis_cluster.ports}
            assert await c.ping()
            info = await c.info_nodes()
            assert len(info) == 3 and all(v["cluster_enabled"] == "1" for v in info.values())

            redis_cluster.cli(redis_cluster.ports[0], "-c", "SET", "someone-elses-key", "keep")
            assert await c.delete(keys[:10]) == 10  # across slots and nodes (no CROSSSLOT)
            assert await c.get(keys[0]) is None and await c.get(keys[10]) == b"answer 10"
            assert await c.flush("rgtest") == 50
            assert await c.flush(None) == 1  # the 64-hex key only
            assert sum(int(redis_cluster.cli(p, "DBSIZE")) for p in redis_cluster.ports) == 1
            assert redis_cluster.cli(redis_cluster.ports[0], "-c", "GET", "someone-elses-key") == "keep"
        finally:
            await c.aclose()

    asyncio.run(main())


def test_ask_while_a_slot_migrates_and_moved_after(redis_cluster: RedisCluster) -> None:
    key = "rgtest:" + "a" * 64
    slot = key_slot(key.encode())
    src = redis_cluster.owner(slot)
    dst = next(p for p in redis_cluster.ports if p != src)

    async def main() -> None:
        c = cache_on(redis_cluster)
        try:
            c.set(key, b"before the move", 60)
            assert await settled(c, key) == b"before the move"
            src_node = c.topology.node_for(key)
            assert src_node is not None and src_node.addr.port == src

            # migrating: the key moved to dst, the slot still belongs to src -> ASK, the map is unchanged
            redis_cluster.cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", redis_cluster.node_id(src))
            redis_cluster.cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", redis_cluster.node_id(dst))
            assert redis_cluster.cli(src, "MIGRATE", "127.0.0.1", str(dst), key, "0", "5000") == "OK"
            assert await c.get(key) == b"before the move"
            assert c.redirects == 1 and c.topology.node_for(key) is src_node

            # migrated: every node says dst owns the slot -> MOVED, the slot repointed, a refresh
            for p in redis_cluster.ports:
                redis_cluster.cli(p, "CLUSTER", "SETSLOT", str(slot), "NODE", redis_cluster.node_id(dst))
            assert await c.get(key) == b"before the move"
            assert c.redirects == 2
            moved_to = c.topology.node_for(key)
            assert moved_to is not None and moved_to.addr.port == dst
            topo = c.topology
            assert isinstance(topo, Cluster)
            if topo._refreshing is not None:  # the MOVED started a background refresh: let it end first
                await asyncio.shield(topo._refreshing)
            before = topo.refreshes
            topo.slots[slot] = src_node  # forget the repointing: a full refresh reads the new owner
            assert await topo._refresh(1.0) and topo.refreshes == before + 1
            assert topo.node_for(key) is moved_to and c.failures == 0
            assert await c.get(key) == b"before the move" and c.redirects == 2  # no more redirections

            # a cache built before the move writes there through MOVED too
            stale = cache_on(redis_cluster)
            assert await stale.ping()
            stale.topology.slots[slot] = stale.topology.node_at(f"127.0.0.1:{src}")  # type: ignore[attr-defined]
            stale.set(key, b"after the move", 60)
            for _ in range(100):
                if redis_cluster.cli(dst, "GET", key) == "after the move":
                    break
                await asyncio.sleep(0.02)
            assert redis_cluster.cli(dst, "GET", key) == "after the move" and stale.redirects >= 1
            await stale.aclose()
        finally:
            await c.aclose()

    asyncio.run(main())


def test_a_dead_primary_is_a_miss_for_its_slots_only(redis_cluster: RedisCluster,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        c = cache_on(redis_cluster, retry_after=30, connect_timeout=0.3)
        try:
            keys = [f"rgtest:{i:064x}" for i in range(30)]
            for k in keys:
                c.set(k, b"v", 60)
            assert await settled(c, keys[-1]) == b"v"
            dead = redis_cluster.ports[2]
            on_dead = [k for k in keys if redis_cluster.owner(key_slot(k.encode())) == dead]
            alive = [k for k in keys if k not in on_dead]
            assert on_dead and alive
            redis_cluster.kill(dead)
            with caplog.at_level(logging.WARNING, logger="relaygate.cache"):
                for _ in range(3):
                    assert [await c.get(k) for k in on_dead] == [None] * len(on_dead)
                    assert [await c.get(k) for k in alive] == [b"v"] * len(alive)
                    assert await c.get_many([*on_dead, *alive]) == [None] * len(on_dead) + [b"v"] * len(alive)
                c.set(on_dead[0], b"dropped", 60)  # its node is paused: dropped, not queued forever
                await asyncio.sleep(0.05)
            warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
            assert len(warnings) == 1 and f"127.0.0.1:{dead}" in warnings[0], warnings
            assert c.failures >= 3 * len(on_dead) and c.outages == 1 and c.dropped >= 1
            nodes = await c.ping_nodes()
            assert nodes[f"127.0.0.1:{dead}"] is False and sum(nodes.values()) == 2 and not await c.ping()
        finally:
            await c.aclose()

    asyncio.run(main())


def test_no_node_answers_is_a_miss(tmp_path: Path) -> None:
    async def main() -> None:
        c = RedisCache(Cluster([("127.0.0.1", free_port())]), connect_timeout=0.3)
        try:
            assert await c.get("rgtest:x") is None and c.failures == 1
            assert await c.get("rgtest:x") is None and c.failures == 2  # no new attempt within refresh_every
            c.set("rgtest:x", b"v", 60)
            await asyncio.sleep(0.05)
            assert c.dropped == 1
            assert await c.ping_nodes() == {"redis cluster (slot map not read yet)": False}
        finally:
            await c.aclose()

    asyncio.run(main())


def test_redis_semantic_vectors_on_a_cluster_are_scanned(redis_cluster: RedisCluster) -> None:
    """RediSearch is not supported on an OSS cluster: the per-scope hashes serve (each command one key, routed
    to its slot), and the search module is never asked for."""
    from relaygate.cache.vectors_redis import RedisVectors
    from tests.cache.test_semantic import unit

    async def main() -> None:
        c = cache_on(redis_cluster)
        vec = RedisVectors(c, "rgtest", max_entries=3)
        try:
            assert vec.search_module is False
            scopes = [f"chat|m|team{i}" for i in range(6)]
            for i, scope in enumerate(scopes):
                vec.add(scope, f"rgtest:k{i}", unit(1.0, float(i)), ttl=60, value=b"")
            await asyncio.gather(*vec._tasks)
            owners = {redis_cluster.owner(key_slot(f"rgtest:semantic:{s}".encode())) for s in scopes}
            assert len(owners) >= 2  # the scopes' hashes live on several primaries
            for i, scope in enumerate(scopes):
                m = await vec.search(scope, unit(1.0, float(i)), 0.99)
                assert m is not None and m.key == f"rgtest:k{i}"
            assert await vec.search(scopes[0], unit(0.0, 1.0), 0.9) is None
            assert c.failures == 0 and c.redirects == 0
        finally:
            await vec.aclose()
            await c.aclose()

    asyncio.run(main())


# -- the rate limiter's Redis on the same topology code ------------------------------------------------------


def test_the_limiter_on_a_cluster_follows_its_slot(redis_cluster: RedisCluster) -> None:
    """Every limiter key is tagged ``{relaygate}``: one slot, one node. Its buckets are exact through the
    cluster, and when that slot is resharded (keys migrated) the limiter follows ``MOVED`` without going down,
    the bucket's state moving with it."""
    from relaygate.core.ratelimit import Bucket
    from relaygate.limits.redis import RedisLimiter

    bucket = Bucket.per_minute("{relaygate}:t:cluster", 100, "key", "requests")
    slot = key_slot(b"{relaygate}")
    src = redis_cluster.owner(slot)
    dst = next(p for p in redis_cluster.ports if p != src)

    async def main() -> None:
        lim = RedisLimiter(Cluster([("127.0.0.1", redis_cluster.ports[0])]), timeout=2.0)
        try:
            verdicts = await asyncio.gather(*(lim.acquire((bucket,), (1.0,)) for _ in range(150)))
            assert sum(v.ok for v in verdicts) == 100 and not any(v.degraded for v in verdicts)
            await lim.sync()
            assert redis_cluster.cli(src, "EXISTS", bucket.key) == "1" and lim.node is not None
            assert lim.node.addr.port == src

            redis_cluster.cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", redis_cluster.node_id(src))
            redis_cluster.cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", redis_cluster.node_id(dst))
            keys = redis_cluster.cli(src, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").split()
            assert bucket.key in keys
            assert redis_cluster.cli(src, "MIGRATE", "127.0.0.1", str(dst), "", "0", "5000", "KEYS", *keys) == "OK"
            for p in redis_cluster.ports:
                redis_cluster.cli(p, "CLUSTER", "SETSLOT", str(slot), "NODE", redis_cluster.node_id(dst))

            await lim.sync()
            late = [await lim.acquire((bucket,), (1.0,)) for _ in range(5)]
            await lim.sync()
            assert not lim.down and lim.node.addr.port == dst
            assert not any(v.ok for v in late) and not any(v.degraded for v in late)  # the state moved along
            assert redis_cluster.cli(dst, "EXISTS", bucket.key) == "1"
        finally:
            await lim.aclose()

    asyncio.run(main())
