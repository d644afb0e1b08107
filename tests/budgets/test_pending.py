"""A tally's ``pending`` part: this worker's cost the spend sink has not yet written to the entity's row.

``BudgetGuard.handle`` adds a completion's cost to the tallies (and to ``pending``); ``BudgetGuard.written``
(the spend sink, after a batch is committed) takes it off again, but only for the completions the tally
counted: a tally that began, or restarted from 0 at a new period, after a request ended never counted it,
and taking that request's cost off would hide cost the row does not hold yet."""

from __future__ import annotations

import time

from relaygate.budgets import BudgetGuard
from relaygate.budgets.periods import parse
from relaygate.cost import pico_of
from tests.spend.helpers import record


def test_written_takes_off_only_what_the_tally_counted() -> None:
    guard = BudgetGuard(None)
    now = time.time()
    early = record(1, cost=0.25, team="t", start=now - 10.0)  # ended before the tally began
    t = guard._tally("team", "t", None, 0.0, now)
    later = [record(2 + i, cost=0.5, team="t", start=now + 1.0) for i in range(2)]
    guard.handle(later)
    assert t.pico == t.pending == pico_of(0.5) * 2
    guard.written([early, later[0]])  # one batch: a request the tally never counted, and one it did
    assert t.pending == pico_of(0.5)  # the other is still on its way to the row
    guard.written([later[1]])
    assert t.pending == 0 and t.pico == pico_of(0.5) * 2
    guard.written([later[1]])  # a batch written again (its answer was lost) never goes below 0
    assert t.pending == 0


def test_a_new_period_starts_pending_again() -> None:
    guard = BudgetGuard(None)
    now = time.time()
    # daily periods, the current one ending 10 s from now
    t = guard._tally("key", "k0", parse("1d"), now + 10.0 - 3 * 86400, now)
    old = record(1, cost=1.0, start=now - 5.0)
    guard.handle([old])  # counted in the period that is ending
    boundary = now + 11.0
    t.roll(boundary)  # the first check or completion after the boundary
    assert t.pico == t.pending == 0 and t.since == boundary
    new = record(2, cost=2.0, start=boundary + 1.0)
    guard.handle([new])
    guard.written([old, new])  # the old period's request was not counted in the new period's tally
    assert t.pending == 0 and t.pico == pico_of(2.0)
    guard.handle([record(3, cost=3.0, start=boundary + 2.0)])
    guard.written([old])
    assert t.pending == pico_of(3.0)


def test_written_at_says_what_a_row_read_at_a_moment_holds() -> None:
    from relaygate.budgets.limits import Limit, Tally

    t = Tally()
    t.add(3, 0.0)
    t.add(4, 0.0)
    t.add(5, 0.0)
    t.written(3, 10.0)
    t.written(4, 20.0)
    assert [t.written_at(w) for w in (5.0, 10.0, 15.0, 20.0, 25.0, None)] == [0, 3, 3, 7, 7, 7]
    # writes closer than MARK_SPACING are one mark, stamped with the last: a read between them holds neither
    t.add(1, 0.0)
    t.add(1, 0.0)
    t.written(1, 30.0)
    t.written(1, 31.0)
    assert len(t.marks) == 3 and [t.written_at(w) for w in (29.0, 30.5, 31.0)] == [7, 7, 9]
    # a limit built now from a row read at 15 (holding the first write only) counts the rest on top of it
    lim = Limit("team", "t", t, 1.0, None, 3, t.start, read_at=15.0)
    assert lim.spent(40.0) == 3 + 14 - 3
    t.roll(40.0)  # no period: nothing rolls
    assert t.written_at(15.0) == 3


def test_a_tally_added_after_its_entities_were_seen_counts_their_next_completions() -> None:
    """The tallies a combination of entities counts for are kept per combination: a budget that appears
    later (its tally added) counts from the next completion on, and written spend comes off it."""
    guard = BudgetGuard(None)
    now = time.time()
    key_t = guard._tally("key", "k1", None, 0.0, now)
    guard.handle([record(1, cost=1.0, key="k1", team="t9", start=now)])  # the combination is kept: key only
    assert key_t.pico == pico_of(1.0)
    team_t = guard._tally("team", "t9", None, 0.0, now)  # the team gets a budget
    guard.handle([record(2, cost=2.0, key="k1", team="t9", start=now)])
    assert team_t.pico == pico_of(2.0) and key_t.pico == pico_of(3.0)
    guard.written([record(2, cost=2.0, key="k1", team="t9", start=now)])
    assert team_t.pending == 0 and key_t.pending == pico_of(1.0)
