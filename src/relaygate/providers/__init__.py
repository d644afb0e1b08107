"""Provider adapters, chosen by the ``provider/`` prefix of ``litellm_params.model`` as LiteLLM names them.

The names are listed once more in ``relaygate.config.env.PROVIDERS`` (the config validates them without
importing adapters); a test keeps the two equal.
"""

from __future__ import annotations

from relaygate.config.model import Deployment
from relaygate.providers.base import Provider


def registry() -> dict[str, type[Provider]]:
    from relaygate.providers.extra import PROVIDERS as EXTRA
    from relaygate.providers.mock import MockProvider
    from relaygate.providers.openai import PROVIDERS

    table: dict[str, type[Provider]] = dict(PROVIDERS)
    table["mock"] = MockProvider
    table.update(EXTRA)
    return table


_REGISTRY: dict[str, type[Provider]] | None = None


def _table() -> dict[str, type[Provider]]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = registry()
    return _REGISTRY


def make_provider(dep: Deployment) -> Provider:
    return _table()[dep.provider](dep)
