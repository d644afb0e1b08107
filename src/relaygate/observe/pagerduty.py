"""LiteLLM's PagerDuty alerting (``general_settings.alerting: ["pagerduty"]``): a critical incident when too many
requests fail, or hang, within a window.

What it owns: :class:`PagerDuty`, a sync sink of the completion queue (the failures) that the gateway also hands
its hanging requests (:func:`watch_hanging`, over ``Pipeline.hangs``), and the posts to PagerDuty's Events API v2.

- **Settings** (``general_settings.alerting_args``, LiteLLM's names and defaults): ``failure_threshold`` (60)
  failed requests within ``failure_threshold_window_seconds`` (60); ``hanging_threshold_seconds`` (60: a request
  still unanswered that long is hanging), ``hanging_threshold_fails`` hanging requests (60, the default LiteLLM's
  code falls back on) within ``hanging_threshold_window_seconds`` (600). ``PAGERDUTY_API_KEY`` (the integration's
  routing key) is required: the start stops without it, as LiteLLM refuses the callback. A value of the wrong type
  or below 0 stops the start too.
- **Counting**: every failed request (an upstream's error, a refusal, a broken stream: what LiteLLM's failure
  callback sees) is an event; events older than the window are forgotten; when the window holds the threshold,
  one incident is triggered and the window starts empty again (LiteLLM's rule: no incident per failure after).
  Hanging requests alike, each counted once.
- **The incident**: ``POST https://events.pagerduty.com/v2/enqueue`` (``RELAYGATE_PAGERDUTY_URL``, relaygate's own
  variable, points elsewhere: a proxy, tests) of LiteLLM's body: ``routing_key``, ``event_action: trigger``,
  ``payload`` {``summary`` (``High LLM API Failure Rate: <n> in the last <w> seconds.`` or ``High Number of
  Hanging LLM Requests: ...``), ``severity: critical``, ``source: LiteLLM Alert``, ``component: LiteLLM``,
  ``custom_details: {"recent_errors": [...]}`` (the last five events: ``failure_event_type``, ``error_class``,
  ``error_code``, ``error_llm_provider`` and the key's ``user_api_key_*`` fields; never a key itself)}.
- **Never in the way**: :meth:`PagerDuty.handle` only counts; incidents go through a bounded queue (8) and one
  task, retried twice on a lost connection, a 429 or a 5xx; one lost is counted (``pagerduty_dropped``) and
  logged. Nothing on a request's path awaits PagerDuty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.core.errors import register_secrets
from relaygate.observe.outbox import Outbox
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome, error_class

__all__ = ["PagerDuty", "make_pagerduty", "watch_hanging"]

log = logging.getLogger("relaygate.alerting")

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
URL_ENV = "RELAYGATE_PAGERDUTY_URL"
DEFAULTS = {"failure_threshold": 60, "failure_threshold_window_seconds": 60.0, "hanging_threshold_seconds": 60.0,
            "hanging_threshold_fails": 60, "hanging_threshold_window_seconds": 600.0}
"""LiteLLM's ``PAGERDUTY_DEFAULT_*`` (and the hanging count its code falls back on)."""
RECENT = 5
QUEUE = 8
_FAILED = (Outcome.ERROR, Outcome.STREAM_BROKEN)
_encode = msgspec.json.Encoder().encode


def _args(raw: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, default in DEFAULTS.items():
        v = raw.get(name, default)
        whole = isinstance(default, int)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or (whole and v != int(v)):
            what = "a whole number" if whole else "a number of seconds"
            raise ConfigError("config", f"general_settings.alerting_args.{name}", f"expected {what} >= 0, got {v!r}")
        out[name] = float(v)
    return out


class _Window:
    """Events within the last ``seconds``; ``add`` says whether the window now holds ``threshold`` of them (and
    then starts empty again)."""

    def __init__(self, threshold: float, seconds: float) -> None:
        self.threshold = max(1, int(threshold))
        self.seconds = seconds
        self.events: deque[tuple[float, dict[str, Any]]] = deque()

    def add(self, now: float, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        events = self.events
        events.append((now, event))
        while events and events[0][0] <= now - self.seconds:
            events.popleft()
        if len(events) < self.threshold:
            return None
        n = len(events)
        recent = [e for _, e in list(events)[-RECENT:]]
        events.clear()
        recent.insert(0, {"count": n})
        return recent


class PagerDuty:
    """One worker's PagerDuty incidents (see the module docstring)."""

    name = "pagerduty"

    def __init__(self, routing_key: str, args: Mapping[str, float], *, url: str = EVENTS_URL,
                 on_event: OnEvent | None = None, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                 clock: Any = time.monotonic) -> None:
        self.routing_key = routing_key
        self.url = url
        self.on_event = on_event
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        self.failure_window = args["failure_threshold_window_seconds"]
        self.hanging_threshold = args["hanging_threshold_seconds"]
        self.hanging_window = args["hanging_threshold_window_seconds"]
        self._failures = _Window(args["failure_threshold"], self.failure_window)
        self._hangs = _Window(args["hanging_threshold_fails"], self.hanging_window)
        self.outbox: Outbox[bytes] = Outbox("pagerduty", QUEUE, self._deliver, self._drop_body, timeout=timeout)
        self.sent = 0
        self.dropped = 0

    # -- events (sync, never raise into a request) -----------------------------------------------------

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Count the failed requests of a batch of completion records (a sync sink)."""
        for r in batch:
            if r.outcome in _FAILED:
                self._event(self._failures, "High LLM API Failure Rate", self.failure_window, _failure(r))

    def hanging(self, ex: Any) -> None:
        """A request still unanswered after ``hanging_threshold_seconds`` (:func:`watch_hanging`)."""
        who = getattr(ex, "who", None)
        event = {"failure_event_type": "hanging_response", "error_class": "HangingRequest",
                 "error_code": "HangingRequest", "error_llm_provider": "HangingRequest",
                 **_key_fields(getattr(who, "key_hash", None), getattr(who, "key_alias", None),
                               getattr(who, "team_id", None), getattr(who, "user_id", None), None)}
        self._event(self._hangs, "High Number of Hanging LLM Requests", self.hanging_window, event)

    def _event(self, window: _Window, prefix: str, seconds: float, event: dict[str, Any]) -> None:
        try:
            recent = window.add(self.clock(), event)
            if recent is None:
                return
            n = recent.pop(0)["count"]
            summary = f"{prefix}: {n} in the last {seconds:g} seconds."
            self._put(_encode({"payload": {"summary": summary, "severity": "critical", "source": "LiteLLM Alert",
                                           "component": "LiteLLM", "custom_details": {"recent_errors": recent}},
                               "routing_key": self.routing_key, "event_action": "trigger"}))
        except Exception:  # never into a request
            log.exception("pagerduty: an incident could not be built")

    # -- sending -----------------------------------------------------------------------------------------

    def _put(self, body: bytes) -> None:
        self.outbox.put(body)

    async def _deliver(self, body: bytes, poster: Any) -> None:
        from relaygate.observe.post import PostError

        for attempt in range(self.retries + 1):
            try:
                got = await poster.post(self.url, body, [("content-type", "application/json")])
            except PostError as exc:
                why = str(exc)
            else:
                if 200 <= got.status < 300:
                    self.sent += 1
                    return
                why = f"HTTP {got.status}: {got.text[:200]}"
                if not (got.status == 429 or got.status >= 500):
                    self._drop(f"PagerDuty refused it ({why})")
                    return
            if attempt == self.retries:
                self._drop(f"PagerDuty failed {attempt + 1} time(s), last: {why}")
            else:
                await asyncio.sleep(self.backoff * 2**attempt)

    def _drop_body(self, body: bytes, why: str) -> None:
        self._drop(why)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.on_event is not None:
            self.on_event("pagerduty_dropped", 1)
        log.warning("pagerduty: an incident was not delivered: %s (%d in total)", why, self.dropped)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued within ``timeout`` seconds, then stop."""
        await self.outbox.aclose(timeout)


def _key_fields(key_hash: Any, alias: Any, team: Any, user: Any, route: Any) -> dict[str, Any]:
    return {"user_api_key_hash": key_hash, "user_api_key_alias": alias, "user_api_key_team_id": team,
            "user_api_key_user_id": user, "user_api_key_request_route": route}


def _failure(r: CompletionRecord) -> dict[str, Any]:
    return {"failure_event_type": "failed_response",
            "error_class": r.error_class or error_class(r.status, r.error_type),
            "error_code": str(r.status), "error_llm_provider": r.provider or None,
            **_key_fields(r.key_hash, r.key_alias, r.team_id, r.user_id, r.route)}


async def watch_hanging(hangs: dict[Any, bool], pd: PagerDuty) -> None:
    """Hand ``pd`` every request of ``hangs`` in flight longer than its ``hanging_threshold_seconds``, once each;
    runs until cancelled."""
    threshold = pd.hanging_threshold
    tick = min(max(threshold / 4.0, 0.05), 15.0)
    seen: set[Any] = set()
    while True:
        await asyncio.sleep(tick)
        now = time.perf_counter()
        for ex in list(hangs):
            if ex not in seen and not ex.done and now - ex.t0 >= threshold:
                seen.add(ex)
                pd.hanging(ex)
        seen.intersection_update(hangs)


def make_pagerduty(alerting_args: Mapping[str, Any], env: Mapping[str, str], on_event: OnEvent | None,
                   **options: Any) -> PagerDuty:
    """The worker's PagerDuty alerting; ``ConfigError`` without ``PAGERDUTY_API_KEY`` or with a bad argument."""
    key = (env.get("PAGERDUTY_API_KEY") or "").strip()
    if not key:
        raise ConfigError("environment", "PAGERDUTY_API_KEY", "pagerduty alerting needs the integration's routing key")
    register_secrets([key])
    url = (env.get(URL_ENV) or "").strip() or EVENTS_URL
    if not url.startswith(("http://", "https://")):
        raise ConfigError("environment", URL_ENV, f"expected an http(s) URL, got {url!r}")
    return PagerDuty(key, _args(alerting_args), url=url, on_event=on_event, **options)
