"""Alerting (LiteLLM's ``general_settings.alerting``): Slack-compatible and generic webhooks, off the request path.

What it owns: the IO half of alerting. :func:`make_alerter` reads the settings and the environment
(``SLACK_WEBHOOK_URL``, else ``ALERTING_WEBHOOK_URL``; ``WEBHOOK_URL`` for ``alerting: ["webhook"]``;
``PROXY_BASE_URL``) and builds one :class:`Alerter` per worker. What an alert says and when it may be sent
again is decided in :mod:`relaygate.observe.alert_rules` (sans-IO); this module queues and posts.

The event sources call its sync methods: :meth:`Alerter.budget_crossed` (the budget checks),
:meth:`Alerter.deployment_cooled_down` (the router), :meth:`Alerter.outage` (the store and the Redis
client) and :meth:`Alerter.handle` (a sync sink of the completion queue: ``llm_too_slow`` for answers
slower than ``alerting_threshold``, ``llm_exceptions`` for requests that failed upstream).

Invariants:

- **Never in the way.** Every public method is sync, returns at once and never raises: it filters by
  ``alert_types``, asks the gate, formats only what will be sent and appends bytes to a queue. A bug in
  here is logged (at most once a minute), never raised into a request.
- **Bounded, per destination.** Each webhook URL has its own queue (``queue_size`` payloads, the oldest
  dropped past it) and its own task, so a hanging Slack channel delays neither the others nor anything
  else. Posts use one ``httpx.AsyncClient``, a hard ``timeout`` per attempt and ``retries`` retries with
  backoff on connection errors, timeouts, 429 and 5xx. An alert lost (queue full, webhook still failing
  after its retries, or still queued at shutdown) is counted through ``on_event("alert_dropped", n)`` and
  logged: the first at once, then at most one line a minute with the count.
- **Rate limited** (see :class:`~relaygate.observe.alert_rules.Gate`): ``llm_too_slow`` and
  ``llm_exceptions`` at most one per model group per ``window`` (60 s), ``cooldown_deployment`` one per
  deployment per window, ``db_exceptions`` one per component per ``alerting_args.outage_alert_ttl``
  (60 s), each followed by one ``[Num Alerts: n]`` summary when its window kept occurrences back;
  ``budget_alerts`` one per entity and event per ``alerting_args.budget_alert_ttl`` (24 h; at most
  ``budget_keys`` entities remembered, past that a new entity's alert is counted as dropped, so a flood
  of entities over budget can never become one alert per request);
  ``outage_alerts`` at most a minor and a major one per deployment per ``outage_alert_ttl`` (its failed
  attempts counted, a retry's or fallback's answer notwithstanding), ``region_outage_alerts`` likewise per
  provider region per ``region_outage_alert_ttl`` once several of its deployments failed. Per model
  group rather than per request or per deployment: a slow or failing provider makes every request of the
  group alert, and one line a minute with the count says it; the deployment and API base of the latest
  occurrence are in the text.
- **LiteLLM's shapes.** Slack mode posts ``{"text": ...}`` laid out as LiteLLM's ``send_alert`` does, to
  ``alert_to_webhook_url[kind]`` (one URL or a list) else the default URL. Webhook mode posts LiteLLM's
  ``WebhookEvent`` JSON, for budget alerts only (as LiteLLM does).
- **Lifecycle.** :meth:`Alerter.start` (inside the running loop; the first alert raised inside a running
  loop starts an alerter nobody started) starts the tasks; :meth:`Alerter.aclose` sends the summaries
  owed, lets the queues drain within ``timeout``, then cancels and counts what is left. Alerts raised
  before ``start`` outside a loop wait in the (bounded) queues; after ``aclose`` they are dropped.

Single-threaded: every method is called on the worker's event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.urls import public_base
from relaygate.observe.alert_rules import (
    ALL_ALERT_TYPES,
    DEFAULT_ALERT_TYPES,
    SENT_KINDS,
    AlertArgs,
    Gate,
    OutageCounter,
    Summary,
    budget_event,
    budget_message,
    component_outage_message,
    cooldown_message,
    deployment_outage_message,
    deployment_region,
    event_group,
    exception_message,
    hanging_message,
    management_message,
    model_added_message,
    outage_message,
    slack_text,
    slow_message,
    unpriced_message,
    webhook_event,
)
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DROPPED_EVENT", "Alerter", "make_alerter"]

log = logging.getLogger("relaygate.alerting")

OnEvent = Callable[[str, int], None]
DROPPED_EVENT = "alert_dropped"
LOG_INTERVAL = 60.0
_HEADERS = {"content-type": "application/json"}
_FAILED = (Outcome.ERROR, Outcome.STREAM_BROKEN)
_encode = msgspec.json.Encoder().encode
TEST_MESSAGES = {"llm_exceptions": "LLM Exception test alert", "llm_too_slow": "LLM Too Slow test alert",
                 "llm_requests_hanging": "LLM Requests Hanging test alert", "budget_alerts": "Budget Alert test alert",
                 "db_exceptions": "DB Exception test alert", "outage_alerts": "Outage Alert Exception test alert",
                 "daily_reports": "Daily Reports test alert"}
"""LiteLLM's ``/health/services?service=slack`` text per alert kind (others: the budget alert's)."""


def _label(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL: what logs may show (a Slack URL's path is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class _Lane:
    """One webhook URL: its bounded queue of payloads and the task that posts them in order."""

    __slots__ = ("url", "label", "queue", "task", "wake", "sending")

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = _label(url)
        self.queue: deque[bytes] = deque()
        self.task: asyncio.Task[None] | None = None
        self.wake: asyncio.Event | None = None
        self.sending = 0


class Alerter:
    """One worker's alerting: sync, never-blocking triggers in; rate-limited webhook posts out (module essay)."""

    name = "alerting"

    def __init__(self, *, slack_routes: Mapping[str, Sequence[str]] | None = None, webhook_url: str | None = None,
                 alert_types: Iterable[str] = DEFAULT_ALERT_TYPES, threshold: float = 300.0,
                 args: AlertArgs | None = None, on_event: OnEvent | None = None, proxy_base_url: str | None = None,
                 queue_size: int = 1000, timeout: float = 5.0, retries: int = 2, backoff: float = 0.5,
                 window: float = 60.0, tick: float = 1.0, max_keys: int = 10_000, budget_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.args = args or AlertArgs()
        self.threshold = threshold
        self.on_event = on_event
        self.proxy_base_url = proxy_base_url
        self.queue_size = queue_size
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.window = window
        self.tick = tick
        self._clock = clock
        self._wall = wall
        self._transport = transport
        self._gate = Gate(max_keys)
        self._budgets = Gate(budget_keys, evict=False)
        types = frozenset(alert_types)
        self._lanes: dict[str, _Lane] = {}
        self._routes: dict[str, tuple[_Lane, ...]] = {}
        for kind, urls in (slack_routes or {}).items():
            if kind in types and urls:
                self._routes[kind] = tuple(self._lane(u) for u in dict.fromkeys(urls))
        self._webhook = self._lane(webhook_url) if webhook_url and "budget_alerts" in types else None
        self._budget_on = "budget_alerts" in self._routes or self._webhook is not None
        self._slow_on = "llm_too_slow" in self._routes
        self._exc_on = "llm_exceptions" in self._routes
        self._cool_on = "cooldown_deployment" in self._routes
        self._db_on = "db_exceptions" in self._routes
        self._outage_on = "outage_alerts" in self._routes
        self._outages = OutageCounter(self.args.outage_alert_ttl, self.args.minor_outage_alert_threshold,
                                      self.args.major_outage_alert_threshold, max_keys)
        self._region_on = "region_outage_alerts" in self._routes
        self._region_outages = OutageCounter(self.args.region_outage_alert_ttl, self.args.minor_outage_alert_threshold,
                                             self.args.major_outage_alert_threshold, max_keys, several=True)
        self.regions: dict[str, tuple[str, str]] = {}
        """Deployment id -> (provider, region) for ``region_outage_alerts`` (:meth:`know_deployments`)."""
        self.deployments: dict[str, tuple[str, str, str, str]] = {}
        """Deployment id -> (model group, upstream model, provider, api_base): what an outage alert names."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self.sent = 0
        self.dropped = 0
        self._unlogged = 0
        self._drop_logged_at = -1e18
        self._drop_reason = ""
        self._bug_logged_at = -1e18

    def _lane(self, url: str) -> _Lane:
        lane = self._lanes.get(url)
        if lane is None:
            lane = self._lanes[url] = _Lane(url)
        return lane

    @property
    def kinds(self) -> frozenset[str]:
        """The alert kinds this alerter can send (enabled and with a destination)."""
        return frozenset(self._routes) | ({"budget_alerts"} if self._webhook is not None else frozenset())

    def stats(self) -> dict[str, int]:
        """Counters for logs and tests."""
        return {"sent": self.sent, "dropped": self.dropped,
                "suppressed": self._gate.suppressed + self._budgets.suppressed,
                "queued": sum(len(lane.queue) for lane in self._lanes.values()),
                "keys": len(self._gate) + len(self._budgets)}

    # -- triggers (sync, never raise) ---------------------------------------------------------------

    def budget_crossed(self, entity_type: str, entity_id: str, spend: float, max_budget: float, *,
                       soft: bool = False, alias: str | None = None) -> None:
        """An entity's spend reached ``max_budget`` (its soft budget when ``soft``); with a max budget, a
        spend within 15% (then 5%) of it is LiteLLM's ``threshold_crossed``. ``entity_type``: ``key``
        (``entity_id`` the key's hash, ``alias`` its alias), ``user``, ``team`` (``alias`` the team's
        alias), ``organization``, ``end_user`` / ``customer``, ``proxy``. One alert per entity and event
        per ``budget_alert_ttl``."""
        if not self._budget_on:
            return
        try:
            decided = budget_event(spend, max_budget, soft)
            if decided is None:
                return
            event, wording = decided
            group = event_group(entity_type)
            gate = self._budgets
            refused = gate.refused
            if not gate.admit((event, group, entity_id), self.args.budget_alert_ttl, self._clock(), False):
                if gate.refused != refused:
                    self._drop(1, f"more than {gate.max_keys} budget alerts within budget_alert_ttl")
                return
            event_message, text = budget_message(group, entity_id, spend, max_budget, soft, alias, wording)
            lanes = self._routes.get("budget_alerts")
            if lanes:
                self._put(self._slack_payload("High", text), lanes)
            if self._webhook is not None:
                body = webhook_event(group, entity_id, spend, max_budget, soft, alias, event, event_message)
                self._put(_encode(body), (self._webhook,))
        except Exception:
            self._bug("budget_crossed")

    def deployment_cooled_down(self, model_group: str, deployment_id: str, provider: str, api_base: str,
                               reason: str, cooldown_seconds: float) -> None:
        """The router put a deployment into cooldown. One alert per deployment per window, then a summary."""
        if not self._cool_on:
            return
        try:
            build = functools.partial(cooldown_message, model_group, deployment_id, provider, api_base, reason,
                                      cooldown_seconds)
            self._admit("cooldown_deployment", ("cooldown_deployment", deployment_id), self.window, build)
        except Exception:
            self._bug("deployment_cooled_down")

    def outage(self, component: str, detail: str) -> None:
        """The database or Redis (``component``) failed a call (``detail``: the error, redacted here).
        LiteLLM's ``db_exceptions``; one alert per component per ``outage_alert_ttl``, then a summary."""
        if not self._db_on:
            return
        try:
            build = functools.partial(component_outage_message, component, detail)
            self._admit("db_exceptions", ("db_exceptions", component), self.args.outage_alert_ttl, build)
        except Exception:
            self._bug("outage")

    def request_hanging(self, model_group: str, model: str, call_id: str, elapsed: float, key_alias: str | None,
                        team: str | None) -> None:
        """A request still unanswered past ``alerting_threshold`` (``pipeline.hanging``): LiteLLM's
        ``llm_requests_hanging``; one alert per model group per window, then a summary."""
        if "llm_requests_hanging" not in self._routes:
            return
        try:
            build = functools.partial(hanging_message, model_group, model, call_id, elapsed, self.threshold,
                                      key_alias, team)
            self._admit("llm_requests_hanging", ("llm_requests_hanging", model_group), self.window, build)
        except Exception:
            self._bug("request_hanging")

    def report(self, text: str, kind: str = "spend_reports", level: str = "Low") -> None:
        """A report (``observe.spend_reports``: LiteLLM's ``spend_reports`` and ``daily_reports``; the spend capture
        rate's ``failed_tracking_spend`` at High), sent as it is."""
        lanes = self._routes.get(kind)
        if lanes:
            self._put(self._slack_payload(level, text), lanes)

    def management_event(self, kind: str, user_id: str | None, role: str | None, key_alias: str | None,
                         args: Mapping[str, Any]) -> None:
        """A management API write succeeded (``kind``: one of ``alert_rules.MANAGEMENT_KINDS``' values) by the
        caller named; ``args``: the request's fields, secrets already masked. Every event is sent (an audit
        trail is not summarised), bounded by the queue."""
        lanes = self._routes.get(kind)
        if not lanes:
            return
        try:
            self._put(self._slack_payload("High", management_message(kind, user_id, role, key_alias, args)), lanes)
        except Exception:
            self._bug("management_event")

    def unpriced(self, dep: Any) -> None:
        """A request of ``dep`` was priced 0, its model having no price: LiteLLM's ``failed_tracking_spend``, once
        per model per ``budget_alert_ttl`` (as LiteLLM keys it), and no summary."""
        lanes = self._routes.get("failed_tracking_spend")
        if not lanes:
            return
        try:
            model = f"{dep.provider}/{dep.upstream_model}"
            if self._budgets.admit(("failed_tracking_spend", model), self.args.budget_alert_ttl, self._clock(),
                                   False, None):
                self._put(self._slack_payload("High", unpriced_message(model, dep.model_name)), lanes)
        except Exception:
            self._bug("unpriced")

    def model_added(self, model_name: str, base_model: str | None, info: Mapping[str, Any]) -> None:
        """A model was added (``/model/new``): LiteLLM's ``new_model_added``, each one sent."""
        lanes = self._routes.get("new_model_added")
        if not lanes:
            return
        try:
            message = model_added_message(model_name, base_model, info, self.proxy_base_url)
            self._put(self._slack_payload("Low", message), lanes)
        except Exception:
            self._bug("model_added")

    # -- tests (LiteLLM's /health/services) ---------------------------------------------------------

    @property
    def slack_kinds(self) -> list[str]:
        """The alert kinds with a Slack destination, sorted (what a Slack test alerts)."""
        return sorted(self._routes)

    def test_slack(self) -> list[str]:
        """One Low test message to each alert kind's Slack destination, in LiteLLM's words, past the rate
        gates (an operator asked); the kinds tested, none when Slack alerting is off."""
        for kind in self.slack_kinds:
            self._put(self._slack_payload("Low", TEST_MESSAGES.get(kind, "Budget Alert test alert")),
                      self._routes[kind])
        return self.slack_kinds

    def test_webhook(self, token: str | None, key_alias: str | None) -> bool:
        """LiteLLM's webhook test: a ``budget_crossed`` event for the caller's key (spend 1 of a budget of 0),
        past the budget gate; ``False`` when webhook alerting is off."""
        if self._webhook is None:
            return False
        event_message, _ = budget_message("key", token or "", 1.0, 0.0, False, key_alias, "Budget Crossed")
        body = webhook_event("key", token or "", 1.0, 0.0, False, key_alias, "budget_crossed", event_message)
        self._put(_encode(body), (self._webhook,))
        return True

    def know_deployments(self, deployments: Iterable[Any], env: Mapping[str, str]) -> None:
        """Where each deployment runs (``alert_rules.deployment_region``), for ``region_outage_alerts``; called
        at start and on every config reload."""
        regions, known = {}, {}
        for d in deployments:
            known[d.id] = (d.model_name, d.upstream_model, d.provider, public_base(d.api_base) or "")
            region = deployment_region(d.provider, d.extra, env)
            if region is not None:
                regions[d.id] = (d.provider, region)
        self.regions, self.deployments = regions, known

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """A sync sink of the completion queue: ``llm_too_slow`` for answers slower than the threshold,
        ``llm_exceptions`` for requests that failed upstream (status >= 500 or 408, or a broken stream),
        ``outage_alerts`` when one deployment's such failures reach the minor / major thresholds,
        ``region_outage_alerts`` when those of several deployments in one provider region do."""
        slow, exc, outage, region = self._slow_on, self._exc_on, self._outage_on, self._region_on
        if not (slow or exc or outage or region):
            return
        threshold = self.threshold
        try:
            for r in batch:
                if r.outcome is Outcome.OK:
                    if slow and r.latency > threshold:
                        self._admit("llm_too_slow", ("llm_too_slow", r.model_group), self.window,
                                    functools.partial(slow_message, r, threshold))
                elif exc and r.outcome in _FAILED and (r.status >= 500 or r.status == 408):
                    self._admit("llm_exceptions", ("llm_exceptions", r.model_group), self.window,
                                functools.partial(exception_message, r))
                if (outage or region) and (r.failed_attempts or r.outcome is Outcome.STREAM_BROKEN):
                    self._outage(r, outage, region)
        except Exception:
            self._bug("handle")

    def _outage(self, r: CompletionRecord, outage: bool, region: bool) -> None:
        """Count a record's upstream failures (408 and 5xx) per deployment and per provider region: every
        failed attempt (a retry or fallback may still have answered the request), and the deployment whose
        stream broke after its first frame."""
        failures = [(dep, status) for dep, status, _ in r.failed_attempts if status >= 500 or status == 408]
        if r.outcome is Outcome.STREAM_BROKEN and r.deployment_id:
            failures.append((r.deployment_id, r.status if r.status >= 500 or r.status == 408 else 502))
        now = self._clock()
        for dep, status in failures:
            if outage:
                found = self._outages.failed(dep, status, now)
                if found is not None:
                    level, message = deployment_outage_message(r, dep, self.deployments.get(dep), *found)
                    self._put(self._slack_payload(level, message), self._routes["outage_alerts"])
            where = self.regions.get(dep) if region else None
            if where is not None:
                found = self._region_outages.failed("\0".join(where), status, now, dep)
                if found is not None:
                    level, message = outage_message(*found, ("Region Name", where[1]), ("Provider", where[0]))
                    self._put(self._slack_payload(level, message), self._routes["region_outage_alerts"])

    # -- queueing -----------------------------------------------------------------------------------

    def _admit(self, kind: str, key: tuple[str, ...], window: float,
               build: Callable[[], tuple[str, str]]) -> None:
        if self._gate.admit(key, window, self._clock(), True, build):
            level, message = build()
            self._put(self._slack_payload(level, message), self._routes[kind])

    def _slack_payload(self, level: str, message: str, count: int = 1) -> bytes:
        text = slack_text(level, message, self._wall(), self.proxy_base_url, count)
        if self.args.log_to_console:
            log.warning("alert: %s", text)
        return _encode({"text": text})

    def _summarize(self, summary: Summary) -> None:
        lanes = self._routes.get(summary.kind)
        if lanes:
            level, message = summary.build()
            self._put(self._slack_payload(level, message, summary.count), lanes)

    def _put(self, payload: bytes, lanes: Iterable[_Lane]) -> None:
        if self._closed:
            self._drop(sum(1 for _ in lanes), "alert raised after shutdown")
            return
        if self._loop is None or self._loop.is_closed():
            self._bind()
        for lane in lanes:
            queue = lane.queue
            if len(queue) >= self.queue_size:
                queue.popleft()
                self._drop(1, f"queue for {lane.label} full")
            queue.append(payload)
            if lane.wake is not None:
                lane.wake.set()

    def _drop(self, n: int, reason: str) -> None:
        if n <= 0:
            return
        self.dropped += n
        self._unlogged += n
        self._drop_reason = reason
        if self.on_event is not None:
            self.on_event(DROPPED_EVENT, n)
        self._log_drops(time.monotonic())

    def _log_drops(self, now: float, force: bool = False) -> None:
        if self._unlogged and (force or now - self._drop_logged_at >= LOG_INTERVAL):
            log.warning("alerting: %d alert(s) dropped since the last report (%d in total; latest: %s)",
                        self._unlogged, self.dropped, self._drop_reason)
            self._unlogged = 0
            self._drop_logged_at = now

    def _bug(self, where: str) -> None:
        now = time.monotonic()
        if now - self._bug_logged_at >= LOG_INTERVAL:
            self._bug_logged_at = now
            log.exception("alerting: %s failed (a bug; the caller went on)", where)

    # -- IO -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running loop and start one task per webhook URL plus the summary ticker. Idempotent."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("Alerter is closed")
        if self._loop is not None:
            return
        self._loop = loop
        self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False,
                                         timeout=httpx.Timeout(self.timeout))
        for lane in self._lanes.values():
            lane.wake = asyncio.Event()
            if lane.queue:
                lane.wake.set()
            lane.task = loop.create_task(self._run(lane), name=f"relaygate-alerts-{lane.label}")
        self._ticker = loop.create_task(self._tick_forever(), name="relaygate-alerts-ticker")

    def _bind(self) -> None:
        """Start on the running loop, if there is one (an alerter nobody started, or whose loop ended: an app
        driven by several ``asyncio.run`` calls); outside a loop, alerts wait in the bounded queues."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._loop is not None:  # its loop is closed: its tasks, events and client are gone with it
            self._loop = self._client = self._ticker = None
            for lane in self._lanes.values():
                lane.task = lane.wake = None
                lane.sending = 0
        self.start()

    async def _tick_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.tick)
                try:
                    for summary in self._gate.due(self._clock()):
                        self._summarize(summary)
                    self._log_drops(time.monotonic())
                except Exception:
                    self._bug("summaries")
        finally:
            # cancelled without aclose (its loop is ending): close the client while the loop still runs
            client = self._client
            if not self._closed and client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _run(self, lane: _Lane) -> None:
        assert lane.wake is not None
        queue, wake = lane.queue, lane.wake
        while True:
            if not queue:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            payload = queue.popleft()
            lane.sending = 1
            try:
                await self._post(lane, payload)
            except Exception:
                self._drop(1, f"post to {lane.label} failed")
                self._bug("post")
            lane.sending = 0

    async def _post(self, lane: _Lane, payload: bytes) -> None:
        assert self._client is not None
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(self.timeout):
                    resp = await self._client.post(lane.url, content=payload, headers=_HEADERS)
            except (httpx.HTTPError, TimeoutError) as exc:
                why = "timed out" if isinstance(exc, TimeoutError | httpx.TimeoutException) else type(exc).__name__
                continue
            if resp.status_code < 300:
                self.sent += 1
                return
            why = f"HTTP {resp.status_code}"
            if resp.status_code < 500 and resp.status_code != 429:
                break
        self._drop(1, f"webhook {lane.label} failed ({why})")

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send the summaries owed, let the queues drain within ``timeout``, then stop and count what is left."""
        if self._closed or self._closing:
            return
        if self._loop is None or self._loop.is_closed():
            self._bind()  # alerts raised before anything started are still sent
        self._closing = True
        try:
            for summary in self._gate.flush():
                self._summarize(summary)
        except Exception:
            self._bug("summaries")
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        lanes = list(self._lanes.values())
        tasks = [lane.task for lane in lanes if lane.task is not None]
        for lane in lanes:
            if lane.wake is not None:
                lane.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
        left = sum(len(lane.queue) + lane.sending for lane in lanes)
        for lane in lanes:
            lane.queue.clear()
            lane.sending = 0
        self._drop(left, "still queued at shutdown")
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), 1.0)
        self._log_drops(time.monotonic(), force=True)


# ---------------------------------------------------------------------------------------------- settings


def _urls(value: Any, env: Mapping[str, str], source: str, field: str) -> tuple[str, ...]:
    """One URL or a list of them (``os.environ/NAME`` resolved from ``env``), each checked http(s)."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]" if isinstance(value, list | tuple) else field
        if isinstance(item, str) and item.startswith("os.environ/"):
            name = item[len("os.environ/"):]
            if not env.get(name):
                raise ConfigError(source, where, f"environment variable {name} is not set")
            item = env[name]
        if not isinstance(item, str):
            raise ConfigError(source, where, "expected a webhook URL (a string)")
        parts = urlsplit(item.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(source, where, "is not an http(s) URL")  # the value itself is a secret
        out.append(item.strip())
    return tuple(out)


def make_alerter(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                 source: str = "config", **options: Any) -> Alerter | None:
    """The worker's :class:`Alerter`, or ``None`` when ``general_settings.alerting`` is empty (or names only
    channels relaygate does not run, which are warned about). ``options`` go to :class:`Alerter` (tests).

    Raises :class:`ConfigError` when slack alerting has no webhook URL at all (``SLACK_WEBHOOK_URL``,
    ``ALERTING_WEBHOOK_URL``, ``alert_to_webhook_url``), webhook alerting has no ``WEBHOOK_URL``, a URL is
    not http(s), or ``alerting_args`` / ``alerting_threshold`` hold a bad value."""
    channels = [c.lower() for c in settings.alerting]
    if not channels:
        return None
    other = sorted(set(channels) - {"slack", "webhook", "pagerduty", "email"})  # ``observe.pagerduty``, ``.mail``
    if other:
        log.warning("general_settings.alerting: %s not supported by relaygate (ignored)", ", ".join(other))
    slack, webhook = "slack" in channels, "webhook" in channels
    if not (slack or webhook):
        return None
    try:
        raw_args = dict(settings.alerting_args)
        if "daily_report_frequency" not in raw_args and env.get("SLACK_DAILY_REPORT_FREQUENCY", "").strip():
            raw_args["daily_report_frequency"] = float(env["SLACK_DAILY_REPORT_FREQUENCY"])  # LiteLLM's variable
        args = AlertArgs.parse(raw_args)
    except ValueError as exc:
        raise ConfigError(source, "general_settings.alerting_args", str(exc)) from None
    threshold = settings.alerting_threshold
    if not threshold >= 0:
        raise ConfigError(source, "general_settings.alerting_threshold", "expected a number of seconds >= 0")
    types = DEFAULT_ALERT_TYPES if settings.alert_types is None else settings.alert_types
    unknown = sorted((set(types) | set(settings.alert_to_webhook_url)) - ALL_ALERT_TYPES)
    if unknown:
        log.warning("general_settings.alert_types: unknown alert type(s) %s (ignored)", ", ".join(unknown))
    routes: dict[str, tuple[str, ...]] = {}
    if slack:
        mapping = {str(k): _urls(v, env, source, f"general_settings.alert_to_webhook_url.{k}")
                   for k, v in settings.alert_to_webhook_url.items() if v}
        raw = env.get("SLACK_WEBHOOK_URL") or env.get("ALERTING_WEBHOOK_URL")
        default = _urls(raw, env, source, "SLACK_WEBHOOK_URL") if raw else ()
        if not default and not mapping:
            raise ConfigError(source, "general_settings.alerting",
                              "slack alerting needs a webhook URL: set SLACK_WEBHOOK_URL (or ALERTING_WEBHOOK_URL) "
                              "in the environment, or general_settings.alert_to_webhook_url")
        for kind in SENT_KINDS & set(types):
            urls = mapping.get(kind) or default
            if urls:
                routes[kind] = urls
            else:
                log.warning("alerting: no webhook URL for %s alerts (not in alert_to_webhook_url and "
                            "SLACK_WEBHOOK_URL is not set): they are not sent", kind)
    webhook_url = None
    if webhook:
        raw = env.get("WEBHOOK_URL")
        if not raw:
            raise ConfigError(source, "general_settings.alerting",
                              "webhook alerting needs the WEBHOOK_URL environment variable")
        webhook_url = _urls(raw, env, source, "WEBHOOK_URL")[0]
    return Alerter(slack_routes=routes, webhook_url=webhook_url, alert_types=types, threshold=threshold, args=args,
                   on_event=on_event, proxy_base_url=env.get("PROXY_BASE_URL") or None, **options)
