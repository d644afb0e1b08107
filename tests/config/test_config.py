"""Config loading: LiteLLM YAML and native TOML into one typed model, with field-precise errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relaygate.config import ConfigError, default_config, load_config, validate

LITELLM_YAML = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/TEST_RG_OPENAI_KEY
      api_base: http://127.0.0.1:9999/v1
      rpm: 100
      tpm: 10000
      timeout: 30
      weight: 2
      order: 1
      temperature: 0.2
    model_info:
      id: dep-a
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-deploy
      api_key: az-key
      api_base: https://example.openai.azure.com
      api_version: "2024-06-01"
  - model_name: "*"
    litellm_params:
      model: openai/*
router_settings:
  routing_strategy: least-busy
  num_retries: 2
  allowed_fails: 1
  cooldown_time: 10
  fallbacks: [{"gpt-4o": ["gpt-4o-mini"]}]
  some_future_setting: true
litellm_settings:
  drop_params: true
  request_timeout: 45
  success_callback: ["langfuse", "my_callbacks.proxy_handler_instance"]
general_settings:
  master_key: sk-master
  max_request_size_mb: 2
  alerting: ["slack", "ms_teams"]
  proxy_batch_write_at: 60
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_litellm_yaml_translates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_RG_OPENAI_KEY", "sk-from-env")
    cfg = load_config(write(tmp_path, "config.yaml", LITELLM_YAML))
    a, b, w = cfg.deployments
    assert (a.model_name, a.provider, a.upstream_model, a.id) == ("gpt-4o", "openai", "gpt-4o", "dep-a")
    assert a.api_key == "sk-from-env"
    assert (a.rpm, a.tpm, a.timeout, a.weight, a.order) == (100, 10000, 30.0, 2.0, 1)
    assert a.extra == {"temperature": 0.2, "drop_params": True}  # litellm_settings.drop_params reaches each
    assert b.provider == "azure" and b.api_version == "2024-06-01" and b.id and b.id != a.id
    assert w.is_wildcard and w.upstream_model == "*"
    r = cfg.router
    assert (r.routing_strategy, r.num_retries, r.allowed_fails, r.cooldown_time) == ("least-busy", 2, 1, 10.0)
    assert r.fallbacks == [{"gpt-4o": ["gpt-4o-mini"]}]
    assert r.timeout == 45.0
    assert cfg.general.master_key == "sk-master"
    assert cfg.server.max_request_body_bytes == 2 * 1024 * 1024
    assert cfg.general.proxy_batch_write_at == 60.0  # LiteLLM's spend write interval, honoured
    assert not any("proxy_batch_write_at" in w for w in cfg.warnings)
    # one warning per unsupported key, naming it; never the secret
    joined = "\n".join(cfg.warnings)
    for key in ("router_settings.some_future_setting", "general_settings.alerting[1]"):
        assert sum(key in w for w in cfg.warnings) == 1, key
    # the callbacks relaygate runs are read (relaygate.observe): a custom callback's module.attribute too
    assert cfg.observe is not None and not any("success_callback" in w for w in cfg.warnings)
    assert cfg.observe.success_callbacks == ("langfuse", "custom_callbacks") and cfg.observe.failure_callbacks == ()
    assert cfg.observe.custom_success == ("my_callbacks.proxy_handler_instance",)
    assert cfg.observe.custom_dir == str(tmp_path)
    assert cfg.observe.alerting == ("slack",)
    assert "sk-master" not in joined and "sk-from-env" not in joined


def test_deployment_id_is_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_RG_OPENAI_KEY", "x")
    p = write(tmp_path, "config.yaml", LITELLM_YAML)
    assert [d.id for d in load_config(p).deployments] == [d.id for d in load_config(p).deployments]


def test_missing_env_var_names_field_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_RG_OPENAI_KEY", raising=False)
    p = write(tmp_path, "config.yaml", LITELLM_YAML)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert p in msg
    assert "model_list[0].litellm_params.api_key" in msg
    assert "TEST_RG_OPENAI_KEY" in msg


def test_wrong_type_names_field(tmp_path: Path) -> None:
    p = write(tmp_path, "config.yaml", """
        model_list:
          - model_name: m
            litellm_params: {model: openai/m, rpm: "lots"}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "model_list[0].litellm_params.rpm" in str(info.value)
    assert "int" in str(info.value)


def test_router_settings_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, "config.yaml", """
        model_list: []
        router_settings: {num_retries: [1, 2]}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "router_settings.num_retries" in str(info.value)


def test_missing_model_param(tmp_path: Path) -> None:
    p = write(tmp_path, "config.yaml", """
        model_list:
          - model_name: m
            litellm_params: {api_key: x}
    """)
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.model"):
        load_config(p)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "bad.yaml", "model_list: [\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.yaml"))


def test_environment_variables_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_RG_FROM_SECTION", raising=False)
    p = write(tmp_path, "config.yaml", """
        environment_variables:
          TEST_RG_FROM_SECTION: abc
        model_list:
          - model_name: m
            litellm_params: {model: openai/m, api_key: os.environ/TEST_RG_FROM_SECTION}
    """)
    assert load_config(p).deployments[0].api_key == "abc"


def test_native_toml_and_example_file(tmp_path: Path) -> None:
    cfg = load_config(str(Path(__file__).parents[2] / "config.example.toml"))
    assert not cfg.warnings
    assert {d.model_name for d in cfg.deployments} == {"mock-echo", "gpt-4o-mini"}
    assert validate(cfg) == []
    p = write(tmp_path, "c.toml", """
        [server]
        port = 5000
        bogus = 1
        [auth]
        master_key = "k"
        [[models]]
        name = "g"
        model = "groq/llama3"
        rpm = 10
        id = "x1"
        [models.info]
        mode = "chat"
        owner = "me"
    """)
    cfg = load_config(p)
    assert cfg.server.port == 5000 and cfg.general.master_key == "k"
    d = cfg.deployments[0]
    assert (d.provider, d.upstream_model, d.rpm, d.id, d.model_info["mode"]) == ("groq", "llama3", 10, "x1", "chat")
    assert cfg.warnings == ["server.bogus: ignored", "models[0].info.owner: ignored"]
    bad = write(tmp_path, "bad.toml", "[server]\nport = 'x'\n")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_config(bad)


def test_validate_duplicate_id(tmp_path: Path) -> None:
    p = write(tmp_path, "config.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: nosuchprovider/x}
            model_info: {id: same}
          - model_name: b
            litellm_params: {model: openai/x}
            model_info: {id: same}
          - model_name: c
            litellm_params: {model: openai/y}
            model_info: {id: same}
    """)
    cfg = load_config(p)
    assert [d.model_name for d in cfg.deployments] == ["b", "c"]  # the unknown provider is skipped
    assert validate(cfg) == ["model_list[2].model_info.id: duplicate id (also model_list[1])"]


def test_default_config_is_mock() -> None:
    cfg = default_config()
    assert all(d.provider == "mock" for d in cfg.deployments)


def test_check_config_cli(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", """
        model_list:
          - model_name: m
            litellm_params: {model: openai/m, api_base: "http://127.0.0.1:1/v1"}
        litellm_settings: {callbacks: [x]}
    """)
    r = subprocess.run([sys.executable, "-m", "relaygate.cli", "check-config", good], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ok:" in r.stdout and "litellm_settings.callbacks" in r.stdout
    bad = write(tmp_path, "bad.yaml", """
        model_list:
          - model_name: m
            litellm_params: {model: openai/m, tpm: nope}
    """)
    r = subprocess.run([sys.executable, "-m", "relaygate.cli", "check-config", bad], capture_output=True, text=True)
    assert r.returncode == 1
    assert "model_list[0].litellm_params.tpm" in r.stderr and bad in r.stderr


def test_master_key_from_litellm_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, "c.yaml", "model_list: []\n")
    monkeypatch.delenv("RELAYGATE_MASTER_KEY", raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-env")
    assert load_config(p).general.master_key == "sk-env"
    p2 = write(tmp_path, "d.yaml", "general_settings: {master_key: sk-file}\n")
    assert load_config(p2).general.master_key == "sk-file"  # the config wins
    monkeypatch.delenv("LITELLM_MASTER_KEY")
    assert load_config(p).general.master_key is None


def test_provider_credentials_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("AZURE_API_BASE", "https://x.openai.azure.com")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    p = write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: openai/gpt-4o}
          - model_name: b
            litellm_params: {model: anthropic/claude, api_key: sk-explicit}
          - model_name: c
            litellm_params: {model: azure/dep}
          - model_name: d
            litellm_params: {model: anthropic/claude}
    """)
    a, b, c, d = load_config(p).deployments
    assert a.api_key == "sk-openai-env"
    assert b.api_key == "sk-explicit"  # the config wins
    assert (c.api_key, c.api_base, c.api_version) == (None, "https://x.openai.azure.com", "2024-10-21")
    assert d.api_key == "sk-ant-env"


def test_fail_closed_rate_limit_enforcement_is_on_redis_failure_reject() -> None:
    """LiteLLM's ``general_settings.fail_closed_rate_limit_enforcement: true`` (Redis unreachable: limited requests
    are refused with a 503) is relaygate's ``on_redis_failure: reject``; ``router_settings.on_redis_failure`` set
    as well wins; anything but a boolean is refused."""
    from relaygate.config import ConfigError, from_litellm

    def failure(general: dict[str, object], router: dict[str, object] | None = None) -> str:
        cfg = from_litellm({"model_list": [], "general_settings": general, "router_settings": router or {}}, "<t>")
        assert not [w for w in cfg.warnings if "fail_closed" in w]
        return cfg.router.on_redis_failure

    assert failure({}) == "local"
    assert failure({"fail_closed_rate_limit_enforcement": True}) == "reject"
    assert failure({"fail_closed_rate_limit_enforcement": "false"}) == "local"
    assert failure({"fail_closed_rate_limit_enforcement": True}, {"on_redis_failure": "local"}) == "local"
    with pytest.raises(ConfigError, match="fail_closed_rate_limit_enforcement"):
        failure({"fail_closed_rate_limit_enforcement": "yes please"})
