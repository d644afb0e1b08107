"""One model as the catalog knows it (:class:`ModelEntry`), read from our data file or from a LiteLLM
cost-map entry, and shown in LiteLLM's ``model_info`` shape.

Prices are held in LiteLLM's key names and units (USD per token, per second, per character, per image,
per query), whatever file they came from, so the rest of the gateway speaks one vocabulary:
``input_cost_per_token``, ``cache_read_input_token_cost``, ``input_cost_per_second``, ... Tiered prices
(LiteLLM's ``input_cost_per_token_above_200k_tokens``) are kept apart as :class:`Tier` objects, each
holding the base key names; :meth:`ModelEntry.prices_at` picks the tier that applies to a prompt size.
Service-tier prices (LiteLLM's ``input_cost_per_token_priority``, ``cache_read_input_token_cost_flex`` ...:
the base key and ``_<tier>``, :data:`SERVICE_TIERS`) stay in ``prices`` under those names;
``cost.prices.PriceTable`` reads them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

#: the capability flags the catalog knows (``supports_<flag>`` in LiteLLM's model_info)
FLAGS = ("function_calling", "parallel_function_calling", "vision", "reasoning", "prompt_caching",
         "response_schema", "audio_input", "audio_output", "pdf_input", "tool_choice", "web_search",
         "system_messages")

#: LiteLLM's modes; ``responses`` marks models served only by the Responses API
MODES = frozenset({"chat", "embedding", "completion", "image_generation", "audio_transcription", "audio_speech",
                   "rerank", "moderation", "responses"})

#: our ``per_mtok`` keys (USD per 1M tokens) -> LiteLLM's per-token key
PER_MTOK = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "input_audio": "input_cost_per_audio_token",
    "output_audio": "output_cost_per_audio_token",
    "reasoning": "output_cost_per_reasoning_token",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
}
#: our unit prices (USD per unit, as written) -> LiteLLM's key
PER_UNIT = {
    "per_image": "output_cost_per_image",
    "per_second": "input_cost_per_second",
    "per_character": "input_cost_per_character",
    "per_query": "input_cost_per_query",
}
#: token prices a tier may change (LiteLLM writes them ``<key>_above_<N>k_tokens``)
TIERED = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
          "cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr")
#: LiteLLM's service-tier cost-key suffixes (``input_cost_per_token_priority``); an answer served at
#: ``fast`` is billed at the ``priority`` prices
SERVICE_TIERS = ("flex", "priority", "balanced", "ultrafast")
SERVICE_SUFFIXES = tuple(f"_{t}" for t in SERVICE_TIERS)
#: our ``per_mtok`` keys a service tier may price (the ones LiteLLM looks up by tier; not ``output_audio``)
SERVICE_PRICED = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "input_audio", "reasoning")
_TIER_KEY = re.compile(r"^(?P<base>.+)_above_(?P<n>\d+)k_tokens$")
_MILLION = Decimal(1_000_000)


class CatalogError(ValueError):
    """The data file or an override file does not follow its format (names the entry)."""


class Tier(msgspec.Struct, frozen=True):
    """Prices that replace the base ones when the prompt has more than ``above`` tokens."""

    above: int
    prices: dict[str, float]


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the catalog knows of one model. Immutable; shared by every lookup that finds it."""

    provider: str
    model: str
    mode: str = "chat"
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    prices: dict[str, float] = {}
    """LiteLLM key -> USD per unit (``input_cost_per_token``: per token; ``input_cost_per_second`` ...)."""
    tiers: tuple[Tier, ...] = ()
    """Ordered by ``above``, ascending."""
    image_prices: dict[str, float] = {}
    """USD per image by ``quality/size`` or ``size`` (``hd/1024x1792``), beside the default ``per_image``."""
    supports: frozenset[str] = frozenset()
    output_vector_size: int | None = None
    exact: bool = False
    """Never reached by stripping a date from a longer id (its snapshots are priced differently)."""
    origin: str = "catalog"
    """``catalog`` (the shipped file), ``override`` (a LiteLLM cost map), ``deployment`` (model_info)."""

    def prices_at(self, prompt_tokens: int) -> dict[str, float]:
        """The prices that apply to a request with ``prompt_tokens`` input tokens (the highest tier whose
        threshold the prompt exceeds replaces the base prices it names)."""
        if not self.tiers or prompt_tokens <= self.tiers[0].above:
            return self.prices
        out = dict(self.prices)
        for tier in self.tiers:
            if prompt_tokens > tier.above:
                out.update(tier.prices)
        return out

    def info(self) -> dict[str, Any]:
        """LiteLLM's ``model_info`` fields for this model (``litellm.get_model_info`` shape)."""
        out: dict[str, Any] = {
            "key": self.model, "litellm_provider": self.provider, "mode": self.mode,
            "max_tokens": self.max_output_tokens if self.max_output_tokens is not None else self.max_input_tokens,
            "max_input_tokens": self.max_input_tokens, "max_output_tokens": self.max_output_tokens,
            "input_cost_per_token": self.prices.get("input_cost_per_token", 0.0),
            "output_cost_per_token": self.prices.get("output_cost_per_token", 0.0),
        }
        out.update(self.prices)
        for tier in self.tiers:
            for key, value in tier.prices.items():
                out[f"{key}_above_{tier.above // 1000}k_tokens"] = value
        for flag in FLAGS:
            out[f"supports_{flag}"] = flag in self.supports
        if self.output_vector_size is not None:
            out["output_vector_size"] = self.output_vector_size
        return out


def _per_token(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CatalogError(f"{where}: expected a price (a number >= 0), got {value!r}")
    return float(Decimal(str(value)) / _MILLION)


def _unit(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CatalogError(f"{where}: expected a price (a number >= 0), got {value!r}")
    return float(value)


def _tokens(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{where}: expected a token count (an integer > 0) or null, got {value!r}")
    return value


_OURS = frozenset({"mode", "context", "per_mtok", "tiers", "service_tiers", "per_image_by", "supports", "aliases",
                   "exact", "vector_size", *PER_UNIT})


def from_ours(provider: str, model: str, raw: Any) -> ModelEntry:
    """An entry of our data file (format in the package docstring)."""
    where = f"{provider}/{model}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected an object")
    unknown = set(raw) - _OURS
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {sorted(unknown)}")
    mode = raw.get("mode", "chat")
    if mode not in MODES:
        raise CatalogError(f"{where}.mode: {mode!r} is not one of {sorted(MODES)}")
    context = raw.get("context", [None, None])
    if not (isinstance(context, list) and len(context) == 2):
        raise CatalogError(f"{where}.context: expected [max_input_tokens, max_output_tokens]")
    prices: dict[str, float] = {}
    per_mtok = raw.get("per_mtok", {})
    if not isinstance(per_mtok, dict):
        raise CatalogError(f"{where}.per_mtok: expected an object")
    for k, v in per_mtok.items():
        if k not in PER_MTOK:
            raise CatalogError(f"{where}.per_mtok.{k}: unknown price (one of {sorted(PER_MTOK)})")
        prices[PER_MTOK[k]] = _per_token(v, f"{where}.per_mtok.{k}")
    for k, key in PER_UNIT.items():
        if k in raw:
            prices[key] = _unit(raw[k], f"{where}.{k}")
    tiers = []
    for i, t in enumerate(raw.get("tiers", [])):
        tw = f"{where}.tiers[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("above"), int) or not isinstance(t.get("per_mtok"), dict):
            raise CatalogError(f"{tw}: expected {{\"above\": <tokens>, \"per_mtok\": {{...}}}}")
        tp = {}
        for k, v in t["per_mtok"].items():
            if PER_MTOK.get(k) not in TIERED:
                raise CatalogError(f"{tw}.per_mtok.{k}: not a tiered price (one of input, output, cache_read, "
                                   "cache_write, cache_write_1h)")
            tp[PER_MTOK[k]] = _per_token(v, f"{tw}.per_mtok.{k}")
        tiers.append(Tier(t["above"], tp))
    service = raw.get("service_tiers", {})
    if not isinstance(service, dict):
        raise CatalogError(f"{where}.service_tiers: expected an object")
    for name, tier_prices in service.items():
        sw = f"{where}.service_tiers.{name}"
        if name not in SERVICE_TIERS:
            raise CatalogError(f"{sw}: unknown service tier (one of {list(SERVICE_TIERS)})")
        if not isinstance(tier_prices, dict):
            raise CatalogError(f"{sw}: expected an object of prices")
        for k, v in tier_prices.items():
            if k not in SERVICE_PRICED:
                raise CatalogError(f"{sw}.{k}: not a price a service tier changes (one of {list(SERVICE_PRICED)})")
            prices[f"{PER_MTOK[k]}_{name}"] = _per_token(v, f"{sw}.{k}")
    supports = raw.get("supports", [])
    bad = [f for f in supports if f not in FLAGS]
    if bad:
        raise CatalogError(f"{where}.supports: unknown flag(s) {bad} (known: {list(FLAGS)})")
    images = {str(k): _unit(v, f"{where}.per_image_by.{k}") for k, v in raw.get("per_image_by", {}).items()}
    vector = raw.get("vector_size")
    return ModelEntry(
        provider=provider, model=model, mode=mode,
        max_input_tokens=_tokens(context[0], f"{where}.context[0]"),
        max_output_tokens=_tokens(context[1], f"{where}.context[1]"),
        prices=prices, tiers=tuple(sorted(tiers, key=lambda t: t.above)), image_prices=images,
        supports=frozenset(supports), output_vector_size=vector if isinstance(vector, int) else None,
        exact=bool(raw.get("exact", False)))


def split_litellm_prices(values: dict[str, Any]) -> tuple[dict[str, float], tuple[Tier, ...]]:
    """LiteLLM's price keys (numbers only) into base prices and tiers (``<key>_above_<N>k_tokens``)."""
    prices: dict[str, float] = {}
    tiers: dict[int, dict[str, float]] = {}
    for k, v in values.items():
        if not isinstance(k, str) or "cost" not in k or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        m = _TIER_KEY.match(k)
        if m is not None and m.group("base") in TIERED:
            tiers.setdefault(int(m.group("n")) * 1000, {})[m.group("base")] = float(v)
        else:
            prices[k] = float(v)
    return prices, tuple(Tier(above, p) for above, p in sorted(tiers.items()))


def from_litellm(key: str, raw: Any, provider: str) -> ModelEntry | None:
    """An entry of a LiteLLM ``model_prices_and_context_window.json`` (``None`` for anything that is not a
    model object, such as ``sample_spec``)."""
    if not isinstance(raw, dict) or key == "sample_spec":
        return None
    prices, tiers = split_litellm_prices(raw)
    mode = raw.get("mode") if raw.get("mode") in MODES else "chat"

    def count(name: str) -> int | None:
        v = raw.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

    max_in = count("max_input_tokens")
    max_out = count("max_output_tokens") or count("max_tokens")  # the legacy max_tokens is the output limit
    vector = raw.get("output_vector_size")
    return ModelEntry(
        provider=provider, model=key, mode=str(mode), max_input_tokens=max_in, max_output_tokens=max_out,
        prices=prices, tiers=tiers, supports=frozenset(f for f in FLAGS if raw.get(f"supports_{f}") is True),
        output_vector_size=vector if isinstance(vector, int) else None, origin="override")
