"""LiteLLM's ``s3`` callback (``s3_v2``): one StandardLoggingPayload per request, as a JSON object in an S3
bucket (or any S3-compatible store: MinIO, R2, Ceph ... through ``s3_endpoint_url``).

What it owns: :class:`S3Sink` and its LiteLLM configuration (:func:`make_s3`). The batching, the bounded
buffer, the retries with backoff, the drop accounting and the close are :class:`HttpExporter`'s (the
``generic_api`` module essay); this module adds where each payload goes and how the request is signed.

Configuration, as LiteLLM reads it (``litellm_settings.s3_callback_params``; ``os.environ/NAME`` values are
resolved by the config loader):

- ``s3_bucket_name`` (required) and ``s3_region_name`` (else ``AWS_REGION_NAME``, ``AWS_REGION``,
  ``AWS_DEFAULT_REGION``, else ``us-east-1``); ``s3_endpoint_url`` (default
  ``https://s3.<region>.amazonaws.com``), path-style URLs (``<endpoint>/<bucket>/<key>``) unless
  ``s3_use_virtual_hosted_style`` (``<bucket>.<endpoint host>``).
- Credentials: ``s3_aws_access_key_id`` / ``s3_aws_secret_access_key`` / ``s3_aws_session_token``, else
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; each request is signed with
  AWS Signature Version 4 (``providers.bedrock.SigV4``, service ``s3``, the body's SHA-256 in
  ``x-amz-content-sha256``). Key and token are registered as secrets: never logged. Role assumption,
  profiles and web identity (LiteLLM's ``s3_aws_role_name`` ...) are not read: one startup warning names them.
- Object keys as LiteLLM's ``get_s3_object_key``: ``<s3_path>/`` + (``s3_use_team_prefix``: the team alias
  ``/``) + (``s3_use_key_prefix``: the key alias ``/``) + ``YYYY-MM-DD/`` (``s3_partition_granularity:
  hour``: ``YYYY-MM-DD/HH/``, UTC) + ``time-HH-MM-SS-ffffff_<id>.json``, where ``<id>`` is the payload's
  ``id``, with ``/`` and ``:`` in that file name turned into ``_``; a key over S3's 1,024 bytes has its file
  name, then its prefix, shortened (the time and a hash of the id kept, so keys stay distinct).
- ``s3_flush_interval`` (seconds, default 10) and ``s3_batch_size`` (default 512): LiteLLM's batch knobs;
  each batch's objects are put at most ``s3_max_concurrent_uploads`` (default 16) at a time.
- ``s3_batch_file_upload: true`` (LiteLLM's): each batch is written as one NDJSON object per key prefix
  instead (``<prefix>/batch_HH-MM-SS_<uuid hex>.jsonl``, ``application/x-ndjson``, one payload a line), so a
  busy gateway makes one ``PUT`` a flush, not one a request: an object per request costs a ``PUT`` (S3
  takes ~3,500 a second per prefix, and each is a signed HTTP request on the worker's core).
- ``s3_strip_base64_files``, ``s3_log_prompts_only``, server-side encryption and LiteLLM's batch line-item
  files are not read (a startup warning names any that is set).

A ``PUT`` is retried on a connection error, a timeout, ``408``, ``429`` or a ``5xx`` (S3's ``SlowDown``
included); any other answer (``403`` for bad credentials, ``404`` for a missing bucket) drops the object,
counted as ``s3_dropped`` and logged once a minute with S3's own error code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.generic_api import HttpExporter, event_flags
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.providers.bedrock import SigV4
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["S3Sink", "make_s3", "object_key"]

log = logging.getLogger("relaygate.observe")

_encode = msgspec.json.Encoder(enc_hook=str).encode
FIELD = "litellm_settings.s3_callback_params"
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255
_UNREAD = ("s3_aws_role_name", "s3_aws_session_name", "s3_aws_profile_name", "s3_aws_web_identity_token",
           "s3_aws_sts_endpoint", "s3_strip_base64_files", "s3_log_prompts_only", "s3_server_side_encryption",
           "s3_sse_kms_key_id")


def _bounded(text: str, budget: int, digest: str) -> str:
    """``text`` cut to ``budget`` UTF-8 bytes with ``-<digest>`` at its end (whole characters only)."""
    room = max(0, budget - len(digest) - 1)
    cut = text.encode()[:room].decode("utf-8", "ignore")
    return f"{cut}-{digest}"


def object_key(s3_path: str, prefix: str, start: datetime, file_name: str, hourly: bool = False) -> str:
    """The object key of one payload (LiteLLM's ``get_s3_object_key``; see the module docstring)."""
    name = file_name.replace("/", "_").replace(":", "_")
    configured = (s3_path.rstrip("/") + "/" if s3_path else "") + prefix
    date = start.strftime("%Y-%m-%d/%H/" if hourly else "%Y-%m-%d/")
    key = configured + date + name + ".json"
    if len(key.encode()) <= MAX_KEY_BYTES and len(name.encode()) <= MAX_NAME_BYTES - 5:
        return key
    digest = hashlib.sha256(file_name.encode()).hexdigest()[:16]
    budget = MAX_KEY_BYTES - len(date) - 5
    name_room = min(MAX_NAME_BYTES - 5, budget - len(configured.encode()))
    if name_room >= 64:
        return configured + date + _bounded(name, name_room, digest) + ".json"
    short = _bounded(name, 64, digest)
    return _bounded(configured.rstrip("/"), budget - len(short.encode()) - 1, digest[:8]) + "/" + date + short + \
        ".json"


def _parent(key: str) -> str:
    """The prefix an object key lives under (what LiteLLM groups a batch file by)."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


class S3Sink(HttpExporter):
    """LiteLLM's ``s3`` callback: each StandardLoggingPayload ``PUT`` as its own object (module docstring)."""

    name = "s3"
    single = True

    def __init__(self, endpoint: str, bucket: str, signer: SigV4, *, s3_path: str = "", team_prefix: bool = False,
                 key_prefix: bool = False, hourly: bool = False, virtual_hosted: bool = False,
                 concurrency: int = 16, batch_file: bool = False, redact_key_info: bool = False,
                 redact_messages: bool = False, **options: Any) -> None:
        base = endpoint.rstrip("/")
        if virtual_hosted:
            parts = urlsplit(base)
            base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
        else:
            base = f"{base}/{quote(bucket, safe='')}"
        super().__init__(base, {"Content-Type": "application/x-ndjson" if batch_file else "application/json"},
                         **options)
        self.signer = signer
        self.s3_path = s3_path
        self.team_prefix = team_prefix
        self.key_prefix = key_prefix
        self.hourly = hourly
        self.concurrency = max(1, concurrency)
        self.batch_file = batch_file
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def entry(self, record: CompletionRecord) -> tuple[str, dict[str, Any]]:
        payload = standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        start = datetime.fromtimestamp(record.start_time, UTC)
        prefix = ""
        meta = payload.get("metadata") or {}
        if self.team_prefix and meta.get("user_api_key_team_alias"):
            prefix += f"{meta['user_api_key_team_alias']}/"
        if self.key_prefix and meta.get("user_api_key_alias"):
            prefix += f"{meta['user_api_key_alias']}/"
        name = f"time-{start.strftime('%H-%M-%S-%f')}_{payload.get('id') or record.call_id}"
        return object_key(self.s3_path, prefix, start, name, self.hourly), payload

    def encode(self, entries: Sequence[Any]) -> bytes:
        if self.batch_file:  # one payload a line
            return b"\n".join(_encode(payload) for _, payload in entries)
        return _encode(entries[0][1])

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        key = entries[0][0]
        if self.batch_file:  # LiteLLM's batch file name, under the entries' common prefix
            parent = _parent(key)
            name = f"batch_{datetime.now(UTC).strftime('%H-%M-%S')}_{uuid.uuid4().hex}.jsonl"
            key = f"{parent}/{name}" if parent else name
        return "PUT", f"{self.url}/{quote(key, safe='/-_.~')}"

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        return self.signer.sign(method, url, [*headers, ("x-amz-content-sha256", hashlib.sha256(body).hexdigest())],
                                body, time.time())

    async def _deliver(self, chunk: list[Any]) -> None:
        """The batch's objects, or with ``s3_batch_file_upload`` one file per key prefix, at most
        :attr:`concurrency` in flight (each retried on its own; counted in payloads either way)."""
        if self.batch_file:
            groups: dict[str, list[Any]] = {}
            for entry in chunk:
                groups.setdefault(_parent(entry[0]), []).append(entry)
            puts = [groups[parent] for parent in sorted(groups)]
        else:
            puts = [[entry] for entry in chunk]
        gate = asyncio.Semaphore(self.concurrency)

        async def one(entries: list[Any]) -> None:
            async with gate:
                await self._post(entries)

        await asyncio.gather(*(one(e) for e in puts))


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError("config", f"{FIELD}.{name}", "expected a string")
    return value.strip()


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _number(params: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name)
    if value is None:
        return default
    try:
        got = float(value)
    except (TypeError, ValueError):
        raise ConfigError("config", f"{FIELD}.{name}", f"expected a number, got {value!r}") from None
    if got != got:
        raise ConfigError("config", f"{FIELD}.{name}", f"expected a number, got {value!r}")
    return max(low, min(got, high))


def make_s3(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, **options: Any) -> S3Sink:
    """The ``s3`` sink for ``settings`` (module docstring); ``ConfigError`` without a bucket or credentials.
    ``options`` override :class:`HttpExporter`'s defaults (``timeout``, ``max_attempts`` ...)."""
    p = settings.s3_callback_params
    bucket = _text(p, "s3_bucket_name")
    if not bucket:
        raise ConfigError("config", f"{FIELD}.s3_bucket_name", "the s3 callback needs a bucket")
    region = (_text(p, "s3_region_name") or env.get("AWS_REGION_NAME") or env.get("AWS_REGION")
              or env.get("AWS_DEFAULT_REGION") or "us-east-1")
    access = _text(p, "s3_aws_access_key_id") or env.get("AWS_ACCESS_KEY_ID")
    secret = _text(p, "s3_aws_secret_access_key") or env.get("AWS_SECRET_ACCESS_KEY")
    token = _text(p, "s3_aws_session_token") or env.get("AWS_SESSION_TOKEN") or None
    if not access or not secret:
        raise ConfigError("config", f"{FIELD}.s3_aws_access_key_id",
                          "the s3 callback needs credentials: s3_aws_access_key_id and s3_aws_secret_access_key, "
                          "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    register_secrets([secret, *([token] if token else [])])
    endpoint = _text(p, "s3_endpoint_url") or f"https://s3.{region}.amazonaws.com"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("config", f"{FIELD}.s3_endpoint_url", "expected an http(s) URL")
    granularity = _text(p, "s3_partition_granularity") or "day"
    if granularity not in ("day", "hour"):
        raise ConfigError("config", f"{FIELD}.s3_partition_granularity", "expected day or hour")
    unread = [n for n in _UNREAD if p.get(n) not in (None, False, "")]
    if unread:
        log.warning("s3 callback: %s not supported by relaygate: ignored", ", ".join(unread))
    success, failure = event_flags(settings, "s3", None, FIELD)
    defaults: dict[str, Any] = {
        "batch_size": int(_number(p, "s3_batch_size", 512, 1, 10_000)),
        "flush_interval": _number(p, "s3_flush_interval", 10.0, 0.01, 300.0),
        "max_pending": max(1, settings.exporter_queue),
    }
    defaults.update(options)
    return S3Sink(endpoint, bucket, SigV4(access, secret, token, region, service="s3"),
                  s3_path=_text(p, "s3_path") or "", team_prefix=_flag(p, "s3_use_team_prefix"),
                  key_prefix=_flag(p, "s3_use_key_prefix"), hourly=granularity == "hour",
                  virtual_hosted=_flag(p, "s3_use_virtual_hosted_style"),
                  concurrency=int(_number(p, "s3_max_concurrent_uploads", 16, 1, 256)),
                  batch_file=_flag(p, "s3_batch_file_upload"),
                  success=success, failure=failure, on_event=on_event,
                  redact_key_info=settings.redact_user_api_key_info,
                  redact_messages=settings.turn_off_message_logging, **defaults)
