"""The OpenTelemetry SDK's export loggers, throttled: one line per message template per interval.

What it owns: :func:`throttle_sdk_logs`, which the ``otel`` sink and every sink built on it (Langfuse's OTLP
endpoint, Arize, AgentOps, Weave and the presets) install once per process. A receiver that is down makes the
SDK's exporter and batch processor log every retry of every batch; throttled, the gateway's log keeps one line
of each kind a minute (the sinks count and report their drops themselves).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["throttle_sdk_logs"]


class _Throttle(logging.Filter):
    """Lets each message template of the SDK's export loggers through at most once per interval: a receiver
    that is down makes the exporter log every retry of every batch, which would flood the gateway's log."""

    def __init__(self, interval: float) -> None:
        super().__init__("relaygate-otel-throttle")
        self.interval = interval
        self.last: dict[tuple[str, object], float] = {}
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(key, -1e18) < self.interval:
                return False
            self.last[key] = now
        return True


_SDK_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                "opentelemetry.exporter.otlp.proto.grpc.exporter", "opentelemetry.sdk._shared_internal")
"""The loggers of the exporters and of the batch processor (export failures, retries)."""


def throttle_sdk_logs(interval: float = 60.0) -> None:
    """Install :class:`_Throttle` on the SDK's export loggers (once per process)."""
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Throttle) for f in logger.filters):
            logger.addFilter(_Throttle(interval))
