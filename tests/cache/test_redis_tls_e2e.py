"""A LiteLLM config whose Redis speaks only TLS, through real Granian gateways: the cache by a ``rediss://`` URL
with its CA as a query option, the limiter and the redis-py layers by LiteLLM's ``REDIS_SSL`` variables."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis

from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client, upstream  # noqa: F401 - the fixture
from tests.conftest import start_gateway
from tests.limits.tls_redis import tls_redis

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def test_cache_limiter_and_key_layers_over_tls(tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    with tls_redis(tmp_path) as server:
        cfg = orjson.dumps({
            "model_list": [{"model_name": "m", "litellm_params": {
                "model": "openai/up-model", "api_base": upstream.url, "api_key": "sk-up", "rpm": 1000}}],
            "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'rg.db'}"},
            "router_settings": {"redis_host": "localhost", "redis_port": server.port},
            "litellm_settings": {"cache": True, "cache_params": {
                "type": "redis", "namespace": "tls", "url": server.url(ssl_ca_certs=str(server.ca))}},
        }).decode()
        env = {"REDIS_SSL": "True", "REDIS_SSL_CA_CERTS": str(server.ca)}
        with start_gateway(cfg, env=env) as gw1, start_gateway(cfg, env=env) as gw2, client(gw1.url) as c1, \
                client(gw2.url) as c2:
            first, hit = ask(c1, "over tls")
            assert not hit and upstream.calls == 1
            time.sleep(0.3)  # the store reaches Redis off the request path
            text, hit = ask(c2, "over tls")  # the other instance: a hit only Redis can give
            assert hit and text == first and upstream.calls == 1
            r = redis.Redis.from_url(server.url(ssl_ca_certs=str(server.ca)))
            try:
                keys = {k.decode() for k in r.keys("*")}
            finally:
                r.close()
            assert any(k.startswith("tls:") for k in keys), keys  # the cache's entry
            assert any(k.startswith("{relaygate}") for k in keys), keys  # the limiter's buckets
            for gw in (gw1, gw2):
                log = gw.log()
                assert "Traceback" not in log
                assert not [line for line in log.splitlines() if "redis" in line.lower() and (
                    "WARNING" in line or "ERROR" in line)], log
