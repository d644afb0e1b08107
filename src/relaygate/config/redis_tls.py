"""TLS to Redis, configured as LiteLLM configures it: what the settings say, never a connection.

Managed Redis services (ElastiCache with in-transit encryption, Azure Cache for Redis, Memorystore,
Redis Cloud, Upstash) accept TLS only. LiteLLM hands its settings to redis-py, so an operator's config
turns TLS on in one of three ways, all read here:

- a ``rediss://`` URL (``router_settings.redis_url``, ``cache_params.url`` / ``redis_url``, ``REDIS_URL``),
  with redis-py's query options (``?ssl_cert_reqs=none&ssl_ca_certs=/path``);
- ``ssl: true`` in ``litellm_settings.cache_params`` (next to ``host`` / ``port``), with ``ssl_cert_reqs``,
  ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``;
- the environment, LiteLLM's ``REDIS_<redis-py argument>`` variables: ``REDIS_SSL=True``,
  ``REDIS_SSL_CERT_REQS``, ``REDIS_SSL_CA_CERTS``, ``REDIS_SSL_CERTFILE``, ``REDIS_SSL_KEYFILE``,
  ``REDIS_SSL_CHECK_HOSTNAME``. They apply to every Redis the gateway uses (the limiter's, the cache's,
  the key and spend layers'), as LiteLLM applies them to every client it makes; a cache's own ``ssl*``
  options take precedence for the cache.

Where relaygate differs, on purpose:

- ``ssl: true`` (or ``REDIS_SSL``) with a ``redis://`` URL still means TLS: an operator who asked for TLS
  never gets a plaintext connection because of how the address was spelled (redis-py refuses the pair).
- The defaults are redis-py's current ones: the server's certificate is verified against the system's CAs
  (or ``ssl_ca_certs``) and its host name checked. ``ssl_cert_reqs: none`` turns verification off (and the
  host name check with it) for a self-signed server; the config says so in its warnings.
- The files named are read when the config is checked, so a wrong path is a config error naming the
  setting, not an outage at the first request.

Sans IO: :class:`RedisTls` is the parsed result; ``limits.resp`` makes the SSL context from it, and
:func:`url_with_tls` spells it for redis-py (whose ``from_url`` reads the same query options).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import msgspec

from relaygate.config.errors import FieldError

CERT_REQS = ("required", "optional", "none")
OPTIONS = ("ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
"""The TLS options of ``cache_params`` (and, upper-cased after ``REDIS_``, of the environment)."""
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})


class RedisTlsError(FieldError):
    """An invalid TLS option: ``field`` is the setting's path (or the variable's name)."""


class RedisTls(msgspec.Struct, frozen=True, kw_only=True):
    """How to speak TLS to a Redis server (see the module docstring)."""

    cert_reqs: str = "required"
    """``required`` (verify the server's certificate), ``optional`` (as ``required`` on a client: Python's
    ``CERT_OPTIONAL``) or ``none`` (no verification)."""
    ca_certs: str | None = None
    """A PEM file of the CAs to trust; None: the system's."""
    certfile: str | None = None
    """A client certificate (PEM), for servers that ask for one (``tls-auth-clients yes``)."""
    keyfile: str | None = None
    """The client certificate's key, when it is not in ``certfile``."""
    check_hostname: bool = True
    """Whether the certificate must name the host connected to (never with ``cert_reqs: none``)."""


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RedisTlsError(field, "expected true or false")


def _options(get: Callable[[str], Any], name: Callable[[str], str], base: RedisTls | None,
             on: bool) -> RedisTls | None:
    """The options ``get(option)`` gives (None: unset), over ``base``; ``name(option)`` names a setting in
    errors. ``on``: TLS is asked for whatever ``ssl`` says (a ``rediss://`` URL)."""
    raw_ssl = get("ssl")
    if raw_ssl is not None and not on:
        on = _flag(raw_ssl, name("ssl"))
    if not on:
        return None
    fields: dict[str, Any] = {} if base is None else {f: getattr(base, f) for f in RedisTls.__struct_fields__}
    reqs = get("ssl_cert_reqs")
    if reqs is not None:
        text = str(reqs).strip().lower()
        text = text.removeprefix("ssl.").removeprefix("cert_")  # redis-py also takes ssl.CERT_NONE's name
        if text not in CERT_REQS:
            raise RedisTlsError(name("ssl_cert_reqs"), f"expected one of {', '.join(CERT_REQS)}")
        fields["cert_reqs"] = text
    for option, field in (("ssl_ca_certs", "ca_certs"), ("ssl_certfile", "certfile"), ("ssl_keyfile", "keyfile")):
        path = get(option)
        if path is None or path == "":
            continue
        if not isinstance(path, str):
            raise RedisTlsError(name(option), "expected the path of a PEM file")
        if not os.path.isfile(path):
            raise RedisTlsError(name(option), f"no such file: {path}")
        fields[field] = path
    check = get("ssl_check_hostname")
    if check is not None:
        fields["check_hostname"] = _flag(check, name("ssl_check_hostname"))
    if fields.get("cert_reqs") == "none":
        fields["check_hostname"] = False  # nothing verified: no name to check either
    if fields.get("keyfile") and not fields.get("certfile"):
        raise RedisTlsError(name("ssl_keyfile"), "a key without ssl_certfile: set the client certificate too")
    return RedisTls(**fields)


def tls_from_env(env: Mapping[str, str]) -> RedisTls | None:
    """LiteLLM's ``REDIS_SSL`` and ``REDIS_SSL_*`` variables; None when ``REDIS_SSL`` does not turn TLS on."""
    return _options(lambda o: env.get("REDIS_" + o.upper()), lambda o: "REDIS_" + o.upper(), None, False)


def tls_from_params(params: Mapping[str, Any], env: Mapping[str, str], where: str) -> RedisTls | None:
    """A settings mapping's ``ssl*`` options (``cache_params``); where it sets no ``ssl``, the environment's.
    ``where`` prefixes the settings' names in errors."""
    if params.get("ssl") is None:
        base = tls_from_env(env)
        if base is None:
            return None
        return _options(params.get, lambda o: where + o, base, True)
    return _options(params.get, lambda o: where + o, None, False)


def tls_for_url(url: str, tls: RedisTls | None, where: str) -> RedisTls | None:
    """What a Redis URL asks for: TLS with ``tls``'s options (or the defaults) under its own query options
    for ``rediss://``; ``tls`` (from ``ssl: true`` or ``REDIS_SSL``) for ``redis://``."""
    u = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if u.scheme == "rediss":
        return _options(lambda o: query.get(o), lambda o: f"{where} (query option {o})", tls, True)
    if tls is not None and any(o in query for o in OPTIONS[1:]):
        return _options(lambda o: query.get(o), lambda o: f"{where} (query option {o})", tls, True)
    return tls


def url_with_tls(url: str, tls: RedisTls | None) -> str:
    """``url`` as redis-py's ``from_url`` reads it with ``tls``: the ``rediss`` scheme and the options as
    query parameters (the URL's own query options are kept and win)."""
    if tls is None:
        return url
    u = urlsplit(url)
    have = parse_qs(u.query)
    extra = {"ssl_cert_reqs": tls.cert_reqs, "ssl_check_hostname": "true" if tls.check_hostname else "false"}
    for option, value in (("ssl_ca_certs", tls.ca_certs), ("ssl_certfile", tls.certfile),
                          ("ssl_keyfile", tls.keyfile)):
        if value:
            extra[option] = value
    parts = [u.query] if u.query else []
    parts.extend(f"{k}={quote(v, safe='/')}" for k, v in extra.items() if k not in have)
    return urlunsplit(("rediss", u.netloc, u.path, "&".join(parts), u.fragment))


__all__ = ["CERT_REQS", "OPTIONS", "RedisTls", "RedisTlsError", "tls_for_url", "tls_from_env", "tls_from_params",
           "url_with_tls"]
