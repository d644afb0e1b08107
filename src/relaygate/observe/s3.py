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
- Credentials (``observe.aws_auth``), as LiteLLM's logger gets them from boto3's chain: ``s3_aws_access_key_id``
  / ``s3_aws_secret_access_key`` / ``s3_aws_session_token``, else ``AWS_ACCESS_KEY_ID`` ...; ``s3_aws_role_name``
  assumed with those keys (STS ``AssumeRole``) or with ``s3_aws_web_identity_token``; ``s3_aws_profile_name``
  (else ``AWS_PROFILE``) from the shared files; ``s3_aws_session_name``, ``s3_aws_sts_endpoint``; then the
  platform's (IRSA's web identity, the ECS / EKS Pod Identity container endpoint, the EC2 instance profile).
  Temporary credentials are renewed before they expire, by the sending task. Each request is signed with AWS
  Signature Version 4 (``providers.bedrock.SigV4``, service ``s3``, the body's SHA-256 in
  ``x-amz-content-sha256``). Keys and tokens are registered as secrets: never logged.
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
- ``s3_log_prompts_only`` (else the ``S3_LOG_PROMPTS_ONLY`` variable; a value that is not a boolean means
  yes, with a warning, as LiteLLM): each payload's ``response`` is ``null``.
- ``s3_strip_base64_files``: the payload's ``messages`` lose their file parts (a content item with a ``file``
  key, or of any type but ``text``) and every inline ``data:<type>/<subtype>;base64,...`` in them becomes
  ``[BASE64_REDACTED]`` (LiteLLM's ``_strip_base64_from_messages_sync``, 10 levels deep at most, deeper values
  ``[MAX_DEPTH_REACHED]``); a copy is changed, never the request the other exporters read.
- ``s3_server_side_encryption`` (``AES256``, ``aws:kms`` ...) and ``s3_sse_kms_key_id`` (alone it means
  ``aws:kms``; with another algorithm it is ignored, with a warning): sent, and signed, as
  ``x-amz-server-side-encryption`` and ``x-amz-server-side-encryption-aws-kms-key-id`` on every ``PUT``.
- ``s3_partition_granularity`` falls back to the ``S3_PARTITION_GRANULARITY`` variable.
- LiteLLM's batch line-item files are not written.

A ``PUT`` is retried on a connection error, a timeout, ``408``, ``429`` or a ``5xx`` (S3's ``SlowDown``
included); any other answer (``403`` for bad credentials, ``404`` for a missing bucket) drops the object,
counted as ``s3_dropped`` and logged once a minute with S3's own error code.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.aws_auth import AwsSigner, aws_signer
from relaygate.observe.generic_api import HttpExporter, event_flags
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["S3Sink", "make_s3", "object_key", "strip_base64"]

log = logging.getLogger("relaygate.observe")

_encode = msgspec.json.Encoder(enc_hook=str).encode
FIELD = "litellm_settings.s3_callback_params"
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255
_BASE64 = re.compile(r"data:(?:application|image|audio|video)/[a-zA-Z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+", re.MULTILINE)
"""An inline base64 file (LiteLLM's ``_BASE64_INLINE_PATTERN``)."""
MAX_DEPTH = 10
"""Levels of a message :func:`strip_base64` walks (LiteLLM's ``DEFAULT_MAX_RECURSE_DEPTH_SENSITIVE_DATA_MASKER``)."""


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return "[MAX_DEPTH_REACHED]"
    if isinstance(value, str):
        return _BASE64.sub("[BASE64_REDACTED]", value) if "base64," in value else value
    if isinstance(value, list):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, depth + 1) for k, v in value.items()}
    return value


def _kept(part: Any) -> bool:
    if not isinstance(part, dict):
        return True
    kind = part.get("type")
    return "file" not in part and not (isinstance(kind, str) and kind != "text")


def strip_base64(messages: Any) -> Any:
    """``s3_strip_base64_files`` of a payload's ``messages`` (module docstring): new objects, the input unchanged."""
    if not isinstance(messages, list):
        return messages
    out = []
    for msg in messages:
        if not isinstance(msg, dict):
            continue  # LiteLLM keeps only the messages that are objects
        content = msg.get("content")
        new = {k: _redact(v) for k, v in msg.items() if k != "content"}
        if "content" in msg:
            new["content"] = [_redact(c) for c in content if _kept(c)] if isinstance(content, list) else \
                _redact(content)
        out.append(new)
    return out


def _yes(value: Any, name: str) -> bool:
    """LiteLLM's boolean reading of ``s3_log_prompts_only``: unset or empty is no; a value that is not a boolean
    is yes, with a warning."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f"):
        return False
    log.warning("s3 callback: %s=%r is not a boolean: logging prompts only", name, value)
    return True


def _sse(p: Mapping[str, Any]) -> dict[str, str]:
    """The server-side encryption headers (LiteLLM's ``resolve_sse_params``)."""
    algorithm, key_id = p.get("s3_server_side_encryption") or None, p.get("s3_sse_kms_key_id") or None
    for name, value in (("s3_server_side_encryption", algorithm), ("s3_sse_kms_key_id", key_id)):
        if value is not None and not isinstance(value, str):
            raise ConfigError("config", f"{FIELD}.{name}", "expected a string")
    algorithm = algorithm or ("aws:kms" if key_id else None)
    if algorithm is None:
        return {}
    if key_id and not algorithm.startswith("aws:kms"):
        log.warning("s3 callback: s3_sse_kms_key_id ignored: s3_server_side_encryption is %s, not aws:kms", algorithm)
        key_id = None
    out = {"x-amz-server-side-encryption": algorithm}
    if key_id:
        out["x-amz-server-side-encryption-aws-kms-key-id"] = key_id
    return out


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

    def __init__(self, endpoint: str, bucket: str, signer: AwsSigner, *, s3_path: str = "", team_prefix: bool = False,
                 key_prefix: bool = False, hourly: bool = False, virtual_hosted: bool = False,
                 concurrency: int = 16, batch_file: bool = False, redact_key_info: bool = False,
                 redact_messages: bool = False, prompts_only: bool = False, strip_files: bool = False,
                 encryption: Mapping[str, str] | None = None, **options: Any) -> None:
        base = endpoint.rstrip("/")
        if virtual_hosted:
            parts = urlsplit(base)
            base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
        else:
            base = f"{base}/{quote(bucket, safe='')}"
        super().__init__(base, {"Content-Type": "application/x-ndjson" if batch_file else "application/json",
                                **(encryption or {})}, **options)
        self.signer = signer
        self.s3_path = s3_path
        self.team_prefix = team_prefix
        self.key_prefix = key_prefix
        self.hourly = hourly
        self.concurrency = max(1, concurrency)
        self.batch_file = batch_file
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self.prompts_only = prompts_only
        self.strip_files = strip_files

    def entry(self, record: CompletionRecord) -> tuple[str, dict[str, Any]]:
        payload = standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        if self.prompts_only:
            payload["response"] = None
        if self.strip_files and payload.get("messages"):
            payload["messages"] = strip_base64(payload["messages"])
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

    async def prepare(self) -> None:
        await self.signer.prepare()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        return self.signer.sign(method, url, [*headers, ("x-amz-content-sha256", hashlib.sha256(body).hexdigest())],
                                body)

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
        await self._post_groups(puts, self.concurrency)


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
              or env.get("AWS_DEFAULT_REGION"))
    signer = aws_signer(p, env, prefix="s3_", field=FIELD, service="s3", region=region)
    region = signer.region
    endpoint = _text(p, "s3_endpoint_url") or f"https://s3.{region}.amazonaws.com"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("config", f"{FIELD}.s3_endpoint_url", "expected an http(s) URL")
    granularity = _text(p, "s3_partition_granularity") or env.get("S3_PARTITION_GRANULARITY", "").strip() or "day"
    if granularity not in ("day", "hour"):
        raise ConfigError("config", f"{FIELD}.s3_partition_granularity", "expected day or hour")
    success, failure = event_flags(settings, "s3", None, FIELD)
    defaults: dict[str, Any] = {
        "batch_size": int(_number(p, "s3_batch_size", 512, 1, 10_000)),
        "flush_interval": _number(p, "s3_flush_interval", 10.0, 0.01, 300.0),
        "max_pending": max(1, settings.exporter_queue),
    }
    defaults.update(options)
    return S3Sink(endpoint, bucket, signer,
                  s3_path=_text(p, "s3_path") or "", team_prefix=_flag(p, "s3_use_team_prefix"),
                  key_prefix=_flag(p, "s3_use_key_prefix"), hourly=granularity == "hour",
                  virtual_hosted=_flag(p, "s3_use_virtual_hosted_style"),
                  concurrency=int(_number(p, "s3_max_concurrent_uploads", 16, 1, 256)),
                  batch_file=_flag(p, "s3_batch_file_upload"),
                  prompts_only=_yes(p["s3_log_prompts_only"] if p.get("s3_log_prompts_only") is not None else
                                    env.get("S3_LOG_PROMPTS_ONLY"), "s3_log_prompts_only"),
                  strip_files=_flag(p, "s3_strip_base64_files"), encryption=_sse(p),
                  success=success, failure=failure, on_event=on_event,
                  redact_key_info=settings.redact_user_api_key_info,
                  redact_messages=settings.turn_off_message_logging, **defaults)
