"""SpendSink: completion records become spend-log rows and spend counters in the store, in batches.

What it owns: the mapping from a :class:`~relaygate.sinks.record.CompletionRecord` to a
:class:`~relaygate.store.records.SpendLog` row (LiteLLM's ``LiteLLM_SpendLogs`` fields), the retry of a
batch while the database is slow or down, and the retention of old rows.

- **Off the request path, bounded.** It is an async sink of the worker's
  :class:`~relaygate.sinks.queue.CompletionQueue`: records wait in the sink's own bounded buffer (the
  gateway passes ``general_settings.spend_logs_buffer``); past the bound the oldest are dropped, counted as
  ``relaygate_events_total{event="sink_dropped:spend"}``, the first drop logged at once and the number
  dropped logged when the sink has caught up. Memory never grows past the bound plus the one batch being
  written (itself at most the bound), whatever the database does.
- **One transaction per batch** (``store.spend.write_spend_values``): a multi-row insert of the rows and the
  per-entity counter increments (key, user, team, organization, customer, tag, deployment, global), without
  moving the store's change counter. Writes of small batches are spaced by ``spacing`` seconds (one
  transaction per second's requests), unless the buffer gets half full first (the queue calls
  :meth:`SpendSink.hurry`): a small buffer is written, not overflowed, while the sink waits. Organization
  and key tags missing from the record are read from the key and team rows (one query per batch, for the
  keys not read within ``owners_ttl``, the key cache's TTL; the gateway has them read again as soon as
  keys, teams or organizations change, as it does its key cache).
- **Database slow or down.** A batch whose write fails on a connection error (or a locked SQLite file) is
  retried with exponential backoff (``backoff`` seconds, doubled up to ``max_backoff``) until it is written;
  meanwhile new records pile up in the bounded buffer and are written in the following batches once the
  database answers. Re-sending a batch whose commit succeeded but whose answer was lost writes nothing
  twice (rows are keyed by request id; counters only add rows actually inserted), and its rows still
  count as ``spend_rows_written`` (the metric equals the rows stored). Any other error is
  retried ``max_attempts`` times, then the batch is dropped, counted (``spend_rows_dropped``) and logged:
  a bug must not wedge the sink forever.
- **Retention.** :meth:`SpendSink.retention_forever` deletes rows older than
  ``maximum_spend_logs_retention_period`` every ``interval`` (counters keep their totals).

Events counted through ``on_event``: ``spend_rows_written``, ``spend_write_failed`` (per failed attempt),
``spend_rows_dropped`` (given up on), ``spend_rows_deleted`` (retention), ``spend_prompts_not_kept`` (rows
stored without their request and answer: ``sinks.prompts.HELD_MAX``); with ``disable_spend_logs``,
``spend_counted`` (records added to the counters) instead of ``spend_rows_written``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import msgspec

from relaygate.config.litellm_general import MetadataFields
from relaygate.service_metrics import timed
from relaygate.sinks import prompts, retention
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CALL_TYPES, OUTCOME_TEXT, CompletionRecord, Outcome, error_class, header_tags_of
from relaygate.store import Store, StoreUnavailable
from relaygate.store.records import SpendLog
from relaygate.store.spend import NANOS, key_owners, write_spend_values
from relaygate.store.tables import SPEND_LOGS

__all__ = ["CALL_TYPES", "SpendSink", "parse_duration", "spend_row", "spend_values", "tag_list"]

log = logging.getLogger("relaygate.sinks")


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


def parse_duration(value: str) -> float:
    """LiteLLM's durations (``30s``, ``10m``, ``1h``, ``30d``, ``1w``, ``1mo`` = 30 days) in seconds."""
    m = _DURATION.match(value)
    if m is None:
        raise ValueError(f"invalid duration {value!r}: expected a number and a unit s, m, h, d, w or mo")
    return float(int(m.group(1)) * _UNIT[m.group(2)])


def tag_list(raw: Any) -> list[str]:
    """Request tags as a list: a comma-separated string split, a list's non-empty strings kept."""
    if isinstance(raw, str):
        return [t.strip() for t in raw.split(",") if t.strip()]
    if isinstance(raw, list):
        return [t for t in raw if isinstance(t, str) and t]
    return []


_encode = msgspec.json.Encoder().encode
_seconds: dict[int, str] = {}


def _iso_time(us: int) -> str:
    """``us`` microseconds since the epoch as ISO text in UTC (``tables._iso``'s spelling: the SQLite store's
    time text, and what PostgreSQL casts to ``TIMESTAMPTZ`` from a JSON batch), the date and time of each
    second formatted once into a ``%``-template of the microseconds (a second's requests share it)."""
    sec = us // 1_000_000
    template = _seconds.get(sec)
    if template is None:
        if len(_seconds) > 64:
            _seconds.clear()
        template = _seconds[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.%%06d+00:00", time.gmtime(sec))
    return template % (us - sec * 1_000_000)


_TAG_TEXTS: dict[tuple[str, ...], str] = {}


def _tags_text(tags: Sequence[str]) -> str:
    """``tags`` as JSON text; a tuple (a request's header tags alone, the common case) remembered (bounded)."""
    if type(tags) is not tuple:
        return _encode(tags).decode()
    text = _TAG_TEXTS.get(tags)
    if text is None:
        if len(_TAG_TEXTS) >= 256:
            _TAG_TEXTS.clear()
        text = _TAG_TEXTS[tags] = _encode(tags).decode()
    return text


_PLAIN_META = {(o, s): _encode({"outcome": o.value, "stream": s}).decode() for o in Outcome for s in (False, True)}
"""The metadata text of a record with nothing more to say (most of them)."""


def spend_values(r: CompletionRecord, dialect: str, *, org_id: str | None = None, key_tags: Sequence[str] = (),
                 store_prompts: bool = False, fields: MetadataFields | None = None, latest_turn: bool = False,
                 prompt_limit: int = prompts.DEFAULT_MAX) -> tuple[Any, ...]:
    """The spend-log row of one record, as the ``dialect``'s driver takes it (``rg_spend_logs``'s columns in
    table order; what ``Table.row_encoder`` makes of :func:`spend_row`, built without the record in between:
    the sink turns every request into one, ~2 µs instead of ~12). Times are ISO text in both dialects (the
    encoder gives PostgreSQL ``datetime`` objects, which the JSON batch spells as text anyway).

    ``org_id`` and ``key_tags`` come from the key (or team) when the record carries none; request ``extra``
    (a mapping) may hold ``tags``, ``metadata``, ``spend_logs_metadata`` and, kept only with
    ``store_prompts``, ``prompts`` (:class:`~relaygate.sinks.prompts.Prompts`: the ``proxy_server_request`` and
    ``response`` columns, ``latest_turn`` and ``prompt_limit`` as :mod:`relaygate.sinks.prompts` says)."""
    extra = r.extra if isinstance(r.extra, dict) else None
    cost = r.cost if math.isfinite(r.cost) and r.cost > 0.0 else 0.0
    ok = r.outcome is Outcome.OK
    headed = header_tags_of(r) if r.user_agent or r.header_tags else None  # LiteLLM's order: the request's
    # tags, the key's, then those of the headers
    tags: Sequence[str] = list(dict.fromkeys(key_tags)) if len(key_tags) > 1 else key_tags
    if headed:
        tags = list(dict.fromkeys([*tags, *headed])) if tags else headed
    meta_text = _PLAIN_META[(r.outcome, r.stream)] if ok and not r.retries and not r.fallbacks and fields is None \
        else None
    request_text = response_text = "{}"
    if extra is not None:
        tags = list(dict.fromkeys([*tag_list(extra.get("tags")), *key_tags, *(headed or ())]))
        request_meta = extra.get("metadata")
        spend_meta = extra.get("spend_logs_metadata")
        if spend_meta is None and isinstance(request_meta, dict):
            spend_meta = request_meta.get("spend_logs_metadata")
        breakdown = extra.get("cost_breakdown")  # a provider discount or margin (cost.adjust)
        if spend_meta is not None or isinstance(request_meta, dict) or breakdown is not None:
            meta_text = None
        kept = extra.get("prompts") if store_prompts else None
        if isinstance(kept, prompts.Prompts):
            request_text = prompts.request_text(kept, latest_turn, prompt_limit)
            response_text = prompts.response_text(kept, prompt_limit)
    else:
        request_meta = spend_meta = breakdown = None
    if meta_text is None:
        # only what the row's columns do not already hold: the reporting routes add LiteLLM's
        # user_api_key* and status keys back from the columns (``store.spend_rows.log_row``), so a row
        # carries no copy of them (smaller rows, less to encode on the sink's every write)
        metadata: dict[str, Any] = {"outcome": OUTCOME_TEXT[r.outcome], "stream": r.stream}
        if spend_meta is not None:
            metadata["spend_logs_metadata"] = spend_meta
        if isinstance(request_meta, dict):
            metadata["requester_metadata"] = request_meta
        if breakdown is not None:
            metadata["cost_breakdown"] = breakdown
        if r.retries:
            metadata["attempted_retries"] = r.retries
        if r.fallbacks:
            metadata["attempted_fallbacks"] = r.fallbacks
        if not ok:  # LiteLLM's StandardLoggingPayloadErrorInformation (no traceback: the gateway raised nothing)
            metadata["error_information"] = {"error_class": r.error_class or error_class(r.status, r.error_type),
                                             "error_code": str(r.status),
                                             "error_message": r.error_message, "llm_provider": r.provider,
                                             "traceback": ""}
        if fields is not None:  # spend_logs_metadata_fields: only the keys it keeps are written
            metadata = {k: v for k, v in metadata.items() if fields.keeps(k)}
        meta_text = _encode(metadata).decode()
    start = round(r.start_time * 1_000_000)
    stamp = _iso_time  # both dialects: PostgreSQL's rows go as one JSON text (store.spend.json_rows)
    first = stamp(start + round(r.ttft * 1_000_000)) if r.ttft is not None else None
    return (r.call_id, CALL_TYPES.get(r.route, r.route), r.key_hash, r.key_alias, cost, round(cost * NANOS),
            r.prompt_tokens + r.completion_tokens, r.prompt_tokens, r.completion_tokens, r.cache_read_tokens,
            r.cache_write_tokens, stamp(start), stamp(start + round(r.latency * 1_000_000)), first,
            r.upstream_model or r.model, r.model_group or r.model, r.deployment_id, r.provider, r.user_id,
            r.team_id, r.org_id or org_id, r.end_user_id, _tags_text(tags) if tags else "[]",
            "success" if ok else "failure", r.status, (r.cache_hit if dialect != "sqlite" else int(r.cache_hit)),
            meta_text, "[]", response_text, r.requester_ip, request_text)


def spend_row(r: CompletionRecord, *, org_id: str | None = None, key_tags: Sequence[str] = (),
              store_prompts: bool = False, latest_turn: bool = False,
              prompt_limit: int = prompts.DEFAULT_MAX) -> SpendLog:
    """The spend-log row of one record (:func:`spend_values` read back as a :class:`SpendLog`)."""
    values = spend_values(r, "sqlite", org_id=org_id, key_tags=key_tags, store_prompts=store_prompts,
                          latest_turn=latest_turn, prompt_limit=prompt_limit)
    return SPEND_LOGS.from_db(dict(zip(SPEND_LOGS.columns, values, strict=True)))


def _unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or is busy: retry without limit (the bounded buffer protects memory)."""
    if isinstance(exc, (StoreUnavailable, OSError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        return any(w in text for w in ("locked", "busy", "disk I/O", "unable to open", "readonly", "full"))
    name = type(exc).__name__
    return type(exc).__module__.startswith("asyncpg") and (
        "Connection" in name or "CannotConnect" in name or name in ("InterfaceError", "AdminShutdownError",
                                                                   "QueryCanceledError", "DeadlockDetectedError"))


BATCH = 4096
"""The most records one write takes (the gateway registers the sink with this ``batch_size``): a batch this
large is written at once (a backlog drains at full speed); a smaller one waits for ``spacing`` (or until the
buffer is half full), so under load one transaction carries about a second of requests. The per-batch work
(the key owners' read, the counter upserts, one ``UPDATE`` per entity table) is then paid once per second,
not once per few hundred rows."""


_OWNERS_MAX = 20_000
"""Keys (and teams) whose owners the sink keeps at most (~250 bytes each); past it the cache starts over."""

_SLICE = 256
"""Records turned into rows between two yields to the event loop."""


class SpendSink:
    """Writes spend rows and counters for each batch of completion records (an async sink)."""

    name = "spend"
    linger = 0.0
    """The queue hands each batch over at once: the sink spaces its own writes (``spacing``)."""

    def __init__(self, store: Store, *, store_prompts: bool = False, on_event: OnEvent | None = None,
                 backoff: float = 0.1, max_backoff: float = 5.0, max_attempts: int = 5,
                 log_interval: float = 60.0, spacing: float = 1.0, log_rows: bool = True,
                 owners_ttl: float = 60.0, fields: MetadataFields | None = None, latest_turn: bool = False,
                 prompt_limit: int | None = None) -> None:
        self.store = store
        self.fields = fields
        """``spend_logs_metadata_fields``: the metadata keys a row keeps (None: all)."""
        self.log_rows = log_rows
        """False with ``disable_spend_logs``: no rows, but the counters and entities' ``spend`` still move
        (as LiteLLM: budgets keep binding across restarts)."""
        self.spacing = spacing
        """Seconds between two writes: under load the records of that time go in one batch (one transaction
        and one multi-row insert for hundreds of rows, not one per handful: the per-batch cost dominates)."""
        self._last_write = -1e18
        self._hurry = asyncio.Event()
        self.store_prompts = store_prompts
        """``store_prompts_in_spend_logs``: rows keep the request and the answer (``sinks.prompts``), with only
        the latest turn (``spend_logs_prompt_storage: latest_turn``), strings cut at ``prompt_limit``
        (``MAX_STRING_LENGTH_PROMPT_IN_DB``)."""
        self.latest_turn = latest_turn
        self.prompt_limit = prompt_limit if prompt_limit is not None else prompts.max_string_length()
        self.on_event = on_event
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.log_interval = log_interval
        self.written = 0
        self.on_written: Callable[[Sequence[CompletionRecord]], None] | None = None
        """Called with each batch once it is in the store (the budget guard: its cost is no longer pending)."""
        self.dropped = 0
        self.failures = 0
        self._logged_at = -1e18
        self._suppressed = 0
        self.owners_ttl = owners_ttl
        """Seconds a key's organization and tags (and a team's organization) read for the rows are kept (the
        key cache's TTL); :meth:`forget_owners` drops them sooner when the store says keys changed."""
        self._key_owners: dict[str, tuple[float, str | None, list[str]]] = {}
        self._team_orgs: dict[str, tuple[float, str | None]] = {}
        self._forgets = 0
        """How many times :meth:`forget_owners` was called: a read that one overtook is not kept."""

    def forget_owners(self, key_hash: str | None = None) -> None:
        """Read the owners of ``key_hash`` (None: of every key and team) from the store again (the gateway
        calls it when keys, teams or organizations change)."""
        self._forgets += 1
        if key_hash is None:
            self._key_owners.clear()
            self._team_orgs.clear()
        else:
            self._key_owners.pop(key_hash, None)

    def _count(self, event: str, n: int) -> None:
        if self.on_event is not None and n:
            self.on_event(event, n)

    def _warn(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._logged_at < self.log_interval:
            self._suppressed += 1
            return
        self._logged_at, n, self._suppressed = now, self._suppressed, 0
        log.warning(msg + " (%d similar message(s) not logged since the last)", *args, n)

    async def rows(self, batch: Sequence[CompletionRecord]) -> list[tuple[Any, ...]]:
        """The batch's rows (:func:`spend_values`), with organization and key tags read from the store for the
        keys they name (kept ``owners_ttl`` seconds, or until :meth:`forget_owners`)."""
        now = time.monotonic()
        known_keys, known_teams = self._key_owners, self._team_orgs
        if len(known_keys) > _OWNERS_MAX or len(known_teams) > _OWNERS_MAX:
            known_keys.clear()
            known_teams.clear()
        need_keys = {r.key_hash for r in batch if r.key_hash and (
            (k := known_keys.get(r.key_hash)) is None or k[0] < now)}
        need_teams = {r.team_id for r in batch if r.team_id and not r.org_id and (
            (t := known_teams.get(r.team_id)) is None or t[0] < now)}
        if need_keys or need_teams:
            # one query a batch, for the keys and teams not read within the TTL (reading the ~500 keys of a
            # second's batch again every time cost ~3 ms of the sink's time a batch)
            forgets = self._forgets
            found_keys, found_teams = await key_owners(self.store, need_keys, need_teams)
            # a change announced while the read was on its way may not be in what it found: this batch uses
            # it, the next one reads again
            expires = now + self.owners_ttl if self._forgets == forgets else now - 1.0
            for kh in need_keys:
                org_tags = found_keys.get(kh)
                known_keys[kh] = (expires, org_tags[0], org_tags[1]) if org_tags else (expires, None, [])
            for team in need_teams:
                known_teams[team] = (expires, found_teams.get(team))
        # this batch's view, taken before any yield (forget_owners may clear the cache meanwhile)
        by_key: dict[str, tuple[str | None, list[str]]] = {}
        by_team: dict[str, str | None] = {}
        for r in batch:
            if r.key_hash and (owner := known_keys.get(r.key_hash)) is not None:
                by_key[r.key_hash] = (owner[1], owner[2])
            if r.team_id and (team_org := known_teams.get(r.team_id)) is not None:
                by_team[r.team_id] = team_org[1]
        out = []
        not_kept = 0
        dialect = self.store.dialect
        for i, r in enumerate(batch):
            if i and not i % _SLICE:
                await asyncio.sleep(0)  # a second of records is ~40 ms of Python: let requests run meanwhile
            org, tags = by_key.get(r.key_hash, (None, [])) if r.key_hash else (None, [])
            if org is None and r.team_id:
                org = by_team.get(r.team_id)
            out.append(spend_values(r, dialect, org_id=org, key_tags=tags, store_prompts=self.store_prompts,
                                    fields=self.fields, latest_turn=self.latest_turn, prompt_limit=self.prompt_limit))
            if self.store_prompts and isinstance(r.extra, dict):
                kept = r.extra.get("prompts")
                if isinstance(kept, prompts.Prompts) and not kept.kept:
                    not_kept += 1
        if not_kept:
            self._count("spend_prompts_not_kept", not_kept)
            self._warn("spend logs: %d request(s) stored without their body and answer: %d MiB of them already "
                       "waited for the database", not_kept, prompts.HELD_MAX >> 20)
        return out

    def hurry(self) -> None:
        """The buffer in front of the sink is half full: end the spacing wait (called by the queue)."""
        self._hurry.set()

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        delay = self.backoff
        attempts = 0
        wait = self._last_write + self.spacing - time.monotonic()
        if wait > 0 and len(batch) < BATCH and not self._hurry.is_set():
            # the next batch collects what arrives meanwhile, unless the buffer fills up first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), wait)
        self._hurry.clear()
        self._last_write = time.monotonic()
        lost_answer = False
        while True:
            try:
                rows = await self.rows(batch)
                n = await timed("batch_write_to_db", "update_spend",
                                write_spend_values(self.store, rows, log_rows=self.log_rows))
                if lost_answer and self.log_rows:
                    # an attempt whose connection broke may have committed before its answer was lost: its
                    # rows are stored and counted already (this one inserted none of them), and are this
                    # sink's, so they are counted as written (a client reusing a call id in the same batch
                    # would be counted too: the one imprecision left, and only after an outage)
                    n = len({r.call_id for r in batch})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempts += 1
                self.failures += 1
                self._count("spend_write_failed", 1)
                unavailable = _unavailable(exc)
                lost_answer = lost_answer or unavailable
                if not unavailable and attempts >= self.max_attempts:
                    self.dropped += len(batch)
                    self._count("spend_rows_dropped", len(batch))
                    log.exception("spend sink: dropped a batch of %d row(s) after %d failed attempts", len(batch),
                                  attempts)
                    return
                self._warn("spend sink: writing %d row(s) failed (%s: %s); retrying in %.1f s", len(batch),
                           type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            self.written += n
            self._count("spend_rows_written" if self.log_rows else "spend_counted", n)
            if self.on_written is not None:
                self.on_written(batch)
            if attempts:
                log.info("spend sink: database back, %d row(s) written after %d failed attempt(s)", n, attempts)
            return

    def cleanup_jobs(self, settings: Any, metrics: Any) -> list[Coroutine[Any, Any, None]]:
        """The spend-log cleanup tasks ``general_settings`` ask for: the age rule
        (``maximum_spend_logs_retention_period``, every ``maximum_spend_logs_retention_interval``), the size rule
        (``maximum_spend_logs_size``, every ``maximum_spend_logs_size_check_interval``) and the daily tag rows' age
        rule (``maximum_daily_tag_spend_retention_period``, on the first's interval), all within the cleanup
        bounds (``sinks.retention``); ``metrics.cleanup`` gets LiteLLM's cleanup families when either is on. A
        duration that cannot be read turns its rule off with an error logged. With ``disable_spend_logs`` only the
        tag rows' rule (the rollup still moves)."""
        period = interval = size_every = None
        logs = not settings.disable_spend_logs
        try:
            if settings.maximum_spend_logs_retention_period and logs:
                period = parse_duration(settings.maximum_spend_logs_retention_period)
                interval = parse_duration(settings.maximum_spend_logs_retention_interval)
        except ValueError as exc:
            log.error("general_settings: spend logs retention off: %s", exc)
            period = None
        tags_period = None
        try:
            if settings.maximum_daily_tag_spend_retention_period:
                tags_period = parse_duration(settings.maximum_daily_tag_spend_retention_period)
                interval = parse_duration(settings.maximum_spend_logs_retention_interval)
        except ValueError as exc:
            log.error("general_settings: daily tag spend retention off: %s", exc)
            tags_period = None
        rule = retention.size_rule(settings) if logs else None
        try:
            if rule is not None:
                size_every = parse_duration(settings.maximum_spend_logs_size_check_interval)
        except ValueError as exc:
            log.error("general_settings: the spend logs size rule is off: %s", exc)
            rule = None
        jobs = []
        if tags_period is not None and interval is not None:  # its own task: kept even with the others off
            jobs.append(self._forever(lambda: retention.run_daily_tags(self.store, tags_period,
                                                                       limits=retention.bounds(settings)),
                                      interval, "daily tag spend retention"))
        if period is None and rule is None:
            return jobs
        metrics.cleanup = cleanup = retention.CleanupMetrics()  # LiteLLM's spend-log cleanup families
        limits = retention.bounds(settings)
        deleted = functools.partial(self._count, "spend_rows_deleted")
        if period is not None and interval is not None:
            jobs.append(self._forever(lambda: retention.run(self.store, period, cleanup, deleted, limits=limits),
                                      interval, "spend logs retention"))
        if rule is not None and size_every is not None:
            jobs.append(self._forever(lambda: retention.run_size(self.store, rule, cleanup, deleted, limits=limits),
                                      size_every, "spend logs size rule"))
        return jobs

    async def _forever(self, job: Callable[[], Awaitable[str]], interval: float, what: str) -> None:
        """``job`` every ``interval`` seconds, from now on."""
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never: a run logs its own failures; the loop must outlive anything
                self._warn("%s failed (%s: %s)", what, type(exc).__name__, exc)
            await asyncio.sleep(interval)
