"""PostgreSQL URLs as LiteLLM's operators write them, made into what asyncpg takes.

LiteLLM reaches PostgreSQL through Prisma, so its ``DATABASE_URL`` often carries Prisma's connection options
(``?schema=litellm&connection_limit=10&pool_timeout=30``, ``?pgbouncer=true``); asyncpg passes every query
option it does not know to the server as a setting, and the server refuses the connection
(``unrecognized configuration parameter "schema"``). A LiteLLM operator's URL must work unchanged, so
:func:`pg_options` takes Prisma's options out of the URL and gives their meaning to asyncpg:

- ``schema``: the schema relaygate's tables live in: the connections' ``search_path``, and the schema is
  created when missing (as ``prisma migrate`` does);
- ``connection_limit``: the most connections a worker's pool opens (instead of
  ``relaygate_settings.database_pool_size``);
- ``pool_timeout``: seconds a query waits for a free connection (unbounded without it, as before);
- ``connect_timeout``: seconds to connect; ``socket_timeout``: seconds one statement may take;
- ``pgbouncer=true``: no prepared statements kept per connection (PgBouncer in transaction mode hands
  each transaction another server connection); ``statement_cache_size``: the per-connection cache's size;
- ``sslaccept=strict``: verify the server's certificate and name (``sslmode=verify-full``);
  ``accept_invalid_certs`` (Prisma's default) encrypts without verifying, as ``sslmode=require`` does;
- ``sslcert`` without ``sslkey``: in Prisma (and in the URLs LiteLLM assembles from
  ``DATABASE_SSLROOTCERT``) the server's CA, which libpq spells ``sslrootcert``; with ``sslkey`` it is
  libpq's client certificate and stays;
- ``sslidentity`` (a PKCS#12 client identity) has no asyncpg equivalent: a clear error asks for
  ``sslcert`` + ``sslkey`` in PEM.

Every other option (libpq's ``sslmode``, ``sslrootcert``, ``target_session_attrs``, a server setting such as
``application_name``) stays in the URL for asyncpg. :func:`url_from_env` builds the URL LiteLLM builds from
``DATABASE_HOST`` / ``DATABASE_PORT`` / ``DATABASE_USER`` (or ``DATABASE_USERNAME``) / ``DATABASE_PASSWORD`` /
``DATABASE_NAME`` / ``DATABASE_SCHEMA`` / ``DATABASE_SSLMODE`` / ``DATABASE_SSLROOTCERT`` when no
``DATABASE_URL`` is set (the official Helm chart sets only those). Sans IO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

PRISMA = frozenset({"schema", "connection_limit", "pool_timeout", "connect_timeout", "socket_timeout", "pgbouncer",
                    "statement_cache_size", "sslaccept", "sslidentity"})
"""Prisma's connection options, taken out of the URL (see the module docstring)."""
_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")


class PgOptions(NamedTuple):
    dsn: str
    """The URL without Prisma's options."""
    schema: str | None = None
    max_size: int | None = None
    pool_timeout: float | None = None
    connect_timeout: float | None = None
    command_timeout: float | None = None
    statement_cache_size: int | None = None

    @property
    def search_path(self) -> str | None:
        """The ``search_path`` setting naming :attr:`schema` (quoted unless a plain lower-case name)."""
        return None if self.schema is None else quote_ident(self.schema)


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier: as it is when plain, else double-quoted."""
    return name if _PLAIN_IDENT.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _number(name: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        n = kind(value)
    except ValueError:
        raise ValueError(f"DATABASE_URL option {name}={value!r}: expected a number") from None
    if n < 0 or (kind is int and name == "connection_limit" and n < 1):
        raise ValueError(f"DATABASE_URL option {name}={value!r}: out of range")
    return n


def pg_options(url: str) -> PgOptions:
    """``url``'s Prisma options taken out and read (a malformed one is a ``ValueError`` naming it)."""
    u = urlsplit(url)
    if not u.query:
        return PgOptions(url)
    kept: list[tuple[str, str]] = []
    found: dict[str, str] = {}
    for k, v in parse_qsl(u.query, keep_blank_values=True):
        (found.__setitem__(k, v) if k in PRISMA else kept.append((k, v)))
    if not found:
        return PgOptions(url)
    if "sslidentity" in found:
        raise ValueError("DATABASE_URL option sslidentity (a PKCS#12 client identity) is not supported: give the "
                         "client certificate and key in PEM as sslcert and sslkey")
    names = {k for k, _ in kept}
    if "sslcert" in names and "sslkey" not in names and "sslrootcert" not in names:
        kept = [("sslrootcert" if k == "sslcert" else k, v) for k, v in kept]  # Prisma's sslcert: the server's CA
    accept = found.get("sslaccept")
    if accept is not None:
        if accept not in ("strict", "accept_invalid_certs"):
            raise ValueError(f"DATABASE_URL option sslaccept={accept!r}: expected strict or accept_invalid_certs")
        if "sslmode" not in names:
            kept.append(("sslmode", "verify-full" if accept == "strict" else "require"))
    schema = found.get("schema") or None
    cache: int | None = None
    if "statement_cache_size" in found:
        cache = int(_number("statement_cache_size", found["statement_cache_size"], int))
    if found.get("pgbouncer", "").lower() in ("true", "1"):
        cache = 0
    return PgOptions(
        urlunsplit((u.scheme, u.netloc, u.path, urlencode(kept), u.fragment)),
        schema=schema,
        max_size=int(_number("connection_limit", found["connection_limit"], int)) if "connection_limit" in found
        else None,
        pool_timeout=_number("pool_timeout", found["pool_timeout"], float) if "pool_timeout" in found else None,
        connect_timeout=_number("connect_timeout", found["connect_timeout"], float) if "connect_timeout" in found
        else None,
        command_timeout=_number("socket_timeout", found["socket_timeout"], float) if "socket_timeout" in found
        else None,
        statement_cache_size=cache)


def url_from_env(env: Mapping[str, str]) -> str | None:
    """The URL LiteLLM assembles from its ``DATABASE_*`` variables (see the module docstring), or None when
    ``DATABASE_HOST``, the user or ``DATABASE_NAME`` is missing."""
    host = env.get("DATABASE_HOST")
    user = env.get("DATABASE_USER") or env.get("DATABASE_USERNAME")
    name = env.get("DATABASE_NAME")
    if not (host and user and name):
        return None
    password = env.get("DATABASE_PASSWORD")
    port = env.get("DATABASE_PORT") or "5432"
    auth = quote_plus(user) + (":" + quote_plus(password) if password else "")
    where = host if ":" in host and not host.startswith("[") else f"{host}:{port}"  # a host:port is kept
    query: list[tuple[str, str]] = []
    if env.get("DATABASE_SCHEMA"):
        query.append(("schema", env["DATABASE_SCHEMA"]))
    root = env.get("DATABASE_SSLROOTCERT")
    mode = env.get("DATABASE_SSLMODE") or ("verify-full" if root else None)
    if mode:
        query.append(("sslmode", mode))
    if root:
        query.append(("sslrootcert", root))
    return f"postgresql://{auth}@{where}/{quote_plus(name)}" + (f"?{urlencode(query)}" if query else "")


__all__ = ["PRISMA", "PgOptions", "pg_options", "quote_ident", "url_from_env"]
