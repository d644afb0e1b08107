"""LiteLLM's ``openmeter`` callback: a usage-based-billing CloudEvent per answered request, POSTed to OpenMeter.

What it owns: the event of a completion record (:func:`event_of`), who it bills (:func:`subject_of`) and the
endpoint's configuration; batching, retries with backoff, the bounded buffer, drop counting and shutdown are
:class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM reads it from the environment: ``OPENMETER_API_KEY`` (required: LiteLLM's logger raises
at start without it, so relaygate refuses to start; an empty value or one with a control character is refused
too; sent as ``Authorization: Bearer <key>``, registered as a secret and never logged),
``OPENMETER_API_ENDPOINT`` (default ``https://openmeter.cloud``; trailing slashes stripped, then
``/api/v1/events``; an http(s) URL without query or fragment), ``OPENMETER_EVENT_TYPE`` (the events' ``type``,
which OpenMeter's meters match; default ``litellm_tokens``), ``OPENMETER_TRUST_REQUEST_USER`` (default true: only
``false``, in any case, turns it off; see the subject below). Batching knobs, LiteLLM's batch loggers' names:
``DEFAULT_BATCH_SIZE`` (512, bounded to 1..10000) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5, bounded to
0.01..300).

Only answered requests are billed (LiteLLM's logger has a success hook and no failure hook): a failure, and a
stream the client left or that broke (LiteLLM's success handler never sees an incomplete stream), sends nothing,
whichever callback lists name ``openmeter``. A record of a team with logging off sends nothing.

The event (LiteLLM's ``_common_logic``), CloudEvents 1.0 in JSON: ``specversion`` ``"1.0"``, ``type``, ``id``,
``time`` (ISO 8601 in UTC, ``+00:00``), ``subject``, ``source`` ``"litellm-proxy"`` and ``data``: ``model`` (the
upstream model, LiteLLM's ``kwargs["model"]``), ``cost`` (the request's cost in USD), ``prompt_tokens``,
``completion_tokens``, ``total_tokens``. The subject is the request's user (LiteLLM's ``kwargs["user"]``): the
end user relaygate records for it (the body's ``user``, or the ``x-litellm-end-user-id`` /
``x-litellm-customer-id`` / ``user_header_name`` header), else the user id of its key, as LiteLLM's proxy fills
``user`` from the key; with ``OPENMETER_TRUST_REQUEST_USER=false`` only the key's user id (a client cannot then
bill another customer by naming it). OpenMeter refuses an event without a subject (its schema: required, at
least one character) and refuses the whole batch with it, so such a request's event is not sent: it is counted
as ``openmeter_dropped`` (LiteLLM's ``litellm_callback_logging_failures_metric{callback_name="openmeter"}``, which
LiteLLM increments when its logger raises ``OpenMeter: user is required``) and logged at most once a minute.

Where relaygate differs from LiteLLM, on purpose:

- Events are batched: each flush is one ``POST`` of a JSON array with ``Content-Type:
  application/cloudevents-batch+json`` (OpenMeter's batch ingest, answered 204). LiteLLM sends one request per
  event (``application/cloudevents+json``), on the request's own task, and loses the event when OpenMeter does
  not answer; here a send that fails on a connection error, a timeout, 408, 429 or a 5xx is retried with backoff
  and a dropped event is counted.
- ``id`` is the request's call id (``x-litellm-call-id``): unique per request and the same when a batch is sent
  again. LiteLLM sends the provider's response id (the call id when there is none). OpenMeter deduplicates events
  by ``id`` and ``source``, so with response ids a cache hit (which replays the stored answer's id) or an upstream
  that repeats ids would be billed once for many requests; with call ids a retried batch is still never billed
  twice.
- ``time`` is when the request ended; LiteLLM stamps the moment its logger ran.
- Token counts are sent for every route (0 when the route has none); LiteLLM sends them only for chat
  completions and embeddings (the answers that are its ``ModelResponse`` / ``EmbeddingResponse``), so a meter
  summing ``$.total_tokens`` misses ``/v1/responses``, ``/v1/messages`` and ``/v1/completions`` there. ``cost``
  is always a number (0 when relaygate knows no price); LiteLLM sends ``null`` when its cost calculation fails.
- ``OPENMETER_EVENT_TYPE`` set empty means the default (LiteLLM would send an empty ``type``, which OpenMeter
  refuses); an empty ``OPENMETER_API_KEY`` is refused at start (LiteLLM sends ``Bearer `` and every event fails).
- The events carry no messages and no answers, so ``turn_off_message_logging`` and
  ``callback_settings.openmeter.message_logging`` have nothing to remove; ``redact_user_api_key_info`` does not
  blank the subject: the key's user id is the billing identity the callback exists to send (LiteLLM reads it
  unredacted too), and the event has no other ``user_api_key_*`` field. Keys' and teams' ``metadata.logging``
  entries do not apply (LiteLLM's logger reads only the environment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    BillingExporter,
    batching,
    event_flags,
    url_secrets,
)
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["CONTENT_TYPE", "DEFAULT_ENDPOINT", "DEFAULT_EVENT_TYPE", "SOURCE", "Event", "OpenmeterSink",
           "Usage", "event_of", "events_url", "make_openmeter", "subject_of"]

DEFAULT_ENDPOINT = "https://openmeter.cloud"
DEFAULT_EVENT_TYPE = "litellm_tokens"
SOURCE = "litellm-proxy"
"""The events' ``source`` (LiteLLM's; with ``id``, what OpenMeter deduplicates on)."""
CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_BODY = 4 * 1024 * 1024
"""Bytes a batch POST holds at most (a larger batch is split; a 413 splits it too)."""


class Usage(msgspec.Struct, gc=False):
    """An event's ``data``: what a meter reads (``$.cost``, ``$.total_tokens`` ...) and groups by (``$.model``)."""

    model: str
    cost: float
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Event(msgspec.Struct, gc=False):
    """One CloudEvent as OpenMeter ingests it, in LiteLLM's field order."""

    specversion: str
    type: str
    id: str
    time: str
    subject: str
    source: str
    data: Usage


_encode = msgspec.json.Encoder().encode


def subject_of(record: CompletionRecord, *, trust_request_user: bool = True) -> str | None:
    """Who the request bills (module docstring): its end user, else its key's user; only the key's user when the
    request's own is not trusted. None: nobody, and OpenMeter would refuse the event."""
    if trust_request_user and record.end_user_id:
        return record.end_user_id
    return record.user_id or None


def event_of(record: CompletionRecord, subject: str, event_type: str = DEFAULT_EVENT_TYPE) -> Event:
    """The OpenMeter event of one answered request billed to ``subject``."""
    r = record
    cost = r.cost
    if not 0.0 < cost < float("inf"):  # NaN, negative and unknown costs bill nothing
        cost = 0.0
    end = datetime.fromtimestamp(r.start_time + r.latency, UTC).isoformat(timespec="microseconds")
    usage = Usage(r.upstream_model or r.model, cost, r.prompt_tokens, r.completion_tokens,
                  r.prompt_tokens + r.completion_tokens)
    return Event("1.0", event_type, r.call_id, end, subject, SOURCE, usage)


def events_url(endpoint: str) -> str:
    """The ingest URL of an ``OPENMETER_API_ENDPOINT``; ``ValueError`` for one that is not an http(s) URL, has a
    query or fragment, or holds a control character."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in endpoint):
        raise ValueError("control characters refused")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected an http(s) URL without query or fragment")  # the value unsaid: it may hold a key
    return f"{endpoint.rstrip('/')}/api/v1/events"


class OpenmeterSink(BillingExporter):
    """LiteLLM's ``openmeter`` callback (OpenMeter's CloudEvents ingest API): an event per answered request with
    a subject, sent in batches."""

    name = "openmeter"
    max_body = MAX_BODY

    def __init__(self, url: str, api_key: str, *, event_type: str = DEFAULT_EVENT_TYPE,
                 trust_request_user: bool = True, **options: Any) -> None:
        options["failure"] = False  # LiteLLM's logger bills successes only
        super().__init__(url, {"Authorization": f"Bearer {api_key}", "Content-Type": CONTENT_TYPE}, **options)
        self.event_type = event_type
        self.trust_request_user = trust_request_user

    def entry(self, record: CompletionRecord) -> Event | None:
        """The record's event, or None when it names nobody to bill."""
        subject = subject_of(record, trust_request_user=self.trust_request_user)
        return event_of(record, subject, self.event_type) if subject else None

    def unbilled_reason(self) -> str:
        who = "a user or a key with a user id" if self.trust_request_user else "a key with a user id"
        return f"had no subject: OpenMeter needs one ({who})"

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode(entries)


def make_openmeter(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                   **options: Any) -> OpenmeterSink:
    """The ``openmeter`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without ``OPENMETER_API_KEY``,
    or with a key or endpoint that cannot work."""
    api_key = (env.get("OPENMETER_API_KEY") or "").strip()
    if not api_key:
        raise ConfigError(ENV_SOURCE, "OPENMETER_API_KEY", "the openmeter callback needs OPENMETER_API_KEY")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_key):
        raise ConfigError(ENV_SOURCE, "OPENMETER_API_KEY", "control characters cannot go in a header")
    register_secrets([api_key])
    endpoint = (env.get("OPENMETER_API_ENDPOINT") or "").strip() or DEFAULT_ENDPOINT
    try:
        url = events_url(endpoint)
    except ValueError as exc:
        raise ConfigError(ENV_SOURCE, "OPENMETER_API_ENDPOINT", str(exc)) from None
    register_secrets(url_secrets(url))
    event_type = (env.get("OPENMETER_EVENT_TYPE") or "").strip() or DEFAULT_EVENT_TYPE
    trust = (env.get("OPENMETER_TRUST_REQUEST_USER") or "true").strip().lower() != "false"
    success, _ = event_flags(settings, "openmeter", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options)
    return OpenmeterSink(url, api_key, event_type=event_type, trust_request_user=trust, success=success,
                         on_event=on_event, **defaults)
