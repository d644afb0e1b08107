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


def test_bedrock_aws_profile_from_the_shared_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's ``aws_profile_name`` (and ``AWS_PROFILE``): static keys and region, an assumed role with its
    source profile's keys, a web-identity profile; an unknown profile names the setting."""
    from relaygate.providers.bedrock import SigV4
    from relaygate.upstream.aws_identity import credentials_for

    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sk-default\n"
                     "[team]\naws_access_key_id = AKTEAM\naws_secret_access_key = sk-team\naws_session_token = st\n")
    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = eu-central-1\n[profile admin]\nrole_arn = arn:aws:iam::1:role/admin\n"
                      "source_profile = team\nrole_session_name = gw\n[profile irsa]\n"
                      "role_arn = arn:aws:iam::1:role/pod\nweb_identity_token_file = /var/token\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN",
                 "AWS_REGION", "AWS_REGION_NAME", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)

    def params(**p: object) -> dict[str, object]:
        cfg = from_litellm({"model_list": [{"model_name": "b", "litellm_params": {"model": "bedrock/anthropic.x",
                                                                                  **p}}]}, "<test>")
        return cfg.deployments[0].extra

    team = params(aws_profile_name="team")
    assert (team["aws_access_key_id"], team["aws_session_token"], team["aws_region_name"]) == \
        ("AKTEAM", "st", "eu-central-1")
    assert params(aws_profile_name="team", aws_access_key_id="AKOWN", aws_secret_access_key="own")[
        "aws_access_key_id"] == "AKOWN"  # the deployment's own keys win
    admin = params(aws_profile_name="admin")
    assert admin["aws_role_name"] == "arn:aws:iam::1:role/admin" and admin["aws_access_key_id"] == "AKTEAM"
    assumed = credentials_for(admin, "us-east-1", signer_of=SigV4)
    assert assumed is not None and assumed.kind == "assume_role"
    irsa = credentials_for(params(aws_profile_name="irsa"), "us-east-1")
    assert irsa is not None and irsa.kind == "web_identity"
    monkeypatch.setenv("AWS_PROFILE", "team")  # the SDKs' default profile, when nothing earlier gives keys
    assert params()["aws_access_key_id"] == "AKTEAM"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKENV")
    assert params()["aws_access_key_id"] == "AKENV"
    with pytest.raises(ConfigError) as info:
        params(aws_profile_name="nobody")
    assert info.value.field == "model_list[0].litellm_params.aws_profile_name"
