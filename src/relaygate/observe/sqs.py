"""LiteLLM's ``aws_sqs`` callback (``sqs``): one StandardLoggingPayload per request, as an Amazon SQS message.

What it owns: :class:`SqsSink` and its LiteLLM configuration (:func:`make_sqs`). The bounded buffer, the
flushes, the drop accounting and the close are :class:`HttpExporter`'s (the ``generic_api`` module essay);
credentials and SigV4 are :class:`~relaygate.observe.aws_auth.AwsSigner`'s (service ``sqs``). This module adds
the message bodies, SQS's batch limits and how an answer from SQS is read.

Configuration, as LiteLLM reads it (``litellm_settings.aws_sqs_callback_params``; ``os.environ/NAME`` values
are resolved by the config loader):

- ``sqs_queue_url`` (required: LiteLLM fails every send without it; here it is a ``ConfigError`` at start).
- ``sqs_region_name``, else the region in the queue URL's host (``sqs.<region>.amazonaws.com``), else
  ``AWS_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, the profile's, ``us-east-1`` (LiteLLM signs
  with ``sqs_region_name`` alone, ``None`` when unset, which AWS refuses).
- Credentials (``observe.aws_auth``), LiteLLM's ``BaseAWSLLM.get_credentials`` chain: ``sqs_aws_access_key_id``
  / ``sqs_aws_secret_access_key`` / ``sqs_aws_session_token`` (else ``AWS_ACCESS_KEY_ID`` ...),
  ``sqs_aws_role_name`` (STS ``AssumeRole``, or with ``sqs_aws_web_identity_token``), ``sqs_aws_session_name``,
  ``sqs_aws_sts_endpoint``, ``sqs_aws_profile_name`` (else ``AWS_PROFILE``), then the platform's (IRSA, the
  ECS / EKS Pod Identity endpoint, the EC2 instance profile); renewed before they expire. Secrets are
  registered: never logged. No credentials at all is a ``ConfigError`` (LiteLLM fails each send).
- ``sqs_strip_base64_files``: the payload's ``messages`` lose their file parts and inline base64 data
  (``observe.s3.strip_base64``; LiteLLM changes the payload the other callbacks read, here a copy is changed).
- ``sqs_aws_use_application_level_encryption`` with ``sqs_app_encryption_key_b64`` (base64 of 32 bytes,
  required then: a ``ConfigError`` without it, as LiteLLM raises at start) and ``sqs_app_encryption_aad``:
  each message body is ``{"__encrypted__": true, "payload": {"nonce", "ciphertext", "tag"}}``, the payload's
  JSON sealed with AES-256-GCM (12-byte random nonce, the AAD's UTF-8, each part base64), LiteLLM's
  ``AppCrypto.encrypt_json``, so its consumers' ``decrypt_json`` opens ours. The key is a secret.
- ``sqs_flush_interval`` (seconds, else ``DEFAULT_SQS_FLUSH_INTERVAL_SECONDS``, default 10) and
  ``sqs_batch_size`` (else ``DEFAULT_SQS_BATCH_SIZE``, default 512): a flush's size and period (LiteLLM's proxy
  builds its logger without them, so only its variables count there).
- ``sqs_endpoint_url``: where the requests go (default: the queue URL's origin; LiteLLM reads it and posts to
  the queue URL anyway). ``sqs_api_version``, ``sqs_use_ssl``, ``sqs_verify``, ``sqs_config`` are accepted and,
  as in LiteLLM, change nothing.
- ``turn_off_message_logging`` / ``callback_settings.aws_sqs.message_logging: false`` and
  ``redact_user_api_key_info`` as for every exporter (``observe.standard``).

Where relaygate differs from LiteLLM, which sends each payload in its own ``SendMessage`` (the query
protocol, a form-encoded body) at once, without retries, and only logs what failed:

- ``SendMessageBatch`` in SQS's JSON protocol (``X-Amz-Target: AmazonSQS.SendMessageBatch``, the protocol
  AWS's SDKs use): up to 10 messages a request and :data:`DEFAULT_MAX_MESSAGE` bytes (256 KiB) of bodies, a
  flush's batches at most :data:`CONCURRENCY` at a time. ``sqs_max_message_bytes`` (relaygate's, up to
  1 MiB: AWS's limit since 2025, for queues whose ``MaximumMessageSize`` allows it) raises both bounds. The
  message bodies are LiteLLM's: the payload's JSON (U+FFFE / U+FFFF, which SQS refuses, written as JSON
  escapes).
- A payload over the bound is sent with ``messages`` and ``response`` replaced by a note saying so (counted
  as ``aws_sqs_truncated``), so its spend and usage still arrive; one that does not fit even then is dropped.
- SQS answers per message: entries it failed on its side (``SenderFault: false``) are sent again, the others
  dropped with SQS's code in the log line. A request that fails on a connection error, a timeout, ``408``,
  ``429``, a ``5xx`` or SQS's throttling codes (sent as ``400``) is retried with backoff; another ``4xx``
  (a missing queue, refused credentials) drops its messages. Drops are ``aws_sqs_dropped`` and failed
  requests ``aws_sqs_send_failed`` (LiteLLM's ``litellm_callback_logging_failures_metric``), logged at
  most once a minute.
- A FIFO queue (a URL ending ``.fifo``, which LiteLLM's messages cannot enter) gets ``MessageGroupId``
  ``sqs_message_group_id`` (relaygate's, default ``litellm``) and the call id as ``MessageDeduplicationId``,
  and its batches are sent one at a time, in order.
- Not done: LiteLLM's web-identity session policy (its role is assumed with the role's own permissions) and
  its health-check message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact, register_secrets
from relaygate.observe.aws_auth import AwsSigner, aws_signer
from relaygate.observe.generic_api import HttpExporter, callback_options, env_float, env_int, event_flags, url_secrets
from relaygate.observe.post import Answer, PostError
from relaygate.observe.s3 import strip_base64
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["SqsSink", "make_sqs", "region_of"]

log = logging.getLogger("relaygate.observe")

FIELD = "litellm_settings.aws_sqs_callback_params"
MAX_BATCH = 10
"""Messages a ``SendMessageBatch`` carries at most."""
DEFAULT_MAX_MESSAGE = 262_144
"""Bytes of a message body, and of a batch's bodies together, by default (what every SQS queue takes)."""
MAX_MESSAGE = 1_048_576
"""AWS's bound for both (a queue's ``MaximumMessageSize`` up to it)."""
CONCURRENCY = 8
"""A flush's batches in flight at once (one for a FIFO queue)."""
RETRYABLE = frozenset({"RequestThrottled", "ThrottlingException", "Throttling", "KmsThrottled", "KmsThrottling",
                       "RequestTimeout", "ServiceUnavailable", "InternalError", "InternalFailure"})
"""SQS error codes worth another attempt (it sends throttling as ``400``)."""

_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode_answer = msgspec.json.Decoder().decode
_BAD = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")
"""U+FFFE and U+FFFF in UTF-8: outside the characters SQS takes."""
_REGION = re.compile(r"(?:^|[.-])sqs[.-]([a-z]{2,4}(?:-[a-z]+)+-\d+)\.|^([a-z]{2,4}(?:-[a-z]+)+-\d+)\.queue\.")
_DEDUP = re.compile(r"[\x21-\x7e]{1,128}")


def region_of(host: str) -> str | None:
    """The region in an SQS host name (``sqs.eu-west-1.amazonaws.com``, ``eu-west-1.queue.amazonaws.com``,
    an interface endpoint's ``vpce-...sqs.eu-west-1.vpce.amazonaws.com``), else None."""
    m = _REGION.search(host.lower())
    return (m.group(1) or m.group(2)) if m else None


def _dedup_id(call_id: str) -> str:
    """A FIFO ``MessageDeduplicationId`` for a call id (its SHA-256 when the id is not one SQS takes)."""
    return call_id if _DEDUP.fullmatch(call_id) else hashlib.sha256(call_id.encode()).hexdigest()


def _error_of(resp: Answer) -> tuple[str, str]:
    """SQS's error code and message from a refusal (its JSON protocol's ``__type`` / ``message``)."""
    try:
        body = _decode_answer(resp.content) if resp.content else {}
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("__type") or body.get("code") or "").rsplit("#", 1)[-1]
        return code, str(body.get("message") or body.get("Message") or "")
    query = resp.headers.get("x-amzn-query-error", "")
    return query.split(";", 1)[0].rsplit(".", 1)[-1], resp.text[:300]


class SqsSink(HttpExporter):
    """LiteLLM's ``aws_sqs`` callback (see the module docstring). An entry is ``(body, size, call id)``."""

    name = "aws_sqs"

    def __init__(self, endpoint: str, queue_url: str, signer: AwsSigner, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 strip_files: bool = False, key: bytes | None = None, aad: bytes | None = None,
                 group: str | None = None, redact_key_info: bool = False, redact_messages: bool = False,
                 **options: Any) -> None:
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch"}
        super().__init__(endpoint, headers, **options)
        self.queue_url = queue_url
        self.signer = signer
        self.max_message = max_message
        self.strip_files = strip_files
        self.crypto = AESGCM(key) if key is not None else None
        self.aad = aad
        self.group = group
        """``MessageGroupId`` of a FIFO queue's messages (None: a standard queue)."""
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self.truncated = 0
        """Payloads sent without their messages and response, too large otherwise."""

    # -- a record's message ----------------------------------------------------------------------------

    def _body(self, payload: dict[str, Any]) -> bytes:
        """A message body: the payload's JSON, or LiteLLM's encrypted envelope of it."""
        try:
            raw = _encode(payload)
        except UnicodeEncodeError:  # a lone surrogate in a client's text: ASCII JSON escapes it
            raw = json.dumps(payload, default=str, separators=(",", ":")).encode()
        if self.crypto is not None:
            nonce = os.urandom(12)
            sealed = self.crypto.encrypt(nonce, raw, self.aad)
            b64 = base64.b64encode
            return _encode({"__encrypted__": True, "payload": {
                "nonce": b64(nonce).decode(), "ciphertext": b64(sealed[:-16]).decode(),
                "tag": b64(sealed[-16:]).decode()}})
        if _BAD[0] in raw or _BAD[1] in raw:  # only inside JSON strings, where an escape means the same
            raw = raw.replace(_BAD[0], b"\\ufffe").replace(_BAD[1], b"\\uffff")
        return raw

    def entry(self, record: CompletionRecord) -> Any:
        payload = standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        if self.strip_files and payload.get("messages"):
            payload["messages"] = strip_base64(payload["messages"])
        body = self._body(payload)
        if len(body) > self.max_message:
            note = f"[left out: the SQS message would be {len(body)} bytes, over {self.max_message}]"
            size = len(body)
            body = self._body({**payload, "messages": note, "response": note})
            if len(body) > self.max_message:
                self._drop(1, f"a payload of {size} bytes is over {self.max_message} even without its messages")
                return None
            self.truncated += 1
            self._count(f"{self.name}_truncated", 1)
            self._warn("%s exporter: a payload of %d bytes is over %d (sqs_max_message_bytes): sent without its "
                       "messages and response", self.name, size, self.max_message)
        return body.decode(), len(body), record.call_id

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        return [e for e in super().select(batch) if e is not None]

    def encode(self, entries: Sequence[Any]) -> bytes:
        items = []
        for i, (text, _, call_id) in enumerate(entries):
            item = {"Id": str(i), "MessageBody": text}
            if self.group is not None:
                item["MessageGroupId"] = self.group
                item["MessageDeduplicationId"] = _dedup_id(call_id)
            items.append(item)
        return _encode({"QueueUrl": self.queue_url, "Entries": items})

    # -- sending ---------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        await self.signer.prepare()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        return self.signer.sign(method, url, headers, body)

    async def _deliver(self, chunk: list[Any]) -> None:
        """A flush's messages in batches within SQS's bounds (count and bytes), in order."""
        batches: list[list[Any]] = []
        current: list[Any] = []
        size = 0
        for entry in chunk:
            if current and (len(current) == MAX_BATCH or size + entry[1] > self.max_message):
                batches.append(current)
                current, size = [], 0
            current.append(entry)
            size += entry[1]
        if current:
            batches.append(current)
        if self.group is not None:  # a FIFO group's order is the order of the requests
            for b in batches:
                await self._post(b)
        else:
            await self._post_groups(batches, CONCURRENCY)

    def _settle(self, entries: list[Any], resp: Answer) -> tuple[list[Any], str]:
        """Count a ``200``'s sent and refused messages; the entries to send again, and why."""
        try:
            answer = _decode_answer(resp.content) if resp.content else {}
        except msgspec.DecodeError:
            answer = {}
        failed = answer.get("Failed") if isinstance(answer, dict) else None
        again: list[Any] = []
        refused: list[str] = []
        lost = 0
        for f in failed if isinstance(failed, list) else ():
            try:
                entry = entries[int(f["Id"])]
            except (KeyError, TypeError, ValueError, IndexError):
                continue
            code = str(f.get("Code") or "")
            if not f.get("SenderFault") or code in RETRYABLE:
                again.append(entry)
            else:
                lost += 1
                refused.append(f"{code}: {f.get('Message') or ''}"[:200])
        ok = len(entries) - len(again) - lost
        if ok > 0:
            self.sent += ok
            self._count(f"{self.name}_sent", ok)
        if lost:
            self._drop(lost, f"SQS refused them ({redact(refused[-1])})")
        return again, f"SQS failed {len(again)} of {len(entries)} message(s)"

    async def _post(self, entries: list[Any]) -> None:
        """Send ``entries`` as one ``SendMessageBatch``, retrying as the module docstring says; never raises for
        SQS (the shell's retry loop, with SQS's per-message answers and its throttling codes)."""
        delay, attempt = self.backoff, 0
        while True:
            attempt += 1
            wait = delay
            n = len(entries)
            body = self.encode(entries)
            try:
                await self.prepare()
                self.requests += 1
                resp = await self._http().post(self.url, body, self.sign("POST", self.url, list(self.headers.items()),
                                                                         body))
            except PostError as exc:
                reason = redact(str(exc))[:200]
            else:
                status = resp.status
                if 200 <= status < 300:
                    entries, reason = self._settle(entries, resp)
                    if not entries:
                        if attempt > 1:
                            log.info("%s exporter: %s answers again; sent after %d failed attempt(s)", self.name,
                                     self.target, attempt - 1)
                        return
                    n = len(entries)
                else:
                    code, message = _error_of(resp)
                    reason = redact(f"HTTP {status}" + (f" {code}" if code else "") +
                                    (f": {message}" if message else ""))[:300]
                    if not (status in (408, 429) or status >= 500 or code in RETRYABLE):
                        self.failures += 1
                        self._count(f"{self.name}_send_failed", 1)
                        self._drop(n, f"{self.target} refused them ({reason})")
                        return
                    hint = resp.headers.get("retry-after", "")
                    if hint.isdigit():
                        wait = min(max(float(hint), delay), self.max_backoff)
            self.failures += 1
            self._count(f"{self.name}_send_failed", 1)
            if attempt >= self.max_attempts:
                self._drop(n, f"{self.target} failed {attempt} time(s), last: {reason}")
                return
            self._warn("%s exporter: sending %d message(s) to %s failed (%s); retry %d of %d in %.1f s",
                       self.name, n, self.target, reason, attempt, self.max_attempts - 1, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.max_backoff)


# -- configuration -----------------------------------------------------------------------------------------


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError("config", f"{FIELD}.{name}", "expected a string")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError("config", f"{FIELD}.{name}", "control characters are not allowed")
    return value.strip() or None


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):  # LiteLLM takes any non-empty string as yes, "false" too
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _number(params: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        got = float(value)
    except (TypeError, ValueError):
        raise ConfigError("config", f"{FIELD}.{name}", f"expected a number, got {value!r}") from None
    if got != got or isinstance(value, bool):
        raise ConfigError("config", f"{FIELD}.{name}", f"expected a number, got {value!r}")
    return max(low, min(got, high))


def _http_url(params: Mapping[str, Any], name: str) -> str | None:
    url = _text(params, name)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("config", f"{FIELD}.{name}", "expected an http(s) URL")
        register_secrets(url_secrets(url))
    return url


def _key(params: Mapping[str, Any]) -> bytes | None:
    """The AES-256 key of ``sqs_aws_use_application_level_encryption`` (None when off)."""
    if not _flag(params, "sqs_aws_use_application_level_encryption"):
        return None
    raw = params.get("sqs_app_encryption_key_b64")
    name = f"{FIELD}.sqs_app_encryption_key_b64"
    if not raw:
        raise ConfigError("config", name, "required when sqs_aws_use_application_level_encryption is on")
    if not isinstance(raw, str):
        raise ConfigError("config", name, "expected a base64 string")
    register_secrets([raw])
    try:
        key = base64.b64decode(raw.strip())
    except (binascii.Error, ValueError):
        raise ConfigError("config", name, "not base64") from None
    if len(key) != 32:
        raise ConfigError("config", name, f"expected 32 bytes (AES-256-GCM), got {len(key)}")
    return key


def make_sqs(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
             **options: Any) -> SqsSink:
    """The ``aws_sqs`` sink for ``settings`` (module docstring); ``ConfigError`` without a queue URL or
    credentials, or with an encryption key that cannot work. ``options`` override :class:`HttpExporter`'s
    defaults (``timeout``, ``max_attempts`` ...)."""
    p: Mapping[str, Any] = getattr(settings, "aws_sqs_callback_params", None) or {}
    queue_url = _http_url(p, "sqs_queue_url")
    if queue_url is None:
        raise ConfigError("config", f"{FIELD}.sqs_queue_url", "the aws_sqs callback needs sqs_queue_url")
    parts = urlsplit(queue_url)
    for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_session_name",
                 "aws_role_name", "aws_profile_name", "aws_web_identity_token", "aws_sts_endpoint"):
        _text(p, "sqs_" + name)  # a type or a control character (a header's value) refused
    region = (_text(p, "sqs_region_name") or region_of(parts.hostname or "") or env.get("AWS_REGION_NAME")
              or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    signer = aws_signer(p, env, prefix="sqs_", field=FIELD, service="sqs", region=region)
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + "/"
    endpoint = _http_url(p, "sqs_endpoint_url") or origin
    if not urlsplit(endpoint).path:
        endpoint += "/"
    aad = p.get("sqs_app_encryption_aad") or None  # as written: the consumer authenticates these exact bytes
    if aad is not None and not isinstance(aad, str):
        raise ConfigError("config", f"{FIELD}.sqs_app_encryption_aad", "expected a string")
    fifo = parts.path.rstrip("/").endswith(".fifo")
    group = (_text(p, "sqs_message_group_id") or "litellm") if fifo else None
    if group is not None and not _DEDUP.fullmatch(group):
        raise ConfigError("config", f"{FIELD}.sqs_message_group_id", "expected 1 to 128 printable ASCII characters")
    opts = callback_options(settings, "aws_sqs")
    success, failure = event_flags(settings, "aws_sqs", None, FIELD)
    defaults: dict[str, Any] = {
        "batch_size": int(_number(p, "sqs_batch_size", env_int(env, "DEFAULT_SQS_BATCH_SIZE", 512, 1, 10_000),
                                  1, 10_000)),
        "flush_interval": _number(p, "sqs_flush_interval",
                                  env_float(env, "DEFAULT_SQS_FLUSH_INTERVAL_SECONDS", 10.0, 0.01, 300.0),
                                  0.01, 300.0),
        "max_pending": max(1, settings.exporter_queue),
    }
    defaults.update(options)
    return SqsSink(endpoint, queue_url, signer,
                   max_message=int(_number(p, "sqs_max_message_bytes", DEFAULT_MAX_MESSAGE, 1024, MAX_MESSAGE)),
                   strip_files=_flag(p, "sqs_strip_base64_files"), key=_key(p),
                   aad=aad.encode() if aad is not None else None, group=group,
                   success=success, failure=failure, on_event=on_event,
                   redact_key_info=settings.redact_user_api_key_info,
                   redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                   **defaults)
