"""Secrets masked in a config shown to an admin (``/config/view``, ``/config/list`` ...): the rules.

Sans IO: :func:`mask` is a pure function from any nesting of dicts, lists and scalars to a copy that is safe to
show. The rules are ``gateway.config_view``'s (its module docstring lists them); the management API's config
routes (``management.db_config``) use them too, which is why they live here, below both.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from relaygate.config.loader import credential_name

__all__ = ["ENV_PREFIX", "MASK", "mask", "mask_url", "secret_name"]

MASK = "********"
ENV_PREFIX = "os.environ/"
_MORE_WORDS = frozenset({"authorization", "auth", "cookie", "dsn", "pwd", "apikey", "passphrase", "salt",
                         "bearer", "signature", "private", "webhook", "webhooks"})
_NOT_SECRET_LAST = frozenset({"alias", "name", "id", "ids", "ttl", "limit", "type", "mode", "prefix", "header",
                              "headers", "field", "fields", "format", "file", "path", "env", "len", "length",
                              "count", "tokens", "enabled", "rotation", "hash"})
"""A field whose last word is one of these names or counts a secret, it does not hold one (``key_alias``,
``api_key_header``, ``max_tokens``, ``token_ttl``); its value is still scanned for keys and URLs."""
_CONNECTION = ("database_url", "db_url", "redis_url")
_KEY_LIKE = re.compile(r"^(sk|pk|rk)-[A-Za-z0-9_\-]{8,}$|^(AKIA|ASIA)[A-Z0-9]{12,}$|^eyJ[A-Za-z0-9_\-]{20,}\.")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def secret_name(name: str) -> bool:
    """Whether a field named ``name`` holds a credential."""
    low = name.strip().lower().replace("-", "_").replace(".", "_")
    if low in _CONNECTION:
        return False  # URLs: their userinfo and query are masked, the host stays visible
    words = [w for w in low.split("_") if w]
    if not words:
        return False
    if words[-1] in _NOT_SECRET_LAST and len(words) > 1:
        return False
    if low.replace("_", "") in ("connectionstring", "connstr"):
        return True
    return credential_name(low) or not _MORE_WORDS.isdisjoint(words)


def mask(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """A copy of ``value`` (dicts, lists, scalars) with every secret masked (rules in the module docstring).
    ``env`` maps environment variable names to values (default ``os.environ``): a masked value equal to one
    of them is shown as ``os.environ/NAME``."""
    env = os.environ if env is None else env
    by_value: dict[str, str] = {}
    for name, val in env.items():
        if len(val) >= 4:
            by_value.setdefault(val, name)
    return _walk(value, False, by_value)


def _walk(value: Any, secret: bool, by_value: dict[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _walk(v, secret or secret_name(str(k)), by_value) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_walk(v, secret, by_value) for v in value]
    if secret:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _secret_string(value, by_value)
        return MASK
    if isinstance(value, str):
        return _plain_string(value, by_value)
    return value


def _secret_string(value: str, by_value: dict[str, str]) -> str:
    if value == "":
        return value
    if value.startswith(ENV_PREFIX):
        return value
    ref = by_value.get(value)
    if ref is not None:
        return f"{ENV_PREFIX}{ref}"
    if _is_file(value):
        return value
    return MASK


def _is_file(value: str) -> bool:
    """A path to a credentials file (its content is read later; the path is no secret)."""
    v = value.strip()
    return ("/" in v or v.endswith(".json")) and not v.lstrip().startswith("{") and "\n" not in v \
        and os.path.isfile(v)


def _plain_string(value: str, by_value: dict[str, str]) -> str:
    v = value.strip()
    if _KEY_LIKE.match(v):
        ref = by_value.get(value)
        return f"{ENV_PREFIX}{ref}" if ref is not None else MASK
    if _URL.match(v):
        return mask_url(value)
    return value


def mask_url(url: str) -> str:
    """``url`` with its password (``user:********@``) and the values of credential-named query parameters
    masked; the scheme, user, host, port and path stay."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _pw = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{MASK}@{hostport}" if _looks_secret_user(user) \
            else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{urllib.parse.quote(k, safe='')}="
                         f"{MASK if secret_name(k) else urllib.parse.quote(v, safe='')}" for k, v in pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _looks_secret_user(user: str) -> bool:
    """A userinfo without a password is often a token (``https://TOKEN@host``): masked unless it is short
    and plain (``postgres``, ``admin``)."""
    return len(user) > 16 or bool(_KEY_LIKE.match(user))
