"""A team member's own limits in the team: LiteLLM's merge patch of a membership's budget row.

What it owns: :func:`patch_member`, which ``/team/member_update`` and ``/management/v1``'s members
``bulk_update`` share, and :data:`PATCH_FIELDS`, the request fields it takes (LiteLLM's
``MEMBER_BUDGET_PATCH_FIELDS`` that relaygate enforces): ``max_budget_in_team`` (the member's budget in the
team, ``relaygate.budgets``), ``rpm_limit`` / ``tpm_limit`` (the member's rate limits across its keys of
that team, ``auth.store_keys``) and ``budget_duration`` (the member budget's period).

The rules, as LiteLLM 1.110's ``upsert_budget_and_membership``: a field sent sets its column, a null clears
it, a field not sent is left as it is; a budget row that another membership or the team's default member
budget (``metadata.team_member_budget_id``) shares is copied before it is written, never written in place
(else one member's change would move every member's); a member without a row of its own starts from a copy
of the default row (LiteLLM's memberships point to that row until their first change: a lone
``budget_duration`` gives the member the default's budget on a period of its own); a member left with no
limit of its own (``max_budget``, ``rpm_limit``, ``tpm_limit``) is unlinked from its row and the team's
default member budget binds it again. A sent ``budget_duration`` starts its period now
(``budget_reset_at``); a change of anything else keeps the period running.
"""

from __future__ import annotations

import uuid
from typing import Any

from relaygate.management.common import Ctx, budget_reset
from relaygate.store import Budget
from relaygate.store import tables as tbl
from relaygate.store.transaction import Transaction

__all__ = ["PATCH_FIELDS", "limits_of", "patch_member", "shared_rows"]

PATCH_FIELDS = frozenset({"max_budget_in_team", "tpm_limit", "rpm_limit", "budget_duration"})
_COLUMNS = ("max_budget", "tpm_limit", "rpm_limit", "budget_duration")


def limits_of(row: Budget | None) -> dict[str, Any]:
    """A member's own limits (its budget row's columns that a patch sets); all None without a row."""
    return {c: getattr(row, c) if row is not None else None for c in _COLUMNS}


async def shared_rows(ctx: Ctx, default_id: Any) -> set[str]:
    """Budget rows a patch must copy rather than write: those several memberships point to, and the team's
    default member budget row (``default_id``, when it is one)."""
    async with ctx.store._read() as c:
        used = await c.fetch("SELECT budget_id, COUNT(*) AS n FROM rg_team_members WHERE budget_id IS NOT NULL "
                             "GROUP BY budget_id", [])
    shared = {r["budget_id"] for r in used if int(r["n"]) > 1}
    if isinstance(default_id, str) and default_id:
        shared.add(default_id)
    return shared


async def patch_member(ctx: Ctx, tx: Transaction, c: Any, team_id: str, member: Any, own: Budget | None,
                       patch: dict[str, Any], shared: set[str], default: Budget | None = None
                       ) -> tuple[str | None, dict[str, Any]]:
    """Apply ``patch`` (request field names of :data:`PATCH_FIELDS`, already checked) to ``member``'s budget
    row ``own`` inside ``tx``: (the membership's budget id after it, the member's own limits after it). A
    member without a row of its own starts from the team's ``default`` member budget row, copied (as LiteLLM's
    memberships point to that row until their first change)."""
    source = own if own is not None else default
    limits = limits_of(source)
    for k, v in patch.items():
        limits["max_budget" if k == "max_budget_in_team" else k] = v
    budget_id = member.budget_id
    if not patch or limits == limits_of(source):  # nothing changes (a member on the default stays on it)
        return budget_id, limits_of(own)
    who = ctx.caller.user_id or "default_user_id"
    reset = budget_reset(ctx, limits["budget_duration"]) if "budget_duration" in patch or source is None else \
        source.budget_reset_at  # an edit of something else keeps the period running (LiteLLM's)
    if all(limits[k] is None for k in ("max_budget", "tpm_limit", "rpm_limit")):
        budget_id, limits = None, limits_of(None)  # no limit of its own left: the team's default binds it
    elif own is not None and member.budget_id not in shared:
        await tx.update(c, tbl.BUDGETS, (member.budget_id,), {**limits, "budget_reset_at": reset, "updated_by": who})
    else:  # a shared row (or the default) is copied with its other limits, never written in place
        base: dict[str, Any] = ({"soft_budget": source.soft_budget,
                                 "max_parallel_requests": source.max_parallel_requests}
                                if source is not None else {})
        made = await tx.insert(c, Budget(budget_id=str(uuid.uuid4()), **base, **limits, budget_reset_at=reset,
                                         created_by=who, updated_by=who))
        budget_id = made.budget_id
    if budget_id != member.budget_id:
        await tx.update(c, tbl.TEAM_MEMBERS, (team_id, member.user_id), {"budget_id": budget_id})
    return budget_id, limits
