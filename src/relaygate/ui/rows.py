"""The admin UI's rows in the store: sessions (``rg_ui_sessions``) and users' passwords (``rg_user_passwords``).

What it owns: every SQL statement on those two tables (migration step 6) and the look-up of a user by
e-mail at sign-in. Like ``store.files``, these writes use the store's bare transaction, not ``Store.write``:
the change counter tells workers to drop their key caches, which a session or a password never affects.

Invariants:

- a session row holds the SHA-256 of the cookie's session id, never the id: a copy of the table signs
  nobody in;
- a password row holds only a salted hash (``relaygate.ui.passwords``); no function here returns it to
  anything but the sign-in check;
- values only ever travel as parameters; times are the table's kinds (ISO text in SQLite, ``timestamptz``).
"""

from __future__ import annotations

from datetime import datetime

from relaygate.store import Store, User
from relaygate.store import tables as t
from relaygate.store.base import Conn
from relaygate.store.records import UISession, UserPassword

__all__ = ["delete_password", "delete_session", "delete_user_sessions", "get_password", "get_session",
           "insert_session", "purge_expired", "set_password", "set_password_in", "touch_session",
           "users_by_email"]

_S = t.UI_SESSIONS
_P = t.USER_PASSWORDS


async def insert_session(store: Store, rec: UISession) -> None:
    cols = ", ".join(_S.columns)
    marks = ", ".join("?" * len(_S.columns))
    async with store._transaction() as c:
        await c.execute(f"INSERT INTO {_S.name} ({cols}) VALUES ({marks})", _S.row(rec, store.dialect))


async def get_session(store: Store, session_hash: str) -> UISession | None:
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM {_S.name} WHERE session_hash = ?", [session_hash])
    return _S.from_db(rows[0]) if rows else None


async def touch_session(store: Store, session_hash: str, now: datetime) -> None:
    async with store._transaction() as c:
        await c.execute(f"UPDATE {_S.name} SET last_seen = ? WHERE session_hash = ?",
                        [_S.to_db("last_seen", now, store.dialect), session_hash])


async def delete_session(store: Store, session_hash: str) -> bool:
    async with store._transaction() as c:
        return bool(await c.execute(f"DELETE FROM {_S.name} WHERE session_hash = ?", [session_hash]))


async def delete_user_sessions(store: Store, user_id: str, c: Conn | None = None) -> int:
    """Sign ``user_id`` out everywhere (its user row deleted); inside ``c``'s transaction when given."""
    sql = f"DELETE FROM {_S.name} WHERE user_id = ?"
    if c is not None:
        return int(await c.execute(sql, [user_id]))
    async with store._transaction() as conn:
        return int(await conn.execute(sql, [user_id]))


async def purge_expired(store: Store, now: datetime) -> int:
    async with store._transaction() as c:
        return int(await c.execute(f"DELETE FROM {_S.name} WHERE expires_at < ?",
                               [_S.to_db("expires_at", now, store.dialect)]))


async def get_password(store: Store, user_id: str) -> str | None:
    async with store._read() as c:
        rows = await c.fetch(f"SELECT password_hash FROM {_P.name} WHERE user_id = ?", [user_id])
    return str(rows[0]["password_hash"]) if rows else None


async def set_password_in(store: Store, c: Conn, user_id: str, password_hash: str) -> None:
    """Insert or replace ``user_id``'s password hash inside the caller's transaction ``c``."""
    rec = UserPassword(user_id=user_id, password_hash=password_hash, updated_at=t.utcnow())
    await c.execute(f"DELETE FROM {_P.name} WHERE user_id = ?", [user_id])
    await c.execute(f"INSERT INTO {_P.name} (user_id, password_hash, updated_at) VALUES (?, ?, ?)",
                    _P.row(rec, store.dialect))


async def set_password(store: Store, user_id: str, password_hash: str) -> None:
    async with store._transaction() as c:
        await set_password_in(store, c, user_id, password_hash)


async def delete_password(store: Store, user_id: str, c: Conn | None = None) -> None:
    sql = f"DELETE FROM {_P.name} WHERE user_id = ?"
    if c is not None:
        await c.execute(sql, [user_id])
        return
    async with store._transaction() as conn:
        await conn.execute(sql, [user_id])


async def users_by_email(store: Store, email: str, limit: int = 2) -> list[User]:
    """Users whose ``user_email`` is ``email`` (at most ``limit``: sign-in refuses an ambiguous e-mail)."""
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM {t.USERS.name} WHERE user_email = ? LIMIT {int(limit)}", [email])
    return [t.USERS.from_db(r) for r in rows]
