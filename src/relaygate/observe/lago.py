"""LiteLLM's ``lago`` callback: a usage-billing event per answered request, sent to Lago's events API.

What it owns: the event of a completion record (:func:`event_of`), which subscription it bills
(:func:`subscription_of`) and the endpoint's configuration; batching, retries with backoff, the bounded buffer,
drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s. It reads the record alone
(no :class:`~relaygate.observe.detail.Detail`: it is not in ``capture.DETAILED``).

Configuration, as LiteLLM reads it from the environment: ``LAGO_API_BASE`` (required; the Lago API's base URL,
``http://localhost:3000`` self-hosted or ``https://api.getlago.com``; trailing slashes stripped, then
``/api/v1/events/batch``; an http(s) URL without query or fragment), ``LAGO_API_KEY`` (required; sent as
``Authorization: Bearer <key>``, registered as a secret and never logged), ``LAGO_API_EVENT_CODE`` (required; the
billable metric's code, each event's ``code``) and ``LAGO_API_CHARGE_BY`` (optional: ``end_user_id``, the default,
``user_id`` or ``team_id``; see below). LiteLLM's logger raises at start when one of the three required variables
is unset, so relaygate refuses to start (``ConfigError``) then too. Batching knobs, LiteLLM's batch loggers' names:
``DEFAULT_BATCH_SIZE`` (here 100 by default and at most 100: Lago's batch endpoint takes at most 100 events a
request and refuses a larger batch whole; a self-hosted Lago with a lower ``LAGO_EVENTS_BATCH_MAX_LENGTH`` needs
``DEFAULT_BATCH_SIZE`` at most that) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5, bounded to 0.01..300).

Only answered requests are billed (LiteLLM's logger has a success hook and no failure hook): a failure, and a
stream the client left or that broke (LiteLLM's success handler never sees an incomplete stream), sends nothing,
whichever callback lists name ``lago``. A record of a team with logging off sends nothing.

The event (LiteLLM's ``_common_logic``), in LiteLLM's field order: ``transaction_id``,
``external_subscription_id``, ``code``, then (relaygate's, below) ``timestamp``, and ``properties``: ``model``
(the upstream model, LiteLLM's ``kwargs["model"]``), ``response_cost`` (the request's cost in USD),
``prompt_tokens``, ``completion_tokens``, ``total_tokens``. The subscription billed is, by
``LAGO_API_CHARGE_BY``: ``end_user_id`` the request's end user (the body's ``user``, or the
``user_header_name`` header, which LiteLLM copies into the body it reads; relaygate also takes the
``x-litellm-end-user-id`` / ``x-litellm-customer-id`` headers, LiteLLM's other ways of naming the customer), with
no fallback to the key's user (LiteLLM's proxy reads the request body's ``user``, which it does not fill from the
key on chat routes); ``user_id`` the user id of the request's key; ``team_id`` its key's team. A request without
one is not sent (LiteLLM raises ``External Customer ID is not set``): it is counted as ``lago_dropped``
(LiteLLM's ``litellm_callback_logging_failures_metric{callback_name="lago"}``, which LiteLLM increments when its
logger raises) and logged at most once a minute.

Where relaygate differs from LiteLLM, on purpose:

- Events are batched: each flush is one ``POST <LAGO_API_BASE>/api/v1/events/batch`` of ``{"events": [...]}``,
  each item the object LiteLLM sends one at a time to ``/api/v1/events`` as ``{"event": {...}}`` (the same
  fields, the same headers). LiteLLM sends one request per event on the request's own task and loses the event
  when Lago does not answer; here a send that fails on a connection error, a timeout, 408, 429 or a 5xx is
  retried with backoff and a dropped event is counted.
- ``transaction_id`` is the request's call id (``x-litellm-call-id``), not a fresh random UUID per send. Lago
  deduplicates on it (a unique index on organization, subscription and ``transaction_id``; with its ClickHouse
  event store, on ``transaction_id`` and ``timestamp``), so a batch sent again after an answer was lost never
  bills twice. With the Postgres store Lago then refuses the repeated batch whole (422, ``value_already_exist``):
  its events were billed by the first send, though the exporter counts them as dropped.
- ``timestamp`` is sent: when the request ended, in seconds (milliseconds as decimals), the same on every retry.
  LiteLLM sends none, so Lago stamps the event's arrival, which differs on a retry (the ClickHouse store would
  then keep both copies) and bills a request sent late, after a Lago outage, to the wrong period.
- Token counts are sent for every route (0 when the route has none); LiteLLM sends them only for chat completions
  and embeddings (its ``ModelResponse`` / ``EmbeddingResponse``), so a metric summing ``total_tokens`` misses
  ``/v1/responses``, ``/v1/messages`` and ``/v1/completions`` there. ``response_cost`` is always a number (0
  when relaygate knows no price); LiteLLM sends ``null`` when its cost calculation fails.
- Configuration errors stop the start, where LiteLLM fails every event instead: a ``LAGO_API_CHARGE_BY`` other
  than the three values (LiteLLM raises ``invalid LAGO_API_CHARGE_BY set`` on each event; an empty one here means
  the default), an empty ``LAGO_API_KEY`` (LiteLLM sends ``Bearer ``: 401), an empty ``LAGO_API_EVENT_CODE``
  (Lago refuses an event without ``code``), a ``LAGO_API_BASE`` that is not an http(s) URL, and a key with a
  control character (it cannot go in a header).
- With ``disable_end_user_cost_tracking``, relaygate records no end user, so ``end_user_id`` charging finds no
  subscription and drops (and counts) every event; LiteLLM's logger reads the body's ``user`` regardless.
  Charge by ``user_id`` or ``team_id`` with that setting.
- The events carry no messages and no answers, so ``turn_off_message_logging`` and
  ``callback_settings.lago.message_logging`` have nothing to remove; ``redact_user_api_key_info`` does not blank
  the subscription: the key's user or team id is the billing identity the callback exists to send (LiteLLM reads
  it from the request's metadata, unredacted, too). Keys' and teams' ``metadata.logging`` entries do not apply
  (LiteLLM's logger reads only the environment).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.generic_api import ENV_SOURCE, BillingExporter, batching, event_flags, url_secrets
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["BATCH_MAX", "CHARGE_BY", "Event", "LagoSink", "Properties", "batch_url", "event_of", "make_lago",
           "subscription_of"]

CHARGE_BY = ("end_user_id", "user_id", "team_id")
"""``LAGO_API_CHARGE_BY``'s values, the default first."""
BATCH_MAX = 100
"""Events Lago's batch endpoint takes in one request (its ``LAGO_EVENTS_BATCH_MAX_LENGTH`` default)."""
BATCH_PATH = "/api/v1/events/batch"


class Properties(msgspec.Struct, gc=False):
    """An event's ``properties``: what a billable metric aggregates (``response_cost``, ``total_tokens`` ...) and
    filters on (``model``), in LiteLLM's order."""

    model: str
    response_cost: float
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Event(msgspec.Struct, gc=False):
    """One usage event as Lago's events API takes it."""

    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: float
    properties: Properties


_encode = msgspec.json.Encoder().encode


def subscription_of(record: CompletionRecord, charge_by: str = "end_user_id") -> str | None:
    """The ``external_subscription_id`` a request bills (module docstring): its end user, its key's user or its
    key's team, as ``charge_by`` says. None: nobody, and Lago could not bill the event."""
    if charge_by == "end_user_id":
        who = record.end_user_id
    elif charge_by == "user_id":
        who = record.user_id
    else:
        who = record.team_id
    return who or None


def event_of(record: CompletionRecord, subscription: str, code: str) -> Event:
    """The Lago event of one answered request billed to ``subscription`` under the billable metric ``code``."""
    r = record
    cost = r.cost
    if not 0.0 < cost < float("inf"):  # NaN, negative and unknown costs bill nothing
        cost = 0.0
    end = r.start_time + r.latency if r.start_time > 0.0 else time.time()
    props = Properties(r.upstream_model or r.model, cost, r.prompt_tokens, r.completion_tokens,
                       r.prompt_tokens + r.completion_tokens)
    return Event(r.call_id, subscription, code, round(end, 3), props)


def batch_url(base: str) -> str:
    """The batch endpoint of a ``LAGO_API_BASE``; ``ValueError`` for one that is not an http(s) URL, has a query
    or fragment, or holds a control character."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in base):
        raise ValueError("control characters refused")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected an http(s) URL without query or fragment")  # the value unsaid: it may hold a key
    return base.rstrip("/") + BATCH_PATH


class LagoSink(BillingExporter):
    """LiteLLM's ``lago`` callback (Lago's batch events API): an event per answered request with a subscription
    to bill, sent in batches of at most :data:`BATCH_MAX`."""

    name = "lago"

    def __init__(self, url: str, api_key: str, code: str, *, charge_by: str = "end_user_id",
                 **options: Any) -> None:
        options["failure"] = False  # LiteLLM's logger bills successes only
        options["batch_size"] = min(max(1, options.get("batch_size", BATCH_MAX)), BATCH_MAX)
        super().__init__(url, {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
                         **options)
        self.code = code
        self.charge_by = charge_by

    def entry(self, record: CompletionRecord) -> Event | None:
        """The record's event, or None when it names no subscription to bill."""
        subscription = subscription_of(record, self.charge_by)
        return event_of(record, subscription, self.code) if subscription else None

    def unbilled_reason(self) -> str:
        return f"had no {self.charge_by} (LAGO_API_CHARGE_BY): Lago needs an external_subscription_id"

    def encode(self, entries: Sequence[Any]) -> bytes:
        return b'{"events":' + _encode(entries) + b"}"


def make_lago(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
              **options: Any) -> LagoSink:
    """The ``lago`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without ``LAGO_API_BASE``,
    ``LAGO_API_KEY`` or ``LAGO_API_EVENT_CODE``, or with a value that cannot work."""
    missing = [n for n in ("LAGO_API_KEY", "LAGO_API_BASE", "LAGO_API_EVENT_CODE") if not (env.get(n) or "").strip()]
    if missing:
        raise ConfigError(ENV_SOURCE, missing[0], f"the lago callback needs {', '.join(missing)}")
    api_key = env["LAGO_API_KEY"].strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_key):
        raise ConfigError(ENV_SOURCE, "LAGO_API_KEY", "control characters cannot go in a header")
    register_secrets([api_key])
    try:
        url = batch_url(env["LAGO_API_BASE"].strip())
    except ValueError as exc:
        raise ConfigError(ENV_SOURCE, "LAGO_API_BASE", str(exc)) from None
    register_secrets(url_secrets(url))
    code = env["LAGO_API_EVENT_CODE"].strip()
    charge_by = (env.get("LAGO_API_CHARGE_BY") or "").strip() or CHARGE_BY[0]
    if charge_by not in CHARGE_BY:
        raise ConfigError(ENV_SOURCE, "LAGO_API_CHARGE_BY", f"expected one of {', '.join(CHARGE_BY)}, "
                                                            f"got {charge_by[:40]!r}")
    success, _ = event_flags(settings, "lago", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch=BATCH_MAX, batch_max=BATCH_MAX)
    return LagoSink(url, api_key, code, charge_by=charge_by, success=success, on_event=on_event, **defaults)
