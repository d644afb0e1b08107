"""LiteLLM's ``generic_api`` callback: batches of StandardLoggingPayloads POSTed to any HTTP endpoint.

What it owns: :class:`HttpExporter`, the batching, retrying and bounded HTTP shell the webhook and Datadog
exporters share, and :class:`GenericApiSink` with its LiteLLM configuration (:func:`make_generic_api`).

Configuration, as LiteLLM reads it:

- ``GENERIC_LOGGER_ENDPOINT`` (required; ``callback_settings.generic_api.endpoint`` overrides it) and
  ``GENERIC_LOGGER_HEADERS`` (``"k1=v1,k2=v2"``: split on commas, each item on its first ``=``, both sides
  stripped; items without ``=`` ignored), over ``Content-Type: application/json``, under
  ``callback_settings.generic_api.headers``. Header values are registered as secrets: never logged.
- ``callback_settings.generic_api.event_types`` (``llm_api_success`` / ``llm_api_failure``) and
  ``log_format``: ``json_array`` (default, one JSON list per batch), ``ndjson`` (one payload per line) or
  ``single`` (one request per payload).
- ``DEFAULT_BATCH_SIZE`` (512, bounded to 1..10000) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5, bounded to
  0.01..300): LiteLLM's batch logger knobs.

How :class:`HttpExporter` behaves (an async sink of the worker's completion queue):

- ``handle`` never does IO: it keeps the records the sink's callbacks ask for (``success_callbacks`` for
  answered requests, ``failure_callbacks`` for the rest), turns each into its entry and appends it to the
  sink's own pending list, bounded by ``max_pending`` (``exporter_queue``): past the bound the oldest
  entries are dropped and counted. One flusher task (started by the first ``handle``) sends: a full batch
  at once, a partial one at most ``flush_interval`` after the previous send.
- A send that fails on a connection error, a timeout, ``408``, ``429`` or a ``5xx`` is retried with
  exponential backoff (``backoff`` doubled up to ``max_backoff``; a ``Retry-After`` is honoured up to
  that bound) up to ``max_attempts`` times; entries that arrive meanwhile wait in the bounded pending list
  and go out once the endpoint answers, so a short outage loses nothing. A ``413`` splits the batch in
  halves; other ``4xx`` answers, and batches out of attempts, are dropped. Every request is bounded by
  ``timeout``: a hung endpoint costs at most ``timeout`` per attempt.
- Drops are counted through ``on_event`` (``<name>_dropped``, and ``<name>_sent`` /
  ``<name>_send_failed`` per request) and logged at most once per ``log_interval`` (the line says how
  many were dropped since the last one); a summary is logged at close.
- ``aclose`` sends what is pending within ``close_timeout``, then cancels the flusher, counts what was
  left as dropped and closes the HTTP client. ``discard`` releases a sink that never ran (config checks).
  Secrets never reach a log line: only the endpoint's scheme, host and path are logged, an endpoint's
  answer is passed through :func:`relaygate.core.errors.redact`, and header values and the URL's query
  values and password are registered as secrets, so the gateway's log formatters redact them from every
  line (httpx, used only where an environment proxy applies, logs each request's full URL at INFO).
- HTTP: every batch goes through a :class:`relaygate.observe.post.Poster`, the gateway's own keep-alive
  HTTP/1.1 pool (httpx only for a URL an environment proxy applies to, or one carrying credentials), as
  Langfuse's batches do: an httpx ``post`` of a batch cost ~10x the pool's CPU on the worker's core
  (``python -m bench.micro.exporter_post``). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact, register_secrets
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.exporter_env import ENV_SOURCE
from relaygate.observe.post import Answer, Poster, PostError
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["ENV_SOURCE", "TARGETS_MAX", "BillingExporter", "GenericApiSink", "HttpExporter", "KeyedExporter",
           "batching", "env_float", "env_int", "make_generic_api", "parse_headers", "url_secrets"]

log = logging.getLogger("relaygate.observe")

_encode = msgspec.json.Encoder(enc_hook=str).encode
"""JSON for payloads; anything msgspec cannot encode is written as its ``str`` (LiteLLM's ``safe_dumps``)."""

LOG_FORMATS = ("json_array", "ndjson", "single")
EVENT_TYPES = ("llm_api_success", "llm_api_failure")


def parse_headers(raw: str | None) -> dict[str, str]:
    """``GENERIC_LOGGER_HEADERS`` as LiteLLM parses it: ``"k1=v1,k2=v2"``; items without ``=`` are ignored."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for item in raw.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            if key.strip():
                out[key.strip()] = value.strip()
    return out


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer environment variable, bounded to ``low..high``; a non-integer is a ``ConfigError``."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(ENV_SOURCE, name, f"expected an integer, got {raw!r}") from None
    return max(low, min(value, high))


def env_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number of seconds from the environment, bounded to ``low..high``; a non-number is a ``ConfigError``."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(ENV_SOURCE, name, f"expected a number, got {raw!r}") from None
    if value != value:  # NaN
        raise ConfigError(ENV_SOURCE, name, f"expected a number, got {raw!r}")
    return max(low, min(value, high))


def _target(url: str) -> str:
    """What logs may say of an endpoint: scheme, host, port and path (no credentials, no query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def url_secrets(url: str) -> list[str]:
    """The parts of an endpoint URL that may be credentials (password, query values): registered as secrets,
    so that the log formatters redact them from any line (httpx's own request lines included)."""
    parts = urlsplit(url)
    out = [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
    if parts.password:
        out.append(parts.password)
    return out


def _retry_after(resp: Answer) -> float | None:
    raw = resp.headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


class HttpExporter:
    """Batches of entries (one per record) POSTed to an HTTP endpoint, off the request path (an async
    sink). Subclasses define :meth:`entry` and :meth:`encode`; see the module essay for the guarantees."""

    name = "http"
    single = False
    """True: one request per entry (``encode`` gets one-entry lists), at most :attr:`concurrency` in flight."""
    concurrency = 1
    """Requests a flush has in flight at once when it sends several (``single`` entries, :class:`KeyedExporter`'s
    destinations); 1: one after the other, in order."""
    max_body = 0
    """Bodies larger than this many bytes (before compression) are split in halves (0: no limit)."""
    sampling_rate = 1.0
    """The share of wanted records sent (LangSmith's ``LANGSMITH_SAMPLING_RATE``; the others send all)."""

    def __init__(self, url: str, headers: Mapping[str, str], *, success: bool = True, failure: bool = True,
                 on_event: OnEvent | None = None, batch_size: int = 512, flush_interval: float = 5.0,
                 max_pending: int = 10_000, timeout: float = 10.0, max_attempts: int = 5, backoff: float = 0.5,
                 max_backoff: float = 10.0, close_timeout: float = 5.0, log_interval: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.target = _target(url)
        self.headers = dict(headers)
        self.success = success
        self.failure = failure
        self.on_event = on_event
        self.batch_size = max(1, batch_size)
        self.flush_interval = max(0.0, flush_interval)
        self.max_pending = max(1, max_pending)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.log_interval = log_interval
        self.transport = transport
        self.pending: deque[Any] = deque()
        self.sent = 0
        """Entries the endpoint accepted."""
        self.dropped = 0
        """Entries given up on (buffer full, out of attempts, refused, left at close)."""
        self.failures = 0
        """Failed requests (each retry counts)."""
        self.requests = 0
        self._inflight = 0
        self._closing = False
        self._closed = False
        self._last_flush = -1e18
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._poster: Poster | None = None
        self._drop_logged_at = -1e18
        self._drops_unlogged = 0
        self._warn_logged_at = -1e18
        self._warns_suppressed = 0

    # -- what a subclass defines -----------------------------------------------------------------------

    def entry(self, record: CompletionRecord) -> Any:
        """The entry one record becomes (built in ``handle``; must be cheap)."""
        raise NotImplementedError

    def encode(self, entries: Sequence[Any]) -> bytes:
        """The request body carrying ``entries``."""
        raise NotImplementedError

    def wrap(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        """The body as sent and any extra headers (Datadog gzips it)."""
        return body, {}

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        """The method and URL a request carrying ``entries`` goes to (S3 puts each entry at its own key)."""
        return "POST", self.url

    def headers_for(self, entries: Sequence[Any]) -> Mapping[str, str]:
        """The headers of a request carrying ``entries`` (a key's own LangSmith project has its own API key)."""
        return self.headers

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        """``headers`` for one attempt (S3 signs each with SigV4; the others send them as they are)."""
        return headers

    async def prepare(self) -> None:
        """Before each attempt: what :meth:`sign` needs (S3 renews temporary AWS credentials when they are
        due). A ``PostError`` fails the attempt as a lost connection does: retried, then dropped and counted."""

    # -- the sink --------------------------------------------------------------------------------------

    def wants(self, record: CompletionRecord) -> bool:
        """Whether the record is sent: its outcome's callback list names this exporter, and its team did not
        turn logging off."""
        return (self.success if record.outcome is Outcome.OK else self.failure) and not record.no_logging

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        """The entries of the batch's records this exporter sends: those :meth:`wants`, a ``sampling_rate`` share
        of them (LangSmith's exporter also sends the records of keys that name it as their logging target)."""
        success, failure, rate = self.success, self.failure, self.sampling_rate
        if not (success or failure):
            return []
        return [self.entry(r) for r in batch if (success if r.outcome is Outcome.OK else failure)
                and not r.no_logging and (rate >= 1.0 or random.random() < rate)]

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Queue the batch's wanted records for sending (no IO here; never waits on the endpoint)."""
        if self._closed:
            self._drop(sum(1 for r in batch if self.wants(r)), "the exporter is closed")
            return
        entries = self.select(batch)
        if not entries:
            return
        pending = self.pending
        pending.extend(entries)
        over = len(pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                pending.popleft()
            self._drop(over, f"more than {self.max_pending} waiting")
        self._ensure_task()
        if self._wake is not None:  # the flusher decides: send now, or wait out the interval
            self._wake.set()

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._wake.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"relaygate-{self.name}")

    async def _run(self) -> None:
        assert self._wake is not None
        wake, pending = self._wake, self.pending
        while True:
            if not pending:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            if len(pending) < self.batch_size and not self._closing:
                delay = self._last_flush + self.flush_interval - time.monotonic()
                if delay > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), delay)
                    continue
            n = min(len(pending), self.batch_size)
            chunk = [pending.popleft() for _ in range(n)]
            self._inflight = n
            try:
                await self._deliver(chunk)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._drop(n, "an unexpected error")
                log.exception("%s exporter: sending a batch of %d failed", self.name, n)
            self._inflight = 0
            self._last_flush = time.monotonic()

    async def _deliver(self, chunk: list[Any]) -> None:
        if self.single:
            await self._post_groups([[e] for e in chunk], self.concurrency)
        else:
            await self._post(chunk)

    async def _post_groups(self, groups: Sequence[list[Any]], concurrency: int) -> None:
        """Each group in a request of its own, at most ``concurrency`` in flight (S3's objects, LangSmith's
        projects); each retried on its own."""
        if len(groups) == 1 or concurrency <= 1:
            for group in groups:
                await self._post(group)
            return
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(entries: list[Any]) -> None:
            async with gate:
                await self._post(entries)

        await asyncio.gather(*(one(g) for g in groups))

    def _http(self) -> Poster:
        if self._poster is None:
            self._poster = Poster(self.timeout, transport=self.transport, user_agent=f"relaygate-{self.name}")
        return self._poster

    async def _post(self, entries: list[Any]) -> None:
        """Send ``entries`` in one request, retrying as the module essay says; never raises for the endpoint."""
        n = len(entries)
        body = self.encode(entries)
        if self.max_body and len(body) > self.max_body and n > 1:
            await self._post(entries[: n // 2])
            await self._post(entries[n // 2:])
            return
        data, extra = self.wrap(body)
        base = self.headers_for(entries)
        headers = list({**base, **extra}.items() if extra else base.items())
        method, url = self.destination(entries)
        delay = self.backoff
        attempt = 0
        while True:
            attempt += 1
            wait = delay
            try:
                await self.prepare()
                self.requests += 1
                resp = await self._http().post(url, data, self.sign(method, url, headers, data), method)
            except PostError as exc:
                reason = redact(str(exc))[:200]
            else:
                status = resp.status
                if 200 <= status < 300:
                    self.sent += n
                    self._count(f"{self.name}_sent", n)
                    if attempt > 1:
                        log.info("%s exporter: %s answers again; %d entr(ies) sent after %d failed attempt(s)",
                                 self.name, self.target, n, attempt - 1)
                    return
                if status == 413 and n > 1:
                    await self._post(entries[: n // 2])
                    await self._post(entries[n // 2:])
                    return
                text = redact(resp.text[:300]) if resp.content else ""
                reason = f"HTTP {status}" + (f": {text}" if text else "")
                if not (status in (408, 429) or status >= 500):
                    self.failures += 1
                    self._count(f"{self.name}_send_failed", 1)
                    self._drop(n, f"{self.target} refused them ({reason})")
                    return
                hint = _retry_after(resp)
                if hint is not None:
                    wait = min(max(hint, delay), self.max_backoff)
            self.failures += 1
            self._count(f"{self.name}_send_failed", 1)
            if attempt >= self.max_attempts:
                self._drop(n, f"{self.target} failed {attempt} time(s), last: {reason}")
                return
            self._warn("%s exporter: sending %d entr(ies) to %s failed (%s); retry %d of %d in %.1f s",
                       self.name, n, self.target, reason, attempt, self.max_attempts - 1, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.max_backoff)

    # -- accounting ------------------------------------------------------------------------------------

    def _count(self, event: str, n: int) -> None:
        if self.on_event is not None and n:
            self.on_event(event, n)

    def _drop(self, n: int, why: str) -> None:
        if n <= 0:
            return
        self.dropped += n
        self._count(f"{self.name}_dropped", n)
        self._drops_unlogged += n
        now = time.monotonic()
        if now - self._drop_logged_at >= self.log_interval:
            self._drop_logged_at = now
            log.warning("%s exporter: dropped %d entr(ies) since the last report, last because %s (%d in total)",
                        self.name, self._drops_unlogged, why, self.dropped)
            self._drops_unlogged = 0

    def _warn(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warn_logged_at < self.log_interval:
            self._warns_suppressed += 1
            return
        self._warn_logged_at, n, self._warns_suppressed = now, self._warns_suppressed, 0
        log.warning(msg + " (%d similar message(s) not logged since the last)", *args, n)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send what is pending within ``close_timeout``; what is left then is dropped and counted."""
        if self._closed:
            return
        self._closing = True
        if self.pending and (self._task is None or self._task.done()):
            self._ensure_task()
        task = self._task
        if task is not None and not task.done():
            assert self._wake is not None
            self._wake.set()
            done, _ = await asyncio.wait([task], timeout=self.close_timeout)
            if not done:
                left = len(self.pending) + self._inflight
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.pending.clear()
                self._inflight = 0
                self._drop(left, f"they were not sent within {self.close_timeout:.1f} s at shutdown")
        self._closed = True
        if self._drops_unlogged:
            log.warning("%s exporter: dropped %d entr(ies) since the last report (%d in total)", self.name,
                        self._drops_unlogged, self.dropped)
            self._drops_unlogged = 0
        if self._poster is not None:
            poster, self._poster = self._poster, None
            await poster.aclose()

    def discard(self) -> None:
        """Release a sink that never ran (``observe.check`` builds one only to validate the config)."""
        self._closed = True
        self.pending.clear()


class KeyedExporter(HttpExporter):
    """An :class:`HttpExporter` whose entries are ``(destination, body)`` pairs: a record goes to the configured
    destination (:attr:`default`), or, when its key or team names destinations of its own (``metadata.logging``
    entries of this callback), to those instead, for the outcomes each entry's ``callback_type`` names. A flush
    sends one request per destination, at most :attr:`concurrency` at once. A subclass defines :meth:`resolve`
    (a target's destination, resolved once and kept, at most :data:`TARGETS_MAX` of them) and :meth:`body`
    (LangSmith's projects and PostHog's)."""

    default: Any = None
    """The configured destination (a hashable value with a ``url``); None: only keys' and teams' own."""
    concurrency = 4

    def __init__(self, url: str, headers: Mapping[str, str], **options: Any) -> None:
        super().__init__(url, headers, **options)
        self._resolved: dict[tuple[tuple[str, str], ...], Any] = {}

    def resolve(self, target: LoggingTarget) -> Any:
        """A key's or team's destination from its entry (``ValueError``: it sends nothing, warned)."""
        raise NotImplementedError

    def body(self, record: CompletionRecord, dest: Any) -> Any:
        """What the record sends to ``dest``."""
        raise NotImplementedError

    def keep(self, dest: Any) -> bool:
        """Whether this record is sent to ``dest`` (LangSmith samples per project)."""
        return True

    def _target(self, t: LoggingTarget) -> Any:
        resolved = self._resolved
        key = tuple(sorted(t.callback_vars.items()))
        if key in resolved:
            return resolved[key]
        if len(resolved) >= TARGETS_MAX:
            resolved.clear()
        try:
            dest = self.resolve(t)
        except ValueError as exc:
            self._warn("%s exporter: a key's or team's %s entry sends nothing: %s", self.name, self.name, exc)
            dest = None
        resolved[key] = dest
        return dest

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        out: list[Any] = []
        default, name = self.default, self.name
        for r in batch:
            if r.no_logging:
                continue
            ok = r.outcome is Outcome.OK
            detail = detail_of(r)
            targets = [t for t in detail.logging if t.callback_name.lower() == name] \
                if detail is not None and detail.logging else None
            if targets:  # the key's or team's own destinations replace the configured one
                kind = "success" if ok else "failure"
                dests = [d for t in targets if kind in t.callback_type and (d := self._target(t)) is not None]
            elif default is not None and (self.success if ok else self.failure):
                dests = [default]
            else:
                continue
            out.extend((d, self.body(r, d)) for d in dests if self.keep(d))
        return out

    def entry(self, record: CompletionRecord) -> Any:
        assert self.default is not None
        return self.default, self.body(record, self.default)

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        return "POST", entries[0][0].url

    async def _deliver(self, chunk: list[Any]) -> None:
        groups: dict[Any, list[Any]] = {}
        for entry in chunk:
            groups.setdefault(entry[0], []).append(entry)
        await self._post_groups(list(groups.values()), self.concurrency)


class BillingExporter(HttpExporter):
    """An exporter of usage-billing events (``openmeter``, ``lago``): answered requests only (LiteLLM's billing
    loggers have no failure hook), each the event :meth:`entry` makes of it, or None when the record names nobody
    to bill. Those are not sent (the service would refuse them, and the batch with them): they are counted as
    dropped, as LiteLLM's logger raising for them is counted in its failure metric, and in :attr:`unbilled`, and
    logged at most once a minute with the last one's call id and :meth:`unbilled_reason`."""

    unbilled = 0
    """Answered requests not sent because they named nobody to bill (also counted as dropped)."""

    def unbilled_reason(self) -> str:
        """Why such a request was not sent, for the log line ("had no ...")."""
        raise NotImplementedError

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        if not self.success:
            return []
        out: list[Any] = []
        missing = 0
        last = ""
        for r in batch:
            if r.outcome is not Outcome.OK or r.no_logging:
                continue
            event = self.entry(r)
            if event is None:
                missing += 1
                last = r.call_id
            else:
                out.append(event)
        if missing:
            self.unbilled += missing
            self._drop(missing, f"request {last} {self.unbilled_reason()}")
        return out


TARGETS_MAX = 1024
"""Keys' and teams' resolved destinations a :class:`KeyedExporter` keeps (past it, it starts over)."""


class GenericApiSink(HttpExporter):
    """LiteLLM's ``generic_api`` callback: StandardLoggingPayloads POSTed as a JSON list per batch."""

    name = "generic_api"

    def __init__(self, url: str, headers: Mapping[str, str], *, log_format: str = "json_array",
                 redact_key_info: bool = False, redact_messages: bool = False, **options: Any) -> None:
        super().__init__(url, headers, **options)
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        self.log_format = log_format
        self.single = log_format == "single"
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def entry(self, record: CompletionRecord) -> Any:
        return standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                redact_messages=self.redact_messages)

    def encode(self, entries: Sequence[Any]) -> bytes:
        if self.log_format == "ndjson":
            return b"\n".join(_encode(e) for e in entries)
        if self.single:
            return _encode(entries[0])
        return _encode(entries)


def callback_options(settings: ObserveSettings, name: str) -> dict[str, Any]:
    """``callback_settings.<name>`` (``{}`` when absent or not a mapping)."""
    opts = settings.callback_settings.get(name)
    return opts if isinstance(opts, dict) else {}


def event_flags(settings: ObserveSettings, name: str, event_types: Any, field: str) -> tuple[bool, bool]:
    """Whether the sink ``name`` sends successes and failures: the callback lists, narrowed by LiteLLM's
    ``event_types`` when given."""
    success = name in settings.success_callbacks
    failure = name in settings.failure_callbacks
    if event_types is not None:
        if isinstance(event_types, str):
            event_types = [event_types]
        if not isinstance(event_types, list) or any(t not in EVENT_TYPES for t in event_types):
            raise ConfigError("config", field, f"expected a list of {' / '.join(EVENT_TYPES)}")
        success = success and "llm_api_success" in event_types
        failure = failure and "llm_api_failure" in event_types
    return success, failure


def batching(env: Mapping[str, str], settings: ObserveSettings, options: Mapping[str, Any], *, batch: int = 512,
             interval: float = 5.0, batch_var: str | None = "DEFAULT_BATCH_SIZE",
             interval_var: str = "DEFAULT_FLUSH_INTERVAL_SECONDS", batch_max: int = 10_000,
             interval_max: float = 300.0) -> dict[str, Any]:
    """:class:`HttpExporter`'s batching options as an exporter reads them: the batch size from ``batch_var`` (LiteLLM's
    ``DEFAULT_BATCH_SIZE``, or the callback's own variable; None: ``batch`` fixed), the flush period from
    ``interval_var`` (``DEFAULT_FLUSH_INTERVAL_SECONDS``), the buffer bound from ``exporter_queue``, then ``options``
    (a caller's overrides) over them."""
    out: dict[str, Any] = {
        "batch_size": env_int(env, batch_var, batch, 1, batch_max) if batch_var is not None else batch,
        "flush_interval": env_float(env, interval_var, interval, 0.01, interval_max),
        "max_pending": max(1, settings.exporter_queue),
    }
    out.update(options)
    return out


def make_generic_api(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                     name: str = "generic_api", **options: Any) -> GenericApiSink:
    """The ``generic_api`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module
    essay). ``options`` override :class:`HttpExporter`'s defaults (``timeout``, ``max_attempts``,
    ``backoff``, ``close_timeout``, ``transport`` ...). Raises ``ConfigError`` without an endpoint.

    ``name`` is the callback's name: ``generic_api``, or one of LiteLLM's named webhooks
    (``callback_settings.<name>.callback_type: generic_api``), whose settings, callback-list membership
    and event names (``<name>_dropped`` ...) are then its own."""
    opts = callback_options(settings, name)
    base = f"litellm_settings.callback_settings.{name}"
    endpoint = opts.get("endpoint") or env.get("GENERIC_LOGGER_ENDPOINT")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError(ENV_SOURCE, "GENERIC_LOGGER_ENDPOINT",
                          "the generic_api callback needs an endpoint: set GENERIC_LOGGER_ENDPOINT "
                          "(or callback_settings.generic_api.endpoint)")
    endpoint = endpoint.strip()
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
        raise ConfigError(ENV_SOURCE, "GENERIC_LOGGER_ENDPOINT", "expected an http(s) URL")
    headers = {"Content-Type": "application/json", **parse_headers(env.get("GENERIC_LOGGER_HEADERS"))}
    extra_headers = opts.get("headers")
    if extra_headers is not None:
        if not isinstance(extra_headers, dict):
            raise ConfigError("config", f"{base}.headers", "expected a mapping of header names to values")
        headers.update({str(k): str(v) for k, v in extra_headers.items()})
    register_secrets([*(v for k, v in headers.items() if k.lower() != "content-type"), *url_secrets(endpoint)])
    log_format = opts.get("log_format", "json_array")
    if log_format not in LOG_FORMATS:
        raise ConfigError("config", f"{base}.log_format", f"expected one of {', '.join(LOG_FORMATS)}")
    success, failure = event_flags(settings, name, opts.get("event_types"), f"{base}.event_types")
    defaults = batching(env, settings, options)
    sink = GenericApiSink(endpoint, headers, log_format=log_format, success=success, failure=failure,
                          on_event=on_event, redact_key_info=settings.redact_user_api_key_info,
                          redact_messages=opts.get("message_logging") is False, **defaults)
    if name != GenericApiSink.name:
        sink.name = name
    return sink
