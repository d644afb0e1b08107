"""Public signing keys of an OpenID provider (a JWKS), fetched over HTTP and cached per worker.

What it owns: turning a JWT's header (``kid``, ``alg``) into the public key that verifies it, for the two
places that verify provider-signed tokens: the ID token of a single sign-on (``ui.sso``) and the bearer JWTs
of API calls (``auth.jwt_auth``, LiteLLM's ``enable_jwt_auth``).

Invariants:
- Only asymmetric algorithms are accepted (RSA, RSA-PSS, ECDSA, EdDSA): a JWKS is public, so an HMAC
  ``alg`` (key confusion) or ``none`` never verifies anything. A key's own ``alg``, when it names one, must
  match the token's.
- The key set is kept for ``ttl`` seconds (LiteLLM's ``public_key_ttl``). A ``kid`` it does not hold makes
  it refetch at once (the provider rotated its keys), but at most once per ``min_refresh`` seconds, so a
  flood of tokens with made-up ``kid`` values costs at most one fetch per ``min_refresh``. Concurrent
  fetches share one request.
- Fetches are bounded: a timeout, at most :data:`MAX_JWKS_BYTES` of body and :data:`MAX_KEYS` keys; keys
  that PyJWT cannot load (an unknown ``kty``, a shared ``oct`` secret) are skipped, not fatal.
- A failed fetch raises :class:`JWKSUnavailable` (the caller answers 503 or 502); a set fetched earlier keeps
  answering for the ``kid`` values it holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

__all__ = ["ALGORITHMS", "JWKS", "JWKSUnavailable", "MAX_JWKS_BYTES", "MAX_KEYS", "claim", "jwks_for"]

log = logging.getLogger("relaygate.auth.jwks")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""The signature algorithms a provider-signed token may use (asymmetric only)."""
MAX_JWKS_BYTES = 1 << 20
MAX_KEYS = 100


class JWKSUnavailable(Exception):
    """The key set could not be fetched (the provider is down or answered something that is no JWKS)."""


class JWKS:
    """The keys published at one or more JWKS URLs (LiteLLM's ``JWT_PUBLIC_KEY_URL`` may list several)."""

    def __init__(self, urls: Sequence[str], *, ttl: float = 600.0, min_refresh: float = 2.0,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = tuple(u for u in urls if u)
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.timeout = timeout
        self.clock = clock
        self.keys: dict[str, jwt.PyJWK] = {}
        """kid -> key; keys without a kid are held under ``""`` (the last one wins)."""
        self.algs: dict[str, str] = {}
        """kid -> the ``alg`` the key declares (keys that declare none are absent)."""
        self.fetched_at = -1e18
        self._attempted_at = -1e18
        self._fetch: asyncio.Task[None] | None = None
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key for a token whose header names ``kid`` and ``alg``; raises ``jwt.InvalidTokenError`` when
        the set has no such key, :class:`JWKSUnavailable` when the set could not be fetched at all."""
        if alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"the token's algorithm {alg!r} is not accepted")
        now = self.clock()
        name = kid or ""
        stale = now - self.fetched_at >= self.ttl
        if stale or (name not in self.keys and now - self._attempted_at >= self.min_refresh):
            await self.refresh()
        key = self.keys.get(name)
        if key is None and not kid and len(self.keys) == 1:
            key = next(iter(self.keys.values()))
        if key is None:
            raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the provider's key set")
        declared = self.algs.get(name)
        if declared and declared != alg:
            raise jwt.InvalidAlgorithmError(f"the key {kid!r} is for {declared}, the token says {alg}")
        return key

    async def refresh(self) -> None:
        """Fetch the set now (shared by concurrent callers)."""
        task = self._fetch
        if task is None or task.done():
            task = self._fetch = asyncio.get_running_loop().create_task(self._load())
        await asyncio.shield(task)

    async def _load(self) -> None:
        import httpx

        self._attempted_at = self.clock()
        self.fetches += 1
        found: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                for url in self.urls:
                    r = await client.get(url, headers={"accept": "application/json"})
                    if r.status_code != 200:
                        raise JWKSUnavailable(f"the key set at {url} answered {r.status_code}")
                    if len(r.content) > MAX_JWKS_BYTES:
                        raise JWKSUnavailable(f"the key set at {url} is larger than {MAX_JWKS_BYTES} bytes")
                    found.update(parse_jwks(r.content, url))
        except httpx.HTTPError as exc:
            log.warning("JWKS fetch failed: %s", type(exc).__name__)
            raise JWKSUnavailable(f"the provider's key set could not be fetched ({type(exc).__name__})") from None
        except JWKSUnavailable as exc:
            log.warning("JWKS fetch failed: %s", exc)
            raise
        self.keys = {kid: k for kid, (k, _) in found.items()}
        self.algs = {kid: a for kid, (_, a) in found.items() if a}
        self.fetched_at = self.clock()


def parse_jwks(body: bytes, url: str) -> dict[str, tuple[jwt.PyJWK, str | None]]:
    """The usable signing keys of a JWKS document (with the ``alg`` each declares), by kid; raises
    :class:`JWKSUnavailable` if it is no key set."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        raise JWKSUnavailable(f"the key set at {url} is not JSON") from None
    raw = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise JWKSUnavailable(f"the key set at {url} has no 'keys' list")
    out: dict[str, tuple[jwt.PyJWK, str | None]] = {}
    for item in raw[:MAX_KEYS]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") == "oct":
            continue  # a shared secret has no place in a public key set
        try:
            key = jwt.PyJWK(item)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        alg = item.get("alg")
        out[str(item.get("kid") or "")] = (key, alg if isinstance(alg, str) else None)
    return out


_SETS: dict[tuple[tuple[str, ...], float], JWKS] = {}


def jwks_for(urls: Sequence[str], ttl: float = 600.0) -> JWKS:
    """The worker's one :class:`JWKS` for ``urls`` (kept across config reloads, at most 32 sets)."""
    k = (tuple(urls), ttl)
    found = _SETS.get(k)
    if found is None:
        if len(_SETS) >= 32:
            _SETS.pop(next(iter(_SETS)))
        found = _SETS[k] = JWKS(urls, ttl=ttl)
    return found


def claim(claims: Mapping[str, Any], path: str | None) -> Any:
    """A claim of a provider's token by name, or by a dotted path into nested objects
    (``resource_access.app.roles``); None when absent (or no path is given). JWT auth and single sign-on read
    their configured claims through it."""
    if not path:
        return None
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
