"""The runtime snapshot: everything a request needs that comes from the config, built once, never mutated.

A :class:`Runtime` holds the config it was built from, its ``generation`` (0 at startup, +1 per reload),
each deployment's price table (``cost.Pricer``), the router (model groups, priority tiers, aliases,
wildcards, fallbacks), the principal resolver (master key and config keys, with its cache), the body
limits and server options, and a memo of per-deployment timeouts. The pipeline reads ``Pipeline.runtime``
once when a request arrives (``Exchange.rt``) and the request keeps that snapshot to its end: a reload
swaps the attribute (one assignment, atomic for the event loop) and requests and streams in flight finish on
the snapshot they started with.

What survives a reload (``Runtime.build(config, ..., previous=old)``): per-deployment stats (latency and
TTFT EWMAs, cooldowns, in-flight counts) by deployment id — the same objects, so a lease taken on the old
snapshot settles on the stats the new one routes by — and the limiter with its buckets when its settings
did not change (``Router(previous=...)``). The transport (and so its connection pools, keyed by upstream
origin) and the metrics live outside the snapshot: they are the gateway's, kept across reloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relaygate.auth import PrincipalResolver, StoreKeys, access_groups
from relaygate.auth.access import RequiredFields, customer_header
from relaygate.auth.targets import team_defaults
from relaygate.catalog import refresh_default
from relaygate.config.litellm_general import DEFAULT_MODELS
from relaygate.config.model import Config
from relaygate.core.baggage import TagMapper, no_store
from relaygate.cost import Pricer
from relaygate.cost.unpriced import UnpricedGuard
from relaygate.http.body import BodyLimits
from relaygate.http.respond import VERSION
from relaygate.observe.capture import Observer
from relaygate.observe.prometheus import enabled as prometheus_enabled
from relaygate.router import Router, Target
from relaygate.upstream.base import Timeouts

BeforeRoute = Callable[[Any], Awaitable[None] | None]
"""A ``before_route`` hook: ``hook(exchange)`` raises a ``GatewayError`` to refuse, and returns None when it
decided at once or an awaitable to await for the rest (an ``async def`` hook always returns one): the budget
check's common case then costs no coroutine."""


class Runtime:
    __slots__ = ("config", "generation", "router", "principals", "max_body", "body_limits", "keepalive",
                 "watch_unary", "allow_private_media", "before_route", "answer_headers", "prices", "cache", "observer",
                 "store_prompts", "key_observer", "ensure_targets", "max_parallel", "user_header", "forward_headers",
                 "forward_org", "track_end_users", "model_override", "track_remaining", "_timeouts", "ua_tags",
                 "tag_headers", "forward_groups", "key_metadata", "check_schemas", "stream_usage", "requester_ip",
                 "trusted_proxies", "tag_mapper")

    def __init__(self, config: Config, router: Router, principals: PrincipalResolver, generation: int = 0,
                 before_route: tuple[BeforeRoute, ...] = (), metrics: Any = None) -> None:
        self.config = config
        self.generation = generation
        self.router = router
        self.principals = principals
        s = config.server
        self.max_body = s.max_request_body_bytes
        self.body_limits = BodyLimits(s.max_request_body_bytes, s.body_read_timeout, s.min_body_rate)
        self.keepalive = s.stream_keepalive_interval
        self.watch_unary = s.cancel_on_disconnect
        self.allow_private_media = s.allow_private_media_urls
        self.max_parallel = config.general.global_max_parallel_requests
        """``general_settings.global_max_parallel_requests`` (``Pipeline.inflight``); None: no bound."""
        g = config.general
        self.forward_headers = g.forward_client_headers_to_llm_api
        """``forward_client_headers_to_llm_api``: the client's headers go on to the provider (never the key's)."""
        self.forward_org = g.forward_openai_org_id
        groups = g.model_group_settings.get("forward_client_headers_to_llm_api")
        self.forward_groups: tuple[str, ...] | None = tuple(groups) if groups and not self.forward_headers else None
        """``model_group_settings.forward_client_headers_to_llm_api``: the model groups whose calls carry the
        client's headers (``pipeline.overrides.forwards_for``); None: none beyond the global switch."""
        overrides = {route: model for setting, routes in DEFAULT_MODELS.items() if (model := getattr(g, setting))
                     for route in routes}
        self.model_override: dict[str, str] | None = overrides or None
        """Route -> the model its calls are served by (``completion_model``, ``embedding_model`` ...); None."""
        self.track_end_users = not g.disable_end_user_cost_tracking
        """Completion records name the customer (spend logs, counters); off with
        ``disable_end_user_cost_tracking``."""
        view = config.observe.prometheus_view if config.observe is not None else None
        self.key_metadata = view is not None and bool(view.metadata_labels)
        """Records carry the key's metadata (``custom_prometheus_metadata_labels``)."""
        self.stream_usage = g.always_include_stream_usage
        """LiteLLM's ``always_include_stream_usage`` (None: its default; ``providers.openai``)."""
        self.check_schemas = g.enable_json_schema_validation
        """``enable_json_schema_validation``: chat answers checked against their request's schema (``pipeline.
        schema_check``; a request's own field can turn it on or off)."""
        self.ua_tags = not g.disable_add_user_agent_to_request_tags
        """Records tag each request with its ``User-Agent`` (LiteLLM's default; ``Overrides.request_tags``)."""
        self.tag_headers = {h.strip().lower().encode("latin-1"): h.strip() for h in g.extra_spend_tag_headers
                            if h.strip()} or None
        """``extra_spend_tag_headers``: lower-case header name -> the configured name its tags start with."""
        self.tag_mapper = TagMapper(g.request_tag_mappings, no_store) if g.request_tag_mappings else None
        """``request_tag_mappings``: the request's ``baggage`` entries made tags (``core.baggage``); the
        gateway gives it the budgeted tags when it has a store. None: no rules, nothing read."""
        self.user_header = customer_header(g)
        """The header naming the customer (``general_settings.user_header_name`` / ``user_header_mappings``),
        lower-case; None: only ``x-litellm-end-user-id`` / ``x-litellm-customer-id`` and the body's ``user``."""
        if g.enforce_user_param or g.enforced_params:  # the fields every LLM call must carry (auth.access)
            before_route = (RequiredFields(g.enforce_user_param, g.enforced_params), *before_route)
        self.before_route = before_route
        """Hooks run after authorization, before routing (a cache lookup, a budget check): none by default,
        and then the stage costs one tuple test."""
        self.cache: Any = None
        """The worker's response cache (``cache.stage.ResponseCache``) when the config turns caching on; it
        is the gateway's (its entries outlive a reload) and set on each snapshot it serves."""
        self.track_remaining = prometheus_enabled(config)
        """The answering upstream's remaining requests and tokens go into each completion record (for
        LiteLLM's ``litellm_remaining_*_metric``): only with Prometheus on."""
        self.store_prompts = (g.store_prompts_in_spend_logs and not g.disable_spend_logs and not g.disable_spend_updates
                              and config.server.spend_tracking)
        """Spend-log rows keep the request and the answer (``sinks.prompts``): every exchange is captured."""
        self.observer = Observer.of(config.observe, prompts=self.store_prompts)
        """Whether (and how) every exchange records a Detail for exporters or the spend logs
        (``observe.capture``); ``None`` (nothing needs one): the pipeline captures only for keys with their own
        logging targets, through :attr:`key_observer`."""
        self.key_observer = Observer(config.observe) if config.observe is not None else None
        """The observer of an exchange captured only for its key's logging targets (the config's
        ``turn_off_message_logging`` holds for them too); ``None``: nothing configured."""
        self.ensure_targets: Callable[[Any], None] | None = None
        """Makes sure a key's own logging targets have a sink (``observe.Exporters.ensure_targets``; set by the
        gateway on every snapshot)."""
        self._timeouts: dict[tuple[str, bool], Timeouts] = {}
        self.trusted_proxies = g.trusted_networks
        """``trusted_proxy_ranges``: the proxies whose ``X-Forwarded-For`` is believed (``auth.access``)."""
        self.requester_ip = 0 if g.disable_requester_ip_address_logging else 2 if (
            g.use_x_forwarded_for or self.trusted_proxies) else 1
        """Records carry the client's address (LiteLLM's ``requester_ip_address``): 0 no, 1 the peer's, 2 the
        proxy's ``X-Forwarded-For`` hop (``use_x_forwarded_for``, ``trusted_proxy_ranges``)."""
        self.prices = Pricer(config, metrics=metrics)
        """Each deployment's price table, built once per snapshot (``relaygate.cost``)."""
        if g.block_requests_for_models_without_pricing:  # LiteLLM's setting: an unpriced model group is refused
            self.before_route = (UnpricedGuard(self.prices), *self.before_route)
        self.answer_headers: tuple[tuple[bytes, bytes], ...] = (
            (b"x-litellm-version", VERSION), (b"x-litellm-max-fallbacks", b"%d" % config.router.max_fallbacks))
        """Headers every routed answer carries that only the config decides, encoded once."""

    @classmethod
    def build(cls, config: Config, metrics: Any = None, previous: Runtime | None = None,
              generation: int | None = None, store: Any = None, shared: Any = None) -> Runtime:
        """A snapshot of ``config``; with ``previous``, deployment stats and the limiter carry over.
        ``generation`` defaults to the previous one's + 1 (0 without one). With ``store`` (an open
        ``relaygate.store.Store``), keys are looked up in the database after the config's."""
        if previous is not None:
            refresh_default()  # a reload reads a changed cost-map file (LITELLM_MODEL_COST_MAP_URL) again
        router = Router(config, metrics=metrics, previous=previous.router if previous is not None else None)
        if generation is None:
            generation = previous.generation + 1 if previous is not None else 0
        return cls(config, router, principals_for(config, store, shared), generation, metrics=metrics)

    def use_store(self, store: Any, shared: Any = None) -> None:
        """Look keys up in ``store`` from now on (the worker opened it after building this snapshot, before
        serving), through ``shared`` (``auth.shared.SharedKeys``: Redis) first when given; the resolver is
        replaced, with empty caches."""
        self.principals = principals_for(self.config, store, shared)

    def set_blocked_customers(self, ids: frozenset[str]) -> None:
        """Refuse these customers (``auth.store_keys``): the resolver checks their headers, and a
        ``before_route`` hook the body's ``user`` field; with none, neither costs anything."""
        principals = self.principals
        if principals.blocked_customers == ids:
            return
        principals.set_blocked_customers(ids)
        hook = principals.check_customer_body
        hooks = tuple(h for h in self.before_route if h != hook)
        self.before_route = (*hooks, hook) if ids else hooks

    def timeouts(self, target: Target, stream: bool, override: float | None) -> Timeouts:
        """The deployment's timeouts; a client's ``override`` (validated by ``Overrides``) only shortens them."""
        key = (target.dep.id, stream)
        t = self._timeouts.get(key) if override is None else None
        if t is not None:
            return t
        dep, r, s = target.dep, self.config.router, self.config.server
        if stream:
            total = dep.stream_timeout or r.stream_timeout or dep.timeout or r.timeout or s.request_timeout
        else:
            total = dep.timeout or r.timeout or s.request_timeout
        if override is not None and override < total:
            total = override
        first_byte = min(s.first_byte_timeout, total) if s.first_byte_timeout else total
        idle = min(s.idle_timeout, total) if s.idle_timeout else total
        t = Timeouts(connect=min(s.connect_timeout, total), first_byte=first_byte, idle=idle,
                     total=None if stream else total)
        if override is None:
            self._timeouts[key] = t
        return t

    def describe(self) -> dict[str, Any]:
        """What ``/config/reload`` answers: the generation and what it serves."""
        return {"generation": self.generation, "source": self.config.source,
                "model_groups": len(self.router.groups), "deployments": len(self.config.deployments),
                "keys": len(self.config.keys)}


def principals_for(config: Config, store: Any = None, shared: Any = None) -> PrincipalResolver:
    """The resolver of ``config``: its master key and keys, then ``store``'s keys when there is a store
    (through the Redis layer ``shared`` first, when given)."""
    lookup = StoreKeys(store, access_groups(config), shared, team_defaults(config.general.default_team_settings)) \
        if store is not None else None
    return PrincipalResolver.from_config(config, lookup)
