"""LiteLLM's ``gcs_bucket`` callback: StandardLoggingPayloads uploaded to a Google Cloud Storage bucket.

What it owns: :class:`GcsBucketSink` (object names, the upload URL, the bearer token on each attempt),
:class:`GoogleAuth` (an OAuth access token from a service-account file or the GCE metadata server, renewed by
the sending task) and their LiteLLM configuration (:func:`make_gcs_bucket`). The batching, the bounded buffer,
the retries with backoff, the drop accounting and the close are :class:`HttpExporter`'s (the ``generic_api``
module essay).

Configuration, as LiteLLM 1.110 reads it from the environment:

- ``GCS_BUCKET_NAME`` (required): the bucket, optionally with a folder (``my-bucket/logs/dev``: every object
  name then starts ``logs/dev/``). LiteLLM accepts a missing or unusable name and fails every flush; here it
  is a ``ConfigError`` at start, as is a name GCS would refuse (a scheme, ``?``, ``#``, control characters, a
  ``.`` / ``..`` or empty folder segment, a bucket outside GCS's naming rules).
- ``GCS_PATH_SERVICE_ACCOUNT``: a service-account (or ``gcloud`` authorized-user) JSON file, or that JSON
  inline (LiteLLM's ``vertex_credentials`` reading). Without it, Application Default Credentials as LiteLLM's
  ``google.auth.default()`` finds them: ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's
  ``application_default_credentials.json`` (under ``CLOUDSDK_CONFIG``, else ``~/.config/gcloud``), then the
  GCE / GKE / Cloud Run metadata server (``http://metadata.google.internal/computeMetadata/v1/instance/
  service-accounts/default/token`` with ``Metadata-Flavor: Google``; ``GCE_METADATA_HOST``, else
  ``GCE_METADATA_ROOT``, names another host, as in Google's libraries; never through a proxy). A service
  account signs an RS256 JWT (``iss`` its ``client_email``, ``aud`` its ``token_uri``, ``scope``
  ``cloud-platform``, LiteLLM's scope) exchanged at its ``token_uri`` (``providers.vertex.TokenSource``). The
  token is kept until five minutes before it expires and renewed by the sending task before an upload, one
  renewal at a time, never on a request's path; a renewal that fails while the held token still serves is
  logged once a minute and the upload goes on. Keys, client secrets and tokens are registered as secrets:
  never logged. Workload-identity-federation files (``external_account``) are a ``ConfigError`` here.
- ``GCS_USE_BATCHED_LOGGING`` (default true): each flush is one NDJSON object (a payload a line) named
  ``<date>/batch-<epoch ms>-<8 hex>.ndjson`` (today, UTC). Set false: one object per request, named as
  LiteLLM's ``_get_object_name``: ``<date>/custom-<uuid hex>-<gcs_log_id>`` when the request's metadata names
  a ``gcs_log_id`` (its last path segment, only ``A-Za-z0-9._-`` kept, at most 255 characters, LiteLLM's
  ``sanitize_cloud_object_component``), else ``<date>/failure-<uuid hex>`` for a failure, else
  ``<date>/<response id>``. LiteLLM reads ``"true"`` only (``1`` or ``yes`` mean false there); here
  ``true/1/yes/on`` and ``false/0/no/off`` are read and anything else is a ``ConfigError``.
- ``GCS_FLUSH_INTERVAL`` (seconds, default 20) and ``GCS_BATCH_SIZE`` (default 2048): LiteLLM's batch knobs;
  the buffer holds ``exporter_queue`` entries (LiteLLM's ``LITELLM_ASYNCIO_QUEUE_MAXSIZE``).
- ``GCS_BASE_URL`` (relaygate's; LiteLLM has none): the storage API's origin, default
  ``https://storage.googleapis.com`` (a test server, an emulator, a private endpoint).
- ``turn_off_message_logging`` / ``callback_settings.gcs_bucket.message_logging: false`` / a redacted request
  leave messages and answers out; ``redact_user_api_key_info`` blanks the key fields (``observe.standard``).

Each upload is LiteLLM's: ``POST <base>/upload/storage/v1/b/<bucket>/o?uploadType=media&name=<object name>``
with ``Authorization: Bearer <token>`` and ``Content-Type: application/json`` (the NDJSON files too, as
LiteLLM). The bucket and the object name are percent-encoded whole (``/`` included), so nothing a client or an
upstream puts in a name can reach the URL's path or query.

Where relaygate differs, and why: a request's or key's ``gcs_bucket_name`` / ``gcs_path_service_account``
are ignored, as in LiteLLM 1.110 (request-blocked callback params, and its ``get_gcs_logging_config`` returns
the configured bucket and credentials only): a key's ``metadata.logging`` entry naming ``gcs_bucket`` adds its
requests (for its ``callback_type``) to the configured bucket, as LiteLLM adds a key's callbacks to its
requests. A per-request object is named by the payload's ``id`` (the provider's response id; the call id when
the answer has none, where LiteLLM writes ``<date>/``; a cache hit's id carries LiteLLM's ``_cache_hit``
suffix, so it does not overwrite the first answer's object), passed through the same sanitizer as
``gcs_log_id``, and dated by the request's end, not the upload (at most a flush later; LiteLLM's
``get_request_response_payload`` looks a day either side). An upload is retried on a connection error, a
timeout, ``408``, ``429`` or a ``5xx`` and a batch over 32 MiB is split in two objects; LiteLLM tries once.
No Enterprise licence is asked for; LiteLLM's ``GCS_MOCK`` mode and batch line-item files are not written.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
import orjson

from relaygate.config.errors import ConfigError
from relaygate.config.gcs import split_bucket
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import GatewayError, register_secrets
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    HttpExporter,
    batching,
    callback_options,
    event_flags,
    url_secrets,
)
from relaygate.observe.post import PostError
from relaygate.observe.renewal import Renewal
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.providers.vertex import SCOPE, TokenSource
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.upstream.base import UpstreamRequest
from relaygate.upstream.renewal import Renewable, json_object

__all__ = ["GcsBucketSink", "GoogleAuth", "MetadataToken", "make_gcs_bucket", "object_name", "safe_component",
           "split_bucket"]

log = logging.getLogger("relaygate.observe")

NAME = "gcs_bucket"
DEFAULT_BASE_URL = "https://storage.googleapis.com"
METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
MAX_BODY = 32 * 1024 * 1024
"""Bytes of one NDJSON object at most (a larger batch is split in two objects)."""
CONCURRENCY = 8
"""Per-request objects of one flush uploaded at once at most."""
MAX_CREDENTIALS = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOISE = " \t\r\n\ufeff\"'"
_encode = msgspec.json.Encoder(enc_hook=str).encode


# -- names ---------------------------------------------------------------------------------------------


def safe_component(value: Any) -> str:
    """LiteLLM's ``sanitize_cloud_object_component``: the last path segment of ``value`` with control characters
    and runs of anything but ``A-Za-z0-9._-`` made ``_``, ``.`` and ``_`` stripped from its ends, at most 255
    characters; ``""`` when nothing is left (or ``value`` is not text)."""
    if not isinstance(value, str):
        return ""
    part = posixpath.basename(value.replace("\\", "/")).strip()
    if part in ("", ".", ".."):
        return ""
    part = _UNSAFE.sub("_", _CONTROL.sub("_", part)).strip("._")
    return part[:255]


def object_name(payload: Mapping[str, Any], client_meta: Mapping[str, Any], when: datetime, *,
                failed: bool, fallback_id: str) -> str:
    """A per-request object's name without the bucket's folder (LiteLLM's ``_get_object_name``; module
    docstring)."""
    date = when.strftime("%Y-%m-%d")
    log_id = safe_component(client_meta.get("gcs_log_id"))
    if log_id:
        return f"{date}/custom-{uuid.uuid4().hex}-{log_id}"
    if failed:
        return f"{date}/failure-{uuid.uuid4().hex}"
    return f"{date}/{safe_component(payload.get('id')) or safe_component(fallback_id) or uuid.uuid4().hex}"


def batch_name(now: float) -> str:
    """A batch object's name (LiteLLM's ``_generate_batch_object_name``) at epoch seconds ``now``."""
    date = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    return f"{date}/batch-{int(now * 1000)}-{uuid.uuid4().hex[:8]}.ndjson"


# -- credentials ---------------------------------------------------------------------------------------


class MetadataToken(Renewable):
    """The access token of the instance's service account from the GCE metadata server. No IO here."""

    __slots__ = ("url", "token", "direct")

    def __init__(self, host: str) -> None:
        super().__init__()
        self.url = f"http://{host}{TOKEN_PATH}"
        self.token: str | None = None
        self.direct = True
        """Never through a proxy (``upstream.calls.refresh_token``): the server is link-local."""

    def held(self) -> bool:
        return self.token is not None

    def refresh_request(self, now: float) -> UpstreamRequest:
        return UpstreamRequest("GET", self.url, [("Metadata-Flavor", "Google")], b"")

    def accept(self, status: int, body: bytes, now: float) -> None:
        obj = json_object(body)
        token = obj.get("access_token")
        if status >= 400 or not isinstance(token, str) or not token:
            raise GatewayError(f"the metadata server answered {status} without an access token", status=502)
        self.token = token
        expires = obj.get("expires_in")
        self.expires_at = now + (float(expires) if isinstance(expires, int | float) and expires > 0 else 3600.0)


class GoogleAuth:
    """The bearer token of a :class:`TokenSource` or :class:`MetadataToken`, renewed in :meth:`prepare`."""

    __slots__ = ("source", "where", "_renewal", "_header")

    def __init__(self, source: TokenSource | MetadataToken, where: str) -> None:
        self.source = source
        self.where = where
        """Where the credentials come from, for logs (a path or a host; never a secret)."""
        self._renewal = Renewal(source, "gcs_bucket", f"an access token from {where}", "the token held still serves",
                                lambda: source.token, ("litellm.AuthenticationError: ", "VertexAIException - "))
        self._header: tuple[str | None, str] = (None, "")

    async def prepare(self) -> None:
        """Renew the token when due; ``PostError`` when none can be had (the attempt fails, retried later)."""
        await self._renewal.renew()

    def authorization(self) -> str:
        """``Bearer <token>`` (after :meth:`prepare`); a new token is registered as a secret."""
        token = self.source.token
        if token is None:
            raise PostError(f"no access token from {self.where}")
        if self._header[0] != token:
            register_secrets([token])
            self._header = (token, f"Bearer {token}")
        return self._header[1]


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_CREDENTIALS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    return _parse_json(text, f"{path} is not")


def _parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError(f"{what} a JSON credentials object (check for unescaped newlines in private_key)") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} a JSON object")
    return obj


def _source_of(creds: dict[str, Any], where: str) -> TokenSource:
    kind = creds.get("type", "service_account")
    if kind not in ("service_account", "authorized_user"):
        raise ValueError(f"{where}: credentials of type {kind!r} are not supported here (a service account or "
                         "gcloud's authorized user; or leave it unset on Google Cloud for the metadata server)")
    uri = creds.get("token_uri")
    if uri is not None and (not isinstance(uri, str) or urlsplit(uri).scheme not in ("http", "https")
                            or not urlsplit(uri).hostname):
        raise ValueError(f"{where}: token_uri is not an http(s) URL")
    register_secrets([str(creds[k]) for k in ("private_key", "client_secret", "refresh_token") if creds.get(k)])
    try:
        return TokenSource(creds, SCOPE)
    except GatewayError as exc:
        raise ValueError(f"{where}: {exc.message.replace('vertex_credentials', 'the credentials')}") from None


def google_auth(env: Mapping[str, str]) -> GoogleAuth:
    """The credentials of ``env`` (module docstring); ``ConfigError`` for a file that cannot serve."""
    raw = env.get("GCS_PATH_SERVICE_ACCOUNT") or ""
    try:
        if raw.strip():
            if raw.lstrip(_NOISE).startswith("{"):
                return GoogleAuth(_source_of(_parse_json(raw.strip(_NOISE), "the value is not"),
                                             "inline credentials"), "GCS_PATH_SERVICE_ACCOUNT (inline)")
            path = raw.strip()
            return GoogleAuth(_source_of(_read_json(path), path), path)
    except ValueError as exc:
        raise ConfigError(ENV_SOURCE, "GCS_PATH_SERVICE_ACCOUNT", str(exc)) from None
    adc = (env.get("GOOGLE_APPLICATION_CREDENTIALS") or "").strip()
    try:
        if adc:
            return GoogleAuth(_source_of(_read_json(adc), adc), adc)
    except ValueError as exc:
        raise ConfigError(ENV_SOURCE, "GOOGLE_APPLICATION_CREDENTIALS", str(exc)) from None
    home = (env.get("CLOUDSDK_CONFIG") or "").strip() or (
        os.path.join(env["HOME"], ".config", "gcloud") if env.get("HOME") else "")
    well_known = os.path.join(home, "application_default_credentials.json") if home else ""
    if well_known and os.path.isfile(well_known):
        try:
            return GoogleAuth(_source_of(_read_json(well_known), well_known), well_known)
        except ValueError as exc:
            raise ConfigError(ENV_SOURCE, "CLOUDSDK_CONFIG", str(exc)) from None
    host = (env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_ROOT") or "").strip() or METADATA_HOST
    if "/" in host or _CONTROL.search(host) or "@" in host:
        raise ConfigError(ENV_SOURCE, "GCE_METADATA_HOST", "expected a host[:port]")
    return GoogleAuth(MetadataToken(host), f"the metadata server {host}")


# -- the sink ------------------------------------------------------------------------------------------


class GcsBucketSink(HttpExporter):
    """LiteLLM's ``gcs_bucket`` callback (module docstring). Entries are ``(object name | None, payload)``:
    a per-request object's name, or None in batched mode (named when its batch is sent)."""

    name = NAME
    max_body = MAX_BODY

    def __init__(self, base_url: str, bucket: str, prefix: str, auth: GoogleAuth, *, batched: bool = True,
                 redact_key_info: bool = False, redact_messages: bool = False, **options: Any) -> None:
        super().__init__(f"{base_url.rstrip('/')}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
                         {"Content-Type": "application/json"}, **options)
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.auth = auth
        self.batched = batched
        self.single = not batched
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        """The records the callback lists ask for, and those of keys whose ``metadata.logging`` names
        ``gcs_bucket`` for their outcome (sent to the configured bucket: LiteLLM adds a key's callbacks)."""
        out = []
        for r in batch:
            if r.no_logging:
                continue
            ok = r.outcome is Outcome.OK
            if not (self.success if ok else self.failure):
                detail = detail_of(r)
                kind = "success" if ok else "failure"
                if detail is None or not detail.logging or not any(
                        t.callback_name == NAME and kind in t.callback_type for t in detail.logging):
                    continue
            out.append(self.entry(r))
        return out

    def entry(self, record: CompletionRecord) -> tuple[str | None, dict[str, Any]]:
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        if self.batched:
            return None, payload
        meta = detail.metadata if detail is not None and isinstance(detail.metadata, dict) else {}
        end = payload.get("endTime")
        when = datetime.fromtimestamp(end if isinstance(end, float | int) else time.time(), UTC)
        return self.prefix + object_name(payload, meta, when, failed=payload.get("error_str") is not None,
                                         fallback_id=record.call_id), payload

    def encode(self, entries: Sequence[Any]) -> bytes:
        if self.batched:
            return b"\n".join(_encode(payload) for _, payload in entries)
        return _encode(entries[0][1])

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        name = entries[0][0] if not self.batched else self.prefix + batch_name(time.time())
        return "POST", f"{self.url}?uploadType=media&name={quote(name, safe='')}"

    async def prepare(self) -> None:
        await self.auth.prepare()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        return [*headers, ("Authorization", self.auth.authorization())]

    async def _deliver(self, chunk: list[Any]) -> None:
        """A flush: one NDJSON object, or each request's object (at most :data:`CONCURRENCY` at once)."""
        if self.batched:
            await self._post(chunk)
        else:
            await self._post_groups([[e] for e in chunk], CONCURRENCY)


def _batched(env: Mapping[str, str]) -> bool:
    raw = (env.get("GCS_USE_BATCHED_LOGGING") or "").strip().lower()
    if raw in ("", "true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(ENV_SOURCE, "GCS_USE_BATCHED_LOGGING", f"expected true or false, got {raw!r}")


def make_gcs_bucket(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                    keys_only: bool = False, **options: Any) -> GcsBucketSink:
    """The ``gcs_bucket`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults; ``keys_only``: started for keys' ``metadata.logging``
    entries only (their records alone are sent). Raises ``ConfigError`` without ``GCS_BUCKET_NAME``, or for a
    bucket, credentials file, base URL or setting that cannot work."""
    raw_bucket = env.get("GCS_BUCKET_NAME") or ""
    if not raw_bucket.strip():
        raise ConfigError(ENV_SOURCE, "GCS_BUCKET_NAME", "the gcs_bucket callback needs GCS_BUCKET_NAME")
    try:
        bucket, prefix = split_bucket(raw_bucket)
    except ValueError as exc:
        raise ConfigError(ENV_SOURCE, "GCS_BUCKET_NAME", str(exc)) from None
    base = (env.get("GCS_BASE_URL") or "").strip() or DEFAULT_BASE_URL
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(ENV_SOURCE, "GCS_BASE_URL", "expected an http(s) URL without a query")
    register_secrets(url_secrets(base))
    batched = _batched(env)
    auth = google_auth(env)
    opts = callback_options(settings, NAME)
    success, failure = event_flags(settings, NAME, None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch=2048, batch_var="GCS_BATCH_SIZE", interval=20.0,
                        interval_var="GCS_FLUSH_INTERVAL", interval_max=3600.0)
    return GcsBucketSink(base, bucket, prefix, auth, batched=batched, success=success and not keys_only,
                         failure=failure and not keys_only, on_event=on_event,
                         redact_key_info=settings.redact_user_api_key_info,
                         redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                         **defaults)
