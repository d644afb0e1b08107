"""The router: which deployment serves an attempt, and what happens when an attempt fails.

IO shell around the pure decisions in ``core.routing`` (strategy choice, cooldown counting, retry delays)
and ``core.ratelimit`` (via ``relaygate.limits``). It owns per-worker state: one
``core.routing.DeploymentStats`` per deployment (in-flight count, latency and TTFT EWMAs, failures this
minute, cooldown, known budget), built once at startup together with each group's priority tiers.

Contract with the pipeline: :meth:`Router.resolve` maps a requested model to a :class:`ModelGroup` (exact
name, ``model_group_alias``, ``*`` wildcards) or raises ``BadRequest``; :meth:`Router.run` calls
``attempt(target)`` until one succeeds and returns ``(result, lease)`` (``attempt`` raises ``GatewayError``);
the caller calls ``lease.finish(ok, tokens)`` once when the answer ended and adds ``lease.headers``
(``x-ratelimit-*``); ``RouteContext`` counts retries and fallbacks. A cache hit calls no deployment and pays
only its key's limits (:meth:`Router.admit_key`). :meth:`Router.start` / :meth:`Router.aclose`
start and stop the limiter. With ``enable_tag_filtering`` a request's tags exclude deployments up front
(``core.routing.tag_filter``: LiteLLM's tag-based routing); provider and deployment budgets exclude the
deployments over budget the same way (``Router.budgets``, a ``budgets.providers.ProviderBudgets`` the gateway
sets; LiteLLM's budget routing), and raise its 429 when none is left.

Config reload (``Router(config, previous=old)``): the new router takes over the old one's
``DeploymentStats`` by deployment id: the same objects, so EWMAs, cooldowns and the in-flight count of
requests still running on the old router carry on; config-derived fields are updated, tiers rebuilt. The
limiter is kept when the settings it is built from are unchanged, else the old one waits in
``retired_limiter`` until the caller's :meth:`Router.close_retired`. Old groups find a target by identity
when the new router renumbered its stats (:meth:`ModelGroup.target_of`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence, TypeVar

from relaygate import service_metrics
from relaygate.catalog import default_catalog
from relaygate.config.model import Config, Deployment, RouterSettings
from relaygate.core import routing, tokens
from relaygate.core.errors import (
    BadRequest,
    ContentPolicyViolation,
    ContextWindowExceeded,
    GatewayError,
    ModelNotFound,
    RateLimited,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from relaygate.core.ratelimit import PREFIX, Bucket, Verdict
from relaygate.core.routing import DeploymentStats
from relaygate.limits import Limiter, make_limiter
from relaygate.providers import make_provider
from relaygate.providers.base import Provider
from relaygate.route_context import RouteContext
from relaygate.routing_limits import KeyHold, key_limit_error, ratelimit_headers, refund, retry_after_header, settle

if TYPE_CHECKING:
    from relaygate.budgets.providers import ProviderBudgets

R = TypeVar("R")
log = logging.getLogger("relaygate.router")


class Target:
    """A deployment ready to be called: its adapter, the upstream model name, its stats and buckets."""

    __slots__ = ("dep", "provider", "upstream_model", "stats", "buckets", "token_buckets", "headers")

    def __init__(self, dep: Deployment, provider: Provider, stats: DeploymentStats | None = None) -> None:
        self.dep = dep
        self.provider = provider
        self.upstream_model = dep.upstream_model
        #: the response headers that name this deployment, encoded once
        self.headers: tuple[tuple[bytes, bytes], ...] = (
            (b"x-litellm-model-id", dep.id.encode()),
            (b"x-litellm-model-api-base", (provider.api_base or "").encode()),
            (b"x-litellm-model-group", dep.model_name.encode()),
            (b"x-litellm-model-name", dep.upstream_model.encode()),  # answers carry the requested name
        )
        self.stats = stats if stats is not None else DeploymentStats(0, dep.id, cooldown_time=dep.cooldown_time)
        buckets = []
        if dep.rpm:
            buckets.append(Bucket.per_minute(f"{PREFIX}d:{dep.id}:rpm", dep.rpm, "deployment", "requests", dep.id))
        if dep.tpm:
            buckets.append(Bucket.per_minute(f"{PREFIX}d:{dep.id}:tpm", dep.tpm, "deployment", "tokens", dep.id))
        self.buckets: tuple[Bucket, ...] = tuple(buckets)
        self.token_buckets = dep.tpm is not None and dep.tpm > 0


def _weights(deps: list[Deployment]) -> list[float] | None:
    if any(d.weight is not None for d in deps):
        return [d.weight if d.weight is not None else 1.0 for d in deps]
    if all(d.rpm for d in deps):
        return [float(d.rpm or 0) for d in deps]
    if all(d.tpm for d in deps):
        return [float(d.tpm or 0) for d in deps]
    return None


def _cost(dep: Deployment) -> float:
    info = dep.model_info
    try:
        return float(info.get("input_cost_per_token") or 0.0) + float(info.get("output_cost_per_token") or 0.0)
    except (TypeError, ValueError):
        return 0.0


class ModelGroup:
    """A model group: its targets (index = position) and the priority tiers the strategies walk."""

    __slots__ = ("name", "targets", "weights", "stats", "tiers", "limited", "token_limited", "tags", "tag_masks",
                 "budget_mask", "windows")

    def __init__(self, name: str, targets: list[Target]) -> None:
        self.name = name
        self.targets = targets
        self.weights = _weights([t.dep for t in targets])
        stats = []
        for i, t in enumerate(targets):
            s = t.stats
            s.index = i
            s.weight = self.weights[i] if self.weights is not None else 1.0
            stats.append(s)
        self.stats = stats
        self.tiers = routing.build_tiers(stats)
        self.limited = any(t.buckets for t in targets)
        self.token_limited = any(t.token_buckets for t in targets)
        self.tags = [frozenset(t.dep.tags) for t in targets]
        self.tag_masks: dict[frozenset[str] | None, int | None] = {}  # per request tag set (bounded below)
        self.budget_mask: tuple[int, int] | None = None  # (version, mask) of ``budgets.providers``
        self.windows: tuple[int | None, ...] | None = None
        """Each target's ``max_input_tokens`` for ``enable_pre_call_checks`` (None: off, or none known)."""

    def target_of(self, s: DeploymentStats) -> Target:
        """The target of ``s``: at ``s.index`` unless a newer router (reload) took ``s`` over and renumbered it."""
        targets = self.targets
        i = s.index
        if i < len(targets):
            t = targets[i]
            if t.stats is s:
                return t
        for t in targets:
            if t.stats is s:
                return t
        raise LookupError(f"deployment {s.id!r} is not in model group {self.name!r}")


class Lease:
    """An attempt that succeeded; ``headers`` are added to the client response (rate-limit state)."""

    __slots__ = ("target", "start", "_done", "headers", "_limiter", "_buckets", "_costs", "_router")

    def __init__(self, target: Target, start: float, limiter: Limiter | None = None,
                 buckets: tuple[Bucket, ...] = (), costs: tuple[float, ...] = (),
                 router: Router | None = None) -> None:
        self.target = target
        self.start = start
        self._done = False
        self.headers: list[tuple[bytes, bytes]] = []
        self._limiter = limiter
        self._buckets = buckets
        self._costs = costs
        self._router = router

    def finish(self, ok: bool, tokens: int = 0, error: GatewayError | None = None, *,
               prompt: int | None = None) -> None:
        """Release the in-flight slot; reconcile reserved tokens with ``tokens`` (real usage, 0 = unknown;
        ``prompt`` of them the input's, None when the split is unknown: ``routing_limits.settle``)
        and give back the parallel-request slot. ``error`` is the upstream's failure after the attempt had
        succeeded (a stream that broke mid-way): it counts towards the deployment's cooldown like a failed
        attempt. A client that went away is not the deployment's fault: pass no error."""
        if self._done:
            return
        self._done = True
        self.target.stats.inflight -= 1
        if error is not None and self._router is not None:
            self._router.count_failure(self.target.stats, error)
        if self._buckets and self._limiter is not None:
            count = self._router.token_count if self._router is not None else "total"
            self._limiter.adjust(self._buckets, settle(self._buckets, self._costs, tokens, prompt, count))


def _final(exc: GatewayError) -> bool:
    """Errors no fallback can help: the client's own bad request, its key's limits."""
    if exc.final:
        return True
    if isinstance(exc, (ContextWindowExceeded, ContentPolicyViolation, UpstreamConnectError, UpstreamTimeout)):
        return False
    st = exc.status
    return st < 500 and st not in (401, 403, 404, 408, 429)


class _Carry:
    """The previous router's stats, each given once to the new deployment with its id (and group name, for
    a wildcard's per-model stats); wildcard groups are built on first use, so theirs wait here."""

    __slots__ = ("by_key", "by_id", "used", "keep_limited")

    def __init__(self, previous: Router | None, keep_limited: bool) -> None:
        self.by_key: dict[tuple[str, str], DeploymentStats] = {}
        self.by_id: dict[str, DeploymentStats] = {}
        self.used: set[int] = set()
        self.keep_limited = keep_limited  # False: a new limiter, drop the "out of budget until" marks
        if previous is None:
            return
        self.by_key.update(previous._carry.by_key)  # wildcard stats the previous router had not used yet
        self.by_id.update(previous._carry.by_id)
        for group in (*previous.groups.values(), *previous._wild_cache.values()):
            for t in group.targets:
                self.by_key[(t.dep.id, t.dep.model_name)] = t.stats
        for dep_id, stats in previous.by_id.items():
            if len(stats) == 1:
                self.by_id[dep_id] = stats[0]

    def take(self, dep: Deployment) -> DeploymentStats | None:
        st = self.by_key.pop((dep.id, dep.model_name), None)
        if st is None:
            st = self.by_id.pop(dep.id, None)
        if st is None or id(st) in self.used:
            return None
        self.used.add(id(st))
        st.order = dep.order
        st.max_inflight = dep.max_parallel_requests or 0
        st.cost = _cost(dep)
        st.cooldown_time = dep.cooldown_time
        if st.rpm != dep.rpm or st.tpm != dep.tpm or not self.keep_limited:
            st.rpm = dep.rpm
            st.tpm = dep.tpm
            st.rpm_left = float(dep.rpm) if dep.rpm else 0.0
            st.tpm_left = float(dep.tpm) if dep.tpm else 0.0
            st.limited_until = 0.0  # the next attempt asks the limiter again
        return st

    def keep_only(self, ids: set[str]) -> None:
        """Drop what no deployment left to build (the wildcards') can take."""
        self.by_key = {k: v for k, v in self.by_key.items() if k[0] in ids}
        self.by_id = {k: v for k, v in self.by_id.items() if k in ids}


LIMITER_SETTINGS = ("redis_url", "redis_host", "redis_port", "redis_password", "redis_timeout",
                    "on_redis_failure")
"""The ``router_settings`` ``limits.make_limiter`` builds a limiter from: a reload that changes none of
them (and keeps the same metrics object) keeps the limiter."""


def same_limiter_settings(a: RouterSettings, b: RouterSettings) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in LIMITER_SETTINGS)


class Router:
    def __init__(self, config: Config, rng: random.Random | None = None, *, metrics: Any = None,
                 limiter: Limiter | None = None, previous: Router | None = None) -> None:
        """``previous``: the router this one replaces on a config reload (see the module docstring)."""
        self.config = config
        self.settings = s = config.router
        self.token_count = config.general.token_rate_limit_type
        """Which tokens the tpm limits of keys, teams, users and end users count (``routing_limits.settle``)."""
        self.fallback_access = config.general.enforce_fallback_model_access
        """Configured fallbacks are tried for a key only when it may call them (LiteLLM's setting, default on)."""
        self.model_limit_fallbacks = not config.general.disable_fallbacks_on_per_model_rate_limits
        """A key's per-model limit refusing is answered by the fallbacks (LiteLLM's default) or a 429."""
        self._rng = rng or random.Random()
        self._rand = self._rng.random
        self.metrics = metrics
        self.cooldown_hooks: tuple[Callable[[DeploymentStats, GatewayError, float], None], ...] = ()
        """Called (stats, error, seconds) when a deployment is cooled down; set by the gateway for its exporters
        (none by default). A hook must not raise nor block: it runs on the request path."""
        strategy = routing.STRATEGIES.get(s.routing_strategy)
        if strategy is None:
            log.warning("unknown routing_strategy %r: using simple-shuffle", s.routing_strategy)
            strategy = routing.SHUFFLE
        self.strategy = strategy
        self.exploration = s.latency_exploration
        self.alpha = s.latency_ewma_alpha
        self.retired_limiter: Limiter | None = None
        """The previous router's limiter when this one does not keep it: close it once drained."""
        if previous is not None and limiter is None and previous.metrics is metrics and (
                same_limiter_settings(previous.settings, s)):
            limiter = previous.limiter
        self.limiter: Limiter = limiter if limiter is not None else make_limiter(s, metrics)
        if previous is not None and previous.limiter is not self.limiter:
            self.retired_limiter = previous.limiter
        self.limiter.on_cooldowns(self._remote_cooldowns)  # replaces the previous router's callback
        self._carry: _Carry = _Carry(previous, keep_limited=self.retired_limiter is None)
        if s.default_max_parallel_requests:  # LiteLLM's: the bound of a deployment that sets none
            for dep in config.deployments:
                if dep.max_parallel_requests is None:
                    dep.max_parallel_requests = s.default_max_parallel_requests
        self.clock = time.monotonic
        self.budgets: ProviderBudgets | None = previous.budgets if previous is not None else None
        """Provider and deployment budgets (``budgets.providers``), set by the gateway; None: none."""
        self.groups: dict[str, ModelGroup] = {}
        self.by_id: dict[str, list[DeploymentStats]] = {}
        self._wildcards: list[tuple[re.Pattern[str], Deployment, Provider]] = []
        self._wild_cache: dict[str, ModelGroup] = {}
        by_name: dict[str, list[Target]] = {}
        for dep in config.deployments:
            provider = make_provider(dep)
            if dep.is_wildcard:
                pat = re.compile("^" + re.escape(dep.model_name).replace(r"\*", "(.*)") + "$")
                self._wildcards.append((pat, dep, provider))
            else:
                by_name.setdefault(dep.model_name, []).append(Target(dep, provider, self._stats(dep)))
        for name, targets in by_name.items():
            self.groups[name] = self._group(name, targets)
        # LiteLLM's pattern router: the longest literal pattern wins (stable: config order among equals)
        self._wildcards.sort(key=lambda w: -len(w[1].model_name.replace("*", "")))
        self.aliases = dict(s.model_group_alias)
        self._hidden = frozenset(s.hidden_aliases)
        self._carry.keep_only({dep.id for _pat, dep, _prov in self._wildcards})

    def _stats(self, dep: Deployment) -> DeploymentStats:
        st = self._carry.take(dep)
        if st is None:
            st = DeploymentStats(0, dep.id, order=dep.order, max_inflight=dep.max_parallel_requests or 0,
                                 cost=_cost(dep), rpm=dep.rpm, tpm=dep.tpm, cooldown_time=dep.cooldown_time)
        if len(self._wild_cache) < 10_000:  # stats of uncached wildcard groups are not kept
            self.by_id.setdefault(dep.id, []).append(st)
        return st

    async def start(self) -> None:
        await self.limiter.start()

    async def aclose(self) -> None:
        await self.limiter.aclose()

    async def close_retired(self) -> None:
        """Close the previous router's limiter if this router did not keep it (call once the requests
        still running on the previous router have finished: their leases give their slots back to it)."""
        retired, self.retired_limiter = self.retired_limiter, None
        if retired is not None and retired is not self.limiter:
            await retired.aclose()

    def _remote_cooldowns(self, entries: list[tuple[str, float]]) -> None:
        now = self.clock()
        for dep_id, seconds in entries:
            for st in self.by_id.get(dep_id, ()):
                until = now + seconds
                if until > st.cooldown_until:
                    st.cooldown_until = until

    # -- resolution ---------------------------------------------------------------------------------

    def public_models(self) -> list[str]:
        """The model names listed to clients: the groups, and the aliases not ``hidden``."""
        names = list(self.groups)
        names.extend(a for a in self.aliases if a not in self.groups and a not in self._hidden)
        return names

    def resolve(self, model: str, route: str = "/chat/completions") -> ModelGroup:
        group = self.groups.get(model)
        if group is not None:
            return group
        alias = self.aliases.get(model)
        if alias is not None and alias in self.groups:
            return self.groups[alias]
        group = self._wild_cache.get(model)
        if group is not None:
            return group
        targets = []
        matched: str | None = None
        for pat, dep, _provider in self._wildcards:  # most specific pattern first; only its deployments
            if matched is not None and dep.model_name != matched:
                break
            m = pat.match(model)
            if m is None:
                continue
            matched = dep.model_name
            captured = m.group(1) if m.groups() else model
            upstream = dep.model.replace("*", captured, 1) if "*" in dep.model else dep.model
            prov_name, _, up_model = upstream.partition("/")
            if not _:
                prov_name, up_model = "openai", upstream
            concrete = Deployment(**{**{f: getattr(dep, f) for f in dep.__struct_fields__},
                                     "model_name": model, "provider": prov_name, "upstream_model": up_model})
            prov = make_provider(concrete)  # adapters may derive state from the upstream model
            targets.append(Target(concrete, prov, self._stats(concrete)))
        if targets:
            group = self._group(model, targets)
            if len(self._wild_cache) < 10_000:
                self._wild_cache[model] = group
            return group
        raise ModelNotFound(
            f"{route}: Invalid model name passed in model={model}. Call `/v1/models` to view available "
            "models for your key.",
            param="model",
        )

    def _lookup(self, name: str) -> ModelGroup | None:
        try:
            return self.resolve(name)
        except BadRequest:
            return None

    # -- choice -------------------------------------------------------------------------------------

    def _no_deployments(self, group: ModelGroup, now: float) -> GatewayError:
        wait = routing.next_free(group.tiers, now)
        secs = max(1, math.ceil(wait)) if wait > 0 else max(1, math.ceil(self.settings.cooldown_time))
        cooling = [s.id for s in group.stats if s.cooldown_until > now]
        return RateLimited(
            f"No deployments available for selected model, Try again in {secs} seconds. Passed model="
            f"{group.name}. pre-call-checks={self.settings.enable_pre_call_checks}, cooldown_list={cooling}",
            code="429", headers=[retry_after_header(secs)])

    # -- execution ----------------------------------------------------------------------------------

    async def run(
        self,
        group: ModelGroup,
        ctx: RouteContext,
        attempt: Callable[[Target], Awaitable[R]],
    ) -> tuple[R, Lease]:
        try:
            return await self._run_group(group, ctx, attempt)
        except GatewayError as exc:
            if _final(exc):
                self._release_paid(ctx)
                raise
            fallbacks = self._fallbacks_for(group.name, exc, ctx)
            if not fallbacks:
                self._release_paid(ctx)
                raise
            last = exc
        tried = 0
        for name in fallbacks:
            if tried >= self.settings.max_fallbacks:
                break
            if ctx.key is not None and self.fallback_access and not ctx.key.allows(name):
                continue  # a fallback outside the key's allow-list is not tried (enforce_fallback_model_access)
            fg = self._lookup(name)
            if fg is None or fg is group:
                continue
            tried += 1
            ctx.attempted_fallbacks += 1
            try:
                return await self._run_group(fg, ctx, attempt)
            except GatewayError as exc:
                last = exc
                if _final(exc):
                    break
        self._release_paid(ctx)
        if not last.final:
            last.message = (f"{last.message}. Received Model Group={group.name}\n"
                            f"Available Model Group Fallbacks={fallbacks}")
        raise last

    def _fallbacks_for(self, name: str, exc: GatewayError, ctx: RouteContext) -> list[str] | None:
        s = self.settings
        if ctx.no_fallbacks:  # LiteLLM's disable_fallbacks (the request's or its key's)
            return None
        if isinstance(exc, ContextWindowExceeded):  # the request's own table replaces the router's
            w = ctx.window_fallbacks
            return routing.fallback_groups(s.context_window_fallbacks if w is None else w, name)
        if isinstance(exc, ContentPolicyViolation):
            p = ctx.policy_fallbacks
            return routing.fallback_groups(s.content_policy_fallbacks if p is None else p, name)
        if ctx.fallbacks:
            return ctx.fallbacks
        return routing.fallback_groups(s.fallbacks, name) or (s.default_fallbacks or None)

    def _release_paid(self, ctx: RouteContext) -> None:
        if ctx.paid:
            self.limiter.adjust(ctx.paid, refund(ctx.paid, ctx.paid_costs))
            ctx.paid = ()
            ctx.paid_costs = ()

    def _prompt_tokens(self, ctx: RouteContext) -> int:
        if ctx.prompt_tokens <= 0 and ctx.messages:
            raw = b"[" + b",".join(bytes(m) for m in ctx.messages) + b"]"
            ctx.prompt_tokens = tokens.estimate_messages_tokens(raw)
        return ctx.prompt_tokens

    async def _admit(self, group: ModelGroup, target: Target, ctx: RouteContext,
                     now: float) -> tuple[Verdict | None, tuple[Bucket, ...], tuple[float, ...]]:
        """Pay the attempt's buckets in one limiter call -> (verdict, buckets, costs); verdict None when
        nothing is limited. Raises the key-level 429 when a key/team/user bucket refuses."""
        key = ctx.key
        key_buckets: tuple[Bucket, ...] = key.buckets_for(group.name) if key is not None and not ctx.paid else ()
        buckets = target.buckets + key_buckets if key_buckets else target.buckets
        if not buckets:
            return None, (), ()
        tok = self._prompt_tokens(ctx) if (target.token_buckets or (key_buckets and key.token_buckets)) else 0
        costs = self._reservation(buckets, tok)
        verdict = await self.limiter.acquire(buckets, costs)
        st = target.stats
        rem = verdict.remaining
        own = target.buckets  # the deployment's buckets come first
        for i in range(len(own)):
            if own[i].unit == "requests":
                st.rpm_left = rem[i]
            else:
                st.tpm_left = rem[i]
        if verdict.fail >= 0:
            failed = buckets[verdict.fail]
            if failed.scope == "deployment":
                st.limited_until = now + verdict.reset[verdict.fail]
                return verdict, (), ()
            raise key_limit_error(buckets, verdict, self.model_limit_fallbacks)
        if key_buckets:
            n = len(target.buckets)
            ctx.paid = key_buckets
            ctx.paid_costs = costs[n:]
        return verdict, buckets, costs

    async def admit_key(self, group: ModelGroup, key: Any, messages: Sequence[Any] | None) -> KeyHold | None:
        """A cache hit's admission: ``key``'s buckets for ``group`` paid in one limiter call, as a routed
        request's first attempt pays them, or the same key-level 429; no deployment's (a hit calls none).
        None when nothing limits the key for ``group``; else ``finish`` the hold once the hit was sent."""
        buckets = key.buckets_for(group.name)
        if not buckets:
            return None
        tok = self._prompt_tokens(RouteContext(messages=messages)) if key.token_buckets else 0
        costs = self._reservation(buckets, tok)
        verdict = await self.limiter.acquire(buckets, costs)
        if verdict.fail >= 0:
            raise key_limit_error(buckets, verdict)
        return KeyHold(self.limiter, buckets, costs, ratelimit_headers(buckets, verdict), self.token_count)

    def _reservation(self, buckets: tuple[Bucket, ...], tok: int) -> tuple[float, ...]:
        """What a request reserves of each bucket: one request, or the prompt's estimated tokens; with
        ``token_rate_limit_type: output`` a key's (team's ...) tpm reserves one token, which an exhausted
        window refuses, and is settled with the answer's output tokens."""
        output = self.token_count == "output"
        return tuple([float(tok) if b.unit == "tokens" and not (output and b.scope != "deployment") else 1.0
                      for b in buckets])

    async def _run_group(self, group: ModelGroup, ctx: RouteContext,
                         attempt: Callable[[Target], Awaitable[R]]) -> tuple[R, Lease]:
        settings = self.settings
        cap = ctx.num_retries  # a client's num_retries only lowers what the policy allows
        excluded = forbidden = self._tag_filter(group, ctx) if settings.enable_tag_filtering else 0
        budgets = self.budgets
        if budgets is not None:
            if budgets.tags_over and ctx.tags and (err := budgets.tags_crossed(group, ctx.tags)) is not None:
                raise err
            over = budgets.mask(group) & ~forbidden
            if over:
                if forbidden | over == (1 << len(group.targets)) - 1:
                    raise budgets.crossed(group, over)
                excluded = forbidden = forbidden | over
        if group.windows is not None and ctx.messages:  # enable_pre_call_checks: deployments the prompt fits
            small = self._too_small(group, group.windows, self._prompt_tokens(ctx), forbidden)
            if small:
                excluded = forbidden = forbidden | small
        used = 0
        last: GatewayError | None = None
        strategy, tiers, rand, stream = self.strategy, group.tiers, self._rand, ctx.stream
        while True:
            now = self.clock()
            s = routing.choose(strategy, tiers, now, excluded, stream, rand, self.exploration)
            if s is None and excluded != forbidden:
                excluded = forbidden
                s = routing.choose(strategy, tiers, now, forbidden, stream, rand, self.exploration)
            if s is None:
                if last is not None:
                    raise last
                raise self._no_deployments(group, now)
            target = group.target_of(s)
            verdict, called, costs = await self._admit(group, target, ctx, now) if (
                group.limited or ctx.key is not None) else (None, (), ())
            if verdict is not None and verdict.fail >= 0:
                excluded |= 1 << s.index
                continue
            own_n = len(target.buckets) if called else 0
            s.inflight += 1
            start = time.perf_counter()
            try:
                result = await attempt(target)
            except GatewayError as exc:
                s.inflight -= 1
                if own_n:
                    self.limiter.adjust(called[:own_n], refund(called[:own_n], costs[:own_n]))
                svc = service_metrics.active
                if svc is not None:  # LiteLLM's "self" service: one upstream call
                    svc.failed("self", exc, target.dep.provider)
                last = exc
                if ctx.failed is None:
                    ctx.failed = []
                ctx.failed.append((target.dep.id, exc.status, exc.type or ""))
                now = self.clock()
                if isinstance(exc, UpstreamTimeout):
                    routing.record_latency(s, time.perf_counter() - start, self.alpha)
                if routing.counts_for_cooldown(exc) and not settings.disable_cooldowns:
                    self._count_failure(s, exc, now)
                dep_retries = target.dep.num_retries  # litellm_params.num_retries: this deployment's policy
                allowed = routing.retries_for(exc, settings.num_retries if dep_retries is None else dep_retries,
                                              settings.retry_policy)
                if cap is not None and cap < allowed:
                    allowed = cap
                if used >= allowed:
                    raise
                used += 1
                ctx.attempted_retries += 1
                excluded |= 1 << s.index
                other = routing.choose(strategy, tiers, now, excluded, stream, rand, 0.0) is not None
                ra = exc.retry_after if isinstance(exc, UpstreamError) else None
                delay = routing.retry_delay(used - 1, ra, settings.retry_after, other, rand())
                if delay > 0:
                    await asyncio.sleep(delay)
                continue
            except BaseException:
                s.inflight -= 1
                if own_n:
                    self.limiter.adjust(called[:own_n], refund(called[:own_n], costs[:own_n]))
                self._release_paid(ctx)
                raise
            elapsed = time.perf_counter() - start
            svc = service_metrics.active
            if svc is not None:
                svc.ok("self", elapsed)
            if stream:
                routing.record_ttft(s, elapsed, self.alpha)
            else:
                routing.record_latency(s, elapsed, self.alpha)
            if now < s.window_end:  # counted for the failure share: one increment (now: the attempt's start)
                s.successes += 1
            else:
                routing.record_success(s, now)
            if ctx.paid:
                lease = Lease(target, start, self.limiter, called[:own_n] + ctx.paid,
                              costs[:own_n] + ctx.paid_costs, self)
                ctx.paid = ()
                ctx.paid_costs = ()
            else:
                lease = Lease(target, start, self.limiter, called[:own_n], costs[:own_n], self)
            if verdict is not None:
                lease.headers = ratelimit_headers(called, verdict)
            return result, lease

    def count_failure(self, s: DeploymentStats, exc: GatewayError) -> None:
        """A failure reported after the attempt returned (mid-stream): same rules as a failed attempt."""
        if routing.counts_for_cooldown(exc) and not self.settings.disable_cooldowns:
            self._count_failure(s, exc, self.clock())

    @staticmethod
    def _tag_filter(group: ModelGroup, ctx: RouteContext) -> int:
        mask = routing.cached_tag_filter(group.tag_masks, group.tags, ctx.tags)
        if mask is None:
            raise BadRequest(f"No deployments available with the request's tags. Passed model={group.name} and "
                             f"tags={sorted(ctx.tags or ())}", param="tags")
        return mask

    @staticmethod
    def _too_small(group: ModelGroup, windows: tuple[int | None, ...], need: int, forbidden: int) -> int:
        """The mask of ``group``'s targets whose context window the prompt (``need`` tokens, estimated) exceeds;
        LiteLLM's ``_pre_call_checks`` error (a ``ContextWindowExceeded``: ``context_window_fallbacks`` apply)
        when that is every target not ``forbidden`` already (tags, provider budgets)."""
        small = 0
        for i, w in enumerate(windows):
            if w is not None and need > w:
                small |= 1 << i
        if small & ~forbidden and small | forbidden == (1 << len(windows)) - 1:
            i = max((j for j in range(len(windows)) if small >> j & 1 and not forbidden >> j & 1),
                    key=lambda j: windows[j] or 0)
            raise ContextWindowExceeded(
                "litellm._pre_call_checks: Context Window exceeded for given call. No models have context window "
                f"large enough for this call.\nModel={group.targets[i].dep.upstream_model}, Max Input Tokens="
                f"{windows[i]}, Got={need}", type="invalid_request_error")
        return small

    def _group(self, name: str, targets: list[Target]) -> ModelGroup:
        """A model group; its only deployment (``solo``) is never cooled down unless the group has fallbacks
        (as LiteLLM: cooling it would turn one upstream hiccup into ``cooldown_time`` of 429s for all)."""
        group = ModelGroup(name, targets)
        s = self.settings
        has_fallbacks = bool(routing.fallback_groups(s.fallbacks, name) or s.default_fallbacks
                             or routing.fallback_groups(s.context_window_fallbacks, name)
                             or routing.fallback_groups(s.content_policy_fallbacks, name))
        for st in group.stats:
            st.solo = len(targets) == 1 and not has_fallbacks
        if s.enable_pre_call_checks:
            catalog = default_catalog()
            windows = tuple((e.max_input_tokens if (e := catalog.for_deployment(t.dep)) is not None else None)
                            for t in targets)
            group.windows = windows if any(w is not None for w in windows) else None
        return group

    def _count_failure(self, s: DeploymentStats, exc: GatewayError, now: float) -> None:
        if s.solo:
            return
        settings = self.settings
        allowed = routing.allowed_fails_for(exc, settings.allowed_fails, settings.allowed_fails_policy)
        if not routing.record_failure(s, now, allowed, routing.cools_at_once(exc)):
            return
        ra = exc.retry_after if isinstance(exc, UpstreamError) else None
        seconds = routing.cooldown_seconds(s.cooldown_time, ra, settings.cooldown_time)
        if seconds > 0.0:
            routing.cool(s, now, seconds)
            self.limiter.share_cooldown(s.id, seconds)
            if self.metrics is not None:
                self.metrics.cooldown(s.id, exc.status)  # the event, and litellm_deployment_cooled_down
            for hook in self.cooldown_hooks:  # alerting, Prometheus' litellm_deployment_cooled_down
                hook(s, exc, seconds)
