"""Secrets at config load: credentials in URLs are refused, every configured secret is registered for redaction.

The rule under test: a config never makes a secret visible. A deployment URL with ``user:password@`` is a
ConfigError that names the field and not the password; every secret the config holds (or makes the
adapters read from the environment) is redacted from error messages by ``core.errors.redact``.
"""

from __future__ import annotations

import string
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.config import ConfigError, from_litellm, from_native, load_config
from relaygate.config.loader import config_secrets
from relaygate.core import errors
from relaygate.core.errors import REDACTED, GatewayError, Redactor, redact


def _litellm(params: dict[str, object], **top: object) -> dict[str, object]:
    return {"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", **params}}], **top}


# -- credentials in URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["api_base", "aws_bedrock_runtime_endpoint", "base_url"])
@pytest.mark.parametrize("url", ["https://alice:hunter2-pw@example.com/v1", "http://only-user@example.com",
                                 "HTTPS://a:b@[::1]:8080/x", "  http://u:p@h/"])
def test_url_with_userinfo_is_rejected_without_echoing_it(field: str, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_litellm(_litellm({field: url}), "cfg.yaml")
    assert info.value.field == f"model_list[0].litellm_params.{field}"
    text = str(info.value)
    assert "hunter2" not in text and "alice" not in text and url.strip() not in text


def test_native_url_with_userinfo_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        from_native({"models": [{"name": "m", "model": "openai/x", "api_base": "https://u:secretpw@h/v1"}]}, "c.toml")
    assert info.value.field.endswith(".api_base")
    assert "secretpw" not in str(info.value)


def test_url_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "https://u:envpassword@example.com/v1")
    with pytest.raises(ConfigError) as info:
        from_litellm(_litellm({}), "cfg.yaml")
    assert info.value.field == "model_list[0].litellm_params.api_base"
    assert "envpassword" not in str(info.value)


def test_urls_without_credentials_and_at_signs_elsewhere_are_fine() -> None:
    cfg = from_litellm(_litellm({"api_base": "https://example.com/v1/@models?x=a@b#c@d",
                                 "api_key": "plain-key-value"}), "cfg.yaml")
    assert cfg.deployments[0].api_base == "https://example.com/v1/@models?x=a@b#c@d"


def test_redis_and_proxy_urls_keep_their_password_as_a_secret() -> None:
    cfg = from_litellm(_litellm({}, router_settings={"redis_url": "redis://:redis-pass-1234@127.0.0.1:6379/0"},
                                relaygate_settings={"http_proxy": "http://me:proxy-pass-5678@proxy:3128"}),
                       "cfg.yaml")
    assert cfg.router.redis_url == "redis://:redis-pass-1234@127.0.0.1:6379/0"
    found = config_secrets(cfg)
    assert {"redis-pass-1234", "proxy-pass-5678"} <= found
    assert redact("connect redis://:redis-pass-1234@127.0.0.1 failed") == f"connect redis://:{REDACTED}@127.0.0.1 failed"


# -- what is a secret ---------------------------------------------------------------------------------------


def test_every_configured_secret_is_collected_and_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_AD_TOKEN", "env-ad-token-0001")
    sa = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END-----\n",
          "client_email": "svc@example.iam"}
    raw = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "openai/x", "api_key": "sk-deploy-0001"}},
            {"model_name": "b", "litellm_params": {"model": "bedrock/x", "aws_secret_access_key": "aws-secret-0001",
                                                   "aws_session_token": "aws-session-0001", "max_tokens": 12345678,
                                                   "tokenizer": "cl100k_base"}},
            {"model_name": "c", "litellm_params": {"model": "vertex_ai/x",
                                                   "vertex_credentials": orjson.dumps(sa).decode()}},
        ],
        "general_settings": {"master_key": "sk-master-0001"},
        "router_settings": {"redis_password": "redis-pw-0001"},
        "relaygate_keys": [{"key": "sk-virtual-0001"}],
    }
    cfg = from_litellm(raw, "cfg.yaml")
    found = config_secrets(cfg)
    expected = {"sk-deploy-0001", "aws-secret-0001", "aws-session-0001", "sk-master-0001", "redis-pw-0001",
                "sk-virtual-0001", sa["private_key"], "env-ad-token-0001"}
    assert expected <= found
    assert "cl100k_base" not in found and "svc@example.iam" not in found
    for secret in expected:  # registered by loading: error messages cannot carry them
        assert secret not in GatewayError(f"upstream said: {secret!r} / {orjson.dumps(secret).decode()}").message


def test_loading_a_file_registers_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[auth]\nmaster_key = "sk-file-master-77"\n[[models]]\nname = "m"\nmodel = "mock/echo"\n')
    load_config(str(path))
    assert "sk-file-master-77" not in redact("key sk-file-master-77 rejected")


# -- the redactor -------------------------------------------------------------------------------------------

_secret = st.text(alphabet=string.ascii_letters + string.digits + "-_.+/=:@!$*()[]{}\\\"'\n", min_size=8,
                  max_size=40).filter(lambda s: s not in "[redacted]")  # the mark itself holds no secret


@settings(max_examples=200, deadline=None)
@given(st.lists(_secret, min_size=1, max_size=30), st.lists(st.text(max_size=30), max_size=10), st.data())
def test_redactor_removes_every_secret_anywhere(secrets: list[str], filler: list[str], data: st.DataObject) -> None:
    r = Redactor(secrets)
    parts = [data.draw(st.sampled_from(secrets)) if i % 2 else f for i, f in enumerate(filler + [""])]
    for s in secrets:
        parts.append(s)
    out = r("".join(parts))
    for s in secrets:
        assert s not in out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + " .,:", max_size=200))
def test_text_without_secrets_is_unchanged(text: str) -> None:
    r = Redactor(["ZZZZZZZZ-not-in-text", "QQQQQQQQ"])
    assert r(text) == text


def test_prefixes_and_short_values() -> None:
    r = Redactor(["abcdefgh", "abcdefghij", "short"])  # "short" is under MIN_SECRET_LEN: never redacted
    assert r("abcdefghij|abcdefgh|abcdefghi|short") == f"{REDACTED}|{REDACTED}|{REDACTED}i|short"
    assert r("Authorization: Bearer eyJ0eXAi.runtime-token") == f"Authorization: Bearer {REDACTED}"


def test_thousands_of_secrets_compile_to_one_pattern() -> None:
    keys = [f"sk-virtual-{i:06d}-{i * 7919 % 100003:06d}" for i in range(5000)]
    r = Redactor(keys)
    text = " ".join(keys[::250])
    assert r(text) == " ".join([REDACTED] * 20)


def test_gateway_error_message_is_redacted_when_set_later() -> None:
    errors.register_secrets(["sk-later-secret-1"])
    exc = GatewayError("first")
    exc.message = f"{exc.message} then sk-later-secret-1"
    assert exc.message == f"first then {REDACTED}"
    assert b"sk-later-secret-1" not in exc.body() and "sk-later-secret-1" not in str(exc)


def test_a_credentials_file_path_is_not_a_secret(tmp_path: Path) -> None:
    sa = tmp_path / "service-account.json"
    sa.write_text('{"private_key": "pk"}')
    cfg = from_litellm(_litellm({"vertex_credentials": str(sa), "api_key": "sk-deploy-path-test"}), "cfg.yaml")
    found = config_secrets(cfg)
    assert str(sa) not in found and "sk-deploy-path-test" in found
