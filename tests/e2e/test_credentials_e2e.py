"""LiteLLM's ``credential_list`` and ``litellm_params.litellm_credential_name``: a deployment calls its provider with
the named credential's values (its own values win), through a real gateway to a real upstream that records
what it was sent. Before, the name was warned about and the provider's key came from the environment:
another account's key, silently."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from bench.procs import start_mock
from relaygate.config import load_config
from relaygate.config.errors import ConfigError
from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-master-creds"


def _config(api_base: str) -> str:
    return f"""
credential_list:
  - credential_name: team-a-openai
    credential_values:
      api_key: os.environ/TEAM_A_OPENAI_KEY
      api_base: {api_base}
    credential_info:
      description: team A's OpenAI project
model_list:
  - model_name: by-credential
    litellm_params:
      model: openai/gpt-4o-mini
      litellm_credential_name: team-a-openai
  - model_name: own-key-wins
    litellm_params:
      model: openai/gpt-4o-mini
      litellm_credential_name: team-a-openai
      api_key: sk-deployments-own
general_settings:
  master_key: {MASTER}
"""


def test_a_deployment_calls_with_its_named_credential() -> None:
    with start_mock(name="up", seed=3) as mock, start_gateway(
            _config(mock.openai_base), env={"TEAM_A_OPENAI_KEY": "sk-team-a-secret",
                                            "OPENAI_API_KEY": "sk-environment-wrong-account"}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)
        try:
            for model, expected in (("by-credential", "Bearer sk-team-a-secret"),
                                    ("own-key-wins", "Bearer sk-deployments-own")):
                r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
                assert r.choices[0].message.content
                auth = [v for k, v in mock.requests()[-1]["headers"] if k.lower() == "authorization"]
                assert auth == [expected], model
        finally:
            client.close()
        log = gw.log()
        assert "sk-team-a-secret" not in log and "credential_list: ignored" not in log


@pytest.mark.parametrize(("text", "field"), [
    ("credential_list: {a: b}\n", "credential_list"),
    ("credential_list:\n  - credential_values: {api_key: x}\n", "credential_list[0].credential_name"),
    ("credential_list:\n  - {credential_name: c}\n", "credential_list[0].credential_values"),
    ("credential_list:\n  - {credential_name: c, credential_values: {api_key: x}}\n"
     "  - {credential_name: c, credential_values: {api_key: y}}\n", "credential_list[1].credential_name"),
    ("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, litellm_credential_name: nope}\n",
     "model_list[0].litellm_params.litellm_credential_name"),
])
def test_mistakes_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg))
    assert info.value.field == field
