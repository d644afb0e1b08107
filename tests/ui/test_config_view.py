"""``GET /config/view``: the masking function on a config full of secrets (nested dicts and lists, URLs,
environment references), and a real ``relaygate serve`` whose answer holds none of its config's secret
values, only for the proxy admin and its viewer."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from relaygate.config.loader import load_config
from relaygate.gateway.config_view import MASK, config_json, mask, mask_url, secret_name
from tests.conftest import start_gateway

SECRETS = {
    "api_key": "sk-upstream-1234567890abcdef",
    "master_key": "sk-master-0987654321",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "password": "hunter2-hunter2",
    "client_secret": "oidc-client-secret-value",
    "token": "tok_abcdefabcdef",
    "vertex_credentials": '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----abc"}',
    "authorization": "Bearer abcdefghijklmnop",
}


def _all_strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_all_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return [value] if isinstance(value, str) else []


def test_mask_nested_config() -> None:
    cfg = {
        "deployments": [
            {"model_name": "gpt", "api_key": SECRETS["api_key"], "api_base": "https://api.example.com/v1",
             "extra": {"aws_secret_access_key": SECRETS["aws_secret_access_key"], "aws_region_name": "eu-west-1",
                       "vertex_credentials": SECRETS["vertex_credentials"],
                       "extra_headers": {"Authorization": SECRETS["authorization"], "X-Team": "blue"}},
             "max_tokens": 256, "key_alias": "visible-alias"},
        ],
        "general": {"master_key": SECRETS["master_key"],
                    "database_url": "postgresql://rg:" + SECRETS["password"] + "@db.internal:5432/relay",
                    "health_check_timeout": 10.0},
        "sso": [{"client_secret": SECRETS["client_secret"], "client_id": "relaygate-ui"}],
        "cache": {"redis_url": "rediss://:" + SECRETS["password"] + "@cache:6380/0?ssl_cert_reqs=none",
                  "ttl": 60},
        "callback_url": "https://hooks.example.com/x?token=" + SECRETS["token"] + "&channel=ops",
        "keys": [{"key": "sk-virtual-abcdefghijkl", "models": ["gpt"]}],
        "numbers": {"secret_number": 42, "enabled": True},
        "alert_to_webhook_url": {"llm_exceptions": "https://hooks.slack.com/services/T000/B000/XXXXSLACKSECRET"},
    }
    out = mask(cfg, env={})
    text = json.dumps(out)
    for secret in [*SECRETS.values(), "sk-virtual-abcdefghijkl"]:
        assert secret not in text
    assert "hunter2" not in text
    dep = out["deployments"][0]
    assert dep["api_key"] == MASK
    assert dep["api_base"] == "https://api.example.com/v1"
    assert dep["extra"]["aws_region_name"] == "eu-west-1"
    assert dep["extra"]["extra_headers"] == {"Authorization": MASK, "X-Team": "blue"}
    assert dep["max_tokens"] == 256
    assert dep["key_alias"] == "visible-alias"
    assert out["general"]["database_url"] == f"postgresql://rg:{MASK}@db.internal:5432/relay"
    assert out["general"]["health_check_timeout"] == 10.0
    assert out["sso"] == [{"client_secret": MASK, "client_id": "relaygate-ui"}]
    assert out["cache"]["redis_url"].startswith(f"rediss://:{MASK}@cache:6380/0?")
    assert "channel=ops" in out["callback_url"]
    assert out["keys"][0] == {"key": MASK, "models": ["gpt"]}
    assert out["numbers"] == {"secret_number": MASK, "enabled": True}
    assert out["alert_to_webhook_url"] == {"llm_exceptions": MASK}
    assert "SLACKSECRET" not in text


def test_mask_names_environment_references() -> None:
    env = {"UPSTREAM_KEY": SECRETS["api_key"], "SHORT": "1"}
    out = mask({"api_key": SECRETS["api_key"], "other_key": "os.environ/NOT_SET_YET", "count": "1",
                "nested": [{"token": SECRETS["api_key"]}], "looks_like_key": SECRETS["api_key"]}, env=env)
    assert out == {"api_key": "os.environ/UPSTREAM_KEY", "other_key": "os.environ/NOT_SET_YET", "count": "1",
                   "nested": [{"token": "os.environ/UPSTREAM_KEY"}], "looks_like_key": "os.environ/UPSTREAM_KEY"}


def test_mask_keeps_credential_file_paths(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text("{}")
    assert mask({"vertex_credentials": str(path)}, env={}) == {"vertex_credentials": str(path)}


@pytest.mark.parametrize(("name", "secret"), [
    ("api_key", True), ("master_key", True), ("x-api-key", True), ("aws_session_token", True),
    ("client_secret", True), ("Authorization", True), ("connection_string", True), ("password", True),
    ("key", True), ("max_tokens", False), ("key_alias", False), ("api_key_header", False), ("team_id", False),
    ("database_url", False), ("model", False), ("token_ttl", False),
])
def test_secret_name(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_mask_url() -> None:
    assert mask_url("https://user:pw@host/p?api_key=abc&x=1") == f"https://user:{MASK}@host/p?api_key={MASK}&x=1"
    assert mask_url("https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/x") == f"https://{MASK}@github.com/x"
    assert mask_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"


def test_real_config_masks_every_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LiteLLM config as the loader reads it: no credential value of it survives the masking."""
    monkeypatch.setenv("RG_TEST_UPSTREAM_KEY", "sk-from-env-abcdef123456")
    path = tmp_path / "config.yaml"
    path.write_text("""
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/RG_TEST_UPSTREAM_KEY}
  - model_name: claude
    litellm_params: {model: anthropic/claude-3-5-haiku-latest, api_key: sk-ant-literal-0123456789}
  - model_name: bedrock
    litellm_params: {model: bedrock/anthropic.claude-3, aws_access_key_id: AKIAABCDEFGHIJKLMNOP,
                     aws_secret_access_key: bedrock-secret-value-123, aws_region_name: us-east-1}
general_settings:
  master_key: sk-master-config-view
""")
    cfg = load_config(str(path))
    out = mask(config_json(cfg))
    text = json.dumps(out)
    for secret in ("sk-from-env-abcdef123456", "sk-ant-literal-0123456789", "AKIAABCDEFGHIJKLMNOP",
                   "bedrock-secret-value-123", "sk-master-config-view"):
        assert secret not in text
    assert "os.environ/RG_TEST_UPSTREAM_KEY" in text
    assert "us-east-1" in text


MASTER = "sk-config-view-master"


@pytest.mark.e2e
def test_config_view_e2e() -> None:
    config = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_key: os.environ/RG_CV_UPSTREAM, api_base: "http://127.0.0.1:9/v1"}}
  - model_name: other
    litellm_params: {{model: openai/gpt-4o, api_key: sk-literal-upstream-0123456789}}
general_settings:
  master_key: {MASTER}
  database_url: "sqlite:///{{tmp}}/cv.db"
"""
    import tempfile

    tmp = tempfile.mkdtemp(prefix="rg-cv-")
    with start_gateway(config.replace("{tmp}", tmp), env={"RG_CV_UPSTREAM": "sk-env-upstream-value-42"}) as gw:
        admin = {"Authorization": f"Bearer {MASTER}"}
        r = httpx.get(gw.url + "/config/view", headers=admin)
        assert r.status_code == 200, r.text
        text = r.text
        for secret in (MASTER, "sk-env-upstream-value-42", "sk-literal-upstream-0123456789"):
            assert secret not in text
        body = r.json()
        deps = {d["model_name"]: d for d in body["config"]["deployments"]}
        assert deps["gpt"]["api_key"] == "os.environ/RG_CV_UPSTREAM"
        assert deps["other"]["api_key"] == MASK
        assert deps["gpt"]["api_base"] == "http://127.0.0.1:9/v1"
        assert body["config"]["general"]["master_key"] == MASK
        assert isinstance(body["generation"], int)
        assert httpx.get(gw.url + "/config/view").status_code == 401
        # an internal user's key is refused; a proxy_admin_viewer's key reads
        for role, status in (("internal_user", 401), ("proxy_admin_viewer", 200)):
            u = httpx.post(gw.url + "/user/new", headers=admin, json={"user_role": role})
            assert u.status_code == 200, u.text
            k = httpx.post(gw.url + "/key/generate", headers=admin, json={"user_id": u.json()["user_id"]})
            assert k.status_code == 200, k.text
            got = httpx.get(gw.url + "/config/view", headers={"Authorization": f"Bearer {k.json()['key']}"})
            assert got.status_code == status, got.text
            if status == 200:
                assert MASTER not in got.text
