"""Observability: LiteLLM's callbacks as completion sinks, JSON request logs, alerting.

What it owns: turning a config's :class:`~relaygate.config.observe.ObserveSettings` into running exporters
on one worker (:func:`install`), and what the request path records for them (``capture``, ``detail``).
Every exporter is a sink of the worker's :class:`~relaygate.sinks.CompletionQueue`: an async sink
(Langfuse, OpenTelemetry, generic webhooks, Datadog) runs in its own task behind its own bounded buffer,
a sync sink (Prometheus families, JSON request lines, alert triggers) runs in the queue's drain. Nothing
on the request path awaits any of them; an exporter that is down or slow fills and drops its own buffer
(counted as ``sink_dropped:<name>`` and by the exporter's own ``<name>_dropped`` events) and delays
nobody.

Module map: ``detail`` (the per-request payload), ``capture`` (the request-path half), ``tracecontext``
(W3C ids), ``langfuse``, ``otel``, ``langfuse_otel``, ``arize`` (and Phoenix), ``prometheus``, ``standard`` (LiteLLM's
StandardLoggingPayload), ``generic_api``, ``datadog``, ``s3``, ``langsmith``, ``jsonlog``, ``alerting``. Each
exporter module is imported only when its callback is configured, so an unused exporter costs neither import
time nor memory. LiteLLM's service families (``service_callback: ["prometheus_system"]``) are
``relaygate.service_metrics``, at the package's root because what they time (Redis connections, the store)
lies below this package.

Exporters are built once per worker from the config it started with: a reload that changes the callback
settings logs that a restart applies them (LiteLLM needs a restart for any change).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from relaygate.config.observe import ObserveSettings

__all__ = ["Exporters", "check", "install"]

log = logging.getLogger("relaygate")

KEYS_ONLY = ("langfuse", "otel", "opentelemetry", "langsmith", "langfuse_otel", "arize", "arize_phoenix", "posthog",
             "gcs_bucket", "braintrust")
"""Callbacks a key's or team's ``metadata.logging`` entry starts when the config names none of them
(:meth:`Exporters.ensure_targets`), as LiteLLM adds a key's callbacks to its requests."""
ASYNC_EXPORTERS = ("langfuse", "otel", "langfuse_otel", "generic_api", "datadog", "s3", "langsmith", "arize",
                   "arize_phoenix", "logfire", "signoz", "datadog_llm_observability", "posthog", "aws_sqs",
                   "gcs_bucket", "braintrust", "opik", "openmeter", "helicone", "lago", "lunary", "athina",
                   "langtrace", "sentry", "gcs_pubsub", "azure_storage", "weave_otel", "datadog_metrics",
                   "agentops", "custom_callbacks")
"""Callback names that are async sinks, in the order they are installed."""


MAIL_CALLBACKS = frozenset({"smtp_email", "resend_email", "sendgrid_email"})
"""LiteLLM's email callbacks (``observe.mail``): not sinks of the completion queue, but of management events."""


class Exporters:
    """One worker's running exporters (what the gateway needs to reach after start-up)."""

    def __init__(self, settings: ObserveSettings | None) -> None:
        self.settings = settings
        self.prometheus: Any = None
        """The ``litellm_*`` Prometheus families (``observe.prometheus``) when ``prometheus`` is a callback."""
        self.alerter: Any = None
        """The alerter (``observe.alerting.Alerter``) when ``general_settings.alerting`` is set."""
        self.pagerduty: Any = None
        """PagerDuty incidents (``observe.pagerduty.PagerDuty``) with ``pagerduty`` in ``general_settings.alerting``."""
        self.mailer: Any = None
        """Email notifications (``observe.mail.Mailer``): an email callback, or ``email`` in ``alerting``."""
        self.services: Any = None
        """LiteLLM's service families (``service_metrics.ServiceMetrics``) with ``prometheus_system``."""
        self.sinks: list[Any] = []
        """Every installed sink, in order."""
        self.completions: Any = None
        self.env: Mapping[str, str] = os.environ
        self.on_event: Any = None
        self._targets: set[str] = set()
        """Callback names the per-key targets already have a sink for (:meth:`ensure_targets`)."""
        self.stop_listening: Any = None
        """Stops the alerter hearing outages (``observe.events``); called when the worker shuts down."""

    def start(self) -> None:
        """The worker started: the alerter hears outages (``relaygate.events``) and the service families
        time Redis, the database and the request's stages (``relaygate.service_metrics``) until :meth:`close`."""
        if self.alerter is not None and self.stop_listening is None:
            from relaygate import events
            self.stop_listening = events.listen(self.alerter.outage)
        if self.services is not None:
            from relaygate import service_metrics as services
            services.activate(self.services)

    def hook_budgets(self, guard: Any, store: Any) -> None:
        """Tell ``guard`` (``budgets.guard.BudgetGuard``) who hears of budgets: the alerter's ``budget_alerts``
        and the mailer's soft-budget mails when a request finds a budget crossed, Prometheus's budget gauges of
        the budgets each request is checked against."""
        alerter, mails = self.alerter, None
        if self.mailer is not None and self.settings is not None and "email" in self.settings.alerting:
            from relaygate.observe.mail import BudgetMails
            mails = BudgetMails(self.mailer, store, self.env)
        if alerter is not None or mails is not None:
            def crossed(kind: str, ident: str, spend: float, budget: float, soft: bool) -> None:
                if alerter is not None:  # LiteLLM's budget_alerts (rate-limited by the alerter)
                    alerter.budget_crossed(kind, ident, spend, budget, soft=soft)
                if mails is not None:
                    mails.crossed(kind, ident, spend, budget, soft)
            guard.on_budget = crossed
        prom = self.prometheus
        if prom is not None:  # LiteLLM's team / key / user / organization budget gauges
            from relaygate.observe.prometheus import BUDGET_GAUGE_KINDS
            guard.on_spend = lambda kind, ident, alias, budget, spend, reset_at: prom.set_budget(
                kind, ident, alias, budget, spend, reset_at) if kind in BUDGET_GAUGE_KINDS else None

    async def aclose(self) -> None:
        """The worker stops: the mails queued are sent (within a few seconds), then :meth:`close`."""
        if self.mailer is not None:
            await self.mailer.aclose()
        self.close()

    def close(self) -> None:
        if self.stop_listening is not None:
            self.stop_listening()
            self.stop_listening = None
        if self.services is not None:
            from relaygate import service_metrics as services
            services.deactivate(self.services)

    def attach(self, runtime: Any, config: Any) -> None:
        """Hook a runtime snapshot of ``config`` to the exporters: the router's ``cooldown_hooks`` (the alert; the
        Prometheus counter is fed by ``Metrics.cooldown``), the pricer's ``on_unknown`` (LiteLLM's
        ``failed_tracking_spend`` alert for a model nobody priced), and where the deployments run
        (``region_outage_alerts``). Called with every snapshot the gateway serves."""
        runtime.router.cooldown_hooks = self.cooldown_hooks(config)
        alerter = self.alerter
        if alerter is not None:
            alerter.know_deployments(config.deployments, os.environ)
            if "failed_tracking_spend" in alerter.kinds:
                runtime.prices.on_unknown = alerter.unpriced

    def cooldown_hooks(self, config: Any) -> tuple[Any, ...]:
        """The router's ``cooldown_hooks`` for ``config``'s deployments."""
        deps = {d.id: d for d in config.deployments}
        hooks: list[Any] = []
        alerter = self.alerter
        if alerter is not None:
            def alert(stats: Any, exc: Any, seconds: float) -> None:
                d = deps.get(stats.id)
                if d is not None:
                    alerter.deployment_cooled_down(d.model_name, d.id, d.provider, d.api_base or "",
                                                   f"{exc.status} {exc.message}"[:300], seconds)
            hooks.append(alert)
        return tuple(hooks)

    def ensure_targets(self, targets: Any) -> None:
        """A key's or team's ``metadata.logging`` targets (``auth.targets.LoggingTarget``) have a sink from now
        on: the configured one, or one built for keys only on the first request that names it (``langfuse``,
        ``otel``, ``langsmith``, ``langfuse_otel``, ``arize``, ``arize_phoenix``, ``posthog``, ``gcs_bucket``,
        ``braintrust``).
        Called by the pipeline before such a request is routed, so its record is not missed; after the first call
        per name it is one set lookup."""
        for t in targets:
            name = t.callback_name
            if name in self._targets:
                continue
            self._targets.add(name)
            configured = (self.settings is not None and name in _names(self.settings)) or any(
                getattr(s, "name", None) == name for s in self.sinks)  # Phoenix started beside otel included
            if configured or name not in KEYS_ONLY or self.completions is None:
                continue
            settings = self.settings if self.settings is not None else ObserveSettings()
            try:
                if name == "langfuse":
                    from relaygate.observe.langfuse import make_langfuse
                    sink: Any = make_langfuse(settings, self.env, self.on_event, keys_only=True)
                elif name == "langsmith":
                    from relaygate.observe.langsmith import make_langsmith
                    sink = make_langsmith(settings, self.env, self.on_event, keys_only=True)
                elif name in ("langfuse_otel", "arize", "posthog", "gcs_bucket", "braintrust"):
                    sink = _factory(name)(settings, self.env, self.on_event, keys_only=True)
                elif name == "arize_phoenix":
                    sink = _factory(name)(settings, self.env, self.on_event)
                else:
                    sink = _factory("otel")(settings, self.env, self.on_event)
            except Exception as exc:  # a key's target must never break its requests
                log.warning("logging target %s for keys cannot start: %s: %s", name, type(exc).__name__, exc)
                continue
            if sink is not None:
                self.completions.add_sink(sink, buffer=max(1, settings.exporter_queue))
                self.sinks.append(sink)
                log.info("observability: %s started for keys' logging targets", name)

    @property
    def names(self) -> list[str]:
        return [getattr(s, "name", type(s).__name__) for s in self.sinks]


def _names(settings: ObserveSettings) -> list[str]:
    return list(dict.fromkeys([*settings.success_callbacks, *settings.failure_callbacks]))


def _factory(name: str) -> Any:
    if name == "langfuse":
        from relaygate.observe.langfuse import make_langfuse
        return make_langfuse
    if name == "otel":
        from relaygate.observe.otel import make_otel
        return make_otel
    if name == "langfuse_otel":
        from relaygate.observe.langfuse_otel import make_langfuse_otel
        return make_langfuse_otel
    if name == "generic_api":
        from relaygate.observe.generic_api import make_generic_api
        return make_generic_api
    if name == "datadog":
        from relaygate.observe.datadog import make_datadog
        return make_datadog
    if name == "s3":
        from relaygate.observe.s3 import make_s3
        return make_s3
    if name == "langsmith":
        from relaygate.observe.langsmith import make_langsmith
        return make_langsmith
    if name == "arize":
        from relaygate.observe.arize import make_arize
        return make_arize
    if name == "arize_phoenix":
        from relaygate.observe.arize import make_arize_phoenix
        return make_arize_phoenix
    if name == "datadog_llm_observability":
        from relaygate.observe.datadog_llm_obs import make_datadog_llm_obs
        return make_datadog_llm_obs
    if name == "posthog":
        from relaygate.observe.posthog import make_posthog
        return make_posthog
    if name == "aws_sqs":
        from relaygate.observe.sqs import make_sqs
        return make_sqs
    if name == "gcs_bucket":
        from relaygate.observe.gcs_bucket import make_gcs_bucket
        return make_gcs_bucket
    if name == "braintrust":
        from relaygate.observe.braintrust import make_braintrust
        return make_braintrust
    if name == "opik":
        from relaygate.observe.opik import make_opik
        return make_opik
    if name == "openmeter":
        from relaygate.observe.openmeter import make_openmeter
        return make_openmeter
    if name == "helicone":
        from relaygate.observe.helicone import make_helicone
        return make_helicone
    if name == "lago":
        from relaygate.observe.lago import make_lago
        return make_lago
    if name == "lunary":
        from relaygate.observe.lunary import make_lunary
        return make_lunary
    if name == "athina":
        from relaygate.observe.athina import make_athina
        return make_athina
    if name == "azure_storage":
        from relaygate.observe.azure_storage import make_azure_storage
        return make_azure_storage
    if name == "gcs_pubsub":
        from relaygate.observe.gcs_pubsub import make_gcs_pubsub
        return make_gcs_pubsub
    if name == "sentry":
        from relaygate.observe.sentry import make_sentry
        return make_sentry
    if name == "datadog_metrics":
        from relaygate.observe.datadog_metrics import make_datadog_metrics
        return make_datadog_metrics
    if name == "weave_otel":
        from relaygate.observe.weave import make_weave
        return make_weave
    if name == "custom_callbacks":
        from relaygate.observe.custom_callbacks import make_custom_callbacks
        return make_custom_callbacks
    if name == "agentops":
        from relaygate.observe.agentops import make_agentops
        return make_agentops
    if name in ("logfire", "signoz", "langtrace"):
        from relaygate.observe.otel_presets import make_preset
        return make_preset(name)
    raise KeyError(name)


def _phoenix_beside_otel(out: Exporters, settings: ObserveSettings, env: Mapping[str, str], buffer: int) -> None:
    """LiteLLM's auto-initialisation: with ``otel`` configured and a ``PHOENIX_*`` endpoint or key set, Phoenix
    gets every request too; one that cannot start is a warning, as in LiteLLM (it was not asked for by name)."""
    from relaygate.observe.arize import make_arize_phoenix, phoenix_wanted

    if not phoenix_wanted(env):
        return
    try:
        sink = make_arize_phoenix(settings, env, out.on_event, auto=True)
    except Exception as exc:
        log.warning("arize_phoenix (started with otel by the PHOENIX_* variables) cannot start: %s: %s",
                    type(exc).__name__, exc)
        return
    out.completions.add_sink(sink, buffer=buffer)
    out.sinks.append(sink)


def check(settings: ObserveSettings | None, env: Mapping[str, str] | None = None) -> None:
    """Raise the ``ConfigError`` an exporter would raise at start-up (missing credentials or endpoint),
    without starting anything; ``serve`` and ``check-config`` call it once, before any worker starts."""
    if settings is None:
        return
    env = os.environ if env is None else env
    names = _names(settings)
    for name in ASYNC_EXPORTERS:
        if name in names:
            sink = _factory(name)(settings, env, lambda event, n: None)
            closer = getattr(sink, "discard", None)
            if closer is not None:
                closer()
    if settings.alerting:
        from relaygate.observe.alerting import make_alerter
        make_alerter(settings, env, lambda event, n: None)
    if "pagerduty" in settings.alerting:
        from relaygate.observe.pagerduty import make_pagerduty
        make_pagerduty(settings.alerting_args, env, None)
    _mailer(settings, env, None)
    if "cloudzero" in names:
        from relaygate.observe.cloudzero import interval_minutes
        interval_minutes(env)  # a bad interval stops the start
        if not (env.get("CLOUDZERO_API_KEY") and env.get("CLOUDZERO_CONNECTION_ID")):
            log.warning("cloudzero: CLOUDZERO_API_KEY and CLOUDZERO_CONNECTION_ID are not both set: the hourly export "
                        "uses the settings stored with POST /cloudzero/init, and sends nothing until there are some")


def _mailer(settings: ObserveSettings, env: Mapping[str, str], on_event: Any) -> Any:
    """The email notifications the settings ask for (``observe.mail``), or None; imported only then."""
    if not (set(_names(settings)) & MAIL_CALLBACKS or "email" in settings.alerting):
        return None
    from relaygate.observe.mail import make_mailer
    return make_mailer(_names(settings), settings.alerting, env, on_event)


def install(settings: ObserveSettings | None, completions: Any, metrics: Any, config: Any,
            env: Mapping[str, str] | None = None) -> Exporters:
    """Build the exporters ``settings`` asks for and add them to ``completions`` (before it starts)."""
    out = Exporters(settings)
    env = os.environ if env is None else env
    on_event = metrics.count
    out.completions, out.env, out.on_event = completions, env, on_event
    if settings is None:
        return out
    names = _names(settings)
    buffer = max(1, settings.exporter_queue)
    if "prometheus" in names:
        from relaygate.observe.prometheus import LiteLLMMetrics
        out.prometheus = LiteLLMMetrics.for_config(config)
        if out.prometheus is not None:
            metrics.litellm = out.prometheus
            completions.add_sink(out.prometheus)
            out.sinks.append(out.prometheus)
    for name in ASYNC_EXPORTERS:
        if name in names:
            sink = _factory(name)(settings, env, on_event)
            completions.add_sink(sink, buffer=buffer)
            out.sinks.append(sink)
    if "otel" in names and "arize_phoenix" not in names:
        _phoenix_beside_otel(out, settings, env, buffer)
    if settings.service_callbacks:
        from relaygate.service_metrics import QUEUE_SPEND, ServiceMetrics
        view = settings.prometheus_view
        out.services = metrics.services = ServiceMetrics(view.latency_buckets if view is not None else None)
        out.services.queue(QUEUE_SPEND, lambda: completions.pending("spend"))
        log.info("observability: service metrics (%s)", ", ".join(settings.service_callbacks))
    if settings.json_logs:
        from relaygate.observe.jsonlog import JsonRequestLog
        jl = JsonRequestLog(bodies=settings.log_bodies, on_event=on_event)
        completions.add_sink(jl)
        out.sinks.append(jl)
    if settings.alerting:
        from relaygate.observe.alerting import make_alerter
        out.alerter = make_alerter(settings, env, on_event)
        if out.alerter is not None:
            completions.add_sink(out.alerter)
            out.sinks.append(out.alerter)
    if "pagerduty" in settings.alerting:
        from relaygate.observe.pagerduty import make_pagerduty
        out.pagerduty = make_pagerduty(settings.alerting_args, env, on_event)
        completions.add_sink(out.pagerduty)
        out.sinks.append(out.pagerduty)
    out.mailer = _mailer(settings, env, on_event)
    if out.sinks or out.mailer is not None:
        log.info("observability: %s", ", ".join([*out.names, *([out.mailer.name] if out.mailer else [])]))
    return out
