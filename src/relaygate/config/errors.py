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


class FieldError(ValueError):
    """An invalid setting found before the file is known: ``field`` is its path (or an environment variable's
    name); the loader adds the file and raises a :class:`ConfigError`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message
