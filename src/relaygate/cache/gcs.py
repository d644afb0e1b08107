"""The shared level of the response cache in a Google Cloud Storage bucket: LiteLLM's ``cache_params: {type: gcs}``.

What it owns: :class:`GcsCache`, which the cache stage (``cache.stage``) uses as it uses the S3 level, for every
worker and instance pointed at the same bucket. The deadline, outages, the store queue and the management
errors are :class:`~relaygate.cache.bucket.BucketCache`'s. Configuration, as LiteLLM 1.110's ``GCSCache`` reads
it:

- ``gcs_bucket_name``, else ``GCS_BUCKET_NAME`` (required; ``bucket/folder`` puts the objects in the folder,
  as the ``gcs_bucket`` callback reads that variable: LiteLLM would send the slash into the URL's path);
- ``gcs_path_service_account``, else ``GCS_PATH_SERVICE_ACCOUNT``: a service-account (or gcloud
  authorized-user) JSON file, or that JSON inline; without either, Application Default Credentials and then
  the metadata server, exactly as the ``gcs_bucket`` callback (``observe.gcs_bucket.google_auth``: the token is
  kept until five minutes before it expires, renewed by the first call that needs it, one renewal at a time);
- ``gcs_path``: a folder for the objects (LiteLLM's ``key_prefix``);
- ``GCS_BASE_URL`` (relaygate's, shared with the callback): the storage API's origin, default
  ``https://storage.googleapis.com`` (an emulator, a private endpoint, a test server).

**Where.** An entry is the object ``<folder>/<gcs_path>/<cache key>`` (the key as LiteLLM names it, a
namespace's ``:`` included), read with ``GET /storage/v1/b/<bucket>/o/<name>?alt=media`` and written with a
media upload (``POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<name>``), LiteLLM's two calls; the
bucket and the name are percent-encoded whole, so nothing in a key or a namespace reaches the URL's path or
query. ``/cache/ping`` reads the bucket's metadata, ``/cache/delete`` deletes objects, ``/cache/flushall``
lists the folder (``GET /storage/v1/b/<bucket>/o?prefix=``, page by page) and deletes only the objects whose
name ends in a cache key's digest.

**Expiry**, where relaygate differs: LiteLLM's objects never expire, so an answer is served from the bucket
forever whatever the configured ``ttl``. Here an object starts with :data:`MAGIC` and the epoch second it
expires (8 bytes, big-endian float) before the stored value; a lookup that finds it expired, or finds an
object without that start (LiteLLM's JSON, anything else), is a miss. Cloud Storage does not delete them: a
bucket lifecycle rule on the folder does (say one day past the longest TTL).
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from relaygate.cache.bucket import BucketCache
from relaygate.config.errors import ConfigError
from relaygate.core.errors import register_secrets
from relaygate.observe.gcs_bucket import DEFAULT_BASE_URL, GoogleAuth, google_auth
from relaygate.observe.generic_api import url_secrets
from relaygate.observe.post import Answer, Poster

if TYPE_CHECKING:
    from relaygate.config.cache import CacheSettings

__all__ = ["MAGIC", "GcsCache"]

MAGIC = b"rgc1"
"""How an object this level wrote starts (then its expiry, then the value)."""
_EXPIRES = struct.Struct(">d")
_HEAD = len(MAGIC) + _EXPIRES.size
_REASON = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class GcsCache(BucketCache):
    """The response cache's shared level in a Cloud Storage bucket (see the module docstring)."""

    kind = "gcs"
    label = "GCS bucket"

    def __init__(self, base_url: str, bucket: str, auth: GoogleAuth, *, prefix: str = "", **options: Any) -> None:
        """``options``: :class:`BucketCache`'s (timeouts, queue bound, concurrency)."""
        base = base_url.rstrip("/")
        super().__init__(bucket, base, **options)
        self.auth = auth
        self.prefix = prefix
        self._objects = f"{base}/storage/v1/b/{quote(bucket, safe='')}/o"
        self._upload = f"{base}/upload/storage/v1/b/{quote(bucket, safe='')}/o"

    @classmethod
    def from_settings(cls, settings: CacheSettings, environ: Mapping[str, str] | None = None) -> GcsCache:
        """The level ``cache_params`` describes (``config.cache``: ``gcs_*`` parameters); ``ConfigError`` for a
        bucket, a base URL or credentials that cannot serve."""
        env = dict(os.environ if environ is None else environ)
        p = settings.gcs_params or {}
        if p.get("service_account"):
            env["GCS_PATH_SERVICE_ACCOUNT"] = str(p["service_account"])
        base = (env.get("GCS_BASE_URL") or "").strip() or DEFAULT_BASE_URL
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError("<environment>", "GCS_BASE_URL", "expected an http(s) URL without a query")
        register_secrets(url_secrets(base))
        return cls(base, str(p["bucket"]), google_auth(env), prefix=str(p.get("prefix") or ""),
                   timeout=settings.redis_timeout)

    def describe(self) -> dict[str, Any]:
        """Where the level is (never a credential)."""
        return {"bucket": self.bucket, "endpoint": self.endpoint, "prefix": self.prefix}

    async def _request(self, poster: Poster, method: str, url: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Answer:
        await self.auth.prepare()
        return await poster.post(url, body, [*(headers or []), ("Authorization", self.auth.authorization())],
                                 method)

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _read_url(self, key: str) -> str:
        return f"{self._objects}/{quote(self._name(key), safe='')}?alt=media"

    def _delete_url(self, name: str) -> str:
        return f"{self._objects}/{quote(name, safe='')}"

    def _value(self, answer: Answer) -> bytes | None:
        body = answer.content
        if len(body) <= _HEAD or not body.startswith(MAGIC):
            return None
        if _EXPIRES.unpack_from(body, len(MAGIC))[0] <= time.time():
            return None
        return body[_HEAD:]

    def _write(self, key: str, value: bytes, ttl: float) -> tuple[str, str, list[tuple[str, str]], bytes]:
        body = MAGIC + _EXPIRES.pack(time.time() + max(1.0, ttl)) + value
        url = f"{self._upload}?uploadType=media&name={quote(self._name(key), safe='')}"
        return "POST", url, [("Content-Type", "application/octet-stream")], body

    def _ping_call(self) -> tuple[str, str]:
        return "GET", self._objects[:-2]

    def _error_code(self, answer: Answer) -> str:
        """The first ``errors[].reason`` of Google's error body (``notFound``, ``forbidden`` ...), or ``""``."""
        try:
            errors = orjson.loads(answer.content[:65536])["error"]["errors"]
            reason = errors[0]["reason"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return ""
        return reason if isinstance(reason, str) and _REASON.fullmatch(reason) else ""

    listing = "an object listing"

    def _list_url(self, token: str | None) -> str:
        query = {"prefix": self.prefix, "fields": "items(name),nextPageToken", "maxResults": str(self.page)}
        if token:
            query["pageToken"] = token
        return f"{self._objects}?{urlencode(query, quote_via=quote)}"

    def _page(self, content: bytes) -> tuple[list[str], str | None]:
        try:
            page = orjson.loads(content)
            names = [str(item["name"]) for item in page.get("items") or []]
            token = page.get("nextPageToken")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            raise LookupError("Cloud Storage answered an object listing with no JSON list") from None
        return names, token if isinstance(token, str) and token else None
