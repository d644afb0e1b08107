"""What the response cache's object-store levels share: an S3 bucket (``cache.s3``), a Cloud Storage one
(``cache.gcs``) or an Azure Blob Storage container (``cache.azure_blob``), used by the cache stage
(``cache.stage``) as it uses the Redis level.

What it owns: :class:`BucketCache`, the part of such a level that does not depend on the store's API — the
deadline of a lookup, the outage accounting, the store queue and its sending task, the management calls'
errors, the close. A subclass says how one object is read, written, listed and deleted. Invariants:

- **Never in the way.** A lookup waits ``timeout`` seconds at most (2 by default: an object store answers in
  tens of milliseconds, not Redis's one); any failure (refused, timed out, ``403``, ``5xx``) is a miss, and the
  bucket is then skipped for ``retry_after`` seconds (one warning an outage, ``failures`` counts every skipped
  or failed call). Stores go to a bounded queue (``max_pending``; overflow drops the oldest, counted) that one
  task sends ``concurrency`` at a time; a failed write is dropped, counted.
- **Management.** :meth:`ping`, :meth:`delete` and :meth:`flush` (which deletes only objects whose name is a
  cache key's digest, never anything else in the bucket) raise ``LookupError`` when the store does not answer,
  as the Redis level's do.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from typing import Any

from relaygate import events
from relaygate.observe.post import MAX_ANSWER_BYTES, Answer, Poster, PostError

__all__ = ["DIGEST", "BucketCache"]

log = logging.getLogger("relaygate.cache")

DIGEST = re.compile(r"[0-9a-f]{64}")
"""The last segment of an object name this cache wrote: a cache key's digest."""


class BucketCache:
    """The response cache's shared level in an object store (see the module docstring)."""

    kind = ""
    """``s3``, ``gcs``, ``azure_blob``: the outage's component name and the ``/cache/ping`` parameters' key."""
    label = ""
    """How logs name the store (``S3 bucket``)."""
    deleted: tuple[int, ...] = (200, 204, 404)
    """The statuses of a delete that did its work (or found nothing to do)."""
    page = 1000
    """Object names asked for per listing page (the stores' maximum)."""

    def __init__(self, bucket: str, endpoint: str, *, timeout: float = 2.0, write_timeout: float = 10.0,
                 retry_after: float = 5.0, max_pending: int = 10_000, concurrency: int = 16, env: Any = None) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        """The store's origin (for logs and ``/cache/ping``)."""
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
        """Stores dropped: the queue was full, or the store refused or did not answer the write."""
        self.closed = False

    # -- what a store's API decides --------------------------------------------------------------------

    async def _request(self, poster: Poster, method: str, url: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Answer:
        """One authenticated call (``PostError`` or ``OSError`` when it is not answered)."""
        raise NotImplementedError

    def _read_url(self, key: str) -> str:
        """Where the object of ``key`` is read."""
        raise NotImplementedError

    def _write(self, key: str, value: bytes, ttl: float) -> tuple[str, str, list[tuple[str, str]], bytes]:
        """How ``value`` is stored for ``ttl`` seconds: method, URL, headers, body."""
        raise NotImplementedError

    def _value(self, answer: Answer) -> bytes | None:
        """The stored value a ``200`` read answered, or None when it has expired."""
        raise NotImplementedError

    def _delete_url(self, name: str) -> str:
        """Where the object named ``name`` (its whole name in the bucket) is deleted."""
        raise NotImplementedError

    def _name(self, key: str) -> str:
        """The object name of ``key``."""
        raise NotImplementedError

    listing = ""
    """How errors name the store's listing call (``ListObjectsV2``)."""

    def _list_url(self, token: str | None) -> str:
        """The listing of the object names under the prefix from page ``token`` (None: the first)."""
        raise NotImplementedError

    def _page(self, content: bytes) -> tuple[list[str], str | None]:
        """A listing page's names and the next page's token (None: the last); ``LookupError`` for a page that
        cannot be read."""
        raise NotImplementedError

    async def _names(self) -> list[str]:
        """Every object name under the prefix, page by page (``LookupError`` when the store does not answer)."""
        names: list[str] = []
        token: str | None = None
        while True:
            answer = await self._manage("GET", self._list_url(token), (200,), self.listing)
            got, token = self._page(answer.content)
            names.extend(got)
            if not token:
                return names

    def _ping_call(self) -> tuple[str, str]:
        """How the bucket is probed: method and URL."""
        raise NotImplementedError

    def _error_code(self, answer: Answer) -> str:
        """The store's error code of an error answer, or ``""`` (for logs)."""
        return ""

    # -- outages ---------------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, what: str, detail: str) -> None:
        self.failures += 1
        if not self.down and not self._warned:
            self._warned = True
            log.warning("response cache: %s %s at %s %s (%s); skipped for %g s", self.label, self.bucket,
                        self.endpoint, what, detail, self.retry_after)
            events.outage(self.kind, f"response cache bucket {self.bucket}: {what}")
        self._down_until = time.monotonic() + self.retry_after

    def _answered(self) -> None:
        if self._warned:
            self._warned = False
            log.info("response cache: %s %s answers again", self.label, self.bucket)

    # -- the request path ------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The stored value of ``key``, or None: absent, expired, or the store down (a miss, never an error)."""
        if self.closed or self.down:
            if self.down:
                self.failures += 1
            return None
        try:
            answer = await asyncio.wait_for(self._request(self._reads, "GET", self._read_url(key)), self.timeout)
        except (PostError, TimeoutError, OSError) as exc:
            self._failed("did not answer a lookup", _why(exc))
            return None
        if answer.status == 404:
            self._answered()
            return None
        if answer.status != 200:
            self._failed("refused a lookup", f"HTTP {answer.status} {self._error_code(answer)}")
            return None
        self._answered()
        return self._value(answer)

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
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"cache-{self.kind}-writer")
        self._wake.set()

    async def _prepare_writes(self) -> None:
        """Once per sending task, before its first write (Azure creates the container, as LiteLLM does)."""

    async def _write_loop(self) -> None:
        await self._prepare_writes()
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
        method, url, headers, body = self._write(key, value, ttl)
        try:
            answer = await self._request(self._writes, method, url, body, headers)
        except (PostError, OSError) as exc:
            self.dropped += 1
            self._failed("did not answer a store", _why(exc))
            return
        if answer.status not in (200, 201, 204):
            self.dropped += 1
            self._failed("refused a store", f"HTTP {answer.status} {self._error_code(answer)}")

    async def flush_pending(self, timeout: float = 5.0) -> None:
        """Wait until the queued stores were sent (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._pending or (self._writer is not None and not self._writer.done() and self._wake.is_set())) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- management ------------------------------------------------------------------------------------

    async def _manage(self, method: str, url: str, ok: tuple[int, ...], what: str) -> Answer:
        try:
            answer = await self._request(self._writes, method, url)
        except (PostError, OSError) as exc:
            raise LookupError(f"{self.label} did not answer {what} ({_why(exc)})") from None
        if answer.status not in ok:
            raise LookupError(f"{self.label} refused {what} (HTTP {answer.status} {self._error_code(answer)})")
        return answer

    async def ping(self) -> bool:
        """Whether the bucket answers (``LookupError`` when the store does not answer at all)."""
        answer = await self._manage(*self._ping_call(), (200, 403, 404), "a bucket probe")
        return answer.status == 200

    async def _delete_names(self, names: list[str]) -> int:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> int:
            async with gate:
                await self._manage("DELETE", self._delete_url(name), self.deleted, "DELETE")
                return 1

        return sum(await asyncio.gather(*(one(n) for n in names)))

    async def delete(self, keys: list[str]) -> int:
        """Delete the entries of ``keys``; how many requests the store accepted."""
        return await self._delete_names([self._name(k) for k in keys])

    async def flush(self, namespace: str | None) -> int:
        """Delete every object under the prefix whose name is a cache key's digest (what this cache wrote, in
        any namespace); how many."""
        names = [n for n in await self._names() if DIGEST.fullmatch(n.rsplit("/", 1)[-1].rsplit(":", 1)[-1])]
        await self._delete_names(names)
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


def _why(exc: BaseException) -> str:
    """Why a call got no answer, for a log line: the ``PostError``'s own words (the transport's failure, or a
    credential the store's identity provider refused: never a secret), else the exception's type."""
    text = str(exc) if isinstance(exc, PostError) else ""
    return text[:300] if text else type(exc).__name__
