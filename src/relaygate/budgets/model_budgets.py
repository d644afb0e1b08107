"""Per-model budgets (``model_max_budget``) of a key, its team and its user, as LiteLLM 1.110 enforces them.

What it owns: the limits a key's plan holds per model (:func:`model_limits`), each a :class:`~relaygate.budgets.
limits.Limit` on its own tally: the key's ``{"gpt-4o": {"budget_limit": 10, "time_period": "1d"}}`` entries
(kind ``model``), its team's (``team_model``: LiteLLM's ``is_team_within_model_budget``; a team entry for a
model the key has an entry of its own for is left out, as LiteLLM's ``team_model_budget_entries``) and its
user's (``user_model``: ``is_user_within_model_budget``, for every key of the user, so another key does not
escape it). LiteLLM's refusal wording per kind is in ``limits.exceeded``. A model's spend is counted from the
first request the worker sees of it in the period (as LiteLLM's windows, which live in its cache): the rows
keep no spend per model and period.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relaygate.budgets.limits import Limit, Tally
from relaygate.budgets.periods import Duration

__all__ = ["MODEL_KINDS", "model_budget", "model_limits", "within_budget"]

MODEL_KINDS = ("model", "team_model", "user_model")
"""The tally kinds of per-model budgets: the key's, its team's, its user's."""
_NEVER = -1.0


def model_budget(raw: Any) -> tuple[float | None, str | None]:
    """A ``model_max_budget`` entry's (budget, period): a number, or ``{"budget_limit" | "max_budget": ...,
    "time_period" | "budget_duration": ...}``."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw), None
    if isinstance(raw, dict):
        b = raw.get("budget_limit", raw.get("max_budget"))
        d = raw.get("time_period", raw.get("budget_duration"))
        return (float(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else None,
                d if isinstance(d, str) else None)
    return None, None


def model_limits(key: Any, team: Any, user: Any, now: float,
                 tally: Callable[[str, str, Duration | None, float, float], Tally],
                 duration: Callable[[str | None, str], Duration | None]) -> dict[str, tuple[Limit, ...]]:
    """model -> the per-model limits a request of the key for that model answers to (``tally``: the guard's
    tally of ``(kind, ident)``; ``duration``: a period parsed, None when absent or invalid, with a warning)."""
    out: dict[str, tuple[Limit, ...]] = {}
    own = (key.model_max_budget or {}) if key is not None else {}
    owners = ((key, "model", "token"), (team, "team_model", "team_id"), (user, "user_model", "user_id"))
    for row, kind, id_field in owners:
        entries = getattr(row, "model_max_budget", None) if row is not None else None
        if not entries:
            continue
        owner = getattr(row, id_field)
        for model, raw in entries.items():
            if kind == "team_model" and model in own:
                continue  # the key's own entry for the model replaces its team's
            budget, period = model_budget(raw)
            if budget is None or budget < 0:
                continue
            ident = f"{owner}\0{model}"
            t = tally(kind, ident, duration(period, f"{kind.replace('_', ' ')} max budget {model}"), 0.0, now)
            label = f"{owner}, key_alias: {key.key_alias}" if kind == "model" else owner
            out[model] = (*out.get(model, ()), Limit(kind, ident, t, budget, None, 0, _NEVER, label))
    return out


def within_budget(key: Any, model: str, models: Mapping[str, tuple[Limit, ...]], now: float) -> str | None:
    """LiteLLM 1.110's ``budget_fallbacks``: the first model of the key's chain for ``model`` (the model the
    request asked for, whose own budget is spent) that no per-model budget of the key's plan refuses now, or
    None. The pipeline then serves the request with it if the key may call it (``Pipeline.budget_fallback``),
    as LiteLLM's ``get_fallback_model_within_budget``; a budget the fallback spends past meanwhile refuses it
    as any request."""
    chain = key.budget_fallbacks.get(model) if key.budget_fallbacks else None
    for candidate in chain or ():
        if isinstance(candidate, str) and candidate != model and not any(
                lim.over(lim.spent(now)) for lim in models.get(candidate, ())):
            return candidate
    return None
