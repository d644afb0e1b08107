"""Conversation state of the Responses API: one worker's stored responses, their writes, reads and runs.

What it owns (one :class:`ResponseState` per gateway, made by :func:`state_of`): the responses this worker
stored or is storing, the chains ``previous_response_id`` continues, the ``background`` runs in flight, and
the retention purge. The SQL lives in :mod:`relaygate.store.responses`; the routes (``GET`` / ``DELETE``
``/v1/responses/{id}``, ``input_items``, ``cancel``) in :mod:`relaygate.frontends.responses_routes`; the
request side (what a turn stores, how a chain becomes input) in :mod:`relaygate.frontends.responses`.

Invariants:

- **Nothing without a store.** Without a database every entry point says so (:attr:`ResponseState.enabled`
  is false) and the request path pays one attribute test; ``store: false`` pays nothing either.
- **Writes off the request path, reads never miss this worker's writes.** :meth:`ResponseState.put` (no
  await) records a finished response in :attr:`pending` and wakes the writer task, which upserts batches in
  one transaction each (``store.responses.write_responses``). A row leaves :attr:`pending` only once its
  write committed, and every read looks there first: a client that sends its next turn to this worker right
  after the answer finds the response whether or not the write landed. The pending rows are bounded
  (:data:`MAX_PENDING`; past it the oldest unwritten row is dropped, counted as
  ``responses_store_dropped`` and logged); a database that is down is retried with backoff, the rows kept.
- **Across workers.** Another worker (or instance) reads the database only. The write is queued as the
  answer's last bytes are produced and normally commits within a few milliseconds; a read that misses
  looks again after :data:`SETTLE` (two more reads at most) before it answers 404, so a client that opens a
  new connection (and lands on another worker) for its next turn still finds the turn it just got. The
  SDKs reuse their connection, which stays on one worker, so this wait is rarely paid, and only by misses.
- **Owners.** A row is visible to the key that created it, to another key of its team, and to the master
  key (and an open gateway's anonymous caller, which LiteLLM treats as the admin); to anyone else it does not
  exist (404, never 403). Expired rows are invisible at once and purged every :data:`PURGE_INTERVAL`, in
  batches of :data:`PURGE_BATCH` (each its own transaction), by one worker of one instance at a time.
- **Background runs are bounded per worker** (:data:`MAX_BACKGROUND`): each is a task that runs the turn
  through the gateway's own pipeline (so limits, retries, fallbacks, spend and cost apply) with a request
  that reads as a client that never leaves; cancelling it is that client leaving. A cancel that reaches
  another worker marks the row cancelled; the worker running it looks for such rows every
  :data:`CANCEL_POLL` while it runs any, and stops them (a run that finishes first keeps its result). A run
  still going when its worker stops is stored cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from relaygate.auth import Principal, PrincipalKind
from relaygate.core import errors
from relaygate.sinks.retention import in_batches
from relaygate.store import Store, StoreUnavailable
from relaygate.store.responses import (
    StoredResponse,
    delete_response,
    purge_expired,
    read_chain,
    read_response,
    read_statuses,
    write_responses,
)

if TYPE_CHECKING:
    from relaygate.http.types import Message, Scope

log = logging.getLogger("relaygate.responses")

MAX_PENDING = 10_000
"""Responses waiting for their write, per worker, at most (past it the oldest is dropped and counted)."""
BATCH = 256
"""Rows per write transaction at most."""
SETTLE = (0.05, 0.2)
"""Pauses before a missed read looks again (a write of another worker may be landing)."""
MAX_DEPTH = 256
"""Turns a ``previous_response_id`` chain may have (older ones are a 400: start again from ``input``)."""
MAX_BACKGROUND = 64
"""Background responses running at once per worker (more is a 429)."""
PURGE_INTERVAL = 600.0
"""Seconds between two deletions of expired rows."""
PURGE_BATCH = 1_000
"""Stored responses one purge transaction deletes at most (rows carry whole conversations: a smaller batch
than the spend logs')."""
PURGE_LOCK = "responses_retention"
"""The store's job lock a purge holds (``Store.job_lock``): one purge at a time among every worker and
instance."""
CANCEL_POLL = 1.0
"""Seconds between two looks, while this worker runs background responses, for one cancelled elsewhere."""
BACKGROUND_KEY = "relaygate.responses.background"
"""The scope key that carries a background run's response id into the run's own request (a server-side
key: no client can set it)."""


class Gateway(Protocol):
    """What this module uses of ``gateway.core.Gateway`` (no import of it: no cycle)."""

    store: Store | None

    @property
    def runtime(self) -> Any: ...

    @property
    def config(self) -> Any: ...

    @property
    def pipeline(self) -> Any: ...

    metrics: Any

    def _spawn(self, coro: Any) -> None: ...


_STATES: weakref.WeakKeyDictionary[Any, ResponseState] = weakref.WeakKeyDictionary()


def state_of(gw: Gateway) -> ResponseState:
    """The one :class:`ResponseState` of ``gw`` (made on first need)."""
    st = _STATES.get(gw)
    if st is None:
        st = _STATES[gw] = ResponseState(gw)
    return st


def not_found(rid: str, param: str | None = None, code: str | None = None) -> errors.GatewayError:
    """OpenAI's 404 for a response that does not exist, or that the caller may not see."""
    what = "Previous response" if param == "previous_response_id" else "Response"
    message = f"{what} with id '{rid}' not found." if valid_id(rid) else f"{what} not found: no such id."
    return errors.GatewayError(message, status=404, type="invalid_request_error", param=param,
                               code=code or "not_found")


def item_not_found(iid: str) -> errors.GatewayError:
    """OpenAI's 404 for an ``item_reference`` that names no item the caller may see (no fallback helps)."""
    message = f"Item with id '{iid}' not found." if valid_id(iid) else "Item not found: no such id."
    exc = errors.GatewayError(message, status=404, type="invalid_request_error", param="input")
    exc.final = True
    return exc


def response_of(iid: str) -> str | None:
    """The id of the response whose output item ``iid`` is, when the gateway made it: the translation names an
    output item by its kind's prefix, the response's 32 random hex digits and its place in two or more hex
    digits (``providers.responses_api``: ``chat_to_response``, ``ResponsesStream``); else None (an upstream's
    or a client's id)."""
    prefix, sep, rest = iid.partition("_")
    if not sep or prefix not in _ITEM_PREFIXES or len(rest) < 34 or len(rest) > 40:
        return None
    if not all(c in _HEX for c in rest):
        return None
    return "resp_" + rest[:32]


_ITEM_PREFIXES = frozenset({"msg", "fc", "rs"})
_HEX = frozenset("0123456789abcdef")


def item_of(row: StoredResponse, iid: str) -> dict[str, Any] | None:
    """The item ``iid`` of the stored response ``row``: one of its output, else one of its input."""
    output = row.response.get("output")
    for items in (output if isinstance(output, list) else (), row.input):
        for it in items:
            if isinstance(it, dict) and it.get("id") == iid and it.get("type") != "item_reference":
                return it
    return None


def no_store(param: str | None) -> errors.GatewayError:
    return errors.BadRequest(
        "Stored responses (conversation state) need the gateway's database: this gateway has none "
        "(server.embedded_database is false and no database_url is set), so responses are not stored; send the "
        "whole conversation in `input`", param=param)


def visible(row: StoredResponse, who: Principal | None) -> bool:
    """Whether ``who`` may read ``row``: its key, a key of its team, the master key (or an open gateway)."""
    if who is None:
        return False
    if who.kind is not PrincipalKind.KEY:
        return True
    if row.api_key is not None and row.api_key == who.key_hash:
        return True
    return row.team_id is not None and row.team_id == who.team_id


def valid_id(rid: str) -> bool:
    """An id the gateway could have handed out (letters, digits, ``_`` and ``-``, at most 128)."""
    return 0 < len(rid) <= 128 and rid.replace("_", "").replace("-", "").isalnum() and rid.isascii()


class _Run:
    """One background response running in this worker: the task and the way to make its client leave."""

    __slots__ = ("task", "gone", "row", "stored")

    def __init__(self, row: StoredResponse) -> None:
        self.row = row
        self.stored = False
        """The run's own request stored its result (the frontend's ``put``)."""
        self.gone: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None


class ResponseState:
    """One gateway's stored responses (see the module docstring)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.pending: OrderedDict[str, StoredResponse] = OrderedDict()
        self.runs: dict[str, _Run] = {}
        self.frontend: Any = None
        """The gateway's ``Responses`` frontend (``frontends.responses``), which background runs go through."""
        self._wake: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        """Held by a batch write and by a deletion: a row being written cannot come back after its deletion."""
        self._down = False
        """The last write found the database unavailable (logged once until it answers again)."""
        self.retention: float | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def store(self) -> Store | None:
        return self.gw.store

    @property
    def enabled(self) -> bool:
        return self.gw.store is not None

    def start(self, retention: float | None) -> None:
        """Start the writer and the purge (``gateway.core``'s startup, once the store is open)."""
        self.retention = retention
        self._wake = asyncio.Event()
        self.gw._spawn(self._write_forever())
        self.gw._spawn(self._purge_forever())
        self.gw._spawn(self._watch_runs())

    def _count(self, event: str, n: int = 1) -> None:
        metrics = getattr(self.gw, "metrics", None)
        if metrics is not None:
            metrics.count(event, n)

    def expires(self, now: datetime) -> datetime | None:
        return now + timedelta(seconds=self.retention) if self.retention else None

    # -- writes -------------------------------------------------------------------------------------

    def put(self, row: StoredResponse) -> None:
        """Store ``row`` (no await): readable by this worker at once, written by the writer task soon."""
        rid = row.response_id
        run = self.runs.get(rid)
        if run is not None and row.status not in ("queued", "in_progress"):
            run.stored = True
        self.pending.pop(rid, None)
        self.pending[rid] = row
        while len(self.pending) > MAX_PENDING:
            old, _ = self.pending.popitem(last=False)
            self._count("responses_store_dropped")
            log.warning("responses: the write queue is full (%d): response %s dropped", MAX_PENDING, old)
        if self._wake is not None:
            self._wake.set()

    async def _write_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        delay = 0.1
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self.pending:
                    if await self._write_batch():
                        delay = 0.1
                    else:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
        except asyncio.CancelledError:
            for _ in range(3):  # the worker stops: its background runs, cancelled too, store their end first
                await asyncio.sleep(0)
            if self.pending and self.store is not None:  # then what is pending is written, once
                try:
                    await asyncio.wait_for(self._write_batch(len(self.pending)), 5)
                except Exception as exc:
                    log.warning("responses: %d pending response(s) not written at shutdown: %s",
                                len(self.pending), type(exc).__name__)
            raise

    async def _write_batch(self, size: int = BATCH) -> bool:
        """Write up to ``size`` pending rows; False when the database could not take them (retry later)."""
        store = self.store
        if store is None:
            return True
        async with self._lock:
            rows = list(islice(self.pending.values(), size))
            try:
                try:
                    await write_responses(store, rows)
                except Exception as exc:
                    if _unavailable(exc):
                        raise
                    await self._write_each(store, rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unavailable: the rows wait, retried with backoff
                self._count("responses_store_failed")
                if not self._down:
                    self._down = True
                    log.warning("responses: the database is unavailable (%s: %s); %d response(s) wait",
                                type(exc).__name__, exc, len(self.pending))
                return False
            if self._down:
                self._down = False
                log.info("responses: the database answers again; %d pending response(s) written", len(rows))
            self._written(rows)
        return True

    async def _write_each(self, store: Store, rows: list[StoredResponse]) -> None:
        """A batch the database refused: one row at a time, and a row it refuses alone is dropped."""
        for row in rows:
            try:
                await write_responses(store, [row])
            except Exception as exc:
                if _unavailable(exc):
                    raise
                self._count("responses_store_dropped")
                log.error("responses: response %s could not be stored: %s: %s", row.response_id,
                          type(exc).__name__, exc)

    def _written(self, rows: list[StoredResponse]) -> None:
        for row in rows:
            if self.pending.get(row.response_id) is row:  # not replaced meanwhile (a background result)
                del self.pending[row.response_id]
        self._count("responses_stored", len(rows))

    # -- reads --------------------------------------------------------------------------------------

    async def get(self, rid: str, who: Principal | None, param: str | None = None) -> StoredResponse:
        """``rid``'s row if ``who`` may see it, else OpenAI's 404."""
        if not valid_id(rid):
            raise not_found(rid, param)
        row = await self._find(rid)
        if row is None or not visible(row, who):
            raise not_found(rid, param, "previous_response_not_found" if param else None)
        return row

    async def find(self, rid: str, who: Principal | None) -> StoredResponse | None:
        """``rid``'s row if it exists and ``who`` may see it, else None."""
        if not valid_id(rid):
            return None
        row = await self._find(rid)
        return row if row is not None and visible(row, who) else None

    async def _find(self, rid: str) -> StoredResponse | None:
        store = self.store
        if store is None:
            raise no_store(None)
        now = datetime.now(UTC)
        row = self._pending(rid, now)
        if row is not None:
            return row
        row = await read_response(store, rid, now)
        for pause in SETTLE:
            if row is not None:
                break
            await asyncio.sleep(pause)
            row = self._pending(rid, now) or await read_response(store, rid, now)
        return row

    def _pending(self, rid: str, now: datetime) -> StoredResponse | None:
        row = self.pending.get(rid)
        if row is not None and row.expires_at is not None and row.expires_at <= now:
            return None
        return row

    async def chain(self, rid: str, who: Principal | None, max_bytes: int) -> list[StoredResponse]:
        """The turns ``rid`` continues, oldest first, ``rid``'s own last; each must be visible to ``who`` (a
        404 naming ``previous_response_id`` otherwise, as for a missing one), and all of them together at most
        ``max_bytes`` of JSON (a 400 otherwise: the request the gateway would build is too large)."""
        param = "previous_response_id"
        newest = await self.get(rid, who, param)
        out = [newest]
        store = self.store
        assert store is not None
        now = datetime.now(UTC)
        while out[-1].previous_response_id is not None:
            if len(out) > MAX_DEPTH:
                raise errors.BadRequest(f"previous_response_id: the conversation has more than {MAX_DEPTH} "
                                        "turns; start a new one with its context in `input`", param=param)
            prev = out[-1].previous_response_id
            row = self._pending(prev, now)
            if row is not None:
                out.append(row)
                continue
            rows = await read_chain(store, prev, now, MAX_DEPTH - len(out) + 1)
            if not rows:
                raise errors.BadRequest(f"previous_response_id: an earlier turn of this conversation ({prev}) "
                                        "has expired or was deleted", param=param)
            out.extend(rows)
        size = 0
        for row in out:
            if not visible(row, who):
                raise not_found(rid, param, "previous_response_not_found")
            size += len(orjson.dumps(row.input)) + len(orjson.dumps(row.response.get("output")))
        if size > max_bytes:
            raise errors.BadRequest(f"previous_response_id: the conversation is larger ({size} bytes) than a request "
                                    f"may be ({max_bytes}); start a new one with its context in `input`",
                                    param=param)
        out.reverse()
        return out

    async def delete(self, rid: str, who: Principal | None) -> None:
        """Delete ``rid`` (a 404 unless ``who`` may see it), cancelling it first if it runs here."""
        row = await self.get(rid, who)
        run = self.runs.get(rid)
        if run is not None:
            await self.cancel_run(run)
        store = self.store
        assert store is not None
        async with self._lock:
            self.pending.pop(rid, None)
            await delete_response(store, row.response_id)

    # -- background runs ----------------------------------------------------------------------------

    def start_run(self, row: StoredResponse, scope: Scope, body: bytes) -> None:
        """Run ``body`` (the request without ``background``) through the gateway's pipeline in a task; its
        answer becomes ``row``'s result. A 429 when :data:`MAX_BACKGROUND` runs are already going."""
        if len(self.runs) >= MAX_BACKGROUND:
            raise errors.GatewayError(f"Too many background responses in progress on this worker "
                                      f"({MAX_BACKGROUND}); try again later", status=429,
                                      type="rate_limit_error", param="background", code="rate_limit_exceeded")
        run = _Run(row)
        inner = {**scope, BACKGROUND_KEY: row.response_id}
        self.runs[row.response_id] = run
        task = run.task = asyncio.ensure_future(self._run(run, inner, body))
        self.gw._spawn(task)  # the gateway's task: cancelled when the worker stops

    async def _run(self, run: _Run, scope: Scope, body: bytes) -> None:
        sent: dict[str, Any] = {}
        first = True

        async def receive() -> Message:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": body, "more_body": False}
            return await run.gone

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["body"] = sent.get("body", b"") + message.get("body", b"")

        rid = run.row.response_id
        try:
            await self.gw.pipeline.run(self.frontend, scope, receive, send, {}, "/v1/responses")
            status = int(sent.get("status") or 0)
            if run.gone.done():
                self._finish(run, "cancelled", None)
            elif status >= 400 or not run.stored:
                self._finish(run, "failed", _error_of(sent.get("body", b""), status))
        except asyncio.CancelledError:
            self._finish(run, "cancelled", None)
            raise
        except Exception as exc:  # a bug: the response says failed, the traceback goes to the log
            log.exception("responses: background response %s failed", rid)
            self._finish(run, "failed", {"code": "server_error", "message": f"internal error ({type(exc).__name__})"})
        finally:
            self.runs.pop(rid, None)

    def _finish(self, run: _Run, status: str, error: dict[str, Any] | None) -> None:
        """End ``run`` as ``status`` unless its request stored its own result first."""
        if run.stored:
            return
        run.stored = True
        row = run.row
        resp = {**row.response, "status": status, "error": error}
        self.put(StoredResponse(**{**_fields(row), "status": status, "response": resp,
                                   "updated_at": datetime.now(UTC)}))

    async def cancel_run(self, run: _Run) -> None:
        """The run's client leaves: the pipeline cancels the upstream call and counts the exchange as 499."""
        if not run.gone.done():
            run.gone.set_result({"type": "http.disconnect"})
        task = run.task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:  # no disconnect watch listened (server.cancel_on_disconnect = false)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    async def cancel(self, rid: str, who: Principal | None) -> StoredResponse:
        """``POST /v1/responses/{id}/cancel``: stop a background response of this worker."""
        row = await self.get(rid, who)
        if not row.background:
            raise errors.BadRequest("Only background responses can be cancelled.", param="response_id")
        run = self.runs.get(rid)
        if run is not None:
            await self.cancel_run(run)
            return self.pending.get(rid) or row
        if row.status in ("queued", "in_progress"):  # another worker runs it: it sees this within CANCEL_POLL
            row = StoredResponse(**{**_fields(row), "status": "cancelled", "updated_at": datetime.now(UTC),
                                    "response": {**row.response, "status": "cancelled"}})
            store = self.store
            assert store is not None
            async with self._lock:  # written before the answer: any worker reads it cancelled from now on
                self.pending.pop(rid, None)
                await write_responses(store, [row])
        return row

    async def _watch_runs(self) -> None:
        """While this worker runs background responses, stop those another worker marked cancelled."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            store = self.store
            if not self.runs or store is None:
                continue
            try:
                statuses = await read_statuses(store, list(self.runs))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("responses: background runs not checked (%s: %s)", type(exc).__name__, exc)
                continue
            for rid, status in statuses.items():
                run = self.runs.get(rid)
                if run is not None and status == "cancelled" and not run.stored:
                    await self.cancel_run(run)

    # -- retention ----------------------------------------------------------------------------------

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            store = self.store
            if store is None:
                continue
            try:
                await self._purge(store)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("responses retention failed (%s: %s)", type(exc).__name__, exc)

    async def _purge(self, store: Store, batch: int = PURGE_BATCH) -> str:
        """One purge: the expired rows in batches (``sinks.retention.in_batches``: each its own transaction,
        the spend sink and the other writers get the database between two), by one worker of one instance at
        a time (the store's job lock); the outcome (``skipped_locked`` when another runs it)."""
        now = datetime.now(UTC)

        def done(n: int, _seconds: float) -> None:
            if n:
                self._count("responses_expired", n)

        async with store.job_lock(PURGE_LOCK) as mine:
            if not mine:
                return "skipped_locked"
            outcome, n = await in_batches(lambda limit: purge_expired(store, now, limit), "responses", done,
                                          batch=batch)
        if n or outcome != "completed":
            log.info("responses retention: %d expired response(s) deleted (%s)", n, outcome)
        return outcome


def _fields(row: StoredResponse) -> dict[str, Any]:
    return {f: getattr(row, f) for f in row.__struct_fields__}


def _error_of(body: bytes, status: int) -> dict[str, Any]:
    try:
        err = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        err = {}
    code = "rate_limit_exceeded" if status == 429 else "server_error"
    return {"code": code, "message": str(err.get("message") or f"the request failed ({status})")}


def _unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or is busy (retry later), as the spend sink tells it."""
    if isinstance(exc, (StoreUnavailable, OSError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(w in str(exc) for w in ("locked", "busy", "disk I/O", "unable to open", "readonly", "full"))
    name = type(exc).__name__
    return type(exc).__module__.startswith("asyncpg") and (
        "Connection" in name or "CannotConnect" in name or name in ("InterfaceError", "AdminShutdownError"))



def start(gw: Gateway) -> None:
    """Start ``gw``'s writer and retention purge (``gateway.core``'s startup, once its store is open):
    ``relaygate_settings.responses_retention`` (``30d`` by default; None keeps responses until deleted)."""
    from relaygate.sinks.spend import parse_duration

    value = gw.config.server.responses_retention
    seconds: float | None = None
    if value:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            seconds = 30 * 86400.0
            log.error("relaygate_settings.responses_retention: %s; stored responses are kept 30d", exc)
    state_of(gw).start(seconds)
