"""MetricsSink: the per-worker Prometheus counters, fed from completion records instead of the request path.

What it owns: the mapping from a :class:`~relaygate.sinks.record.CompletionRecord` to the calls the
request path used to make on :class:`relaygate.metrics.Metrics` itself, so ``/metrics`` shows exactly
what it showed before the pipeline emitted records:

===================  ==========================================================================
outcome              Metrics calls
===================  ==========================================================================
``ok``               ``observe(group, deployment, status, latency, overhead, prompt, completion)``
``stream_broken``    the same (the record's status is ``599`` for a stream broken mid-way)
``error``            ``observe_error(model, status)`` (no deployment label: the error may have had none)
``client_gone``      ``count("client_disconnected")``; and ``observe(...)`` as above when the answer
                     had started (``ttft`` set: a stream that sent its first frame), as a stream whose
                     client left was counted before
===================  ==========================================================================

``group`` is the record's ``model_group`` (the resolved group, as ``dep.model_name`` was), or the
requested ``model`` when no group was resolved. ``overhead`` is clamped at 0. Label bounding stays inside
``Metrics`` (unknown groups and deployments become ``other``), so no record can grow the series count.

It is a sync sink (``handle`` is called in the queue's drain callback): a few dict increments a record.
Freshness: records reach it within the queue's ``delay`` (1 ms); a ``/metrics`` handler that calls
``CompletionQueue.drain_now()`` before ``Metrics.render()`` shows every request already answered.
``on_event`` is ``Metrics.count`` itself, meant to be passed to the queue as its ``on_event`` so queue
drops and sink errors show up as ``relaygate_events_total`` series.
"""

from __future__ import annotations

from collections.abc import Sequence

from relaygate.metrics import Metrics
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["CLIENT_DISCONNECTED", "MetricsSink"]

CLIENT_DISCONNECTED = "client_disconnected"

_OK = Outcome.OK
_ERROR = Outcome.ERROR
_GONE = Outcome.CLIENT_GONE


class MetricsSink:
    """Feeds one worker's :class:`Metrics` from completion records (a sync :class:`~.queue.Sink`)."""

    name = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.on_event = metrics.count

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        metrics = self.metrics
        observe = metrics.observe
        for r in batch:
            outcome = r.outcome
            if outcome is not _OK:
                if outcome is _ERROR:
                    metrics.observe_error(r.model, r.status)
                    continue
                if outcome is _GONE:
                    metrics.count(CLIENT_DISCONNECTED)
                    if r.ttft is None:
                        continue
            overhead = r.overhead
            observe(r.model_group or r.model, r.deployment_id, r.status, r.latency,
                    overhead if overhead > 0.0 else 0.0, r.prompt_tokens, r.completion_tokens)
