"""Load a config file (native TOML or LiteLLM YAML) into :class:`relaygate.config.model.Config`.

What it owns: reading the file, resolving ``os.environ/NAME`` references, translating LiteLLM's sections
(``model_list``, ``router_settings``, ``litellm_settings``, ``general_settings``,
``environment_variables``) and the native TOML sections (``[server]``, ``[auth]``, ``[router]``,
``[[models]]``) into one typed model, and producing errors that name the file and the field. A
deployment without ``api_key`` / ``api_base`` / ``api_version`` (or a provider's project, region,
credentials) takes the provider's conventional environment variable, as LiteLLM does, and a credentials
file it names is read here (``config.env``: the one table of them, so adapters never read the
environment or files); ``LITELLM_MASTER_KEY`` is the master key when the config names none. What a
LiteLLM file means beyond its types (``include:``, entry keys, generated ids, prices, fallback shapes, the
keys that are read, ``pass_through_endpoints``) is :mod:`relaygate.config.litellm`'s; a deployment whose
provider is not served is skipped, as LiteLLM's proxy skips it, and reported in ``Config.skipped``.

Invariants: a key relaygate does not support yet yields exactly one warning naming it (never a crash);
a missing environment variable or a value of the wrong type is a :class:`ConfigError`; secrets (keys)
never appear in error or warning text.

Secrets: every config loaded registers its secrets (:func:`config_secrets`: master key, virtual keys,
deployment keys and any deployment parameter named like a credential, the Redis, proxy and database
passwords, and credential-named environment variables the adapters read) with
``core.errors.register_secrets``, so log lines and error bodies are redacted without any caller having to
remember. A deployment URL with credentials in it (``https://user:pass@host``) is a :class:`ConfigError`
naming the field and never the password: such a URL would be logged and echoed wherever the URL is
(``x-litellm-model-api-base``, tracebacks), and no provider relaygate supports needs it: keys go in
``api_key``. URLs whose credentials are legitimate and not sent to clients (``redis_url``,
``http_proxy``, ``database_url``) keep them; their passwords are registered as secrets.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson

from relaygate.config import env, litellm
from relaygate.config.cache import CacheConfigError
from relaygate.config.cache import from_litellm as cache_from_litellm
from relaygate.config.errors import ConfigError as ConfigError
from relaygate.config.key_policy import KeyPolicyError, key_policy
from relaygate.config.litellm import split_provider as split_provider
from relaygate.config.model import (
    Config,
    Deployment,
    GeneralSettings,
    KeyConfig,
    RouterSettings,
    ServerSettings,
)
from relaygate.config.observe import GENERAL_SETTINGS_KEYS as _OBSERVE_GENERAL
from relaygate.config.observe import LITELLM_SETTINGS_KEYS as _OBSERVE_LITELLM
from relaygate.config.observe import ObserveConfigError
from relaygate.config.observe import from_litellm as observe_from_litellm
from relaygate.core.errors import register_secrets
from relaygate.http import cors

ENV_PREFIX = "os.environ/"


def _fields(struct: type[msgspec.Struct]) -> set[str]:
    return set(struct.__struct_fields__)


_DEPLOYMENT_PARAMS = {
    "model", "api_key", "api_base", "api_version", "organization", "rpm", "tpm", "max_parallel_requests",
    "timeout", "stream_timeout", "weight", "order", "max_retries", "cooldown_time", "num_retries", "tags",
    "max_budget", "budget_duration", "use_in_pass_through",
}
_ROUTER_KEYS = _fields(RouterSettings)
_SERVER_KEYS = _fields(ServerSettings)
# litellm_settings keys we honour, and where they land
_LITELLM_SETTINGS_ROUTER = {
    "num_retries", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
    "allowed_fails", "cooldown_time", "max_fallbacks", "retry_policy", "stream_timeout", "disable_cooldowns",
    "tag_budget_config"}
_SIZE_KEYS = {"max_request_size_mb": "max_request_body_bytes", "max_response_size_mb": "max_upstream_response_bytes"}
_POOL_KEYS = {"database_connection_pool_limit": "database_pool_size",
              "database_connection_timeout": "database_pool_timeout"}
"""``general_settings`` of LiteLLM's database pool -> the ``relaygate_settings`` they set."""
_KEY_POLICY = ("default_key_generate_params", "upperbound_key_generate_params", "key_generation_settings")
"""``litellm_settings`` read by ``config.key_policy`` (in this order)."""
_LITELLM_SETTINGS_ACCEPTED = {
    "drop_params", "set_verbose", "request_timeout", "modify_params", "ssl_verify", "ssl_certificate", "force_ipv4",
    "return_response_headers", "redact_messages_in_exceptions"}


# ---------------------------------------------------------------------------------------------------- env


def resolve_env(value: Any, source: str, path: str) -> Any:
    """Replace every ``os.environ/NAME`` string inside ``value`` (recursively) by the variable's value."""
    if isinstance(value, str):
        if value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):]
            if name not in os.environ:
                raise ConfigError(source, path, f"environment variable {name} is not set")
            return os.environ[name]
        return value
    if isinstance(value, dict):
        return {k: resolve_env(v, source, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# ------------------------------------------------------------------------------------------------ convert

_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")


def _convert(data: Any, typ: type, source: str, path: str) -> Any:
    try:
        return msgspec.convert(data, typ, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _MSGSPEC_PATH.search(text)
        sub = ""
        if m:
            sub = m.group(1)
            text = text[: m.start()]
        raise ConfigError(source, f"{path}{sub}", text) from None


def _expect_mapping(value: Any, source: str, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(source, path, f"expected a mapping, got {type(value).__name__}")
    return value


def _provider(model_name: Any, params: dict[str, Any], source: str, path: str) -> tuple[str, str, str]:
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError(source, f"{path}.model_name", "expected a non-empty string")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(source, f"{path}.litellm_params.model", "expected a string like 'openai/gpt-4o'")
    return litellm.provider_of(params)


def make_deployment(
    model_name: Any,
    params: dict[str, Any],
    model_info: dict[str, Any],
    source: str,
    path: str,
    *,
    dep_id: str | None = None,
    where: str = "",
    warnings: list[str] | None = None,
) -> Deployment:
    """The deployment of one entry: ``params`` as written (``os.environ/`` resolved), ``path`` names the
    entry in ``source`` for errors, ``where`` in messages (default ``path``); price warnings go to
    ``warnings``. The provider is not checked here (see :class:`_Deployments`)."""
    provider, upstream_model, model = _provider(model_name, params, source, path)
    where = where or path
    if dep_id is None:
        given = model_info.get("id")
        dep_id = str(given) if given is not None else litellm.litellm_id(model_name, params)
    params, model_info, costs, price_warnings = litellm.prices(
        params, model_info, source, (f"{path}.model_info", f"{path}.litellm_params"),
        (f"{where}.model_info", f"{where}.litellm_params"))
    if warnings is not None:
        warnings.extend(price_warnings)
    try:
        params = env.resolve(provider, params)
    except env.EnvError as exc:
        raise ConfigError(source, f"{path}.litellm_params.{exc.param}", str(exc)) from None
    known = {k: v for k, v in params.items() if k in _DEPLOYMENT_PARAMS}
    extra = {k: v for k, v in params.items() if k not in _DEPLOYMENT_PARAMS and k != "custom_llm_provider"}
    litellm.check_param_rules(extra, source, f"{path}.litellm_params")
    data = {
        **known,
        "access_groups": _access_groups(model_info.get("access_groups"), source, f"{path}.model_info"),
        "model": model,
        "model_name": model_name,
        "provider": provider,
        "upstream_model": upstream_model,
        "id": dep_id,
        "extra": extra,
        "model_info": model_info,
        "costs": costs,
        "where": where,
    }
    _reject_url_credentials(params, source, f"{path}.litellm_params")
    dep: Deployment = _convert(data, Deployment, source, f"{path}.litellm_params")
    return dep


def _access_groups(value: Any, source: str, path: str) -> list[str]:
    """``model_info.access_groups``: a list of group names (LiteLLM's model access groups)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise ConfigError(source, f"{path}.access_groups", "expected a list of group names")
    return list(dict.fromkeys(value))


class _Deployments:
    """A config's deployments, built entry by entry as LiteLLM's proxy builds its router: an entry whose
    provider relaygate does not serve is skipped with one error line (``skipped``, also a warning, so
    every path that prints warnings shows it) and the others are served; generated ids are kept distinct."""

    def __init__(self) -> None:
        self.deployments: list[Deployment] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self._generated: dict[str, int] = {}

    def add(self, model_name: Any, params: dict[str, Any], info: dict[str, Any], source: str, path: str,
            where: str, entry: dict[str, Any] | None = None, native: bool = False) -> None:
        provider, _, model = _provider(model_name, params, source, path)
        if provider not in env.PROVIDERS:
            self._skip(f"{where} ({model_name}): deployment skipped: relaygate has no provider `{provider}` "
                       f"(model `{model}`); the other deployments are served")
            return
        dep_id = info.get("id")
        if dep_id is None:
            dep_id = base = litellm.litellm_id(model_name, params)
            n = self._generated[base] = self._generated.get(base, 0) + 1
            if n > 1:  # LiteLLM gives identical entries one id; each gets its own here
                dep_id = f"{base}-{n}"
        labels = (f"{where}.info", where) if native else (f"{where}.model_info", f"{where}.litellm_params")
        read_info = {k: v for k, v in info.items() if k != "access_groups"}  # read by make_deployment
        self.warnings.extend(litellm.unread_keys(params, read_info, provider, frozenset(_DEPLOYMENT_PARAMS),
                                                 labels))
        params = litellm.limits(entry or {}, params, info)
        params = litellm.deployment_budget(params, source, f"{path}.litellm_params", labels[1], self.warnings)
        self.deployments.append(make_deployment(model_name, params, info, source, path, dep_id=str(dep_id),
                                                where=where, warnings=self.warnings))

    def _skip(self, line: str) -> None:
        self.skipped.append(line)
        self.warnings.append(line)

    def finish(self, entries: int) -> None:
        if entries and not self.deployments:
            self._skip("no deployment is served: every model_list entry was skipped (relaygate starts "
                       "anyway, as LiteLLM does)")


# ---------------------------------------------------------------------------------------------- secrets

_URL_WITH_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_SECRET_WORDS = frozenset({"key", "secret", "token", "password", "passwd", "credentials", "credential"})


def _reject_url_credentials(value: Any, source: str, path: str) -> None:
    """A ConfigError for any URL with ``user:password@`` inside ``value`` (recursively); never echoes it."""
    if isinstance(value, str):
        if _URL_WITH_USERINFO.match(value.strip()):
            raise ConfigError(source, path, "credentials in a URL (user:password@host) are not accepted: "
                                            "put the key in api_key (the URL is logged and sent to clients)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _reject_url_credentials(v, source, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_url_credentials(v, source, f"{path}[{i}]")


def _credential_name(name: str) -> bool:
    return not _SECRET_WORDS.isdisjoint(name.lower().replace("-", "_").split("_"))


credential_name = _credential_name
"""Whether a field's name marks a credential (``api_key``, ``aws_secret_access_key``, ``vertex_credentials``)."""


def _credential_values(value: Any, named: bool) -> Iterator[str]:
    """Strings under a credential-named field (``api_key``, ``aws_secret_access_key``, a service account's
    ``private_key``), including inside a JSON credentials string."""
    if isinstance(value, str):
        if named and not _is_file(value):  # a credentials file's path is no secret (its content is read later)
            yield value
            if value.lstrip().startswith("{"):
                try:
                    yield from _credential_values(orjson.loads(value), False)
                except orjson.JSONDecodeError:
                    pass
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _credential_values(v, named or _credential_name(str(k)))
    elif isinstance(value, list):
        for v in value:
            yield from _credential_values(v, named)


def _is_file(value: str) -> bool:
    return "\n" not in value and len(value) < 4096 and os.path.isfile(value)


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def config_secrets(config: Config) -> set[str]:
    """Every secret ``config`` holds or makes the adapters read: what log lines and error bodies must not show."""
    found: set[str] = set()
    if config.general.master_key:
        found.add(config.general.master_key)
    found.update(k.key for k in config.keys)
    for dep in config.deployments:
        if dep.api_key:
            found.add(dep.api_key)
        found.update(_credential_values(dep.extra, False))
    for ep in config.general.pass_through_endpoints:  # the credentials a custom pass-through route sends
        for name, value in ep.headers.items():
            lower = name.lower()
            if lower in ("authorization", "proxy-authorization", "cookie") or _credential_name(lower):
                found.add(value)
                found.add(value.partition(" ")[2].strip())  # the token of "Bearer <token>"
    r = config.router
    for pw in (r.redis_password, _url_password(r.redis_url), _url_password(config.server.http_proxy),
               _url_password(config.general.database_url)):
        if pw:
            found.add(pw)
    found.update(v for k, v in os.environ.items() if _credential_name(k) and not _is_file(v))
    return found


def _registered(config: Config) -> Config:
    register_secrets(config_secrets(config))
    return config


MASTER_KEY_ENV = ("RELAYGATE_MASTER_KEY", "LITELLM_MASTER_KEY")


def _master_key_from_env(general: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM takes the master key from ``LITELLM_MASTER_KEY`` when the config names none; so do we."""
    if general.get("master_key"):
        return general
    for name in MASTER_KEY_ENV:
        if os.environ.get(name):
            return {**general, "master_key": os.environ[name]}
    return general


def single_model(model: str, alias: str | None = None, api_base: str | None = None,
                 api_version: str | None = None, api_key: str | None = None) -> dict[str, Any]:
    """The LiteLLM config that ``litellm --model M`` runs: that deployment under its name (or ``--alias``)
    and under ``*``, so any model name a client sends reaches it."""
    params: dict[str, Any] = {"model": model}
    for k, v in (("api_base", api_base), ("api_version", api_version), ("api_key", api_key)):
        if v:
            params[k] = v
    return {"model_list": [{"model_name": alias or model, "litellm_params": params},
                           {"model_name": "*", "litellm_params": dict(params)}]}


_CORS_LISTS = ("cors_allow_origins", "cors_allow_methods", "cors_allow_headers", "cors_expose_headers")
_GENERAL_CORS = {"cors_allow_origins", "cors_allow_credentials", "cors_allow_methods", "cors_allow_headers",
                 "cancel_on_disconnect"}
"""LiteLLM's CORS keys of ``general_settings``, and ``cancel_on_disconnect``: they land in the server settings."""
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def _cors_settings(server: dict[str, Any], source: str) -> dict[str, Any]:
    """The CORS keys as LiteLLM also takes them: a list may be a comma-separated string, and
    ``LITELLM_CORS_ORIGINS`` / ``LITELLM_CORS_ALLOW_CREDENTIALS`` apply when the file sets no value."""
    out = dict(server)
    for k in _CORS_LISTS:
        if isinstance(out.get(k), str):
            out[k] = [p.strip() for p in out[k].split(",") if p.strip()]
    origins = os.environ.get("LITELLM_CORS_ORIGINS", "").strip()
    if origins and "cors_allow_origins" not in out:
        out["cors_allow_origins"] = [p.strip() for p in origins.split(",") if p.strip()]
    creds = os.environ.get("LITELLM_CORS_ALLOW_CREDENTIALS", "").strip().lower()
    if creds and "cors_allow_credentials" not in out:
        if creds not in _TRUE | _FALSE:
            raise ConfigError(source, "LITELLM_CORS_ALLOW_CREDENTIALS", "expected true or false")
        out["cors_allow_credentials"] = creds in _TRUE
    return out


# ---------------------------------------------------------------------------------------------- LiteLLM


def _key_warnings(keys: Any, section: str) -> list[str]:
    fields = _fields(KeyConfig)
    if not isinstance(keys, list):
        return []
    return [f"{section}[{i}].{k}: ignored" for i, key in enumerate(keys) if isinstance(key, dict)
            for k in key if k not in fields]


def from_litellm(raw: dict[str, Any], source: str) -> Config:
    """Translate a LiteLLM proxy ``config.yaml`` (already parsed; its ``include:`` files are read relative
    to ``source``'s directory) into a :class:`Config`. LiteLLM's rules are in :mod:`relaygate.config.litellm`."""
    raw, origins, warnings = litellm.merge_includes(raw, source)
    # environment_variables are set first so that os.environ/ references can use them
    env_vars = _expect_mapping(raw.get("environment_variables"), source, "environment_variables")
    for k, v in env_vars.items():
        os.environ.setdefault(str(k), str(v))
    model_list = raw.get("model_list") or []
    data = resolve_env({k: v for k, v in raw.items() if k != "model_list"}, source, "")
    for section in ("litellm_settings", "router_settings", "general_settings"):  # LiteLLM: `key: null` is unset
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if v is not None}
    warnings.extend(f"{key}: ignored" for key in raw if key not in litellm.TOP_LEVEL)

    if not isinstance(model_list, list):
        raise ConfigError(source, "model_list", "expected a list")
    base = os.path.dirname(os.path.abspath(source))
    credentials = litellm.credential_list(data.get("credential_list"), source)
    built = _Deployments()
    for i, entry in enumerate(model_list):
        file, j = origins[i] if i < len(origins) else (source, i)  # where the entry was written
        path = f"model_list[{j}]"
        where = path if file == source else f"{os.path.relpath(file, base)}: {path}"
        entry = _expect_mapping(resolve_env(entry, file, path), file, path)
        params = litellm.with_credential(_expect_mapping(entry.get("litellm_params"), file, f"{path}.litellm_params"),
                                         credentials, file, path)
        info = _expect_mapping(entry.get("model_info"), file, f"{path}.model_info")
        built.warnings.extend(f"{where}.{k}: ignored" for k in entry if k not in litellm.ENTRY_KEYS)
        built.add(entry.get("model_name"), params, info, file, path, where, entry)
    built.finish(len(model_list))
    warnings.extend(built.warnings)
    keys = data.get("relaygate_keys") or []
    warnings.extend(_key_warnings(keys, "relaygate_keys"))

    router_raw: dict[str, Any] = {}
    server_raw: dict[str, Any] = {}
    top: dict[str, Any] = {}
    budget_raw: dict[str, Any] = {}
    ls = _expect_mapping(data.get("litellm_settings"), source, "litellm_settings")
    for k, v in ls.items():
        if k in _LITELLM_SETTINGS_ROUTER:
            router_raw[k] = litellm.router_value(k, v, source, "litellm_settings", warnings)
        elif k == "request_timeout":
            router_raw["timeout"] = v
            server_raw["request_timeout"] = v
        elif k == "set_verbose":
            if v:
                server_raw["log_level"] = "debug"
        elif k == "include_cost_in_streaming_usage":
            server_raw[k] = v
        elif k == "drop_params":
            if not isinstance(v, bool):
                raise ConfigError(source, "litellm_settings.drop_params", "expected true or false")
            if v:  # the global switch: every deployment that does not say otherwise drops
                for dep in built.deployments:
                    dep.extra.setdefault("drop_params", True)
        elif k == "check_provider_endpoint":
            top["check_provider_endpoint"] = bool(v)
        elif k in litellm.GENERAL_FROM_LITELLM_SETTINGS:  # -> GeneralSettings
            budget_raw[k] = v
        elif k in ("cache", "cache_params") or k in _OBSERVE_LITELLM or k in _KEY_POLICY:  # below
            pass
        elif k in _LITELLM_SETTINGS_ACCEPTED:
            pass
        else:
            warnings.append(f"litellm_settings.{k}: ignored")
    server_raw.update(litellm.upstream_tls(ls, os.environ, source, warnings))
    try:
        top["key_policy"] = key_policy(*(ls.get(k) for k in _KEY_POLICY))
    except KeyPolicyError as exc:
        raise ConfigError(source, exc.field, exc.detail) from None
    try:
        top["cache"] = cache_from_litellm(ls.get("cache"), ls.get("cache_params"), warnings)
    except CacheConfigError as exc:
        raise ConfigError(source, exc.field, exc.detail) from None
    try:
        top["observe"] = observe_from_litellm(
            ls, _expect_mapping(data.get("general_settings"), source, "general_settings"),
            _expect_mapping(data.get("relaygate_settings"), source, "relaygate_settings"), warnings, source)
    except ObserveConfigError as exc:
        raise ConfigError(source, exc.field, exc.detail) from None
    rs = _expect_mapping(data.get("router_settings"), source, "router_settings")
    for k, v in rs.items():
        if k in _ROUTER_KEYS:
            router_raw[k] = litellm.router_value(k, v, source, "router_settings", warnings)
        else:
            warnings.append(f"router_settings.{k}: ignored")
    if "timeout" in rs:
        server_raw.setdefault("request_timeout", rs["timeout"])
    if "request_timeout" not in server_raw and os.environ.get("REQUEST_TIMEOUT"):  # LiteLLM's default's variable
        server_raw["request_timeout"] = litellm.seconds_variable(os.environ, "REQUEST_TIMEOUT", source)
    if isinstance(router_raw.get("model_group_alias"), tuple):
        router_raw["model_group_alias"], router_raw["hidden_aliases"] = router_raw["model_group_alias"]

    gs = _expect_mapping(data.get("general_settings"), source, "general_settings")
    general_raw: dict[str, Any] = dict(budget_raw)
    for k, v in gs.items():
        if k in ("max_request_size_mb", "max_response_size_mb"):
            server_raw[_SIZE_KEYS[k]] = litellm.megabytes(v, source, f"general_settings.{k}")
        elif k == "proxy_port":
            server_raw["port"] = v
        elif k in _GENERAL_CORS:
            server_raw[k] = v
        elif k == "pass_through_endpoints":
            general_raw[k] = litellm.pass_through_endpoints(v, source, f"general_settings.{k}", warnings)
        elif k == "litellm_jwtauth":
            general_raw[k] = _jwtauth(v, source, warnings)
        elif k in litellm.GENERAL_KEYS:
            general_raw[k] = v
        elif k in _POOL_KEYS:  # LiteLLM's (Prisma's) pool settings; relaygate_settings' own names win
            server_raw[_POOL_KEYS[k]] = v
        elif k == "fail_closed_rate_limit_enforcement":  # LiteLLM's: Redis unreachable, limited requests get a 503
            router_raw.setdefault("on_redis_failure", "reject" if litellm.flag(v, source, f"general_settings.{k}")
                                  else "local")
        elif k not in _OBSERVE_GENERAL:
            why = litellm.GENERAL_IGNORED_WHY.get(k)
            warnings.append(f"general_settings.{k}: ignored" + (f" ({why})" if why else ""))
    if os.environ.get("STORE_PROMPTS_IN_SPEND_LOGS", "").strip().lower() == "true":  # LiteLLM's: either turns it on
        general_raw["store_prompts_in_spend_logs"] = True

    rg = _expect_mapping(data.get("relaygate_settings"), source, "relaygate_settings")
    for k, v in rg.items():
        if k in _SERVER_KEYS:
            server_raw[k] = v
        elif k != "log_bodies":
            warnings.append(f"relaygate_settings.{k}: ignored")
    litellm.refuse_unenforced(data, rg, source, warnings)

    return _registered(Config(
        deployments=built.deployments,
        keys=_convert(keys, list[KeyConfig], source, "relaygate_keys"),
        router=_convert(router_raw, RouterSettings, source, "router_settings"),
        server=_convert(_cors_settings(server_raw, source), ServerSettings, source, "relaygate_settings"),
        general=_convert(_master_key_from_env(general_raw), GeneralSettings, source, "general_settings"),
        warnings=list(dict.fromkeys(warnings)),
        skipped=built.skipped,
        source=source, document=raw,
        **top,
    ))


_JWT_ROUTE_LISTS = ("admin_allowed_routes", "team_allowed_routes", "public_allowed_routes")
_JWT_TEXT = ("org_id_jwt_field", "end_user_id_jwt_field")


def _jwtauth(value: Any, source: str, warnings: list[str], section: str = "general_settings") -> Any:
    """``general_settings.litellm_jwtauth``: its allowed-route lists must be lists of strings (or null), its
    claim fields strings, as LiteLLM's settings model requires; an entry that is neither a route group name nor
    a path is kept (LiteLLM treats it as a literal route) and warned about."""
    if not isinstance(value, dict):
        return value  # GeneralSettings' own check names it
    for name in _JWT_ROUTE_LISTS:
        entries = value.get(name)
        if entries is None:
            continue
        path = f"{section}.litellm_jwtauth.{name}"
        if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
            raise ConfigError(source, path, "expected a list of route group names (openai_routes, info_routes, "
                              "management_routes ...) and paths")
        for e in entries:
            if not e.startswith("/") and not e.endswith("_routes"):
                warnings.append(f"{path}: {e!r} is neither a LiteLLM route group (..._routes) nor a path: it "
                                "matches no route")
    for name in _JWT_TEXT:
        field = value.get(name)
        if field is not None and not isinstance(field, str):
            raise ConfigError(source, f"{section}.litellm_jwtauth.{name}", "expected a claim name (string)")
    return value


# ------------------------------------------------------------------------------------------------ native

_NATIVE_MODEL_KEYS = {"name", "model", "id", "info"}


def from_native(raw: dict[str, Any], source: str) -> Config:
    """Translate the native TOML layout (see config.example.toml) into a :class:`Config`."""
    warnings: list[str] = []
    data = resolve_env(raw, source, "")
    for key in data:
        if key not in {"server", "auth", "router", "models", "general", "keys"}:
            warnings.append(f"{key}: ignored")
    server = _expect_mapping(data.get("server"), source, "server")
    for k in list(server):
        if k not in _SERVER_KEYS:
            warnings.append(f"server.{k}: ignored")
            server.pop(k)
    router = _expect_mapping(data.get("router"), source, "router")
    for k in list(router):
        if k not in _ROUTER_KEYS:
            warnings.append(f"router.{k}: ignored")
            router.pop(k)
        else:
            router[k] = litellm.router_value(k, router[k], source, "router", warnings)
    general = {**_expect_mapping(data.get("general"), source, "general"),
               **_expect_mapping(data.get("auth"), source, "auth")}
    for k in list(general):
        if k not in _fields(GeneralSettings):
            warnings.append(f"auth.{k}: ignored")
            general.pop(k)
        elif k == "pass_through_endpoints":
            general[k] = litellm.pass_through_endpoints(general[k], source, f"general.{k}", warnings)
        elif k == "litellm_jwtauth":
            general[k] = _jwtauth(general[k], source, warnings, "auth")
    models = data.get("models") or []
    if not isinstance(models, list):
        raise ConfigError(source, "models", "expected an array of tables ([[models]])")
    built = _Deployments()
    for i, entry in enumerate(models):
        path = f"models[{i}]"
        entry = _expect_mapping(entry, source, path)
        params = {k: v for k, v in entry.items() if k not in _NATIVE_MODEL_KEYS}
        params["model"] = entry.get("model")
        info = dict(_expect_mapping(entry.get("info"), source, f"{path}.info"))
        if "id" in entry:
            info["id"] = entry["id"]
        built.add(entry.get("name"), params, info, source, path, path, native=True)
    built.finish(len(models))
    warnings.extend(built.warnings)
    warnings.extend(_key_warnings(data.get("keys"), "keys"))
    return _registered(Config(
        deployments=built.deployments,
        keys=_convert(data.get("keys") or [], list[KeyConfig], source, "keys"),
        router=_convert(router, RouterSettings, source, "router"),
        server=_convert(_cors_settings(server, source), ServerSettings, source, "server"),
        general=_convert(_master_key_from_env(general), GeneralSettings, source, "auth"),
        warnings=list(dict.fromkeys(warnings)),
        skipped=built.skipped,
        source=source,
    ))


def load_config(path: str, text: bytes | None = None) -> Config:
    """Read ``path`` (``.toml`` native; ``.yaml``/``.yml``/anything else LiteLLM YAML) into a Config; ``text``:
    the file's bytes already read (or kept: they are parsed as that file, its includes relative to it)."""
    text = litellm.read_file(path) if text is None else text
    if path.endswith(".toml"):
        try:
            raw = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(path, "", f"invalid TOML: {exc}") from None
        return from_native(raw, path)
    return from_litellm(litellm.parse_yaml(text, path), path)


def validate(config: Config) -> list[str]:
    """Semantic checks beyond types: returns error strings (empty when valid)."""
    errors: list[str] = []
    seen_ids: dict[str, str] = {}
    for i, dep in enumerate(config.deployments):
        where = dep.where or f"model_list[{i}]"
        if dep.id in seen_ids:
            errors.append(f"{where}.model_info.id: duplicate id (also {seen_ids[dep.id]})")
        seen_ids[dep.id] = where
        if dep.provider not in env.PROVIDERS:  # a loaded config skips these; one built in code may not
            errors.append(f"{where}.litellm_params.model: unknown provider `{dep.provider}`")
        if dep.weight is not None and dep.weight < 0:
            errors.append(f"{where}.litellm_params.weight: must be >= 0")
        if dep.cooldown_time is not None and not (dep.cooldown_time >= 0 and math.isfinite(dep.cooldown_time)):
            errors.append(f"{where}.litellm_params.cooldown_time: expected a number of seconds >= 0")
    if config.server.transport not in ("auto", "h1", "aiohttp"):
        errors.append("server.transport: expected one of auto, h1, aiohttp")
    interval = config.server.reload_poll_interval
    if not (interval > 0 and math.isfinite(interval)):
        errors.append("server.reload_poll_interval: expected a positive number of seconds")
    errors.extend(cors.problems(config.server))
    header = config.general.litellm_key_header_name
    if header is not None and not litellm.HEADER_NAME.match(header.strip()):
        errors.append("general_settings.litellm_key_header_name: expected an HTTP header name (letters, digits, "
                      "'-'), such as X-Litellm-Key")
    router = config.router
    if router.redis_host and not router.redis_url:  # the limiter's Redis topology comes from the environment
        from relaygate.config.cache import CacheConfigError, env_topology

        try:
            env_topology(os.environ)
        except CacheConfigError as exc:
            errors.append(f"router_settings.redis_host: {exc}")
    if router.redis_db is not None and router.redis_db < 0:
        errors.append("router_settings.redis_db: expected a database number >= 0")
    if router.redis_host or router.redis_url:  # TLS: a rediss:// URL's options, LiteLLM's REDIS_SSL* variables
        from relaygate.config.redis_tls import RedisTlsError, tls_for_url, tls_from_env

        if router.redis_url and urlsplit(router.redis_url).scheme not in ("redis", "rediss"):
            errors.append("router_settings.redis_url: expected a redis:// or rediss:// URL")
        try:
            tls_for_url(router.redis_url or "", tls_from_env(os.environ), "router_settings.redis_url")
        except RedisTlsError as exc:
            errors.append(str(exc))
    return errors
