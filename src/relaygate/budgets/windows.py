"""LiteLLM 1.110's concurrent budget windows (``budget_limits``) of keys and teams.

What it owns: the stored form of a key's or team's windows (:func:`normalize`: ``[{"budget_duration": "1d",
"max_budget": 10.0, "reset_at": <first reset>}, ...]``, LiteLLM's ``BudgetLimitEntry``; its older spelling
``{"budget_limit": ..., "time_period": ...}`` read too) and the :class:`~relaygate.budgets.limits.Limit` each
window is in a key's plan (:func:`window_limits`, kinds ``key_window`` / ``team_window``, refused with
LiteLLM's ``ExceededBudget: Key over 1d budget. Spend=$..., Limit=$...``).

Invariants:

- A window is identified by its ``budget_duration`` (LiteLLM keys its counters the same way), so reordering
  or removing windows keeps the others' spend; two windows of one duration are refused.
- A window's periods follow each other from its ``reset_at`` (the first reset where LiteLLM 1.110 puts it,
  ``periods.Calendar.next_reset``), else from the calendar's first reset after the epoch; the first request
  after a boundary counts from 0, nothing is written back.
- A window's spend is what the workers saw in its period: in each worker's tally, shared through Redis when
  configured (``budgets.shared``), as LiteLLM keeps window spend in its cache and not in the database. Without
  Redis each worker counts its own, and a restart starts the window's count again (LiteLLM's after a Redis
  flush).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from relaygate.budgets.limits import Limit, Tally
from relaygate.budgets.periods import Calendar, Duration, parse

__all__ = ["MAX_WINDOWS", "WINDOW_KINDS", "normalize", "window_limits"]

MAX_WINDOWS = 16
"""Windows one key or team may have (LiteLLM sets no bound; each is a limit every request of the key checks)."""
WINDOW_KINDS = {"key": "key_window", "team": "team_window"}
"""Entity kind -> the tally kind of its windows."""
_NEVER = -1.0


def normalize(raw: Any, first_reset: Callable[[str], datetime | None]) -> list[dict[str, Any]]:
    """``budget_limits`` as sent, checked and in the stored form, each window's ``reset_at`` from
    ``first_reset(duration)`` (a window sent with a ``reset_at`` keeps it); ``ValueError`` naming the problem.
    None or ``[]``: no windows."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("budget_limits must be a list of {budget_duration, max_budget} windows")
    if len(raw) > MAX_WINDOWS:  # each is checked on every request of the key: a list is not a way to burn CPU
        raise ValueError(f"budget_limits: at most {MAX_WINDOWS} windows, got {len(raw)}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, w in enumerate(raw):
        if not isinstance(w, dict):
            raise ValueError(f"budget_limits[{i}] must be an object with budget_duration and max_budget")
        duration = w.get("budget_duration", w.get("time_period"))
        budget = w.get("max_budget", w.get("budget_limit"))
        if not isinstance(duration, str):
            raise ValueError(f"budget_limits[{i}].budget_duration is required (e.g. '1d', '7d', '30d')")
        try:
            parse(duration)
        except ValueError as exc:
            raise ValueError(f"budget_limits[{i}]: {exc}") from None
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 0:
            raise ValueError(f"budget_limits[{i}].max_budget must be a non-negative number, got {budget!r}")
        duration = duration.strip()
        if duration in seen:
            raise ValueError(f"budget_limits: two windows of budget_duration {duration!r}")
        seen.add(duration)
        reset_at = w.get("reset_at")
        if not isinstance(reset_at, str) or _when(reset_at) is None:
            at = first_reset(duration)
            reset_at = at.isoformat() if at is not None else None
        out.append({"budget_duration": duration, "max_budget": float(budget), "reset_at": reset_at})
    return out


def _when(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def window_limits(kind: str, owner: str, windows: list[dict[str, Any]], cal: Calendar, now: float,
                  tally: Callable[[str, str, Duration | None, float, float], Tally]) -> list[Limit]:
    """The limits of the windows of the ``kind`` (``key`` / ``team``) ``owner`` (a stored list; an entry that
    does not read as a window is skipped: :func:`normalize` let none in)."""
    out = []
    wkind = WINDOW_KINDS[kind]
    for w in windows:
        duration, budget = w.get("budget_duration"), w.get("max_budget")
        if not isinstance(duration, str) or isinstance(budget, bool) or not isinstance(budget, (int, float)):
            continue
        try:
            d = parse(duration, cal)
        except ValueError:
            continue
        anchor = _when(w.get("reset_at"))
        if anchor is None:
            anchor = cal.next_reset(duration, 0.0)
        ident = f"{owner}\0{duration}"
        t = tally(wkind, ident, d, anchor, now)
        out.append(Limit(wkind, ident, t, float(budget), None, 0, _NEVER, duration))
    return out
