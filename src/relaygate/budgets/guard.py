"""BudgetGuard: budgets enforced before any upstream call, and counted as requests complete.

What it owns: the ``before_route`` hook that refuses a request over a budget with LiteLLM's
``budget_exceeded`` 422 (``limits.exceeded``), the completion sink that adds each request's cost to the
tallies of the entities it was made for, and the write-back of resets, off the request path.

Budgets, with LiteLLM's fields and rules: ``max_budget`` / ``soft_budget`` / ``budget_duration`` /
``budget_reset_at`` on keys, teams and users (the user's only for keys without a team, as LiteLLM, unless
``general_settings.apply_user_budget_to_team_keys``), an organization's, a customer's and a tag's through their
``budget_id`` row, a team member's (a key with a team and a user) through its membership's ``budget_id`` row
(``max_budget_in_team``) or else the team's default member budget (``metadata.team_member_budget_id``,
``team_member_budget``), ``model_max_budget`` per model group within a key (``{"model": {"budget_limit":
1.0, "time_period": "1d"}}`` or ``max_budget`` / ``budget_duration``), and the proxy-wide
``litellm_settings.max_budget``. A request's tags are its own (``x-litellm-tags``, body ``tags``,
``metadata.tags``) and its key's.
``soft_budget`` is not a block: the first request that finds it crossed in a period logs one warning and
counts ``budget_soft_crossed``; refusals count ``budget_exceeded``. An admitted request holds its estimated
cost on its budgets until it completes (``holds``: LiteLLM's reservation), and a check counts what is held.

How spend is known, per entity (``limits.Limit``): the row's ``spend`` as read with the key (the spend sink
adds every worker's completions to it in batches), plus what this worker saw complete since. So a budget
binds at once in the worker that crossed it and, in the others, when they read the rows again (the key
cache TTL, ``user_api_key_cache_ttl``, after the spend sink flushed). With Redis (``shared.SharedSpend``),
every worker adds its completions to one counter per entity and period and a request reads them with one
MGET; the guard uses the larger of the two figures.

Resets: a row whose period ended (its ``budget_reset_at`` passed) counts spend from the new period at once;
the row is written back (``spend`` 0, the next ``budget_reset_at``) by a background task, as a
compare-and-set (:meth:`Store.reset_period`, :meth:`Store.reset_budget_period`): of several workers resetting
the same row for the same boundary one writes, so spend recorded between their writes is not lost.

Cost when nothing applies: the gateway installs the hook only while some budget exists (the proxy's, or
any row's: :meth:`BudgetGuard.refresh` asks the store at startup, every TTL and when its rows change); a key
whose rows have no budget costs one dict look-up and one identity test per request (its plan is ``None``,
cached per ``KeyInfo``), a request naming no budgeted customer one set test, a request carrying no budgeted
tag one set test per tag (none while no tag has a budget). A key's team membership is read once per plan
(per key cache fill), and only while some membership or team has a member budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from relaygate.budgets import temporary
from relaygate.budgets.defaults import DefaultBudget, counted_spend, put_on_budget
from relaygate.budgets.holds import Estimator, Holds
from relaygate.budgets.limits import FOREVER, MEMBER_OWN, Limit, Plan, Tally, key_label, limit_alias
from relaygate.budgets.model_budgets import MODEL_KINDS, model_limits, within_budget
from relaygate.budgets.periods import UTC_CALENDAR, Calendar, Duration, epoch, parse
from relaygate.budgets.refresh import refresh
from relaygate.budgets.windows import WINDOW_KINDS, window_limits
from relaygate.core.errors import GatewayError
from relaygate.cost import PICO, pico_of, to_pico
from relaygate.service_metrics import timed
from relaygate.sinks.record import CompletionRecord

__all__ = ["EXCEEDED_EVENT", "SOFT_EVENT", "BudgetGuard"]

log = logging.getLogger("relaygate.budgets")

EXCEEDED_EVENT = "budget_exceeded"
SOFT_EVENT = "budget_soft_crossed"
_MAX = 100_000
_COMBOS = 10_000
"""Entity combinations whose tallies :meth:`BudgetGuard._tallies_of` keeps at most (customers and tags make
them many); past it the table starts over."""
_NEVER = -1.0
_ROW_ID = {"key": "token", "team": "team_id", "user": "user_id"}


def _duration(text: str | None, where: str, cal: Calendar | None = None) -> Duration | None:
    if not text:
        return None
    try:
        return parse(text, cal)
    except ValueError as exc:
        log.warning("%s: %s; its budget never resets", where, exc)
        return None


class BudgetGuard:
    """One worker's budgets. ``check`` is the ``before_route`` hook, ``handle`` the completion sink."""

    name = "budgets"

    def __init__(self, store: Any = None, *, max_budget: float | None = None, budget_duration: str | None = None,
                 on_event: Callable[[str, int], None] | None = None, shared: Any = None, ttl: float = 60.0,
                 on_active: Callable[[], None] | None = None, spend_logs: bool = True,
                 end_user_budget: float | None = None, end_user_budget_id: str | None = None,
                 status: int = 422, user_budget_on_team_keys: bool = False, cal: Calendar = UTC_CALENDAR) -> None:
        self.store = store
        self.status = status  # a refusal's HTTP status (litellm_settings.budget_exceeded_status_code)
        self.user_budget_on_team_keys = user_budget_on_team_keys
        """``general_settings.apply_user_budget_to_team_keys``: a team key's user's own budget binds it too."""
        self.cal = cal  # where budget periods fall (litellm_settings.timezone, budget_reset_time; read at start)
        self.reserving = True  # requests in flight hold their cost (budgets.holds); disable_budget_reservation
        self.estimate = Estimator()
        self.holds = Holds()
        self.resets = True
        """False with ``general_settings.disable_reset_budget``: a row's ``budget_duration`` never starts a new period
        (its spend counts on, as LiteLLM's with its reset job off)."""
        if max_budget is not None and max_budget <= 0:
            max_budget = None  # LiteLLM's default 0.0: no proxy budget (it checks only above 0)
        self.end_user_budget_id = end_user_budget_id
        """``litellm_settings.max_end_user_budget_id``: the budget row a customer without one of its own is put
        on at its first check (its row created when it has none, as LiteLLM persists it)."""
        self.default_customers = end_user_budget is not None or end_user_budget_id is not None
        """Some default applies to customers without a budget row: every request naming a customer is checked."""
        self.end_user_budget = DefaultBudget(end_user_budget) if end_user_budget is not None else None
        """``litellm_settings.max_end_user_budget``: the budget of every customer without a budget row of its
        own, over its whole spend (its row's ``spend``, else its spend counter); every request naming a
        customer is then checked."""
        self.spend_logs = spend_logs
        """The spend sink writes spend-log rows (not ``disable_spend_logs``): the proxy's spend is read from
        them; without, from the global spend counter (a proxy budget with a period then counts each worker's
        own spend since it started)."""
        self.on_active = on_active
        """Called when :attr:`active` changes (the gateway installs or removes the hook)."""
        self.on_event = on_event
        self.shared = shared
        """``shared.SharedSpend`` (Redis) when configured: one counter per entity and period for everyone."""
        self.ttl = ttl
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.added = 0
        """pico-USD added to tallies so far (any entity's; each request's cost once): what a plan's
        ``room`` is measured against (:meth:`check`)."""
        self._model_tallies = False
        """Some key has a ``model_max_budget`` tally: completions look up their model's."""
        self.plans: dict[str, tuple[tuple[Any, ...], Plan | None]] = {}
        self.org_of: dict[str, str] = {}
        self.windows_of: dict[tuple[str, str], tuple[str, ...]] = {}  # (kind, id) -> its budget_limits durations
        self._combo_tallies: dict[tuple[Any, ...], list[tuple[Tally, str, str]]] = {}
        """:meth:`_tallies_of` of each combination seen, cleared whenever its answer can change (a tally added
        or dropped, a key's organization learnt, member budgets switched); a tally retimed is the same object."""
        self.customers: frozenset[str] = frozenset()
        """Ids of customers with a budget row (refreshed every ``ttl``): only their requests are checked."""
        self.tags: frozenset[str] = frozenset()
        """Names of tags with a budget row (refreshed every ``ttl``): only requests carrying one are checked."""
        self.member_budgets = False
        """Some team membership or team has a member budget (refreshed every ``ttl``): plans read memberships."""
        self._customer_limits: dict[str, tuple[float, Limit | None]] = {}
        self._tag_limits: dict[str, tuple[float, Limit | None]] = {}
        self._budget_rows: dict[str, tuple[float, Any]] = {}
        self._warned: set[tuple[str, str, float]] = set()
        self.on_spend: Callable[[str, str, str | None, float, float, float | None], None] | None = None
        """``(entity_type, entity_id, alias, budget, spend, reset_at)`` for each budget a request is checked
        against (LiteLLM's Prometheus budget gauges: ``alias`` the key's or team's, ``reset_at`` the period's
        end, epoch seconds, None without a period); None: nobody listens, and the check costs nothing more."""
        self.on_budget: Callable[[str, str, float, float, bool], None] | None = None
        """``(entity_type, entity_id, spend, budget, soft)`` when a request finds a budget crossed (the alerter,
        which rate-limits); must not raise nor block. None: nobody listens."""
        self.settle: Callable[[], int] | None = None
        """Delivers the completion records still queued (``CompletionQueue.drain_now``): a check that finds a budget
        all held calls it, so requests that already ended release their holds first; None: not wired."""
        self._resetting: set[tuple[str, str, float]] = set()
        self._default_warned = -1e18
        self._tasks: set[asyncio.Task[Any]] = set()
        self.proxy: Limit | None = None
        self.active = max_budget is not None or self.default_customers
        """Some budget exists (the proxy's, or a row's as :meth:`refresh` last found): the hook is installed."""
        self._proxy_budget = max_budget
        self._proxy_duration = _duration(budget_duration, "litellm_settings.budget_duration", cal)
        if max_budget is not None:
            anchor = cal.next_reset(budget_duration, 0.0) if budget_duration and self._proxy_duration else 0.0
            self.proxy = Limit("proxy", "", self._tally("proxy", "", self._proxy_duration, anchor, time.time()),
                               max_budget, None, 0, _NEVER)

    # -- the request path ---------------------------------------------------------------------------

    def check(self, ex: Any) -> Awaitable[None] | None:
        """The ``before_route`` hook: None when the key's plan (already made for the key's current rows) decides
        at once that nothing is over budget (the common case, no coroutine made), else :meth:`_check` to await."""
        who = ex.who
        key = who.key if who is not None else None
        if key is not None and key.records:
            entry = self.plans.get(key.token)
            if entry is not None and entry[0] is key.records and self.fast:
                plan = entry[1]
                # no limit for the key, or less spent (and held) by anyone since its last full check than the
                # room its limits had then, this request's hold included; and nothing else applies (_check)
                if plan is None:
                    return None
                r = self.estimate(ex) if self.reserving else 0
                if self.added + r - plan.mark < plan.room:
                    if r and plan.held:
                        self._hold(ex, plan.held, r)
                    return None
                return self._check(ex, r)
        elif not (self.customers or self.tags or self.proxy is not None or self.default_customers):
            return None  # no key rows (the master key, a JWT, no auth) and no budget beyond a key's
        return self._check(ex)

    async def _check(self, ex: Any, r: int = -1) -> None:
        """Refuse the request (LiteLLM's ``budget_exceeded``, 422 unless configured) when an entity it is made
        for is over budget, or when what the requests in flight hold leaves it no room (``budgets.holds``);
        else hold ``r`` (the request's estimated cost; -1: not yet estimated) on its budgets."""
        now = time.time()
        who = ex.who
        key = who.key if who is not None else None
        limits: Sequence[Limit] = ()
        plan: Plan | None = None
        if key is not None and key.records:
            entry = self.plans.get(key.token)
            plan = entry[1] if entry is not None and entry[0] is key.records else await self._plan(key, now)
            if plan is not None:
                if r < 0:
                    r = self.estimate(ex) if self.reserving else 0
                if self.added + r - plan.mark < plan.room and self.fast:
                    # less has been spent by anyone since the last full check than the room the key's limits
                    # had then (and nothing else applies): none of them can have reached a budget
                    if r and plan.held:
                        self._hold(ex, plan.held, r)
                    return
                limits = plan.limits  # the common case: the key's own tuple, nothing built
                if plan.models:
                    m = plan.models.get(ex.model)
                    if m is None and ex.group is not None:
                        m = plan.models.get(ex.group.name)
                    if m is not None:
                        limits = (*limits, *m)
        if self.customers or self.tags or self.proxy is not None or self.default_customers:
            limits = [*limits, *await self._other_limits(ex, key, now)]
        if not limits:
            return
        if r < 0:
            r = self.estimate(ex) if self.reserving else 0
        asked, shared = r, self.shared
        seen = await shared.read(limits) if shared is not None else None
        on_spend = self.on_spend
        mark = self.added
        room: int | float = FOREVER
        for i, lim in enumerate(limits):
            spent = lim.spent(now)
            if seen is not None:
                s = seen[i]
                if s is not None and s > spent:
                    spent = s
            if on_spend is not None and lim.max_budget is not None:
                t = lim.tally
                on_spend(lim.kind, lim.ident, (lim.label or None) if lim.kind == "organization" else
                         limit_alias(lim.kind, key), lim.max_budget, spent / PICO,
                         t.end if t.duration is not None else None)
            if lim.soft_pico is not None and spent >= lim.soft_pico:
                self._soft(lim, spent)
            if lim.over(spent):
                self._count(EXCEEDED_EVENT)
                if self.on_budget is not None and lim.max_budget is not None:
                    self.on_budget(lim.kind, lim.ident, spent / PICO, lim.max_budget, False)
                raise self._refusal(lim, spent, ex, plan, now)
            if lim.max_pico and (r or lim.tally.held):  # what requests in flight hold counts (LiteLLM's reservation)
                spent += lim.tally.held
                free = lim.stop - spent  # (a team, customer, tag: refused only past its budget, as without)
                if free <= 0:  # all held: refused as over budget, "Current cost" the spend and the holds
                    if self.settle is not None and self.settle():  # ended requests' holds were still queued
                        return await self._check(ex, asked)
                    self._count(EXCEEDED_EVENT)
                    raise self._refusal(lim, spent, ex, plan, now)
                if free < r:  # less room than the estimate: hold what is left (LiteLLM's resize)
                    r = int(free)
            left = lim.stop - spent
            if lim.soft_pico is not None:
                left = min(left, lim.soft_pico - spent)
            room = min(room, left)
        held = plan.held if plan is not None and limits is plan.limits else [
            lim.tally for lim in limits if lim.max_pico]
        if r and held:
            self._hold(ex, held, r)
            room, mark = room - r, mark + r
        if plan is not None and limits is plan.limits and not plan.models:
            plan.room, plan.mark = room, mark

    def _refusal(self, lim: Limit, spent: int, ex: Any, plan: Plan | None, now: float) -> GatewayError:
        """``lim``'s refusal; a key's own per-model budget names the model to serve instead (budget_fallbacks)."""
        err = lim.error(spent, self.status)
        if lim.kind == "model" and plan is not None:
            err.budget_fallback = within_budget(ex.who.key.records[0], ex.model, plan.models, now)
        return err

    def _hold(self, ex: Any, tallies: Sequence[Tally], r: int) -> None:
        """Hold ``r`` on ``tallies`` (those of limits with a ``max_budget``) until the request completes."""
        ex.hold = self.holds.take(tallies, r)
        self.added += r

    @property
    def fast(self) -> bool:
        """Whether a key's plan alone decides its requests (no Redis counters, no budget gauges, no customer,
        tag or proxy budgets): then a plan with room left is not checked again (:meth:`check`)."""
        return (self.shared is None and self.on_spend is None and not self.customers and not self.tags
                and self.proxy is None and not self.default_customers)

    async def _other_limits(self, ex: Any, key: Any, now: float) -> list[Limit]:
        """The limits of a request beyond its key's plan: its customer's, its budgeted tags', the proxy's."""
        limits: list[Limit] = []
        if self.customers or self.default_customers:
            over = ex.over
            cid = (over.end_user if over is not None else None) or getattr(ex.view, "user", None)
            if isinstance(cid, str) and cid and (cid in self.customers or self.default_customers):
                lim = await self._customer(cid, now)
                if lim is not None:
                    limits.append(lim)
        if self.tags:
            for name in self._budgeted_tags(ex, key):
                lim = await self._tag(name, now)
                if lim is not None:
                    limits.append(lim)
        if self.proxy is not None:
            limits.append(self.proxy)
        return limits

    def _budgeted_tags(self, ex: Any, key: Any) -> list[str]:
        """The request's tags (header, body ``tags``, ``metadata.tags``) and its key's that have a budget.
        A malformed tag field is left to the pipeline, which answers it with a 400."""
        tags = self.tags
        found: list[str] = []
        over = ex.over
        if over is not None and over.tags:
            found.extend(t for t in over.tags if t in tags)
        control = ex.control
        if control is not None:
            meta = control.get("metadata")
            for raw in (control.get("tags"), meta.get("tags") if isinstance(meta, dict) else None):
                if isinstance(raw, str):
                    raw = [t.strip() for t in raw.split(",")]
                if isinstance(raw, list):
                    found.extend(t for t in raw if isinstance(t, str) and t in tags)
        if key is not None and key.records and key.records[0].tags:
            found.extend(t for t in key.records[0].tags if t in tags)
        return list(dict.fromkeys(found)) if len(found) > 1 else found

    def _soft(self, lim: Limit, spent: int) -> None:
        mark = (lim.kind, lim.ident, lim.tally.start)
        if mark in self._warned:
            return
        if len(self._warned) >= _MAX:
            self._warned.clear()
        self._warned.add(mark)
        self._count(SOFT_EVENT)
        log.warning("soft budget crossed: %s=%s spend %s >= soft_budget %s (not blocked)", lim.kind,
                    lim.ident[:24] if lim.kind == "key" else lim.ident, spent / PICO, lim.soft_budget)
        if self.on_budget is not None and lim.soft_budget is not None:
            self.on_budget(lim.kind, lim.ident, spent / PICO, lim.soft_budget, True)

    def _count(self, event: str) -> None:
        if self.on_event is not None:
            self.on_event(event, 1)

    # -- the completion sink ------------------------------------------------------------------------

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Add each priced record's cost to the tallies of its key, team, team member, user, organization,
        customer, tags, model (within the key) and the proxy, where those have a budget (and to Redis, when
        shared)."""
        if self.holds.live:  # their cost is counted below, in the same step: never out of both
            self.holds.release(batch)
        sums = self._sums(batch)
        if not sums:
            return
        shared = self.shared
        now = time.time()
        for combo, (c, _) in sums.items():
            self.added += c
            for t, kind, ident in self._tallies_of(combo):
                t.add(c, now)
                if shared is not None:
                    shared.add(kind, ident, t.start, t.end, c)

    def written(self, batch: Sequence[CompletionRecord]) -> None:
        """The spend sink wrote ``batch`` to the store (rows' ``spend`` included): their cost is no longer
        pending in the tallies (what a limit built from a row read from now on finds in the row). A tally
        that started (or restarted from 0) after some of them ended takes off only the ones it counted."""
        now = time.time()
        for combo, (c, first_end) in self._sums(batch).items():
            for t, _, _ in self._tallies_of(combo):
                if first_end >= t.since:
                    t.written(c, now)
                else:  # rare: right after the tally began
                    t.written(sum(pico_of(r.cost) for r in batch if r.cost > 0.0 and r.start_time + r.latency
                                  >= t.since and self._combo(r) == combo), now)

    def _combo(self, r: CompletionRecord) -> tuple[Any, ...]:
        """The entities a record's cost counts for, as a hashable key (see :meth:`_tallies_of`)."""
        return (r.key_hash, r.team_id, r.user_id, r.org_id, r.end_user_id,
                (r.model, r.model_group) if self._model_tallies else None,
                tuple(self._record_tags(r)) if self.tags else None)

    def _sums(self, batch: Sequence[CompletionRecord]) -> dict[tuple[Any, ...], list[Any]]:
        """``[pico-USD, earliest end (wall clock)]`` of the priced records per combination of the entities
        they count for (a batch's thousands of records name a few hundred): the same integers, fewer
        look-ups."""
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for r in batch:
            cost = r.cost
            if not cost > 0.0:
                continue
            combo = self._combo(r)
            end = r.start_time + r.latency
            acc = sums.get(combo)
            if acc is None:
                sums[combo] = [pico_of(cost), end]
            else:
                acc[0] += pico_of(cost)
                if end < acc[1]:
                    acc[1] = end
        return sums

    def _tallies_of(self, combo: tuple[Any, ...]) -> list[tuple[Tally, str, str]]:
        """The tallies (with their entity kind and id) a :meth:`_sums` combination counts for: an entity
        without a budget has none, and its look-up misses (a None id included). Kept per combination
        (:attr:`_combo_tallies`, at most :data:`_COMBOS`): a worker's completions name the same few hundred."""
        known = self._combo_tallies.get(combo)
        if known is not None:
            return known
        kh, team, user, org, end_user, model, tags = combo
        ents: list[tuple[str, str | None]] = [
            ("key", kh), ("team", team), ("user", user),
            ("organization", org or (self.org_of.get(kh) if kh else None)), ("customer", end_user), ("proxy", "")]
        for kind, owner in (("model", kh), ("team_model", team), ("user_model", user)) if model is not None else ():
            if owner:
                ents.extend((kind, f"{owner}\0{name}") for name in dict.fromkeys(model))
        for kind, owner in (("key", kh), ("team", team)):
            ents.extend((WINDOW_KINDS[kind], f"{owner}\0{d}") for d in self.windows_of.get((kind, owner), ()))
        if self.member_budgets and team and user:
            ents.append(("member", f"{team}\0{user}"))
        if tags:
            ents.extend(("tag", name) for name in tags)
        tallies = self.tallies
        out = []
        for kind, ident in ents:
            t = tallies.get((kind, ident))  # type: ignore[arg-type]
            if t is not None:
                out.append((t, kind, ident or ""))
        if len(self._combo_tallies) >= _COMBOS:
            self._combo_tallies.clear()
        self._combo_tallies[combo] = out
        return out

    def _record_tags(self, r: CompletionRecord) -> list[str]:
        """The budgeted tags a completed request carried: its own (``extra["tags"]``) and its key's."""
        tags = self.tags
        extra = r.extra
        found = [t for t in extra.get("tags") or () if t in tags] if isinstance(extra, dict) else []
        entry = self.plans.get(r.key_hash) if r.key_hash else None
        if entry is not None and entry[0] and entry[0][0].tags:
            found.extend(t for t in entry[0][0].tags if t in tags)
        return list(dict.fromkeys(found)) if len(found) > 1 else found

    # -- plans --------------------------------------------------------------------------------------

    def _tally(self, kind: str, ident: str, duration: Duration | None, anchor: float, now: float) -> Tally:
        key = (kind, ident)
        t = self.tallies.get(key)
        if t is None:
            if len(self.tallies) >= _MAX:
                self.tallies.clear()
                self.plans.clear()
            t = self.tallies[key] = Tally(duration, anchor, now)
            self._combo_tallies.clear()
            if kind in MODEL_KINDS:
                self._model_tallies = True
        elif (t.duration.text if t.duration else None) != (duration.text if duration else None) or t.anchor != anchor:
            t.retime(duration, anchor, now)
            for _, other in self.plans.values():  # a new period can make another plan's row spend count again
                if other is not None:
                    other.room = 0
        return t

    def _limit(self, kind: str, ident: str, budget: Any, spend: float, now: float, label: str = "",
               created: datetime | None = None, reset: tuple[str, Any] | None = None,
               read_at: float | None = None, increase: float = 0.0) -> Limit | None:
        """The limit of an entity whose budget fields are on ``budget`` (its own row, or its budget row);
        ``increase``: a temporary budget increase in force (added to a ``max_budget``)."""
        max_budget, soft = budget.max_budget, budget.soft_budget
        if increase and max_budget is not None:
            max_budget += increase
        if max_budget is None and not soft:
            return None
        dur = _duration(budget.budget_duration, f"{kind} {ident[:24]}: budget_duration", self.cal) if self.resets \
            else None
        if dur is None:
            t = self._tally(kind, ident, None, 0.0, now)
            return Limit(kind, ident, t, max_budget, soft, to_pico(spend or 0.0), t.start, label, read_at)
        end = epoch(budget.budget_reset_at)
        if end is None:
            start = epoch(created if created is not None else getattr(budget, "created_at", None))
            end = dur.add(start if start is not None else now)
        t = self._tally(kind, ident, dur, end, now)
        current = now < end
        if not current and reset is not None:
            self._reset(kind, ident, t.end, reset)
        return Limit(kind, ident, t, max_budget, soft, to_pico(spend or 0.0) if current else 0,
                     t.start if current else _NEVER, label, read_at)

    async def _plan(self, info: Any, now: float) -> Plan | None:
        records = info.records
        key, team, user, org = (*records, None, None, None, None)[:4]
        read_at = info.read_at  # when the rows' read began (None: not known, e.g. rows from Redis)
        limits: list[Limit] = []
        org_id: str | None = None
        if key is not None:
            increase, until = temporary.increase_of(key, now)
            if increase:  # its plan is dropped when the increase ends: the next request builds it without
                loop = asyncio.get_running_loop()
                loop.call_at(loop.time() + until - now, self.plans.pop, key.token, None)
            lim = self._limit("key", key.token, key, key.spend, now, key_label(key.key_alias, key.key_name),
                              reset=("key", key), read_at=read_at, increase=increase)
            if lim is not None:
                limits.append(lim)
            if team is not None:
                lim = self._limit("team", team.team_id, team, team.spend, now, reset=("team", team),
                                  read_at=read_at)
                if lim is not None:
                    limits.append(lim)
                if key.user_id and self.member_budgets:
                    lim = await self._member(team, key.user_id, now)
                    if lim is not None:
                        limits.append(lim)
            if user is not None and (team is None or self.user_budget_on_team_keys):
                lim = self._limit("user", user.user_id, user, user.spend, now, reset=("user", user),
                                  read_at=read_at)
                if lim is not None:
                    limits.append(lim)
            if org is not None:
                org_id = org.organization_id
                row = await self._budget_row(org.budget_id, now) if org.budget_id else None
                if row is not None:
                    lim = self._limit("organization", org.organization_id, row, org.spend, now,
                                      org.organization_alias or "", created=org.created_at, reset=("budget", row),
                                      read_at=read_at)  # the alias: LiteLLM's org_alias budget gauge label
                    if lim is not None:
                        limits.append(lim)
        for kind, row, owner in (("key", key, "token"), ("team", team, "team_id")):  # budget_limits windows
            if row is not None and row.budget_limits:
                got = window_limits(kind, getattr(row, owner), row.budget_limits, self.cal, now, self._tally)
                limits.extend(got)
                if len(self.windows_of) >= _MAX:
                    self.windows_of.clear()
                self.windows_of[(kind, getattr(row, owner))] = tuple(w.label for w in got)
        models = model_limits(key, team, user, now, self._tally, _duration)  # model_max_budget of each
        plan = Plan(info.token, tuple(limits), models, org_id) if limits or models else None
        if len(self.plans) >= _MAX:
            self.plans.clear()
        self.plans[info.token] = (records, plan)
        if org_id is not None and plan is not None and self.org_of.get(info.token) != org_id:
            self.org_of[info.token] = org_id
            self._combo_tallies.clear()
        if plan is not None and self.shared is not None:
            await self.shared.seed([*limits, *(m for ms in models.values() for m in ms)])
        return plan

    async def _budget_row(self, budget_id: str, now: float) -> Any:
        got = self._budget_rows.get(budget_id)
        if got is not None and got[0] > now:
            return got[1]
        try:
            row = await self.store.get_budget(budget_id)
        except Exception as exc:  # NotFound: no budget; a database failure: none until the next try
            if type(exc).__name__ != "NotFound":
                log.warning("budget row %s could not be read: %s: %s", budget_id, type(exc).__name__, exc)
            row = None
        self._budget_rows[budget_id] = (now + self.ttl, row)
        return row

    async def _member(self, team: Any, user_id: str, now: float) -> Limit | None:
        """A team member's budget (LiteLLM's ``_check_team_member_budget``): its membership's budget row
        (``max_budget_in_team``; refused as ``TeamMember=<user>:<team>`` when above 0, LiteLLM's auth check
        of it), else the team's default member budget (``metadata.team_member_budget_id``; refused as
        ``User=<user> in Team=<team>``); the spend is the membership's (0 without a membership row)."""
        try:
            member = await self.store.get_team_member(team.team_id, user_id)
        except Exception as exc:  # NotFound: not a member; a database failure: no member budget until re-read
            if type(exc).__name__ != "NotFound":
                log.warning("team membership %s/%s could not be read: %s: %s", team.team_id, user_id,
                            type(exc).__name__, exc)
            member = None
        row = None
        if member is not None and member.budget_id:
            row = await self._budget_row(member.budget_id, now)
        label = MEMBER_OWN if row is not None and row.max_budget is not None and row.max_budget > 0 else ""
        if row is None or row.max_budget is None:  # no budget of its own: the team's default member budget
            default = (team.metadata or {}).get("team_member_budget_id")
            if isinstance(default, str) and default:
                row = await self._budget_row(default, now)
        if row is None:
            return None
        return self._limit("member", f"{team.team_id}\0{user_id}", row, member.spend if member is not None else 0.0,
                           now, label, created=member.created_at if member is not None else None,
                           reset=("budget", row))

    async def _tag(self, name: str, now: float) -> Limit | None:
        return await self._row_limit("tag", name, self._tag_limits, self.store.get_tag, now)

    async def _customer(self, cid: str, now: float) -> Limit | None:
        return await self._row_limit("customer", cid, self._customer_limits, self.store.get_customer, now)

    async def _row_limit(self, kind: str, ident: str, cache: dict[str, tuple[float, Limit | None]],
                         get: Callable[[str], Awaitable[Any]], now: float) -> Limit | None:
        """The limit of an entity whose budget is the budget row its own row points to (a tag, a customer),
        cached for ``ttl``; seeded into Redis when shared. None without a row, a budget or a readable store."""
        got = cache.get(ident)
        if got is not None and got[0] > now:
            return got[1]
        lim = None
        try:
            rec = await get(ident)
        except Exception:  # NotFound, or the database down: no limit until the next read
            rec = None
        if kind == "customer" and self.end_user_budget_id is not None and (rec is None or not rec.budget_id):
            try:
                rec = await put_on_budget(self.store, ident, rec, self.end_user_budget_id)
            except Exception as exc:  # the budget row missing, the database down: no default this time
                self._warn_default(f"customer {ident[:64]} could not be put on max_end_user_budget_id "
                                   f"{self.end_user_budget_id} ({type(exc).__name__}: {exc})")
        if rec is not None and rec.budget_id:
            row = await self._budget_row(rec.budget_id, now)
            if row is not None:
                lim = self._limit(kind, ident, row, rec.spend, now, created=rec.created_at, reset=("budget", row))
        elif kind == "customer" and self.end_user_budget is not None:  # max_end_user_budget, over all its spend
            spend = rec.spend if rec is not None else await counted_spend(self.store, kind, ident)
            lim = self._limit(kind, ident, self.end_user_budget, spend, now)
        if lim is not None and self.shared is not None:
            await self.shared.seed([lim])
        if len(cache) >= _MAX:
            cache.clear()
        cache[ident] = (now + self.ttl, lim)
        return lim

    def _warn_default(self, text: str) -> None:
        """A problem with the customers' default budget, logged at most once a minute."""
        now = time.monotonic()
        if now - self._default_warned >= 60.0:
            self._default_warned = now
            log.warning("budgets: %s", text)

    # -- background ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reset(self, kind: str, ident: str, end: float, what: tuple[str, Any]) -> None:
        """Write a reset back (spend 0, the next ``budget_reset_at``), once per row and period, off the path."""
        if self.store is None:
            return
        mark = (what[0], ident if what[0] != "budget" else what[1].budget_id, end)
        if mark in self._resetting:
            return
        self._resetting.add(mark)
        self._spawn(self._write_reset(what, end))

    async def _write_reset(self, what: tuple[str, Any], end: float) -> None:
        """The reset as a compare-and-set: a row another worker already moved to this period is left alone."""
        store, (table, row) = self.store, what
        at = datetime.fromtimestamp(end, UTC)
        try:
            if table == "budget":  # a budget row: every organization, customer, tag and member on it
                done = await timed("reset_budget_job", "reset_budget", store.reset_budget_period(row.budget_id, at))
                self._budget_rows.pop(row.budget_id, None)
                ident = row.budget_id
            else:
                ident = getattr(row, _ROW_ID[table])
                done = await timed("reset_budget_job", "reset_budget", store.reset_period(table, ident, at))
            if done:
                log.info("budget reset: %s %s, next reset at %s", table, ident[:24] if table == "key" else ident, at)
        except Exception as exc:
            log.warning("budget reset of a %s could not be written (%s: %s); spend still counts from the new "
                        "period", table, type(exc).__name__, exc)

    async def refresh(self) -> None:
        """Read whether any budget exists, which customers and tags have one, whether team members may, and
        the proxy's spend in its current period (with a store). The gateway calls it every ``ttl`` and when
        the store's rows change."""
        await refresh(self)

    async def refresh_logged(self) -> None:
        """:meth:`refresh`; a failure (the database down) is logged and changes nothing."""
        if self.holds.live:
            self.holds.sweep(time.monotonic())
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("budgets: refresh failed (%s: %s)", type(exc).__name__, exc)

    async def refresh_forever(self) -> None:
        """:meth:`refresh` every ``ttl`` (the gateway awaits the first one before serving)."""
        while True:
            await asyncio.sleep(self.ttl)
            await self.refresh_logged()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.shared is not None:
            await self.shared.aclose()
