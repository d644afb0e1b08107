"""Searching users and teams the way LiteLLM's admin UI searches them (``/user/list`` filters, ``/user/filter/ui``,
``/team/filter/ui``): parts of ids, emails and aliases in any case, lists of ids, team and organization
membership, a sort column, a page.

Every value is a bound parameter; the sort column is one of :data:`USER_SORTS` (a name, never the caller's text);
``contains`` patterns take ``%``, ``_`` and ``\\`` literally (``store.base.contains_pattern``). SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaygate.store import tables as t
from relaygate.store.base import _CONTAINS, MAX_PAGE_SIZE, Store, contains_pattern
from relaygate.store.errors import InvalidField
from relaygate.store.records import Page, Team, User

__all__ = ["USER_SORTS", "find_teams", "find_users"]

USER_SORTS = ("user_id", "user_email", "user_alias", "user_role", "created_at", "updated_at", "spend", "max_budget")
"""The columns ``/user/list`` sorts by (LiteLLM's ``sort_by``)."""


def _contains(column: str, text: str, conds: list[str], args: list[Any]) -> None:
    conds.append(_CONTAINS.format(column=column))
    args.append(contains_pattern(text))


def _page(page: int, page_size: int, entity: str) -> None:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidField(entity, "page" if page < 1 else "page_size",
                           f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")


async def find_users(store: Store, *, role: str | None = None, user_ids: Sequence[str] | None = None,
                     user_id_part: str | None = None, email_part: str | None = None, search: str | None = None,
                     team_id: str | None = None, organization_ids: Sequence[str] | None = None,
                     sort_by: str | None = None, descending: bool = False, page: int = 1,
                     page_size: int = 25) -> Page[User]:
    """Users with ``role``, among ``user_ids`` (one id: those whose id contains it, as LiteLLM reads one), whose id
    contains ``user_id_part``, whose email contains ``email_part``, whose id or email contains ``search``, in team
    ``team_id`` (a member, or the team of their row) and in one of ``organization_ids``; sorted by ``sort_by``
    (:data:`USER_SORTS`; newest first without one), a page of them."""
    _page(page, page_size, "user")
    if sort_by is not None and sort_by not in USER_SORTS:
        raise InvalidField("user", "sort_by", ", ".join(USER_SORTS))
    conds: list[str] = []
    args: list[Any] = []
    if role is not None:
        conds.append("user_role = ?")
        args.append(role)
    if user_ids is not None:
        ids = [u for u in user_ids if u]
        if len(ids) == 1:
            _contains("user_id", ids[0], conds, args)
        else:
            conds.append(f"user_id IN ({', '.join('?' * len(ids))})" if ids else "1 = 0")
            args.extend(ids)
    if user_id_part:
        _contains("user_id", user_id_part, conds, args)
    if email_part:
        _contains("user_email", email_part, conds, args)
    if search:
        conds.append(f"({_CONTAINS.format(column='user_id')} OR {_CONTAINS.format(column='user_email')})")
        args += [contains_pattern(search)] * 2
    if team_id is not None:
        conds.append("(team_id = ? OR user_id IN (SELECT user_id FROM rg_team_members WHERE team_id = ?))")
        args += [team_id, team_id]
    if organization_ids is not None:
        orgs = [o for o in organization_ids if o]
        marks = ", ".join("?" * len(orgs))
        conds.append(f"(organization_id IN ({marks}) OR user_id IN (SELECT user_id FROM rg_organization_members "
                     f"WHERE organization_id IN ({marks})))" if orgs else "1 = 0")
        args += [*orgs, *orgs]
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    order = (f"{sort_by} {'DESC' if descending else 'ASC'}, user_id" if sort_by is not None
             else "created_at DESC, user_id")
    async with store._read() as c:
        total = (await c.fetch(f"SELECT COUNT(*) AS n FROM rg_users{where}", args))[0]["n"]
        rows = await c.fetch(f"SELECT * FROM rg_users{where} ORDER BY {order} LIMIT ? OFFSET ?",
                             [*args, page_size, (page - 1) * page_size])
    return Page([t.USERS.from_db(row) for row in rows], int(total), page, page_size)


async def find_teams(store: Store, *, id_part: str | None = None, alias_part: str | None = None,
                     member: str | None = None, page: int = 1, page_size: int = 50) -> Page[Team]:
    """Teams whose id contains ``id_part`` and alias contains ``alias_part``, of which ``member`` (a user id) is a
    member when given, newest first, a page of them."""
    _page(page, page_size, "team")
    conds: list[str] = []
    args: list[Any] = []
    if id_part:
        _contains("team_id", id_part, conds, args)
    if alias_part:
        _contains("team_alias", alias_part, conds, args)
    if member is not None:
        conds.append("team_id IN (SELECT team_id FROM rg_team_members WHERE user_id = ?)")
        args.append(member)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    async with store._read() as c:
        total = (await c.fetch(f"SELECT COUNT(*) AS n FROM rg_teams{where}", args))[0]["n"]
        rows = await c.fetch(f"SELECT * FROM rg_teams{where} ORDER BY created_at DESC, team_id LIMIT ? OFFSET ?",
                             [*args, page_size, (page - 1) * page_size])
    return Page([t.TEAMS.from_db(row) for row in rows], int(total), page, page_size)
