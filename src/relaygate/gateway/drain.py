"""Graceful drain and backlog (LiteLLM's ``/health/drain``, ``/health/backlog``, ``/health/readiness/details``).

What it owns: one worker's drain state (:class:`Drain`, LiteLLM's ``GracefulShutdownManager``), and the three
routes.

- ``GET /health/drain``: off unless ``general_settings.enable_drain_endpoint: true`` (a 404 otherwise, as
  LiteLLM). No key (a kubelet ``preStop`` hook has none); with ``general_settings.drain_endpoint_token`` or
  ``DRAIN_ENDPOINT_TOKEN`` set, the ``X-Drain-Token`` header must carry it (compared in constant time; a 401
  ``Invalid or missing X-Drain-Token`` otherwise, with no effect). The call marks the whole instance as
  draining, for good (until it restarts): ``/health/readiness`` and ``/health/liveliness`` answer 503
  ``{"status": "shutting_down"}`` on every worker from then on, so the orchestrator takes the pod out of
  rotation; then it waits until no request is in flight on any worker of the instance (or
  ``GRACEFUL_SHUTDOWN_TIMEOUT`` seconds, 30 by default, have passed) and answers ``{"status": "drained",
  "drained_requests": n}``. A second drain returns at once (LiteLLM: one drain per shutdown). Where LiteLLM
  drains the one worker process the call reached, relaygate drains every worker of the instance: the marker
  is a file in the runtime directory ``relaygate serve`` shares with its workers, and each worker, once it
  sees it (its drain watch looks every half second), reports its in-flight count there until it stops.
- ``GET /health/backlog`` (any valid key): this worker's ``in_flight_requests`` (every HTTP request being
  served, this one included, as LiteLLM counts them) and the admission counters (``admitted_requests``,
  ``queued_requests``, ``rejected_requests``; zeros without ``max_in_flight_requests_per_worker``).
- ``GET /health/readiness/details`` (any valid key): LiteLLM's detailed readiness payload (``status``, ``db``,
  ``cache``, ``litellm_version``, ``success_callbacks``, ``log_level``, ``is_detailed_debug``,
  ``show_no_redis_warning`` ...); 503 with ``db`` not ``connected`` when a configured database does not answer.

Cost: the in-flight count is two integer updates a request (``Gateway.active``); nothing else runs unless the
drain endpoint is enabled (then one ``stat`` of the marker every half second per worker, and the count files
only while draining).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core.errors import GatewayError
from relaygate.http.app import WORKERS_ENV
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

log = logging.getLogger("relaygate")

DEFAULT_TIMEOUT = 30.0
"""LiteLLM's ``DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT``."""
WATCH_INTERVAL = 0.5
REPORT_INTERVAL = 0.1
MARKER = "marker"
SHUTTING_DOWN = b'{"status":"shutting_down"}'


def worker_count(gw: Gateway) -> int:
    raw = os.environ.get(WORKERS_ENV, "")
    return max(1, int(raw) if raw.isdigit() else int(gw.runtime.config.server.workers or 1))


def drain_timeout(env: Any = os.environ) -> float:
    """``GRACEFUL_SHUTDOWN_TIMEOUT`` (seconds), read on each drain as LiteLLM does; a bad value: the default."""
    raw = env.get("GRACEFUL_SHUTDOWN_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value < 86_400):
        log.warning("GRACEFUL_SHUTDOWN_TIMEOUT=%r is not a number of seconds; using %.0f s", raw[:40], DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT
    return value


class Drain:
    """One worker's drain state: whether the instance drains, and the in-flight counts of its workers."""

    def __init__(self, gw: Gateway, directory: str | None) -> None:
        self.gw = gw
        self.dir = os.path.join(directory, "drain") if directory else None
        self.draining = False
        self.performed = False
        """A drain already waited (LiteLLM: a second one returns at once)."""
        self._watch: asyncio.Task[None] | None = None
        self._reported: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.gw.runtime.config.general.enable_drain_endpoint)

    def marked(self) -> bool:
        """Whether the instance drains (this worker was told, or the marker is there): the probes ask."""
        if self.draining:
            return True
        if self.dir is not None and self.enabled:
            self.ensure_watch()
            if os.path.exists(os.path.join(self.dir, MARKER)):
                self.start("the drain marker")
        return self.draining

    def ensure_watch(self) -> None:
        """Start this worker's drain watch (the endpoint is enabled and the loop runs)."""
        if self.dir is None or (self._watch is not None and not self._watch.done()):
            return
        with contextlib.suppress(RuntimeError):  # no running loop (a sync caller): the next probe starts it
            self._watch = asyncio.get_running_loop().create_task(self._run(), name="relaygate-drain-watch")
            tasks = getattr(self.gw, "_tasks", None)  # the gateway's own: cancelled at its shutdown
            if tasks is not None:
                tasks.add(self._watch)
                self._watch.add_done_callback(tasks.discard)

    def start(self, why: str) -> None:
        if self.draining:
            return
        self.draining = True
        log.info("graceful drain started (%s): %d request(s) in flight on this worker", why, self.gw.active)
        if self.dir is not None:
            try:
                os.makedirs(self.dir, exist_ok=True)
                _write(os.path.join(self.dir, MARKER), b"1")
            except OSError as exc:
                log.warning("graceful drain: the marker could not be written (%s): other workers keep serving", exc)
            self.ensure_watch()

    async def _run(self) -> None:
        """Every half second look for the marker; once draining, report this worker's count every 0.1 s."""
        assert self.dir is not None
        marker = os.path.join(self.dir, MARKER)
        mine = os.path.join(self.dir, str(os.getpid()))
        while True:
            if not self.draining:
                await asyncio.sleep(WATCH_INTERVAL)
                if os.path.exists(marker):
                    self.start("the drain marker")
                continue
            count = self.gw.active
            if count != self._reported:
                try:
                    _write(mine, b"%d" % count)
                    self._reported = count
                except OSError:
                    pass
            await asyncio.sleep(REPORT_INTERVAL)

    def others(self) -> dict[int, int]:
        """The other live workers' reported in-flight counts."""
        out: dict[int, int] = {}
        if self.dir is None:
            return out
        try:
            names = os.listdir(self.dir)
        except OSError:
            return out
        me = os.getpid()
        for name in names:
            if not name.isdigit() or int(name) == me:
                continue
            pid = int(name)
            try:
                os.kill(pid, 0)
                with open(os.path.join(self.dir, name), "rb") as f:
                    out[pid] = int(f.read(20) or b"0")
            except (OSError, ValueError):
                continue  # a worker gone (respawned), or a file being replaced
        return out

    async def wait(self, timeout: float, poll: float = REPORT_INTERVAL) -> int:
        """Until nothing is in flight on any worker of the instance but this call (the other workers' reports
        all in), or ``timeout``; the requests that ended meanwhile."""
        if self.performed:
            return 0
        self.performed = True
        workers = worker_count(self.gw) if self.dir is not None else 1
        start = time.monotonic()
        first: int | None = None
        last_log = start
        while True:
            others = self.others()
            count = max(0, self.gw.active - 1) + sum(others.values())  # this call is in flight itself
            heard = len(others) >= workers - 1
            if first is None and heard:  # counted once every worker reported
                first = count
            now = time.monotonic()
            if count == 0 and heard:
                log.info("graceful drain complete: %d request(s) drained in %.2f s", first, now - start)
                return first or 0
            if now - start >= timeout:
                log.warning("graceful drain timed out after %.1f s: %d request(s) still in flight%s", timeout, count,
                            "" if heard else f" ({workers - 1 - len(others)} worker(s) not heard from)")
                return max(0, (count if first is None else first) - count)
            if now - last_log >= 5.0:
                log.info("graceful drain waiting: %d request(s) in flight", count)
                last_log = now
            await asyncio.sleep(poll)


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def drain_token(gw: Gateway) -> str | None:
    token = gw.runtime.config.general.drain_endpoint_token
    return token or os.environ.get("DRAIN_ENDPOINT_TOKEN") or None


def _header(scope: Scope, name: bytes) -> bytes:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return b""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    from relaygate.management.common import caller_principal

    async def drain(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        if not gw.drain.enabled:
            raise GatewayError("Not Found", status=404, type="not_found_error")
        expected = drain_token(gw)
        if expected is not None and not hmac.compare_digest(_header(scope, b"x-drain-token"), expected.encode()):
            raise GatewayError("Invalid or missing X-Drain-Token", status=401, type="auth_error")
        gw.drain.start("GET /health/drain")
        drained = await gw.drain.wait(drain_timeout())
        await send_json(send, 200, orjson.dumps({"status": "drained", "drained_requests": drained}))

    async def backlog(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await caller_principal(gw, scope)
        adm = gw.admission
        body = {"in_flight_requests": gw.active, "admitted_requests": adm.admitted if adm is not None else 0,
                "queued_requests": len(adm.waiting) if adm is not None else 0,
                "rejected_requests": sum(adm.rejected.values()) if adm is not None else 0}
        await send_json(send, 200, orjson.dumps(body))

    async def details(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await caller_principal(gw, scope)
        body, status = await readiness_details(gw)
        await send_json(send, status, orjson.dumps(body))

    t.add("GET", "/health/drain", drain)
    t.add("GET", "/health/backlog", backlog)
    t.add("GET", "/health/readiness/details", details)


async def readiness_details(gw: Gateway) -> tuple[dict[str, Any], int]:
    """LiteLLM's detailed readiness body and status (``db`` and the 503 as :func:`db_field` says)."""
    from relaygate import __version__
    from relaygate.gateway.announce import redis_url_of

    cfg = gw.runtime.config
    db, unready = await db_field(gw)
    observe = cfg.observe
    level = logging.getLogger("relaygate").getEffectiveLevel()
    body = {"status": "healthy", "db": db,
            "cache": cfg.cache.type if cfg.cache is not None else None,
            "litellm_version": __version__, "relaygate_version": __version__,
            "success_callbacks": list(observe.success_callbacks) if observe is not None else [],
            "use_aiohttp_transport": False, "log_level": logging.getLevelName(level),
            "is_detailed_debug": level <= logging.DEBUG,
            "show_no_redis_warning": redis_url_of(cfg) is None and worker_count(gw) > 1,
            "show_env_credential_login_warning": False}
    return body, 503 if unready else 200


async def db_field(gw: Gateway) -> tuple[str, bool]:
    """The readiness ``db`` field and whether the worker is unready for it (LiteLLM 1.110): ``connected``;
    ``Not connected`` without a database; ``disconnected`` when a configured one does not answer, unready unless
    ``allow_requests_on_db_unavailable`` (then the worker serves on from what it holds and stays in rotation)."""
    db = await gw.db_status()
    if gw.store is None or db == "connected":
        return db, False
    return "disconnected", not gw.runtime.config.general.allow_requests_on_db_unavailable
