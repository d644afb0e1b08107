"""How each record maps to its table: the table name, primary key, unique columns and each column's kind.

The kinds come from the record's annotations (``list`` / ``dict`` -> JSON, ``bool``, ``datetime``, numbers
and text), so reading and writing a record is one generic conversion per dialect (:meth:`Table.to_db`,
:meth:`Table.from_db`). The DDL itself is frozen in :mod:`relaygate.store.migrations`; a test checks that
the migrated tables have exactly these columns.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from relaygate.store import records as r
from relaygate.store.errors import InvalidField

R = TypeVar("R", bound=msgspec.Struct)

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode

NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
"""JSON text's escape of U+0000 (not an escaped backslash followed by the text ``u0000``)."""
NUL_WHY = "contains U+0000 (NUL), which the database cannot store"


def without_nul(value: Any, json_text: bool = False) -> Any:
    """``value`` with every U+0000 (and, in ``json_text``, every JSON escape of one) as U+FFFD, for what is
    written on a client's behalf in the background (spend rows, stored responses), where a PostgreSQL refusal
    would lose the row rather than answer the client; other values unchanged."""
    if isinstance(value, str):
        value = value.replace("\x00", "\ufffd")
        if json_text and "\\u0000" in value:
            value = NUL_ESCAPE.sub(r"\1\\ufffd", value)
    return value


JSON, BOOL, TS, OTHER = "json", "bool", "ts", "other"


def _kind(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = typing.get_origin(annotation) or annotation
    if base in (list, dict):
        return JSON
    if annotation is bool:
        return BOOL
    if annotation is datetime or (args and args[0] is datetime):
        return TS
    return OTHER


@dataclass(frozen=True)
class Table(Generic[R]):
    """One entity's table; ``entity`` names it in errors (``key``, ``team`` ...)."""

    entity: str
    name: str
    record: type[R]
    pk: tuple[str, ...]
    unique: tuple[str, ...] = ()
    """Columns with a unique index besides the primary key (NULLs are not compared)."""
    immutable: tuple[str, ...] = ("created_at", "created_by")
    columns: tuple[str, ...] = field(init=False)
    kinds: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.record)
        names = tuple(f.name for f in msgspec.structs.fields(self.record))
        object.__setattr__(self, "columns", names)
        object.__setattr__(self, "kinds", {n: _kind(hints[n]) for n in names})

    def to_db(self, name: str, value: Any, dialect: str) -> Any:
        """One value as the driver takes it: JSON text, 0/1 for SQLite booleans, ISO text for SQLite times."""
        kind = self.kinds[name]
        if value is None:
            return None
        if kind == JSON:
            text = _json_encode(value).decode()
            if "\\u0000" in text and NUL_ESCAPE.search(text):
                raise InvalidField(self.entity, name, NUL_WHY)
            return text
        if type(value) is str and "\x00" in value:
            # PostgreSQL refuses it (a 500 before); SQLite answers the same, so rows move between the two
            raise InvalidField(self.entity, name, NUL_WHY)
        if kind == TS:
            return time_value(value, dialect)
        if dialect == "sqlite" and kind == BOOL:
            return int(bool(value))
        return value

    def row(self, rec: R, dialect: str) -> list[Any]:
        """Every column's value of ``rec``, in :attr:`columns` order."""
        return [self.to_db(n, getattr(rec, n), dialect) for n in self.columns]

    def row_encoder(self, dialect: str) -> Callable[[R], list[Any]]:
        """:meth:`row` compiled for one dialect (built once, cached): the record's values by position
        (``msgspec.structs.astuple``), converted only in the columns whose kind needs it. The spend sink
        encodes every request's row with it."""
        got = _ENCODERS.get((self.name, dialect))
        if got is not None:
            return got
        convert: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(self.columns):
            kind = self.kinds[name]
            if kind == JSON:
                convert.append((i, _json_text))
            elif dialect == "sqlite" and kind == BOOL:
                convert.append((i, int))
            elif kind == TS:
                convert.append((i, _iso if dialect == "sqlite" else _aware))
        astuple = msgspec.structs.astuple

        def encode(rec: R) -> list[Any]:
            values = list(astuple(rec))
            for i, f in convert:
                v = values[i]
                if v is not None:
                    values[i] = f(v)
            return values

        _ENCODERS[(self.name, dialect)] = encode
        return encode

    def from_db(self, row: dict[str, Any]) -> R:
        """A record from a fetched row (JSON decoded; the rest converted by msgspec)."""
        data: dict[str, Any] = {}
        for name, value in row.items():
            if value is None:
                continue  # the record's default
            if self.kinds.get(name) == JSON and isinstance(value, str):
                value = _json_decode(value)
            data[name] = value
        return msgspec.convert(data, self.record, strict=False)

    def key_of(self, rec: R) -> tuple[Any, ...]:
        return tuple(getattr(rec, c) for c in self.pk)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    """SQLite's time text: ISO 8601 in UTC, always with microseconds. Range queries compare this text, so one
    instant must have one spelling: ``isoformat()`` alone drops a zero fraction and keeps a non-UTC offset."""
    return _aware(value).astimezone(UTC).isoformat(timespec="microseconds")


def time_value(value: datetime, dialect: str) -> Any:
    """A time as the dialect stores it: SQLite's ISO text (:func:`_iso`), PostgreSQL's aware ``timestamptz``."""
    return _iso(value) if dialect == "sqlite" else _aware(value)


def _json_text(value: Any) -> str:
    return _json_encode(value).decode()


_ENCODERS: dict[tuple[str, str], Callable[[Any], list[Any]]] = {}


def utcnow() -> datetime:
    return datetime.now(UTC)


BUDGETS = Table("budget", "rg_budgets", r.Budget, ("budget_id",))
ORGANIZATIONS = Table("organization", "rg_organizations", r.Organization, ("organization_id",))
ORG_MEMBERS = Table("organization member", "rg_organization_members", r.OrganizationMember,
                    ("organization_id", "user_id"))
TEAMS = Table("team", "rg_teams", r.Team, ("team_id",), unique=("team_alias",))
TEAM_MEMBERS = Table("team member", "rg_team_members", r.TeamMember, ("team_id", "user_id"))
USERS = Table("user", "rg_users", r.User, ("user_id",))
CUSTOMERS = Table("customer", "rg_customers", r.Customer, ("user_id",))
KEYS = Table("key", "rg_keys", r.Key, ("token",), unique=("key_alias",))
MODELS = Table("model", "rg_models", r.ModelRow, ("model_id",))
TAGS = Table("tag", "rg_tags", r.Tag, ("tag_name",))

UI_SESSIONS = Table("ui session", "rg_ui_sessions", r.UISession, ("session_hash",), immutable=())
USER_PASSWORDS = Table("user password", "rg_user_passwords", r.UserPassword, ("user_id",), immutable=())
"""The admin UI's sessions and users' passwords (``relaygate.ui.rows``): not in :data:`ALL` (no generic CRUD;
their writes do not bump the change counter)."""

SPEND_LOGS = Table("spend log", "rg_spend_logs", r.SpendLog, ("request_id",), immutable=())
"""Written by the spend sink (``store.spend``), never through the generic CRUD: not in :data:`ALL`."""

ALL: tuple[Table[Any], ...] = (BUDGETS, ORGANIZATIONS, ORG_MEMBERS, TEAMS, TEAM_MEMBERS, USERS, CUSTOMERS, KEYS,
                               MODELS, TAGS)
