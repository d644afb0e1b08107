"""LiteLLM's ``cache_params: {type: gcs}``: the level against a real HTTP server playing Google (its OAuth token
endpoint verifies the service account's signed JWT; its Cloud Storage JSON API checks the bearer token it
issued and keeps the objects), then end to end through real Granian processes, a real upstream that counts its
calls and the openai SDK.

Shown here: an entry is an object at LiteLLM's name (``gcs_path`` + ``/`` + the cache key) read back whole; an
expired object, a foreign one (LiteLLM's JSON) and a missing one are misses; a bucket that fails is skipped,
with one warning; ``/cache/flushall`` deletes only this cache's objects across listing pages; keys and
namespaces cannot reach the URL's path; a hit is shared between two gateway instances; the configuration."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from relaygate.cache.gcs import MAGIC, GcsCache
from relaygate.config.cache import CacheSettings
from relaygate.config.cache import from_litellm as cache_from_litellm
from relaygate.config.errors import FieldError
from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client, upstream  # noqa: F401 (a fixture)
from tests.cache.test_cache_e2e import config as cache_config
from tests.conftest import start_gateway
from tests.observe.test_gcs_bucket import BUCKET, Google, google, key_pem, sa_file  # noqa: F401 (fixtures)

ADMIN = {"Authorization": f"Bearer {MASTER}"}
DIGEST = "ab" * 32


def level(google: Google, sa: Path, **params: Any) -> GcsCache:  # noqa: F811
    settings = cache_from_litellm(True, {"type": "gcs", "gcs_bucket_name": BUCKET, "gcs_path": "llm-cache",
                                         "gcs_path_service_account": str(sa), **params}, [], environ={})
    assert settings is not None
    return GcsCache.from_settings(settings, environ={"GCS_BASE_URL": google.url})


def frame(expires: float, value: bytes) -> bytes:
    return MAGIC + struct.pack(">d", expires) + value


def test_entries_round_trip_and_what_is_a_miss(google: Google, sa_file: Path) -> None:  # noqa: F811
    async def run() -> None:
        cache = level(google, sa_file)
        try:
            cache.set(f"team-a:{DIGEST}", b"\x00stamp\x01answer", 60)
            cache.set(DIGEST, b"no namespace", 60)
            await cache.flush_pending()
            stored = google.stored[(BUCKET, f"llm-cache/team-a:{DIGEST}")]
            assert stored.startswith(MAGIC) and stored.endswith(b"\x00stamp\x01answer")
            assert abs(struct.unpack_from(">d", stored, 4)[0] - (time.time() + 60)) < 5
            assert await cache.get(f"team-a:{DIGEST}") == b"\x00stamp\x01answer"
            assert await cache.get(DIGEST) == b"no namespace"
            google.stored[(BUCKET, "llm-cache/old")] = frame(time.time() - 1, b"gone")
            google.stored[(BUCKET, "llm-cache/litellms")] = json.dumps({"timestamp": 1, "response": "x"}).encode()
            assert await cache.get("old") is None and await cache.get("litellms") is None
            assert await cache.get("absent") is None
            assert await cache.get_many([DIGEST, "absent"]) == [b"no namespace", None]
            assert cache.failures == 0 and cache.dropped == 0
            _, _, headers, _ = google.uploads[0]
            assert headers["authorization"].startswith("Bearer ya29.") and len(google.grants) == 1  # one token
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_names_stay_inside_the_bucket(google: Google, sa_file: Path) -> None:  # noqa: F811
    """A namespace a client sent (``cache.namespace``) with slashes, dots, ``?`` and ``#``: one object named
    exactly so, the URL's path untouched."""
    async def run() -> None:
        cache = level(google, sa_file)
        try:
            key = f"../../b/other/o/x?alt=media#:{DIGEST}"
            cache.set(key, b"v", 60)
            await cache.flush_pending()
            assert await cache.get(key) == b"v"
            assert (BUCKET, "llm-cache/" + key) in google.stored
            assert all(p.split("?")[0] == f"/upload/storage/v1/b/{BUCKET}/o" for p in google.raw_paths)
            assert google.reads == ["llm-cache/" + key]
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_a_failing_bucket_is_skipped_with_one_warning(google: Google, sa_file: Path,  # noqa: F811
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        cache = level(google, sa_file)
        cache.retry_after = 0.3
        try:
            google.read_status = 503
            with caplog.at_level(logging.WARNING, "relaygate.cache"):
                assert await cache.get(DIGEST) is None
                assert cache.down and cache.failures == 1
                reads = len(google.reads)
                assert await cache.get(DIGEST) is None and cache.failures == 2 and len(google.reads) == reads
            warnings = [r.getMessage() for r in caplog.records if "GCS bucket" in r.getMessage()]
            assert len(warnings) == 1 and "backendError" in warnings[0] and "ya29" not in caplog.text
            google.read_status = 200
            await asyncio.sleep(0.35)
            cache.set(DIGEST, b"back", 60)
            await cache.flush_pending()
            assert await cache.get(DIGEST) == b"back"
            google.token_status = 400  # the held token still serves; a fresh level cannot get one
            fresh = level(google, sa_file)
            try:
                assert await fresh.get(DIGEST) is None and fresh.failures == 1
            finally:
                await fresh.aclose()
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_flush_deletes_only_this_caches_objects_across_pages(google: Google, sa_file: Path) -> None:  # noqa: F811
    async def run() -> None:
        cache = level(google, sa_file)
        try:
            for i in range(5):
                cache.set(f"ns{i}:{i:064x}", b"v", 60)
            await cache.flush_pending()
            google.stored[(BUCKET, "llm-cache/notes.txt")] = b"keep me"
            google.stored[(BUCKET, f"elsewhere/{DIGEST}")] = b"not under the folder"
            assert await cache.ping() is True
            assert await cache.delete(["ns0:" + "0" * 64]) == 1
            assert await cache.flush(None) == 4
            assert sorted(n for _, n in google.stored) == [f"elsewhere/{DIGEST}", "llm-cache/notes.txt"]
            google.buckets.clear()
            assert await cache.ping() is False
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_configuration(tmp_path: Path) -> None:
    warnings: list[str] = []
    s = cache_from_litellm(True, {"type": "gcs", "gcs_path": "/llm/cache/"}, warnings,
                           environ={"GCS_BUCKET_NAME": "my-bucket/dev"})
    assert s is not None and s.type == "gcs" and warnings == []
    assert s.gcs_params == {"bucket": "my-bucket", "prefix": "dev/llm/cache/", "service_account": None}
    assert s.redis_ttl == 365 * 86400.0 and s.memory_ttl == 600.0 and s.redis_timeout == 2.0
    s = cache_from_litellm(True, {"type": "gcs", "gcs_bucket_name": "b-1", "ttl": 30}, [], environ={})
    assert s is not None and s.gcs_params == {"bucket": "b-1", "prefix": "", "service_account": None}
    assert s.redis_ttl == 30 and s.memory_ttl == 30
    with pytest.raises(FieldError, match=r"gcs_bucket_name.*needs a bucket"):
        cache_from_litellm(True, {"type": "gcs"}, [], environ={})
    with pytest.raises(FieldError, match=r"GCS_BUCKET_NAME.*not a GCS bucket name"):
        cache_from_litellm(True, {"type": "gcs"}, [], environ={"GCS_BUCKET_NAME": "Bad_Bucket!"})
    with pytest.raises(FieldError, match=r"gcs_path.*'\.\.'"):
        cache_from_litellm(True, {"type": "gcs", "gcs_bucket_name": "b-1", "gcs_path": "a/../b"}, [], environ={})
    with pytest.raises(FieldError, match="not supported yet"):
        cache_from_litellm(True, {"type": "disk"}, [], environ={})
    bad = tmp_path / "sa.json"
    bad.write_text("{not json")
    from relaygate.config.errors import ConfigError
    with pytest.raises(ConfigError, match="GCS_PATH_SERVICE_ACCOUNT"):
        GcsCache.from_settings(CacheSettings(type="gcs", gcs_params={"bucket": "b-1", "prefix": "",
                                                                      "service_account": str(bad)}), environ={})


@pytest.mark.e2e
def test_hits_shared_through_the_bucket(google: Google, sa_file: Path, upstream: Upstream) -> None:  # noqa: F811
    cfg = cache_config(upstream, None, type="gcs", gcs_bucket_name=BUCKET, gcs_path="llm-cache",
                       gcs_path_service_account=str(sa_file), namespace="team-a", ttl=60)
    env = {"GCS_BASE_URL": google.url}
    with start_gateway(cfg, env=env) as gw1, start_gateway(cfg, env=env) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first, hit = ask(c1, "q1")
        assert not hit and upstream.calls == 1
        deadline = time.monotonic() + 15
        while not google.stored and time.monotonic() < deadline:
            time.sleep(0.05)
        ((_, name),) = google.stored
        assert name.startswith("llm-cache/team-a:")
        raw = c2.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "q1"}])
        assert raw.headers["x-litellm-cache-key"] == name.removeprefix("llm-cache/")  # from the bucket
        assert raw.parse().choices[0].message.content == first and upstream.calls == 1

        ping = httpx.get(gw1.url + "/cache/ping", headers=ADMIN, timeout=10).json()
        assert ping["status"] == "healthy" and ping["cache_type"] == "gcs"
        assert orjson.loads(ping["litellm_cache_params"])["gcs"] == {
            "bucket": BUCKET, "endpoint": google.url, "prefix": "llm-cache/"}
        google.stored[(BUCKET, "llm-cache/notes.txt")] = b"keep me"
        r = httpx.post(gw1.url + "/cache/flushall", headers=ADMIN, timeout=10)
        assert r.status_code == 200 and list(google.stored) == [(BUCKET, "llm-cache/notes.txt")]
        google.buckets.clear()
        r = httpx.get(gw1.url + "/cache/ping", headers=ADMIN, timeout=10)
        assert r.status_code == 503 and "GCS bucket" in r.json()["error"]["message"]
        assert "PRIVATE KEY" not in gw1.log() + gw2.log() and "ya29." not in gw1.log() + gw2.log()
