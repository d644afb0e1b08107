"""LiteLLM's ``sentry`` callback: failed LLM calls, and the gateway's own error log lines, sent to Sentry.

What it owns: :class:`SentrySink`, an async sink of the worker's completion queue, and :func:`make_sentry`,
which reads LiteLLM's variables and starts the official Sentry SDK (``sentry-sdk``) in the worker: the SDK
parses the DSN, signs, compresses and sends the envelopes from its own thread, honours Sentry's rate limits
(``429`` / ``X-Sentry-Rate-Limits``) and drops past its bounded queue, as it does for LiteLLM.

Configuration, as LiteLLM's ``initialize_sentry`` / ``build_sentry_init_options`` read the environment:
``SENTRY_DSN`` (required: missing is a ``ConfigError`` at start, where LiteLLM starts and silently sends
nothing), ``SENTRY_API_SAMPLE_RATE`` (the share of events sent, 1.0), ``SENTRY_API_TRACE_RATE`` (1.0; relaygate
starts no Sentry transaction, so it only matters to the SDK), ``SENTRY_ENVIRONMENT`` (``production``) and
``SENTRY_SEND_DEFAULT_PII`` (false: the user id and key alias are left out of events).
``callback_settings.sentry.max_events_per_second`` (default :data:`MAX_EVENTS_PER_SECOND`) caps the events
a worker builds: serialising one costs the worker's loop ~100 µs, so an outage's thousands of failures a second
would starve the requests; the rest are counted as ``sentry_dropped`` and logged once a minute.

What is sent:

- **A failed LLM call** (``sentry`` in ``callbacks`` or ``failure_callback``; LiteLLM captures the exception its
  failure handler is given): one error event per request whose provider call failed (an error answer after
  retries and fallbacks, or a stream broken after its first frame). Its exception is the request's LiteLLM
  exception class (``RateLimitError``, ``APIConnectionError``, ``Timeout`` ...) with the error message (secrets
  and ``sk-`` keys redacted, cut to 2,000 characters); tags ``model``, ``model_group``, ``deployment``,
  ``provider``, ``status_code``, ``call_type``, ``litellm_call_id``, ``team_id`` (unless
  ``redact_user_api_key_info``), and with ``SENTRY_SEND_DEFAULT_PII`` the key alias and the user; extra data:
  latency, retries, fallbacks, each failed attempt (deployment, status, class). The event id is the call id, so
  the event can be found from a spend log or a response's ``x-litellm-call-id``; events group by exception
  class, model group and status (their ``fingerprint``), not by message text.
- **The gateway's own error log lines** (``logging.ERROR``: a sink that failed, a database down ...), as
  LiteLLM's Sentry SDK reports its logger's errors, through the SDK's logging integration.

Where relaygate differs, on purpose: a request the gateway refused before calling any provider (a bad key, a
rate limit, a budget, an unknown model) is not an event (LiteLLM's failure handler never sees those either,
but its proxy logs some at ERROR, which then reach Sentry); a client that went away is not an error. No
prompt, answer or request body is sent: LiteLLM adds each call's details (its messages included, unless
``turn_off_message_logging``) as process-wide breadcrumbs, so an event carries the prompts of whatever other
requests the worker served just before it. Only the SDK's logging integration is installed (none of its
default integrations that patch ``http.client``, threads or the excepthook), so Sentry costs nothing on the
request path; an answered request costs the sink one outcome test.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact
from relaygate.logs import Every
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome, error_class
from relaygate.sinks.spend import CALL_TYPES

if TYPE_CHECKING:
    from sentry_sdk.types import Event

__all__ = ["MAX_EVENTS_PER_SECOND", "SentrySink", "event_of", "make_sentry"]

log = logging.getLogger("relaygate.observe")

MAX_EVENTS_PER_SECOND = 20
"""Events a worker builds per second at most, unless ``callback_settings.sentry.max_events_per_second``."""
MAX_MESSAGE = 2_000
YIELD_EVERY = 16
_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")
_FAILED = frozenset({Outcome.ERROR, Outcome.STREAM_BROKEN})


def _clean(text: str) -> str:
    text = _KEY.sub("[Filtered]", redact(text))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def provider_failed(r: CompletionRecord) -> bool:
    """Whether ``r`` is a request whose provider call failed (what LiteLLM's failure handler is given)."""
    return r.outcome in _FAILED and bool(r.deployment_id or r.failed_attempts)


def event_of(r: CompletionRecord, *, pii: bool = False, redact_key_info: bool = False) -> dict[str, Any]:
    """The Sentry error event of a failed request (see the module docstring)."""
    cls = r.error_class or error_class(r.status, r.error_type)
    deployment = r.deployment_id or (r.failed_attempts[-1][0] if r.failed_attempts else "")
    tags: dict[str, str] = {k: v for k, v in (
        ("model", r.upstream_model or r.model), ("model_group", r.model_group or r.model), ("deployment", deployment),
        ("provider", r.provider), ("status_code", str(r.status)), ("call_type", CALL_TYPES.get(r.route, r.route)),
        ("litellm_call_id", r.call_id), ("outcome", r.outcome.value)) if v}
    if r.team_id and not redact_key_info:
        tags["team_id"] = r.team_id
    if pii and not redact_key_info and r.key_alias:
        tags["user_api_key_alias"] = r.key_alias
    extra: dict[str, Any] = {"latency_ms": round(r.latency * 1000, 3), "retries": r.retries,
                             "fallbacks": r.fallbacks, "stream": r.stream}
    if r.failed_attempts:
        extra["failed_attempts"] = [{"deployment": d, "status": s, "error": _clean(e)} for d, s, e in r.failed_attempts]
    event: dict[str, Any] = {
        "level": "error", "logger": "litellm", "platform": "python",
        "exception": {"values": [{"type": cls, "value": _clean(r.error_message or f"HTTP {r.status}"),
                                  "module": "litellm", "mechanism": {"type": "litellm_failure", "handled": True}}]},
        "tags": tags, "extra": extra, "transaction": r.request_route or r.route,
        "fingerprint": ["litellm", cls, r.model_group or r.model, str(r.status)],
        "timestamp": r.start_time + r.latency if r.start_time else time.time(),
    }
    call = r.call_id.replace("-", "")
    if len(call) == 32 and all(c in "0123456789abcdef" for c in call):
        event["event_id"] = call
    if pii and r.user_id and not redact_key_info:
        event["user"] = {"id": r.user_id}
    return event


def _scrub(sdk_event: Event, _hint: dict[str, Any]) -> Event:
    """``before_send``: secrets out of every message the SDK builds (its log events included)."""
    event = cast("dict[str, Any]", sdk_event)
    for entry in (event.get("logentry"), event.get("message")):
        if isinstance(entry, dict):
            for k in ("message", "formatted"):
                if isinstance(entry.get(k), str):
                    entry[k] = _clean(entry[k])
            if isinstance(entry.get("params"), list):  # the log call's arguments, already in "formatted"
                entry["params"] = [_clean(p) if isinstance(p, str) else p for p in entry["params"]]
    if isinstance(event.get("message"), str):
        event["message"] = _clean(event["message"])
    crumbs = event.get("breadcrumbs")
    for crumb in (crumbs.get("values") or () if isinstance(crumbs, dict) else crumbs or ()):
        if isinstance(crumb, dict) and isinstance(crumb.get("message"), str):
            crumb["message"] = _clean(crumb["message"])
    for value in (event.get("exception") or {}).get("values") or ():
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            value["value"] = _clean(value["value"])
    return sdk_event


class SentrySink:
    """Failed provider calls to Sentry as error events (an async sink; the SDK sends from its thread)."""

    name = "sentry"

    def __init__(self, client: Any, *, failure: bool = True, pii: bool = False, redact_key_info: bool = False,
                 max_per_second: float = MAX_EVENTS_PER_SECOND, on_event: OnEvent | None = None,
                 log_interval: float = 60.0) -> None:
        self.client = client
        """The SDK's client (``sentry_sdk.get_client()``) the events go through."""
        self.failure = failure
        self.pii = pii
        self.redact_key_info = redact_key_info
        self.max_per_second = max_per_second
        self.on_event = on_event
        self.sent = 0
        self.dropped = 0
        self._second = 0
        self._in_second = 0
        self._droplog = Every(log_interval)

    def _admit(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        if self._in_second >= self.max_per_second:
            return False
        self._in_second += 1
        return True

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        if not self.failure:
            return
        import sentry_sdk

        built = dropped = 0
        for r in batch:
            if not provider_failed(r) or r.no_logging:
                continue
            if not self._admit(time.monotonic()):
                dropped += 1
                continue
            sentry_sdk.capture_event(cast("Event", event_of(r, pii=self.pii, redact_key_info=self.redact_key_info)))
            built += 1
            if not built % YIELD_EVERY:
                await asyncio.sleep(0)
        self.sent += built
        if built and self.on_event is not None:
            self.on_event("sentry_sent", built)
        if dropped:
            self.dropped += dropped
            if self.on_event is not None:
                self.on_event("sentry_dropped", dropped)
            n = self._droplog.ready(time.monotonic())
            if n is not None:
                log.warning("sentry: %d failure event(s) not sent: more than %g a second (callback_settings.sentry."
                            "max_events_per_second)", self.dropped, self.max_per_second)

    async def aclose(self) -> None:
        """Send what the SDK still holds (within 2 s, in a thread: the SDK's flush blocks) and stop it."""
        client = self.client
        await asyncio.to_thread(client.close, 2.0)

    def discard(self) -> None:
        """Stop the SDK without waiting (``check-config`` built it only to check the settings)."""
        self.client.close(0.0)


def _rate(env: Mapping[str, str], name: str) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("environment", name, f"expected a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError("environment", name, f"expected a number between 0 and 1, got {raw!r}")
    return value


def _sdk_options(version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``sentry_sdk.init``'s and ``LoggingIntegration``'s options for the SDK's ``version``.

    The SDK collects nothing itself (locals, bodies, users: the events carry only what ``event_of`` builds) and
    turns no log line into a breadcrumb or a Sentry log, only ERROR lines into events. sentry-sdk 2.x spells that
    ``include_local_variables=False`` and ``LoggingIntegration(level=None)``; 3.0 replaced the first with
    ``data_collection`` (refusing the old name) and split the second into ``level`` (Sentry logs) and
    ``breadcrumb_level``. ``attach_stacktrace`` (off by default in 2.x, on in 3.0) is turned off by the caller:
    a log line's event needs no stack of the thread that wrote it.
    """
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= 3:
        return ({"data_collection": {"stack_frame_variables": False, "http_bodies": [], "user_info": False}},
                {"level": None, "breadcrumb_level": None, "event_level": logging.ERROR})
    return {"include_local_variables": False}, {"level": None, "event_level": logging.ERROR}


def make_sentry(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent,
                **_: Any) -> SentrySink:
    """The sink and a started SDK from ``SENTRY_*`` (``ConfigError`` for a missing or bad DSN or rate)."""
    dsn = (env.get("SENTRY_DSN") or "").strip()
    if not dsn:
        raise ConfigError("environment", "SENTRY_DSN", "not set: the sentry callback sends to that project's DSN")
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.utils import BadDsn, Dsn
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConfigError("litellm_settings", "callbacks", "the sentry callback needs the sentry-sdk package") from None
    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise ConfigError("environment", "SENTRY_DSN", f"not a Sentry DSN: {exc}") from None
    sample, traces = _rate(env, "SENTRY_API_SAMPLE_RATE"), _rate(env, "SENTRY_API_TRACE_RATE")
    pii = (env.get("SENTRY_SEND_DEFAULT_PII") or "").strip().lower() in ("true", "1", "yes")
    cap = (settings.callback_settings.get("sentry") or {}).get("max_events_per_second", MAX_EVENTS_PER_SECOND)
    if isinstance(cap, bool) or not isinstance(cap, int | float) or cap <= 0:
        raise ConfigError("litellm_settings", "callback_settings.sentry.max_events_per_second",
                          f"expected a number > 0, got {cap!r}")
    options, logs = _sdk_options(sentry_sdk.VERSION)
    sentry_sdk.init(dsn=dsn, sample_rate=sample, traces_sample_rate=traces,
                    environment=(env.get("SENTRY_ENVIRONMENT") or "production").strip() or "production",
                    max_request_body_size="never", attach_stacktrace=False, default_integrations=False,
                    auto_enabling_integrations=False,
                    integrations=[LoggingIntegration(**logs)], before_send=_scrub, **options)
    return SentrySink(sentry_sdk.get_client(), failure="sentry" in settings.failure_callbacks, pii=pii,
                      redact_key_info=settings.redact_user_api_key_info, max_per_second=float(cap),
                      on_event=on_event)
