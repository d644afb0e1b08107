"""The customers' default budgets (LiteLLM's ``max_end_user_budget`` and ``max_end_user_budget_id``), for
``guard.BudgetGuard``: a budget no row holds, a customer put on the default budget row, a customer's whole spend
from its counter."""

from __future__ import annotations

from typing import Any

__all__ = ["DefaultBudget", "counted_spend", "put_on_budget"]


class DefaultBudget:
    """A budget no row holds (``max_end_user_budget``): ``BudgetGuard._limit`` reads these fields."""

    __slots__ = ("max_budget", "soft_budget", "budget_duration", "budget_reset_at")

    def __init__(self, max_budget: float) -> None:
        self.max_budget = max_budget
        self.soft_budget = None
        self.budget_duration = None
        self.budget_reset_at = None


async def put_on_budget(store: Any, cid: str, rec: Any, budget_id: str) -> Any:
    """Customer ``cid``'s row on ``budget_id`` (created when ``rec`` is None; LiteLLM persists its default the
    same way); raises what the store raises."""
    if store is None:
        return rec
    from relaygate.store import Customer, Duplicate

    if rec is None:
        try:
            return await store.create_customer(Customer(user_id=cid, budget_id=budget_id))
        except Duplicate:
            rec = await store.get_customer(cid)
    return rec if rec.budget_id else await store.update_customer(cid, budget_id=budget_id)


async def counted_spend(store: Any, kind: str, ident: str) -> float:
    """An entity's whole spend as its counter says (USD; 0 without a store, a counter or a readable store)."""
    if store is None:
        return 0.0
    from relaygate.store.spend import NANOS, entity_totals

    try:
        rows = await entity_totals(store, kind, [ident])
    except Exception:  # the database down: no spend known until the next read
        return 0.0
    return float(rows[0]["spend_nanos"] / NANOS) if rows else 0.0
