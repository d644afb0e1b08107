"""The ``otel`` sink's default spans written by compiled code (selector).

What it owns: :data:`record_spans`, ``relaygate.core._otelspan_c.record_spans`` configured with this package's
helpers, or None when the compiled module is not built or ``RELAYGATE_NO_EXTENSIONS`` is set. The pure twin is
the sink's own path (:func:`~relaygate.observe.otel_attrs.request_attributes`, ``attempt_attributes`` and
``core.otlp.encode_span``): the compiled function writes the same spans, byte for byte, without building an
attribute dict per span (``ext/_otelspan_c.pyx``; the tests compare the two). Per exported request that dict
and the glue around it were most of what the sink cost the worker, ~40 µs of CPU of a ~60 µs sink in the
gateway (``bench.scenarios_observe``); the compiled path writes the ~50 attributes straight into the span's
buffer.

``relaygate.core._ext.LOADED["otelspan"]`` says which path runs ("c" or "py"); a compiled module that should
have loaded and did not is in ``_ext.FAILED`` (logged at start, failed by the tests), as for the other twins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from relaygate.core import _ext
from relaygate.observe.otel_attrs import (
    _OPERATIONS,
    PROVIDER_NAMES,
    PROXY_SPAN,
    _content,
    _encode,
    _finish_reasons,
    _server,
)
from relaygate.observe.standard import CALLBACK_SLOTS, error_class
from relaygate.observe.tracecontext import new_span_id
from relaygate.sinks.record import CALL_TYPES, OUTCOME_TEXT, CompletionRecord, Outcome

__all__ = ["COMPONENT", "record_spans"]

COMPONENT = "otelspan"

RecordSpans = Callable[[Any, Any, bool, bool, Callable[[str, Exception], None]], list[bytes]]


def _load() -> RecordSpans | None:
    mod = _ext.compiled(COMPONENT)
    if mod is None:
        return None
    mod.configure(callback_slots=CALLBACK_SLOTS, content=_content, finish_reasons=_finish_reasons,
                  server=_server, error_class=error_class,
                  encode=_encode, new_span_id=new_span_id, time=time.time, providers=PROVIDER_NAMES,
                  operations=_OPERATIONS, call_types=CALL_TYPES, outcome_text=OUTCOME_TEXT, ok=Outcome.OK,
                  client_gone=Outcome.CLIENT_GONE, proxy_span=PROXY_SPAN, record_type=CompletionRecord,
                  astuple=msgspec.structs.astuple)
    fn: RecordSpans = mod.record_spans
    return fn


record_spans: RecordSpans | None = _load()
"""``record_spans(record, detail, message_logging, redact_key_info, refused)``: the record's encoded spans (each
attempt's, then the request's), or None: the pure path only."""
