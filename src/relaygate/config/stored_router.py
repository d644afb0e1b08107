"""Router settings changed through the API (``management.fallbacks``), served over the config file's.

The ``rg_config`` setting ``router_settings`` (LiteLLM's ``LiteLLM_Config`` row of that name) holds the fallback
lists the API wrote: ``fallbacks``, ``context_window_fallbacks``, ``content_policy_fallbacks``, each
``[{model group: [fallback, ...]}, ...]``. A list present there replaces the file's list of that name in the
snapshot a worker serves (:func:`with_stored_fallbacks`); one that does not check (another version's) is logged
and the file's served. Sans IO.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from relaygate.config.model import Config

__all__ = ["KEYS", "SETTING", "Rules", "fallbacks_of", "rules_of", "with_stored_fallbacks"]

log = logging.getLogger("relaygate")

SETTING = "router_settings"
KEYS = {"general": "fallbacks", "context_window": "context_window_fallbacks",
        "content_policy": "content_policy_fallbacks"}
"""``fallback_type`` -> the router setting it names."""

Rules = list[dict[str, list[str]]]


def rules_of(value: Any) -> Rules | None:
    """``value`` as a fallback list (``[{group: [fallback, ...]}, ...]``), or None when it is not one."""
    if not isinstance(value, list):
        return None
    for rule in value:
        if not isinstance(rule, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
                for k, v in rule.items()):
            return None
    return value


def with_stored_fallbacks(config: Config, stored: Mapping[str, Any]) -> Config:
    """``config`` with the fallback lists stored through the API in place of the file's."""
    saved = stored.get(SETTING)
    if not isinstance(saved, dict):
        return config
    changes: dict[str, Rules] = {}
    for key in KEYS.values():
        if key not in saved:
            continue
        rules = rules_of(saved[key])
        if rules is None:
            log.error("stored router_settings.%s not applied (the config file's is served): not a list of "
                      "{model: [fallbacks]}", key)
        elif rules != getattr(config.router, key):
            changes[key] = rules
    if not changes:
        return config
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, **changes))


def fallbacks_of(config: Config, model: str, kind: str) -> list[str]:
    """The fallbacks the router applies to model group ``model`` for errors of ``kind`` (``general``,
    ``context_window``, ``content_policy``): its rule, else, for ``general``, ``default_fallbacks``."""
    r = config.router
    for entry in getattr(r, KEYS.get(kind, ""), None) or []:
        if model in entry:
            return list(entry[model])
    return list(r.default_fallbacks) if kind == "general" else []
