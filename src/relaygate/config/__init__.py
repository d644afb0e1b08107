"""Configuration: typed model (``model``), loaders for native TOML and LiteLLM YAML (``loader``)."""

from __future__ import annotations

from relaygate.config.loader import ConfigError, config_secrets, from_litellm, from_native, load_config, validate
from relaygate.config.model import Config, Deployment, GeneralSettings, RouterSettings, ServerSettings

__all__ = [
    "Config", "ConfigError", "Deployment", "GeneralSettings", "RouterSettings", "ServerSettings",
    "config_secrets", "default_config", "from_litellm", "from_native", "load_config", "validate",
]


def default_config() -> Config:
    """The embedded default: two models served by the built-in mock provider, no auth, no Redis."""
    return from_native(
        {
            "models": [
                {"name": "mock-echo", "model": "mock/echo"},
                {"name": "gpt-4o-mini", "model": "mock/echo", "mock_latency_ms": 0},
            ]
        },
        "<embedded default>",
    )
