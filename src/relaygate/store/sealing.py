"""Secrets at rest: the credentials of models stored in the database are sealed, never written in clear.

LiteLLM encrypts the ``litellm_params`` of its database models with ``LITELLM_SALT_KEY`` (else the master
key); so does relaygate, with the same choice of key, and its own format: AES-256-GCM (the ``cryptography``
package) under SHA-256 of that secret, written as ``rg1:`` + URL-safe base64 of the 12-byte nonce and the
ciphertext with its tag. What is sealed: every string under a credential-named field (``api_key``,
``aws_secret_access_key``, ``vertex_credentials`` ... as the config loader names them), at any depth.

Opening: a value without the prefix is returned as it is (a row written before sealing, or by a gateway
without a master key or salt: it has nothing to seal with, and says so once). A sealed value that does not
open (the salt or master key changed) raises :class:`SealError` naming no value; the caller skips that
model with one log line, as LiteLLM does ("Did your master_key/salt key change recently?").
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relaygate.config.loader import credential_name
from relaygate.config.model import Config

PREFIX = "rg1:"
SALT_ENV = "LITELLM_SALT_KEY"

log = logging.getLogger("relaygate.store")


class SealError(Exception):
    """A sealed value that does not open with this gateway's key."""


class Sealer:
    """Seals and opens strings with one key (``secret`` None: nothing is sealed, sealed values do not open)."""

    __slots__ = ("_aead",)

    def __init__(self, secret: str | None) -> None:
        self._aead = AESGCM(hashlib.sha256(secret.encode()).digest()) if secret else None

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    def seal(self, value: str) -> str:
        if self._aead is None or value.startswith(PREFIX):
            return value
        nonce = os.urandom(12)
        return PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, value.encode(), None)).decode()

    def open(self, value: str) -> str:
        if not value.startswith(PREFIX):
            return value
        if self._aead is None:
            raise SealError("a sealed credential, but no LITELLM_SALT_KEY or master key to open it with")
        try:
            raw = base64.urlsafe_b64decode(value[len(PREFIX):])
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealError("a sealed credential does not open: did LITELLM_SALT_KEY or the master key "
                            f"change? ({type(exc).__name__})") from None


def sealer_for(config: Config) -> Sealer:
    """This gateway's sealer: ``LITELLM_SALT_KEY``, else the master key, as LiteLLM chooses."""
    return Sealer(os.environ.get(SALT_ENV) or config.general.master_key)


def seal_credentials(params: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """``params`` with every string under a credential-named field sealed."""
    out: dict[str, Any] = _walk(params, sealer.seal, False)
    return out


def open_credentials(params: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """``params`` with every sealed string opened (:class:`SealError` when one does not open)."""
    out: dict[str, Any] = _walk(params, sealer.open, False)
    return out


def credential_strings(params: dict[str, Any]) -> list[str]:
    """Every string under a credential-named field of ``params`` (for the log redactor)."""
    found: list[str] = []

    def keep(value: str) -> str:
        found.append(value)
        return value

    _walk(params, keep, False)
    return found


def _walk(value: Any, fn: Any, named: bool) -> Any:
    if isinstance(value, str):
        return fn(value) if named else value
    if isinstance(value, dict):
        return {k: _walk(v, fn, named or credential_name(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fn, named) for v in value]
    return value


LITELLM_GCM = "v2:gcm:"


def open_litellm(value: str, secret: str) -> str | None:
    """A value LiteLLM encrypted under ``secret`` (its ``LITELLM_SALT_KEY``, else its master key) opened; None
    when ``value`` is not such a ciphertext (a value LiteLLM left in clear, or one sealed under another key).

    LiteLLM's two formats, both under SHA-256 of the secret: ``v2:gcm:`` + URL-safe base64 of a 12-byte nonce
    and the AES-256-GCM ciphertext (``general_settings.encryption_algorithm: aes-256-gcm``; relaygate's own
    ``rg1:`` format is the same construction), else its default, base64 (URL-safe, or standard in older rows)
    of a NaCl ``SecretBox`` (XSalsa20-Poly1305: a 24-byte nonce, the ciphertext and its 16-byte tag), opened
    with PyNaCl."""
    key = hashlib.sha256(secret.encode()).digest()
    if value.startswith(LITELLM_GCM):
        try:
            raw = base64.urlsafe_b64decode(value[len(LITELLM_GCM):])
            return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()
        except (InvalidTag, ValueError):
            return None
    try:
        raw = base64.urlsafe_b64decode(value)
    except ValueError:
        try:
            raw = base64.b64decode(value)
        except ValueError:
            return None
    if len(raw) < 40:  # nonce and tag alone take 40 bytes: a plain value that happened to decode
        return None
    import nacl.exceptions
    import nacl.secret

    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(raw)).decode()
    except (nacl.exceptions.CryptoError, UnicodeDecodeError):
        return None
