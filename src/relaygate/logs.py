"""Logging setup: one line per event, level from ``RELAYGATE_LOG_LEVEL``, never secrets.

Request-path code logs only failures (one line each, with the call id); success is counted in metrics,
not logged, so logging never sits on the hot path. ``RELAYGATE_JSON_LOGS=1`` switches to JSON lines.
"""

from __future__ import annotations

import logging
import os
import sys

import orjson


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "pid": record.process, "message": record.getMessage()}
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(obj).decode()


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("RELAYGATE_LOG_LEVEL") or "info").upper()
    root = logging.getLogger("relaygate")
    root.setLevel(getattr(logging, level, logging.INFO))
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("RELAYGATE_JSON_LOGS", "") not in ("", "0"):
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s relaygate[%(process)d] %(message)s"))
    root.addHandler(handler)
    root.propagate = False


def setup_worker_logging() -> None:
    setup_logging()


class RateLimitedLog:
    """Failure lines on the request path, at most ``per_second`` a second per worker.

    Every failed request deserves a log line, but a flood (an upstream answering 429 to thousands of
    requests a second) must not turn logging into the bottleneck. Past the budget, lines are counted and
    one summary line says how many were suppressed in the last second.
    """

    __slots__ = ("logger", "per_second", "_window", "_used", "_suppressed")

    def __init__(self, logger: logging.Logger, per_second: int = 50) -> None:
        self.logger = logger
        self.per_second = per_second
        self._window = 0
        self._used = 0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        import time

        now = int(time.monotonic())
        if now != self._window:
            if self._suppressed:
                self.logger.warning("%d more failure lines suppressed in the last second", self._suppressed)
            self._window = now
            self._used = 0
            self._suppressed = 0
        if self._used < self.per_second:
            self._used += 1
            self.logger.warning(msg, *args)
        else:
            self._suppressed += 1
