"""What a LiteLLM ``config.yaml`` means beyond its types: ``include:`` files, the keys of a ``model_list``
entry, deployment ids, prices, fallback shapes, and which keys relaygate reads.

LiteLLM's proxy is the spec; each rule names where LiteLLM implements it:

- ``include: [a.yaml, ...]`` (``proxy/proxy_server.py``, ``ProxyConfig._process_includes``): every file is
  read relative to the directory of the *main* config and merged into it key by key: a list extends the
  list already there (``model_list`` entries are appended in include order), any other value replaces
  the main file's. An included file's own ``include`` list is appended to the list being processed, so
  nested includes work, still relative to the main file. relaygate refuses a cycle (LiteLLM would loop
  until it runs out of memory) and names a missing file together with the file that included it.
- deployment ids (``router.py``, ``Router._generate_model_id``): ``model_info.id`` when given, else the
  SHA-256 of the model name followed by every ``litellm_params`` key and value (a string as is, a mapping
  as JSON, anything else ``str()``): the id LiteLLM reports in ``x-litellm-model-id``. LiteLLM gives two
  identical entries the same id (both are served, sharing one cooldown and one usage counter); relaygate
  keeps that id for the first and suffixes the next ones ``-2``, ``-3``, ... in file order, so each gets
  its own stats and keeps its id across reloads.
- ``rpm`` / ``tpm`` beside ``litellm_params`` (``router.py``: the entry's, else ``litellm_params``', else
  ``model_info``').
- prices (``types/utils.py``, ``CustomPricingLiteLLMParams``; ``Router._create_deployment`` copies those of
  ``litellm_params`` over ``model_info``): every ``*_cost_*`` key is a price in USD per unit, read from
  both, never sent to the provider.
- fallbacks (``router_utils/fallback_event_handlers.py``): ``[{group: [fallback, ...]}]``, where a fallback
  is a group name or an object ``{"model": group, "messages": [...], ...}`` whose other keys override the
  request; and LiteLLM's "non-standard" lists of names or such objects, which apply to every group.
- an unknown provider (``Router(ignore_invalid_deployments=True)`` in ``ProxyConfig.load_config``): that
  deployment is skipped with an error line, the others are served.
- ``general_settings.pass_through_endpoints`` (``proxy_server.py``, ``initialize_pass_through_endpoints``;
  ``PassThroughGenericEndpoint``): ``path``, ``target``, ``headers`` (``os.environ/NAME`` also inside a value,
  as ``set_env_variables_in_header`` reads it), ``forward_headers``, ``include_subpath``, ``auth``,
  ``cost_per_request``; relaygate checks each entry at load (:func:`pass_through_endpoints`) where LiteLLM
  would fail on the first request.

Invariant: every key relaygate does not read yields exactly one warning naming its path; this module
decides which keys are read (:data:`PROVIDER_PARAMS` and friends; a test keeps them in step with what
the adapters read).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from relaygate.config import env
from relaygate.config.errors import ConfigError
from relaygate.config.litellm_general import DEFAULT_MODELS as DEFAULT_MODELS
from relaygate.config.litellm_general import GENERAL_FROM_LITELLM_SETTINGS as GENERAL_FROM_LITELLM_SETTINGS
from relaygate.config.litellm_general import GENERAL_IGNORED_WHY as GENERAL_IGNORED_WHY
from relaygate.config.litellm_general import GENERAL_KEYS as GENERAL_KEYS
from relaygate.config.litellm_general import refuse_unenforced as refuse_unenforced
from relaygate.core import cache_points

#: the sections of a LiteLLM config relaygate reads (``include`` is merged away before)
TOP_LEVEL = frozenset({"model_list", "router_settings", "litellm_settings", "general_settings",
                       "environment_variables", "relaygate_settings", "relaygate_keys", "credential_list"})
#: keys of a ``model_list`` entry
ENTRY_KEYS = frozenset({"model_name", "litellm_params", "model_info", "rpm", "tpm"})
#: ``model_info`` keys relaygate reads, besides prices
INFO_KEYS = frozenset({"id", "rpm", "tpm", "base_model", "mode", "max_tokens", "max_input_tokens",
                       "max_output_tokens", "access_groups"})
"""``model_info`` keys that are read (with every ``supports_*`` flag and price): the catalog's overrides
(``relaygate.catalog``), ``base_model`` for the parameter rules and the catalog entry, access groups."""

#: request defaults every adapter applies (``relaygate.providers.openai.REQUEST_DEFAULTS``; a test keeps
#: the two equal, so the config never imports the adapters)
REQUEST_DEFAULTS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "presence_penalty",
    "frequency_penalty", "seed", "response_format", "n", "logprobs", "top_logprobs", "reasoning_effort",
    "logit_bias", "parallel_tool_calls", "service_tier",
})
_HEADERS = frozenset({"extra_headers", "headers"})
_OPENAI = REQUEST_DEFAULTS | _HEADERS | {"extra_body"}
_GEMINI = REQUEST_DEFAULTS | _HEADERS | {"top_k", "safety_settings", "cached_content", "dimensions",
                                         "task_type", "input_type", "title", "auto_truncate"}
_CACHE_POINTS = frozenset({"cache_control_injection_points"})
"""Read by the Claude adapters (``core.cache_points``)."""
_VERTEX = _GEMINI | _CACHE_POINTS | {"vertex_project", "vertex_location", "vertex_credentials"}
_TOP_K = REQUEST_DEFAULTS | {"top_k"}
_OLLAMA = _TOP_K | {"keep_alive"}

#: provider -> the other ``litellm_params`` its adapter reads (request defaults, headers, options)
PROVIDER_PARAMS: dict[str, frozenset[str]] = {
    **{name: _OPENAI for name in env.PROVIDERS},
    "azure": _OPENAI | {"azure_ad_token", "tenant_id", "client_id", "client_secret", "azure_scope",
                        "azure_federated_token_file", "azure_authority_host"},
    "anthropic": REQUEST_DEFAULTS | _HEADERS | _CACHE_POINTS | {"top_k", "thinking", "metadata", "container",
                                                                "mcp_servers", "anthropic_beta"},
    "gemini": _GEMINI,
    "vertex_ai": _VERTEX,
    "vertex_ai_beta": _VERTEX,
    "bedrock": _TOP_K | _CACHE_POINTS | {"aws_region_name", "aws_bedrock_runtime_endpoint", "aws_access_key_id",
                         "aws_secret_access_key", "aws_session_token", "aws_profile_name", "aws_role_name",
                         "aws_session_name",
                         "aws_web_identity_token", "aws_web_identity_token_file", "aws_sts_endpoint",
                         "aws_container_credentials_uri", "aws_container_credentials_relative_uri",
                         "aws_container_authorization_token", "aws_container_authorization_token_file",
                         "dimensions", "input_type", "truncate", "normalize"},
    "cohere": _TOP_K,
    "cohere_chat": _TOP_K,
    "ollama": _OLLAMA,
    "ollama_chat": _OLLAMA,
    "mock": REQUEST_DEFAULTS | {"mock_latency_ms", "mock_chunks", "mock_chunk_gap_ms", "mock_embedding_dim",
                                "mock_response"},
}

#: per-deployment parameter rules (``providers.params``), read for every provider
PARAM_RULES = frozenset({"drop_params", "additional_drop_params", "allowed_openai_params"})
PROVIDER_PARAMS = {name: read | PARAM_RULES for name, read in PROVIDER_PARAMS.items()}

#: ``litellm_params`` LiteLLM reads and relaygate does not: why, in the warning
IGNORED_PARAMS = {
    "region_name": "LiteLLM's label for region-based routing (allowed_model_region); relaygate does not "
                   "route by region, and it is not the provider's region: that is aws_region_name / "
                   "vertex_location",
    "mock_response": "only the mock provider answers with mock_response",
}

def check_param_rules(extra: dict[str, Any], source: str, path: str) -> None:
    """``drop_params`` is a boolean, ``additional_drop_params`` / ``allowed_openai_params`` lists of names,
    ``cache_control_injection_points`` LiteLLM's list of injection points (``core.cache_points``)."""
    if "drop_params" in extra and not isinstance(extra["drop_params"], bool):
        raise ConfigError(source, f"{path}.drop_params", "expected true or false")
    for k in ("additional_drop_params", "allowed_openai_params"):
        v = extra.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(n, str) for n in v)):
            raise ConfigError(source, f"{path}.{k}", "expected a list of parameter names")
    if extra.get(cache_points.FIELD) is not None:
        try:
            cache_points.points(extra[cache_points.FIELD])
        except ValueError as exc:
            raise ConfigError(source, f"{path}.{cache_points.FIELD}", str(exc).lstrip(": ")) from None


OVERRIDE_IGNORED = ("a fallback is tried with the client's own request: per-fallback request overrides "
                    "are not supported yet")


# ------------------------------------------------------------------------------------------------ files


def read_file(path: str, included_by: tuple[str, str] | None = None) -> bytes:
    """A config file's bytes; ``included_by`` = (file, field) that named it, for the error when it is missing."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        if included_by is not None:
            what = "not found" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror})"
            raise ConfigError(included_by[0], included_by[1], f"included file {what}: {path}") from None
        raise ConfigError(path, "", f"cannot read file: {exc.strerror}") from None


def load_yaml(path: str, included_by: tuple[str, str] | None = None) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty for an empty file); ``included_by`` as :func:`read_file`."""
    return parse_yaml(read_file(path, included_by), path)


def parse_yaml(text: bytes, path: str) -> dict[str, Any]:
    """The mapping in ``text``, the YAML file ``path`` (empty for an empty file)."""
    import yaml  # type: ignore[import-untyped]

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"invalid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "", "expected a mapping at the top level")
    return raw


#: where a ``model_list`` entry was written: (file, index in that file's ``model_list``)
Origin = tuple[str, int]


def merge_includes(config: dict[str, Any], source: str) -> tuple[dict[str, Any], list[Origin], list[str]]:
    """``config`` with its ``include:`` files merged in as LiteLLM merges them (see the module docstring),
    the origin of each ``model_list`` entry, and warnings. ``config`` itself is not modified."""
    entries = config.get("model_list")
    origins: list[Origin] = [(source, j) for j in range(len(entries))] if isinstance(entries, list) else []
    if "include" not in config:
        return config, origins, []
    merged = dict(config)
    first = merged.pop("include")
    if not isinstance(first, list):
        raise ConfigError(source, "include", "expected a list of file paths (include: [models.yaml])")
    base = os.path.dirname(os.path.abspath(source))
    root = os.path.realpath(source)
    # (name, the file that listed it, its index there, the chain of files that led to it)
    queue: list[tuple[Any, str, int, tuple[str, ...]]] = [(n, source, k, (root,)) for k, n in enumerate(first)]
    done: set[str] = set()
    warnings: list[str] = []
    for name, parent, k, chain in queue:  # nested includes are appended while iterating, as in LiteLLM
        field = f"include[{k}]"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(parent, field, "expected a file path")
        path = os.path.join(base, name)
        real = os.path.realpath(path)
        if real in chain:
            cycle = " -> ".join(os.path.relpath(p, base) for p in (*chain, real))
            raise ConfigError(parent, field, f"include cycle: {cycle}")
        if real in done:
            warnings.append(f"{field}: {name} is included more than once: its content is merged again, "
                            "as LiteLLM does")
        done.add(real)
        data = load_yaml(path, (parent, field))
        nested = data.pop("include", None)
        for key, value in data.items():
            if isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = [*merged[key], *value]
                if key == "model_list":
                    origins.extend((path, j) for j in range(len(value)))
            else:
                merged[key] = value
                if key == "model_list":
                    origins = [(path, j) for j in range(len(value))] if isinstance(value, list) else []
        if nested is not None:
            if not isinstance(nested, list):
                raise ConfigError(path, "include", "expected a list of file paths")
            queue.extend((n, path, j, (*chain, real)) for j, n in enumerate(nested))
    return merged, origins, warnings


# ---------------------------------------------------------------------------------------------- entries


def split_provider(model: str) -> tuple[str, str]:
    """``openai/gpt-4o`` -> (``openai``, ``gpt-4o``); a bare name is an OpenAI model, as in LiteLLM."""
    provider, sep, rest = model.partition("/")
    if not sep:
        return "openai", model
    return provider, rest


def provider_of(params: dict[str, Any]) -> tuple[str, str, str]:
    """(provider, upstream model, ``provider/upstream``) of ``litellm_params`` whose ``model`` is a string;
    ``custom_llm_provider`` names the provider when given (LiteLLM's ``get_llm_provider``)."""
    model: str = params["model"]
    custom = params.get("custom_llm_provider")
    if isinstance(custom, str) and custom:
        upstream = model[len(custom) + 1:] if model.startswith(custom + "/") else model
        return custom, upstream, f"{custom}/{upstream}"
    provider, upstream = split_provider(model)
    return provider, upstream, model


def litellm_id(model_name: str, params: dict[str, Any]) -> str:
    """The id LiteLLM's router generates for an entry without ``model_info.id``."""
    parts = [model_name]
    for k, v in params.items():
        parts.append(k if isinstance(k, str) else str(k))
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, dict):
            parts.append(json.dumps(v, default=str))
        else:
            parts.append(str(v))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def is_price(key: str) -> bool:
    """``input_cost_per_token``, ``cache_read_input_token_cost``, ...: a LiteLLM price key."""
    return "cost" in key.split("_")


def _amount(value: Any, source: str, field: str, what: str) -> float:
    """A USD amount >= 0 (``what`` names it in the error); YAML reads 1e-6 (no dot) as a string, which
    LiteLLM's pydantic takes, so a numeric string is one too."""
    x = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            pass
    if not (math.isfinite(x) and x >= 0):
        raise ConfigError(source, field, f"expected {what} (a number >= 0), got {value!r}")
    return x


def _price(value: Any, source: str, field: str) -> float:
    return _amount(value, source, field, "a price")


def prices(params: dict[str, Any], info: dict[str, Any], source: str, paths: tuple[str, str],
           labels: tuple[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, float], list[str]]:
    """``params`` without prices (they are never sent upstream), ``info`` with the prices of ``params``
    over its own (as LiteLLM's router copies them), the prices by key, and warnings for price keys whose
    value is not one number (tables such as ``search_context_cost_per_query`` are not read yet).
    ``paths`` name (``model_info``, ``litellm_params``) in ``source`` for errors, ``labels`` in warnings."""
    found: dict[str, float] = {}
    warnings: list[str] = []
    info_out = dict(info)
    for table, path, label in ((info, paths[0], labels[0]), (params, paths[1], labels[1])):
        for k, v in table.items():
            if not (isinstance(k, str) and is_price(k)):
                continue
            if isinstance(v, (dict, list)):
                warnings.append(f"{label}.{k}: ignored (not one price)")
                continue
            found[k] = info_out[k] = _price(v, source, f"{path}.{k}")
    if not found and not warnings:
        return params, info, {}, []
    kept = {k: v for k, v in params.items() if not (isinstance(k, str) and is_price(k))}
    return kept, info_out, found, warnings


def unread_keys(params: dict[str, Any], info: dict[str, Any], provider: str, fields: frozenset[str],
                labels: tuple[str, str]) -> list[str]:
    """One warning per key of ``litellm_params`` / ``model_info`` (named by ``labels`` in the text) that
    relaygate does not read; ``fields`` are the params that are Deployment fields."""
    out = []
    read = PROVIDER_PARAMS.get(provider, frozenset())
    for k in params:
        if k in fields or k in read or k == "custom_llm_provider" or is_price(str(k)):
            continue
        reason = IGNORED_PARAMS.get(k)
        out.append(f"{labels[1]}.{k}: ignored" + (f" ({reason})" if reason else ""))
    out.extend(f"{labels[0]}.{k}: ignored" for k in info
               if k not in INFO_KEYS and not is_price(str(k)) and not str(k).startswith("supports_"))
    return out


def limits(entry: dict[str, Any], params: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``rpm`` / ``tpm`` as LiteLLM's router reads them: the entry's, else
    ``litellm_params``', else ``model_info``'."""
    out = params
    for k in ("rpm", "tpm"):
        value = entry.get(k)
        if value is None and params.get(k) is None:
            value = info.get(k)
        if value is not None:
            if out is params:
                out = dict(params)
            out[k] = value
    return out


# ---------------------------------------------------------------------------------------------- budgets

_PERIOD = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
"""A budget period as ``relaygate.budgets.periods.parse`` reads it (that package imports the config, so the
config checks the form itself; a test keeps the two in step)."""


def _period(value: Any, source: str, path: str) -> str:
    m = _PERIOD.match(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) <= 0:
        raise ConfigError(source, path, f"expected a period such as 30s, 10m, 24h, 1d, 7d or 1mo, got {value!r}")
    return str(value).strip()


def _budget(value: Any, source: str, path: str) -> float:
    return _amount(value, source, path, "a budget in USD")


def provider_budget_config(value: Any, source: str, path: str) -> dict[str, dict[str, Any]] | None:
    """``router_settings.provider_budget_config`` (LiteLLM's ``{provider: {budget_limit, time_period}}``;
    ``max_budget`` / ``budget_duration`` are accepted for the two, as LiteLLM's ``BudgetConfig``), checked:
    a missing or negative budget or an unknown period is a :class:`ConfigError` naming the entry."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(source, path, f"expected a mapping of provider names, got {type(value).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for provider, entry in value.items():
        where = f"{path}.{provider}"
        if not isinstance(entry, dict):
            raise ConfigError(source, where, "expected a mapping with budget_limit and time_period")
        limit = entry.get("budget_limit", entry.get("max_budget"))
        period = entry.get("time_period", entry.get("budget_duration"))
        if limit is None or period is None:
            raise ConfigError(source, where, "expected both budget_limit (USD) and time_period (1d, 7d, 1mo ...)")
        out[str(provider)] = {"budget_limit": _budget(limit, source, f"{where}.budget_limit"),
                              "time_period": _period(period, source, f"{where}.time_period")}
    return out


def deployment_budget(params: dict[str, Any], source: str, path: str, label: str,
                      warnings: list[str]) -> dict[str, Any]:
    """``params`` with ``max_budget`` / ``budget_duration`` checked (LiteLLM's deployment budget, which needs
    both: one alone is dropped with a warning naming ``label``)."""
    limit, period = params.get("max_budget"), params.get("budget_duration")
    if limit is None and period is None:
        return params
    out = dict(params)
    if limit is None or period is None:
        given = "max_budget" if limit is not None else "budget_duration"
        warnings.append(f"{label}.{given}: ignored (a deployment budget needs both max_budget and "
                        "budget_duration)")
        out.pop("max_budget", None)
        out.pop("budget_duration", None)
        return out
    out["max_budget"] = _budget(limit, source, f"{path}.max_budget")
    out["budget_duration"] = _period(period, source, f"{path}.budget_duration")
    return out


# -------------------------------------------------------------------------------------------- fallbacks

def model_group_alias(value: Any, source: str, path: str) -> tuple[dict[str, str], list[str]]:
    """``router_settings.model_group_alias`` in LiteLLM's two shapes, ``{alias: group}`` and ``{alias: {model:
    group, hidden: true}}``: the alias table, and the aliases left out of the model lists (``hidden``)."""
    if not isinstance(value, dict):
        raise ConfigError(source, path, "expected a mapping of alias -> model group")
    aliases: dict[str, str] = {}
    hidden: list[str] = []
    for alias, target in value.items():
        where = f"{path}.{alias}"
        if isinstance(target, dict):
            unknown = set(target) - {"model", "hidden"}
            if unknown:
                raise ConfigError(source, where, f"unknown field(s) {sorted(unknown)}: expected model and hidden")
            model, hide = target.get("model"), target.get("hidden", False)
            if not isinstance(hide, bool):
                raise ConfigError(source, f"{where}.hidden", "expected true or false")
            if hide:
                hidden.append(str(alias))
        else:
            model = target
        if not isinstance(model, str) or not model:
            raise ConfigError(source, where, "expected the name of a model group")
        aliases[str(alias)] = model
    return aliases, hidden


def credential_list(value: Any, source: str) -> dict[str, dict[str, Any]]:
    """LiteLLM's top-level ``credential_list`` (``[{credential_name, credential_values: {api_key, api_base,
    ...}, credential_info}]``) by name; ``os.environ/`` references are already resolved."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigError(source, "credential_list", "expected a list of {credential_name, credential_values}")
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(value):
        where = f"credential_list[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(source, where, "expected {credential_name, credential_values, credential_info}")
        name, values = item.get("credential_name"), item.get("credential_values")
        if not isinstance(name, str) or not name:
            raise ConfigError(source, f"{where}.credential_name", "expected a name")
        if name in out:
            raise ConfigError(source, f"{where}.credential_name", f"{name!r} is named twice")
        if not isinstance(values, dict) or not values:
            raise ConfigError(source, f"{where}.credential_values", "expected a mapping of litellm_params "
                              "(api_key, api_base, ...)")
        out[name] = values
    return out


def with_credential(params: dict[str, Any], credentials: dict[str, dict[str, Any]], source: str,
                    path: str) -> dict[str, Any]:
    """``params`` over the values of the credential its ``litellm_credential_name`` names (the deployment's
    own values win, as LiteLLM merges them). Unlike LiteLLM, which then finds no values and calls the
    provider with whatever the environment holds, a name ``credential_list`` does not define is an error:
    another account's key from the environment is the wrong answer."""
    name = params.get("litellm_credential_name")
    if name is None:
        return params
    if not isinstance(name, str) or name not in credentials:
        known = ", ".join(sorted(credentials)) or "none"
        raise ConfigError(source, f"{path}.litellm_params.litellm_credential_name",
                          f"no credential {name!r} in credential_list (defined: {known})")
    merged = {**credentials[name], **params}
    del merged["litellm_credential_name"]
    return merged


FALLBACK_LISTS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def _target(item: dict[str, Any], source: str, where: str, warnings: list[str]) -> str:
    model = item.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(source, f"{where}.model", "expected the fallback's model group name")
    warnings.extend(f"{where}.{k}: ignored ({OVERRIDE_IGNORED})" for k in item if k != "model")
    return model


def _targets(value: Any, source: str, where: str, warnings: list[str]) -> Any:
    if not isinstance(value, list):
        return value  # the type check names it
    return [_target(t, source, f"{where}[{j}]", warnings) if isinstance(t, dict) else t
            for j, t in enumerate(value)]


def fallback_table(value: Any, source: str, path: str, warnings: list[str]) -> Any:
    """A LiteLLM fallback list in relaygate's one shape, ``[{group: [group, ...]}]``: object fallbacks
    become their ``model`` (their request overrides are reported, not applied); names or objects given
    without a group apply to every group (``"*"``), as LiteLLM's non-standard format does."""
    if not isinstance(value, list):
        return value
    table: list[Any] = []
    every: list[Any] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(item, str):
            every.append(item)
        elif isinstance(item, dict) and isinstance(item.get("model"), str):
            every.append(_target(item, source, where, warnings))
        elif isinstance(item, dict):
            table.append({g: _targets(t, source, f"{where}.{g}", warnings) for g, t in item.items()})
        else:
            table.append(item)  # the type check names it
    if every:
        table.append({"*": every})
    return table


def default_fallbacks(value: Any, source: str, path: str, warnings: list[str]) -> Any:
    """``default_fallbacks``: names; an object fallback becomes its ``model``."""
    return _targets(value, source, path, warnings)


# ------------------------------------------------------------------------------------ pass-through routes

#: keys of a ``general_settings.pass_through_endpoints`` entry relaygate reads (LiteLLM's
#: ``PassThroughGenericEndpoint``; ``auth`` and ``forward_headers`` as its proxy reads them)
PASS_THROUGH_KEYS = frozenset({"path", "target", "headers", "forward_headers", "include_subpath", "auth",
                               "cost_per_request", "id"})
_ROUTE_PATH = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$")
_ENV_IN_VALUE = "os.environ/"


def _header_value(raw: Any, source: str, path: str) -> str:
    """A header value of an entry: a string, number or boolean; ``os.environ/NAME`` inside it (LiteLLM's
    ``Bearer os.environ/KEY``: the rest of the value names the variable) replaced by the variable's value."""
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif isinstance(raw, (int, float)):
        raw = str(raw)
    if not isinstance(raw, str):
        raise ConfigError(source, path, f"expected a string, got {type(raw).__name__}")
    value: str = raw
    i = value.find(_ENV_IN_VALUE)
    if i >= 0:
        name = value[i + len(_ENV_IN_VALUE):]
        if name not in os.environ:
            raise ConfigError(source, path, f"environment variable {name} is not set")
        value = value[:i] + os.environ[name]
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(source, path, "a header value cannot hold CR, LF or NUL")
    return value


def flag(value: Any, source: str, path: str) -> bool:
    """A boolean as LiteLLM's proxy reads these flags (``str(value).lower() == "true"``), but strict."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(source, path, f"expected true or false, got {value!r}")


def megabytes(value: Any, source: str, path: str) -> int:
    """A size in MB (LiteLLM's ``max_request_size_mb`` ...) as bytes; a config error unless a number > 0."""
    mb = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(value, str):
        try:
            mb = float(value)
        except ValueError:
            pass
    if mb is None or not 0 < mb < 2**40:
        raise ConfigError(source, path, f"expected a size in MB (a number > 0), got {value!r}")
    return int(mb * 1024 * 1024)


def pass_through_endpoints(value: Any, source: str, path: str, warnings: list[str]) -> list[dict[str, Any]]:
    """``general_settings.pass_through_endpoints`` checked entry by entry: a literal ``path`` (no parameters,
    no ``.`` or ``..`` segments), an absolute ``http(s)`` ``target`` without credentials in it, string
    headers, boolean flags, a finite ``cost_per_request`` >= 0, no path twice. Unknown keys are warned about."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(source, path, "expected a list of endpoints (path, target, headers ...)")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(source, where, "expected a mapping with path and target")
        route = entry.get("path")
        if not isinstance(route, str) or not route:
            raise ConfigError(source, f"{where}.path", "expected the route, such as /bria")
        route = route.rstrip("/") if route != "/" else route
        segments = route.split("/")[1:]
        if _ROUTE_PATH.match(route) is None or any(s in (".", "..") for s in segments) or "%" in route:
            raise ConfigError(source, f"{where}.path", f"expected a literal path such as /bria (segments of "
                                                       f"letters, digits and -._~), got {route!r}")
        if route in seen:
            raise ConfigError(source, f"{where}.path", f"{route} is already {path}[{seen[route]}]")
        seen[route] = i
        target = entry.get("target")
        parsed = urlsplit(target) if isinstance(target, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(source, f"{where}.target", "expected an absolute http:// or https:// URL")
        if parsed.username is not None or parsed.password is not None:
            raise ConfigError(source, f"{where}.target", "credentials in a URL (user:password@host) are not "
                                                         "accepted: put them in headers")
        if parsed.fragment or any(c in target for c in " \r\n\t\0"):  # type: ignore[operator]
            raise ConfigError(source, f"{where}.target", "expected a URL without spaces or a #fragment")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise ConfigError(source, f"{where}.headers", "expected a mapping of header names to values")
        hs: dict[str, str] = {}
        for k, v in headers.items():
            if not isinstance(k, str) or not HEADER_NAME.match(k):
                raise ConfigError(source, f"{where}.headers", f"invalid header name {k!r}")
            hs[k] = _header_value(v, source, f"{where}.headers.{k}")
        item: dict[str, Any] = {"path": route, "target": target, "headers": hs}
        for k in ("forward_headers", "include_subpath", "auth"):
            if entry.get(k) is not None:
                item[k] = flag(entry[k], source, f"{where}.{k}")
        if entry.get("cost_per_request") is not None:
            item["cost_per_request"] = _amount(entry["cost_per_request"], source, f"{where}.cost_per_request",
                                               "a price per request in USD")
        if entry.get("id") is not None:
            item["id"] = str(entry["id"])
        warnings.extend(f"{where}.{k}: ignored" for k in entry if k not in PASS_THROUGH_KEYS)
        out.append(item)
    return out


HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP header name (RFC 9110 token)."""


def router_value(key: str, value: Any, source: str, section: str, warnings: list[str]) -> Any:
    """A ``router_settings`` / ``litellm_settings`` value; fallback lists in LiteLLM's other shapes made
    ``[{group: [group, ...]}]``."""
    if key in FALLBACK_LISTS:
        return fallback_table(value, source, f"{section}.{key}", warnings)
    if key == "default_fallbacks":
        return default_fallbacks(value, source, f"{section}.{key}", warnings)
    if key in ("provider_budget_config", "tag_budget_config"):  # the same shape: {name: {budget, period}}
        return provider_budget_config(value, source, f"{section}.{key}")
    if key == "model_group_alias":
        return model_group_alias(value, source, f"{section}.{key}")
    return value


def upstream_tls(settings: Mapping[str, Any], env: Mapping[str, str], source: str,
                 warnings: list[str]) -> dict[str, Any]:
    """LiteLLM's upstream connection options as ``relaygate_settings``: ``ssl_verify`` (true, false, or a CA
    bundle's path; else ``SSL_VERIFY``), ``ssl_certificate`` (a client certificate; else ``SSL_CERTIFICATE``)
    and ``force_ipv4``. A file that is not there is a config error naming the setting."""
    out: dict[str, Any] = {}
    ipv4 = settings.get("force_ipv4")
    if ipv4 is not None:
        if not isinstance(ipv4, bool):
            raise ConfigError(source, "litellm_settings.force_ipv4", f"expected true or false (got {ipv4!r})")
        out["force_ipv4"] = ipv4
    verify = settings.get("ssl_verify")
    where = "litellm_settings.ssl_verify"
    if verify is None and env.get("SSL_VERIFY"):
        verify, where = env["SSL_VERIFY"], "SSL_VERIFY"
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        verify = verify.strip().lower() in ("true", "1", "yes")
    if verify is not None:
        if not isinstance(verify, bool) and not (isinstance(verify, str) and os.path.isfile(verify)):
            raise ConfigError(source, where, f"expected true, false or the path of a CA bundle file (got {verify!r})")
        out["ssl_verify"] = verify
        if verify is False:
            warnings.append(f"{where}: false: upstream TLS certificates are not verified (anyone on the path can "
                            "read and change requests, keys included)")
    cert = settings.get("ssl_certificate")
    where = "litellm_settings.ssl_certificate"
    if cert is None and env.get("SSL_CERTIFICATE"):
        cert, where = env["SSL_CERTIFICATE"], "SSL_CERTIFICATE"
    if cert is not None:
        if not isinstance(cert, str) or not os.path.isfile(cert):
            raise ConfigError(source, where, f"expected the path of a PEM certificate file (got {cert!r})")
        out["ssl_certificate"] = cert
    return out


def seconds_variable(env: Mapping[str, str], name: str, source: str) -> float:
    """A number of seconds from the environment variable ``name`` (a config error naming it otherwise)."""
    try:
        return float(env[name])
    except ValueError:
        raise ConfigError(source, name, "expected a number of seconds") from None
