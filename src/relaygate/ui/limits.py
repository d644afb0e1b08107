"""Sign-in rate limiting: failed attempts counted per client address and per username, in a sliding window.

What it owns: deciding whether a sign-in attempt may be checked at all (:meth:`SignInLimiter.retry_after`)
and remembering failures (:meth:`SignInLimiter.failed`). After ``limit`` failures (5 by default) within
``window`` seconds (60) for the same address *or* the same username, further attempts are answered 429 with
``Retry-After`` until the oldest failure leaves the window, whether or not their credentials are right, so
guessing costs an attacker the window, not the hashing. A success clears its username's failures (not the
address's: one address guessing many usernames stays limited).

Per worker, in memory: the gateway's workers share nothing, so with ``W`` workers an attacker gets at most
``W x limit`` guesses per window and username. Redis would make it exact; it is not used here because the
bound is already small and sign-in must keep working when Redis is down. Bounded: at most ``max_entries``
names are tracked (the least recently failed are forgotten first), each with at most ``limit`` times. Sans
IO: the clock is passed in.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

__all__ = ["SignInLimiter"]


class SignInLimiter:
    """Failures per name (``ip:<addr>``, ``user:<name>``) within a sliding window."""

    def __init__(self, limit: int = 5, window: float = 60.0, max_entries: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, name: str, now: float) -> deque[float] | None:
        times = self._fails.get(name)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._fails[name]
            return None
        return times

    def retry_after(self, names: tuple[str, ...], now: float) -> int | None:
        """Seconds until ``names`` may try again (None: they may try now)."""
        wait = 0.0
        for name in names:
            times = self._live(name, now)
            if times is not None and len(times) >= self.limit:
                wait = max(wait, times[0] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, names: tuple[str, ...], now: float) -> None:
        for name in names:
            times = self._live(name, now)
            if times is None:
                times = self._fails[name] = deque(maxlen=self.limit)
            times.append(now)
            self._fails.move_to_end(name)
        while len(self._fails) > self.max_entries:
            self._fails.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._fails.pop(name, None)

    def __len__(self) -> int:
        return len(self._fails)
