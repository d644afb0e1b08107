"""The store's errors: each carries the HTTP status the management API answers with.

:class:`NotFound` is a 404 and :class:`Duplicate` / :class:`InvalidField` a 400, as LiteLLM's management
routes answer them; :class:`StoreUnavailable` (the database cannot be reached) is a 503 and
:class:`SchemaMismatch` (the database holds a schema this relaygate does not know) a 500. Any other
exception out of a backend is a bug or a driver error and is not mapped. Messages name a database by
:func:`redact_url`, never with its password.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from relaygate.core.errors import GatewayError


class StoreError(GatewayError):
    """Base of every error the store raises on purpose."""

    status = 500
    type = "internal_server_error"


class NotFound(StoreError):
    """No row has this id (LiteLLM answers 404)."""

    status = 404
    type = "not_found_error"

    def __init__(self, entity: str, ident: str) -> None:
        super().__init__(f"{entity} not found: {ident}", param=entity)
        self.entity = entity
        self.ident = ident


class Duplicate(StoreError):
    """A unique value (key, key alias, team alias, member) is taken (LiteLLM answers 400)."""

    status = 400
    type = "bad_request_error"

    def __init__(self, entity: str, field: str, value: object = None) -> None:
        shown = f" {value!r}" if value is not None and field != "token" else ""
        super().__init__(f"{entity} with this {field}{shown} already exists", param=field)
        self.entity = entity
        self.field = field


class InvalidField(StoreError):
    """An update names a field the entity does not have, or one that cannot change."""

    status = 400
    type = "bad_request_error"

    def __init__(self, entity: str, field: str, why: str = "unknown field") -> None:
        super().__init__(f"{entity}.{field}: {why}", param=field)
        self.entity = entity
        self.field = field


class InvalidText(StoreError):
    """A value holds text the database cannot take (PostgreSQL: U+0000, NUL): the caller's 400, not a 500."""

    status = 400
    type = "bad_request_error"

    def __init__(self) -> None:
        super().__init__("a value contains U+0000 (NUL), which the database cannot store")


class StoreUnavailable(StoreError):
    """The database cannot be reached (or answered with a connection error)."""

    status = 503
    type = "service_unavailable"


class SchemaMismatch(StoreError):
    """The database's schema version is newer than this relaygate knows, or older than it can serve."""

    status = 500


_QUERY_PASSWORD = re.compile(r"([?&](?:password|sslpassword)=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user, host, port and database kept), for messages; a
    ``password=`` query parameter is masked too."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<unparseable database URL>"
