"""Budgets: LiteLLM's ``max_budget`` / ``soft_budget`` / ``budget_duration`` enforced before any upstream call.

``periods`` (durations and period arithmetic), ``limits`` (tallies, limits, plans, the ``budget_exceeded``
errors; sans IO), ``guard`` (:class:`BudgetGuard`: the ``before_route`` hook, the completion sink, resets
written back), ``shared`` (Redis counters shared by every worker and instance). See docs/architecture.md
"Budgets" and the README for the overshoot tolerance.
"""

from relaygate.budgets.guard import EXCEEDED_EVENT, SOFT_EVENT, BudgetGuard
from relaygate.budgets.limits import exceeded
from relaygate.budgets.periods import Duration, parse, period_at

__all__ = ["EXCEEDED_EVENT", "SOFT_EVENT", "BudgetGuard", "Duration", "exceeded", "parse", "period_at"]
