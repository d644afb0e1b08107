"""The gateway of one worker process: what Granian's ASGI app (``relaygate.asgi:app``) serves.

It wires the parts and owns what lives as long as the worker:

- the **route table** (``http.routes``): every LLM path goes to ``Pipeline.run`` with its frontend
  (``frontends.llm_routes``), the operational routes (models, health, metrics, ``/config/reload``) to
  ``gateway.ops``; anything else is a 404, a known path with another method a 405 with ``Allow``;
- the **pipeline** and the **runtime snapshot** it serves (``runtime.Runtime``): :meth:`Gateway.reload`
  loads and validates the config file, builds a new snapshot from the current one (stats and limiter carry
  over) and swaps it in one assignment; an invalid file changes nothing and the error is returned;
- the parts that outlive a reload: the **transport** (its connection pools), the **metrics**, the
  **completion queue** and its sinks, and the reload **watcher** (``reload.Watcher``) that applies a
  reload asked of another worker or of the main process (``SIGHUP``), or a changed file (``watch_config``).

Errors outside the pipeline (404, 405, a bad key on an operational route) are answered in OpenAI's shape; an
unexpected exception is a 500, one log line with the traceback: the worker never dies on a request. WebSocket
handshakes are ``realtime``'s (the Realtime API)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from relaygate import events, realtime
from relaygate.auth.access import AccessPolicy
from relaygate.auth.changes import KeyChanges
from relaygate.auth.shared import SharedKeys
from relaygate.cache.routes import add_routes as add_cache_routes
from relaygate.cache.settings_api import STORED_NAMES, with_stored_settings
from relaygate.cache.stage import make_cache
from relaygate.config.model import Config, Deployment
from relaygate.config.stored_general import with_stored_general
from relaygate.core.errors import GatewayError
from relaygate.frontends import llm_routes
from relaygate.frontends.responses import Responses
from relaygate.frontends.responses_routes import add_routes as add_responses_routes
from relaygate.frontends.responses_state import start as start_responses
from relaygate.gateway.announce import close_later, publish_keys, publish_reload_to, redis_url_of
from relaygate.gateway.drain import Drain
from relaygate.gateway.jobs import start_store_jobs
from relaygate.gateway.model_info import add_routes as add_model_info_routes
from relaygate.gateway.ops import add_routes
from relaygate.http.admission import EXEMPT, Admission
from relaygate.http.body import ClientGone, body_ended_early
from relaygate.http.cors import CorsPolicy
from relaygate.http.respond import send_error
from relaygate.http.root import root_path, under_root
from relaygate.http.routes import RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.logs import fail_log
from relaygate.management.models import enabled as db_models_enabled
from relaygate.management.models import read_db_models, with_db_models
from relaygate.metrics import METRICS_DIR_ENV, Metrics, labels_of
from relaygate.observe import install as install_exporters
from relaygate.pipeline import Pipeline
from relaygate.reload import Watcher, accept, bump, current, subscribe_reloads
from relaygate.router import Router
from relaygate.runtime import Runtime
from relaygate.sinks import CompletionQueue, MetricsSink
from relaygate.sinks.queue import LINGER
from relaygate.store import Store, database_url, open_store
from relaygate.store.activity import principal_counts, team_member_counts
from relaygate.store.sealing import sealer_for
from relaygate.store.settings import read_settings
from relaygate.upstream.base import Transport
from relaygate.upstream.factory import make_transport
from relaygate.upstream.identity import aclose_identity_clients

log = logging.getLogger("relaygate")

COUNT_EVERY = 300.0
"""Seconds between two reads of the store's user and team counts (also at start and when its rows change), for
LiteLLM's ``litellm_total_users`` / ``litellm_teams_count`` / ``litellm_team_members_metric`` (``prometheus``)."""


RESTART_ONLY = ("host", "port", "workers", "log_level", "backlog", "max_connections", "header_read_timeout",
                "transport", "http_proxy", "max_connections_per_upstream", "keepalive_expiry",
                "max_upstream_response_bytes", "watch_config", "reload_poll_interval", "embedded_database",
                "database_file", "database_pool_size", "database_connect_timeout", "database_pool_timeout")
"""``[server]`` settings of the process, its listener or its transport: a reload logs a change, a restart applies it."""


class NothingToReload(Exception):
    """A reload was asked of a gateway serving its embedded default config (no file)."""


class Gateway:
    """One worker's gateway; an ASGI callable for HTTP scopes with ``startup`` / ``shutdown``."""

    def __init__(self, config: Config, transport: Transport | None = None, *,
                 config_path: str | None = None, runtime_dir: str | None = None) -> None:
        self.runtime_dir = runtime_dir if runtime_dir is not None else os.environ.get(METRICS_DIR_ENV)
        self.config_path = config_path
        """The file a reload reads (``RELAYGATE_CONFIG``); None for the embedded default: nothing to reload."""
        # the watcher's starting generation is read before anything else: a reload asked while this worker
        # builds its snapshot is applied once it runs, not missed
        self.watcher = self._make_watcher(config)
        self.active = 0
        """HTTP requests being served by this worker (``/health/backlog``, the drain: ``gateway.drain``)."""
        self.metrics = Metrics.for_config(config, self.runtime_dir)
        # every exchange ends as one completion record; the sinks (metrics today) drain them off the request path
        self.completions = CompletionQueue(on_event=self.metrics.count, linger=LINGER)
        self.completions.add_sink(MetricsSink(self.metrics))
        self.exporters = install_exporters(config.observe, self.completions, self.metrics, config)
        self._stop_outages: Any = None
        """Stops counting outages (``relaygate.events``); listening starts with the worker (:meth:`startup`)."""
        """LiteLLM's callbacks, JSON request logs and alerting (``relaygate.observe``), built once per worker."""
        generation = self.watcher.generation if self.watcher is not None else 0
        self.pipeline = Pipeline(Runtime.build(config, self.metrics, generation=generation),
                                 transport if transport is not None else make_transport(config), self.completions)
        self.exporters.attach(self.pipeline.runtime, config)  # cooldown and unpriced-model alerts, regions
        self.pipeline.runtime.ensure_targets = self.exporters.ensure_targets
        if self.exporters.prometheus is not None:  # deployment state, in-flight, limits read at scrape time
            self.exporters.prometheus.attach(lambda: self.router)
            self.exporters.prometheus.admission_source = lambda: self.admission
            self.exporters.prometheus.inflight_source = lambda: self.active
        self.response_cache: Any = (make_cache(config.cache, self.metrics, self.pipeline.transport)
                                    if config.cache is not None else None)
        """The worker's response cache (``relaygate.cache``), kept across reloads that keep its settings."""
        self.pipeline.runtime.cache = self.response_cache
        self.routes = self._route_table()
        self._cors = CorsPolicy(config.server)
        self._access = AccessPolicy(config.general)
        """``allowed_ips`` / ``allowed_routes`` of the current config (``auth.access``), rebuilt on a reload."""
        self.admission: Admission | None = None  # max_in_flight_requests_per_worker (http.admission)
        self.drain = Drain(self, self.runtime_dir)
        self._use_admission(config)
        self.root_path = root_path(os.environ.get("SERVER_ROOT_PATH"))
        """LiteLLM's ``SERVER_ROOT_PATH`` (``/api/v1``): every route is served under it too ("" when unset)."""
        """The CORS answers of the current config (``http.cors``), rebuilt when a reload changes it."""
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.database_url = database_url(config, config_path)
        """The store's database (``relaygate.store.database_url``); opened at startup, None: no store."""
        self.store: Store | None = None
        self.spend_sink: Any = None
        """The worker's ``sinks.spend.SpendSink`` once started (None: no store, or spend tracking off)."""
        self._db_seen: tuple[float, bool] = (-1.0, False)
        self.key_changes: KeyChanges | None = None
        self.shared_keys: SharedKeys | None = None
        """With a store: the change poll and Redis channel keeping key caches true (``auth.changes``)."""
        self.file_config = config
        """The config as its file says, without the models stored in the database (:attr:`db_models`)."""
        self.db_models: list[Deployment] = []
        """Deployments added by ``/model/new`` (``store_model_in_db``), served after the file's."""
        self._db_models_seen: tuple[Any, ...] = ()
        self.db_settings: dict[str, Any] = {}
        """Settings changed through the API (``store.settings``), over the file's (``store_model_in_db``)."""
        self._sync_retrying = False
        """A read of the stored models failed and :meth:`_sync_until_read` is reading again."""
        self.budgets: Any = None
        """The worker's ``budgets.BudgetGuard`` (with a store or ``litellm_settings.max_budget``), else None."""
        self.provider_budgets: Any = None
        """The worker's ``budgets.providers.ProviderBudgets`` once a config had provider or deployment budgets."""
        self._use_provider_budgets(config, self.router)

    # the current snapshot's parts (a request uses ``Exchange.rt``, not these)
    @property
    def runtime(self) -> Runtime:
        return self.pipeline.runtime

    @property
    def config(self) -> Config:
        return self.pipeline.runtime.config

    @property
    def router(self) -> Router:
        return self.pipeline.runtime.router

    @property
    def principals(self) -> Any:
        return self.pipeline.runtime.principals

    @property
    def transport(self) -> Transport:
        return self.pipeline.transport

    @transport.setter
    def transport(self, value: Transport) -> None:
        self.pipeline.transport = value

    def _route_table(self) -> RouteTable:
        t = RouteTable()
        run = self.pipeline.run
        self._frontends = dict(llm_routes())
        for path, fe in self._frontends.items():
            label = path.replace(":path}", "}")  # the template as LiteLLM's route label shows it (no converter)
            t.add("POST", path, lambda sc, rc, sd, p, fe=fe, label=label: run(fe, sc, rc, sd, p, label))
            if isinstance(fe, Responses):  # the Responses API's conversation state is this gateway's
                fe.bind(self)
        add_routes(t, self)
        add_model_info_routes(t, self)
        add_responses_routes(t, self)  # GET / DELETE /v1/responses/{id}, input_items, cancel
        from relaygate.management import register as add_management_routes  # /key/*, /user/*, /team/*

        add_management_routes(t, self)
        add_cache_routes(t, self)  # /cache/ping, /cache/delete, /cache/flushall, /cache/redis/info
        from relaygate.files import add_routes as add_files_routes  # /v1/files, /v1/batches

        self.files = add_files_routes(t, self)
        from relaygate.passthrough import add_routes as add_pass_through_routes  # /anthropic/*, /openai/* ...

        add_pass_through_routes(t, self)
        from relaygate.ui import register as add_ui_routes  # /ui (admin UI, its sign-in), /sso/* (OpenID Connect)

        add_ui_routes(t, self)
        return t

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = self.root_path if self.root_path and scope["path"].startswith(self.root_path) else ""
        inner, path = under_root(scope, root) if root else (scope, scope["path"])
        await realtime.serve(self, inner, receive, send, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if self.root_path and path.startswith(self.root_path):
            scope, path = under_root(scope, self.root_path)
        for name, origin in scope["headers"]:  # CORS: a request without Origin costs this scan, no more
            if name == b"origin":
                server = self.pipeline.runtime.config.server
                if self._cors.source is not server:
                    self._cors = CorsPolicy(server)
                cors_send = await self._cors.apply(scope, origin, send)
                if cors_send is None:  # a preflight, answered
                    return
                send = cors_send
                break
        access = self._access
        if access.source is not self.pipeline.runtime.config.general:  # a reload: its allowed_ips / routes
            access = self._access = AccessPolicy(self.pipeline.runtime.config.general)
        try:
            if access.active and (refused := access.refusal(scope, path)) is not None:
                await self._refuse(method, path, send, refused)
                return
            route = self.routes.match(method, path)
            adm = self.admission
            self.active += 1
            try:
                if adm is None or path in EXEMPT:
                    await route.handler(scope, receive, send, route.params)
                elif adm.enter_now() or await adm.enter():
                    try:
                        await route.handler(scope, receive, send, route.params)
                    finally:
                        adm.leave()
                else:  # LiteLLM's 503 overloaded_error, before anything is read
                    await self._refuse(method, path, send, adm.overloaded())
            finally:
                self.active -= 1
        except GatewayError as exc:
            if exc.status >= 500:
                fail_log.warning("%s %s -> %d %s", method, path, exc.status, exc.message)
            await send_error(send, exc)
        except ClientGone:
            await send_error(send, body_ended_early())
        except Exception:
            log.exception("internal error on %s %s", method, path)
            await send_error(send, GatewayError("Internal server error", status=500))

    async def _refuse(self, method: str, path: str, send: Send, exc: GatewayError) -> None:
        """An ``allowed_ips`` / ``allowed_routes`` refusal, in the route's API shape (one log line)."""
        fail_log.warning("%s %s -> %d %s", method, path[:200], exc.status, exc.message)
        fe = self._frontends.get(path)
        if fe is not None:
            await fe.send_error(send, exc, None)
        else:
            await send_error(send, exc)

    # -- lifespan -----------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self.database_url is not None:
            # off the request path: a worker opens its pool (and applies missing migrations under the
            # upgrade lock, a no-op after `serve` did) before it takes requests
            s = self.config.server
            self.store = await open_store(self.database_url, pool_size=s.database_pool_size,
                                          connect_timeout=s.database_connect_timeout,
                                          pool_timeout=s.database_pool_timeout)
            log.info("worker %d: database %s open", os.getpid(), self.store.url)
            changes = self.key_changes = KeyChanges(
                self.store, invalidate=self._key_changed, clear=self._store_changed,
                customers=lambda ids: self.runtime.set_blocked_customers(ids), redis_url=redis_url_of(self.config))
            if changes.redis_url is not None:  # keys: this worker's cache, then Redis, then the database
                changes.shared = self.shared_keys = SharedKeys(
                    changes.redis_url, self.config.general.user_api_key_cache_ttl, lambda: changes.version)
            self.runtime.use_store(self.store, self.shared_keys)
            await changes.prime()
            self._start_spend_sink(self.store)
            if self.exporters.prometheus is not None:  # LiteLLM's user and team counts
                await self._count_principals()
                self._spawn(self._count_principals_forever())
            start_responses(self)  # stored responses: their writer and retention purge
            self.start_budgets(self.store)
            if self.budgets is not None:
                await self.budgets.refresh_logged()  # whether any budget exists, before serving
            await self._sync_models_logged()
            self._spawn(changes.run())
            if changes.redis_url is not None:
                self._spawn(changes.subscribe())
        if self._stop_outages is None:  # Redis / database outages as relaygate_events_total{event="outage:..."}
            self._stop_outages = events.listen(lambda component, detail: self.metrics.count(f"outage:{component}"))
        self.exporters.start()
        alerter = self.exporters.alerter
        if alerter is not None and "llm_requests_hanging" in alerter.kinds:  # LiteLLM's hanging-request alerts
            from relaygate.pipeline.hanging import watch
            self.pipeline.hangs = {}
            self._spawn(watch(self.pipeline.hangs, alerter, alerter.threshold))
        if self.exporters.pagerduty is not None:  # LiteLLM's PagerDuty incidents for hanging requests
            from relaygate.observe.pagerduty import watch_hanging
            self.pipeline.hangs = {} if self.pipeline.hangs is None else self.pipeline.hangs
            self._spawn(watch_hanging(self.pipeline.hangs, self.exporters.pagerduty))
        start_store_jobs(self, alerter)  # LiteLLM's alert reports, its spend capture-rate check
        self.start_budgets(None)  # the proxy-wide budget without a store
        await self.router.start()
        self.completions.start()
        from relaygate.gateway.health_view import background_settings, run_background

        interval = background_settings(self.config)  # general_settings.background_health_checks (off: None)
        if interval is not None:
            self._spawn(run_background(self, interval))
        from relaygate.cache.memory import sweep_forever

        self._spawn(sweep_forever(lambda: self.response_cache))  # expired cache entries, in slices
        if self.metrics.directory is not None:
            self.metrics.flush()
            self._spawn(self.metrics.flush_forever())
        if self.watcher is not None:
            self.watcher.start()
        if self.drain.enabled:
            self.drain.ensure_watch()
        url = redis_url_of(self.config)
        if url is not None and self.config_path is not None:
            # other gateway hosts sharing this Redis announce their reloads on a channel (redis-py pub/sub)
            self._spawn(subscribe_reloads(url, self._on_change, origin=self._origin()))

    def start_budgets(self, store: Store | None) -> None:
        """Budgets (``relaygate.budgets``): with a store or a proxy-wide ``max_budget``, a guard is the
        ``before_route`` hook and a completion sink; its counters are shared through Redis when configured.
        Without either, nothing is installed and requests pay nothing."""
        g = self.config.general
        proxy_budget = g.max_budget if g.max_budget is not None and g.max_budget > 0 else None  # 0: none (LiteLLM)
        if self.budgets is not None or (store is None and proxy_budget is None and g.max_end_user_budget is None):
            return  # (max_end_user_budget_id needs the store: its budget row is there)
        from relaygate.budgets import BudgetGuard
        from relaygate.budgets.periods import Calendar
        from relaygate.budgets.shared import SharedSpend

        url = redis_url_of(self.config)
        guard = self.budgets = BudgetGuard(store, max_budget=proxy_budget, budget_duration=g.budget_duration,
                                           on_event=self.metrics.count, shared=SharedSpend(url) if url else None,
                                           ttl=g.user_api_key_cache_ttl,
                                           on_active=lambda: self._budget_hook(self.runtime),
                                           spend_logs=not g.disable_spend_logs, end_user_budget=g.max_end_user_budget,
                                           end_user_budget_id=g.max_end_user_budget_id,
                                           status=g.budget_exceeded_status_code,
                                           user_budget_on_team_keys=g.apply_user_budget_to_team_keys,
                                           cal=Calendar(g.timezone, g.budget_reset_time))
        guard.resets, guard.reserving = not g.disable_reset_budget, not g.disable_budget_reservation
        self.completions.on_drop = lambda record: guard.holds.release((record,))
        guard.settle = self.completions.drain_now
        if proxy_budget is not None and g.budget_duration and g.disable_spend_logs and store is not None:
            log.warning("litellm_settings.max_budget with budget_duration and disable_spend_logs: the store keeps "
                        "no spend per period, so each worker counts its own spend since it started")
        self.completions.add_sink(guard)
        if self.spend_sink is not None:  # what the sink wrote is no longer pending in the guard's tallies
            self.spend_sink.on_written = guard.written
        self.exporters.hook_budgets(guard, store)  # budget alerts (Slack, email), Prometheus's budget gauges
        self._budget_hook(self.runtime)
        self._spawn(guard.refresh_forever())
        if store is not None and guard.resets:  # resets of rows nobody used since their period ended (LiteLLM's job)
            from relaygate.budgets import sweep
            self._spawn(sweep.sweep_forever(store, guard.cal, sweep.EVERY))

    def _use_provider_budgets(self, config: Config, router: Router) -> None:
        """Provider and deployment budgets (``budgets.providers``): built with the first config that has one
        (a completion sink from then on, its counters shared through Redis when configured), reconfigured
        on reloads, and given to ``router``; without any, the router's budget check is one ``is None`` test."""
        pb = self.provider_budgets
        has = bool(config.router.provider_budget_config or config.router.tag_budget_config) or any(
            d.max_budget is not None and d.budget_duration for d in config.deployments)
        if pb is None:
            if not has:
                router.budgets = None
                return
            from relaygate.budgets.providers import ProviderBudgets
            from relaygate.budgets.shared import SharedSpend

            url = redis_url_of(config)
            if url is None and config.server.workers != 1:
                log.warning("provider/deployment budgets are counted by each worker alone: set router_settings "
                            "redis_host (or redis_url) to share their spend across workers and instances")
            pb = self.provider_budgets = ProviderBudgets(config, shared=SharedSpend(url) if url else None,
                                                         metrics=self.metrics)
            self.completions.add_sink(pb)
        else:
            pb.configure(config)
        router.budgets = pb if has else None

    def _budget_hook(self, rt: Runtime) -> None:
        """The budget check is one of ``rt``'s ``before_route`` hooks exactly while some budget exists."""
        guard = self.budgets
        if guard is None:
            return
        if rt.tag_mapper is not None and guard.store is not None:  # request_tag_mappings' require_budgeted_tag
            rt.tag_mapper.budgeted = lambda: guard.tags
        hooks = tuple(h for h in rt.before_route if h != guard.check)
        rt.before_route = (*hooks, guard.check) if guard.active else hooks

    def _start_spend_sink(self, store: Store) -> None:
        """Spend rows and counters (``sinks.spend``) off the request path (with ``disable_spend_logs``, the
        counters and entities' ``spend`` only, as LiteLLM); the cleanup tasks when
        ``maximum_spend_logs_retention_period`` or ``maximum_spend_logs_size`` is set. Restart-only settings."""
        g = self.config.general
        if not self.config.server.spend_tracking or g.disable_spend_updates:
            return
        from relaygate.config.litellm_general import metadata_fields
        from relaygate.sinks.spend import BATCH, SpendSink

        sink = self.spend_sink = SpendSink(
            store, store_prompts=g.store_prompts_in_spend_logs, on_event=self.metrics.count,
            log_rows=not g.disable_spend_logs, spacing=max(0.0, float(g.proxy_batch_write_at)),
            owners_ttl=g.user_api_key_cache_ttl, fields=metadata_fields(g.spend_logs_metadata_fields),
            latest_turn=g.spend_logs_prompt_storage == "latest_turn")
        self.completions.add_sink(sink, buffer=max(1, g.spend_logs_buffer), batch_size=BATCH)
        for job in sink.cleanup_jobs(g, self.metrics):  # the age and size rules' tasks, as configured
            self._spawn(job)

    async def shutdown(self) -> None:
        if self.watcher is not None:
            await self.watcher.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.completions.aclose()
        await self.exporters.aclose()
        if self._stop_outages is not None:
            self._stop_outages()
            self._stop_outages = None
        if self.metrics.directory is not None:
            self.metrics.flush()
        await realtime.aclose(self)
        await self.aclose()

    async def db_status(self) -> str:
        """LiteLLM's readiness ``db`` field: ``connected`` when the store answers a ping (one a second at most)."""
        if self.store is None:
            return "Not connected"
        now = asyncio.get_running_loop().time()
        at, ok = self._db_seen
        if now - at >= 1.0:
            ok = await self.store.ping()
            self._db_seen = (now, ok)
        return "connected" if ok else "Not connected"

    async def aclose(self) -> None:
        if self.shared_keys is not None:
            shared, self.shared_keys = self.shared_keys, None
            await shared.aclose()
        if self.store is not None:
            store, self.store = self.store, None
            await store.close()
        await self.completions.aclose()
        if self.provider_budgets is not None:
            await self.provider_budgets.aclose()
        if self.response_cache is not None:
            await self.response_cache.aclose()
        await self.router.aclose()
        await self.transport.aclose()
        await aclose_identity_clients()

    def keys_changed(self, hashes: Iterable[str] | None = None) -> None:
        """A management write changed keys (their SHA-256 ``hashes``) or, with None, anything keys depend on
        (a team, user, organization, customer): forget them in this worker now, and tell every other worker
        and instance through Redis when configured (the store's change poll reaches them within a second
        anyway). Never awaits; the Redis publish runs in the background."""
        hashes = list(hashes) if hashes is not None else None
        if self.budgets is not None and not self.budgets.active:  # maybe the first budget: the check on at once
            self._spawn(self.budgets.refresh_logged())
        if self.key_changes is None:
            if hashes:
                for h in hashes:
                    self.principals.invalidate(h)
            else:
                self.principals.clear()
            return
        self.key_changes.apply(hashes)
        if self.key_changes.redis_url is not None:
            self._spawn(publish_keys(self.key_changes, hashes))

    def _key_changed(self, token_hash: str) -> None:
        """One key changed (Redis said so): forget it in the key cache and in the spend sink's owners."""
        self.principals.invalidate(token_hash)
        if self.spend_sink is not None:
            self.spend_sink.forget_owners(token_hash)

    def _store_changed(self) -> None:
        """The store's change counter moved (or a Redis "everything changed" arrived): forget cached keys
        (and the spend sink's key owners), and read the stored models again when they are served."""
        self.principals.clear()
        if self.spend_sink is not None:
            self.spend_sink.forget_owners()
        if self.budgets is not None:
            self._spawn(self.budgets.refresh_logged())
        if self.exporters.prometheus is not None and self.store is not None:
            self._spawn(self._count_principals())
        if self.store is not None and db_models_enabled(self.file_config):
            self._spawn(self._sync_models_logged())

    async def _count_principals(self) -> None:
        """Read the store's user and team counts and each team's members into LiteLLM's gauges
        (``observe.prometheus``); a failure (the database down) leaves the last counts."""
        prom, store = self.exporters.prometheus, self.store
        if prom is None or store is None:
            return
        try:
            prom.set_counts(*await principal_counts(store))
            prom.set_team_members(await team_member_counts(store, prom.MAX_TEAMS))
        except Exception as exc:
            log.debug("user and team counts not read (%s: %s)", type(exc).__name__, exc)

    async def _count_principals_forever(self, every: float = COUNT_EVERY) -> None:
        while True:
            await asyncio.sleep(every)
            await self._count_principals()

    async def models_changed(self) -> None:
        """A management write changed stored models: serve them on this worker now, and tell the others
        (Redis at once when configured, else the change poll within a second)."""
        await self.sync_models()
        self.keys_changed(None)

    async def sync_models(self) -> bool:
        """Read the stored models and settings (``store.settings``) and, when they changed, swap in a snapshot
        serving the config file's deployments and theirs, with the stored settings over the file's (as a reload
        does: stats and limiter carried over). True when it swapped."""
        rows: tuple[Any, ...] = ()
        deps: list[Deployment] = []
        settings: dict[str, Any] = {}
        async with self._reload_lock:  # read under it: a slower read begun earlier never swaps in older rows
            if self.store is not None and db_models_enabled(self.file_config):
                rows, deps = await read_db_models(self.store, sealer_for(self.file_config))
                settings = {k: v for k, v in (await read_settings(self.store)).items() if k in STORED_NAMES}
            if rows == self._db_models_seen and settings == self.db_settings:
                return False
            before = self.db_models, self._db_models_seen, self.db_settings
            self.db_models, self._db_models_seen, self.db_settings = deps, rows, settings
            try:
                await self.swap(self.file_config, self.runtime.generation, "database models and settings")
            except BaseException:  # not served: the next read must not take these rows for the served ones
                self.db_models, self._db_models_seen, self.db_settings = before
                raise
        return True

    async def _sync_models_logged(self) -> None:
        """:meth:`sync_models`; when it fails (the database away, a locked SQLite file) the models served stay
        as they were, one warning says so, and :meth:`_sync_until_read` reads again until a read succeeds: a
        change is never left unserved on this worker because its one read failed. Never raises."""
        try:
            await self.sync_models()
        except Exception as exc:
            if not self._sync_retrying:
                self._sync_retrying = True
                log.warning("database models could not be read or served (retrying until they are): %s: %s",
                            type(exc).__name__, exc)
                self._spawn(self._sync_until_read())

    async def _sync_until_read(self, first: float = 1.0, most: float = 30.0) -> None:
        delay = first
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self.sync_models()
                except Exception as exc:
                    log.debug("database models still not read: %s: %s", type(exc).__name__, exc)
                    delay = min(delay * 2, most)
                    continue
                log.info("database models read again")
                return
        finally:
            self._sync_retrying = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reload -------------------------------------------------------------------------------------

    def _make_watcher(self, config: Config) -> Watcher | None:
        """The reload watcher: with the runtime directory ``serve`` shares or a file to watch, else None."""
        s = config.server
        if self.runtime_dir is None and not (s.watch_config and self.config_path):
            return None
        return Watcher(self.runtime_dir, self.config_path, self._on_change, interval=s.reload_poll_interval,
                       watch_file=s.watch_config)

    async def _on_change(self, reason: str) -> None:
        try:
            await self.reload(reason)
        except Exception as exc:
            log.error("config reload (%s) refused, still serving generation %d: %s", reason,
                      self.runtime.generation, exc)

    async def reload(self, reason: str, *, announce: bool = False) -> Runtime:
        """Load and validate the config file, then swap a new snapshot in; raises ``ConfigError`` (the old
        snapshot keeps serving) when the file is invalid. ``announce``: tell the other workers (bump the
        shared generation, and other hosts through Redis).

        The watcher is told the shared generation this reload covers (the file is read after it), never a
        number of this worker's own: a reload only this worker saw (``watch_config``, Redis) moves the
        snapshot's generation on, and a later bump of the shared one is still applied."""
        if self.config_path is None:
            raise NothingToReload("the gateway runs on its embedded default config: there is no file "
                                         "to reload (start it with --config)")
        async with self._reload_lock:
            config = accept(self.config_path, self.runtime_dir)
            shared = bump(self.runtime_dir) if announce and self.runtime_dir is not None else current(self.runtime_dir)
            if self.watcher is not None:
                self.watcher.seen(shared)
            generation = max(shared, self.runtime.generation + 1)
            rt = await self.swap(config, generation, reason)
        url = redis_url_of(config)
        if announce and url is not None:
            self._spawn(publish_reload_to(url, generation, self._origin()))
        return rt

    def _origin(self) -> str:
        """This host's id on the reload channel: its own workers follow the generation file instead."""
        return f"{socket.gethostname()}:{self.runtime_dir or os.getpid()}"

    def _use_admission(self, config: Config) -> None:
        """The worker's admission bound for ``config`` (the same one, its counts kept, across reloads)."""
        g = config.general
        limit, queued, wait = (g.max_in_flight_requests_per_worker, g.max_queued_requests_per_worker,
                               g.admission_queue_timeout_seconds)
        if limit is None:  # (requests admitted before leave the old object)
            self.admission = None
        elif self.admission is None:
            self.admission = Admission(limit, queued, wait)
        else:
            self.admission.configure(limit, queued, wait)

    def _use_cache(self, config: Config, new: Runtime) -> None:
        """The reloaded snapshot's cache: the same one (entries kept) when its settings did not change."""
        cache = self.response_cache
        if config.cache is None:
            self.response_cache = None
        elif cache is None or cache.settings != config.cache:
            self.response_cache = make_cache(config.cache, self.metrics, self.pipeline.transport)
        if cache is not None and cache is not self.response_cache:
            self._spawn(cache.aclose())
        new.cache = self.response_cache

    async def swap(self, config: Config, generation: int, reason: str = "reload") -> Runtime:
        """Build the snapshot of ``config`` from the current one and make it current; in-flight requests
        finish on theirs. A limiter the new router does not keep is closed once old requests had time to end."""
        old = self.pipeline.runtime
        changed = [k for k in RESTART_ONLY if getattr(old.config.server, k) != getattr(config.server, k)]
        if changed:
            log.warning("config reload: server.%s changed; this takes effect after a restart",
                        ", server.".join(changed))
        self.file_config = config
        config = with_stored_settings(with_db_models(with_stored_general(config, self.db_settings), self.db_models),
                                      self.db_settings)
        new = Runtime.build(config, self.metrics, previous=old, generation=generation, store=self.store,
                            shared=self.shared_keys)
        if self.key_changes is not None:
            new.set_blocked_customers(self.key_changes.blocked)
        self._budget_hook(new)
        self.exporters.attach(new, config)
        new.ensure_targets = self.exporters.ensure_targets
        if self.exporters.prometheus is not None:
            self.exporters.prometheus.set_config(config)
        if config.observe != self.exporters.settings:
            log.warning("config reload: callbacks / alerting changed; this takes effect after a restart")
        self._use_cache(config, new)
        self._use_admission(config)
        self._use_provider_budgets(config, new.router)
        await new.router.start()
        self.metrics.set_labels(**labels_of(config))
        self.pipeline.runtime = new
        if new.router.retired_limiter is not None:
            self._spawn(close_later(new.router, old.config.server.request_timeout))
        log.info("config reloaded (%s): generation %d, %d model groups, %d deployments, %d keys", reason,
                 generation, len(new.router.groups), len(config.deployments), len(config.keys))
        return new
