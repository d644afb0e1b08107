"""Completion events and their sinks: what happens after a request, off the request path.

The pipeline's ``complete`` stage builds one :class:`CompletionRecord` per exchange and calls
:meth:`CompletionQueue.put` (never awaits, never blocks; drop-oldest when full). The queue drains to
every registered sink in batches: sync :class:`Sink` objects in a loop callback (cheap in-process work:
:class:`MetricsSink`), async :class:`AsyncSink` objects each in their own task behind their own bounded
buffer (databases, HTTP exporters), so a slow one delays nobody. See ``queue.py`` for the invariants.
"""

from relaygate.sinks.metrics import MetricsSink
from relaygate.sinks.queue import DROPPED_EVENT, AsyncSink, CompletionQueue, OnEvent, Sink
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DROPPED_EVENT", "AsyncSink", "CompletionQueue", "CompletionRecord", "MetricsSink", "OnEvent",
           "Outcome", "Sink"]
