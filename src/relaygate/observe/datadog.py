"""LiteLLM's ``datadog`` callback: one Datadog log per request, sent in gzipped batches to the logs intake.

What it owns: the Datadog log entry of a completion record and the intake's configuration; batching,
retries, bounds and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Each record becomes LiteLLM's ``DatadogPayload``: ``ddsource`` (``DD_SOURCE``, default ``litellm``),
``ddtags`` (``env:<DD_ENV>,service:<DD_SERVICE>,version:<DD_VERSION>,HOSTNAME:<HOSTNAME>,POD_NAME:<POD_NAME>``
with ``unknown`` / ``litellm-server`` / ``""`` defaults as LiteLLM has them, then ``request_tag:<tag>`` per
request tag and ``team:<team alias or id>``, both values normalised as LiteLLM's ``normalize_datadog_tag_value``
does: a tag with a comma would otherwise split in two), ``hostname`` (``HOSTNAME``), ``message`` (the JSON text of
the record's StandardLoggingPayload, :mod:`relaygate.observe.standard`), ``service`` and ``status``
(``info``, or ``error`` for a failure). As LiteLLM does for Datadog, ``messages``, ``response`` and
``error_str`` longer than 10,000 characters are cut to that length as JSON text with LiteLLM's marker.

A batch is a JSON list, gzipped (``Content-Encoding: gzip``), POSTed with the ``DD-API-KEY`` header to
``https://http-intake.logs.<DD_SITE>/api/v2/logs``; with ``LITELLM_DD_AGENT_HOST`` to a Datadog agent at
``http://<host>:<LITELLM_DD_AGENT_PORT or 10518>/api/v2/logs`` (the key is then optional); ``DD_BASE_URL``
replaces the scheme and host (``<DD_BASE_URL>/api/v2/logs``: tests and proxies). Batches hold at most
``DD_BATCH_SIZE`` entries (default and maximum 1000, the intake's limit) and stay under the intake's 5 MB
uncompressed limit (a larger batch, or a ``413``, is split in halves). ``DD_API_KEY`` is registered as a
secret and never logged. Missing ``DD_API_KEY`` (without an agent) or ``DD_SITE`` (without an agent or
``DD_BASE_URL``) is a ``ConfigError`` at start-up.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    HttpExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DD_MAX_BATCH_SIZE", "DD_MAX_PAYLOAD_BYTES", "DatadogSink", "base_tags", "make_datadog", "normalize_tag",
           "truncate_content"]

DD_MAX_BATCH_SIZE = 1000
"""Most log entries the intake takes in one request (LiteLLM's ``DD_MAX_BATCH_SIZE``)."""
DD_MAX_PAYLOAD_BYTES = 4_500_000
"""Batches above this many bytes of JSON are split before sending (the intake refuses 5 MB)."""
MAX_CONTENT_CHARS = 10_000
"""LiteLLM's ``MAX_STR_LENGTH`` for ``messages``, ``response`` and ``error_str`` sent to Datadog."""
TRUNCATED = "...truncated by litellm, this logger does not support large content"
_TRUNCATE_FIELDS = ("error_str", "messages", "response")

_encode = msgspec.json.Encoder(enc_hook=str).encode
_TAG_RUNS = re.compile(r"_+")


@lru_cache(maxsize=4096)
def _normalize_text(text: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "_-:./" else "_" for ch in text.lower())
    return _TAG_RUNS.sub("_", out).strip("_")


def normalize_tag(value: Any) -> str:
    """A tag value as LiteLLM's ``normalize_datadog_tag_value`` writes it: lower case, characters other than
    letters, digits and ``_-:./`` as ``_``, runs of ``_`` as one, none at either end."""
    return _normalize_text(value if isinstance(value, str) else str(value))


def truncate_content(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with ``messages``, ``response`` and ``error_str`` longer than :data:`MAX_CONTENT_CHARS`
    replaced by their cut JSON text (a shallow copy only when something is cut)."""
    out = payload
    for field in _TRUNCATE_FIELDS:
        value = payload.get(field)
        if not value:
            continue
        if isinstance(value, str):
            if len(value) <= MAX_CONTENT_CHARS:
                continue
            text = value
        else:
            text = _encode(value).decode()
            if len(text) <= MAX_CONTENT_CHARS:
                continue
        if out is payload:
            out = dict(payload)
        out[field] = text[:MAX_CONTENT_CHARS] + TRUNCATED
    return out


def base_tags(env: Mapping[str, str]) -> str:
    """The tags every entry carries, as LiteLLM's ``get_datadog_tags`` writes them."""
    return ",".join((f"env:{env.get('DD_ENV', 'unknown')}", f"service:{env.get('DD_SERVICE', 'litellm-server')}",
                     f"version:{env.get('DD_VERSION', 'unknown')}", f"HOSTNAME:{env.get('HOSTNAME', '')}",
                     f"POD_NAME:{env.get('POD_NAME', 'unknown')}"))


class DatadogSink(HttpExporter):
    """LiteLLM's ``datadog`` callback (Datadog logs intake, API v2)."""

    name = "datadog"
    max_body = DD_MAX_PAYLOAD_BYTES

    def __init__(self, url: str, headers: Mapping[str, str], *, source: str = "litellm",
                 service: str = "litellm-server", hostname: str = "", tags: str = "", redact_key_info: bool = False,
                 redact_messages: bool = False, **options: Any) -> None:
        super().__init__(url, headers, **options)
        self.source = source
        self.service = service
        self.hostname = hostname
        self.tags = tags
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def entry(self, record: CompletionRecord) -> Any:
        payload = standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        tags = self.tags
        request_tags = payload["request_tags"]
        if request_tags:
            tags = tags + "," + ",".join(f"request_tag:{normalize_tag(t)}" for t in request_tags)
        meta = payload["metadata"]
        team = meta["user_api_key_team_alias"] or meta["team_alias"] or meta["user_api_key_team_id"] \
            or meta["team_id"]
        if team:
            tags = f"{tags},team:{normalize_tag(team)}"
        return {"ddsource": self.source, "ddtags": tags, "hostname": self.hostname,
                "message": _encode(truncate_content(payload)).decode(), "service": self.service,
                "status": "info" if record.outcome is Outcome.OK else "error"}

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode(entries)

    def wrap(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        return gzip.compress(body, compresslevel=5), {"Content-Encoding": "gzip"}


def make_datadog(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                 **options: Any) -> DatadogSink:
    """The ``datadog`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module essay).
    ``options`` override :class:`~relaygate.observe.generic_api.HttpExporter`'s defaults. Raises
    ``ConfigError`` when the intake cannot be reached for want of a key or site."""
    api_key = (env.get("DD_API_KEY") or "").strip()
    agent = (env.get("LITELLM_DD_AGENT_HOST") or "").strip()
    base_url = (env.get("DD_BASE_URL") or "").strip().rstrip("/")
    site = (env.get("DD_SITE") or "").strip()
    if agent:
        port = (env.get("LITELLM_DD_AGENT_PORT") or "10518").strip()
        url = f"http://{agent}:{port}/api/v2/logs"
    else:
        if not api_key:
            raise ConfigError(ENV_SOURCE, "DD_API_KEY", "the datadog callback needs DD_API_KEY (or a Datadog "
                              "agent in LITELLM_DD_AGENT_HOST)")
        if not site and not base_url:
            raise ConfigError(ENV_SOURCE, "DD_SITE", "the datadog callback needs DD_SITE (e.g. us5.datadoghq.com)")
        url = f"https://http-intake.logs.{site}/api/v2/logs"
    if base_url:
        url = f"{base_url}/api/v2/logs"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(ENV_SOURCE, "DD_BASE_URL" if base_url else "DD_SITE", f"not a usable intake URL: {url}")
    headers = {"Content-Type": "application/json"}
    if api_key:
        register_secrets([api_key])
        headers["DD-API-KEY"] = api_key
    opts = callback_options(settings, "datadog")
    success, failure = event_flags(settings, "datadog", opts.get("event_types"),
                                   "litellm_settings.callback_settings.datadog.event_types")
    defaults = batching(env, settings, options,
                        batch=DD_MAX_BATCH_SIZE, batch_var="DD_BATCH_SIZE", batch_max=DD_MAX_BATCH_SIZE)
    return DatadogSink(url, headers, source=env.get("DD_SOURCE", "litellm"),
                       service=env.get("DD_SERVICE", "litellm-server"), hostname=env.get("HOSTNAME", ""),
                       tags=base_tags(env), success=success, failure=failure, on_event=on_event,
                       redact_key_info=settings.redact_user_api_key_info,
                       redact_messages=opts.get("message_logging") is False or opts.get("turn_off_message_logging")
                       is True, **defaults)
