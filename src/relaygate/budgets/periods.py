"""Budget periods: LiteLLM's ``budget_duration`` strings and the period a moment falls in.

What it owns: parsing ``30s`` / ``30m`` / ``1h`` / ``1d`` / ``7d`` / ``1w`` / ``30d`` / ``1mo`` (seconds, minutes,
hours, days, weeks; ``mo`` is calendar months, as LiteLLM's ``duration_in_seconds_from``: a month that starts on
the 31st ends on the last day of a shorter month), and the arithmetic of periods.

Invariants:

- A period is ``[start, end)`` in wall-clock seconds. Periods follow each other from an anchor without gaps:
  the anchor is the entity's ``budget_reset_at`` (the end of the period its row's ``spend`` belongs to, as
  LiteLLM stores it) or, without one, its ``created_at``; the proxy-wide budget is anchored at the Unix epoch
  (calendar months from January 1970), so every worker and instance computes the same boundaries.
- :func:`period_at` rolls forward from the anchor to the period holding ``now`` in O(1) for fixed units (one
  integer division) and a few steps for ``mo`` (each month counted from the anchor, so a day clamped in a short month
  comes back in the next). A boundary is never missed: nothing here waits for a
  cron; the first request (or completion) after the boundary sees the new period.
- Nothing here does IO or reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

__all__ = ["Duration", "parse", "period_at"]

_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration:
    """A parsed ``budget_duration``: ``seconds`` for fixed units, or ``months``."""

    __slots__ = ("months", "seconds", "text")

    def __init__(self, text: str, seconds: int = 0, months: int = 0) -> None:
        self.text = text
        self.seconds = seconds
        self.months = months

    def add(self, t: float, n: int = 1) -> float:
        """``t`` moved ``n`` periods forward (backward when negative)."""
        if self.months:
            return _shift_months(t, n * self.months)
        return t + n * self.seconds


def parse(text: str) -> Duration:
    """``text`` as a :class:`Duration`; ``ValueError`` when it is not one of LiteLLM's forms (or is 0)."""
    m = _RE.match(text)
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"invalid budget_duration {text!r}: expected a positive number and a unit s, m, h, d, w "
                         "or mo (30s, 30m, 1h, 1d, 7d, 30d, 1mo)")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "mo":
        return Duration(text, months=n)
    return Duration(text, seconds=n * _UNIT[unit])


def _shift_months(t: float, months: int) -> float:
    d = datetime.fromtimestamp(t, UTC)
    total = d.year * 12 + (d.month - 1) + months
    year, month = divmod(total, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return d.replace(year=year, month=month + 1, day=day).timestamp()


def period_at(duration: Duration, anchor: float, now: float) -> tuple[float, float]:
    """The period ``[start, end)`` holding ``now`` among those that start (or end) at ``anchor``."""
    if duration.seconds:
        step = duration.seconds
        k = (now - anchor) // step
        start = anchor + k * step
        return start, start + step
    k = int((now - anchor) // (31 * 86400 * duration.months))  # at most the periods elapsed: months from anchor
    while duration.add(anchor, k + 1) <= now:
        k += 1
    while duration.add(anchor, k) > now:
        k -= 1
    return duration.add(anchor, k), duration.add(anchor, k + 1)
