"""Provider adapters, chosen by the ``provider/`` prefix of ``litellm_params.model`` as LiteLLM names them."""

from __future__ import annotations

from relaygate.config.model import Deployment
from relaygate.providers.base import Provider


def registry() -> dict[str, type[Provider]]:
    from relaygate.providers.mock import MockProvider
    from relaygate.providers.openai import PROVIDERS

    table: dict[str, type[Provider]] = dict(PROVIDERS)
    table["mock"] = MockProvider
    try:  # adapters added by later modules register here
        from relaygate.providers import extra

        table.update(extra.PROVIDERS)
    except ImportError:
        pass
    return table


_REGISTRY: dict[str, type[Provider]] | None = None


def _table() -> dict[str, type[Provider]]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = registry()
    return _REGISTRY


def known_provider(name: str) -> bool:
    return name in _table()


def make_provider(dep: Deployment) -> Provider:
    return _table()[dep.provider](dep)
