"""Provider, deployment and tag budgets: LiteLLM's budget routing (``router_strategy/budget_limiter.py``).

What it owns: the spend of each provider named in ``router_settings.provider_budget_config``, of each
deployment with ``litellm_params.max_budget`` + ``budget_duration`` and of each tag of
``litellm_settings.tag_budget_config``, per period, and the bitmask of a model group's deployments that are
over budget. Routing skips those (a filter, like tag routing: any strategy works on what is left); when
every deployment the request may use is over, the router answers LiteLLM's 429 ``No deployments available -
crossed budget: Exceeded budget for provider openai: 0.0012 >= 0.001``. A request carrying a tag over its
budget (the request's own tags: ``x-litellm-tags``, body ``tags``, ``metadata.tags``, as LiteLLM reads them)
may use no deployment at all: the same 429, a line per deployment naming the tag, its spend and its limit.

How spend is counted: :meth:`ProviderBudgets.handle` is a completion sink (off the request path); a
record's ``cost`` goes to its ``provider``'s budget, its ``deployment_id``'s and its budgeted tags', as integer
pico-USD (no float drift). With Redis (``router_settings.redis_*``) each budget also has a shared counter,
``relaygate:budget-nano:{provider|deployment}:{ident}:{period start}`` (nano-USD): increments are batched per drain with
``INCRBY`` and expire a minute after the period ends (``budgets.shared.SharedSpend``), so a new period is a
new key and a reset needs no job.

Invariants:

- Periods follow each other from the Unix epoch (``budgets.periods.period_at`` with anchor 0: ``1d`` is a
  UTC day, ``1mo`` a calendar month), so every worker and instance computes the same boundaries and a
  budget resets exactly at one, whoever is running then. (LiteLLM starts a budget's first window when it
  is first used; with a fixed anchor no start time has to be shared.)
- The request path never awaits: :meth:`ProviderBudgets.mask` reads a wall clock, compares it with the
  next period end and, when the cached mask of the group is from the current version, returns it. The
  version moves only when a budget crosses its limit (or comes back under at a period boundary) or the
  config changes, so the group's targets are walked only then.
- Redis reads are batched: one ``MGET`` of every budget's counter, at most once per ``interval``
  (0.25 s), started by a request in the background; the request uses the figures it has. A budget's
  spend is its counter plus this worker's spend not yet seen in a read (never less than this worker's own
  spend of the period). Redis down: this worker's figures, one warning a minute (``SharedSpend``).
- Tolerance: a budget is crossed by at most the cost of the requests already routed when it was crossed
  (their cost is known only at their end), plus, across workers, what they spent in one read interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relaygate.budgets.periods import Duration, parse, period_at
from relaygate.budgets.shared import counter
from relaygate.core.errors import GatewayError, RateLimited
from relaygate.cost import PICO, pico_of, to_pico
from relaygate.sinks.record import CompletionRecord

if TYPE_CHECKING:
    from relaygate.budgets.shared import SharedSpend
    from relaygate.config.model import Config

__all__ = ["CROSSED", "ProviderBudgets", "wanted"]

log = logging.getLogger("relaygate.budgets")

CROSSED = "No deployments available - crossed budget"
"""LiteLLM's ``RouterErrors.no_deployments_with_provider_budget_routing``; its proxy answers it as a 429
(any "No deployments available" message is, ``ProxyException``) with ``type`` and ``param`` ``"None"``."""


def wanted(config: Config) -> bool:
    """Whether ``config`` has a provider or deployment budget (else nothing is installed)."""
    return bool(config.router.provider_budget_config or config.router.tag_budget_config) or any(
        d.max_budget is not None and d.budget_duration for d in config.deployments)


class Budget:
    """One budget: its limit, the period it counts, this worker's spend and the last shared figure."""

    __slots__ = ("kind", "ident", "limit", "limit_pico", "duration", "start", "end", "local", "unread",
                 "shared", "over")

    def __init__(self, kind: str, ident: str, limit: float, duration: Duration, now: float) -> None:
        self.kind = kind
        self.ident = ident
        self.limit = float(limit)
        self.limit_pico = to_pico(limit)
        self.duration = duration
        self.start, self.end = period_at(duration, 0.0, now)
        self.local = 0
        """pico-USD this worker spent in ``[start, end)``."""
        self.unread = 0
        """Of ``local``, what no Redis read has seen yet."""
        self.shared: int | None = None
        """The shared counter at the last read (None: no read of this period yet, or no Redis)."""
        self.over = False

    @property
    def spend(self) -> int:
        shared = self.shared
        if shared is None:
            return self.local
        total = shared + self.unread
        return total if total > self.local else self.local

    def roll(self, now: float) -> None:
        self.start, self.end = period_at(self.duration, 0.0, now)
        self.local = self.unread = 0
        self.shared = None

    def check(self) -> bool:
        """Update ``over``; True when it changed."""
        over = self.spend >= self.limit_pico
        if over is self.over:
            return False
        self.over = over
        return True

    def usd(self) -> float:
        return self.spend / PICO


class ProviderBudgets:
    """The worker's provider and deployment budgets (one object for the gateway's life; reloads call
    :meth:`configure`). A sync completion sink; the router calls :meth:`mask` and :meth:`crossed`."""

    name = "provider_budgets"

    def __init__(self, config: Config, *, shared: SharedSpend | None = None, metrics: Any = None,
                 clock: Callable[[], float] = time.time, interval: float = 0.25) -> None:
        self.shared = shared
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.providers: dict[str, Budget] = {}
        self.deployments: dict[str, Budget] = {}
        self.tags: dict[str, Budget] = {}
        self.tags_over: frozenset[str] = frozenset()
        """The budgeted tags over their budget now (the router's one test per request that has tags)."""
        self.version = 0
        self._roll_at = float("inf")
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None
        self.configure(config)

    # -- config -------------------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Budgets of ``config``; one whose limit or period is unchanged keeps its spend."""
        now = self.clock()
        old = {**{("provider", k): b for k, b in self.providers.items()},
               **{("deployment", k): b for k, b in self.deployments.items()},
               **{("tag", k): b for k, b in self.tags.items()}}
        self.providers = {}
        self.deployments = {}
        self.tags = {}
        for provider, spec in (config.router.provider_budget_config or {}).items():
            self.providers[provider] = self._keep(old, "provider", provider, spec.budget_limit, spec.time_period,
                                                  now)
        for dep in config.deployments:
            if dep.max_budget is not None and dep.budget_duration:
                self.deployments[dep.id] = self._keep(old, "deployment", dep.id, dep.max_budget,
                                                      dep.budget_duration, now)
        for tag, spec in (config.router.tag_budget_config or {}).items():
            self.tags[tag] = self._keep(old, "tag", tag, spec.budget_limit, spec.time_period, now)
        for b in self._all():
            b.check()
        self._tags_over()
        self._roll_at = min((b.end for b in self._all()), default=float("inf"))
        self.version += 1
        if self.metrics is not None:
            self.metrics.clear_provider_budgets()
            self._export()

    def _keep(self, old: dict[tuple[str, str], Budget], kind: str, ident: str, limit: float, period: str,
              now: float) -> Budget:
        try:
            duration = parse(period)
        except ValueError as exc:  # the config loader checks these; a model added by /model/new may not
            log.error("%s budget of %s: %s; counted per day", kind, ident, exc)
            duration = parse("1d")
        b = old.get((kind, ident))
        if b is not None and b.duration.text == duration.text:
            b.limit = float(limit)
            b.limit_pico = to_pico(limit)
            if not b.start <= now < b.end:  # its period is over (or the clock went back)
                b.roll(now)
            return b
        return Budget(kind, ident, limit, duration, now)

    def _all(self) -> list[Budget]:
        return [*self.providers.values(), *self.deployments.values(), *self.tags.values()]

    def _tags_over(self) -> None:
        self.tags_over = frozenset(t for t, b in self.tags.items() if b.over) if self.tags else frozenset()

    # -- the request path ---------------------------------------------------------------------------

    def mask(self, group: Any) -> int:
        """Bits (``1 << index``) of ``group``'s targets over their provider's or their own budget. Never
        awaits; starts a background Redis read when the last one is older than ``interval``."""
        now = self.clock()
        if now >= self._roll_at:
            self._roll(now)
        if self.shared is not None and now >= self._read_at:
            self._read_at = now + self.interval
            self._start_read()
        cached = group.budget_mask
        if cached is not None and cached[0] == self.version:
            return int(cached[1])
        mask = 0
        providers, deployments = self.providers, self.deployments
        for i, t in enumerate(group.targets):
            b = providers.get(t.dep.provider)
            if b is not None and b.over:
                mask |= 1 << i
                continue
            b = deployments.get(t.dep.id)
            if b is not None and b.over:
                mask |= 1 << i
        group.budget_mask = (self.version, mask)
        return mask

    def crossed(self, group: Any, mask: int) -> GatewayError:
        """LiteLLM's error when every deployment left is over budget: one line per deployment in ``mask``."""
        lines = []
        for i, t in enumerate(group.targets):
            if not mask >> i & 1:
                continue
            dep = t.dep
            b = self.providers.get(dep.provider)
            if b is not None and b.over:
                lines.append(f"Exceeded budget for provider {dep.provider}: {b.usd()!r} >= {b.limit!r}\n")
                continue
            b = self.deployments.get(dep.id)
            if b is not None and b.over:
                lines.append(f"Exceeded budget for deployment model_name: {dep.model_name}, litellm_params.model: "
                             f"{dep.model}, model_id: {dep.id}: {b.usd()!r} >= {b.limit!r}\n")
        return RateLimited(f"{CROSSED}: {''.join(lines)}", code="429")

    def tags_crossed(self, group: Any, tags: frozenset[str]) -> GatewayError | None:
        """LiteLLM's error for a request carrying a tag over its budget (every deployment of ``group`` is then
        over: a line each, as LiteLLM's); None when none of ``tags`` is."""
        over = sorted(self.tags_over & tags)
        if not over:
            return None
        b = self.tags[over[0]]
        line = f"Exceeded budget for tag='{over[0]}', tag_spend={b.usd()!r}, tag_budget_limit={b.limit!r}\n"
        return RateLimited(f"{CROSSED}: {line * len(group.targets)}", code="429")

    # -- counting -----------------------------------------------------------------------------------

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Add each priced record's cost to its provider's and its deployment's budget (and to Redis)."""
        now = self.clock()
        if now >= self._roll_at:
            self._roll(now)
        providers, deployments, tags, shared = self.providers, self.deployments, self.tags, self.shared
        changed = touched = False
        for r in batch:
            cost = r.cost
            if not cost > 0.0:
                continue
            c = pico_of(cost)
            extra = r.extra
            sent = extra.get("tags") if tags and isinstance(extra, dict) else None
            for b in (providers.get(r.provider), deployments.get(r.deployment_id),
                      *(tags.get(t) for t in sent or () if type(t) is str)):
                if b is None:
                    continue
                b.local += c
                b.unread += c
                if shared is not None:
                    shared.add(b.kind, b.ident, b.start, b.end, c)
                changed |= b.check()
                touched = True
        if changed:
            self.version += 1
            self._tags_over()
        if touched and self.metrics is not None:
            self._export()

    def _roll(self, now: float) -> None:
        changed = False
        for b in self._all():
            if now >= b.end:
                b.roll(now)
                changed |= b.check()
        self._roll_at = min((b.end for b in self._all()), default=float("inf"))
        if changed:
            self.version += 1
            self._tags_over()
        if self.metrics is not None:
            self._export()

    # -- Redis --------------------------------------------------------------------------------------

    def _start_read(self) -> None:
        if self._reading is not None and not self._reading.done():
            return
        self._reading = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        """Read every budget's shared counter (one ``MGET``) and take the figures in."""
        shared = self.shared
        budgets = self._all()
        if shared is None or not budgets:
            return
        names = [counter(b.kind, b.ident, b.start) for b in budgets]
        seen = [(b.start, b.unread) for b in budgets]
        got = await shared.read_names(names)
        if got is None:
            return
        changed = False
        for b, (start, unread), value in zip(budgets, seen, got):
            if b.start != start:  # the period rolled during the read
                continue
            b.shared = value if value is not None else 0
            b.unread -= unread  # what was added while the read ran stays unread
            changed |= b.check()
        if changed:
            self.version += 1
            self._tags_over()
        if self.metrics is not None:
            self._export()

    async def aclose(self) -> None:
        task, self._reading = self._reading, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        shared, self.shared = self.shared, None
        if shared is not None:
            await shared.aclose()

    # -- reporting ----------------------------------------------------------------------------------

    def _export(self) -> None:
        shared = self.shared is not None
        for provider, b in self.providers.items():
            self.metrics.set_provider_budget(provider, b.limit, b.usd(), b.start, shared)

    def report(self) -> dict[str, dict[str, Any]]:
        """LiteLLM's ``/provider/budgets`` entries: ``budget_limit``, ``time_period``, ``spend``,
        ``budget_reset_at`` (the end of the current period, ISO 8601 UTC)."""
        now = self.clock()
        if now >= self._roll_at:
            self._roll(now)
        return {provider: {"budget_limit": b.limit, "time_period": b.duration.text, "spend": b.usd(),
                           "budget_reset_at": datetime.fromtimestamp(b.end, UTC).isoformat()}
                for provider, b in self.providers.items()}
