"""The ids clients hold for files and batches: self-describing, signed, and a function of where they live.

An id names the deployment that holds the object and the upstream's own id for it, so every later call
(retrieve, content, delete, a batch on the file, cancel) reaches the same deployment, with or without a
database, across restarts and workers:

    file-<token>   or   batch_<token>   or   ftjob-<token>   or   vs_<token>
    token = base64url( 0x01 | deployment_id | 0x00 | upstream_id | mac ), unpadded
    mac   = HMAC-SHA256(secret, kind | 0x00 | payload)[:12]

The prefixes are OpenAI's (``file-``, ``batch_``), as LiteLLM's encoded ids keep them, so clients that look
at them are not surprised. ``secret`` is derived from the master key (:func:`secret_for`): an id edited by
hand, or made for another gateway, fails the MAC and is *not found* (404), never a 500 and never a way to
point a call at a deployment the id was not issued for. Rotating the master key makes older ids unknown.

Invariants: :func:`decode` never raises (any malformed input is None); an id is at most :data:`MAX_ID`
characters; an upstream id is accepted only when it is printable ASCII without spaces, at most 256
characters (:func:`valid_upstream_id`), so it can go into an upstream URL path segment after quoting and
into a log line as it is. The same (kind, deployment, upstream id) always gives the same id, which makes a
batch's output file id stable across retrievals. Nothing here does IO.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ["MAX_ID", "PREFIXES", "Ref", "decode", "encode", "secret_for", "valid_upstream_id"]

PREFIXES = {"file": "file-", "batch": "batch_", "fine_tuning_job": "ftjob-", "vector_store": "vs_"}
MAX_ID = 700
_VERSION = b"\x01"
_MAC = 12
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\Z")
_UPSTREAM = re.compile(r"[\x21-\x7e]{1,256}\Z")


@dataclass(frozen=True, slots=True)
class Ref:
    """What an id names: its kind, the deployment holding the object and the upstream's id for it."""

    kind: str
    deployment_id: str
    upstream_id: str


def secret_for(master_key: bytes | None) -> bytes:
    """The signing secret of this gateway's ids: derived from the master key (a fixed value on an open
    gateway, where anyone may call anything anyway)."""
    return hashlib.sha256(b"relaygate files ids v1\x00" + (master_key or b"")).digest()


def valid_upstream_id(value: object) -> bool:
    return isinstance(value, str) and _UPSTREAM.match(value) is not None


def _mac(secret: bytes, kind: str, payload: bytes) -> bytes:
    return hmac.new(secret, kind.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_MAC]


def encode(kind: str, deployment_id: str, upstream_id: str, secret: bytes) -> str:
    """The client's id for ``upstream_id`` held by ``deployment_id``. ``ValueError`` for an upstream id that
    :func:`valid_upstream_id` refuses or a deployment id with a NUL (wiring bugs, never client input)."""
    if not valid_upstream_id(upstream_id) or "\x00" in deployment_id:
        raise ValueError("unusable id parts")
    payload = _VERSION + deployment_id.encode() + b"\x00" + upstream_id.encode()
    token = base64.urlsafe_b64encode(payload + _mac(secret, kind, payload)).rstrip(b"=").decode()
    return PREFIXES[kind] + token


def decode(kind: str, object_id: str, secret: bytes) -> Ref | None:
    """What ``object_id`` names when it is an intact id of ``kind`` made with ``secret``; else None."""
    prefix = PREFIXES.get(kind)
    if prefix is None or not isinstance(object_id, str) or len(object_id) > MAX_ID:
        return None
    if not object_id.startswith(prefix):
        return None
    token = object_id[len(prefix):]
    if _TOKEN.match(token) is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 1 + 1 + 1 + _MAC or raw[:1] != _VERSION:
        return None
    payload, mac = raw[:-_MAC], raw[-_MAC:]
    if not hmac.compare_digest(mac, _mac(secret, kind, payload)):
        return None
    dep, sep, up = payload[1:].partition(b"\x00")
    if not sep:
        return None
    try:
        deployment_id, upstream_id = dep.decode(), up.decode()
    except UnicodeDecodeError:
        return None
    if not valid_upstream_id(upstream_id):
        return None
    return Ref(kind, deployment_id, upstream_id)
