"""What a budget is on the request path: a :class:`Tally` per entity, a :class:`Limit` per budget, a
:class:`Plan` per key, and LiteLLM's ``budget_exceeded`` errors.

What it owns: the arithmetic of "how much has this entity spent in its current period", sans IO.

- **Tally** (one per entity and worker: a key, team, team member (its team and user ids), user,
  organization, customer, tag, a key's model, the proxy): the pico-USD this worker saw completed for the
  entity in the entity's current period. It rolls to the next period by itself when a completion or a
  check arrives after the boundary (``periods.period_at``): no cron, nothing to miss.
- **Limit**: one budget of one entity, built when a key's rows are read. ``base`` is the row's ``spend``
  (pico-USD) when the row's period is the current one, and ``snap`` the tally at that moment less the
  tally's ``pending`` part (what this worker counted that the spend sink had not yet written to the row),
  so ``spent = base + (tally - snap)``: what every worker had written when the rows were read, plus what
  this worker spent and the row did not show. Without ``pending``, a key that first asked (or whose rows
  were read again) within the sink's write spacing of its team's other keys' requests would not see those
  requests' cost until its rows were next read. Once the period moved past the row's, the row's spend no
  longer counts: ``spent`` is the tally of the new period (and the shared Redis counter, when there is one,
  which every worker adds to).
- **Errors**: LiteLLM's ``BudgetExceededError`` as its proxy answers it (``ProxyException`` of type
  ``budget_exceeded``, status 422 unless ``budget_exceeded_status_code`` says otherwise), with LiteLLM's
  message for each entity kind.

Nothing here awaits or reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from relaygate.budgets.periods import Duration, period_at
from relaygate.core.errors import GatewayError
from relaygate.cost import PICO, to_pico

__all__ = ["FOREVER", "MEMBER_OWN", "Limit", "Plan", "Tally", "exceeded", "key_label", "limit_alias"]

FOREVER = float("inf")
MARKS = 32
MARK_SPACING = 2.0
"""A tally remembers its writes :data:`MARK_SPACING` seconds apart at least (the writes within that time are
one mark, stamped with the last of them: a read between them is taken as holding none of them, the safe
side), :data:`MARKS` of them: at least 64 s, the key cache's default TTL (rows older are read again), in at
most ~3 KB a tally."""
_NO_STOP = float("inf")
"""The :attr:`Limit.stop` of a limit without ``max_budget`` (a soft budget alone): never reached."""
_MASKED = re.compile(r"^sk-\.\.\.[A-Za-z0-9_-]{4}$")


class Tally:
    """One entity's spend seen by this worker in its current period (pico-USD)."""

    __slots__ = ("anchor", "duration", "end", "held", "marks", "pending", "pico", "since", "start")

    def __init__(self, duration: Duration | None = None, anchor: float = 0.0, now: float = 0.0) -> None:
        self.pico = 0
        self.held = 0
        """pico-USD held by this worker's requests in flight (``holds.Hold``): whatever the period, never reset
        by a roll (the requests are still running)."""
        self.pending = 0
        """The part of :attr:`pico` the spend sink has not yet written to the entity's row (``spend``): a
        limit built from the row now counts it on top of the row's spend (:class:`Limit`)."""
        self.since = now
        """When :attr:`pico` last started from 0 (wall clock): requests that ended before were not added to
        it, and their write takes nothing off :attr:`pending` (``BudgetGuard.written``)."""
        self.marks: deque[tuple[float, int, int]] = deque(maxlen=MARKS)
        """``(when, written before, written after)`` of the sink's last writes in this period (see
        :data:`MARK_SPACING`): how much of :attr:`pico` a row read at a given moment holds
        (:meth:`written_at`)."""
        self.duration = duration
        self.anchor = anchor
        self.start, self.end = (period_at(duration, anchor, now) if duration is not None else (0.0, FOREVER))

    def written_at(self, when: float | None) -> int:
        """The part of :attr:`pico` the spend sink had written to the entity's row by ``when`` (wall clock;
        None: by now). A write is taken as done at the moment the sink reported it, after its commit, so a
        read that began later holds it; a write reported after ``when`` may or may not be in that read and
        is taken as not (its cost is counted on top of the row: never less than was spent). Older than the
        kept writes: what the oldest kept one started from."""
        if when is not None:
            marks = self.marks
            for at, _, after in reversed(marks):
                if at <= when:
                    return after
            if marks:
                return marks[0][1]
        return self.pico - self.pending

    def retime(self, duration: Duration | None, anchor: float, now: float) -> None:
        """The entity's period rules changed (its row says so): keep the spend when the period is the same."""
        start, end = period_at(duration, anchor, now) if duration is not None else (0.0, FOREVER)
        if start != self.start:
            self.pico = self.pending = 0
            self.since = now
            self.marks.clear()
        self.duration, self.anchor, self.start, self.end = duration, anchor, start, end

    def roll(self, now: float) -> None:
        d = self.duration
        if d is not None and now >= self.end:
            self.start, self.end = period_at(d, self.anchor, now)
            self.pico = self.pending = 0
            self.since = now
            self.marks.clear()

    def add(self, pico: int, now: float) -> None:
        if now >= self.end:
            self.roll(now)
        self.pico += pico
        self.pending += pico

    def written(self, pico: int, now: float) -> None:
        """The spend sink wrote ``pico`` of this entity's spend to its row (reported at ``now``)."""
        before = self.pico - self.pending
        self.pending = max(0, self.pending - pico)
        marks = self.marks
        if marks and now - marks[-1][0] < MARK_SPACING:
            before = marks.pop()[1]
        marks.append((now, before, self.pico - self.pending))


class Limit:
    """One budget (``max_budget`` and / or ``soft_budget``) of one entity, as read with the key's rows."""

    __slots__ = ("base", "base_start", "ident", "kind", "label", "max_budget", "max_pico", "soft_budget", "soft_pico",
                 "snap", "stop", "strict", "tally")

    def __init__(self, kind: str, ident: str, tally: Tally, max_budget: float | None, soft_budget: float | None,
                 base: int, base_start: float, label: str = "", read_at: float | None = None) -> None:
        self.kind = kind
        self.ident = ident
        self.tally = tally
        self.max_budget = max_budget
        self.soft_budget = soft_budget
        self.max_pico = to_pico(max_budget) if max_budget is not None else None
        self.soft_pico = to_pico(soft_budget) if soft_budget is not None and soft_budget > 0 else None
        self.base = base
        self.base_start = base_start
        self.snap = tally.written_at(read_at) if tally.start == base_start else 0
        """The part of the tally the row holds: what the spend sink had written when the row was read
        (``read_at``; None: now). The rest (spend still on its way to the store, or written since the read)
        counts on top of the row's ``spend``."""
        self.label = label
        """What the error names: the key's descriptor, the model of a ``model_max_budget``."""
        self.strict = kind in ("customer", "proxy", "tag", "team")
        """LiteLLM refuses teams, end users, tags and the proxy only past the budget (``>``: a team with
        ``max_budget: 0`` still answers until it has spent something), the others at it (``>=``)."""
        self.stop = (self.max_pico + self.strict) if self.max_pico is not None else _NO_STOP
        """The spend (pico-USD, an integer) from which requests are refused: ``spent >= stop`` is :meth:`over`
        in one comparison (``> m`` is ``>= m + 1`` for integers)."""

    def spent(self, now: float) -> int:
        t = self.tally
        if now >= t.end:
            t.roll(now)
        if t.start == self.base_start:
            return self.base + t.pico - self.snap
        return t.pico

    def over(self, spent: int) -> bool:
        return spent >= self.stop

    def error(self, spent: int, status: int = 422) -> GatewayError:
        return exceeded(self, spent / PICO, status)


class Plan:
    """Every budget a key's requests answer to: its own, its team's, its user's in that team (the member's
    budget), its user's (keys without a team, as LiteLLM), its organization's, and per model group
    (``model_max_budget``)."""

    __slots__ = ("held", "limits", "mark", "models", "org_id", "room", "token")

    def __init__(self, token: str, limits: tuple[Limit, ...], models: Mapping[str, tuple[Limit, ...]],
                 org_id: str | None) -> None:
        self.token = token
        self.limits = limits
        self.held = tuple(lim.tally for lim in limits if lim.max_pico)
        """The tallies a request of the key holds its estimated cost on (``budgets.holds``): its limits' with a
        ``max_budget`` above 0."""
        self.models = models
        self.org_id = org_id
        self.room: int | float = 0
        """pico-USD the key's limits could still take at the last full check before any of them reaches its
        ``max_budget`` or ``soft_budget`` (0: check in full)."""
        self.mark = 0
        """The guard's running total of pico-USD added to any tally when :attr:`room` was measured: while
        less than ``room`` has been added since, no limit of the plan can have reached a budget."""


MEMBER_OWN = "own"
"""The ``label`` of a team member's limit built from the membership's own budget row (not the team's default
member budget): LiteLLM names it ``TeamMember=<user>:<team>`` in its refusal."""

def exceeded(limit: Limit, spend: float, status: int = 422) -> GatewayError:
    """LiteLLM's ``budget_exceeded`` error for ``limit`` at ``spend`` USD (its wording per entity kind), with
    ``status`` (``litellm_settings.budget_exceeded_status_code``: LiteLLM's 422 unless configured)."""
    kind, ident, budget = limit.kind, limit.ident, limit.max_budget
    if kind == "key":
        msg = f"Budget has been exceeded! Key={limit.label} Current cost: {spend}, Max budget: {budget}"
    elif kind == "team":
        msg = f"Budget has been exceeded! Team={ident} Current cost: {spend}, Max budget: {budget}"
    elif kind == "organization":
        msg = f"Budget has been exceeded! Organization={ident} Current cost: {spend}, Max budget: {budget}"
    elif kind == "user":
        msg = f"ExceededBudget: User={ident} over budget. Spend={spend}, Budget={budget}"
    elif kind == "customer":
        msg = f"ExceededBudget: End User={ident} over budget. Spend={spend}, Budget={budget}"
    elif kind == "member":
        team, _, user = ident.partition(chr(0))
        if limit.label == MEMBER_OWN:  # the membership's own budget row: LiteLLM's auth check, worded apart
            msg = f"Budget has been exceeded! TeamMember={user}:{team} Current cost: {spend}, Max budget: {budget}"
        else:  # the team's default member budget
            msg = f"Budget has been exceeded! User={user} in Team={team} Current cost: {spend}, Max budget: {budget}"
    elif kind == "tag":
        msg = f"Budget has been exceeded! Tag={ident} Current cost: {spend}, Max budget: {budget}"
    elif kind == "model":
        msg = f"LiteLLM Virtual Key: {limit.label}, exceeded budget for model={ident.rpartition(chr(0))[2]}"
    elif kind == "key_window":  # LiteLLM's multi-window check: dollars, 4 and 2 decimals
        msg = f"ExceededBudget: Key over {limit.label} budget. Spend=${spend:.4f}, Limit=${budget:.2f}"
    elif kind == "team_window":
        msg = (f"ExceededBudget: Team={ident.partition(chr(0))[0]} over {limit.label} budget. "
               f"Spend=${spend:.4f}, Limit=${budget:.2f}")
    elif kind == "team_model":
        msg = f"LiteLLM Team: {limit.label}, exceeded budget for model={ident.rpartition(chr(0))[2]}"
    elif kind == "user_model":
        msg = f"LiteLLM User: {limit.label}, exceeded budget for model={ident.rpartition(chr(0))[2]}"
    else:
        msg = f"Budget has been exceeded! Current cost: {spend}, Max budget: {budget}"
    return GatewayError(msg, status=status, type="budget_exceeded", param=None, code=str(status))


def limit_alias(kind: str, key: Any) -> str | None:
    """The alias of a key's (``key``) or its team's (``team``) limit, from the key's rows (``auth.KeyInfo``'s
    ``records``; None otherwise): what LiteLLM's budget gauges are labelled with."""
    records = key.records if key is not None else None
    if not records:
        return None
    if kind == "key":
        return getattr(records[0], "key_alias", None)
    if kind == "team" and len(records) > 1 and records[1] is not None:
        return getattr(records[1], "team_alias", None)
    return None


def key_label(alias: str | None, key_name: str | None) -> str:
    """How LiteLLM names a key in its budget error: its alias (or ``key``) and its masked name."""
    label = alias or "key"
    return f"{label} ({key_name})" if key_name and _MASKED.match(key_name) else label
