"""LiteLLM's ``cache_params: {type: s3}`` end to end: real Granian processes, moto's S3 server (an HTTP server
speaking the S3 API, checking SigV4 signatures), a real upstream that counts its calls, the openai SDK.

Shown here: a hit never reaches the upstream and is shared between two gateway instances on one bucket; the
entry is an object at LiteLLM's key (``s3_path`` + the cache key with ``:`` as ``/``) with ``Expires`` and
``Cache-Control``; an entry past its TTL is a miss; ``/cache/ping``, ``/cache/delete``, ``/cache/flushall``
(which leaves the bucket's other objects alone); an unreachable bucket turns the level off, requests still
answered; and the configuration's errors."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import orjson
import pytest

from relaygate.config.cache import from_litellm as cache_from_litellm
from relaygate.config.errors import FieldError
from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client, upstream  # noqa: F401 (a fixture)
from tests.cache.test_cache_e2e import config as cache_config
from tests.conftest import dead_port, start_gateway
from tests.observe.test_s3 import ACCESS, SECRET, moto_server
from tests.observe.test_s3 import client as s3_client

pytestmark = [pytest.mark.e2e]

BUCKET = "relaygate-cache"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def config(up: Upstream, endpoint: str, **params: Any) -> str:
    """The Redis tests' gateway, its cache an S3 one on the bucket at ``endpoint``."""
    return cache_config(up, None, type="s3", s3_bucket_name=BUCKET, s3_endpoint_url=endpoint,
                        s3_region_name="us-east-1", s3_aws_access_key_id=ACCESS, s3_aws_secret_access_key=SECRET,
                        s3_path="llm-cache", **params)


def _until(what: str, check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_hits_shared_through_the_bucket(upstream: Upstream) -> None:  # noqa: F811
    with moto_server() as url:
        s3 = s3_client(url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="llm-cache/not-ours.txt", Body=b"keep me")
        cfg = config(upstream, url, namespace="team-a", ttl=60)
        with start_gateway(cfg) as gw1, start_gateway(cfg) as gw2, client(gw1.url) as c1, client(gw2.url) as c2:
            first, hit = ask(c1, "q1")
            assert not hit and upstream.calls == 1

            def stored() -> list[str]:
                return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="llm-cache/team-a/").get(
                    "Contents", [])]

            _until("the entry in the bucket", lambda: len(stored()) == 1)
            (name,) = stored()
            obj = s3.get_object(Bucket=BUCKET, Key=name)
            assert obj["CacheControl"] == "immutable, max-age=60, s-maxage=60" and "Expires" in obj
            text, hit = ask(c2, "q1")  # the other instance: from the bucket, not the upstream
            assert hit and text == first and upstream.calls == 1
            raw = c2.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "q1"}])
            assert raw.headers["x-litellm-cache-key"] == name.removeprefix("llm-cache/").replace("/", ":")

            ping = httpx.get(gw1.url + "/cache/ping", headers=ADMIN, timeout=10).json()
            assert ping["status"] == "healthy" and ping["cache_type"] == "s3"
            assert orjson.loads(ping["litellm_cache_params"])["s3"] == {
                "bucket": BUCKET, "endpoint": url, "prefix": "llm-cache/"}
            assert SECRET not in orjson.dumps(ping).decode()

            key = name.removeprefix("llm-cache/").replace("/", ":")
            r = httpx.post(gw1.url + "/cache/delete", headers=ADMIN, json={"keys": [key]}, timeout=10)
            assert r.status_code == 200 and stored() == []
            ask(c2, "q2")
            _until("the second entry", lambda: len(stored()) == 1)
            r = httpx.post(gw1.url + "/cache/flushall", headers=ADMIN, timeout=10)
            assert r.status_code == 200 and stored() == []
            assert s3.get_object(Bucket=BUCKET, Key="llm-cache/not-ours.txt")["Body"].read() == b"keep me"
            assert SECRET not in gw1.log() + gw2.log()


def test_an_expired_entry_is_a_miss(upstream: Upstream) -> None:  # noqa: F811
    with moto_server() as url:
        s3_client(url).create_bucket(Bucket=BUCKET)
        # no memory copy outlives the entry: the memory level's TTL is the shared one's
        with start_gateway(config(upstream, url, ttl=1)) as gw, client(gw.url) as c:
            ask(c, "q")
            time.sleep(0.5)
            assert ask(c, "q")[1] and upstream.calls == 1
            time.sleep(1.6)
            assert not ask(c, "q")[1] and upstream.calls == 2


def test_an_unreachable_bucket_is_skipped(upstream: Upstream) -> None:  # noqa: F811
    dead = f"http://127.0.0.1:{dead_port()}"
    with start_gateway(config(upstream, dead)) as gw, client(gw.url) as c:
        for i in range(3):
            text, hit = ask(c, f"q{i}")
            assert text and not hit
        assert ask(c, "q0")[1] and upstream.calls == 3  # the worker's memory level still serves
        r = httpx.get(gw.url + "/cache/ping", headers=ADMIN, timeout=10)
        assert r.status_code == 503 and "S3" in r.json()["error"]["message"]
        _until("one warning", lambda: "S3 bucket relaygate-cache" in gw.log())
        assert gw.log().count("S3 bucket relaygate-cache at") == 1


def test_configuration() -> None:
    warnings: list[str] = []
    s = cache_from_litellm(True, {"type": "s3", "s3_bucket_name": "b", "s3_path": "p", "s3_verify": False,
                                  "s3_aws_access_key_id": "AKID", "s3_aws_secret_access_key": "sk"}, warnings,
                           environ={})
    assert s is not None and s.type == "s3" and s.s3_params is not None and s.s3_params["s3_bucket_name"] == "b"
    assert s.redis_ttl == 365 * 86400.0 and s.memory_ttl == 600.0 and s.redis_timeout == 2.0
    assert warnings == ["litellm_settings.cache_params.s3_verify: ignored (boto3's client option)"]
    with pytest.raises(FieldError, match="s3_bucket_name"):
        cache_from_litellm(True, {"type": "s3"}, [], environ={})
    with pytest.raises(FieldError, match="s3_endpoint_url"):
        cache_from_litellm(True, {"type": "s3", "s3_bucket_name": "b", "s3_endpoint_url": "minio:9000"}, [],
                           environ={})


def test_the_list_request_is_signed_as_botocore_signs_it() -> None:
    """The flush's ``ListObjectsV2`` (a query string) and an entry's ``GET`` carry botocore's signature (moto
    does not check signatures; S3 does)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from relaygate.cache.s3 import S3Cache, object_key
    from relaygate.config.cache import CacheSettings

    cache = S3Cache.from_settings(CacheSettings(type="s3", s3_params={
        "s3_bucket_name": "b", "s3_region_name": "eu-west-1", "s3_aws_access_key_id": ACCESS,
        "s3_aws_secret_access_key": SECRET, "s3_path": "llm cache/"}))
    listing = cache._url(query={"list-type": "2", "prefix": cache.prefix, "max-keys": "1000",
                                "continuation-token": "1/a+b=="})
    entry = cache._url(object_key(cache.prefix, "team-a:" + "ab" * 32))
    assert entry == f"https://s3.eu-west-1.amazonaws.com/b/llm%20cache/team-a/{'ab' * 32}"
    empty = hashlib.sha256(b"").hexdigest()  # what the cache sends as the body's hash
    for url in (listing, entry):
        ours = dict(cache.signer.sign("GET", url, [("x-amz-content-sha256", empty)], b""))
        req = AWSRequest(method="GET", url=url, headers={"X-Amz-Content-SHA256": empty})
        auth = S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "eu-west-1")
        req.context["timestamp"] = ours["X-Amz-Date"]
        req.headers["X-Amz-Date"] = ours["X-Amz-Date"]
        canonical = auth.canonical_request(req)
        sig = auth.signature(auth.string_to_sign(req, canonical), req)
        assert ours["Authorization"].endswith(f"Signature={sig}"), (url, canonical)
