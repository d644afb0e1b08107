"""LiteLLM's service metrics (``litellm_settings.service_callback: ["prometheus_system"]``).

What it owns: the ``litellm_<service>_*`` families LiteLLM's ``PrometheusServicesLogger`` writes, with its
names, types and labels, so the "Service callbacks" row of LiteLLM's "All Prometheus Metrics" dashboard and
alerts written against it (Redis p99, database failures, spend queue backlog) work unchanged:

- ``litellm_<service>_latency`` (histogram, LiteLLM's latency buckets), one observation per successful call;
- ``litellm_<service>_total_requests`` (counter), every call, failed or not;
- ``litellm_<service>_failed_requests`` (counter), labels ``error_class`` (the exception's class name; for
  relaygate's plain ``GatewayError`` its OpenAI error type, ``budget_exceeded`` ...) and
  ``function_name`` (what was called: a Redis command, a database statement kind, a route's call type);
- ``litellm_in_memory_spend_update_queue_size`` (gauge): completion records waiting for the spend sink.

Each family carries one label named after its service whose value is the service's name
(``litellm_redis_latency_bucket{redis="redis",le="0.005"}``), as LiteLLM's client library writes them.

Services and what is timed (:data:`SERVICES`):

- ``redis``: every command relaygate sends to Redis: the limiter's script, the response cache and its
  vectors, shared budget counters, the shared key cache. A Redis error reply is a failure
  (``ResponseError``, redis-py's name for it, which LiteLLM's metrics carry).
- ``postgres``: every database statement, PostgreSQL or SQLite (LiteLLM's only database is PostgreSQL, and
  its dashboards know this name alone); ``function_name`` is ``fetch``, ``execute`` or ``execute_each``.
- ``batch_write_to_db``: each write of a batch of spend rows and counters (the spend sink).
- ``reset_budget_job``: each write of a budget period's reset.
- ``auth``: resolving a request's credentials (``function_name``: the route's call type, ``acompletion`` ...).
- ``proxy_pre_call``: the checks between authentication and routing (``before_route`` hooks: budgets,
  guardrails) and the response cache's lookup.
- ``router``: routing and every attempt, retries and fallbacks included, until an answer (or the stream's
  first frame); LiteLLM times only successes here, relaygate counts failures too.
- ``self``: one upstream call that answered (LiteLLM's "latency for successful litellm api call"); a
  stream's until its first frame.

Cost: off (no ``prometheus_system``), :data:`active` is None and each timed place pays one global read; on,
two clock reads and a ``bisect`` per call (about 0.5 µs), on the request path three or four times a request.
Label values are bounded: services and function names are relaygate's own constants; error classes are
class names, at most :data:`MAX_FAILURE_LABELS` pairs per service (then ``other``).

Multi-worker: :meth:`ServiceMetrics.snapshot` is plain JSON carried in ``Metrics.snapshot()``;
:meth:`ServiceMetrics.render` sums every worker's part.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from relaygate.metrics import _label

__all__ = ["LATENCY_BUCKETS", "MAX_FAILURE_LABELS", "QUEUE_SPEND", "SERVICES", "ServiceMetrics", "activate",
           "active", "deactivate", "histogram_lines", "timed"]

T = TypeVar("T")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0,
                   600.0)
"""LiteLLM 1.110's ``LATENCY_BUCKETS`` (its last bucket, ``+Inf``, is implied; 420 and 600 s cover a long
call up to the usual 10-minute timeout): its request and service histograms'.
Here, a module of the package's root, because the parts timed (Redis, the store) are below ``observe``."""

SERVICES = ("redis", "postgres", "batch_write_to_db", "reset_budget_job", "self", "router", "auth",
            "proxy_pre_call")
"""LiteLLM's ``ServiceTypes`` values relaygate has a part for (see the module docstring)."""
QUEUE_SPEND = "in_memory_spend_update_queue"
"""The gauge of records waiting for the spend sink (LiteLLM's in-memory spend update queue)."""
MAX_FAILURE_LABELS = 64
"""Distinct ``(error_class, function_name)`` pairs per service; later ones count under ``other``."""
OTHER = "other"
_INDEX = {s: i for i, s in enumerate(SERVICES)}
_HELP = {"latency": "Latency for {} service", "failed_requests": "Total failed_requests for {} service",
         "total_requests": "Total total_requests for {} service"}

active: ServiceMetrics | None = None
"""This worker's service metrics while ``prometheus_system`` is configured (the gateway sets it); None:
off. A module global because the parts timed (Redis connections, database connections) are shared by the
worker and built far from the gateway."""


def activate(metrics: ServiceMetrics) -> None:
    global active
    active = metrics


def deactivate(metrics: ServiceMetrics) -> None:
    """Switch the global off if ``metrics`` is the active one (a gateway shutting down)."""
    global active
    if active is metrics:
        active = None


def timed(service: str, function: str, aw: Awaitable[T]) -> Awaitable[T]:
    """``aw`` timed as one call of ``service`` (``function`` names it on a failure); ``aw`` itself when off."""
    svc = active
    return aw if svc is None else svc.time(service, function, aw)


def histogram_lines(name: str, labels: str, bounds: Sequence[float], counts: Sequence[int], total: float
                    ) -> list[str]:
    """A histogram series' sample lines: ``counts`` per bucket (not cumulative, ``+Inf``'s last) written
    cumulative, then ``_count`` and ``_sum``; ``labels`` is the series' label text without braces."""
    out = []
    cum = 0
    for bound, c in zip((*bounds, None), counts, strict=True):
        cum += c
        out.append(f'{name}_bucket{{{labels},le="{"+Inf" if bound is None else repr(float(bound))}"}} {float(cum)!r}')
    out.append(f"{name}_count{{{labels}}} {float(cum)!r}")
    out.append(f"{name}_sum{{{labels}}} {float(total)!r}")
    return out


class ServiceMetrics:
    """One worker's service counters and histograms (see the module docstring)."""

    __slots__ = ("counts", "sums", "totals", "failures", "queues", "bounds")

    def __init__(self, bounds: Sequence[float] | None = None) -> None:
        self.bounds = tuple(bounds) if bounds else LATENCY_BUCKETS
        """The latency histograms' bucket bounds: ``prometheus_latency_buckets``, else LiteLLM's."""
        n = len(self.bounds) + 1
        self.counts: list[list[int]] = [[0] * n for _ in SERVICES]
        """Per service, observations per bucket (not cumulative; the last is ``+Inf``)."""
        self.sums = [0.0] * len(SERVICES)
        self.totals = [0] * len(SERVICES)
        self.failures: list[dict[tuple[str, str], int]] = [{} for _ in SERVICES]
        self.queues: dict[str, Callable[[], int]] = {}
        """Gauge name (without ``litellm_`` and ``_size``) -> what it reads at snapshot time."""

    def ok(self, service: str, seconds: float) -> None:
        """A call of ``service`` that succeeded in ``seconds``."""
        i = _INDEX[service]
        self.totals[i] += 1
        self.sums[i] += seconds
        self.counts[i][bisect.bisect_left(self.bounds, seconds)] += 1

    def failed(self, service: str, error: BaseException | str, function: str) -> None:
        """A call of ``service`` that failed (``error``: the exception, or its class name)."""
        i = _INDEX[service]
        self.totals[i] += 1
        if isinstance(error, str):
            cls = error
        else:
            cls = type(error).__name__
            if cls == "GatewayError":  # relaygate's plain error: its OpenAI ``type`` says more (budget_exceeded)
                cls = getattr(error, "type", None) or cls
        pair = (cls, function)
        seen = self.failures[i]
        if pair not in seen and len(seen) >= MAX_FAILURE_LABELS:
            pair = (OTHER, OTHER)
        seen[pair] = seen.get(pair, 0) + 1

    async def time(self, service: str, function: str, aw: Awaitable[T]) -> T:
        t0 = time.perf_counter()
        try:
            result = await aw
        except Exception as exc:
            self.failed(service, exc, function)
            raise
        self.ok(service, time.perf_counter() - t0)
        return result

    def queue(self, name: str, read: Callable[[], int]) -> None:
        """Report ``litellm_<name>_size`` from ``read()`` at each snapshot."""
        self.queues[name] = read

    # -- aggregation --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for i, s in enumerate(SERVICES):
            if self.totals[i]:
                services[s] = {"counts": self.counts[i], "sum": self.sums[i], "total": self.totals[i],
                               "failed": [[c, f, n] for (c, f), n in self.failures[i].items()]}
        queues = {}
        for name, read in self.queues.items():
            try:
                queues[name] = int(read())
            except Exception:  # a part that went away (a reload): its gauge reads 0
                queues[name] = 0
        return {"services": services, "queues": queues}

    def render(self, parts: Sequence[dict[str, Any]], now: float | None = None) -> list[str]:
        """Prometheus text of every worker's snapshot (``parts``), summed (a worker counting with another number of
        bounds, as during a restart with new ``prometheus_latency_buckets``, is left out of the latency histograms)."""
        n = len(self.bounds) + 1
        merged: dict[str, dict[str, Any]] = {}
        queues: dict[str, int] = {}
        for part in parts:
            for s, d in part.get("services", {}).items():
                if s not in _INDEX:
                    continue
                m = merged.setdefault(s, {"counts": [0] * n, "sum": 0.0, "total": 0, "failed": {}})
                if len(d["counts"]) == n:
                    for j, c in enumerate(d["counts"]):
                        m["counts"][j] += c
                    m["sum"] += d["sum"]
                m["total"] += d["total"]
                for cls, fn, c in d["failed"]:
                    m["failed"][(cls, fn)] = m["failed"].get((cls, fn), 0) + c
            for name, v in part.get("queues", {}).items():
                queues[name] = queues.get(name, 0) + v
        out: list[str] = []
        for s in SERVICES:
            got = merged.get(s)
            lab = f'{s}="{s}"'
            name = f"litellm_{s}_latency"
            out.append(f"# HELP {name} {_HELP['latency'].format(s)}")
            out.append(f"# TYPE {name} histogram")
            if got is not None:
                out.extend(histogram_lines(name, lab, self.bounds, got["counts"], got["sum"]))
            name = f"litellm_{s}_failed_requests"
            out.append(f"# HELP {name} {_HELP['failed_requests'].format(s)}")
            out.append(f"# TYPE {name} counter")
            if got is not None:
                for (cls, fn), c in sorted(got["failed"].items()):
                    out.append(f'{name}_total{{{lab},error_class="{_label(cls)}",function_name="{_label(fn)}"}} '
                               f"{float(c)!r}")
            name = f"litellm_{s}_total_requests"
            out.append(f"# HELP {name} {_HELP['total_requests'].format(s)}")
            out.append(f"# TYPE {name} counter")
            if got is not None:
                out.append(f"{name}_total{{{lab}}} {float(got['total'])!r}")
        for q, v in sorted(queues.items()):
            name = f"litellm_{q}_size"
            out.append(f"# HELP {name} Gauge for {q} service")
            out.append(f"# TYPE {name} gauge")
            out.append(f'{name}{{{q}="{q}"}} {float(v)!r}')
        return out

    def cooled_down(self, dep_id: str, status: int) -> None:
        """(``Metrics`` tells its extensions of cooldowns; service metrics have none.)"""
