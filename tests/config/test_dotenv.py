"""LiteLLM's start-up ``.env`` (``config.env.load_dotenv_file``): read from the working directory while
``LITELLM_MODE`` is ``DEV`` (its default), never over variables already set, and not at all with
``LITELLM_DISABLE_DOTENV`` or another mode; the real CLI resolves ``os.environ/`` references from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaygate.config.env import load_dotenv_file

DOTENV = '''# a comment
export RG_T_KEY="sk-from dotenv"
RG_T_PLAIN=plain # trailing comment
RG_T_PRESET=from-file
RG_T_REF=${RG_T_PLAIN}-ref
'''


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("RG_T_KEY", "RG_T_PLAIN", "RG_T_REF", "LITELLM_MODE", "LITELLM_DISABLE_DOTENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RG_T_PRESET", "from-env")
    return monkeypatch


def test_the_working_directorys_file_fills_what_is_not_set(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    loaded = load_dotenv_file(str(tmp_path))
    try:
        assert loaded == (str(tmp_path / ".env"), ["RG_T_KEY", "RG_T_PLAIN", "RG_T_REF"])
        assert os.environ["RG_T_KEY"] == "sk-from dotenv" and os.environ["RG_T_PLAIN"] == "plain"
        assert os.environ["RG_T_REF"] == "plain-ref"  # python-dotenv's interpolation, as LiteLLM reads it
        assert os.environ["RG_T_PRESET"] == "from-env"
    finally:
        for name in ("RG_T_KEY", "RG_T_PLAIN", "RG_T_REF"):
            os.environ.pop(name, None)


@pytest.mark.parametrize("var,value", [("LITELLM_MODE", "PRODUCTION"), ("LITELLM_DISABLE_DOTENV", "True")])
def test_not_read_outside_litellms_dev_mode(tmp_path: Path, clean_env: pytest.MonkeyPatch, var: str,
                                            value: str) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    clean_env.setenv(var, value)
    assert load_dotenv_file(str(tmp_path)) is None and "RG_T_KEY" not in os.environ


def test_no_file_nothing_read(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    assert load_dotenv_file(str(tmp_path)) is None


def test_the_cli_resolves_references_from_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    (tmp_path / "config.yaml").write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, api_key: os.environ/RG_T_KEY}\n"
        "general_settings: {master_key: os.environ/RG_T_PLAIN}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RG_T_") and k != "LITELLM_MODE"}
    argv = [sys.executable, "-m", "relaygate.cli", "check-config", "config.yaml"]
    ok = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"set 4 variable(s) from {tmp_path / '.env'}: RG_T_KEY, RG_T_PLAIN, RG_T_PRESET, RG_T_REF" in ok.stderr
    assert "sk-from dotenv" not in ok.stderr + ok.stdout  # names, never values
    off = subprocess.run(argv, cwd=tmp_path, env={**env, "LITELLM_MODE": "PRODUCTION"}, capture_output=True,
                         text=True, timeout=60)
    assert off.returncode == 1 and "environment variable RG_T_" in off.stderr and "is not set" in off.stderr
