"""The Langfuse exporter: completion records to Langfuse's batch ingestion API, off the request path.

What it owns: :class:`LangfuseSink`, an async sink of the worker's
:class:`~relaygate.sinks.queue.CompletionQueue` (its own bounded buffer and task there), and
:func:`make_langfuse`, which builds it from the config and the environment. The events themselves are
built by :mod:`relaygate.observe.langfuse_payload` (sans-IO); this module sends them.

- **Batches.** Each batch of records becomes ingestion events (two per record), grouped by Langfuse project
  (the default one from ``LANGFUSE_*``, or a key's / team's own from its ``metadata.logging``), sent as
  ``POST {host}/api/public/ingestion`` requests of at most ``max_events`` events and ~3 MB. Small batches
  wait up to ``flush_interval`` seconds after the last send so that under load one request carries about
  a second of records; the queue's ``hurry()`` (its buffer half full) and :meth:`LangfuseSink.aclose` end
  the wait. Projects are sent to concurrently, so a slow per-key project delays the others by at most its
  own deadline.
- **Retries.** Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter
  (``backoff`` doubling up to ``max_backoff``, a 429's ``Retry-After`` honoured up to that cap), at most
  ``max_attempts`` times and within ``give_up_after`` seconds; Langfuse deduplicates events by envelope id,
  so a batch sent again after a lost answer is not counted twice. Then the batch is dropped.
- **Drops are counted and logged, never raised.** Events given up on, refused (401/403 wrong keys, 400/413),
  or rejected one by one in a 207 answer are counted through ``on_event("langfuse_dropped", n)`` (events,
  two per record) and logged at most once per ``log_interval`` (60 s) per kind of failure, with how many
  were not logged. Accepted events count as ``langfuse_sent``; each retry as ``langfuse_retry``. Records
  whose Langfuse credentials are incomplete count as ``langfuse_dropped`` too. Logs name the host and the
  public key, never the secret key nor the ``Authorization`` header; server text is passed through
  :func:`relaygate.core.errors.redact` and cut.
- **Bounded memory.** The sink keeps no backlog of its own: the records waiting are in the queue's bounded
  buffer (overflow dropped oldest-first there, counted as ``sink_dropped:langfuse``), plus the one batch
  being sent. Per-key projects are kept for at most ``max_clients`` (LiteLLM's
  ``MAX_LANGFUSE_INITIALIZED_CLIENTS``, 50), the least recently used forgotten past that.
- **HTTP.** Every project's batches go through one :class:`relaygate.observe.post.Poster`: the gateway's
  own keep-alive HTTP/1.1 pool (one pool per host, each request with its project's ``Authorization``), or
  httpx where a proxy from the environment applies (httpx alone cost ~6 µs of the worker's CPU an event).
- **Lifecycle.** The HTTP client is made on first use (so :func:`make_langfuse` in ``check-config`` opens
  nothing). :meth:`LangfuseSink.aclose` cuts the wait and the backoff short, lets the batch in flight end
  within ``timeout`` seconds, and closes the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact
from relaygate.logs import Every
from relaygate.observe.langfuse_payload import (
    BuildOptions,
    Credentials,
    chunk,
    destinations,
    detail_of,
    encode_events,
    env_credentials,
    ingestion_body,
    parse_answer,
    target_credentials,
)
from relaygate.observe.post import Poster, PostError
from relaygate.sinks.record import CompletionRecord

__all__ = ["BATCH", "IN_FLIGHT", "LangfuseSink", "make_langfuse"]

log = logging.getLogger("relaygate.observe")

OnEvent = Callable[[str, int], None]

BATCH = 512
"""Records one ``handle`` call may take (what the gateway passes the queue as this sink's ``batch_size``)."""
IN_FLIGHT = 4
"""Ingestion requests of one project sent at the same time (the exporters' pool opens up to
``observe.post.CONNECTIONS`` per host, which several projects on one host share)."""

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_TEXT = 300
_ENV_KEYS = frozenset({"LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST", "LANGFUSE_BASE_URL"})


def _snippet(text: str) -> str:
    text = redact(text.replace("\n", " ").strip())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


class _Project:
    """One Langfuse project: where its events go, with which keys."""

    __slots__ = ("creds", "auth", "label")

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.auth = [("authorization", creds.authorization)]
        self.label = f"{creds.host} (public key {creds.public_key})"


class LangfuseSink:
    """Sends completion records to Langfuse as trace and generation events (an async sink)."""

    name = "langfuse"
    linger = 0.0
    """The queue hands each batch over at once: :meth:`handle` gathers within ``flush_interval`` itself, so a
    linger in front of it would only delay the records."""

    def __init__(self, default: Credentials | None, *, success: bool = True, failure: bool = True,
                 options: BuildOptions | None = None, env: Mapping[str, str] | None = None,
                 on_event: OnEvent | None = None, flush_interval: float = 1.0, max_events: int = 200,
                 max_bytes: int = 3_000_000, timeout: float = 10.0, backoff: float = 0.5, max_backoff: float = 10.0,
                 max_attempts: int = 5, give_up_after: float = 60.0, max_clients: int = 50,
                 log_interval: float = 60.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.default = _Project(default) if default is not None else None
        self.success = success
        """Answered requests go to the default project (``langfuse`` in ``success_callback``)."""
        self.failure = failure
        """Failed requests go to the default project (``langfuse`` in ``failure_callback``)."""
        self.options = options or BuildOptions()
        self.env: Mapping[str, str] = {k: v for k, v in (env or {}).items() if k in _ENV_KEYS}
        """The ``LANGFUSE_*`` values a key's ``callback_vars`` may fall back to."""
        self.on_event = on_event
        self.flush_interval = flush_interval
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.give_up_after = give_up_after
        self.max_clients = max_clients
        self.log_interval = log_interval
        self.transport = transport
        """A test transport: every POST through httpx with it (``None``: see ``observe.post``)."""
        self.sent = 0
        """Events Langfuse accepted."""
        self.dropped = 0
        """Events given up on or refused."""
        self._projects: OrderedDict[Credentials, _Project] = OrderedDict()
        self._hurry = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_send = -1e18
        self._logs: dict[str, Every] = {}
        self._poster: Poster | None = None
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        """Envelope ids: a random prefix per sink and a counter (unique, and a batch sent again keeps its ids,
        so Langfuse deduplicates it); cheaper than a UUID per event."""

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    # -- queue interface ----------------------------------------------------------------------------

    def hurry(self) -> None:
        """The queue's buffer in front of the sink is half full: send without waiting (called by the queue)."""
        self._hurry.set()

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Send one batch of records (waiting first, within ``flush_interval``, to gather larger batches)."""
        if self._closed:  # nothing may open clients after aclose(): count, never send
            self._drop(2 * len(batch))
            return
        self._idle.clear()
        try:
            wait = self._last_send + self.flush_interval - time.monotonic()
            if wait > 0 and len(batch) < BATCH and not self._hurry.is_set() and not self._closing.is_set():
                # the next batch collects what arrives meanwhile, unless the buffer fills up first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), wait)
            self._hurry.clear()
            self._last_send = time.monotonic()
            groups = await self._events(batch)
            if groups:
                await asyncio.gather(*(self._send_project(p, evs) for p, evs in groups.items()))
        finally:
            self._idle.set()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop waiting, let the batch in flight finish within ``timeout`` seconds, close every client."""
        self._closing.set()
        self._hurry.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self._closed = True
        self._projects.clear()
        poster, self._poster = self._poster, None
        if poster is not None:
            with contextlib.suppress(Exception):
                await poster.aclose()

    def discard(self) -> None:
        """Forget the sink without sending anything (``observe.check`` builds one only to validate)."""
        self._projects.clear()

    # -- building -----------------------------------------------------------------------------------

    def _count(self, event: str, n: int) -> None:
        if n and self.on_event is not None:
            self.on_event(event, n)

    def _drop(self, n: int) -> None:
        self.dropped += n
        self._count("langfuse_dropped", n)

    def _warn(self, kind: str, msg: str, *args: Any) -> None:
        every = self._logs.get(kind)
        if every is None:
            every = self._logs[kind] = Every(self.log_interval)
        suppressed = every.ready()
        if suppressed is not None:
            log.warning(msg + " (%d similar message(s) not logged since the last)", *args, suppressed)

    def _project(self, creds: Credentials) -> _Project:
        if self.default is not None and creds == self.default.creds:
            return self.default
        p = self._projects.get(creds)
        if p is not None:
            self._projects.move_to_end(creds)
            return p
        p = self._projects[creds] = _Project(creds)
        while len(self._projects) > self.max_clients:
            self._projects.popitem(last=False)
        return p

    async def _events(self, batch: Sequence[CompletionRecord]) -> dict[_Project, list[bytes]]:
        """The batch's encoded events, by project."""
        groups: dict[_Project, list[bytes]] = {}
        now = time.time()
        unsendable = 0
        for i, r in enumerate(batch):
            if i and not i % 128:
                await asyncio.sleep(0)  # encoding large bodies takes time: let requests run meanwhile
            detail = detail_of(r)
            to_default, targets = destinations(r, detail, success=self.success, failure=self.failure)
            projects: list[_Project] = []
            if to_default:
                if self.default is None:
                    unsendable += 1
                else:
                    projects.append(self.default)
            for t in targets:
                creds = target_credentials(t, self.env)
                if creds is None:
                    unsendable += 1
                    continue
                projects.append(self._project(creds))
            if not projects:
                continue
            try:
                events = encode_events(r, detail, self.options, now=now, new_id=self._new_id)
            except Exception as exc:  # a body msgspec cannot encode: that record only
                self._drop(2 * len(projects))
                self._warn("build", "langfuse: could not build the events of call %s (%s: %s); dropped",
                           r.call_id, type(exc).__name__, _snippet(str(exc)))
                continue
            for p in projects:
                groups.setdefault(p, []).extend(events)
        if unsendable:
            self._drop(2 * unsendable)
            self._warn("credentials", "langfuse: %d record(s) not sent: no Langfuse public/secret key for them "
                       "(LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY, or the key's logging callback_vars)",
                       unsendable)
        return groups

    # -- sending ------------------------------------------------------------------------------------

    def _client(self) -> Poster:
        if self._poster is None:
            self._poster = Poster(self.timeout, transport=self.transport, user_agent="relaygate-langfuse")
        return self._poster

    async def _send_project(self, p: _Project, events: list[bytes]) -> None:
        """A project's events, in requests of at most ``max_events``, :data:`IN_FLIGHT` of them at a time (one
        after the other, a Langfuse 100 ms away took at most 2,000 events a second from a worker)."""
        parts = chunk(events, self.max_events, self.max_bytes)
        if len(parts) == 1:
            await self._send(p, parts[0])
            return
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(part: list[bytes]) -> None:
            async with gate:
                await self._send(p, part)

        await asyncio.gather(*(one(part) for part in parts))

    async def _pause(self, seconds: float) -> None:
        """Sleep between attempts; returns early when the sink is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _send(self, p: _Project, events: list[bytes]) -> None:
        """Send one request's events, retrying what may succeed later; count whatever is lost."""
        body = ingestion_body(events)
        n = len(events)
        delay = self.backoff
        deadline = time.monotonic() + self.give_up_after
        attempt = 0
        while True:
            attempt += 1
            why: str
            wait = delay * (0.5 + random.random() / 2)  # jitter: retries of many workers do not line up
            try:
                resp = await self._client().post(p.creds.url, body, p.auth)
            except asyncio.CancelledError:
                raise
            except PostError as exc:
                why = _snippet(str(exc)) or "no detail"
            except RuntimeError as exc:  # the client was closed under us (aclose during a send)
                why = f"client closed ({exc})"
                attempt = self.max_attempts
            else:
                status = resp.status
                if 200 <= status < 300:
                    accepted, errors = parse_answer(resp.content, n)
                    self.sent += accepted
                    self._count("langfuse_sent", accepted)
                    if errors:
                        self._drop(len(errors))
                        eid, estatus, emsg = errors[0]
                        self._warn("rejected", "langfuse %s rejected %d of %d event(s); first: event %s, status %d: "
                                   "%s", p.label, len(errors), n, eid, estatus, _snippet(emsg))
                    if attempt > 1:
                        log.info("langfuse %s: %d event(s) sent after %d attempt(s)", p.label, n, attempt)
                    return
                if status not in _RETRY_STATUS:
                    self._drop(n)
                    hint = " (wrong public/secret key?)" if status in (401, 403) else ""
                    self._warn(f"status{status}", "langfuse %s answered %d%s: %d event(s) dropped: %s", p.label,
                               status, hint, n, _snippet(resp.text))
                    return
                why = f"HTTP {status}"
                after = resp.headers.get("retry-after", "")
                if after.replace(".", "", 1).isdigit():
                    wait = max(wait, min(float(after), self.max_backoff))
            if attempt >= self.max_attempts or time.monotonic() + wait > deadline or self._closing.is_set():
                self._drop(n)
                self._warn("gave_up", "langfuse %s: %d event(s) dropped after %d attempt(s); last: %s", p.label, n,
                           attempt, why)
                return
            self._count("langfuse_retry", 1)
            self._warn("retry", "langfuse %s: sending %d event(s) failed (%s); retrying in %.1f s", p.label, n,
                       why, wait)
            await self._pause(wait)
            delay = min(delay * 2, self.max_backoff)


def make_langfuse(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent, *,
                  keys_only: bool = False) -> LangfuseSink | None:
    """The Langfuse sink the config asks for, or ``None`` when ``langfuse`` is not a success or failure
    callback. Raises a ``ConfigError`` naming ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY`` when missing.

    Options read from the environment, as LiteLLM's: ``LANGFUSE_HOST`` (else ``LANGFUSE_BASE_URL``),
    ``LANGFUSE_TRACING_ENVIRONMENT``, ``LANGFUSE_RELEASE``, ``LANGFUSE_FLUSH_INTERVAL`` (seconds),
    ``PROXY_BASE_URL`` (for the ``proxy_base_url`` default tag).

    ``keys_only``: the sink for keys' and teams' own ``metadata.logging`` targets when the config names no
    ``langfuse`` callback (built on the first such request): nothing goes to a default project, and a
    target without credentials falls back to the ``LANGFUSE_*`` variables when they are set."""
    success = "langfuse" in settings.success_callbacks
    failure = "langfuse" in settings.failure_callbacks
    if not success and not failure and not keys_only:
        return None
    creds = env_credentials(env) if success or failure else None
    interval = 1.0
    raw = env.get("LANGFUSE_FLUSH_INTERVAL", "").strip()
    if raw:
        try:
            interval = max(0.0, float(raw))
        except ValueError:
            log.warning("LANGFUSE_FLUSH_INTERVAL=%r is not a number of seconds: flushing every 1 s", raw)
    opts = BuildOptions(default_tags=tuple(settings.langfuse_default_tags),
                        redact_key_info=settings.redact_user_api_key_info,
                        environment=env.get("LANGFUSE_TRACING_ENVIRONMENT", "").strip() or None,
                        release=env.get("LANGFUSE_RELEASE", "").strip() or None,
                        proxy_base_url=env.get("PROXY_BASE_URL", "").strip() or None)
    return LangfuseSink(creds, success=success, failure=failure, options=opts, env=env, on_event=on_event,
                        flush_interval=interval)
