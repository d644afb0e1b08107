"""The loaded catalog: lookups by (provider, model) and by LiteLLM-style names, the LiteLLM cost-map
override, and a deployment's own ``model_info`` / prices over both.

Lookup rules (each step tried in order; the first hit wins; nothing found is ``None``, never an error):

1. the provider's canonical section (``cohere_chat`` -> ``cohere``, ``vertex_ai_beta`` -> ``vertex_ai``),
   then the sections it ``extends`` (``azure`` -> ``openai``; ``vertex_ai`` -> ``gemini``, ``anthropic``);
   in each, the override file's entry before the shipped one;
2. the id as written, then its provider spellings: Bedrock without ``converse/`` / ``invoke/`` and without
   a cross-region prefix (``us.``, ``eu.``, ``apac.``, ``global.`` ...), Vertex's ``@`` date separator as
   ``-``, Gemini's ``models/`` prefix, Fireworks' ``accounts/fireworks/models/`` prefix;
3. only then the id without a trailing date (``-2025-04-14``, ``-20250514``) or ``-latest``, and only
   when the entry found is not marked ``exact`` (a model whose snapshots are priced differently lists
   each of them instead).

An entry found in a section the provider ``extends`` keeps its service-tier prices (``*_priority``,
``*_flex`` ...) only for the tiers the provider's ``inherit_service_tiers`` lists for that model: each
provider prices its service tiers itself (LiteLLM's ``azure/gpt-4o`` has no priority price although
``gpt-4o`` has one).

Results are memoised (bounded), so a lookup after the first is one dict access.
"""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.parse
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import msgspec
import orjson

from relaygate.catalog.entry import (
    FLAGS,
    MODES,
    SERVICE_SUFFIXES,
    SERVICE_TIERS,
    CatalogError,
    ModelEntry,
    from_litellm,
    from_ours,
    split_litellm_prices,
)
from relaygate.config.model import Deployment

log = logging.getLogger("relaygate.catalog")

OVERRIDE_ENV = "LITELLM_MODEL_COST_MAP_URL"
"""LiteLLM's variable naming its cost map; relaygate reads it when it is a local path or ``file://`` URL."""

#: deployment providers that read another provider's section
_CANONICAL = {"cohere_chat": "cohere", "vertex_ai_beta": "vertex_ai", "bedrock_converse": "bedrock",
              "azure_text": "azure"}
_BEDROCK_ROUTE = re.compile(r"^(?:converse|invoke|converse_like)/")
_BEDROCK_REGION_PATH = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d/")
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|global|jp|au|ca|us-gov)\.")
_DATED = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")
_MEMO_MAX = 4096


def canonical_provider(provider: str) -> str:
    """The catalog section a provider name reads (LiteLLM's ``litellm_provider`` values included:
    ``vertex_ai-language-models`` -> ``vertex_ai``)."""
    provider = _CANONICAL.get(provider, provider)
    if provider.startswith("vertex_ai"):
        return "vertex_ai"
    if provider.startswith("fireworks_ai"):
        return "fireworks_ai"
    return provider


def _spellings(provider: str, model: str) -> list[str]:
    names = [model]
    if "@" in model:
        names.append(model.replace("@", "-"))
    if provider == "bedrock":
        bare = _BEDROCK_REGION_PATH.sub("", _BEDROCK_ROUTE.sub("", model))
        names.append(bare)
        names.append(_BEDROCK_GEO.sub("", bare))
    elif provider in ("gemini", "vertex_ai") and model.startswith("models/"):
        names.append(model[7:])
    elif provider == "fireworks_ai" and model.startswith("accounts/fireworks/models/"):
        names.append(model[26:])
    return list(dict.fromkeys(names))


class Catalog:
    """Immutable after construction; build it once (:func:`default_catalog`) and share it."""

    def __init__(self, data: dict[str, Any], override: dict[str, Any] | None = None, *,
                 override_source: str = "") -> None:
        if data.get("format") != "relaygate-model-catalog" or data.get("version") != 1:
            raise CatalogError("not a relaygate model catalog (format 'relaygate-model-catalog', version 1)")
        self.source_date: str = str(data.get("source_date", ""))
        self.override_source = override_source
        self._models: dict[str, dict[str, ModelEntry]] = {}
        self._extends: dict[str, tuple[str, ...]] = {}
        self._keep_tiers: dict[str, dict[str, tuple[str, ...]]] = {}
        self._bare: dict[str, ModelEntry] = {}
        for provider, section in data.get("providers", {}).items():
            extends = section.get("extends", [])
            self._extends[provider] = tuple(extends)
            self._keep_tiers[provider] = _keep_tiers(provider, section.get("inherit_service_tiers", {}))
            table = self._models.setdefault(provider, {})
            for model, raw in section.get("models", {}).items():
                entry = from_ours(provider, model, raw)
                for name in (model, *raw.get("aliases", ())):
                    if name in table:
                        raise CatalogError(f"{provider}/{name}: listed twice")
                    table[name] = entry
                    self._bare.setdefault(name, entry)
        for provider, extends in self._extends.items():
            for parent in extends:
                if parent not in self._models:
                    raise CatalogError(f"{provider}.extends: unknown provider {parent!r}")
        self._override: dict[str, dict[str, ModelEntry]] = {}
        self._override_bare: dict[str, ModelEntry] = {}
        for key, raw in (override or {}).items():
            lp = raw.get("litellm_provider") if isinstance(raw, dict) else None
            provider = canonical_provider(lp) if isinstance(lp, str) and lp else "openai"
            name = key.split("/", 1)[1] if key.startswith(f"{provider}/") else key
            found = from_litellm(name, raw, provider)
            if found is not None:
                self._override.setdefault(provider, {})[name] = found
                self._override_bare.setdefault(key, found)
        self._memo: dict[tuple[str, str], ModelEntry | None] = {}

    @property
    def model_count(self) -> int:
        """Distinct model entries served: the shipped ones (aliases counted once) and the override file's."""
        shipped = {id(e) for table in self._models.values() for e in table.values()}
        return len(shipped) + sum(len(t) for t in self._override.values())

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def shipped_data(cls) -> dict[str, Any]:
        raw = resources.files("relaygate.catalog").joinpath("models.json").read_bytes()
        data: dict[str, Any] = orjson.loads(raw)
        return data

    @classmethod
    def load(cls, override_path: str | None = None) -> Catalog:
        """The shipped catalog, with the LiteLLM cost map at ``override_path`` (a local file) over it."""
        override = None
        if override_path:
            try:
                with open(override_path, "rb") as f:
                    override = orjson.loads(f.read())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise CatalogError(f"model cost map {override_path}: cannot be read: {exc}") from None
            if not isinstance(override, dict):
                raise CatalogError(f"model cost map {override_path}: expected a JSON object of models")
        return cls(cls.shipped_data(), override, override_source=override_path or "")

    # -- lookups --------------------------------------------------------------------------------------

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self._models) | frozenset(self._override)

    def lookup(self, provider: str, model: str) -> ModelEntry | None:
        """The entry for ``model`` as ``provider`` serves it (rules in the module docstring)."""
        key = (provider, model)
        memo = self._memo
        if key in memo:
            return memo[key]
        found = self._find(provider, model)
        if len(memo) < _MEMO_MAX:
            memo[key] = found
        return found

    def lookup_name(self, name: str) -> ModelEntry | None:
        """An entry by a LiteLLM-style name: ``gpt-4o``, ``openai/gpt-4o``, ``anthropic/claude-...``,
        ``bedrock/anthropic.claude-...``, or a bare id of any provider (``claude-3-5-haiku-20241022``)."""
        provider, sep, rest = name.partition("/")
        if sep and (provider in self.providers or provider in _CANONICAL):
            return self.lookup(provider, rest)
        found = self.lookup("openai", name)
        if found is None:
            found = self._override_bare.get(name) or self._bare.get(name)
        return found

    def _chain(self, provider: str) -> list[str]:
        out: list[str] = []
        todo = [canonical_provider(provider)]
        while todo:
            p = todo.pop(0)
            if p not in out:
                out.append(p)
                todo.extend(self._extends.get(p, ()))
        return out

    def _exact(self, provider: str, model: str) -> ModelEntry | None:
        chain = self._chain(provider)
        for p in chain:
            for name in _spellings(p, model):
                entry = self._override.get(p, {}).get(name) or self._models.get(p, {}).get(name)
                if entry is not None:
                    return entry if p == chain[0] else self._inherited(chain[0], entry)
        return None

    def _inherited(self, provider: str, entry: ModelEntry) -> ModelEntry:
        """``entry`` (another provider's) as ``provider`` serves it: without the service-tier prices
        ``provider`` does not keep (``inherit_service_tiers``)."""
        keep = tuple(f"_{t}" for t in self._keep_tiers.get(provider, {}).get(entry.model, ()))
        drop = {k for k in entry.prices if k.endswith(SERVICE_SUFFIXES) and not k.endswith(keep)}
        if not drop:
            return entry
        out: ModelEntry = msgspec.structs.replace(entry, prices={k: v for k, v in entry.prices.items()
                                                                  if k not in drop})
        return out

    def _find(self, provider: str, model: str) -> ModelEntry | None:
        entry = self._exact(provider, model)
        if entry is not None:
            return entry
        for name in _spellings(canonical_provider(provider), model):
            undated = _DATED.sub("", name)
            if undated != name:
                entry = self._exact(provider, undated)
                if entry is not None and not entry.exact:
                    return entry
        return None

    # -- deployments ----------------------------------------------------------------------------------

    def for_deployment(self, dep: Deployment) -> ModelEntry | None:
        """What a deployment costs and can do: the catalog's entry (by ``model_info.base_model`` when given,
        LiteLLM's way to price an Azure deployment name) with the deployment's ``model_info`` over it.

        A deployment that gives any price (``litellm_params`` / ``model_info``: ``input_cost_per_token``,
        ``input_cost_per_second`` ...) replaces the catalog's prices as a set, tiers included, as LiteLLM's
        custom pricing does, except that a deployment giving ``input_cost_per_token`` or
        ``output_cost_per_token`` keeps the catalog's service-tier prices (``*_priority``, ``*_flex`` ...)
        it does not give, as LiteLLM's router; limits, mode and ``supports_*`` flags override one by one.
        ``None`` when neither the catalog nor the deployment says anything."""
        info = dep.model_info
        base_model = info.get("base_model")
        entry = None
        if isinstance(base_model, str) and base_model:
            entry = self.lookup_name(base_model) if "/" in base_model else self.lookup(dep.provider, base_model)
        if entry is None:
            entry = self.lookup(dep.provider, dep.upstream_model)
        changes: dict[str, Any] = {}
        if dep.costs:
            costs = dict(dep.costs)
            if entry is not None and ("input_cost_per_token" in costs or "output_cost_per_token" in costs):
                # LiteLLM's router (_inherit_builtin_service_tier_pricing): a deployment priced per token keeps
                # the catalog's service-tier prices it does not give itself
                for key, price in entry.prices.items():
                    if key.endswith(SERVICE_SUFFIXES) and key not in costs:
                        costs[key] = price
            prices, tiers = split_litellm_prices(costs)
            changes["prices"], changes["tiers"] = prices, tiers
        mode = info.get("mode")
        if isinstance(mode, str) and mode in MODES:
            changes["mode"] = mode
        for field, keys in (("max_input_tokens", ("max_input_tokens",)),
                            ("max_output_tokens", ("max_output_tokens", "max_tokens"))):
            for k in keys:
                v = info.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    changes[field] = v
                    break
        flags = {f: info[f"supports_{f}"] for f in FLAGS if isinstance(info.get(f"supports_{f}"), bool)}
        if not changes and not flags:
            return entry
        if entry is None:
            entry = ModelEntry(provider=dep.provider, model=dep.upstream_model, origin="deployment")
        if flags:
            changes["supports"] = frozenset(f for f in FLAGS if flags.get(f, f in entry.supports))
        out: ModelEntry = _replace(entry, changes)
        return out


def _keep_tiers(provider: str, raw: Any) -> dict[str, tuple[str, ...]]:
    """A section's ``inherit_service_tiers`` (model id -> service tiers), checked."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{provider}.inherit_service_tiers: expected an object")
    out: dict[str, tuple[str, ...]] = {}
    for model, tiers in raw.items():
        if not isinstance(tiers, list) or any(t not in SERVICE_TIERS for t in tiers):
            raise CatalogError(f"{provider}.inherit_service_tiers.{model}: expected a list of service tiers "
                               f"({list(SERVICE_TIERS)})")
        out[str(model)] = tuple(tiers)
    return out


def _replace(entry: ModelEntry, changes: dict[str, Any]) -> ModelEntry:
    out: ModelEntry = msgspec.structs.replace(entry, origin="deployment", **changes)
    return out


def override_path_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The local cost-map file named by ``LITELLM_MODEL_COST_MAP_URL`` (a path or ``file://`` URL); an
    ``http(s)`` URL is not fetched (one warning), since relaygate never downloads at startup."""
    env = os.environ if environ is None else environ
    value = (env.get(OVERRIDE_ENV) or "").strip()
    if not value:
        return None
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme in ("http", "https"):
        log.warning("%s=%s is a URL: relaygate reads the model cost map only from a local file; the shipped "
                    "catalog is used (download the file and give its path)", OVERRIDE_ENV, value)
        return None
    return value


_default: Catalog | None = None
_loaded: tuple[str | None, tuple[int, int] | None, float] = (None, None, 0.0)
"""(the override file read, its (mtime_ns, size) then, when it was loaded): :func:`refresh_default` compares."""


def _stamp(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def refresh_default() -> bool:
    """Load the catalog again when ``LITELLM_MODEL_COST_MAP_URL`` now names another file, or its file changed
    since it was read (a config reload calls this: ``runtime.Runtime.build``); True when it did. One ``stat``. A
    file that does not load leaves the catalog loaded before serving (logged)."""
    global _default, _loaded
    path = override_path_from_env()
    stamp = _stamp(path)
    if _default is None:
        default_catalog()
        return True
    if (path, stamp) == _loaded[:2]:
        return False
    try:
        fresh = Catalog.load(path)
    except CatalogError as exc:  # the prices read before keep serving; tried again once the file changes
        log.error("%s: not read again, the model cost map loaded before keeps serving", exc)
        _loaded = (path, stamp, _loaded[2])
        return False
    _default, _loaded = fresh, (path, stamp, time.time())
    log.info("model catalog read again: %s", path or "the shipped catalog")
    return True


def source_info() -> dict[str, Any]:
    """Where the catalog served comes from (LiteLLM's ``/model/cost_map/source`` fields)."""
    cat = default_catalog()
    url = (os.environ.get(OVERRIDE_ENV) or "").strip() or None
    remote = url is not None and urllib.parse.urlparse(url).scheme in ("http", "https")
    return {"source": "local", "url": url, "is_env_forced": False,
            "fallback_reason": "relaygate reads the model cost map from a local file only; the shipped catalog is "
                               "served" if remote else None,
            "loaded_at": datetime.fromtimestamp(_loaded[2], UTC).isoformat() if _loaded[2] else None,
            "source_revision": cat.source_date, "etag": None, "override_file": _loaded[0] if cat.override_source
            else None, "model_count": cat.model_count}


def default_catalog() -> Catalog:
    """The process's catalog: the shipped file, with ``LITELLM_MODEL_COST_MAP_URL``'s local file over it;
    loaded on first use. An unreadable override file is logged once and ignored (the shipped catalog
    keeps serving), never an error on a request."""
    global _default, _loaded
    if _default is None:
        path = override_path_from_env()
        _loaded = (path, _stamp(path), time.time())
        try:
            _default = Catalog.load(path)
        except CatalogError as exc:
            if path is None:
                raise
            log.error("%s; using the shipped model catalog", exc)
            _default = Catalog.load(None)
        if path and _default.override_source:
            log.info("model catalog: %s over the shipped catalog (source date %s)", path, _default.source_date)
    return _default


def reset_default() -> None:
    """Forget the loaded catalog (tests; a changed ``LITELLM_MODEL_COST_MAP_URL``)."""
    global _default, _loaded
    _default = None
    _loaded = (None, None, 0.0)
