"""LiteLLM's ``gcs_pubsub`` callback: each answered request published to a Google Cloud Pub/Sub topic.

What it owns: :class:`PubSubSink` (the publish URL, the messages of a batch, the bearer token on each attempt)
and its configuration (:func:`make_gcs_pubsub`). Google's credentials are ``observe.gcs_bucket``'s
(:func:`~relaygate.observe.gcs_bucket.google_auth`: ``GCS_PATH_SERVICE_ACCOUNT``, else Application Default
Credentials and the metadata server, the token renewed by the sending task, never on a request's path); the
batching, the bounded buffer, retries with backoff, drop counting and the close are
:class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM's ``GcsPubSubLogger`` reads it: ``GCS_PUBSUB_PROJECT_ID`` and ``GCS_PUBSUB_TOPIC_ID``
(both required: a ``ConfigError`` at start without them, as LiteLLM's ``ValueError``), ``GCS_PATH_SERVICE_ACCOUNT``,
and ``litellm_settings.gcs_pub_sub_use_v1: true`` for LiteLLM's older message, the spend-log row
(``SpendLogsPayload``, :func:`relaygate.store.spend_rows.log_row`) instead of the ``StandardLoggingPayload``
(``observe.standard``, with ``turn_off_message_logging`` / ``callback_settings.gcs_pubsub.message_logging: false``
and ``redact_user_api_key_info`` applied). ``PUBSUB_EMULATOR_HOST`` (``host:port``, the variable Google's own
clients read) sends to that emulator over plain HTTP without credentials; ``GCS_PUBSUB_BASE_URL`` (relaygate's)
names another API origin (default ``https://pubsub.googleapis.com``). ``DEFAULT_BATCH_SIZE`` (at most 1,000, Pub/Sub's
limit per publish) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` are LiteLLM's batch knobs.

Each flush is ``POST {base}/v1/projects/{project}/topics/{topic}:publish`` with ``{"messages": [{"data": <base64
of the payload's JSON>}, ...]}`` and ``Authorization: Bearer <token>``; the project and topic are
percent-encoded in the path. Only answered requests are published (LiteLLM's logger has a success handler only).

Where relaygate differs: a flush publishes up to 1,000 messages in one request (split in two past ~9 MB, under
Pub/Sub's 10 MB), where LiteLLM publishes each message with a request of its own and asks for a new token
for each; a publish is retried on a connection error, ``408``, ``429`` or ``5xx`` and the messages given up on
are counted (``gcs_pubsub_dropped``), where LiteLLM logs and drops; no Enterprise licence is asked for.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import detail_of
from relaygate.observe.exporter_env import ENV_SOURCE, base_url
from relaygate.observe.gcs_bucket import GoogleAuth, google_auth
from relaygate.observe.generic_api import HttpExporter, batching, callback_options
from relaygate.observe.standard import standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord
from relaygate.sinks.spend import spend_row
from relaygate.store.spend_rows import log_row

__all__ = ["DEFAULT_BASE_URL", "PubSubSink", "make_gcs_pubsub"]

NAME = "gcs_pubsub"
DEFAULT_BASE_URL = "https://pubsub.googleapis.com"
MAX_MESSAGES = 1000
"""Messages one publish carries at most (Pub/Sub's limit)."""


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


class PubSubSink(HttpExporter):
    """LiteLLM's ``gcs_pubsub`` callback (module docstring): entries are the payloads' JSON bytes."""

    name = NAME
    max_body = 9_000_000

    def __init__(self, base_url: str, project: str, topic: str, auth: GoogleAuth | None, *, v1: bool = False,
                 redact_key_info: bool = False, redact_messages: bool = False, **options: Any) -> None:
        super().__init__(f"{base_url.rstrip('/')}/v1/projects/{quote(project, safe='')}/topics/"
                         f"{quote(topic, safe='')}:publish", {"Content-Type": "application/json"}, **options)
        self.auth = auth
        self.v1 = v1
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def entry(self, record: CompletionRecord) -> bytes:
        if self.v1:
            return _json(log_row(spend_row(record)))
        return _json(standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                      redact_messages=self.redact_messages))

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _json({"messages": [{"data": base64.b64encode(e).decode("ascii")} for e in entries]})

    async def prepare(self) -> None:
        if self.auth is not None:
            await self.auth.prepare()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        return headers if self.auth is None else [*headers, ("Authorization", self.auth.authorization())]


def make_gcs_pubsub(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                    **options: Any) -> PubSubSink:
    """The ``gcs_pubsub`` sink for ``settings``, configured from ``env`` (module docstring); ``ConfigError`` for a
    missing project or topic, an unusable base URL or emulator host, or credentials that cannot work."""
    project, topic = ((env.get(n) or "").strip() for n in ("GCS_PUBSUB_PROJECT_ID", "GCS_PUBSUB_TOPIC_ID"))
    for name, value in (("GCS_PUBSUB_PROJECT_ID", project), ("GCS_PUBSUB_TOPIC_ID", topic)):
        if not value:
            raise ConfigError(ENV_SOURCE, name, "the gcs_pubsub callback needs GCS_PUBSUB_PROJECT_ID and "
                                                "GCS_PUBSUB_TOPIC_ID")
    emulator = (env.get("PUBSUB_EMULATOR_HOST") or "").strip()
    auth: GoogleAuth | None
    if emulator:
        parts = urlsplit(f"http://{emulator}")
        if not parts.hostname or parts.path or parts.query or "@" in emulator:
            raise ConfigError(ENV_SOURCE, "PUBSUB_EMULATOR_HOST", f"expected host:port, got {emulator!r}")
        base, auth = f"http://{emulator}", None
    else:
        base = base_url(env, "GCS_PUBSUB_BASE_URL", DEFAULT_BASE_URL)
        auth = google_auth(env)
    opts = callback_options(settings, NAME)
    defaults = batching(env, settings, options, batch=MAX_MESSAGES, interval=5.0, batch_max=MAX_MESSAGES)
    return PubSubSink(base, project, topic, auth, v1=settings.gcs_pubsub_v1,
                      success=NAME in settings.success_callbacks, failure=False, on_event=on_event,
                      redact_key_info=settings.redact_user_api_key_info,
                      redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                      **defaults)
