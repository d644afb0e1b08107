"""What the HTTP exporters read from the environment the same way: a required API key and a base URL.

What it owns: :func:`api_key` and :func:`base_url`, the checks each exporter made on its own — a credential that
goes in a header has no control character (else it could add a header of its own) and is registered as a secret
(never logged); a base URL is http(s) with a host and no query or fragment, its password (``user:pass@``)
registered too, and its trailing slashes dropped so the exporter's path is added once. Failures are
``ConfigError``s naming the variable, never its value (a URL may hold a key).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from relaygate.config.errors import ConfigError
from relaygate.core.errors import register_secrets

__all__ = ["ENV_SOURCE", "api_key", "base_url", "has_control"]

ENV_SOURCE = "environment"


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def api_key(env: Mapping[str, str], name: str, callback: str, *, required: bool = True) -> str:
    """The credential in variable ``name``, stripped and registered as a secret ("" when unset and not
    ``required``); ``ConfigError`` when it is missing but required, or holds a control character."""
    value = (env.get(name) or "").strip()
    if not value:
        if required:
            raise ConfigError(ENV_SOURCE, name, f"the {callback} callback needs {name}")
        return ""
    if has_control(value):
        raise ConfigError(ENV_SOURCE, name, "control characters cannot go in a header")
    register_secrets([value])
    return value


def base_url(env: Mapping[str, str], name: str, default: str) -> str:
    """The base URL in variable ``name`` (``default`` when unset), without trailing slashes; ``ConfigError`` when
    it is not an http(s) URL with a host and without a query or fragment, or holds a control character."""
    value = (env.get(name) or "").strip() or default
    parts = urlsplit(value)
    if has_control(value) or parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ConfigError(ENV_SOURCE, name, "expected an http(s) URL without a query")
    if parts.password:
        register_secrets([parts.password])
    return value.rstrip("/")
