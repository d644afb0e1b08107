"""Deployment health: the checks ``GET /health`` runs, their last results, background checks, and
``GET /health/deployments`` (the admin UI's models page).

What it owns:

- :func:`check_deployments`: a cheap upstream call per deployment, concurrently (the adapter's health
  request, or a one-token completion as LiteLLM's health check makes), each with its deployment's own
  ``timeout`` (else ``general_settings.health_check_timeout``). ``/health`` and the background task both run
  it; every result is recorded in the worker's :class:`HealthBook`.
- :func:`run_background`: LiteLLM's ``general_settings.background_health_checks`` with
  ``health_check_interval`` (seconds, LiteLLM's default 300): one check of every deployment at start-up and
  then every interval, started by the gateway's lifespan only when the setting is on (nothing runs
  otherwise). A reload is seen at the next round (each round reads the current snapshot).
- ``GET /health/deployments``: every deployment served (config file and database models), its state from
  the router now and its last check: ``{"deployments": [{"model_name", "model_id", "provider", "api_base",
  "source", "state", "cooldown_until", "last_check", "in_flight", "ewma_ms"}]}``. ``state`` is ``cooldown``
  while the router cools it down, else ``unhealthy`` when its last check failed, ``healthy`` when that
  check passed or it has answered requests, ``unknown`` otherwise. ``api_base`` never carries credentials:
  userinfo and query string are removed. The proxy admin and its viewer see every deployment; a virtual key
  those of the model groups it may use.

**Per worker.** Workers share nothing: the last check, cooldowns, EWMA latency and in-flight counts are
the answering worker's own (cooldowns shared through Redis are the same everywhere). With several workers,
the background task runs on each and each worker's view is complete for its own traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core.errors import GatewayError
from relaygate.core.urls import public_base
from relaygate.core.views import decode_view
from relaygate.gateway.health_history import BACKGROUND, CheckRow, log_of
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.providers.base import Call
from relaygate.router import Target
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.calls import refresh_token
from relaygate.upstream.identity import identity_client

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

log = logging.getLogger("relaygate")

DEFAULT_INTERVAL = 300.0
"""LiteLLM's ``health_check_interval`` default (seconds)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One deployment's health check: when (UTC), whether it passed, the error, how long it took."""

    at: datetime
    ok: bool
    error: str | None
    latency_ms: float

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "ok": self.ok, "error": self.error,
                "latency_ms": round(self.latency_ms, 3)}


class HealthBook:
    """The last check result of each deployment id, on this worker."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[str, CheckResult] = {}

    def record(self, dep_id: str, result: CheckResult) -> None:
        self.last[dep_id] = result

    def keep_only(self, ids: set[str]) -> None:
        """Forget deployments no longer served (after a reload), so the book stays bounded."""
        for gone in [k for k in self.last if k not in ids]:
            del self.last[gone]


def book_of(gw: Any) -> HealthBook:
    """The gateway's health book (made on first use)."""
    book = getattr(gw, "health_book", None)
    if book is None:
        book = HealthBook()
        gw.health_book = book
    return book


def healthy_groups(gw: Gateway, names: list[str]) -> list[str]:
    """``names`` without the model groups whose every deployment failed its last health check (LiteLLM's
    ``healthy_only`` / ``model_list_healthy_only``: presentation only, a hidden group stays callable, and a group
    with a deployment never checked is shown: without background health checks nothing is hidden)."""
    last = book_of(gw).last
    groups = gw.runtime.router.groups

    def down(name: str) -> bool:
        group = groups.get(name)
        if group is None or not group.targets:
            return False
        results = [last.get(t.dep.id) for t in group.targets]
        return all(r is not None and not r.ok for r in results)

    return [n for n in names if not down(n)]


# -- checks ---------------------------------------------------------------------------------------------


def health_targets(gw: Gateway, background: bool) -> list[Target]:
    """The deployments a round checks (LiteLLM's rules): every one, but in a background round only those of
    ``background_health_check_model_groups`` when it is set, and never one whose ``model_info`` says
    ``disable_background_health_check``; with ``health_check_skip_disabled_background_models`` the latter are
    left out of ``/health`` too."""
    rt = gw.runtime
    g = rt.config.general
    groups = g.background_health_check_model_groups if background else None
    skip = background or g.health_check_skip_disabled_background_models
    return [t for name, group in rt.router.groups.items() if groups is None or name in groups for t in group.targets
            if not (skip and t.dep.model_info.get("disable_background_health_check") is True)]


async def check_deployments(gw: Gateway, targets: list[Target] | None = None) -> list[tuple[Target, str | None]]:
    """Check ``targets`` (default: :func:`health_targets` of ``/health``) concurrently, at most
    ``health_check_concurrency`` at once when it is set; each result is recorded in the worker's
    :class:`HealthBook`. ``(target, error or None)`` per target."""
    rt = gw.runtime
    if targets is None:
        targets = health_targets(gw, False)
    default = rt.config.general.health_check_timeout
    proxy = rt.config.server.http_proxy
    book = book_of(gw)
    limit = rt.config.general.health_check_concurrency
    gate = asyncio.Semaphore(limit) if limit else None

    async def check(target: Target) -> tuple[Target, str | None]:
        if gate is not None:
            async with gate:
                return await checked(target)
        return await checked(target)

    async def checked(target: Target) -> tuple[Target, str | None]:
        start = time.perf_counter()
        err = await _check_one(gw, target, default, proxy)
        book.record(target.dep.id, CheckResult(datetime.now(UTC), err is None, err,
                                               (time.perf_counter() - start) * 1000.0))
        return target, err

    return list(await asyncio.gather(*(check(t) for t in targets)))


async def probe(gw: Gateway, target: Target, endpoint: str | None = None) -> str | None:
    """Check one deployment now, as ``/health`` does (its ``timeout``, else ``health_check_timeout``), without
    recording the result: ``None`` when it answered, else the error (``endpoint``: see :func:`_check_one`)."""
    rt = gw.runtime
    return await _check_one(gw, target, rt.config.general.health_check_timeout, rt.config.server.http_proxy,
                            endpoint)


async def _check_one(gw: Gateway, target: Target, default: float, proxy: str | None,
                     endpoint: str | None = None) -> str | None:
    """One deployment's check: ``None`` when it answered, else what went wrong. ``endpoint`` (``chat`` or
    ``embeddings``) makes it a one-token call of that kind instead of the adapter's own health request."""
    provider = target.provider
    timeout = target.dep.timeout or default  # each deployment's own `timeout`, as its requests have
    timeouts = Timeouts(connect=timeout, first_byte=timeout, idle=timeout, total=timeout)
    transport = provider.transport or gw.transport
    try:
        req = (provider.health_request() if endpoint is None else None) or \
            await ping_request(target, proxy, endpoint)
        resp = await transport.send(req, timeouts)
        data = await resp.read()
    except GatewayError as exc:
        return exc.message
    except TimeoutError:
        return f"health check timed out after {timeout:g}s"
    except Exception as exc:  # one deployment's misconfiguration never fails the whole report
        log.exception("health check of deployment %s failed", target.dep.id)
        return f"health check failed: {type(exc).__name__}: {exc}"
    if resp.status >= 400:
        return provider.map_error(resp.status, data, None).message
    return None


async def ping_request(target: Target, proxy: str | None, endpoint: str | None = None) -> UpstreamRequest:
    """For adapters with no cheap health endpoint: a one-token completion, as LiteLLM's health check makes (an
    embedding of one word for a deployment that has no chat, or when ``endpoint`` is ``embeddings``)."""
    provider = target.provider
    now = time.time()
    if endpoint is not None and not provider.supports(endpoint):
        raise GatewayError(f"{provider.name} deployments have no {endpoint} endpoint here", status=400,
                           type="bad_request_error")
    if (endpoint or ("chat" if provider.supports("chat") else "embeddings")) == "chat":
        body = orjson.dumps({"model": target.upstream_model, "max_tokens": 1,
                             "messages": [{"role": "user", "content": "ping"}]})
        call = Call("chat", body, decode_view("chat", body), target.upstream_model, target.upstream_model, now)
    else:
        body = orjson.dumps({"model": target.upstream_model, "input": "ping"})
        call = Call("embeddings", body, decode_view("embeddings", body), target.upstream_model,
                    target.upstream_model, now)
    if provider.token_source is not None:
        await refresh_token(provider.token_source, identity_client(proxy))
    if provider.hooks:
        return provider.build_requests(call, {})[0]
    return provider.build_request(call)


async def run_background(gw: Gateway, interval: float) -> None:
    """Check every deployment now and then every ``interval`` seconds, until cancelled (the worker stops)."""
    interval = max(float(interval), 1.0)
    while True:
        try:
            results = await check_deployments(gw, health_targets(gw, True))
            keep_round(gw, results)
            bad = [t.dep.id for t, err in results if err is not None]
            if bad:
                log.warning("background health check: %d of %d deployments unhealthy: %s", len(bad), len(results),
                            ", ".join(bad))
            book_of(gw).keep_only({t.dep.id for g in gw.runtime.router.groups.values() for t in g.targets})
        except asyncio.CancelledError:
            raise
        except Exception:  # a round that failed as a whole is logged; the next one runs anyway
            log.exception("background health check round failed")
        await asyncio.sleep(interval)


def keep_round(gw: Gateway, results: list[tuple[Target, str | None]]) -> None:
    """A background round's results for the health check history (``gateway.health_history``): a row per
    deployment, written when its status changed or its last row is an hour old."""
    last = book_of(gw).last
    rows = []
    for target, err in results:
        dep = target.dep
        result = last.get(dep.id)
        rows.append(CheckRow(dep.model_name, dep.id, 1 if err is None else 0, 0 if err is None else 1, err,
                             round(result.latency_ms, 3) if result is not None else None, BACKGROUND))
    log_of(gw).submit(rows, only_changes=True)


def background_settings(config: Any) -> float | None:
    """The background check interval when ``general_settings.background_health_checks`` is on, else None."""
    g = config.general
    if not getattr(g, "background_health_checks", False):
        return None
    interval = getattr(g, "health_check_interval", None)
    return float(interval) if interval else DEFAULT_INTERVAL


# -- GET /health/deployments ----------------------------------------------------------------------------


def deployment_states(gw: Gateway, allowed: Any = None) -> list[dict[str, Any]]:
    """Every deployment of the current snapshot (those of groups ``allowed(name)`` accepts when given)."""
    router = gw.router
    mono = router.clock()
    wall = datetime.now(UTC)
    book = book_of(gw)
    db_ids = {d.id for d in getattr(gw, "db_models", ())}
    out = []
    seen: set[str] = set()
    for group in router.groups.values():
        for target in group.targets:
            dep, st = target.dep, target.stats
            if dep.id in seen or (allowed is not None and not allowed(dep.model_name)):
                continue
            seen.add(dep.id)
            last = book.last.get(dep.id)
            cooling = st.cooldown_until > mono
            if cooling:
                state = "cooldown"
            elif last is not None and not last.ok:
                state = "unhealthy"
            elif (last is not None and last.ok) or st.latency_n > 0:
                state = "healthy"
            else:
                state = "unknown"
            until = wall + timedelta(seconds=st.cooldown_until - mono) if cooling else None
            out.append({
                "model_name": dep.model_name, "model_id": dep.id, "provider": dep.provider,
                "api_base": public_base(target.provider.api_base), "source": "db" if dep.id in db_ids else "config",
                "state": state, "cooldown_until": until.isoformat().replace("+00:00", "Z") if until else None,
                "last_check": last.as_json() if last is not None else None, "in_flight": st.inflight,
                "ewma_ms": round(st.latency * 1000.0, 3) if st.latency_n > 0 else None,
            })
    return out


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def deployments(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        from relaygate.gateway.ops import principal  # ops runs the checks of this module: imported here

        who = await principal(gw, scope)  # 401 for a bad key
        allowed = None
        if who.key is not None and not await _reads_all(gw, scope):
            allowed = who.allows
        await send_json(send, 200, orjson.dumps({"deployments": deployment_states(gw, allowed)}))

    t.add("GET", "/health/deployments", deployments)


async def _reads_all(gw: Gateway, scope: Scope) -> bool:
    """Whether a virtual key belongs to the proxy admin or its viewer (through its user's role)."""
    store = gw.store
    if store is None:
        return False
    from relaygate.management.common import resolve_caller

    return (await resolve_caller(gw, scope, store)).reads_all
