"""LiteLLM's ``datadog_metrics`` callback: each request's latencies and count as Datadog metric points.

What it owns: the series one completion record becomes and the metrics API's configuration; batching, retries,
bounds and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Each record becomes LiteLLM's points, stamped with the request's end (whole seconds):

- ``litellm.request.total_latency`` (gauge, type 3): the request's seconds, end to end;
- ``litellm.llm_api.latency`` (gauge): the provider's share of them (the request's less the gateway's overhead),
  only when a deployment was called;
- ``litellm.overhead.latency`` (gauge): the gateway's overhead in seconds (without the ``status_code`` tag, as
  LiteLLM sends it);
- ``litellm.llm_api.request_count`` (count, type 1, ``interval`` the flush period): 1.

Tags, as LiteLLM's ``_extract_tags``: ``env:<DD_ENV>``, ``service:<DD_SERVICE>``, ``version:<DD_VERSION>``,
``HOSTNAME:<HOSTNAME>``, ``POD_NAME:<POD_NAME>`` (LiteLLM's defaults), then ``provider:``, ``model_name:`` (the
deployment's model), ``model_group:``, ``status_code:`` (200, or the failure's status) and ``team:`` (the team's
alias, else its id, normalised as Datadog tag values are). Where relaygate differs: the provider, model and model
group tags are written only when a configured deployment served the request, so a client's unknown model name
never becomes a tag (a series of its own in the operator's Datadog bill); LiteLLM tags what the request named.

A batch is ``{"series": [...]}``, gzipped, POSTed with ``DD-API-KEY`` (and ``DD-APPLICATION-KEY`` when
``DD_APP_KEY`` is set) to ``https://api.<DD_SITE>/api/v2/series`` (``DD_SITE``: ``datadoghq.com`` by default, as
LiteLLM's metrics logger has it); ``DD_BASE_URL`` replaces the scheme and host (a proxy, tests). Every five
seconds (``DEFAULT_FLUSH_INTERVAL_SECONDS``) or ``DEFAULT_BATCH_SIZE`` requests. ``DD_API_KEY`` is required (LiteLLM
logs a warning and sends nothing; here the start stops) and registered as a secret.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.datadog import DD_MAX_PAYLOAD_BYTES, base_tags, normalize_tag
from relaygate.observe.generic_api import ENV_SOURCE, HttpExporter, batching, callback_options, event_flags
from relaygate.observe.standard import detail_of
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DatadogMetricsSink", "make_datadog_metrics", "series_of"]

GAUGE, COUNT = 3, 1
_encode = msgspec.json.Encoder().encode


def series_of(record: CompletionRecord, base: Sequence[str], interval: float) -> list[dict[str, Any]]:
    """LiteLLM's metric series of one record (module docstring)."""
    r = record
    tags = list(base)
    if r.deployment_id:
        if r.provider:
            tags.append(f"provider:{r.provider}")
        if r.upstream_model:
            tags.append(f"model_name:{r.upstream_model}")
        if r.model_group:
            tags.append(f"model_group:{r.model_group}")
    detail = detail_of(r)
    team = (detail.team_alias if detail is not None else None) or r.team_alias or r.team_id
    if team:
        tags.append(f"team:{normalize_tag(team)}")
    status = tags + [f"status_code:{200 if r.outcome is Outcome.OK else r.status or 500}"]
    end = r.start_time + max(0.0, r.latency) if r.start_time else 0.0
    stamp = int(end)
    latency, overhead = max(0.0, r.latency), max(0.0, r.overhead)
    out = [{"metric": "litellm.request.total_latency", "type": GAUGE,
            "points": [{"timestamp": stamp, "value": latency}], "tags": status}]
    if r.deployment_id:
        out.append({"metric": "litellm.llm_api.latency", "type": GAUGE,
                    "points": [{"timestamp": stamp, "value": max(0.0, latency - overhead)}], "tags": status})
    out.append({"metric": "litellm.overhead.latency", "type": GAUGE,
                "points": [{"timestamp": stamp, "value": overhead}], "tags": tags})
    out.append({"metric": "litellm.llm_api.request_count", "type": COUNT,
                "points": [{"timestamp": stamp, "value": 1.0}], "tags": status, "interval": int(interval)})
    return out


class DatadogMetricsSink(HttpExporter):
    """LiteLLM's ``datadog_metrics`` callback (Datadog metrics API, v2 series)."""

    name = "datadog_metrics"
    max_body = DD_MAX_PAYLOAD_BYTES

    def __init__(self, url: str, headers: Mapping[str, str], *, tags: Sequence[str] = (), **options: Any) -> None:
        super().__init__(url, headers, **options)
        self.tags = tuple(tags)

    def entry(self, record: CompletionRecord) -> Any:
        return series_of(record, self.tags, self.flush_interval)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"series": [s for e in entries for s in e]})

    def wrap(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        return gzip.compress(body, compresslevel=5), {"Content-Encoding": "gzip"}


def make_datadog_metrics(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                         **options: Any) -> DatadogMetricsSink:
    """The ``datadog_metrics`` sink, configured from ``env`` as LiteLLM reads it (module docstring); ``ConfigError``
    without ``DD_API_KEY`` or with an unusable URL."""
    api_key = (env.get("DD_API_KEY") or "").strip()
    if not api_key:
        raise ConfigError(ENV_SOURCE, "DD_API_KEY", "the datadog_metrics callback needs DD_API_KEY")
    base_url = (env.get("DD_BASE_URL") or "").strip().rstrip("/")
    site = (env.get("DD_SITE") or "").strip() or "datadoghq.com"
    url = f"{base_url}/api/v2/series" if base_url else f"https://api.{site}/api/v2/series"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(ENV_SOURCE, "DD_BASE_URL" if base_url else "DD_SITE", f"not a usable metrics URL: {url}")
    register_secrets([api_key])
    headers = {"Content-Type": "application/json", "DD-API-KEY": api_key}
    app_key = (env.get("DD_APP_KEY") or "").strip()
    if app_key:
        register_secrets([app_key])
        headers["DD-APPLICATION-KEY"] = app_key
    opts = callback_options(settings, "datadog_metrics")
    success, failure = event_flags(settings, "datadog_metrics", opts.get("event_types"),
                                   "litellm_settings.callback_settings.datadog_metrics.event_types")
    defaults = batching(env, settings, options)
    return DatadogMetricsSink(url, headers, tags=base_tags(env).split(","), success=success, failure=failure,
                              on_event=on_event, **defaults)
