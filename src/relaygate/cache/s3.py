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
- **Never in the way.** A lookup waits ``socket_timeout`` seconds at most (2 by default: S3 answers in tens of
  milliseconds, not Redis's one); any failure (refused, timed out, ``403``, ``5xx``) is a miss, and the bucket
  is then skipped for ``retry_after`` seconds (one warning an outage, ``failures`` counts every skipped or
  failed call). Stores go to a bounded queue (``max_pending``; overflow dropped and counted) that one task
  sends ``concurrency`` at a time; a failed ``PUT`` is dropped, counted.
- **Management.** :meth:`ping` is a ``HEAD`` of the bucket; :meth:`delete` deletes objects; :meth:`flush`
  lists the prefix (``ListObjectsV2``) and deletes every object whose name is a cache key's digest, never
  anything else in the bucket. These raise ``LookupError`` when S3 does not answer, as the Redis level's do.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

from relaygate import events
from relaygate.observe.aws_auth import AwsSigner
from relaygate.observe.post import MAX_ANSWER_BYTES, Answer, Poster, PostError

if TYPE_CHECKING:
    from relaygate.config.cache import CacheSettings

__all__ = ["S3Cache", "object_key"]

log = logging.getLogger("relaygate.cache")

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()
_DIGEST = re.compile(r"[0-9a-f]{64}")
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_SAFE = "/-_.~"


def object_key(prefix: str, key: str) -> str:
    """LiteLLM's object key of a cache key: the ``s3_path`` prefix, then the key with ``:`` as ``/``."""
    return prefix + key.replace(":", "/")


class S3Cache:
    """The response cache's shared level in a bucket (see the module docstring)."""

    kind = "s3"

    def __init__(self, endpoint: str, bucket: str, signer: AwsSigner, *, prefix: str = "", timeout: float = 2.0,
                 write_timeout: float = 10.0, retry_after: float = 5.0, max_pending: int = 10_000,
                 concurrency: int = 16, virtual_hosted: bool = False,
                 env: Any = None) -> None:
        base = endpoint.rstrip("/")
        if virtual_hosted:
            parts = urlsplit(base)
            self.base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
        else:
            self.base = f"{base}/{quote(bucket, safe='')}"
        self.endpoint = base
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.signer = signer
        self.timeout = timeout
        self.retry_after = retry_after
        self.concurrency = max(1, concurrency)
        self._reads = Poster(timeout, env=env)
        self._writes = Poster(write_timeout, env=env)
        self._pending: deque[tuple[str, bytes, float]] = deque(maxlen=max_pending)
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self._warned = False
        self.failures = 0
        """Lookups and stores that failed or were skipped while the bucket was down."""
        self.dropped = 0
        """Stores dropped: the queue was full, or S3 refused or did not answer the ``PUT``."""
        self.closed = False

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

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, what: str, detail: str) -> None:
        self.failures += 1
        if not self.down and not self._warned:
            self._warned = True
            log.warning("response cache: S3 bucket %s at %s %s (%s); skipped for %g s", self.bucket, self.endpoint,
                        what, detail, self.retry_after)
            events.outage("s3", f"response cache bucket {self.bucket}: {what}")
        self._down_until = time.monotonic() + self.retry_after

    def _answered(self) -> None:
        if self._warned:
            self._warned = False
            log.info("response cache: S3 bucket %s answers again", self.bucket)

    # -- requests -------------------------------------------------------------------------------------

    def _url(self, key: str = "", query: dict[str, str] | None = None) -> str:
        url = f"{self.base}/{quote(key, safe=_SAFE)}" if key else self.base
        return f"{url}?{urlencode(sorted(query.items()), quote_via=quote)}" if query else url

    async def _request(self, poster: Poster, method: str, url: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Answer:
        await self.signer.prepare()
        sha = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA
        signed = self.signer.sign(method, url, [*(headers or []), ("x-amz-content-sha256", sha)], body)
        return await poster.post(url, body, signed, method)

    async def get(self, key: str) -> bytes | None:
        """The stored value of ``key``, or None: absent, expired, or S3 down (a miss, never an error)."""
        if self.closed or self.down:
            if self.down:
                self.failures += 1
            return None
        try:
            answer = await asyncio.wait_for(self._request(self._reads, "GET", self._url(object_key(self.prefix,
                                                                                                   key))),
                                            self.timeout)
        except (PostError, TimeoutError, OSError) as exc:
            self._failed("did not answer a lookup", type(exc).__name__)
            return None
        if answer.status == 404:
            self._answered()
            return None
        if answer.status != 200:
            self._failed("refused a lookup", f"HTTP {answer.status} {_code(answer)}")
            return None
        self._answered()
        expires = answer.headers.get("expires")
        if expires:
            try:
                if parsedate_to_datetime(expires).timestamp() <= time.time():
                    return None
            except (TypeError, ValueError):
                pass
        return answer.content

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """:meth:`get` of each key, ``concurrency`` at a time."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(k: str) -> bytes | None:
            async with gate:
                return await self.get(k)

        return list(await asyncio.gather(*(one(k) for k in keys)))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Queue ``value`` to be stored for ``ttl`` seconds (never waits; a full queue drops the oldest)."""
        if self.closed:
            return
        if len(value) > MAX_ANSWER_BYTES:  # a lookup would not read it back whole
            self.dropped += 1
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((key, value, ttl))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="cache-s3-writer")
        self._wake.set()

    async def _write_loop(self) -> None:
        while not self.closed:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), self.concurrency))]
            if self.down:
                self.failures += len(batch)
                self.dropped += len(batch)
                continue
            await asyncio.gather(*(self._put(*item) for item in batch))

    async def _put(self, key: str, value: bytes, ttl: float) -> None:
        seconds = max(1, int(ttl))
        headers = [("content-type", "application/octet-stream"),
                   ("cache-control", f"immutable, max-age={seconds}, s-maxage={seconds}"),
                   ("expires", format_datetime(_utc(time.time() + seconds), usegmt=True))]
        try:
            answer = await self._request(self._writes, "PUT", self._url(object_key(self.prefix, key)), value,
                                         headers)
        except (PostError, OSError) as exc:
            self.dropped += 1
            self._failed("did not answer a store", type(exc).__name__)
            return
        if answer.status not in (200, 201, 204):
            self.dropped += 1
            self._failed("refused a store", f"HTTP {answer.status} {_code(answer)}")

    async def flush_pending(self, timeout: float = 5.0) -> None:
        """Wait until the queued stores were sent (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._pending or (self._writer is not None and not self._writer.done() and self._wake.is_set())) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- management -----------------------------------------------------------------------------------

    async def _manage(self, method: str, url: str, ok: tuple[int, ...], what: str) -> Answer:
        try:
            answer = await self._request(self._writes, method, url)
        except (PostError, OSError) as exc:
            raise LookupError(f"S3 did not answer {what} ({type(exc).__name__})") from None
        if answer.status not in ok:
            raise LookupError(f"S3 refused {what} (HTTP {answer.status} {_code(answer)})")
        return answer

    async def ping(self) -> bool:
        """Whether the bucket answers a ``HEAD`` (``LookupError`` when it does not answer at all)."""
        answer = await self._manage("HEAD", self._url(), (200, 403, 404), "HEAD bucket")
        return answer.status == 200

    async def delete(self, keys: list[str]) -> int:
        """Delete the entries of ``keys``; how many requests S3 accepted."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(k: str) -> int:
            async with gate:
                await self._manage("DELETE", self._url(object_key(self.prefix, k)), (200, 204, 404), "DELETE")
                return 1

        return sum(await asyncio.gather(*(one(k) for k in keys)))

    async def flush(self, namespace: str | None) -> int:
        """Delete every object under the prefix whose name is a cache key's digest (what this cache wrote, in
        any namespace); how many."""
        names: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": self.prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            answer = await self._manage("GET", self._url(query=query), (200,), "ListObjectsV2")
            try:
                root = ElementTree.fromstring(answer.content)
            except ElementTree.ParseError:
                raise LookupError("S3 answered ListObjectsV2 with no XML") from None
            for item in root.iter(f"{_S3_NS}Contents"):
                name = item.findtext(f"{_S3_NS}Key") or ""
                if _DIGEST.fullmatch(name.rsplit("/", 1)[-1]):
                    names.append(name)
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                break
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> None:
            async with gate:
                await self._manage("DELETE", self._url(name), (200, 204, 404), "DELETE")

        await asyncio.gather(*(one(n) for n in names))
        return len(names)

    async def aclose(self) -> None:
        self.closed = True
        self._wake.set()
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        await self._reads.aclose()
        await self._writes.aclose()


def _code(answer: Answer) -> str:
    """S3's error code of an error answer (``NoSuchBucket``, ``AccessDenied`` ...), or ``""``."""
    m = re.search(rb"<Code>([A-Za-z0-9.]{1,64})</Code>", answer.content[:4096])
    return m.group(1).decode() if m else ""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

