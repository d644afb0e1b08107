"""TLS to Redis (``config.redis_tls``): every way LiteLLM's configs ask for it, against a real redis-server that
speaks only TLS, for the gateway's own RESP client (limiter, cache) and for the redis-py layers (keys, spend,
reloads), with the failures an operator meets (an untrusted or misnamed certificate, a missing client
certificate, a plaintext server) bounded by the connect timeout and named in the error."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from relaygate.cache.redis import RedisCache
from relaygate.config.cache import CacheConfigError, from_litellm
from relaygate.config.loader import validate
from relaygate.config.model import Config, RouterSettings
from relaygate.config.redis_tls import RedisTls, RedisTlsError, tls_for_url, tls_from_env, url_with_tls
from relaygate.core.ratelimit import Bucket
from relaygate.gateway.announce import redis_url_of as _redis_url
from relaygate.limits import make_limiter
from relaygate.limits.redis import RedisLimiter
from relaygate.limits.resp import RedisAddress, RespConnection, connect, encode
from tests.conftest import RedisServer
from tests.limits.tls_redis import TlsRedis, tls_redis

pytestmark = pytest.mark.redis

TIMEOUT = 2.0
BOUND = 6.0
"""A hang guard, never a latency assert: a failed handshake must end well within it."""


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with tls_redis(tmp_path) as s:
        yield s


async def ping(addr: RedisAddress) -> Any:
    conn = await connect(addr, TIMEOUT)
    try:
        return await conn.request(encode(("PING",)), asyncio.get_running_loop().time() + TIMEOUT)
    finally:
        conn.close()


def failure(addr: RedisAddress) -> tuple[BaseException, float]:
    """The error connecting to ``addr`` raises, and how long it took."""
    t = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(ping(addr), BOUND))
    except BaseException as exc:  # the test looks at what it was
        return exc, time.monotonic() - t
    raise AssertionError(f"connecting to {addr!r} should have failed")


def test_rediss_url_with_its_query_options(server: TlsRedis) -> None:
    addr = RedisAddress.from_settings(server.url(ssl_ca_certs=str(server.ca)), None, None, None)
    assert addr.tls == RedisTls(ca_certs=str(server.ca)) and repr(addr) == f"rediss://localhost:{server.port}/0"
    assert asyncio.run(ping(addr)) in (b"PONG", "PONG")


def test_host_with_tls_options_and_the_defaults_verify(server: TlsRedis) -> None:
    addr = RedisAddress.from_settings(None, "localhost", server.port, None, RedisTls(ca_certs=str(server.ca)))
    assert asyncio.run(ping(addr)) in (b"PONG", "PONG")
    # the defaults trust only the system's CAs: a self-signed server is refused, and says why
    exc, took = failure(RedisAddress("localhost", server.port, tls=RedisTls()))
    assert isinstance(exc, ssl.SSLCertVerificationError) and took < BOUND
    exc, _ = failure(RedisAddress("localhost", server.port, tls=RedisTls(ca_certs=str(server.stranger))))
    assert isinstance(exc, ssl.SSLCertVerificationError)


def test_host_name_is_checked_unless_turned_off(server: TlsRedis) -> None:
    exc, _ = failure(RedisAddress("127.0.0.1", server.port, tls=RedisTls(ca_certs=str(server.ca))))
    assert isinstance(exc, ssl.SSLCertVerificationError) and "127.0.0.1" in str(exc)
    off = RedisAddress.from_settings(server.url("127.0.0.1", ssl_ca_certs=str(server.ca), ssl_check_hostname="false"),
                                     None, None, None)
    assert off.tls is not None and not off.tls.check_hostname
    assert asyncio.run(ping(off)) in (b"PONG", "PONG")


def test_cert_reqs_none_skips_verification(server: TlsRedis) -> None:
    addr = RedisAddress.from_settings(server.url("127.0.0.1", ssl_cert_reqs="none"), None, None, None)
    assert addr.tls == RedisTls(cert_reqs="none", check_hostname=False)
    assert asyncio.run(ping(addr)) in (b"PONG", "PONG")


def test_client_certificate_when_the_server_asks(tmp_path: Path) -> None:
    with tls_redis(tmp_path, client_certs=True) as s:
        without = RedisAddress("localhost", s.port, tls=RedisTls(ca_certs=str(s.ca)))
        exc, took = failure(without)
        assert isinstance(exc, (ssl.SSLError, ConnectionError, OSError)) and took < BOUND
        mutual = RedisTls(ca_certs=str(s.ca), certfile=str(s.client_cert), keyfile=str(s.client_key))
        assert asyncio.run(ping(RedisAddress("localhost", s.port, tls=mutual))) in (b"PONG", "PONG")


def test_a_plaintext_server_fails_the_handshake_within_the_timeout(redis_server: RedisServer) -> None:
    exc, took = failure(RedisAddress("127.0.0.1", redis_server.port, tls=RedisTls(cert_reqs="none")))
    assert isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, OSError)) and took < BOUND


def test_a_plaintext_client_to_a_tls_server_fails_within_the_timeout(server: TlsRedis) -> None:
    exc, took = failure(RedisAddress("127.0.0.1", server.port))
    assert isinstance(exc, (ConnectionError, TimeoutError, OSError)) and took < BOUND


def test_the_limiter_over_tls_from_litellms_variables(server: TlsRedis) -> None:
    env = {"REDIS_SSL": "True", "REDIS_SSL_CA_CERTS": str(server.ca)}
    lim = make_limiter(RouterSettings(redis_host="localhost", redis_port=server.port), environ=env)
    assert isinstance(lim, RedisLimiter)
    bucket = Bucket.per_minute("{relaygate}:tls:k", 2, "key", "requests")

    async def main() -> list[bool]:
        await lim.start()
        try:
            return [(await lim.acquire((bucket,), (1.0,))).ok for _ in range(3)]
        finally:
            await lim.aclose()

    assert asyncio.run(main()) == [True, True, False]  # counted in Redis, over TLS
    r = redis.Redis.from_url(server.url(ssl_ca_certs=str(server.ca)))
    try:
        assert r.keys("{relaygate}:tls:*")
    finally:
        r.close()


def test_the_cache_over_tls_from_cache_params(server: TlsRedis) -> None:
    warnings: list[str] = []
    settings = from_litellm(True, {"type": "redis", "host": "localhost", "port": server.port, "ssl": True,
                                   "ssl_ca_certs": str(server.ca)}, warnings, environ={})
    assert settings is not None and settings.redis_tls == RedisTls(ca_certs=str(server.ca)) and warnings == []
    cache = RedisCache.from_settings(settings)

    async def main() -> bytes | None:
        try:
            cache.set("tls:k", b"over tls", 60)
            for _ in range(200):
                got = await cache.get("tls:k")
                if got is not None:
                    return got
                await asyncio.sleep(0.01)
            return None
        finally:
            await cache.aclose()

    assert asyncio.run(main()) == b"over tls"
    assert cache.describe().startswith("rediss://localhost:")


def test_redis_py_layers_get_the_same_tls(server: TlsRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys, spend and reloads use redis-py with ``_redis_url``: the variables become ``rediss://`` options."""
    monkeypatch.setenv("REDIS_SSL", "true")
    monkeypatch.setenv("REDIS_SSL_CA_CERTS", str(server.ca))
    url = _redis_url(Config(router=RouterSettings(redis_host="localhost", redis_port=server.port)))
    assert url is not None and url.startswith("rediss://localhost:") and "ssl_ca_certs=" in url
    r = redis.Redis.from_url(url)
    try:
        assert r.ping()
    finally:
        r.close()
    monkeypatch.delenv("REDIS_SSL")
    plain = _redis_url(Config(router=RouterSettings(redis_host="h", redis_password="p w")))
    assert plain == "redis://:p%20w@h:6379"


def test_options_parse_and_errors_name_the_setting(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert tls_from_env({}) is None and tls_from_env({"REDIS_SSL": "False"}) is None
    assert tls_from_env({"REDIS_SSL": "True", "REDIS_SSL_CERT_REQS": "ssl.CERT_NONE"}) == \
        RedisTls(cert_reqs="none", check_hostname=False)
    assert tls_for_url("redis://h:1/0", None, "u") is None
    assert tls_for_url("rediss://h:1/0", None, "u") == RedisTls()
    # the URL refines what the variables asked for
    base = RedisTls(ca_certs=str(ca))
    assert tls_for_url("rediss://h/0?ssl_check_hostname=no", base, "u") == RedisTls(ca_certs=str(ca),
                                                                                  check_hostname=False)
    for env, field in (({"REDIS_SSL": "maybe"}, "REDIS_SSL"),
                       ({"REDIS_SSL": "1", "REDIS_SSL_CERT_REQS": "always"}, "REDIS_SSL_CERT_REQS"),
                       ({"REDIS_SSL": "1", "REDIS_SSL_CA_CERTS": str(tmp_path / "missing.pem")}, "REDIS_SSL_CA_CERTS"),
                       ({"REDIS_SSL": "1", "REDIS_SSL_KEYFILE": str(ca)}, "REDIS_SSL_KEYFILE")):
        with pytest.raises(RedisTlsError) as info:
            tls_from_env(env)
        assert info.value.field == field
    with pytest.raises(CacheConfigError) as cinfo:
        from_litellm(True, {"type": "redis", "host": "h", "ssl": True, "ssl_cert_reqs": "bogus"}, [], environ={})
    assert cinfo.value.field == "litellm_settings.cache_params.ssl_cert_reqs"
    with pytest.raises(CacheConfigError) as cinfo:
        from_litellm(True, {"type": "redis", "url": "rediss://h/0?ssl_ca_certs=/no/such.pem"}, [], environ={})
    assert cinfo.value.field.startswith("litellm_settings.cache_params.url")
    # the cache's own ssl: false wins over the variables; ssl options on a memory cache are reported unused
    assert from_litellm(True, {"type": "redis", "host": "h", "ssl": False}, [],
                        environ={"REDIS_SSL": "true"}).redis_tls is None  # type: ignore[union-attr]
    warnings: list[str] = []
    from_litellm(True, {"type": "local", "ssl": True}, warnings, environ={})
    assert warnings == ["litellm_settings.cache_params.ssl: ignored (type 'local' uses no Redis)"]
    warnings = []
    s = from_litellm(True, {"type": "redis", "host": "h", "ssl": "true", "ssl_cert_reqs": "none"}, warnings, environ={})
    assert s is not None and s.redis_tls == RedisTls(cert_reqs="none", check_hostname=False)
    assert len(warnings) == 1 and "not verified" in warnings[0]


def test_the_config_check_reports_bad_variables_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(router=RouterSettings(redis_host="127.0.0.1"))
    monkeypatch.setenv("REDIS_SSL", "yes")
    monkeypatch.setenv("REDIS_SSL_CERT_REQS", "sometimes")
    [problem] = validate(config)
    assert problem.startswith("REDIS_SSL_CERT_REQS:")
    monkeypatch.delenv("REDIS_SSL_CERT_REQS")
    assert validate(config) == []
    [problem] = validate(Config(router=RouterSettings(redis_url="http://127.0.0.1:6379")))
    assert problem == "router_settings.redis_url: expected a redis:// or rediss:// URL"


def test_url_with_tls_keeps_the_urls_own_options() -> None:
    tls = RedisTls(ca_certs="/etc/ca.pem", certfile="/c.pem")
    url = url_with_tls("redis://:pw@h:1/2?ssl_cert_reqs=none", tls)
    assert url.startswith("rediss://:pw@h:1/2?ssl_cert_reqs=none&")
    assert "ssl_ca_certs=/etc/ca.pem" in url and "ssl_certfile=/c.pem" in url and url.count("ssl_cert_reqs") == 1
    assert url_with_tls("redis://h:1", None) == "redis://h:1"


def test_the_connection_class_is_unchanged_for_plaintext(redis_server: RedisServer) -> None:
    addr = RedisAddress.from_settings(redis_server.url, None, None, None)
    assert addr.tls is None and repr(addr).startswith("redis://")

    async def main() -> bool:
        conn = await connect(addr, TIMEOUT)
        try:
            return isinstance(conn, RespConnection) and conn.transport.get_extra_info("sslcontext") is None
        finally:
            conn.close()

    assert asyncio.run(main())
