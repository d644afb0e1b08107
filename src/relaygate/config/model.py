"""The typed configuration every part of relaygate reads, whatever file it came from.

Both the native TOML file and an unchanged LiteLLM ``config.yaml`` are translated into :class:`Config`.
The structs are frozen-by-convention msgspec Structs: decoding is done once at startup (per worker) and
the request path only reads them. Defaults follow LiteLLM's proxy where LiteLLM has a setting of the
same meaning, so a LiteLLM config behaves the same under relaygate.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from relaygate.config.cache import CacheSettings
from relaygate.config.cost_settings import check_discounts, check_margins, check_stored
from relaygate.config.key_policy import KeyPolicy
from relaygate.config.litellm_general import CaptureRateCheck, metadata_fields, size_bytes
from relaygate.config.observe import ObserveSettings
from relaygate.core.access import (
    Network,
    check_ui_access_mode,
    header_name,
    parse_allowed_ips,
    parse_networks,
    parse_required_fields,
)
from relaygate.core.baggage import TagMapping, check_mappings

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
"""A deployment's limits, timeouts and weights: a negative one is a config error naming it (it broke the router's
build, a 500 on ``/model/new`` and every later sync of the stored models). ``cooldown_time`` is checked by
``loader.validate``, with NaN and infinity."""


class Deployment(msgspec.Struct, kw_only=True):
    """One upstream deployment of a model group (LiteLLM: one entry of ``model_list``)."""

    model_name: str
    """The public name clients ask for (the model group); may hold ``*`` wildcards."""
    model: str
    """``provider/upstream_model`` as LiteLLM spells it (``openai/gpt-4o``, ``azure/my-deploy``)."""
    provider: str
    upstream_model: str
    id: str
    api_key: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    organization: str | None = None
    rpm: NonNegInt | None = None
    tpm: NonNegInt | None = None
    max_parallel_requests: NonNegInt | None = None
    timeout: NonNegFloat | None = None
    stream_timeout: NonNegFloat | None = None
    weight: NonNegFloat | None = None
    order: int | None = None
    max_retries: NonNegInt | None = None
    num_retries: NonNegInt | None = None
    """Retries of a failed call to this deployment's group when the request sets none (LiteLLM:
    ``litellm_params.num_retries``; header > body > this > ``router_settings.num_retries``)."""
    cooldown_time: float | None = None
    """Seconds this deployment stays cooled down (LiteLLM: wins over ``Retry-After`` and the router's)."""
    extra: dict[str, Any] = {}
    """Other ``litellm_params`` (provider options such as ``aws_region_name`` and default request params)."""
    model_info: dict[str, Any] = {}
    """As written, plus the prices given in ``litellm_params`` (LiteLLM copies them over)."""
    costs: dict[str, float] = {}
    """Prices in USD per unit by LiteLLM's key (``input_cost_per_token``, ``output_cost_per_second``,
    ``cache_read_input_token_cost``, ...) from ``litellm_params`` over ``model_info``; never sent upstream."""
    access_groups: list[str] = []
    """``model_info.access_groups``: a key or team whose ``models`` names one of these may use this model."""
    tags: list[str] = []
    """``litellm_params.tags``: with ``router_settings.enable_tag_filtering``, requests with tags go only to
    deployments sharing one (else to those tagged ``default``)."""
    max_budget: float | None = None
    """``litellm_params.max_budget``: USD this deployment may spend per ``budget_duration`` before routing
    skips it (LiteLLM's deployment budget; both fields are needed, else neither is kept)."""
    budget_duration: str | None = None
    """``litellm_params.budget_duration``: the deployment budget's period (``30s``, ``1h``, ``1d``, ``1mo``)."""
    use_in_pass_through: bool = False
    """``litellm_params.use_in_pass_through``: this deployment's credentials (and base URL) serve its
    provider's pass-through route (``/anthropic/*``, ``/openai/*``, ...; ``relaygate.passthrough``)."""
    where: str = ""
    """The entry it was declared by, for messages: ``model_list[2]``, ``models.yaml: model_list[0]``."""

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.model_name


class ProviderBudget(msgspec.Struct, kw_only=True):
    """One entry of ``router_settings.provider_budget_config`` (LiteLLM's ``GenericBudgetInfo``)."""

    budget_limit: float
    """USD the provider's deployments may spend per ``time_period`` before routing skips them."""
    time_period: str
    """``30s``, ``10m``, ``24h``, ``1d``, ``7d``, ``1mo``: periods follow each other from the Unix epoch."""


class RouterSettings(msgspec.Struct, kw_only=True):
    """``router_settings`` (and the overlapping ``litellm_settings``) of LiteLLM."""

    routing_strategy: str = "simple-shuffle"
    default_max_parallel_requests: int | None = None
    """LiteLLM's: requests in flight at once per deployment that sets no ``max_parallel_requests``."""
    num_retries: int = 0
    timeout: float | None = None
    stream_timeout: float | None = None
    retry_after: float = 0.0
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    disable_cooldowns: bool = False
    fallbacks: list[dict[str, list[str]]] = []
    context_window_fallbacks: list[dict[str, list[str]]] = []
    content_policy_fallbacks: list[dict[str, list[str]]] = []
    default_fallbacks: list[str] = []
    max_fallbacks: int = 5
    retry_policy: dict[str, int] = {}
    allowed_fails_policy: dict[str, int] = {}
    model_group_alias: dict[str, str] = {}
    hidden_aliases: list[str] = []
    """Aliases of ``model_group_alias`` written ``{model: ..., hidden: true}``: served, not listed."""
    enable_pre_call_checks: bool = False
    enable_tag_filtering: bool = False
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None
    redis_url: str | None = None
    redis_db: int | None = None
    """The database of ``redis_host`` (LiteLLM's ``redis_db``; a URL names its own)."""
    latency_ewma_alpha: float = 0.2
    latency_exploration: float = 0.05
    on_redis_failure: str = "local"
    """``local``: keep serving with in-process limits when Redis is down; ``reject``: answer 503."""
    redis_timeout: float = 0.5
    """Seconds a limiter call to Redis may take before Redis counts as down (then ``on_redis_failure``)."""
    provider_budget_config: dict[str, ProviderBudget] | None = None
    """LiteLLM's provider budgets by provider name (``openai``, ``azure``, ...): a provider over its budget
    in the current period is skipped by routing (``relaygate.budgets.providers``)."""
    tag_budget_config: dict[str, ProviderBudget] | None = None
    """``litellm_settings.tag_budget_config`` (LiteLLM's router tag budgets: ``{tag: {max_budget,
    budget_duration}}``): a request carrying a tag over its budget is refused (``budgets.providers``)."""


class ServerSettings(msgspec.Struct, kw_only=True):
    include_cost_in_streaming_usage: bool = False
    """LiteLLM's ``litellm_settings.include_cost_in_streaming_usage``: a stream's usage chunk carries
    ``usage.cost`` (USD)."""
    host: str = "0.0.0.0"
    port: int = 4000
    workers: int = 0
    """0 means one worker per core."""
    log_level: str = "info"
    max_request_body_bytes: int = 32 * 1024 * 1024
    stream_keepalive_interval: float = 15.0
    """Seconds between SSE comment keepalives while a stream waits for its first token; 0 disables."""
    transport: str = "auto"
    """``h1`` (keep-alive asyncio.Protocol pool), ``aiohttp`` (fallback: proxies, anything exotic), ``auto``."""
    connect_timeout: float = 10.0
    first_byte_timeout: float | None = None
    """Defaults to the request timeout."""
    idle_timeout: float | None = None
    """Max gap between two body chunks of a stream; defaults to the stream timeout."""
    request_timeout: float = 600.0
    max_connections_per_upstream: int = 0
    """0: unbounded."""
    keepalive_expiry: float = 30.0
    http_proxy: str | None = None
    allow_private_media_urls: bool = False
    """Let image URLs that adapters must inline resolve to loopback/private addresses (off: SSRF guard)."""
    cancel_on_disconnect: bool = True
    """Also cancel non-stream upstream calls when the client disconnects (streams always are); costs ~4%."""
    batch_scheduling: bool = True
    """Run each worker's threads under Linux's ``SCHED_BATCH`` policy (no wakeup preemption between Granian's
    thread and the event loop's: ~5 fewer context switches per request at load); read at worker start
    (``relaygate.http.sched``)."""
    body_read_timeout: float = 30.0
    """Seconds a request body may take to arrive, plus one second per ``min_body_rate`` bytes received."""
    min_body_rate: int = 4096
    """Bytes per second a slow client must keep up past ``body_read_timeout`` (slow-body guard); 0: none."""
    backlog: int = 2048
    """Listen queue length (the kernel caps it at ``net.core.somaxconn``)."""
    max_connections: int = 0
    """Open client connections per worker, idle ones included; 0: the process's file limit less a reserve."""
    header_read_timeout: float = 10.0
    """Seconds a connection may wait before its request head is in: the first request and between two."""
    ssl_verify: bool | str = True
    """Upstream TLS (LiteLLM's ``litellm_settings.ssl_verify`` / ``SSL_VERIFY``): verify against the system's CAs
    (true), a CA bundle file (a path), or not at all (false: warned about at startup)."""
    ssl_certificate: str | None = None
    """A client certificate (PEM, with its key) presented to upstreams (LiteLLM's ``SSL_CERTIFICATE``)."""
    force_ipv4: bool = False
    """Connect to upstreams (and fetch media for them) over IPv4 only (LiteLLM's ``litellm_settings.force_ipv4``):
    for hosts whose names resolve to IPv6 addresses this network cannot reach."""
    max_upstream_response_bytes: int = 128 * 1024 * 1024
    """Largest upstream answer read whole (non-stream); larger ones are a 502. Streams are not capped."""
    watch_config: bool = False
    """Reload the config when its file changes (mtime or size), as on SIGHUP; no restart, streams go on."""
    reload_poll_interval: float = 1.0
    """Seconds between two checks for a reload (SIGHUP's generation file, the file with ``watch_config``)."""
    cors_allow_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """Origins browsers may call from (LiteLLM: ``cors_allow_origins``, ``LITELLM_CORS_ORIGINS``): ``*`` any,
    else exact ``scheme://host[:port]`` values; ``[]`` turns CORS off (no preflight answered, no headers)."""
    cors_allow_credentials: bool | None = None
    """``Access-Control-Allow-Credentials: true`` (LiteLLM: ``LITELLM_CORS_ALLOW_CREDENTIALS``); unset: on for
    an explicit origin list, off with ``*`` (LiteLLM's rule). With ``*`` and on, the origin is echoed."""
    cors_allow_methods: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """Methods a preflight allows; ``*``: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT."""
    cors_allow_headers: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """Request headers a preflight allows (the CORS-safelisted ones always); ``*``: whatever is asked."""
    cors_expose_headers: list[str] = []
    """Response headers browser code may read beyond the safelisted ones (``x-litellm-call-id``, ...)."""
    cors_max_age: int = 600
    """Seconds a browser may cache a preflight answer (``Access-Control-Max-Age``)."""
    import_litellm: bool = True
    """On the first start on a PostgreSQL database that holds LiteLLM's tables (``DATABASE_URL`` unchanged in a
    swap-in), import its keys, teams, users ... when the store has no key yet (``store.importer``)."""
    ignore_guardrails: bool = False
    """Serve a LiteLLM config whose ``guardrails`` relaygate does not run (else a config error): the operator
    says requests may reach the providers without them."""
    ignore_custom_auth: bool = False
    """Serve a LiteLLM config whose ``custom_auth`` or ``admin_only_routes`` relaygate does not run (else a
    config error): the operator says the gateway's own key checks are enough."""
    embedded_database: bool = True
    """Without ``general_settings.database_url`` / ``DATABASE_URL``: keep keys, teams, users ... in a SQLite
    file beside the config (``database_file``); false: no database (keys come from the config only)."""
    database_file: str = "relaygate.db"
    """The embedded SQLite file, relative to the config file's directory (or absolute)."""
    spend_tracking: bool = True
    """False: no spend sink at all (no rows, no counters, keys' ``spend`` never moves; budgets bind only on
    each worker's own tallies). For a gateway whose spend is tracked elsewhere; LiteLLM has no such switch
    (its ``disable_spend_logs`` keeps the counters, as relaygate's does)."""
    responses_retention: str | None = "30d"
    """How long the Responses API's stored responses (``store``, true by default as OpenAI's) are kept for
    ``previous_response_id`` and ``GET /v1/responses/{id}`` (``30d``, ``12h``; OpenAI keeps them 30 days);
    None keeps them until deleted."""
    database_pool_size: int = 5
    """PostgreSQL connections per worker (asyncpg pool); LiteLLM's ``database_connection_pool_limit``."""
    database_pool_timeout: float | None = None
    """Seconds a query waits for a free pooled connection (None: as long as it takes); LiteLLM's
    ``database_connection_timeout``."""
    database_connect_timeout: float = 5.0
    """Seconds to reach the database at start-up before ``serve`` gives up with an error."""


class PassThroughEndpoint(msgspec.Struct, kw_only=True):
    """One entry of ``general_settings.pass_through_endpoints`` (LiteLLM's ``PassThroughGenericEndpoint``):
    requests to ``path`` are forwarded to ``target`` as they are (``relaygate.passthrough``)."""

    path: str
    """The gateway route (``/bria``, ``/v1/rerank``): a literal path starting with ``/``."""
    target: str
    """The absolute ``http(s)://`` URL requests are forwarded to (its query is kept, the client's added)."""
    headers: dict[str, str] = {}
    """Headers sent to the target with every request (``os.environ/NAME`` resolved, also inside a value:
    ``Bearer os.environ/KEY``); they win over the client's."""
    forward_headers: bool = False
    """Also forward the client's headers (never its credentials, hop-by-hop headers or cookies)."""
    include_subpath: bool = False
    """``path/<anything>`` is forwarded to ``target/<anything>`` too (else only ``path`` itself)."""
    auth: bool = False
    """Require a gateway key (master or virtual key; budgets and ``allowed_routes`` apply). Off by default,
    as LiteLLM: anyone reaching the gateway may call the target with its ``headers``."""
    cost_per_request: float = 0.0
    """USD charged per request (to the key, its team and user, and the spend logs)."""
    id: str | None = None
    """LiteLLM's optional identifier (kept, not used)."""


TEAM_DEFAULTS = ("organization_id", "max_budget", "budget_duration", "tpm_limit", "rpm_limit",
                 "team_member_permissions")
"""The team fields ``default_team_params`` fills in (LiteLLM's ``/team/new``; its ``access_group_ids`` have no
counterpart here)."""


def check_team_defaults(p: dict[str, Any]) -> None:
    """``default_team_params``' values of the right types (``ValueError`` naming the field)."""
    for k in ("max_budget", "tpm_limit", "rpm_limit"):
        v = p.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise ValueError(f"default_team_params.{k}: expected a number >= 0, got {v!r}")
    for k in ("organization_id", "budget_duration"):
        if p.get(k) is not None and not isinstance(p[k], str):
            raise ValueError(f"default_team_params.{k}: expected a string")
    m = re.match(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$", p.get("budget_duration") or "1d")  # budgets.periods' forms
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"default_team_params.budget_duration: {p['budget_duration']!r} is not a duration (30s, "
                         "30m, 1h, 1d, 7d, 30d, 1mo)")
    perms = p.get("team_member_permissions")
    if perms is not None and (not isinstance(perms, list) or not all(isinstance(x, str) for x in perms)):
        raise ValueError("default_team_params.team_member_permissions: expected a list of route names")


_NEW_USER_FIELDS = frozenset(("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit", "soft_budget",
                              "max_parallel_requests", "metadata", "user_alias"))
"""User fields ``default_internal_user_params`` may give a new internal user."""


class GeneralSettings(msgspec.Struct, kw_only=True):
    master_key: str | None = None
    global_max_parallel_requests: int | None = None
    """LiteLLM's overload guard: requests one worker serves at once (LiteLLM counts per process too); past it a
    429 in LiteLLM's words. None: no bound."""
    health_check_details: bool = True
    """LiteLLM's: ``false`` makes ``/health`` name each deployment's model only (no ``api_base``, no error text)."""
    litellm_key_header_name: str | None = None
    """LiteLLM's: a header the gateway key may arrive in (``X-Litellm-Key: Bearer sk-...``), read before the
    usual ones; never forwarded upstream."""
    database_url: str | None = None
    health_check_timeout: float = 10.0
    background_health_checks: bool = False
    """LiteLLM's switch: each worker checks every deployment at start-up and every ``health_check_interval``
    seconds (``gateway.health_view``); off: nothing runs."""
    health_check_interval: float = 300.0
    """Seconds between background health checks (LiteLLM's default: 300)."""
    user_api_key_cache_ttl: float = 60.0
    """Seconds a resolved key stays cached per worker (LiteLLM's default: 60); invalidation is separate."""
    allow_requests_on_db_unavailable: bool = False
    """With the database down, keys cached earlier keep working after their TTL (LiteLLM's setting; off by
    default, as LiteLLM); unknown keys get a 503 either way."""
    store_model_in_db: bool = False
    """LiteLLM's switch: models added by ``/model/new`` are kept in the database and served with the config's."""
    disable_spend_logs: bool = False
    """LiteLLM's switch: no spend-log rows are written (the spend counters of keys, teams ... still move)."""
    store_prompts_in_spend_logs: bool = False
    """Keep each request's body and answer in its spend-log row (``sinks.prompts``; the environment's
    ``STORE_PROMPTS_IN_SPEND_LOGS=true`` too, as LiteLLM)."""
    spend_logs_prompt_storage: Literal["latest_turn"] | None = None
    """LiteLLM's ``latest_turn``: with prompts stored, only the model and the latest user message of a
    stateless request (``sinks.prompts.latest_turn``); unset: the whole body."""
    maximum_spend_logs_retention_period: str | None = None
    """Delete spend-log rows older than this (``30d``, ``12h``, ``1mo``); None keeps them forever."""
    maximum_spend_logs_retention_interval: str = "1d"
    """How often each worker runs the retention delete (LiteLLM's name; ``1h``, ``1d``)."""
    maximum_spend_logs_cleanup_batch_size: Any = None
    """Rows one retention ``DELETE`` removes (``sinks.retention.bounds``; 5,000, LiteLLM's 1,000)."""
    maximum_spend_logs_cleanup_max_batches: Any = None
    """Batches one retention run deletes at most (500)."""
    maximum_spend_logs_cleanup_run_budget: Any = None
    """Wall-clock bound of one retention run (``5m``, or seconds; 300 s)."""
    maximum_spend_logs_cleanup_batch_timeout: Any = None
    """PostgreSQL's ``statement_timeout`` and ``lock_timeout`` of each retention batch (``30s``, or seconds)."""
    maximum_spend_logs_size: str | int | None = None
    """LiteLLM's size rule: when the spend logs hold more than this (``180GB``), the oldest rows are deleted
    until they are under ``maximum_spend_logs_cleanup_target_size`` (``sinks.retention.run_size``)."""
    maximum_spend_logs_cleanup_target_size: str | int | None = None
    """The level a size cleanup deletes down to (unset: ``maximum_spend_logs_size``)."""
    maximum_spend_logs_size_check_interval: str = "1d"
    """How often the size rule is checked (LiteLLM's default ``1d``)."""
    maximum_daily_tag_spend_retention_period: str | None = None
    """Delete the daily rollup's tag rows of days older than this (``90d``), every
    ``maximum_spend_logs_retention_interval``; None keeps them (``sinks.retention.run_daily_tags``)."""
    spend_logs_buffer: int = 100_000
    proxy_batch_write_at: float = 1.0
    """LiteLLM's name: seconds a worker's spend sink waits between writes while fewer than 4,096 records
    wait (a full batch, or a buffer half full, is written at once). LiteLLM's default is 10; relaygate's
    is 1, so spend rows and counters trail requests by about a second. A longer interval puts more rows in
    each transaction, so the per-batch work (one counter upsert and one ``spend`` update per entity) is
    shared by more requests: worth it with many active keys at a modest rate per worker."""
    pass_through_endpoints: list[PassThroughEndpoint] = []
    """LiteLLM's custom pass-through routes (``relaygate.passthrough``); their paths are fixed at start-up."""
    max_budget: float | None = None
    """``litellm_settings.max_budget``: the proxy-wide budget in USD (``relaygate.budgets``); None, 0 or less:
    none (LiteLLM's default is 0.0 and it checks the proxy budget only above 0)."""
    budget_exceeded_status_code: int = 422
    """``litellm_settings.budget_exceeded_status_code``: the HTTP status of a ``budget_exceeded`` refusal
    (LiteLLM's 422 since it made that configurable; 400 or 429 give the older answers)."""
    budget_duration: str | None = None
    """``litellm_settings.budget_duration``: the proxy-wide budget's period (``30s``, ``1h``, ``30d``, ``1mo``)."""
    timezone: str = "UTC"
    """``litellm_settings.timezone``: the IANA time zone budget periods start in (LiteLLM's: a ``1d`` budget
    resets at the next ``budget_reset_time`` there, ``1mo`` / ``30d`` on the 1st; ``relaygate.budgets.periods``)."""
    budget_reset_time: str | None = None
    """``litellm_settings.budget_reset_time``: the ``"HH:MM"`` of day periods of a day or more start at
    (midnight unless set)."""
    cost_discount_config: dict[str, float] = {}
    """``litellm_settings.cost_discount_config``: a fraction taken off the list-price cost of each request, per
    provider (``vertex_ai``) or provider and model glob (``vertex_ai/claude-*``) (``relaygate.cost.adjust``)."""
    cost_margin_config: dict[str, float | dict[str, float]] = {}
    """``litellm_settings.cost_margin_config``: a percentage and / or a fixed USD amount added to each priced
    request's cost after the discount, per provider or ``global``."""
    block_requests_for_models_without_pricing: bool = False
    """``litellm_settings.block_requests_for_models_without_pricing``: an LLM call to a model group no deployment
    of which has a price is refused (403, LiteLLM's ``model_cost_map_missing``; ``cost.unpriced``)."""
    reject_clientside_metadata_tags: bool = False
    """LiteLLM's: a request whose body has ``metadata.tags`` is a 400 (tags come only from keys, teams and the
    configured headers; ``pipeline.control``)."""
    disable_custom_api_keys: bool = False
    """LiteLLM's: ``/key/generate`` with a ``key`` value and ``/key/regenerate`` with a ``new_key`` are refused
    (403): every key is made by the gateway."""
    disable_reset_budget: bool = False
    """LiteLLM's: no budget period ever resets (the sweep does not run, a check never starts a new period)."""
    max_file_size_mb: int | None = None
    """LiteLLM's: ``/v1/files`` uploads (but batch input files) larger than this are refused (413)."""
    allowed_file_extensions: list[str] | None = None
    """LiteLLM's: only uploads whose file name has one of these extensions (``.jsonl`` ...) are taken."""
    blocked_file_extensions: list[str] | None = None
    """LiteLLM's: uploads whose file name has one of these extensions are refused."""
    always_include_stream_usage: bool | None = None
    """LiteLLM's: unset, an OpenAI-family stream whose client did not ask for usage asks the upstream for it
    (exact spend) and keeps the usage chunk from the client; true: the client gets it too; false: never asked
    (the spend of such a stream is estimated from its content)."""
    spend_report_frequency: str = "7d"
    spend_logs_metadata_fields: dict[str, Any] | None = None
    """LiteLLM's: ``{include: [...]}`` or ``{exclude: [...]}``, the keys of a spend row's ``metadata`` written
    (``config.litellm_general.metadata_fields``; ``status`` always)."""
    disable_requester_ip_address_logging: bool = False
    """LiteLLM's: spend logs and exporters get no ``requester_ip_address`` (the client's address)."""
    user_api_key_cache_max_size: int | None = None
    """LiteLLM's: the keys each worker keeps resolved in memory at most (None: relaygate's 10,000)."""
    health_check_concurrency: int | None = None
    """LiteLLM's: deployments a health round checks at once (None: all of them)."""
    background_health_check_model_groups: list[str] | None = None
    """LiteLLM's: background health checks only for these model groups (None: every group)."""
    health_check_skip_disabled_background_models: bool = False
    """LiteLLM's: deployments whose ``model_info.disable_background_health_check`` is true (never checked in the
    background) are left out of ``/health`` too."""
    return_wildcard_routes: bool = False
    """LiteLLM's: ``/v1/models`` also lists wildcard routes (``openai/*``) unless the request says otherwise."""
    model_list_healthy_only: bool = False
    """LiteLLM's: ``/v1/models`` hides the model groups whose every deployment failed its last background health
    check (as a request's ``healthy_only=true`` does)."""
    include_call_id_in_error_body: bool = False
    """LiteLLM's: an error answer's body names its call id (``litellm_call_id`` in the error object), besides the
    ``x-litellm-call-id`` header."""
    enforce_fallback_model_access: bool = True
    """LiteLLM's: a fallback the router's settings name is tried for a key only when the key may call that
    model group (false: whatever the key's models; fallbacks a request names are always checked)."""
    disable_fallbacks_on_per_model_rate_limits: bool = False
    """LiteLLM's: a key's (team's) ``model_rpm_limit`` / ``model_tpm_limit`` refusing a request is its 429; by
    default the configured fallbacks are tried first, as LiteLLM tries them."""
    token_rate_limit_type: str = "total"
    """LiteLLM's: which of an answer's tokens the tpm limits of keys, teams, users and end users count —
    ``total``, ``input`` (the prompt's) or ``output`` (the answer's); a deployment's ``tpm`` counts them all."""
    """LiteLLM's: the days between two ``spend_reports`` alerts (``Nd``; ``observe.spend_reports``)."""
    enable_json_schema_validation: bool = False
    """``litellm_settings.enable_json_schema_validation``: a chat answer is checked against the JSON schema its
    request's ``response_format`` gives (a request's own ``enable_json_schema_validation`` field wins;
    ``pipeline.schema_check``)."""
    public_model_groups: list[str] | None = None
    """``litellm_settings.public_model_groups``: the model groups ``GET /public/model_hub`` shows anyone, without a
    key (None: none); ``POST /model_group/make_public`` replaces them (``store_model_in_db``)."""
    public_model_groups_links: dict[str, str | dict[str, Any]] = {}
    """``litellm_settings.public_model_groups_links``: the model hub's links, ``{name: url}`` or ``{name: {url,
    index}}`` (``GET /public/model_hub/info``; ``POST /model_hub/update_useful_links`` replaces them)."""
    max_internal_user_budget: float | None = None
    """``litellm_settings.max_internal_user_budget``: the ``max_budget`` of a new ``internal_user`` (``/user/new``,
    single sign-on, JWT upsert) that is given none."""
    internal_user_budget_duration: str | None = None
    """``litellm_settings.internal_user_budget_duration``: its ``budget_duration``, likewise."""
    completion_model: str | None = None
    """LiteLLM's: the model every chat and completions call is served by, whatever it names (as its proxy
    does); likewise ``embedding_model``, ``image_generation_model`` and ``moderation_model``."""
    embedding_model: str | None = None
    image_generation_model: str | None = None
    moderation_model: str | None = None
    disable_spend_updates: bool = False
    """LiteLLM's: no spend is written at all (no spend logs, counters or entities' ``spend``: no spend sink, as
    ``relaygate_settings.spend_tracking: false``)."""
    disable_end_user_cost_tracking: bool = False
    """``litellm_settings.disable_end_user_cost_tracking``: spend logs and counters never name the customer."""
    disable_end_user_cost_tracking_prometheus_only: bool = False
    """Accepted: relaygate's Prometheus labels never carry a customer's id anyway (``end_user`` is ``other``)."""
    disable_add_user_agent_to_request_tags: bool = False
    """``litellm_settings.disable_add_user_agent_to_request_tags``: LiteLLM adds ``User-Agent: <product>`` and
    ``User-Agent: <whole header>`` to every request's tags (spend logs, tag spend, exporters); true: not."""
    extra_spend_tag_headers: list[str] = []
    """``litellm_settings.extra_spend_tag_headers``: request headers whose value becomes a tag
    ``<header>: <value>`` (LiteLLM's)."""
    model_group_settings: dict[str, Any] = {}
    """``litellm_settings.model_group_settings``: ``forward_client_headers_to_llm_api``, the model groups
    (``*`` wildcards) whose calls carry the client's headers as with the global switch."""
    default_team_params: dict[str, Any] = {}
    """``litellm_settings.default_team_params``: what a team made by ``/team/new`` gets where the request gives
    nothing (:meth:`new_team_defaults`)."""
    default_team_settings: list[dict[str, Any]] = []
    """``litellm_settings.default_team_settings``: LiteLLM's team-based logging from the config, one entry per
    ``team_id`` (``success_callback``, ``failure_callback``, the callbacks' variables beside them or in
    ``callback_vars``); a team whose own metadata names no logging gets these (``auth.targets.team_defaults``)."""
    max_end_user_budget: float | None = None
    """``litellm_settings.max_end_user_budget``: the budget (USD, over the customer's whole spend) of every
    customer (end user) without a budget row of its own (``budgets.guard``); None: none."""
    max_end_user_budget_id: str | None = None
    """``litellm_settings.max_end_user_budget_id``: the budget row (``/budget/new``) every customer without one of
    its own is put on at its first request (its period and limits are that row's)."""
    enable_jwt_auth: bool = False
    """LiteLLM's switch: a bearer token that is a JWT is verified against the provider's JWKS
    (``JWT_PUBLIC_KEY_URL``) and mapped to a principal by ``litellm_jwtauth`` (``relaygate.auth.jwt_auth``)."""
    litellm_jwtauth: dict[str, Any] = {}
    """LiteLLM's ``litellm_jwtauth`` settings (claim fields, admin scope, ``public_key_ttl`` ...), read by
    ``auth.jwt_auth.JWTSettings``; single sign-on reads its ``team_ids_jwt_field`` too."""
    allowed_ips: list[str] | None = None
    """LiteLLM's client address allow-list (addresses or networks; ``auth.access``); None: any address."""
    use_x_forwarded_for: bool = False
    """LiteLLM's: the caller's address for ``allowed_ips`` is the last ``X-Forwarded-For`` hop."""
    trusted_proxy_ranges: list[str] | str | None = None
    """LiteLLM's: the reverse proxies (addresses or networks, a list or comma-separated) whose ``X-Forwarded-For``
    is believed; the caller is its right-most hop that is not one of them (``auth.access.client_address``)."""
    allowed_routes: list[str] | None = None
    """LiteLLM's: the only paths the proxy serves (the probes excepted); None: every route."""
    enforce_user_param: bool = False
    """LiteLLM's: every LLM call must carry ``user`` (400 otherwise)."""
    apply_user_budget_to_team_keys: bool = False
    """LiteLLM's: a user's own ``max_budget`` binds its team keys too (by default only its keys without a team)."""
    disable_budget_reservation: bool = False
    """LiteLLM's: admitted requests hold no share of their budgets while in flight (``budgets.holds``)."""
    request_tag_mappings: tuple[TagMapping, ...] = ()
    """LiteLLM's W3C ``baggage`` entries mapped to request tags (``core.baggage``)."""
    max_in_flight_requests_per_worker: int | None = None
    """LiteLLM's admission control (``http.admission``): requests a worker serves at once; None: no bound."""
    max_queued_requests_per_worker: int | None = None
    """Requests that may wait for a slot (None: as many as ``max_in_flight_requests_per_worker``; 0: none)."""
    admission_queue_timeout_seconds: float = 1.0
    """Seconds a request waits for a slot before LiteLLM's 503 ``overloaded_error``."""
    enable_drain_endpoint: bool = False
    drain_endpoint_token: str | None = None
    """LiteLLM's ``GET /health/drain`` (``gateway.drain``): on, and its ``X-Drain-Token`` (else the variable)."""
    spend_capture_rate_check: CaptureRateCheck | None = None
    """LiteLLM's daily spend capture-rate check (``management.capture_rate``); None: not run."""
    enforced_params: list[str] = []
    """LiteLLM's: fields (``name`` or ``object.name``) every LLM call must carry (400 otherwise)."""
    user_header_name: str | None = None
    """LiteLLM's: a header naming the customer (end user) when no ``x-litellm-end-user-id`` does, before the
    body's ``user``: spend logs and customer budgets."""
    forward_client_headers_to_llm_api: bool = False
    """LiteLLM's: the client's ``x-`` headers and ``anthropic-beta`` go on to the provider (never one that
    carries the gateway's key; ``pipeline.overrides.forwardable``)."""
    forward_openai_org_id: bool = False
    """LiteLLM's: the client's ``OpenAI-Organization`` header goes on to OpenAI and Azure deployments."""
    ui_access_mode: str | dict[str, Any] = "all"
    """LiteLLM's: ``admin_only`` (only proxy admins sign in to the UI) or a ``restricted_sso_group`` object
    (``ui.access``); ``all``: every user."""
    user_header_mappings: list[dict[str, Any]] | dict[str, Any] | None = None
    """LiteLLM's newer spelling: ``[{header_name, litellm_user_role: customer}]`` (wins over ``user_header_name``);
    entries of other roles are ignored with a warning."""
    default_internal_user_params: dict[str, Any] = {}
    """``litellm_settings.default_internal_user_params``: the fields (``user_role``, ``max_budget``, ``models``
    ...) of a user created at its first single sign-on."""
    """Completion records a worker keeps waiting for the spend sink (the database slow or down); past it
    the oldest are dropped, counted (``sink_dropped:spend``) and logged."""

    @property
    def spend_report_days(self) -> int:
        """``spend_report_frequency`` in days."""
        return int(self.spend_report_frequency[:-1])

    def new_team_defaults(self, fields: dict[str, Any]) -> dict[str, Any]:
        """What LiteLLM's ``/team/new`` fills in of ``fields`` (the request's, explicit nulls included):
        ``default_team_params``' ``organization_id``, ``max_budget``, ``budget_duration`` (only when the request
        left it out: an explicit null is a budget that never resets), ``tpm_limit``, ``rpm_limit`` and
        ``team_member_permissions`` where the request gives none; then, the older way, the first
        ``default_team_settings`` entry's ``max_budget``."""
        p = self.default_team_params or {}
        out: dict[str, Any] = {}
        for k in TEAM_DEFAULTS:
            if fields.get(k) is None and not (k == "budget_duration" and k in fields) and p.get(k) is not None:
                out[k] = p[k]
        teams = self.default_team_settings
        if fields.get("max_budget") is None and "max_budget" not in out and teams and \
                teams[0].get("max_budget") is not None:
            out["max_budget"] = teams[0]["max_budget"]
        return out

    def new_user_defaults(self, role: str | None, fields: dict[str, Any], *, params: bool = True) -> dict[str, Any]:
        """``fields`` of a new user of ``role`` completed as LiteLLM completes them for an ``internal_user``:
        ``default_internal_user_params`` (with ``params``) where a field is not given, then
        ``max_internal_user_budget`` / ``internal_user_budget_duration`` where the budget still is not."""
        if role != "internal_user":
            return fields
        out = dict(fields)
        if params:
            for k, v in (self.default_internal_user_params or {}).items():
                if k in _NEW_USER_FIELDS and v is not None and (out.get(k) is None or (k == "models" and not out[k])):
                    out[k] = v  # an empty models list takes the default too, as LiteLLM's
        if out.get("max_budget") is None and self.max_internal_user_budget is not None:
            out["max_budget"] = self.max_internal_user_budget
        if out.get("budget_duration") is None and self.internal_user_budget_duration:
            out["budget_duration"] = self.internal_user_budget_duration
        return out

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        """``trusted_proxy_ranges`` as networks (empty: none configured)."""
        return parse_networks(self.trusted_proxy_ranges, "trusted_proxy_ranges") if self.trusted_proxy_ranges else ()

    def __post_init__(self) -> None:
        if self.allowed_ips is not None:
            parse_allowed_ips(self.allowed_ips)  # ValueError naming the entry
        if self.trusted_proxy_ranges:
            parse_networks(self.trusted_proxy_ranges, "trusted_proxy_ranges")
        parse_required_fields(self.enforced_params, "enforced_params")
        check_ui_access_mode(self.ui_access_mode)
        code = self.budget_exceeded_status_code
        if isinstance(code, bool) or not 400 <= code <= 599:
            raise ValueError(f"budget_exceeded_status_code: expected an HTTP error status (400-599), got {code!r}")
        check_budget_calendar(self.timezone, self.budget_reset_time)
        check_mappings(self.request_tag_mappings)
        if self.max_in_flight_requests_per_worker is not None and self.max_in_flight_requests_per_worker < 1:
            raise ValueError("max_in_flight_requests_per_worker: expected a whole number >= 1")
        if self.max_queued_requests_per_worker is not None and self.max_queued_requests_per_worker < 0:
            raise ValueError("max_queued_requests_per_worker: expected a whole number >= 0")
        if not self.admission_queue_timeout_seconds > 0:
            raise ValueError("admission_queue_timeout_seconds: expected a number of seconds > 0")
        check_discounts(self.cost_discount_config)
        metadata_fields(self.spend_logs_metadata_fields)  # ValueError naming what is wrong
        size_bytes(self.maximum_spend_logs_size, "maximum_spend_logs_size")
        size_bytes(self.maximum_spend_logs_cleanup_target_size, "maximum_spend_logs_cleanup_target_size")
        if self.user_api_key_cache_max_size is not None and self.user_api_key_cache_max_size < 1:
            raise ValueError(f"user_api_key_cache_max_size: expected a whole number >= 1, got "
                             f"{self.user_api_key_cache_max_size}")
        if self.health_check_concurrency is not None and self.health_check_concurrency < 1:
            raise ValueError(f"health_check_concurrency: expected a whole number >= 1, got "
                             f"{self.health_check_concurrency}")
        if self.token_rate_limit_type not in ("total", "input", "output"):
            raise ValueError(f"token_rate_limit_type: expected total, input or output, got "
                             f"{self.token_rate_limit_type!r} (LiteLLM counts total tokens for any other value)")
        if not re.fullmatch(r"[1-9][0-9]{0,3}[dD]", self.spend_report_frequency):
            raise ValueError(f"spend_report_frequency: expected a number of days such as '1d' or '7d', got "
                             f"{self.spend_report_frequency!r} (LiteLLM refuses it too)")
        if self.public_model_groups_links:
            check_stored("public_model_groups_links", self.public_model_groups_links)
        for i, team in enumerate(self.default_team_settings):
            if not isinstance(team.get("team_id"), str) or not team["team_id"]:
                raise ValueError(f"default_team_settings[{i}]: team_id missing (LiteLLM refuses it too)")
        groups = self.model_group_settings.get("forward_client_headers_to_llm_api")
        if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups)):
            raise ValueError("model_group_settings.forward_client_headers_to_llm_api: expected a list of model groups")
        check_team_defaults({**self.default_team_params, **({"max_budget": self.default_team_settings[0].get(
            "max_budget")} if self.default_team_settings else {})})
        check_margins(self.cost_margin_config)
        if self.user_header_name is not None:
            header_name(self.user_header_name, "user_header_name")
        mappings = self.user_header_mappings
        for i, m in enumerate([mappings] if isinstance(mappings, dict) else mappings or []):
            header_name(m.get("header_name"), f"user_header_mappings[{i}].header_name")


def check_budget_calendar(timezone: str, reset_time: str | None) -> None:
    """``ValueError`` for a ``timezone`` that is no IANA zone or a ``budget_reset_time`` that is no 24-hour
    ``HH:MM[:SS]`` (LiteLLM fails at startup on the latter; it falls back to UTC on the former, which would
    move every reset by the zone's offset without a word)."""
    if timezone not in ("UTC", "utc", ""):
        try:
            ZoneInfo(timezone)
        except (ValueError, KeyError, OSError):
            raise ValueError(f"timezone: unknown time zone {timezone!r} (an IANA name such as "
                             "'America/New_York')") from None
    if reset_time is not None and reset_time != "" and (
            not isinstance(reset_time, str) or _HHMM.match(reset_time) is None):
        raise ValueError(f"budget_reset_time: expected a 24-hour 'HH:MM' or 'HH:MM:SS', got {reset_time!r}")


_HHMM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


class KeyConfig(msgspec.Struct, kw_only=True):
    """A virtual key declared in the config (``[[keys]]`` in TOML, ``relaygate_keys:`` in YAML)."""

    key: str
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    models: list[str] = []
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    team_rpm_limit: int | None = None
    team_tpm_limit: int | None = None
    user_rpm_limit: int | None = None
    user_tpm_limit: int | None = None


class Config(msgspec.Struct, kw_only=True):
    deployments: list[Deployment] = []
    keys: list[KeyConfig] = []
    router: RouterSettings = msgspec.field(default_factory=RouterSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    general: GeneralSettings = msgspec.field(default_factory=GeneralSettings)
    cache: CacheSettings | None = None
    """``litellm_settings.cache`` / ``cache_params``: the response cache (``relaygate.cache``); None: off."""
    key_policy: KeyPolicy = KeyPolicy()
    """``litellm_settings.default_key_generate_params`` / ``upperbound_key_generate_params`` /
    ``key_generation_settings``: what ``/key/generate`` fills in, bounds and allows (``config.key_policy``)."""
    observe: ObserveSettings | None = None
    """Exporters, JSON request logs and alerting (``litellm_settings.callbacks`` ..., ``relaygate.observe``);
    None: all off."""
    check_provider_endpoint: bool = False
    """``litellm_settings.check_provider_endpoint``: ``/v1/models`` lists what a wildcard deployment's
    provider serves (its model list endpoint, fetched in the background)."""
    warnings: list[str] = []
    """One line per key that is not read, and the ``skipped`` lines: printed by ``serve`` and on reload."""
    skipped: list[str] = []
    """One error line per deployment that is not served (its provider is unknown), as LiteLLM skips them;
    each is also in ``warnings``. ``check-config`` prints them as errors."""
    source: str = "<defaults>"
    document: Any = None
    """A LiteLLM config's document as parsed, its includes merged (``config.stored_general``); None: native."""
