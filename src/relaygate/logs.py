"""Logging setup: one line per event, level from ``RELAYGATE_LOG_LEVEL``, never secrets, never forged lines.

Request-path code logs only failures (one line each, with the call id); success is counted in metrics,
not logged, so logging never sits on the hot path. ``RELAYGATE_JSON_LOGS=1`` switches to JSON lines.

Two rules hold for every record, whatever the format, and no caller has to remember them:

* **Redaction.** The whole record (message with its arguments, exception and stack text) goes through
  ``core.errors.redact``: every secret the loaded config registered, and any ``Bearer <token>``, becomes
  ``[redacted]``. An upstream body that echoes the key, a URL with a password in a traceback: not logged.
* **No forged lines.** Log text quotes clients (a path, a model name, an upstream's message), and a
  client who can write a newline can write a fake log line. In text format the message is escaped onto
  one line: every control character (C0, DEL, C1 including NEL, U+2028/U+2029, and the bidi overrides
  that reorder what a terminal shows) becomes ``\\n``, ``\\r``, ``\\t``, ``\\xNN`` or ``\\uNNNN``.
  Backslashes are left alone (escaping is for safety, not a round-trip encoding). Tracebacks and stack
  text stay readable on several lines, but every one of their lines is escaped the same way and starts
  with :data:`CONTINUATION` (``"  | "``), which no record's first line does (it starts with the
  timestamp). So a line that does not start with the continuation mark is always a real record, whatever
  an exception message contained. JSON lines are one line by construction (the encoder escapes C0); the
  characters it leaves raw (DEL, C1, U+2028/2029, bidi) are written as ``\\uNNNN`` escapes, so a JSON log
  line contains no control character at all.

Both rules run only when a line is written: failures and lifecycle events, never a successful request.
Worker processes call :func:`setup_worker_logging`, which also puts Granian's own handlers and Python's
last-resort output (the root logger, used by ``asyncio``) behind the same formatter rules.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import TextIO

import msgspec
import orjson

from relaygate.core.errors import redact

CONTINUATION = "  | "
TEXT_FORMAT = "%(asctime)s %(levelname)s relaygate[%(process)d] %(message)s"

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(m: re.Match[str]) -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible escape: the result is one line."""
    if text.isascii() and text.isprintable():
        return text  # nothing to escape: two C scans instead of a regex (~6 ns a character)
    return _CONTROL.sub(_escape_one, text)


class SafeFormatter(logging.Formatter):
    """A text formatter that redacts secrets and cannot be made to write a forged line (module essay)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(redact(record.getMessage()))
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        blocks = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            for part in redact(block).split("\n"):
                line += "\n" + CONTINUATION + escape_controls(part)
        return line


def _escape_json(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


_fallback_encode = msgspec.json.Encoder(enc_hook=str).encode


def json_line(obj: object) -> str:
    """``obj`` as one JSON line with no control character at all (the rule every JSON log line follows).

    orjson writes the usual line; what it refuses (an integer past 64 bits in a logged body, a value of a
    type it does not know) goes through msgspec instead, which writes such integers whole and anything
    unknown as its ``str``: a line is never lost to one field."""
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        raw = _fallback_encode(obj)
    if raw.isascii() and b"\x7f" not in raw:
        # the usual line: JSON has no raw character below 0x20, so ASCII without DEL has nothing to
        # escape; two C scans of the bytes instead of a regex over the text (4.5 µs on a request log line)
        return raw.decode()
    return _CONTROL.sub(_escape_json, raw.decode())


def log_stream() -> TextIO:
    """Where relaygate's log lines go (its handler's stream; stderr before logging is set up)."""
    for handler in logging.getLogger("relaygate").handlers:
        stream: TextIO | None = getattr(handler, "stream", None)
        if stream is not None:
            return stream
    return sys.stderr


_iso_seconds: dict[int, str] = {}


def iso_time(ts: float) -> str:
    """``ts`` (epoch seconds) as ISO 8601 in UTC to the millisecond (``2026-12-03T20:55:26.123+00:00``): LiteLLM's
    JSON log ``timestamp``. Each second's text is formatted once (request lines share it)."""
    ms = int(ts * 1000.0)
    sec, frac = divmod(ms, 1000)
    text = _iso_seconds.get(sec)
    if text is None:
        if len(_iso_seconds) > 64:
            _iso_seconds.clear()
        text = _iso_seconds[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.%%03d+00:00", time.gmtime(sec))
    return text % frac


class JsonFormatter(logging.Formatter):
    """One JSON object per line, redacted; no control character survives, even those JSON allows raw.

    LiteLLM's ``JsonFormatter`` fields (``message``, ``level`` as ``INFO`` / ``WARNING`` ..., ``timestamp`` in
    ISO 8601, ``component`` the logger's name, ``stacktrace``), so a log pipeline written for LiteLLM's JSON logs
    reads these; relaygate's own ``ts`` (epoch seconds), ``logger`` (the logger's name, where LiteLLM writes
    ``file:line``) and ``pid`` beside them."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {"ts": round(record.created, 3), "timestamp": iso_time(record.created), "level": record.levelname,
               "component": record.name, "logger": record.name, "pid": record.process,
               "message": redact(record.getMessage())}
        if record.exc_info:
            obj["stacktrace"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            obj["stack"] = redact(self.formatStack(record.stack_info))
        return json_line(obj)


def make_formatter() -> logging.Formatter:
    """The formatter ``RELAYGATE_JSON_LOGS`` (or LiteLLM's ``JSON_LOGS=true``) asks for."""
    if os.environ.get("RELAYGATE_JSON_LOGS", "") not in ("", "0") or os.environ.get("JSON_LOGS", "").lower() == "true":
        return JsonFormatter()
    return SafeFormatter(TEXT_FORMAT)


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("RELAYGATE_LOG_LEVEL") or "info").upper()
    root = logging.getLogger("relaygate")
    root.setLevel(getattr(logging, level, logging.INFO))
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter())
    root.addHandler(handler)
    root.propagate = False


def setup_worker_logging() -> None:
    """Logging in a Granian worker: relaygate's handler, and Granian's and the last-resort output made safe."""
    setup_logging()
    for handler in logging.getLogger("_granian").handlers:
        fmt = handler.formatter
        if isinstance(fmt, (SafeFormatter, JsonFormatter)):
            continue
        safe = make_formatter()
        if isinstance(safe, SafeFormatter) and fmt is not None:  # text: keep Granian's own layout
            safe = SafeFormatter(fmt._fmt, fmt.datefmt)
        handler.setFormatter(safe)
    top = logging.getLogger()
    if not top.handlers:  # otherwise asyncio's and libraries' warnings go raw to logging.lastResort
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(make_formatter())
        top.addHandler(handler)


class Every:
    """A condition said at most once per ``interval`` seconds, and how often it was not said meanwhile."""

    __slots__ = ("interval", "last", "suppressed")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -1e18
        self.suppressed = 0

    def ready(self, now: float | None = None) -> int | None:
        """``None``: stay quiet; else say it now, mentioning the returned number of suppressed occurrences."""
        if now is None:
            now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return None
        self.last = now
        n, self.suppressed = self.suppressed, 0
        return n


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


fail_log = RateLimitedLog(logging.getLogger("relaygate"))
"""The worker's one budget for request-failure lines (the pipeline, the stream relay, the route table)."""
