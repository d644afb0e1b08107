"""LiteLLM's temporary budget increase of a key: ``metadata.temp_budget_increase`` added to the key's
``max_budget`` until ``metadata.temp_budget_expiry`` (an ISO time, UTC when it names no zone), as LiteLLM's
``_update_key_budget_with_temp_budget_increase`` does at auth.

What it owns: :func:`increase_of`, read when the budget guard builds a key's plan (``budgets.guard``), which
drops the plan when the increase ends, so the next request builds it again without (nothing is tested per
request). ``/key/update`` writes both fields (``management.keys.into_metadata``: sent together, the increase a
non-negative number). A key without a ``max_budget`` has nothing to increase, as in LiteLLM; an expiry or an
increase that cannot be read leaves the key's budget as it is.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["increase_of"]


def increase_of(key: Any, now: float) -> tuple[float, float]:
    """``(increase, until)``: the key's temporary budget increase in force at ``now`` (epoch seconds) and when
    it ends; ``(0.0, 0.0)`` when none is."""
    meta = key.metadata
    if key.max_budget is None or not meta or "temp_budget_increase" not in meta:
        return 0.0, 0.0
    increase, raw = meta["temp_budget_increase"], meta.get("temp_budget_expiry")
    if not isinstance(increase, int | float) or isinstance(increase, bool) or not 0 < increase < math.inf \
            or not isinstance(raw, str):
        return 0.0, 0.0
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return 0.0, 0.0
    until = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()
    return (float(increase), until) if until > now else (0.0, 0.0)
