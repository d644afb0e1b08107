"""The budget guard's periodic read of the store (``BudgetGuard.refresh``): whether any budget exists,
which customers and tags have one, whether team members may, and the proxy's spend in its current period.

What it owns: that read, every ``ttl`` and whenever the store's rows change; nothing on a request's path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relaygate.budgets.limits import FOREVER, Limit
from relaygate.cost import PICO

if TYPE_CHECKING:
    from relaygate.budgets.guard import BudgetGuard

__all__ = ["refresh"]

log = logging.getLogger("relaygate.budgets")

_MAX = 100_000  # rows listed at most (the guard's bound on what it keeps)
_NEVER = -1.0  # a limit's base_start that no period has: the row's spend never counts


async def _budgeted(list_page: Callable[..., Awaitable[Any]], id_field: str) -> frozenset[str]:
    """Ids of the rows a store listing pages through that have a budget row (at most ``_MAX``)."""
    ids: list[str] = []
    page = 1
    while len(ids) < _MAX:
        got = await list_page(page=page, page_size=1000)
        ids.extend(getattr(r, id_field) for r in got.items if r.budget_id)
        if page >= got.total_pages:
            break
        page += 1
    return frozenset(ids)


async def refresh(guard: BudgetGuard) -> None:
    """:meth:`BudgetGuard.refresh` (with a store; nothing without)."""
    store = guard.store
    if store is None:
        return
    from relaygate.budgets.shared import any_budget, any_member_budget, proxy_spend

    active = guard.proxy is not None or guard.default_customers or await any_budget(store)
    if active != guard.active:
        guard.active = active
        log.info("budgets: %s", "enforced" if active else "none set: the check is off")
        if guard.on_active is not None:
            guard.on_active()
    guard.customers = await _budgeted(store.list_customers, "user_id")
    guard._customer_limits.clear()
    guard._budget_rows.clear()  # budget rows changed (or their TTL passed): read them again
    if guard.end_user_budget_id is not None and await guard._budget_row(guard.end_user_budget_id, time.time()) is None:
        guard._warn_default(f"litellm_settings.max_end_user_budget_id names budget {guard.end_user_budget_id!r}, "
                            "which does not exist (create it with /budget/new): customers without a budget are "
                            "not held to any")
    guard.tags = await _budgeted(store.list_tags, "tag_name")
    guard._tag_limits.clear()
    members = await any_member_budget(store)
    if members != guard.member_budgets:
        guard.member_budgets = members
        guard._combo_tallies.clear()
        guard.plans.clear()  # plans built before did not read memberships (or need not any more)
    if guard.proxy is not None:
        now = time.time()
        t = guard.proxy.tally
        t.roll(now)
        start = t.start if t.end != FOREVER else None
        written = t.pico - t.pending  # what this worker's sink had written before the read began
        nanos = await proxy_spend(store, start, logs=guard.spend_logs)
        if nanos is None:  # a period's spend without spend logs: this worker's own, since it started
            guard.proxy = Limit("proxy", "", t, guard._proxy_budget, None, 0, _NEVER)
        else:
            lim = Limit("proxy", "", t, guard._proxy_budget, None, nanos * (PICO // 1_000_000_000), t.start)
            # a batch written while the read was on its way may be missing from it: count it (never less)
            lim.snap = min(lim.snap, written)
            guard.proxy = lim
