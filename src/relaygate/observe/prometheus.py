"""LiteLLM's Prometheus families (``callbacks: ["prometheus"]``), next to relaygate's own on ``/metrics``.

What it owns: :class:`LiteLLMMetrics`, the ``litellm_*`` families LiteLLM's Prometheus logger documents,
with its names, types, label names and latency buckets (:data:`FAMILIES`, :data:`LATENCY_BUCKETS`), fed
from completion records off the request path (``handle``: a sync sink, a few dict increments a record),
from the router's deployment state read at scrape / snapshot time (state, in-flight, remaining limits:
nothing on the request path), and from pushes by the parts that know budgets and cooldowns
(``set_budget``, ``cooled_down``). Dashboards built on LiteLLM (its published Grafana JSON among them)
therefore work unchanged against relaygate.

Invariants:

- Bounded series: nothing a client sends becomes a label. Model groups, deployment ids, ``api_base``,
  providers and upstream model names come from the config (``api_base`` from the adapters once a router is
  attached, a provider's default when the config names none); ``hashed_api_key`` / ``api_key_alias``,
  ``team`` and ``user`` only from keys the gateway resolved, and at most :data:`MAX_IDENTITIES` distinct
  values each (then ``other``); ``requested_model`` is a configured group or alias, else ``other``; an end
  user, client IP, user agent or tag never is a value (``end_user`` is ``other`` when the request named
  one). As a backstop each family holds at most :data:`MAX_SERIES` label sets; past that a new one counts
  under all-``other`` labels. The series count is fixed by the config and the caps, whatever the traffic.
- A value LiteLLM would leave unset is ``"None"`` (:data:`NONE`), the string its client library writes,
  so queries written against LiteLLM (``team_alias!="None"``) keep their meaning.
- Multi-worker: :meth:`LiteLLMMetrics.snapshot` is plain JSON, carried inside ``Metrics.snapshot()``;
  :meth:`LiteLLMMetrics.render` merges every worker's part (counters and histograms summed, deployment state
  the worst, in-flight summed, remaining limits the lowest, budgets the latest report).
- Cost per record: its label values depend only on its identity fields, so the cells (value lists) of the
  series an identity counts in are found once and remembered (bounded by :data:`MAX_MEMO`); a repeated
  identity is one dict look-up, then list increments and a ``bisect`` per histogram (about 4 µs a record
  here, against 13 µs building every label tuple each time).
- Off means absent: without ``prometheus`` in the callbacks no object of this module exists, no sink is
  registered. LiteLLM's ``prometheus_*`` output controls act at render time only (``prometheus_view``).
- ``litellm_in_flight_requests``: the HTTP requests the workers serve (``Gateway.active``, the scrape included,
  as LiteLLM counts them); with no gateway attached, the LLM API calls in flight (the router's counts).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from relaygate.observe.detail import Detail
from relaygate.observe.prometheus_custom import CustomLabels
from relaygate.observe.prometheus_families import (
    BUDGET_GAUGE_KINDS,
    COUNTER,
    DEFAULT_BUCKETS,
    DETAIL_FAMILIES,
    FAMILIES,
    HISTOGRAM,
    LATENCY_BUCKETS,
    MAX_IDENTITIES,
    MAX_MEMO,
    MAX_SERIES,
    NONE,
    OTHER,
    Cells,
    class_of,
)
from relaygate.observe.prometheus_limits import KeyLimits, merge_remaining
from relaygate.observe.prometheus_text import latency_bounds, sparse
from relaygate.observe.prometheus_text import render as render_text
from relaygate.observe.prometheus_ttl import SeriesTtl
from relaygate.observe.prometheus_view import view_of
from relaygate.sinks.record import CompletionRecord, Outcome

if TYPE_CHECKING:
    from relaygate.config.model import Config
    from relaygate.config.prometheus_view import PrometheusView

__all__ = ["BUDGET_GAUGE_KINDS", "DEFAULT_BUCKETS", "FAMILIES", "LATENCY_BUCKETS", "MAX_IDENTITIES", "MAX_SERIES",
           "NONE", "OTHER", "LiteLLMMetrics", "enabled"]

_ROUTES = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings",
           "messages": "/v1/messages", "responses": "/v1/responses", "images": "/images/generations",
           "audio_speech": "/audio/speech", "audio_transcriptions": "/audio/transcriptions",
           "moderations": "/moderations", "rerank": "/rerank"}
_MAX_ROUTES = 128
_STATUS = {code: str(code) for code in range(100, 600)}
_OK = Outcome.OK
_GONE = Outcome.CLIENT_GONE
_CLIENT_CLOSED = 499
_UNKNOWN_DEP = (NONE, NONE, NONE, NONE, NONE)


def enabled(config: Config) -> bool:
    """Whether the config asks for LiteLLM's Prometheus metrics (``prometheus`` among its callbacks)."""
    obs = config.observe
    return obs is not None and ("prometheus" in obs.success_callbacks or "prometheus" in obs.failure_callbacks)


class LiteLLMMetrics:
    """One worker's ``litellm_*`` figures. ``handle`` is the sink entry point; ``render`` the scrape's."""

    name = "prometheus"
    MAX_TEAMS = MAX_IDENTITIES
    """Teams whose member count is read (the store's first, by id)."""

    def __init__(self, groups: Iterable[str] = (), deployments: Iterable[Any] = (), *,
                 router: Callable[[], Any] | None = None) -> None:
        """``deployments``: config :class:`~relaygate.config.model.Deployment` objects (their ids, names,
        ``api_base``, provider and limits become the only deployment label values). ``router``: returns the
        live router (or ``None``), read at snapshot time for deployment state, in-flight and remaining limits."""
        self.router_source = router
        self.inflight_source: Callable[[], int] | None = None
        """Returns the HTTP requests this worker serves now (``Gateway.active``): ``litellm_in_flight_requests``."""
        self.capture_rates: dict[str, float] = {}  # provider -> rate, from ``management.capture_rate``'s check
        self.admission_source: Callable[[], Any] | None = None
        """Returns the worker's ``http.admission.Admission`` (or None): LiteLLM's admission families."""
        self.counters: dict[str, dict[tuple[str, ...], list[float]]] = {
            n: {} for n, f in FAMILIES.items() if f[0] == COUNTER}
        """family -> label values -> [count] (a one-item list: the memo holds the same cell)."""
        self.histograms: dict[str, dict[tuple[str, ...], list[float]]] = {
            n: {} for n, f in FAMILIES.items() if f[0] == HISTOGRAM}
        self.provider_remaining: dict[tuple[str, ...], tuple[float | None, float | None, float]] = {}
        """``litellm_remaining_*_metric`` labels -> (remaining requests, remaining tokens, when), the last the
        upstream's rate-limit headers said (LiteLLM sets these gauges from them on each success; bounded as
        the labels are: configured deployments x :data:`MAX_IDENTITIES` keys)."""
        self.dep_state: dict[str, int] = {}
        """deployment id -> 0 healthy / 1 partial outage, from its last call (cooldowns read from the router)."""
        self.budgets: dict[tuple[str, str, str], list[float]] = {}
        """(kind, ident, alias) -> [max budget, spend, reset at (epoch, -1 none), reported at]."""
        self._budget_alias: dict[tuple[str, str], str] = {}
        """The alias each budget's series is labelled with (``(kind, id)`` -> alias)."""
        self.counts: tuple[int, int] | None = None
        """(users, teams) in the store, from :meth:`set_counts`; None: not read (no store)."""
        self.team_members: list[tuple[str, str, int]] | None = None
        """(team id, alias or "", members) of the store's first :data:`MAX_IDENTITIES` teams, from
        :meth:`set_team_members`; None: not read (no store)."""
        self._keys: dict[str, tuple[str, str]] = {}
        self._teams: dict[str, tuple[str, str]] = {}
        self._users: dict[str, str] = {}
        self._emails: dict[str, str] = {}
        """user id -> its email, as the user rows of stored keys gave it (LiteLLM's ``user_email`` label)."""
        self._orgs: dict[str, tuple[str, str]] = {}
        self.key_limits = KeyLimits()  # the key's and team's limiter gauges, from the answers' headers
        self._routes: dict[str, str] = dict(_ROUTES)
        self._groups: frozenset[str] = frozenset()
        self._deps: dict[str, tuple[str, str, str, str, str]] = {}
        self._limits: list[tuple[tuple[str, ...], int | None, int | None]] = []
        self._memo: dict[tuple[Any, ...], Cells] = {}
        self._configured: list[Any] = []
        self._view: PrometheusView | None = None
        self.custom: CustomLabels | None = None
        """LiteLLM's ``custom_prometheus_*`` labels (``prometheus_custom``); their values end every series' key."""
        self._extra: tuple[str, ...] = ()
        self._stream, self.max_series = False, MAX_SERIES
        self.buckets: tuple[float, ...] = LATENCY_BUCKETS
        """The latency histograms' bounds (``prometheus_latency_buckets``, else LiteLLM's)."""
        self.ttl: SeriesTtl | None = None
        """``prometheus_metrics_ttl_seconds``: idle series swept at snapshot time (``prometheus_ttl``)."""
        """The custom label values of the record being counted (``()`` outside :meth:`handle`)."""
        self.set_labels(groups, deployments)

    @property
    def view(self) -> PrometheusView | None:
        """LiteLLM's output controls (applied by :meth:`render`) and custom labels (``prometheus_view``)."""
        return self._view

    @view.setter
    def view(self, view: PrometheusView | None) -> None:
        old = (self.custom.names if self.custom is not None else (), self._stream)
        self._view, self.custom = view, CustomLabels.of(view)
        self._stream = view is not None and view.stream_label  # prometheus_emit_stream_label
        self.max_series = view.max_series if view is not None and view.max_series else MAX_SERIES
        if (self.custom.names if self.custom is not None else (), self._stream) != old:
            self._memo = {}  # the remembered cells' keys lack (or carry) the old labels
        ttl = (view.ttl, view.cleanup_interval) if view is not None and view.ttl else None
        if ttl != ((self.ttl.ttl, self.ttl.interval) if self.ttl is not None else None):
            self.ttl = SeriesTtl(*ttl) if ttl is not None else None
        buckets = latency_bounds(view)  # prometheus_latency_buckets
        if buckets != self.buckets:  # counts in the old buckets cannot be split into the new: those series restart
            self.buckets = buckets
            for name, series in self.histograms.items():
                if name != "litellm_deployment_latency_per_output_token":
                    series.clear()
            self._memo = {}

    @classmethod
    def for_config(cls, config: Config, *, router: Callable[[], Any] | None = None) -> LiteLLMMetrics | None:
        """The metrics for ``config``, or ``None`` when its callbacks do not name ``prometheus``."""
        if not enabled(config):
            return None
        out = cls({d.model_name for d in config.deployments} | set(config.router.model_group_alias),
                  config.deployments, router=router)
        out.view = view_of(config)
        return out

    def set_config(self, config: Config) -> None:
        """A reload: the label values allowed from now on follow the new config (series already counted stay)."""
        self.set_labels({d.model_name for d in config.deployments} | set(config.router.model_group_alias),
                        config.deployments)
        self.view = view_of(config)

    def attach(self, router: Callable[[], Any]) -> None:
        """Read the live router from now on (``router()`` returns it, or ``None``): deployment state,
        in-flight and remaining limits at snapshot time, and each deployment's ``api_base`` as its adapter
        resolved it (a provider's default when the config names none), as LiteLLM labels it."""
        self.router_source = router
        self.set_labels(self._groups, self._configured)

    def _api_bases(self) -> dict[str, str]:
        router = self.router_source() if self.router_source is not None else None
        if router is None:
            return {}
        return {t.dep.id: t.provider.api_base for g in router.groups.values() for t in g.targets
                if getattr(t.provider, "api_base", None)}

    def set_labels(self, groups: Iterable[str], deployments: Iterable[Any]) -> None:
        """The label values allowed from now on; anything else is ``other``."""
        self._groups = frozenset(groups)
        self._configured = list(deployments)
        resolved = self._api_bases()
        deps: dict[str, tuple[str, str, str, str, str]] = {}
        limits: list[tuple[tuple[str, ...], int | None, int | None]] = []
        for d in self._configured:
            # model_id, litellm_model_name / model, api_base, api_provider, model_group
            labels: tuple[str, str, str, str, str] = (
                str(d.id), str(d.upstream_model or NONE), str(d.api_base or resolved.get(d.id) or NONE),
                str(d.provider or NONE), str(d.model_name))
            deps[d.id] = labels
            if d.rpm or d.tpm:
                limits.append(((labels[4], labels[1], labels[0], labels[2], labels[3]), d.rpm, d.tpm))
        self._deps = deps
        self._limits = limits
        self._memo = {}

    # -- bounded label values -------------------------------------------------------------------------

    def _key(self, key_hash: str | None, alias: str | None, known: dict[str, tuple[str, str]] | None = None
             ) -> tuple[str, str]:
        """A key's (or, with ``known`` the organizations', an organization's) id and alias as label values."""
        if not key_hash:
            return NONE, NONE
        known = self._keys if known is None else known
        got = known.get(key_hash)
        if got is None or got[1] != (alias or NONE):
            if got is None and len(known) >= MAX_IDENTITIES:
                return OTHER, OTHER
            got = known[key_hash] = (key_hash, alias or NONE)
        return got

    def _team(self, team_id: str | None, alias: str | None) -> tuple[str, str]:
        if not team_id:
            return NONE, NONE
        got = self._teams.get(team_id)
        if got is None or (alias is not None and got[1] != alias):
            if got is None and len(self._teams) >= MAX_IDENTITIES:
                return OTHER, OTHER
            if got is not None:
                self._memo.clear()  # remembered cells of this team's records without a detail name the old alias
            got = self._teams[team_id] = (team_id, alias or NONE)
        return got

    def _user(self, user_id: str | None) -> str:
        if not user_id:
            return NONE
        got = self._users.get(user_id)
        if got is None:
            if len(self._users) >= MAX_IDENTITIES:
                return OTHER
            got = self._users[user_id] = user_id
        return got

    def _email(self, user_id: str | None, email: str) -> str:
        """A stored user's email as a label value (bounded as the users are: one per user id)."""
        if not user_id:
            return NONE
        got = self._emails.get(user_id)
        if got != email:
            if got is None and len(self._emails) >= MAX_IDENTITIES:
                return OTHER
            got = self._emails[user_id] = email
        return got

    def _route(self, kind: str) -> str:
        got = self._routes.get(kind)
        if got is None:
            if len(self._routes) >= _MAX_ROUTES:
                return OTHER
            got = self._routes[kind] = kind  # a code constant (the pipeline's, its route table's), never client text
        return got

    def _dep(self, dep_id: str) -> tuple[str, str, str, str, str]:
        if not dep_id:
            return _UNKNOWN_DEP
        return self._deps.get(dep_id) or (OTHER, OTHER, OTHER, OTHER, OTHER)

    # -- the sink ---------------------------------------------------------------------------------------

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Count a batch of completion records (sync sink; the queue's drain callback).

        A record's label values depend only on its identity fields (key, team, user, models, deployment,
        status, route ...), so each identity's cells (the counters' and histograms' value lists) are looked up
        once and kept in a bounded memo: a repeated identity costs one dict look-up, then list increments."""
        memo = self._memo
        state = self.dep_state
        custom = self.custom
        latest: dict[tuple[str, ...], tuple[list[tuple[bytes, bytes]], float]] | None = None
        bounds = self.buckets
        for r in batch:
            if r.status == 401 and not r.deployment_id:
                continue  # a bad key (LiteLLM's _should_skip_metrics_for_invalid_key); a deployment's own 401 counts
            detail = r.extra.get("observe") if isinstance(r.extra, dict) else None
            if not isinstance(detail, Detail):
                detail = None
            attempts = detail is not None and detail.beyond_answer(r.deployment_id, r.outcome is _OK)
            team_alias = detail.team_alias if detail is not None and detail.team_alias else r.team_alias
            email = r.user_email
            ident: tuple[Any, ...] = (
                r.key_hash, r.key_alias, r.team_id, team_alias, r.user_id, r.end_user_id is None, r.model,
                r.deployment_id, r.status, r.outcome, r.request_route or r.route, r.error_type, r.cache_hit,
                r.ttft is None, attempts, r.cache_miss, email, r.error_class, r.org_id, r.org_alias,
                r.queue_time is None,
                r.usage_labels[4] if r.usage_labels is not None else None)
            if custom is not None:  # their values belong to the identity (and end every key, _counter / _hist)
                self._extra = extra = custom.values(r)
                ident = (*ident, extra)
            ident = (*ident, r.stream) if self._stream else ident
            cells = memo.get(ident)
            if cells is None:
                if len(memo) >= MAX_MEMO:
                    memo.clear()
                cells = memo[ident] = self._cells(r, team_alias, attempts, email)
            cells.total[0] += 1
            cells.legacy[0] += 1
            for cell in cells.calls:
                cell[0] += 1
            if cells.state is not None:
                state[cells.state[0]] = cells.state[1]
            if attempts:
                assert detail is not None
                self._calls([(a.deployment_id, a.status, a.error_type) for a in detail.attempts], cells)
            elif r.failed_attempts:
                self._calls(r.failed_attempts, cells)
            if r.fallbacks:
                self._fallback(r, detail, cells)
            if r.zero_cost is not None:  # billable usage priced at 0 (cost.zero_cost): rare, counted apart
                model_id, model, _base, provider, _group = self._dep(r.deployment_id)
                self._counter("litellm_zero_cost_requests", (
                    cells.labels[0], model, model_id, provider, r.zero_cost[0]))[0] += 1
            if cells.failed is not None:
                cells.failed[0] += 1
                continue
            latency = r.latency
            lat = cells.latency
            lat[bisect.bisect_left(bounds, latency)] += 1
            lat[-1] += latency
            queue, queued = cells.queue, r.queue_time
            if queue is not None and queued is not None:
                queue[bisect.bisect_left(bounds, queued)] += 1
                queue[-1] += queued
            prompt, completion = r.prompt_tokens, r.completion_tokens
            cells.input[0] += prompt
            cells.output[0] += completion
            cells.tokens[0] += prompt + completion
            cells.spend[0] += r.cost
            if cells.cache_hits is not None:  # LiteLLM's response-cache families (successes only, as its)
                cells.cache_hits[0] += 1
                if prompt + completion > 0:
                    assert cells.cached_tokens is not None
                    cells.cached_tokens[0] += prompt + completion
            elif cells.cache_misses is not None:
                cells.cache_misses[0] += 1
            if r.cache_read_tokens or r.cache_write_tokens:
                self._provider_cache(r, cells)
            u = r.usage_labels
            if u is not None and (u[0] or u[1] or u[2] or u[3]):
                self._details(u[:4], cells)
            if r.key_ratelimit is not None:  # the key's and team's limiter readings (prometheus_limits)
                self.key_limits.add(r.key_ratelimit, cells, r.start_time + latency)
            told = r.upstream_ratelimit
            if told is not None and cells.remaining is not None:  # read once per batch and series, below
                if latest is None:
                    latest = {}
                latest[cells.remaining] = (told, r.start_time + latency)
            api_h, over_h, ttft_h, per_h = cells.api, cells.overhead, cells.ttft, cells.per_token
            if api_h is None or over_h is None or per_h is None:
                continue  # no LLM API call was made (a cache hit, an answer without a deployment)
            overhead = r.overhead if r.overhead > 0.0 else 0.0
            api = latency - overhead
            api_h[bisect.bisect_left(bounds, api)] += 1
            api_h[-1] += api
            over_h[bisect.bisect_left(bounds, overhead)] += 1
            over_h[-1] += overhead
            ttft = r.api_ttft if r.api_ttft is not None else r.ttft  # from the answering call's start, as LiteLLM
            if ttft_h is not None and ttft is not None:
                ttft_h[bisect.bisect_left(bounds, ttft)] += 1
                ttft_h[-1] += ttft
            if completion > 0:
                per = api / completion
                per_h[bisect.bisect_left(DEFAULT_BUCKETS, per)] += 1
                per_h[-1] += per
        self._extra = ()
        if latest is not None:
            merge_remaining(self.provider_remaining, latest)

    def _cells(self, r: CompletionRecord, team_alias: str | None, attempts: bool,
               email: str | None = None) -> Cells:
        """The value cells of every series a record of this identity counts in (a memo miss)."""
        hk, alias = self._key(r.key_hash, r.key_alias)
        team, t_alias = self._team(r.team_id, team_alias)
        user = self._user(r.user_id)
        mail = self._email(r.user_id, email) if email else NONE
        end_user = NONE if r.end_user_id is None else OTHER
        org = self._key(r.org_id, r.org_alias, self._orgs)  # org_id, org_alias (LiteLLM 1.110's _org_label_metrics)
        requested = r.model if r.model in self._groups else OTHER
        model_id, model, api_base, provider, group = dep = self._dep(r.deployment_id)
        if dep is _UNKNOWN_DEP:  # no deployment answered (a cache hit, a refusal): the group asked for, if any
            group = r.model_group if r.model_group in self._groups else (OTHER if r.model_group else NONE)
        elif group not in self._groups:
            group = OTHER
        tier = r.usage_labels[4] if r.usage_labels is not None else None
        tier = NONE if tier is None else tier
        ok = r.outcome is _OK
        gone = r.outcome is _GONE
        code = _CLIENT_CLOSED if gone else r.status  # the client left: nginx's 499, as proxies log it
        status = _STATUS.get(code, OTHER)
        route = self._route(r.request_route or r.route)
        c = self._counter
        hist = self._hist
        cells = Cells(c("litellm_proxy_total_requests_metric", (
            end_user, hk, alias, requested, team, t_alias, user, status, mail, route, NONE, NONE, model_id, provider,
            *org, *((str(r.stream),) if self._stream else ()))))
        cells.labels = (requested, hk, alias, team, t_alias, model_id)
        if not attempts and r.deployment_id and not r.cache_hit and not gone:  # a client leaving is no failure
            cells.calls, cells.state = self._call_cells(r.deployment_id, 200 if ok else r.status, r.error_type,
                                                        cells.labels)
        if not ok:
            cells.legacy = c("litellm_llm_api_failed_requests_metric", (
                end_user, hk, alias, model, team, t_alias, user, model_id))
            cells.failed = c("litellm_proxy_failed_requests_metric", (
                end_user, hk, alias, requested, team, t_alias, user, mail, status,
                r.error_class or class_of(code, r.error_type, NONE if gone else provider), route, NONE, NONE,
                model_id, provider, *org))
            return cells
        cells.latency = hist("litellm_request_total_latency_metric", (
            group, end_user, hk, alias, requested, team, t_alias, user, model, model_id, provider, tier, *org))
        if r.queue_time is not None:
            cells.queue = hist("litellm_request_queue_time_seconds", (
                end_user, hk, alias, requested, team, t_alias, user, model, model_id, provider, *org))
        tokens = cells.token_labels = (end_user, hk, alias, model, team, t_alias, user, mail, requested, model_id,
                                       provider, *org)
        cells.input, cells.output, cells.tokens = (c(f"litellm_{n}_tokens_metric", tokens)
                                                   for n in ("input", "output", "total"))
        legacy = (end_user, hk, alias, model, team, t_alias, user, mail, NONE, NONE, requested, model_id, provider)
        cells.spend = c("litellm_spend_metric", (*legacy, tier, *org))
        cells.legacy = c("litellm_requests_metric", (*legacy, *org))
        cells.cache_labels = (model, hk, alias, team, t_alias, end_user, user, model_id, provider,
                              group if group in self._groups else (NONE if group == NONE else OTHER))
        if r.cache_hit:
            cells.cache_hits = c("litellm_cache_hits_metric", cells.cache_labels[:9])
            cells.cached_tokens = c("litellm_cached_tokens_metric", cells.cache_labels[:9])
        elif r.cache_miss:
            cells.cache_misses = c("litellm_cache_misses_metric", cells.cache_labels[:9])
        if dep is _UNKNOWN_DEP or r.cache_hit:
            return cells
        api_labels = (group, model, hk, alias, team, t_alias, requested, end_user, user, model_id, provider, tier, *org)
        cells.api = hist("litellm_llm_api_latency_metric", api_labels)
        if r.ttft is not None:
            cells.ttft = hist("litellm_llm_api_time_to_first_token_metric", api_labels)
        cells.remaining = (group, provider, api_base, model, hk, alias, model_id)
        cells.overhead = hist("litellm_overhead_latency_metric", cells.remaining)
        cells.per_token = hist("litellm_deployment_latency_per_output_token", (
            group, model, model_id, api_base, provider, hk, alias, team, t_alias, *org), DEFAULT_BUCKETS)
        return cells

    def _provider_cache(self, r: CompletionRecord, cells: Cells) -> None:
        """Provider prompt-cache tokens (read / written); their series exist once such tokens were seen."""
        if r.cache_read_tokens:
            if cells.cache_read is None:
                cells.cache_read = self._counter("litellm_provider_cache_read_input_tokens_metric", cells.cache_labels)
            cells.cache_read[0] += r.cache_read_tokens
        if r.cache_write_tokens:
            if cells.cache_write is None:
                cells.cache_write = self._counter("litellm_provider_cache_creation_input_tokens_metric",
                                                  cells.cache_labels)
            cells.cache_write[0] += r.cache_write_tokens
        self._details((0, 0, 0, 0, r.cache_read_tokens, r.cache_write_tokens), cells)  # LiteLLM 1.110's pair

    def _details(self, counts: tuple[int, ...], cells: Cells) -> None:
        """LiteLLM's sparse token-detail and media counters (:data:`DETAIL_FAMILIES`, in that order, for the
        first ``len(counts)`` of them): a series exists once its count was seen above 0."""
        found = cells.details
        for i, n in enumerate(counts):
            if isinstance(n, int) and n > 0:
                if found is None:
                    found = cells.details = [None] * len(DETAIL_FAMILIES)
                cell = found[i]
                if cell is None:
                    cell = found[i] = self._counter(DETAIL_FAMILIES[i], cells.token_labels[:None if i == 3 else -2])
                cell[0] += n

    def _call_cells(self, dep_id: str, status: int, error_type: str, labels: tuple[str, ...]
                    ) -> tuple[list[list[float]], tuple[str, int] | None]:
        """The counters one upstream call to ``dep_id`` adds to, and the deployment state it leaves."""
        requested, hk, alias, team, t_alias, _model_id = labels
        model_id, model, api_base, provider, group = self._dep(dep_id)
        if group not in self._groups and group != NONE:
            group = OTHER
        c = self._counter
        common = (group, requested, model, model_id, api_base, provider, hk, alias, team, t_alias, NONE, NONE)
        out = [c("litellm_deployment_total_requests", common)]
        ok = 200 <= status < 300
        if ok:
            out.append(c("litellm_deployment_success_responses", common))
        else:
            out.append(c("litellm_deployment_failure_responses", (
                group, requested, model, model_id, api_base, provider, _STATUS.get(status, OTHER),
                class_of(status, error_type, provider), hk, alias, team, t_alias, NONE, NONE)))
        return out, ((model_id, 0 if ok else 1) if model_id in self._deps else None)

    def _calls(self, calls: Sequence[tuple[str, int, str]], cells: Cells) -> None:
        """Upstream attempts ``(deployment id, status, error type)``: every one a Detail lists (retries and
        fallbacks included), else the failed ones the record lists (no Detail was captured), each a call to
        its deployment, as LiteLLM's failure event counts it (the answering one is counted with the record)."""
        for dep_id, status, error_type in calls:
            counted, state = self._call_cells(dep_id, status or 599, error_type, cells.labels)
            for cell in counted:
                cell[0] += 1
            if state is not None:
                self.dep_state[state[0]] = state[1]

    def _fallback(self, r: CompletionRecord, detail: Detail | None, cells: Cells) -> None:
        """A request that fell back: success or failure by its outcome, the first failed attempt's status."""
        requested, hk, alias, team, t_alias, model_id = cells.labels
        group = r.model_group
        fallback = group if group in self._groups else (NONE if not group else OTHER)
        status, cls = NONE, NONE
        if detail is not None:
            for a in detail.attempts:
                if not 200 <= a.status < 300:
                    provider = self._dep(a.deployment_id)[3]
                    status, cls = _STATUS.get(a.status or 599, OTHER), class_of(a.status, a.error_type, provider)
                    break
        elif r.failed_attempts:
            dep_id, code, error_type = r.failed_attempts[0]
            status, cls = _STATUS.get(code or 599, OTHER), class_of(code, error_type, self._dep(dep_id)[3])
        name = "litellm_deployment_successful_fallbacks" if r.outcome is _OK else "litellm_deployment_failed_fallbacks"
        self._counter(name, (requested, fallback, hk, alias, team, t_alias, status, cls, model_id))[0] += 1

    def _counter(self, name: str, key: tuple[str, ...]) -> list[float]:
        """The value cell of a counter series (created at 0; past MAX_SERIES the all-``other`` series)."""
        d = self.counters[name]
        if self._extra:
            key = (*key, *self._extra)
        cell = d.get(key)
        if cell is None:
            if len(d) >= self.max_series:
                key = (OTHER,) * len(key)
                cell = d.get(key)
            if cell is None:
                cell = d[key] = [0.0]
        return cell

    def _hist(self, name: str, key: tuple[str, ...], buckets: tuple[float, ...] | None = None) -> list[float]:
        """A histogram series' cells: one count per bucket, then ``+Inf``'s, then the sum."""
        d = self.histograms[name]
        if self._extra:
            key = (*key, *self._extra)
        cell = d.get(key)
        if cell is None:
            if len(d) >= self.max_series:
                key = (OTHER,) * len(key)
                cell = d.get(key)
            if cell is None:
                cell = d[key] = [0.0] * (len(self.buckets if buckets is None else buckets) + 2)
        return cell

    # -- pushed by other parts ----------------------------------------------------------------------------

    def cooled_down(self, dep_id: str, status: int) -> None:
        """The router cooled ``dep_id`` down after a failure with ``status`` (off the request path's fast lane:
        cooldowns are rare)."""
        model_id, model, api_base, provider, _group = self._dep(dep_id)
        self._counter("litellm_deployment_cooled_down",
                      (model, model_id, api_base, provider, _STATUS.get(status, OTHER)))[0] += 1

    def set_budget(self, kind: str, ident: str, alias: str | None, max_budget: float, spend: float,
                   reset_at: float | None = None, now: float | None = None) -> None:
        """A budget's figures (``kind``: ``team``, ``key`` (ident = key hash) or ``user``), as its owner knows
        them; ``reset_at`` is the period's end (epoch seconds), ``None`` for a budget without a period."""
        if kind == "team":
            ident, label_alias = self._team(ident, alias)
        elif kind == "key":
            ident, label_alias = self._key(ident, alias)
        elif kind == "user":
            ident, label_alias = self._user(ident), NONE
        elif kind == "organization":
            ident, label_alias = self._key(ident, alias, self._orgs)
        else:
            raise ValueError(f"unknown budget kind {kind!r}")
        slot = (kind, ident)
        was = self._budget_alias.get(slot)
        if was != label_alias:  # a renamed key or team: its series moves to the new alias, none is left behind
            if was is not None:
                self.budgets.pop((kind, ident, was), None)
            self._budget_alias[slot] = label_alias
        self.budgets[(kind, ident, label_alias)] = [
            float(max_budget), float(spend), -1.0 if reset_at is None else float(reset_at),
            time.time() if now is None else now]

    # -- snapshot and render ------------------------------------------------------------------------------

    def gauges(self) -> dict[str, list[list[Any]]]:
        """The gauges read from the router now (and each deployment's last-call state)."""
        out: dict[str, list[list[Any]]] = {}
        state: dict[str, int] = dict(self.dep_state)
        router = self.router_source() if self.router_source is not None else None
        if router is not None:
            inflight = 0
            remaining_r: list[list[Any]] = []
            remaining_t: list[list[Any]] = []
            # LiteLLM's fallback: a deployment's own rpm / tpm left, where its upstream's headers said nothing
            told_r = {k[6] for k, v in self.provider_remaining.items() if v[0] is not None}
            told_t = {k[6] for k, v in self.provider_remaining.items() if v[1] is not None}
            now = router.clock()
            for group in router.groups.values():
                for t in group.targets:
                    s = t.stats
                    inflight += s.inflight
                    model_id, model, api_base, provider, group_name = self._dep(s.id)
                    if model_id not in self._deps:
                        continue
                    if s.cooldown_until > now:
                        state[model_id] = 2
                    else:
                        state.setdefault(model_id, 0)
                    labels = [group_name if group_name in self._groups else OTHER, provider, api_base, model, NONE,
                              NONE, model_id]
                    if s.rpm and model_id not in told_r:
                        remaining_r.append([*labels, s.rpm_left])
                    if s.tpm and model_id not in told_t:
                        remaining_t.append([*labels, s.tpm_left])
            out["litellm_in_flight_requests"] = [[inflight]]
            out["litellm_remaining_requests_metric"] = remaining_r
            out["litellm_remaining_tokens_metric"] = remaining_t
        if self.inflight_source is not None:
            out["litellm_in_flight_requests"] = [[self.inflight_source()]]
        out["litellm_spend_capture_rate"] = [[p, r] for p, r in self.capture_rates.items()]
        adm = self.admission_source() if self.admission_source is not None else None  # its slots taken, waiters
        out["litellm_admission_admitted_requests"] = [[adm.admitted if adm is not None else 0]]  # 0 as LiteLLM's
        out["litellm_admission_queued_requests"] = [[len(adm.waiting) if adm is not None else 0]]  # when off
        out["litellm_deployment_state"] = [[*self._dep_labels(d), v] for d, v in state.items()]
        out["litellm_deployment_rpm_limit"] = [[*labels, rpm] for labels, rpm, _tpm in self._limits if rpm]
        out["litellm_deployment_tpm_limit"] = [[*labels, tpm] for labels, _rpm, tpm in self._limits if tpm]
        return out

    def _dep_labels(self, dep_id: str) -> tuple[str, str, str, str]:
        model_id, model, api_base, provider, _group = self._dep(dep_id)
        return model, model_id, api_base, provider

    def set_counts(self, users: int, teams: int) -> None:
        """The store's users and teams (the gateway reads them at start, on changes and every few minutes):
        LiteLLM's ``litellm_total_users`` and ``litellm_teams_count``, absent without a store."""
        self.counts = (users, teams)

    def set_team_members(self, teams: list[tuple[str, str, int]]) -> None:
        """Each team's member count (read with :meth:`set_counts`): LiteLLM's ``litellm_team_members_metric``
        (labels ``team``, ``team_alias``; at most :data:`MAX_IDENTITIES` teams, the store's own ids and
        aliases, never a client's value)."""
        self.team_members = teams[:self.MAX_TEAMS]

    def snapshot(self) -> dict[str, Any]:
        """This worker's part of ``Metrics.snapshot()`` (plain JSON)."""
        ttl = self.ttl
        if ttl is not None and ttl.due():  # prometheus_metrics_ttl_seconds: idle series go first
            if ttl.sweep((*self.counters.items(), *self.histograms.items())):
                self._memo = {}  # it holds cells of series that are gone: a record of theirs makes them anew
            ttl.stale(self.provider_remaining)
            ttl.stale(self.key_limits.latest)
        out: dict[str, Any] = {
            "c": {n: [[*k, v[0]] for k, v in d.items()] for n, d in self.counters.items() if d},
            "h": {n: [[*k, *sparse(v)] for k, v in d.items()] for n, d in self.histograms.items() if d},
            "g": self.gauges(),
            "b": [[*k, *v] for k, v in self.budgets.items()],
        }
        adm = self.admission_source() if self.admission_source is not None else None
        if adm is not None and any(adm.rejected.values()):
            out["c"]["litellm_admission_rejected_requests"] = [[r, n] for r, n in adm.rejected.items() if n]
        if self.provider_remaining:
            out["r"] = [[*k, *v] for k, v in self.provider_remaining.items()]
        if self.key_limits.latest:
            out["kl"] = self.key_limits.rows()
        if self.counts is not None:
            out["n"] = list(self.counts)
        if self.team_members is not None:
            out["tm"] = [list(t) for t in self.team_members]
        if self.custom is not None:
            out["cw"] = len(self.custom.names)  # the custom labels' values end each histogram row's labels
        if self.buckets is not LATENCY_BUCKETS:
            out["lb"] = list(self.buckets)  # prometheus_latency_buckets: what the rows' bucket indices mean
        return out

    def render(self, parts: Sequence[dict[str, Any]], now: float | None = None) -> list[str]:
        """Prometheus text lines for the merged ``parts`` (this worker's snapshot and the other workers')."""
        return render_text(parts, time.time() if now is None else now, self.view)

