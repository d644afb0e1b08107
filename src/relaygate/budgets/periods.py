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
- The first period of an entity ends where LiteLLM 1.110 puts its first reset (:meth:`Calendar.next_reset`,
  ``get_next_standardized_reset_time``): ``1d`` at the next ``budget_reset_time`` of day (midnight unless set)
  in ``litellm_settings.timezone`` (UTC unless set), ``7d`` / ``1w`` on the next Monday at that time, ``30d``
  and ``1mo`` on the 1st of the next month at that time, other day counts that many days from today's
  midnight at that time, ``Nh`` / ``Nm`` / ``Ns`` on the next multiple of N in the hour of the day (minute
  of the hour, second of the minute). Entity periods (:func:`parse` with a calendar) then follow each other
  as LiteLLM's reset job places them: ``30d`` is a calendar month (LiteLLM 1.110 resets it on the 1st), and
  days and weeks are wall-clock days in the calendar's time zone (a reset stays at its hour across a
  daylight-saving change).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = ["UTC_CALENDAR", "Calendar", "Duration", "epoch", "parse", "parse_time_of_day", "period_at"]

_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration:
    """A parsed ``budget_duration``: ``seconds`` for fixed units, or ``months``; ``days`` (with ``tz``): whole
    wall-clock days in that time zone."""

    __slots__ = ("days", "months", "seconds", "text", "tz")

    def __init__(self, text: str, seconds: int = 0, months: int = 0, days: int = 0, tz: tzinfo = UTC) -> None:
        self.text = text
        self.seconds = seconds
        self.months = months
        self.days = days
        self.tz = tz

    def add(self, t: float, n: int = 1) -> float:
        """``t`` moved ``n`` periods forward (backward when negative)."""
        if self.months:
            return _shift_months(t, n * self.months, self.tz)
        if self.days:
            return (datetime.fromtimestamp(t, self.tz) + timedelta(days=n * self.days)).timestamp()
        return t + n * self.seconds


def epoch(value: datetime | None) -> float | None:
    """A stored time as epoch seconds (UTC when it names no zone), or None."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def parse(text: str, cal: Calendar | None = None) -> Duration:
    """``text`` as a :class:`Duration`; ``ValueError`` when it is not one of LiteLLM's forms (or is 0). With
    ``cal`` (an entity's budget), as LiteLLM's reset job steps it: ``30d`` a calendar month, days and weeks
    wall-clock days in the calendar's zone (in UTC the same as fixed seconds)."""
    m = _RE.match(text)
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"invalid budget_duration {text!r}: expected a positive number and a unit s, m, h, d, w "
                         "or mo (30s, 30m, 1h, 1d, 7d, 30d, 1mo)")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "mo" or (cal is not None and unit == "d" and n == 30):
        return Duration(text, months=1 if unit == "d" else n, tz=cal.tz if cal is not None else UTC)
    if cal is not None and cal.tz is not UTC and unit in ("d", "w"):
        return Duration(text, days=n * (7 if unit == "w" else 1), tz=cal.tz)
    return Duration(text, seconds=n * _UNIT[unit])


def parse_time_of_day(text: str | None) -> int:
    """LiteLLM's ``budget_reset_time`` (``"HH:MM"`` or ``"HH:MM:SS"``, 24-hour) as seconds after midnight; None
    or empty: midnight. ``ValueError`` for anything else (LiteLLM fails at startup too)."""
    if text is None or text == "":
        return 0
    if isinstance(text, str):
        for fmt in ("%H:%M", "%H:%M:%S"):
            try:
                t = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return t.hour * 3600 + t.minute * 60 + t.second
    raise ValueError(f"invalid budget_reset_time {text!r}: expected a 24-hour 'HH:MM' or 'HH:MM:SS' string, e.g. "
                     "\"12:00\"")


class Calendar:
    """Where budget periods start (``litellm_settings.timezone`` and ``budget_reset_time``)."""

    __slots__ = ("time_of_day", "tz")

    def __init__(self, timezone: str | None = "UTC", reset_time: str | None = None) -> None:
        """``ValueError`` for an unknown time zone or a malformed ``reset_time``."""
        try:
            self.tz: tzinfo = UTC if timezone in (None, "", "UTC", "utc") else ZoneInfo(str(timezone))
        except (ValueError, KeyError, OSError) as exc:
            raise ValueError(f"unknown timezone {timezone!r} ({type(exc).__name__})") from None
        self.time_of_day = parse_time_of_day(reset_time)

    def next_reset(self, text: str, now: float) -> float:
        """When a budget of period ``text`` set at ``now`` first resets, as LiteLLM 1.110 computes it (see the
        module docstring); ``ValueError`` when ``text`` is not a period."""
        m = _RE.match(text)
        if m is None or int(m.group(1)) <= 0:
            raise ValueError(f"invalid budget_duration {text!r}")
        n, unit = int(m.group(1)), m.group(2)
        cur = datetime.fromtimestamp(now, self.tz)
        midnight = cur.replace(hour=0, minute=0, second=0, microsecond=0)
        tod = timedelta(seconds=self.time_of_day)
        if unit == "mo" or (unit == "d" and n == 30):  # the 1st of a month at the time of day
            first = midnight.replace(day=1) + tod
            months = n if unit == "mo" else 1
            return first.timestamp() if first > cur else _shift_months(first.timestamp(), months, self.tz)
        if unit in ("d", "w"):
            days = n * (7 if unit == "w" else 1)
            if days == 1:
                at = midnight + tod
                return (at if at > cur else at + timedelta(days=1)).timestamp()
            if days == 7:  # Mondays
                at = midnight + timedelta(days=(7 - cur.weekday()) % 7) + tod
                return (at if at > cur else at + timedelta(days=7)).timestamp()
            return (midnight + timedelta(days=days) + tod).timestamp()
        if unit == "h":
            nxt = cur.hour + n - cur.hour % n
            return (midnight + timedelta(days=nxt // 24, hours=nxt % 24)).timestamp()
        if unit == "m":
            nxt = cur.minute + n - cur.minute % n
            return (cur.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=nxt)).timestamp()
        nxt = cur.second + n - cur.second % n
        return (cur.replace(second=0, microsecond=0) + timedelta(seconds=nxt)).timestamp()


UTC_CALENDAR = Calendar()
"""LiteLLM's default: UTC, periods starting at midnight."""


def _shift_months(t: float, months: int, tz: tzinfo = UTC) -> float:
    d = datetime.fromtimestamp(t, tz)
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
    # about the periods elapsed (months: at most; wall-clock days: within one), then stepped to the exact one
    k = int((now - anchor) // (86400 * duration.days if duration.days else 31 * 86400 * duration.months))
    while duration.add(anchor, k + 1) <= now:
        k += 1
    while duration.add(anchor, k) > now:
        k -= 1
    return duration.add(anchor, k), duration.add(anchor, k + 1)
