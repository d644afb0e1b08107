"""LiteLLM's ``agentops`` callback: the ``otel`` spans sent to AgentOps over OTLP, with the JWT AgentOps issues.

What it owns: where it exports and with which credential, read from the environment as LiteLLM and the AgentOps
SDK read it; :class:`AgentOpsToken`, the token exchange; :class:`AgentOpsExporter`, the ``otel`` wire exporter
that sends with that token; and :class:`AgentOpsSink`, the :class:`~relaygate.observe.otel.OtelSink` behind the
callback name. The spans are the ``otel`` callback's (a ``Received Proxy Server Request`` span with LiteLLM's
and the GenAI conventions' attributes, a span per upstream attempt), as LiteLLM's AgentOps logger is its
OpenTelemetry logger with another exporter configuration:

- **Credential**: ``AGENTOPS_API_KEY`` is POSTed as ``{"api_key": ...}`` to ``<AGENTOPS_API_ENDPOINT>/v3/auth/token``
  (``https://api.agentops.ai`` by default); the answer's ``token`` is sent as ``Authorization: Bearer <token>``
  with every export, its ``project_id`` becomes the ``project.id`` resource attribute.
- **Destination**: OTLP HTTP/protobuf to ``AGENTOPS_EXPORTER_ENDPOINT`` (``https://otlp.agentops.cloud/v1/traces``
  by default). The two endpoint variables are the AgentOps SDK's (a self-hosted AgentOps); LiteLLM reads neither.
- **Resource**: ``service.name`` ``AGENTOPS_SERVICE_NAME`` (``agentops``), ``deployment.environment``
  ``AGENTOPS_ENVIRONMENT`` (``production``), ``telemetry.sdk.name`` ``agentops``, ``project.id``.

The other ``OTEL_*`` variables (timeout, compression, certificates, resource, batch processor, sampler) apply as
for ``otel``; the destination ones do not, so ``otel`` can export to a collector beside it. Drops (a batch the
token could not be had for, or the endpoint refused) are counted as ``agentops_dropped`` and in
``litellm_callback_logging_failures_metric{callback_name="agentops"}``.

Where relaygate differs from LiteLLM, which fetches the token once, in the constructor, and swallows a failure:
- the exchange runs on the exporter's thread before the first export, never on the event loop or at start-up (an
  AgentOps API that is down or slow delays no start and no request);
- a failed exchange is tried again at the next export, at most every :data:`RETRY_S` seconds (LiteLLM then sends
  every batch without a credential for the process's life); a token is renewed a minute before the ``exp`` its
  JWT states, and once more when the endpoint answers 401 or 403 (LiteLLM's expires and every later export fails);
- a missing ``AGENTOPS_API_KEY`` stops the start (LiteLLM starts and sends spans AgentOps refuses).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.exporter_env import api_key, base_url, has_control
from relaygate.observe.otel import OtelSink, OtlpSettings, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_presets import _DESTINATION, _var
from relaygate.observe.otlp_wire import EncodedSpan, WireSpanExporter
from relaygate.sinks.queue import OnEvent

__all__ = ["API_DEFAULT", "EXPORTER_DEFAULT", "AgentOpsExporter", "AgentOpsSink", "AgentOpsToken",
           "agentops_settings", "make_agentops"]

log = logging.getLogger("relaygate.observe")

API_DEFAULT = "https://api.agentops.ai"
AUTH_PATH = "/v3/auth/token"
EXPORTER_DEFAULT = "https://otlp.agentops.cloud/v1/traces"
RETRY_S = 30.0
"""Seconds between two token exchanges after one failed (exports in between are dropped, counted)."""
RENEW_BEFORE_S = 60.0
"""A token is renewed this long before its ``exp``."""
MAX_ANSWER = 64 * 1024
"""Bytes of the token endpoint's answer read (a JWT and a project id are a few hundred)."""
_ENV = "environment"


def agentops_settings(settings: ObserveSettings, env: Mapping[str, str]) -> tuple[OtlpSettings, str, str]:
    """The exporter configuration, the API key and the token endpoint (module docstring); ``ConfigError`` naming
    a missing or unusable variable."""
    key = api_key(env, "AGENTOPS_API_KEY", "agentops")
    api = base_url(env, "AGENTOPS_API_ENDPOINT", API_DEFAULT)
    endpoint = _var(env, "AGENTOPS_EXPORTER_ENDPOINT") or EXPORTER_DEFAULT
    if has_control(endpoint) or not endpoint.startswith(("http://", "https://")):
        raise ConfigError(_ENV, "AGENTOPS_EXPORTER_ENDPOINT", "expected an http(s) URL")
    cfg = otlp_settings(settings, {k: v for k, v in env.items() if k not in _DESTINATION})
    resource = {**cfg.resource, "service.name": _var(env, "AGENTOPS_SERVICE_NAME") or "agentops",
                "deployment.environment": _var(env, "AGENTOPS_ENVIRONMENT") or "production",
                "telemetry.sdk.name": "agentops"}
    cfg = dataclasses.replace(cfg, protocol="http/protobuf", endpoint=endpoint, headers={}, resource=resource)
    return cfg, key, api + AUTH_PATH


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` (epoch seconds) a JWT's payload states, unverified (only to know when to renew); None if it
    states none or is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        value = float(exp)
    except OverflowError:  # an integer past a double's range
        return None
    return value if math.isfinite(value) else None


class AgentOpsToken:
    """The JWT AgentOps issues for the API key, exchanged and renewed on the exporter's thread (never the loop).

    ``post`` (tests, another transport) takes the URL, the JSON body and a timeout and returns the status and the
    answer's bytes; by default ``urllib``. ``clock`` gives the wall-clock time (tests step it)."""

    def __init__(self, api_key: str, url: str, timeout: float,
                 post: Callable[[str, bytes, float], tuple[int, bytes]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        self.timeout = timeout
        self._body = json.dumps({"api_key": api_key}).encode()
        self._post = post or _urllib_post
        self._lock = threading.Lock()
        self.token: str | None = None
        self.project_id: str | None = None
        self.renew_at = 0.0
        """Wall-clock time after which the token is exchanged again (its ``exp`` less a minute; never, without one)."""
        self._next_try = 0.0
        self.exchanges = 0
        """Exchanges attempted (tests, ``/health/services``-style checks)."""

    def current(self) -> str | None:
        """A usable token: the held one, else (or when it is due for renewal) a new one; None when the exchange
        failed now or within :data:`RETRY_S` seconds."""
        with self._lock:
            now = self._clock()
            if self.token is not None and (self.renew_at == 0.0 or now < self.renew_at):
                return self.token
            if now < self._next_try:
                return self.token  # a renewal failed recently: the old token may still be accepted
            return self._exchange(now)

    def renew(self, refused: str | None) -> str | None:
        """The endpoint refused ``refused``: a new token (once per refused token; None if none can be had)."""
        with self._lock:
            if self.token != refused:
                return self.token  # another export renewed it meanwhile
            self.token = None
            now = self._clock()
            return self._exchange(now) if now >= self._next_try else None

    def _exchange(self, now: float) -> str | None:
        self.exchanges += 1
        self._next_try = now + RETRY_S
        try:
            status, raw = self._post(self.url, self._body, self.timeout)
        except Exception as exc:  # the transport's own errors, a timeout: the span batch waits for the next try
            log.warning("agentops: the token exchange at %s failed (%s); spans are dropped until it succeeds, "
                        "tried again in %.0f s", self.url, type(exc).__name__, RETRY_S)
            return self.token
        answer: Any = None
        if status == 200:
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token or has_control(token) or " " in token:
            log.warning("agentops: the token exchange at %s answered %d without a usable token; spans are dropped "
                        "until it succeeds, tried again in %.0f s", self.url, status, RETRY_S)
            return self.token
        project = answer.get("project_id")
        register_secrets([token])  # never logged, as the key it was exchanged for
        self.token = token
        self.project_id = str(project) if isinstance(project, str | int) and not isinstance(project, bool) \
            and str(project) else self.project_id
        exp = _jwt_expiry(token)
        self.renew_at = max(now + 1.0, exp - RENEW_BEFORE_S) if exp is not None else 0.0
        self._next_try = 0.0
        return token


def _urllib_post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(MAX_ANSWER)


class AgentOpsExporter(WireSpanExporter):
    """The ``otel`` wire exporter sending with AgentOps' token, and ``project.id`` in the spans' resource."""

    def __init__(self, token: AgentOpsToken, **kw: Any) -> None:
        super().__init__(**kw)
        self.auth = token
        self._resources: dict[int, tuple[Resource, str, Resource]] = {}
        client = getattr(self, "_client", None)
        headers = getattr(client, "_headers", None)
        self._headers: dict[str, str] | None = headers if isinstance(headers, dict) else None
        self._sent_token: str | None = None
        if client is not None and self._headers is not None and hasattr(client, "export"):
            send = client.export

            def export_once_more(data: bytes) -> Any:
                """The transport's send; on 401 / 403, once more with a new token (an expired one, revoked)."""
                result = send(data)
                if getattr(result, "status_code", None) in (401, 403):
                    fresh = self.auth.renew(self._sent_token)
                    if fresh is not None and fresh != self._sent_token:
                        self._authorize(fresh)
                        result = send(data)
                return result

            client.export = export_once_more

    def takes_encoded(self) -> bool:
        return self._headers is not None and super().takes_encoded()

    def _authorize(self, token: str) -> None:
        assert self._headers is not None
        self._headers["Authorization"] = f"Bearer {token}"
        self._sent_token = token

    def _with_project(self, resource: Any, project: str) -> Any:
        got = self._resources.get(id(resource))
        if got is None or got[0] is not resource or got[1] != project:
            if len(self._resources) >= 16:
                self._resources.clear()
            merged = Resource({**resource.attributes, "project.id": project}, resource.schema_url)
            got = self._resources[id(resource)] = (resource, project, merged)
        return got[2]

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        if self._headers is None:
            return SpanExportResult.FAILURE  # an exporter release without the header map (takes_encoded says so)
        token = self.auth.current()
        if token is None:
            return SpanExportResult.FAILURE  # no credential: the batch is dropped and counted (the token logged why)
        if token != self._sent_token:
            self._authorize(token)
        project = self.auth.project_id
        if project:
            for span in spans:
                if isinstance(span, EncodedSpan):
                    span.resource = self._with_project(span.resource, project)
        return super().export(spans)


class AgentOpsSink(OtelSink):
    """The OpenTelemetry sink behind ``callbacks: ["agentops"]`` (see the module docstring)."""

    name = "agentops"
    names = ("agentops",)
    dropped_event = "agentops_dropped"


def make_agentops(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None
                  ) -> AgentOpsSink:
    """The ``agentops`` sink (``observe._factory``'s signature); ``ConfigError`` as :func:`agentops_settings`."""
    cfg, key, auth_url = agentops_settings(settings, env)
    from opentelemetry.exporter.otlp.proto.http import Compression

    compression = {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(cfg.compression,
                                                                                Compression.NoCompression)
    exporter = AgentOpsExporter(AgentOpsToken(key, auth_url, cfg.timeout), endpoint=cfg.endpoint, headers={},
                                timeout=cfg.timeout, compression=compression, certificate_file=cfg.certificate,
                                client_key_file=cfg.client_key, client_certificate_file=cfg.client_certificate)
    sink = AgentOpsSink(settings, cfg, on_event, exporter=exporter)
    throttle_sdk_logs()
    log.info("agentops: exporting spans over %s to %s (token from %s)", cfg.protocol, cfg.endpoint, auth_url)
    return sink
