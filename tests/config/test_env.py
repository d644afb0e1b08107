"""Provider defaults from the environment are resolved by config loading (``config.env``), never by adapters."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from relaygate.config import ConfigError, env, from_litellm
from relaygate.providers import make_provider, registry


def _load(params: dict[str, object]) -> object:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": params}]}, "cfg.yaml")
    return cfg.deployments[0]


def test_the_config_knows_every_adapter_name() -> None:
    assert env.PROVIDERS == frozenset(registry())


def test_aws_credentials_and_region_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION_NAME", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    dep = _load({"model": "bedrock/anthropic.claude-3-haiku", "aws_secret_access_key": "secret-in-config"})
    assert dep.extra["aws_region_name"] == "eu-west-3"  # type: ignore[attr-defined]
    assert dep.extra["aws_access_key_id"] == "AKIDEXAMPLE"  # type: ignore[attr-defined]
    assert dep.extra["aws_secret_access_key"] == "secret-in-config"  # type: ignore[attr-defined]
    p = make_provider(dep)  # type: ignore[arg-type]
    assert p.api_base == "https://bedrock-runtime.eu-west-3.amazonaws.com"


def test_azure_ad_token_only_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_AD_TOKEN", "ad-token-from-env")
    monkeypatch.setenv("AZURE_API_BASE", "https://x.openai.azure.com")
    dep = _load({"model": "azure/d"})
    assert dep.extra["azure_ad_token"] == "ad-token-from-env"  # type: ignore[attr-defined]
    assert "azure_ad_token" not in _load({"model": "azure/d", "api_key": "k"}).extra  # type: ignore[attr-defined]


def test_a_vertex_credentials_file_is_read_by_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = tmp_path / "sa.json"
    sa.write_text(orjson.dumps({"type": "service_account", "project_id": "proj-1"}).decode())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    for name in ("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    dep = _load({"model": "vertex_ai/gemini-2.5-pro"})
    assert orjson.loads(dep.extra["vertex_credentials"])["project_id"] == "proj-1"  # type: ignore[attr-defined]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="vertex_credentials"):
        _load({"model": "vertex_ai/gemini-2.5-pro"})


def test_adapters_read_no_environment_files_or_clocks() -> None:
    src = Path(env.__file__).parents[1] / "providers"
    for path in src.glob("*.py"):
        text = path.read_text()
        for needle in (r"os\.environ", r"getenv", r"(?<![\w.])open\(", r"time\.(time|monotonic|perf_counter)\(",
                       r"datetime\.now", r"= time\.time\b"):
            assert re.search(needle, text) is None, f"{path.name} uses {needle}"
