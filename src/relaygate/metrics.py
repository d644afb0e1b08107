"""Metrics in Prometheus text format: cheap per-worker counters, one aggregated view at ``/metrics``.

On the request path a metric is a dict increment keyed by a label tuple and a fixed-bucket histogram
update: no locks, no allocation beyond a new key. Workers are shared-nothing, so aggregation happens off
the hot path: when ``relaygate serve`` runs several workers it gives them a directory
(``RELAYGATE_METRICS_DIR``); each worker writes a JSON snapshot of its metrics there every
``FLUSH_INTERVAL`` seconds (and at shutdown), and whichever worker answers ``/metrics`` adds the other
workers' latest snapshots to its own live numbers. Other workers' figures are therefore at most one flush
interval old. Counters and histograms are summed; gauges (resident memory) stay per worker, labelled
with the worker's pid. Snapshots of workers that no longer run are ignored (and removed).

Bounded series: nothing a client sends becomes a label. A label value is either configured or ``other``:
``Metrics`` is given the configured model-group names (and aliases) and deployment ids
(:meth:`Metrics.for_config`, :meth:`Metrics.set_labels` on a reload) and maps any other group or
deployment to :data:`OTHER` itself, so no caller can get it wrong (an unauthenticated request to
``/openai/deployments/<random>/...`` counts under ``other``). A status is a real HTTP status (100-599)
or ``other``. Event names are code constants; as a backstop, past :data:`MAX_EVENTS` distinct names any
new one counts as ``other``. The series count is therefore fixed by the config, whatever the traffic, and
so are the worker's memory, each snapshot and ``/metrics``. Cost: one set look-up per label on the hot path.

LiteLLM's families (``callbacks: ["prometheus"]``) live in ``observe.prometheus``; when the gateway sets
:attr:`Metrics.litellm`, their part rides in each worker's snapshot and is merged and written after
relaygate's own families. Unset (the default), they cost one ``is None`` test per snapshot.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from relaygate.config.prometheus_view import one_label

if TYPE_CHECKING:
    from relaygate.config.model import Config

log = logging.getLogger("relaygate")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FLUSH_INTERVAL = 1.0
METRICS_DIR_ENV = "RELAYGATE_METRICS_DIR"
OTHER = "other"
"""The label value of every group, deployment, status or event outside the known set."""
MAX_EVENTS = 64
_STATUS = {code: str(code) for code in range(100, 600)}


class Extension(Protocol):
    """Extra families carried in the snapshots (``observe.prometheus.LiteLLMMetrics``)."""

    def snapshot(self) -> dict[str, Any]: ...

    def render(self, parts: Sequence[dict[str, Any]], now: float | None = None) -> list[str]: ...

    def cooled_down(self, dep_id: str, status: int) -> None: ...


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """One worker's metrics. ``observe``/``observe_error``/``count`` are the hot-path entry points."""

    def __init__(self, directory: str | None = None, *, groups: Iterable[str] = (),
                 deployments: Iterable[str] = ()) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.tokens: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.overhead_sum = 0.0
        self.overhead_count = 0
        self.events: dict[str, int] = {}
        self.provider_budgets: dict[str, list[Any]] = {}
        """provider -> [budget USD, spend USD this worker knows, period start, spend shared (Redis)]; set by
        ``budgets.providers`` for the providers of ``provider_budget_config`` only."""
        self.litellm: Extension | None = None
        """LiteLLM's ``litellm_*`` families (set by the gateway when the config asks for them)."""
        self.services: Extension | None = None
        """LiteLLM's service families (``service_callback: ["prometheus_system"]``: ``relaygate.service_metrics``)."""
        self.cleanup: Extension | None = None
        """LiteLLM's spend-log cleanup families, with retention configured (``sinks.retention``)."""
        self.pid = os.getpid()
        self.directory = Path(directory) if directory else None
        self._groups: frozenset[str] = frozenset()
        self._deployments: frozenset[str] = frozenset()
        self.set_labels(groups, deployments)

    @classmethod
    def for_config(cls, config: Config, directory: str | None = None) -> Metrics:
        """Metrics whose labels are ``config``'s model groups, aliases and deployment ids (plus ``other``)."""
        return cls(directory, **labels_of(config))

    def set_labels(self, groups: Iterable[str], deployments: Iterable[str]) -> None:
        """The label values allowed from now on (a config reload replaces them); anything else is ``other``."""
        self._groups = frozenset(groups)
        self._deployments = frozenset(deployments) | {""}  # "": an error answered before any deployment

    # -- hot path -----------------------------------------------------------------------------------

    def observe(self, group: str, dep_id: str, status: int, seconds: float, overhead: float,
                prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        if group not in self._groups:
            group = OTHER
        key = (group, dep_id if dep_id in self._deployments else OTHER, _STATUS.get(status, OTHER))
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(group)
        if hist is None:
            hist = self.latency[group] = [0] * (len(BUCKETS) + 1)
            self.latency_sum[group] = 0.0
        hist[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[group] += seconds
        self.overhead_sum += overhead
        self.overhead_count += 1
        if prompt_tokens or completion_tokens:
            k1 = (group, "prompt")
            self.tokens[k1] = self.tokens.get(k1, 0) + prompt_tokens
            k2 = (group, "completion")
            self.tokens[k2] = self.tokens.get(k2, 0) + completion_tokens

    def observe_error(self, group: str, status: int) -> None:
        """A request that got an error response (no deployment label: it may have had none)."""
        key = (group if group in self._groups else OTHER, "", _STATUS.get(status, OTHER))
        self.requests[key] = self.requests.get(key, 0) + 1

    def count(self, event: str, n: int = 1) -> None:
        """Count an event; ``event`` is a code constant (past MAX_EVENTS distinct names, new ones are ``other``)."""
        events = self.events
        if event not in events and len(events) >= MAX_EVENTS:
            event = OTHER
        events[event] = events.get(event, 0) + n

    def cooldown(self, dep_id: str, status: int) -> None:
        """The router cooled ``dep_id`` down after an error with HTTP ``status``."""
        self.count("deployment_cooldown")
        if self.litellm is not None:
            self.litellm.cooled_down(dep_id, status)

    def set_provider_budget(self, provider: str, limit: float, spend: float, start: float, shared: bool) -> None:
        """A configured provider budget's figures (off the request path: the completion sink, Redis reads)."""
        self.provider_budgets[provider] = [limit, spend, start, shared]

    def clear_provider_budgets(self) -> None:
        self.provider_budgets = {}

    # -- aggregation --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        snap = {
            "pid": self.pid,
            "requests": [[g, d, s, n] for (g, d, s), n in self.requests.items()],
            "tokens": [[g, k, n] for (g, k), n in self.tokens.items()],
            "latency": self.latency,
            "latency_sum": self.latency_sum,
            "overhead": [self.overhead_sum, self.overhead_count],
            "events": self.events,
            "provider_budgets": self.provider_budgets,
            "rss": _rss_bytes(),
        }
        if self.litellm is not None:
            snap["litellm"] = self.litellm.snapshot()
        if self.services is not None:
            snap["services"] = self.services.snapshot()
        if self.cleanup is not None:
            snap["cleanup"] = self.cleanup.snapshot()
        return snap

    def flush(self) -> None:
        """Write this worker's snapshot (atomically: temp file + rename)."""
        if self.directory is None:
            return
        path = self.directory / f"{self.pid}.json"
        tmp = self.directory / f".{self.pid}.tmp"
        try:
            tmp.write_bytes(orjson.dumps(self.snapshot()))
            tmp.replace(path)
        except OSError as exc:  # a metrics directory that went away must not hurt serving
            log.debug("metrics flush failed: %s", exc)

    async def flush_forever(self, interval: float = FLUSH_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.flush()

    def _others(self) -> list[dict[str, Any]]:
        if self.directory is None:
            return []
        out = []
        for path in self.directory.glob("*.json"):
            try:
                pid = int(path.stem)
            except ValueError:
                continue
            if pid == self.pid:
                continue
            if not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            try:
                out.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue
        return out

    def render(self) -> bytes:
        """Prometheus text: this worker's live numbers plus every other live worker's last snapshot."""
        snaps = [self.snapshot(), *self._others()]
        requests: dict[tuple[str, str, str], int] = {}
        tokens: dict[tuple[str, str], int] = {}
        latency: dict[str, list[int]] = {}
        latency_sum: dict[str, float] = {}
        events: dict[str, int] = {}
        overhead_sum, overhead_count = 0.0, 0
        budgets: dict[str, list[Any]] = {}
        for snap in snaps:
            for provider, (limit, spend, start, shared) in snap.get("provider_budgets", {}).items():
                seen = budgets.get(provider)
                if seen is None or start > seen[2]:  # only the latest period counts
                    budgets[provider] = [limit, spend, start, shared]
                elif start == seen[2]:  # shared: every worker sees the total; else each its own part
                    seen[1] = max(seen[1], spend) if shared else seen[1] + spend
            for g, d, s, n in snap["requests"]:
                requests[(g, d, s)] = requests.get((g, d, s), 0) + n
            for g, k, n in snap["tokens"]:
                tokens[(g, k)] = tokens.get((g, k), 0) + n
            for g, hist in snap["latency"].items():
                merged = latency.setdefault(g, [0] * (len(BUCKETS) + 1))
                for i, n in enumerate(hist):
                    merged[i] += n
                latency_sum[g] = latency_sum.get(g, 0.0) + snap["latency_sum"][g]
            for e, n in snap["events"].items():
                events[e] = events.get(e, 0) + n
            overhead_sum += snap["overhead"][0]
            overhead_count += snap["overhead"][1]

        out = [f"# relaygate metrics from {len(snaps)} worker(s)",
               "# TYPE relaygate_requests_total counter"]
        for (group, dep, status), n in sorted(requests.items()):
            out.append(f'relaygate_requests_total{{model_group="{_label(group)}",model_id="{_label(dep)}",'
                       f'status="{status}"}} {n}')
        out.append("# TYPE relaygate_tokens_total counter")
        for (group, kind), n in sorted(tokens.items()):
            out.append(f'relaygate_tokens_total{{model_group="{_label(group)}",kind="{kind}"}} {n}')
        out.append("# TYPE relaygate_request_duration_seconds histogram")
        for group, hist in sorted(latency.items()):
            g = _label(group)
            acc = 0
            for b, n in zip(BUCKETS, hist):
                acc += n
                out.append(f'relaygate_request_duration_seconds_bucket{{model_group="{g}",le="{b}"}} {acc}')
            acc += hist[-1]
            out.append(f'relaygate_request_duration_seconds_bucket{{model_group="{g}",le="+Inf"}} {acc}')
            out.append(f'relaygate_request_duration_seconds_sum{{model_group="{g}"}} {latency_sum[group]:.6f}')
            out.append(f'relaygate_request_duration_seconds_count{{model_group="{g}"}} {acc}')
        out.append("# TYPE relaygate_overhead_seconds summary")
        out.append(f"relaygate_overhead_seconds_sum {overhead_sum:.6f}")
        out.append(f"relaygate_overhead_seconds_count {overhead_count}")
        out.append("# TYPE relaygate_events_total counter")
        for event, n in sorted(events.items()):
            out.append(f'relaygate_events_total{{event="{_label(event)}"}} {n}')
        if self.litellm is None and ("cache_hit" in events or "cache_miss" in events):
            # LiteLLM's names for the response cache, without labels; with the prometheus callback its labelled
            # families come from the completion records (observe.prometheus)
            out.append("# TYPE litellm_cache_hits_metric counter")
            out.append(f"litellm_cache_hits_metric_total {events.get('cache_hit', 0)}")
            out.append("# TYPE litellm_cache_misses_metric counter")
            out.append(f"litellm_cache_misses_metric_total {events.get('cache_miss', 0)}")
        view = getattr(self.litellm, "view", None)  # LiteLLM's prometheus_* output controls (a PrometheusView)
        left = one_label(view, "litellm_provider_remaining_budget_metric", "api_provider",
                         {p: limit - spend for p, (limit, spend, _start, _shared) in budgets.items()}, min)
        if left:  # LiteLLM's name, so its dashboards work: budget minus spend of the period, in USD
            out.append("# TYPE litellm_provider_remaining_budget_metric gauge")
            for provider, value in sorted(left.items()):
                labels = f'{{api_provider="{_label(provider)}"}}' if provider else ""
                out.append(f"litellm_provider_remaining_budget_metric{labels} {value!r}")
        out.append("# TYPE relaygate_worker_rss_bytes gauge")
        for snap in sorted(snaps, key=lambda s: s["pid"]):
            out.append(f'relaygate_worker_rss_bytes{{pid="{snap["pid"]}"}} {snap["rss"]}')
        if self.litellm is not None:
            out.extend(self.litellm.render([s["litellm"] for s in snaps if "litellm" in s]))
            failures = one_label(view, "litellm_callback_logging_failures_metric", "callback_name",
                                 callback_failures(events), operator.add)
            if failures is not None:
                out.append("# TYPE litellm_callback_logging_failures_metric counter")
                for name, n in sorted(failures.items()):
                    labels = f'{{callback_name="{name}"}}' if name else ""
                    out.append(f"litellm_callback_logging_failures_metric_total{labels} {n}")
        if self.services is not None:
            out.extend(self.services.render([s["services"] for s in snaps if "services" in s]))
        if self.cleanup is not None:
            out.extend(self.cleanup.render([s["cleanup"] for s in snaps if "cleanup" in s]))
        return ("\n".join(out) + "\n").encode()


CALLBACK_FAILURES = {"langfuse_dropped": "langfuse", "langfuse_retry": "langfuse", "otel_dropped": "otel",
                     "generic_api_dropped": "generic_api", "generic_api_send_failed": "generic_api",
                     "datadog_dropped": "datadog", "datadog_send_failed": "datadog", "json_log_failed": "json_logs",
                     "s3_dropped": "s3", "s3_send_failed": "s3", "langfuse_otel_dropped": "langfuse_otel",
                     "langsmith_dropped": "langsmith", "langsmith_send_failed": "langsmith",
                     "arize_dropped": "arize", "arize_phoenix_dropped": "arize_phoenix", "logfire_dropped": "logfire",
                     "signoz_dropped": "signoz", "langtrace_dropped": "langtrace", "weave_otel_dropped": "weave_otel",
                     "agentops_dropped": "agentops", "custom_callbacks_failed": "custom_callbacks",
                     "datadog_metrics_dropped": "datadog_metrics", "datadog_metrics_send_failed": "datadog_metrics",
                     "pagerduty_dropped": "pagerduty", "smtp_email_dropped": "smtp_email",
                     "resend_email_dropped": "resend_email", "sendgrid_email_dropped": "sendgrid_email",
                     "datadog_llm_observability_dropped": "datadog_llm_observability",
                     "datadog_llm_observability_send_failed": "datadog_llm_observability",
                     "posthog_dropped": "posthog", "posthog_send_failed": "posthog",
                     "aws_sqs_dropped": "aws_sqs", "aws_sqs_send_failed": "aws_sqs",
                     "gcs_bucket_dropped": "gcs_bucket", "gcs_bucket_send_failed": "gcs_bucket",
                     "braintrust_dropped": "braintrust", "braintrust_send_failed": "braintrust",
                     "opik_dropped": "opik", "opik_send_failed": "opik",
                     "openmeter_dropped": "openmeter", "openmeter_send_failed": "openmeter",
                     "helicone_dropped": "helicone", "helicone_send_failed": "helicone",
                     "lago_dropped": "lago", "lago_send_failed": "lago", "lunary_dropped": "lunary",
                     "lunary_send_failed": "lunary", "athina_dropped": "athina", "athina_send_failed": "athina",
                     "sentry_dropped": "sentry", "gcs_pubsub_dropped": "gcs_pubsub",
                     "gcs_pubsub_send_failed": "gcs_pubsub", "azure_storage_dropped": "azure_storage",
                     "azure_storage_send_failed": "azure_storage"}
"""Events that are an exporter's failed delivery, by LiteLLM's ``callback_name``."""
_EXPORTERS = frozenset(CALLBACK_FAILURES.values())


def callback_failures(events: dict[str, int]) -> dict[str, int]:
    """LiteLLM's ``litellm_callback_logging_failures_metric`` per callback from the event counts: each
    failed delivery attempt (a Langfuse retry, a webhook or Datadog POST that failed), each record or event
    given up on (``<name>_dropped``, a JSON line not written), and each record a behind exporter's buffer
    dropped or its handler failed on (``sink_dropped:<name>``, ``sink_error:<name>``). LiteLLM counts failed
    attempts only; an alert on its increase means the same here: logs are not reaching that callback."""
    out: dict[str, int] = {}
    for event, n in events.items():
        name = CALLBACK_FAILURES.get(event)
        if name is None and event.startswith(("sink_dropped:", "sink_error:")):
            name = event.partition(":")[2]
            if name not in _EXPORTERS:
                continue
        if name is not None and n:
            out[name] = out.get(name, 0) + n
    return out


def labels_of(config: Config) -> dict[str, frozenset[str]]:
    """``groups`` and ``deployments`` keyword arguments for :class:`Metrics` from a config."""
    groups = {d.model_name for d in config.deployments} | set(config.router.model_group_alias)
    return {"groups": frozenset(groups), "deployments": frozenset(d.id for d in config.deployments)}
