"""Keys: reading the client's key, hashing it, the virtual key's rights, and the sync config authenticator.

What it owns: reading the client's key from the request headers (``Authorization: Bearer``, ``x-api-key``,
``api-key``, ``x-litellm-api-key``), comparing it with the master key (``hmac.compare_digest``), finding a
virtual key by the SHA-256 of its value in a dict built once at startup (keys are never kept in clear
text in memory after startup, never logged), the key's model allow-list, and the key's rate-limit buckets
(key / team / user rpm, tpm and max_parallel_requests) which the router charges with the deployment's.

Model access groups (LiteLLM's ``model_info.access_groups``): a key whose ``models`` names a group may use
every model group of it. :func:`access_groups` maps each group to its model names once per config, and
:class:`KeyInfo` expands the names it is granted when it is built, so the allow-list check on a request
stays one set lookup (or a prefix test for wildcards) and knows nothing of groups.

:class:`Authenticator` is the synchronous, config-only check the shell used before the async
:class:`~relaygate.auth.resolver.PrincipalResolver`; it stays for callers that have not moved yet.

Errors follow LiteLLM's proxy wording: 401 ``Authentication Error, ...`` for a missing or unknown key and
401 ``key_model_access_denied`` for a model outside the key's ``models``."""

from __future__ import annotations

import hmac
from typing import Any, Callable, Iterable, Mapping

from relaygate.config.model import Config, KeyConfig
from relaygate.core import errors
from relaygate.core.ratelimit import PREFIX, Bucket
from relaygate.core.sha import sha256_hex

_AUTH_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"x-litellm-api-key", b"x-goog-api-key")
_ALL_MODELS = ("*", "all-proxy-models")


class KeyRouter:
    """A key's ``router_settings`` (LiteLLM's per-key router settings): ``num_retries``, ``timeout`` and
    ``fallbacks`` (``[{"model": ["fallback", ...]}]`` or ``{"model": [...]}``) for its requests that set
    none. As a client's own values, they only tighten the operator's retries and timeout; fallbacks are
    kept to the models the key may use."""

    __slots__ = ("num_retries", "timeout", "fallbacks")

    def __init__(self, num_retries: int | None, timeout: float | None, fallbacks: Mapping[str, list[str]]) -> None:
        self.num_retries = num_retries
        self.timeout = timeout
        self.fallbacks = fallbacks

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> KeyRouter | None:
        """The settings ``raw`` holds (values of the wrong type are left out), or None when none apply."""
        retries = raw.get("num_retries")
        num_retries = retries if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0 else None
        t = raw.get("timeout")
        timeout = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else None
        fallbacks: dict[str, list[str]] = {}
        fb = raw.get("fallbacks")
        for item in (fb if isinstance(fb, list) else [fb] if isinstance(fb, dict) else []):
            if isinstance(item, dict):
                for model, names in item.items():
                    if isinstance(names, list) and all(isinstance(n, str) and n for n in names):
                        fallbacks[str(model)] = list(names)
        if num_retries is None and timeout is None and not fallbacks:
            return None
        return cls(num_retries, timeout, fallbacks)


class KeyInfo:
    """A virtual key as the request path sees it: identity, allowed models, rate-limit buckets."""

    __slots__ = ("token", "alias", "team_id", "user_id", "models", "patterns", "buckets", "token_buckets", "headers",
                 "spent", "access_groups", "also", "aliases", "role", "expires", "read_again", "refusal", "records",
                 "model_buckets", "router", "logging", "no_message_logging", "logging_off", "read_at", "enforced",
                 "disable_fallbacks", "cache_rules")

    def __init__(self, token: str, kc: KeyConfig, groups: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.token = token
        """SHA-256 hex of the key (LiteLLM's "token"): safe to log and to use in storage keys."""
        self.alias = kc.key_alias
        self.team_id = kc.team_id
        self.user_id = kc.user_id
        self.also: KeyInfo | None = None
        """A second allow-list the model must pass too (a team's, when the two cannot be intersected)."""
        self.aliases: Mapping[str, str] = {}
        """Model aliases of the key (and its team), as LiteLLM's ``aliases`` / ``model_aliases``."""
        self.role: str | None = None
        """The key owner's LiteLLM ``user_role`` (``internal_user`` ...), when a store knows it."""
        self.expires: float | None = None
        """Wall-clock expiry (``time.time()`` seconds) of a key from a store; None: never."""
        self.read_again: float | None = None
        """Wall-clock time after which the key's rows must be read again though it has not expired (its
        temporary budget increase ends, and with it the budget its headers show); None: no such time."""
        self.refusal: Callable[[], errors.GatewayError] | None = None
        """Set when the key exists but may not be used (blocked, expired, team blocked): makes its error."""
        self.records: tuple[Any, ...] = ()
        """The store's rows the key was resolved from (key, team, user, organization), for budgets."""
        self.read_at: float | None = None
        """When the read of :attr:`records` from the store began (wall clock; None: not known): how much of
        this worker's spend the rows' ``spend`` holds (``budgets.limits.Tally.written_at``)."""
        self.logging: list[Any] | None = None
        """The key's and its team's ``metadata.logging`` targets (``observe.detail.LoggingTarget``): its
        requests go to those exporters too. ``None`` (almost every key): none."""
        self.no_message_logging = False
        """The key's or team's ``metadata.turn_off_message_logging``: its messages are never exported."""
        self.logging_off = False
        """Its team's logging is off (``/team/{team_id}/disable_logging``, ``auth.targets.logging_off``): its
        requests go to no logging callback (Langfuse, OpenTelemetry, Datadog, generic API), its own targets
        included; metrics, spend logs and the gateway's own log lines still count them."""
        self.enforced: tuple[str, ...] | None = None
        """The key's and its team's ``metadata.enforced_params``: fields its LLM calls must carry (``auth.access``);
        None (almost every key): none."""
        self.spent = 0.0
        """USD this worker saw the key spend since its rows were read (``x-litellm-key-spend`` adds it to the
        row's ``spend``: the header moves with every answer, not once per key cache TTL)."""
        models = [m for m in kc.models if m]
        groups = groups or {}
        self.access_groups: tuple[str, ...] = tuple(m for m in models if m in groups)
        """The model access groups the key is granted (their models are in ``models``)."""
        for g in self.access_groups:
            models.extend(groups[g])
        self.models: frozenset[str] | None = None
        self.patterns: tuple[str, ...] = ()
        if models and not any(m in _ALL_MODELS for m in models):
            self.models = frozenset(models)
            self.patterns = tuple(m[:-1] for m in models if m.endswith("*"))
        #: LiteLLM's ``x-litellm-key-*-limit`` response headers, for the limits the key has
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(
            (name, b"%d" % value) for name, value in ((b"x-litellm-key-rpm-limit", kc.rpm_limit),
                                                     (b"x-litellm-key-tpm-limit", kc.tpm_limit)) if value)
        buckets: list[Bucket] = []
        short = token[:24]
        if kc.rpm_limit:
            buckets.append(Bucket.per_minute(f"{PREFIX}k:{short}:rpm", kc.rpm_limit, "key", "requests", short))
        if kc.tpm_limit:
            buckets.append(Bucket.per_minute(f"{PREFIX}k:{short}:tpm", kc.tpm_limit, "key", "tokens", short))
        if kc.max_parallel_requests:
            buckets.append(Bucket.parallel(f"{PREFIX}k:{short}:par", kc.max_parallel_requests, "key", short))
        if kc.team_id:
            if kc.team_rpm_limit:
                buckets.append(Bucket.per_minute(f"{PREFIX}t:{kc.team_id}:rpm", kc.team_rpm_limit, "team",
                                                 "requests", kc.team_id))
            if kc.team_tpm_limit:
                buckets.append(Bucket.per_minute(f"{PREFIX}t:{kc.team_id}:tpm", kc.team_tpm_limit, "team",
                                                 "tokens", kc.team_id))
        if kc.user_id:
            if kc.user_rpm_limit:
                buckets.append(Bucket.per_minute(f"{PREFIX}u:{kc.user_id}:rpm", kc.user_rpm_limit, "user",
                                                 "requests", kc.user_id))
            if kc.user_tpm_limit:
                buckets.append(Bucket.per_minute(f"{PREFIX}u:{kc.user_id}:tpm", kc.user_tpm_limit, "user",
                                                 "tokens", kc.user_id))
        self.buckets: tuple[Bucket, ...] = tuple(buckets)
        self.token_buckets = any(b.unit == "tokens" for b in buckets)
        self.router: KeyRouter | None = None
        """The key's own ``router_settings`` (retries, timeout, fallbacks), when it has any."""
        self.disable_fallbacks: bool | None = None
        """The key's ``metadata.disable_fallbacks`` when a boolean: replaces the request's own (LiteLLM's
        key-level controls); None: the request decides."""
        self.cache_rules: Any = None
        """What the response cache reads from the key's stored row (``allowed_cache_controls``, ``metadata.cache``),
        worked out on the key's first cached request (``cache.stage.rules_of``); None: not yet."""
        self.model_buckets: Mapping[str, tuple[Bucket, ...]] = {}
        """Per model group, every bucket a request to it pays (``buckets`` plus the key's and team's
        ``model_rpm_limit`` / ``model_tpm_limit`` for that model); groups without any use ``buckets``."""

    def buckets_for(self, model: str) -> tuple[Bucket, ...]:
        """The buckets a request to the model group ``model`` pays (one dict look-up)."""
        return self.model_buckets.get(model, self.buckets) if self.model_buckets else self.buckets

    def add_model_limits(self, scope: str, owner: str, rpm: Mapping[str, int], tpm: Mapping[str, int]) -> None:
        """Add LiteLLM's per-model limits (``model_rpm_limit`` / ``model_tpm_limit``) of the key or its team."""
        per: dict[str, tuple[Bucket, ...]] = dict(self.model_buckets)
        tag = scope[0]
        for limits, unit, kind in ((rpm, "requests", "rpm"), (tpm, "tokens", "tpm")):
            for model, limit in limits.items():
                if limit:
                    b = Bucket.per_minute(f"{PREFIX}{tag}:{owner[:24]}:m:{model}:{kind}", int(limit), scope, unit,
                                          owner[:24], model=True)
                    per[model] = per.get(model, self.buckets) + (b,)
                    self.token_buckets = self.token_buckets or unit == "tokens"
        self.model_buckets = per

    def add_member_limits(self, team_id: str, user_id: str, rpm: int | None, tpm: int | None) -> None:
        """Add LiteLLM's team member rate limits (the member's ``rpm_limit`` / ``tpm_limit`` in the team,
        ``store.Store.member_limits``): buckets shared by every key of that user in that team, LiteLLM's
        ``team_member`` descriptor (its 429 and ``x-ratelimit-team_member-*`` headers). Call before
        :meth:`add_model_limits` (a model's buckets start from :attr:`buckets`)."""
        owner = f"{team_id}:{user_id}"
        added = tuple(Bucket.per_minute(f"{PREFIX}tm:{owner}:{kind}", limit, "team_member", unit, owner)
                      for limit, unit, kind in ((rpm, "requests", "rpm"), (tpm, "tokens", "tpm")) if limit)
        if added:
            self.buckets = (*self.buckets, *added)
            self.token_buckets = self.token_buckets or bool(tpm)

    def allows(self, model: str) -> bool:
        """Whether the key may use ``model``; a comma list (LiteLLM's batch form) needs every part allowed."""
        if self.also is not None and not self.also.allows(model):
            return False
        if self.models is None or model in self.models:
            return True
        if "," in model:
            return all(self.allows(m.strip()) for m in model.split(",") if m.strip())
        for p in self.patterns:
            if model.startswith(p):
                return True
        return False


def access_groups(config: Config) -> dict[str, tuple[str, ...]]:
    """Each model access group of the config's deployments -> its model names (in config order)."""
    groups: dict[str, list[str]] = {}
    for dep in config.deployments:
        for g in dep.access_groups:
            names = groups.setdefault(g, [])
            if dep.model_name not in names:
                names.append(dep.model_name)
    return {g: tuple(names) for g, names in groups.items()}


def hash_key(key: bytes | str) -> str:
    if isinstance(key, str):
        key = key.encode()
    return sha256_hex(key)


def key_header(name: str | None) -> bytes | None:
    """``general_settings.litellm_key_header_name`` as :func:`read_token` compares it (None: not set)."""
    return name.strip().lower().encode("latin-1") if name and name.strip() else None


def read_token(headers: Iterable[tuple[bytes, bytes]], custom: bytes | None = None) -> bytes | None:
    """The client's key from the first auth header present (``Bearer`` stripped; ``Basic`` is no key); the
    ``custom`` header (LiteLLM's ``litellm_key_header_name``, lower-case) first when it is sent."""
    if custom is not None:
        for k, v in headers:
            if k == custom:
                return (v[7:] if v[:7].lower() == b"bearer " else v).strip() or None
    for k, v in headers:
        if k in _AUTH_HEADERS:
            if k == b"authorization":
                if v[:7].lower() == b"bearer ":
                    return v[7:].strip() or None
                if v[:6].lower() == b"basic ":
                    return None
            return v.strip() or None
    return None


class Authenticator:
    """Built once per worker from the config; :meth:`authenticate` is on every request's path."""

    def __init__(self, config: Config) -> None:
        mk = config.general.master_key
        self.master_key = mk.encode() if mk else None
        self.key_header = key_header(config.general.litellm_key_header_name)
        self.keys: dict[str, KeyInfo] = {}
        groups = access_groups(config)
        for kc in config.keys:
            token = hash_key(kc.key)
            self.keys[token] = KeyInfo(token, kc, groups)
        self.enabled = self.master_key is not None or bool(self.keys)

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> KeyInfo | None:
        """The virtual key of the request, ``None`` for the master key (or an open gateway with neither a
        master key nor virtual keys); raises ``AuthError`` otherwise."""
        if not self.enabled:
            return None
        token = read_token(headers, self.key_header)
        if token is None:
            if self.master_key is None:
                return None
            raise errors.AuthError("Authentication Error, No api key passed in.", param="None")
        if self.master_key is not None and hmac.compare_digest(token, self.master_key):
            return None
        if self.keys:
            info = self.keys.get(sha256_hex(token))
            if info is not None:
                return info
        if self.master_key is None:
            return None  # no master key: LiteLLM's proxy is open; unknown keys pass without limits
        raise errors.AuthError("Authentication Error, Invalid proxy server token passed. "
                               "Use a valid key in `Authorization: Bearer <key>`.", param="None")

    @classmethod
    def check_models(cls, key: KeyInfo | None, models: Iterable[str]) -> None:
        """Every model a request names (its ``fallbacks`` too) must pass the key's allow-list."""
        for m in models:
            cls.check_model(key, m)

    @staticmethod
    def check_model(key: KeyInfo | None, model: str) -> None:
        if key is None or key.allows(model):
            return
        allowed = sorted(key.models or ())
        raise errors.GatewayError(
            f"key not allowed to access model. This key can only access models={allowed}. "
            f"Tried to access {model}",
            status=401, type="key_model_access_denied", param="model", code="401")
