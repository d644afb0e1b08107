"""The shared level of the response cache in an S3 bucket: LiteLLM's ``cache_params: {type: s3}``.

What it owns: :class:`S3Cache`, which the cache stage (``cache.stage``) uses as it uses the Redis level — a
lookup with a deadline on the request path, stores off it — for every worker and instance pointed at the same
bucket (or any S3-compatible store: MinIO, R2, Ceph ... through ``s3_endpoint_url``). Invariants:

- **Where.** An entry's object key is LiteLLM's: ``s3_path`` + ``/`` + the cache key with ``:`` turned into
  ``/`` (``<namespace>/<sha256>``). Requests are signed with AWS Signature Version 4 (``observe.aws_auth``:
  the ``s3_aws_*`` keys of ``cache_params``, a role, a profile or what the platform provides, renewed before
  they expire) and sent on the gateway's keep-alive HTTP/1.1 pool (``observe.post``).
- **Expiry.** Each ``PUT`` carries ``Expires`` and ``Cache-Control: immutable, max-age=<ttl>`` as LiteLLM's
  does; a lookup that finds an object past its ``Expires`` is a miss. S3 does not delete it: a bucket
  lifecycle rule on the prefix does (say one day past the longest TTL).
- **Never in the way** (``cache.bucket``, shared with the Cloud Storage level): a lookup waits
  ``socket_timeout`` seconds at most (2 by default), any failure is a miss and skips the bucket for a while;
  stores go to a bounded queue sent by one task.
- **Management.** :meth:`ping` is a ``HEAD`` of the bucket; :meth:`delete` deletes objects; :meth:`flush`
  lists the prefix (``ListObjectsV2``) and deletes every object whose name is a cache key's digest, never
  anything else in the bucket. These raise ``LookupError`` when S3 does not answer, as the Redis level's do.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

from relaygate.cache.bucket import BucketCache
from relaygate.observe.aws_auth import AwsSigner
from relaygate.observe.post import Answer, Poster

if TYPE_CHECKING:
    from relaygate.config.cache import CacheSettings

__all__ = ["S3Cache", "object_key"]

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_SAFE = "/-_.~"


def object_key(prefix: str, key: str) -> str:
    """LiteLLM's object key of a cache key: the ``s3_path`` prefix, then the key with ``:`` as ``/``."""
    return prefix + key.replace(":", "/")


class S3Cache(BucketCache):
    """The response cache's shared level in a bucket (see the module docstring)."""

    kind = "s3"
    label = "S3 bucket"

    def __init__(self, endpoint: str, bucket: str, signer: AwsSigner, *, prefix: str = "", timeout: float = 2.0,
                 write_timeout: float = 10.0, retry_after: float = 5.0, max_pending: int = 10_000,
                 concurrency: int = 16, virtual_hosted: bool = False,
                 env: Any = None) -> None:
        base = endpoint.rstrip("/")
        super().__init__(bucket, base, timeout=timeout, write_timeout=write_timeout, retry_after=retry_after,
                         max_pending=max_pending, concurrency=concurrency, env=env)
        if virtual_hosted:
            parts = urlsplit(base)
            self.base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
        else:
            self.base = f"{base}/{quote(bucket, safe='')}"
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.signer = signer

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> S3Cache:
        """The level ``cache_params`` describes (``config.cache``: ``s3_*`` parameters); ``ConfigError`` without
        credentials."""
        import os

        from relaygate.observe.aws_auth import aws_signer

        p = dict(settings.s3_params or {})
        env = os.environ
        region = (p.get("s3_region_name") or env.get("AWS_REGION_NAME") or env.get("AWS_REGION")
                  or env.get("AWS_DEFAULT_REGION"))
        signer = aws_signer(p, env, prefix="s3_", field="litellm_settings.cache_params", service="s3",
                            region=str(region) if region else None)
        scheme = "http" if p.get("s3_use_ssl") is False else "https"
        endpoint = str(p.get("s3_endpoint_url") or f"{scheme}://s3.{signer.region}.amazonaws.com")
        return cls(endpoint, str(p["s3_bucket_name"]), signer, prefix=str(p.get("s3_path") or ""),
                   timeout=settings.redis_timeout, virtual_hosted=p.get("s3_use_virtual_hosted_style") is True)

    def describe(self) -> dict[str, Any]:
        """Where the level is (never a credential)."""
        return {"bucket": self.bucket, "endpoint": self.endpoint, "prefix": self.prefix}

    def _url(self, key: str = "", query: dict[str, str] | None = None) -> str:
        url = f"{self.base}/{quote(key, safe=_SAFE)}" if key else self.base
        return f"{url}?{urlencode(sorted(query.items()), quote_via=quote)}" if query else url

    async def _request(self, poster: Poster, method: str, url: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Answer:
        await self.signer.prepare()
        sha = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA
        signed = self.signer.sign(method, url, [*(headers or []), ("x-amz-content-sha256", sha)], body)
        return await poster.post(url, body, signed, method)

    def _name(self, key: str) -> str:
        return object_key(self.prefix, key)

    def _read_url(self, key: str) -> str:
        return self._url(self._name(key))

    def _delete_url(self, name: str) -> str:
        return self._url(name)

    def _value(self, answer: Answer) -> bytes | None:
        expires = answer.headers.get("expires")
        if expires:
            try:
                if parsedate_to_datetime(expires).timestamp() <= time.time():
                    return None
            except (TypeError, ValueError):
                pass
        return answer.content

    def _write(self, key: str, value: bytes, ttl: float) -> tuple[str, str, list[tuple[str, str]], bytes]:
        seconds = max(1, int(ttl))
        headers = [("content-type", "application/octet-stream"),
                   ("cache-control", f"immutable, max-age={seconds}, s-maxage={seconds}"),
                   ("expires", format_datetime(_utc(time.time() + seconds), usegmt=True))]
        return "PUT", self._url(self._name(key)), headers, value

    def _ping_call(self) -> tuple[str, str]:
        return "HEAD", self._url()

    def _error_code(self, answer: Answer) -> str:
        return _code(answer)

    listing = "ListObjectsV2"

    def _list_url(self, token: str | None) -> str:
        query = {"list-type": "2", "prefix": self.prefix, "max-keys": str(self.page)}
        if token:
            query["continuation-token"] = token
        return self._url(query=query)

    def _page(self, content: bytes) -> tuple[list[str], str | None]:
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError:
            raise LookupError("S3 answered ListObjectsV2 with no XML") from None
        names = [item.findtext(f"{_S3_NS}Key") or "" for item in root.iter(f"{_S3_NS}Contents")]
        token = root.findtext(f"{_S3_NS}NextContinuationToken")
        return names, token if root.findtext(f"{_S3_NS}IsTruncated") == "true" and token else None


def _code(answer: Answer) -> str:
    """S3's error code of an error answer (``NoSuchBucket``, ``AccessDenied`` ...), or ``""``."""
    m = re.search(rb"<Code>([A-Za-z0-9.]{1,64})</Code>", answer.content[:4096])
    return m.group(1).decode() if m else ""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

