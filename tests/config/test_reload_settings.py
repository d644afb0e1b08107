"""``server.watch_config`` and ``server.reload_poll_interval``: loaded from TOML ``[server]`` and from a
LiteLLM config's ``relaygate_settings``, the interval validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.cli import main
from relaygate.config import ConfigError, from_litellm, from_native, validate
from relaygate.config.model import ServerSettings

MODEL = {"name": "m", "model": "mock/echo"}


def test_defaults() -> None:
    s = ServerSettings()
    assert s.watch_config is False
    assert s.reload_poll_interval == 1.0


def test_native_toml_server_section() -> None:
    cfg = from_native({"server": {"watch_config": True, "reload_poll_interval": 0.25}, "models": [MODEL]}, "<t>")
    assert cfg.server.watch_config is True and cfg.server.reload_poll_interval == 0.25
    assert not cfg.warnings and validate(cfg) == []


def test_litellm_yaml_relaygate_settings() -> None:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "relaygate_settings": {"watch_config": True, "reload_poll_interval": 2}}, "<y>")
    assert cfg.server.watch_config is True and cfg.server.reload_poll_interval == 2.0
    assert not cfg.warnings and validate(cfg) == []


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_interval_must_be_positive(interval: float) -> None:
    cfg = from_native({"server": {"reload_poll_interval": interval}, "models": [MODEL]}, "<t>")
    assert validate(cfg) == ["server.reload_poll_interval: expected a positive number of seconds"]


def test_wrong_types_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"server.reload_poll_interval"):
        from_native({"server": {"reload_poll_interval": "soon"}}, "<t>")
    with pytest.raises(ConfigError, match=r"relaygate_settings.watch_config"):
        from_litellm({"relaygate_settings": {"watch_config": "maybe"}}, "<y>")


def test_check_config_rejects_a_zero_interval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nreload_poll_interval = 0\n\n[[models]]\nname = "m"\nmodel = "mock/echo"\n')
    assert main(["check-config", str(cfg)]) == 1
    assert "server.reload_poll_interval: expected a positive number of seconds" in capsys.readouterr().err
