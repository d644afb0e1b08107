"""The checks of LiteLLM's ``litellm_settings.cost_discount_config`` and ``cost_margin_config`` at start-up
(``GeneralSettings``) and when the API changes them, and those stored settings put over the config file's
(:func:`with_stored`); what they do to a request's cost is ``relaygate.cost.adjust``."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from relaygate.config.model import Config

__all__ = ["STORED", "check_discounts", "check_margins", "check_stored", "unknown_providers", "with_stored"]

log = logging.getLogger("relaygate.config")


def _fraction(value: Any, where: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if not 0 <= value <= high:
        raise ValueError(f"{where}: must be between 0 and {high:g} ({0:.0%} to {high:.0%}), got {value!r}")
    return float(value)


def check_discounts(config: Mapping[str, Any]) -> None:
    """``ValueError`` for a ``cost_discount_config`` entry LiteLLM refuses: an empty provider or model pattern,
    a discount that is not a number in [0, 1]."""
    for key, value in config.items():
        provider, slash, pattern = key.partition("/")
        if not provider:
            raise ValueError(f"cost_discount_config: {key!r} names no provider")
        if slash and not pattern:
            raise ValueError(f"cost_discount_config: model pattern for {key} cannot be empty")
        _fraction(value, f"cost_discount_config.{key}", 1.0)


def check_margins(config: Mapping[str, Any]) -> None:
    """``ValueError`` for a ``cost_margin_config`` entry LiteLLM refuses: a percentage outside [0, 10], a
    negative or non-numeric ``fixed_amount``, an empty object, other keys in it, or another type."""
    for key, value in config.items():
        where = f"cost_margin_config.{key}"
        if isinstance(value, dict):
            if not value:
                raise ValueError(f"{where}: cannot be empty; give 'percentage' and/or 'fixed_amount'")
            extra = sorted(set(value) - {"percentage", "fixed_amount"})
            if extra:
                raise ValueError(f"{where}: unknown field(s) {', '.join(extra)} (expected 'percentage' and/or "
                                 "'fixed_amount')")
            if "percentage" in value:
                _fraction(value["percentage"], f"{where}.percentage", 10.0)
            if "fixed_amount" in value:
                fixed = value["fixed_amount"]
                if isinstance(fixed, bool) or not isinstance(fixed, int | float) or not math.isfinite(fixed) \
                        or fixed < 0:
                    raise ValueError(f"{where}.fixed_amount: expected a non-negative number of USD, got {fixed!r}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            _fraction(value, where, 10.0)
        else:
            raise ValueError(f"{where}: expected a number (a percentage) or an object with 'percentage' and/or "
                             f"'fixed_amount', got {value!r}")


def _check_block(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"block_requests_for_models_without_pricing: expected true or false, got {value!r}")


def _check_discount_map(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"cost_discount_config: expected an object of discounts, got {type(value).__name__}")
    check_discounts(value)


def _check_margin_map(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"cost_margin_config: expected an object of margins, got {type(value).__name__}")
    check_margins(value)


def _check_groups(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value) or len(value) > 1000:
        raise ValueError("public_model_groups: expected a list of model group names")


def _check_links(value: Any) -> None:
    if not isinstance(value, dict) or len(value) > 100:
        raise ValueError("public_model_groups_links: expected an object of at most 100 links")
    for name, link in value.items():
        url = link.get("url") if isinstance(link, dict) else link
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"public_model_groups_links.{name}: expected an http(s) URL or {{url, index}}")


STORED = {"cost_discount_config": _check_discount_map, "cost_margin_config": _check_margin_map,
          "block_requests_for_models_without_pricing": _check_block, "public_model_groups": _check_groups,
          "public_model_groups_links": _check_links}
"""The ``litellm_settings`` the API may change (``store.settings``), each with its check."""


def unknown_providers(name: str, value: Any, known: frozenset[str]) -> list[str]:
    """The provider names a ``cost_discount_config`` or ``cost_margin_config`` value gives that are not in
    ``known`` (``global`` is the margins' catch-all), in the value's order; [] for the other settings."""
    if name not in ("cost_discount_config", "cost_margin_config") or not isinstance(value, dict):
        return []
    out = []
    for key in value:
        provider = key.partition("/")[0] if name == "cost_discount_config" else key
        if provider not in known and not (name == "cost_margin_config" and provider == "global"):
            out.append(provider)
    return out


def check_stored(name: str, value: Any) -> None:
    """``ValueError`` naming the entry when ``value`` is not a valid ``name`` setting."""
    STORED[name](value)


def with_stored(config: Config, stored: Mapping[str, Any]) -> Config:
    """``config`` with the settings stored through the API in place of the file's (LiteLLM's database config
    wins over its file's likewise); a stored value that is not valid (written by another version, say) is
    logged and the file's kept."""
    changes: dict[str, Any] = {}
    for name, value in stored.items():
        if name not in STORED:
            continue
        try:
            check_stored(name, value)
        except ValueError as exc:
            log.error("stored setting %s not applied: %s", name, exc)
            continue
        if getattr(config.general, name) != value:
            changes[name] = value
    if not changes:
        return config
    return msgspec.structs.replace(config, general=msgspec.structs.replace(config.general, **changes))
