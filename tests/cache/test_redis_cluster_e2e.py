"""The response cache end to end on a real 3-primary Redis Cluster: two gateways (one with two workers) configured
with LiteLLM's ``redis_startup_nodes``, a real upstream that answers every call differently, the openai SDK.

Shown here: hits shared between workers and instances through the cluster, their entries spread over the
primaries; ``/cache/ping`` and ``/cache/redis/info`` per node; a slot resharded under the gateways still hits
(the redirection followed); ``/cache/flushall`` empties the namespace on every primary and nothing else; a
killed primary turns its slots into misses (every request still answered, one warning per worker) while the
other primaries keep hitting. The in-memory level's TTL is short so lookups reach the cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from relaygate.limits.topology import key_slot
from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client
from tests.cache.test_redis_cluster import RedisCluster, redis_cluster  # noqa: F401  (the fixture)
from tests.cache.test_redis_sentinel import _wait
from tests.conftest import start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

H = {"authorization": f"Bearer {MASTER}"}
PROMPTS = [f"c{i}" for i in range(12)]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


def _key(url: str, prompt: str) -> str | None:
    r = httpx.post(url + "/v1/chat/completions", headers=H,
                   json={"model": "m", "messages": [{"role": "user", "content": prompt}], "cache": {"no-store": True}})
    assert r.status_code == 200
    return r.headers.get("x-litellm-cache-key")


def test_two_gateways_share_a_cluster(redis_cluster: RedisCluster, upstream: Upstream) -> None:  # noqa: F811
    c = redis_cluster
    cfg = orjson.dumps({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up-model", "api_base": upstream.url,
                                                               "api_key": "sk-up"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"cache": True, "cache_params": {
            "type": "redis", "namespace": "rgclu", "ttl": 60, "default_in_memory_ttl": 0.3,
            "redis_startup_nodes": [{"host": "127.0.0.1", "port": str(c.ports[2])}]}},
        "relaygate_settings": {"embedded_database": False},
    }).decode()
    with start_gateway(cfg, workers=2) as gw1, start_gateway(cfg) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first = {p: ask(c1, p)[0] for p in PROMPTS}
        assert upstream.calls == len(PROMPTS)
        keys: dict[str, str] = {}
        for p in PROMPTS:  # the other instance hits what the first stored (polled without storing)
            _wait(lambda p=p: _key(gw2.url, p) is not None, f"gw2 did not hit {p!r}")  # type: ignore[misc]
            assert ask(c2, p) == (first[p], True)
            k = _key(gw2.url, p)
            assert k is not None
            keys[p] = k
        calls = upstream.calls
        for p in PROMPTS[:4]:
            assert ask(c1, p) == (first[p], True)
        assert upstream.calls == calls
        owners = {p: c.owner(key_slot(k.encode())) for p, k in keys.items()}
        assert len(set(owners.values())) >= 2, owners  # spread over the primaries
        assert sum(int(c.cli(port, "DBSIZE")) for port in c.ports) == len(PROMPTS)

        ping = httpx.get(gw1.url + "/cache/ping", headers=H).json()
        assert ping["status"] == "healthy" and ping["redis_nodes"] == {f"127.0.0.1:{p}": True for p in c.ports}
        assert orjson.loads(ping["litellm_cache_params"])["redis"].startswith("redis cluster (")
        assert ping["health_check_cache_params"]["redis_kwargs"]["startup_nodes"]
        info = httpx.get(gw1.url + "/cache/redis/info", headers=H).json()
        assert set(info["info"]) == {f"127.0.0.1:{p}" for p in c.ports} and info["num_clients"] >= 3
        assert info["num_clients"] == len(info["clients"])  # every primary's CLIENT LIST
        assert all(v["cluster_enabled"] == "1" for v in info["info"].values())

        # reshard the slot of one entry to another primary: still a hit from both gateways
        p0 = PROMPTS[0]
        slot, src = key_slot(keys[p0].encode()), owners[p0]
        dst = next(port for port in c.ports if port != src)
        c.cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", c.node_id(src))
        c.cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", c.node_id(dst))
        assert c.cli(src, "MIGRATE", "127.0.0.1", str(dst), keys[p0], "0", "5000") == "OK"
        for port in c.ports:
            c.cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", c.node_id(dst))
        time.sleep(0.4)  # past the in-memory TTL: the lookup goes to the cluster
        for cl in (c1, c2, c1):
            assert ask(cl, p0) == (first[p0], True)
        assert c.cli(dst, "EXISTS", keys[p0]) == "1" and upstream.calls == calls
        owners[p0] = dst

        # flushall: this namespace on every primary, nothing else
        c.cli(c.ports[0], "-c", "SET", "someone-elses-key", "keep")
        assert httpx.post(gw1.url + "/cache/flushall", headers=H).json() == {"status": "success"}
        assert sum(int(c.cli(port, "DBSIZE")) for port in c.ports) == 1
        assert c.cli(c.ports[0], "-c", "GET", "someone-elses-key") == "keep"
        time.sleep(0.4)
        again = {}
        for p in PROMPTS:
            text, hit = ask(c2, p)
            assert not hit and text != first[p]
            again[p] = text
        for p in PROMPTS:
            _wait(lambda p=p: _key(gw1.url, p) is not None, f"gw1 did not hit {p!r} again")  # type: ignore[misc]

        # a primary dies: its slots are misses (still answered), the others keep hitting
        dead = owners[PROMPTS[1]]
        c.kill(dead)
        time.sleep(0.4)
        for cl in (c1, c2):  # a miss is kept in that gateway's memory briefly: each prompt asked once per gateway
            for p in PROMPTS:
                text, hit = ask(cl, p)
                assert text.startswith("answer")
                assert hit == (owners[p] != dead), (p, owners[p], dead)
                if hit:
                    assert text == again[p]
        r = httpx.get(gw1.url + "/cache/ping", headers=H)
        assert r.status_code == 503 and f"127.0.0.1:{dead}" in r.json()["error"]["message"]
        log = gw1.log()
        assert 1 <= log.count(f"response cache: redis 127.0.0.1:{dead} unavailable") <= 2  # once per worker
        assert "Traceback" not in log + gw2.log()
