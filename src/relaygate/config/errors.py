"""The one error type of config loading (its own module so the loaders can share it without an import cycle)."""

from __future__ import annotations


class ConfigError(Exception):
    """An invalid config: the message names the file and the field (``model_list[0].litellm_params.rpm``)."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.detail = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")
