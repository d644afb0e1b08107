"""Users' UI passwords: salted scrypt hashes that carry their own parameters, checked in constant time.

A hash is one ASCII string ``scrypt$n=<N>,r=<r>,p=<p>$<salt>$<digest>`` (salt and digest base64url without
padding; 16 random bytes of salt, a 32-byte digest), so the cost can be raised later without making older
hashes unreadable: :func:`verify` reads the parameters from the string. :func:`needs_rehash` says whether a
hash is below today's cost.

Checking costs ~50 ms of CPU and 16 MiB (N = 2^14, r = 8, p = 1): the async wrappers run it in a thread, so
a sign-in never stalls the worker's event loop. :func:`check` verifies against a fixed dummy hash when the
user has none, so an unknown user and a wrong password take the same time. A malformed stored hash never
verifies (and never raises). Passwords are never logged and never leave this module except as a hash.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets

__all__ = ["MAX_PASSWORD_BYTES", "check", "hash_password", "hash_password_async",
           "needs_rehash", "verify"]

N, R, P = 2**14, 8, 1
DKLEN = 32
MAX_PASSWORD_BYTES = 1024
"""Longer passwords are refused before hashing (scrypt's cost grows with them; no one types 1 KiB)."""
_MAX_N = 2**20


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """The storable hash of ``password`` (a fresh random salt each time)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN, maxmem=2 * 128 * r * n + 2**20)
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        scheme, params, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return None
        kv = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(kv["n"]), int(kv["r"]), int(kv["p"])
        if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16):
            return None
        return n, r, p, _unb64(salt), _unb64(digest)
    except (ValueError, KeyError):
        return None


def verify(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison; False for a malformed hash)."""
    parsed = _parse(stored)
    if parsed is None or len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    n, r, p, salt, digest = parsed
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest),
                         maxmem=2 * 128 * r * n + 2**20)
    return hmac.compare_digest(got, digest)


def needs_rehash(stored: str) -> bool:
    parsed = _parse(stored)
    return parsed is None or parsed[:3] != (N, R, P)


@functools.cache
def _dummy() -> str:
    """A hash to verify against when the user has none (built on first need: it costs one hashing)."""
    return hash_password(secrets.token_urlsafe(16))


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def check(password: str, stored: str | None) -> bool:
    """Verify off the event loop; with no stored hash, spend the same time on a dummy and answer False."""
    if stored is None:
        await asyncio.to_thread(verify, password, _dummy())
        return False
    return await asyncio.to_thread(verify, password, stored)
