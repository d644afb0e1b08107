"""The durable store: keys, users, teams, organizations, customers, budgets, tags and models.

One async interface (:class:`Store`, in ``base``) over two backends: SQLite (``sqlite``: the embedded
default, a file beside the config, WAL mode, created on first start) and PostgreSQL (``postgres``: asyncpg
pool; ``general_settings.database_url`` or ``DATABASE_URL``, as LiteLLM) for several instances sharing
one database. Typed records are in ``records``, the schema's versioned steps in ``migrations``.

Where the database is (:func:`database_url`): ``general_settings.database_url``, else the ``DATABASE_URL``
environment variable, else the URL LiteLLM assembles from ``DATABASE_HOST`` / ``DATABASE_USER`` /
``DATABASE_PASSWORD`` / ``DATABASE_NAME`` ... (``store.pgurl.url_from_env``: what the official Helm chart
sets), else (unless ``relaygate_settings.embedded_database`` is false) the SQLite file
``relaygate_settings.database_file`` (default ``relaygate.db``) in the config file's directory. The
embedded default config (``relaygate serve`` without a file) keeps its SQLite file in the data directory
(:func:`embedded_default_url`: ``RELAYGATE_DATA_DIR``, else ``$XDG_DATA_HOME/relaygate``, else
``~/.local/share/relaygate``); ``serve`` passes it to its workers as ``DATABASE_URL``. A gateway built
in-process from a dict (tests) has no store unless its config names one.
"""

from __future__ import annotations

import os

from relaygate.config.model import Config
from relaygate.store.base import Store
from relaygate.store.errors import (
    Duplicate,
    InvalidField,
    NotFound,
    SchemaMismatch,
    StoreError,
    StoreUnavailable,
    redact_url,
)
from relaygate.store.pgurl import url_from_env
from relaygate.store.records import (
    Budget,
    Customer,
    Key,
    ModelRow,
    Organization,
    OrganizationMember,
    Page,
    Tag,
    Team,
    TeamMember,
    User,
    hash_token,
    key_name,
)


def database_url(config: Config, config_path: str | None) -> str | None:
    """The database this config uses (see the module docstring), or None for no store."""
    url = config.general.database_url or os.environ.get("DATABASE_URL") or url_from_env(os.environ)
    if url:
        return url
    if not config.server.embedded_database or not config_path:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(config_path)), config.server.database_file)
    return f"sqlite:///{os.path.abspath(path)}"


def data_dir() -> str:
    """Where the embedded default config keeps its database: ``RELAYGATE_DATA_DIR``, else
    ``$XDG_DATA_HOME/relaygate``, else ``~/.local/share/relaygate``."""
    d = os.environ.get("RELAYGATE_DATA_DIR")
    if d:
        return os.path.abspath(d)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(os.path.abspath(base), "relaygate")


def embedded_default_url(config: Config) -> str | None:
    """The SQLite URL of the embedded default config (no config file), or None when
    ``relaygate_settings.embedded_database`` is off."""
    if not config.server.embedded_database:
        return None
    return f"sqlite:///{os.path.join(data_dir(), config.server.database_file)}"


def make_store(url: str, *, pool_size: int = 5, connect_timeout: float = 5.0,
               pool_timeout: float | None = None) -> Store:
    """A (not yet connected) store for ``url``: ``sqlite:///path`` or ``postgresql://`` / ``postgres://``."""
    if url.startswith("sqlite:///"):
        from relaygate.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), busy_timeout=max(connect_timeout, 10.0))
    if url.startswith(("postgresql://", "postgres://")):
        from relaygate.store.postgres import PostgresStore

        return PostgresStore(url, max_size=pool_size, connect_timeout=connect_timeout, pool_timeout=pool_timeout)
    raise StoreError(f"unsupported database URL {redact_url(url)}: expected sqlite:///PATH or postgresql://...")


async def open_store(url: str, *, migrate: bool = True, pool_size: int = 5, connect_timeout: float = 5.0,
                     pool_timeout: float | None = None) -> Store:
    """Connect to ``url`` and bring its schema up to date (``migrate``) or check it is (else
    :class:`SchemaMismatch`); :class:`StoreUnavailable` names the URL without its password."""
    return await make_store(url, pool_size=pool_size, connect_timeout=connect_timeout,
                            pool_timeout=pool_timeout).open(migrate=migrate)


__all__ = [
    "Budget", "Customer", "Duplicate", "InvalidField", "Key", "ModelRow", "NotFound", "Organization",
    "OrganizationMember", "Page", "SchemaMismatch", "Store", "StoreError", "StoreUnavailable", "Tag", "Team",
    "TeamMember",
    "User", "data_dir", "database_url", "embedded_default_url", "hash_token", "key_name", "make_store",
    "open_store", "redact_url",
]
