"""The OpenAI-compatible providers LiteLLM names (``providers.openai.COMPATIBLE``): each is served (not skipped),
defaults to LiteLLM's API base, takes its key and base from LiteLLM's environment variables, and a request
reaches the upstream with that key, answered as OpenAI's."""

from __future__ import annotations

import asyncio

import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.config.env import PROVIDERS
from relaygate.providers import make_provider, registry
from relaygate.providers.openai import COMPATIBLE
from tests.asgi.conftest import call
from tests.budgets.conftest import upstream

NEW = {"nvidia_nim": ("https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY", "NVIDIA_NIM_API_BASE"),
       "cerebras": ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "CEREBRAS_API_BASE"),
       "sambanova": ("https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY", "SAMBANOVA_API_BASE"),
       "meta_llama": ("https://api.llama.com/compat/v1", "LLAMA_API_KEY", "LLAMA_API_BASE"),
       "deepinfra": ("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY", "DEEPINFRA_API_BASE"),
       "litellm_proxy": (None, "LITELLM_PROXY_API_KEY", "LITELLM_PROXY_API_BASE"),
       "dashscope": ("https://dashscope.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", "DASHSCOPE_API_BASE"),
       "moonshot": ("https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", "MOONSHOT_API_BASE"),
       "github": ("https://models.inference.ai.azure.com", "GITHUB_API_KEY", "GITHUB_API_BASE"),
       "friendliai": ("https://api.friendli.ai/serverless/v1", "FRIENDLI_TOKEN", "FRIENDLI_API_BASE"),
       "featherless_ai": ("https://api.featherless.ai/v1", "FEATHERLESS_API_KEY", "FEATHERLESS_API_BASE")}


def test_every_compatible_provider_is_served() -> None:
    assert set(COMPATIBLE) <= PROVIDERS and set(registry()) == set(PROVIDERS)
    for name, (base, _key, _base_env) in NEW.items():
        assert COMPATIBLE[name][0] == base, name
        cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": f"{name}/some-model"}}]},
                           "<t>")
        assert not cfg.skipped and [d.provider for d in cfg.deployments] == [name]
        assert COMPATIBLE[name][1] == name.capitalize() + "Exception"


@pytest.mark.parametrize("name", sorted(NEW))
def test_key_and_base_from_litellms_variables(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _default, key_env, base_env = NEW[name]

    async def main() -> None:
        async with upstream() as up:
            monkeypatch.setenv(key_env, f"sk-{name}")
            monkeypatch.setenv(base_env, up.url)
            gw = Gateway(from_litellm({"model_list": [{"model_name": "m", "litellm_params": {
                "model": f"{name}/some-model"}}], "general_settings": {"master_key": "sk-m"}}, "<t>"))
            (dep,) = gw.runtime.config.deployments
            prov = make_provider(dep)
            assert prov.api_base == up.url and dep.api_key == f"sk-{name}"
            await gw.startup()
            try:
                r = await call(gw, "POST", "/v1/chat/completions",
                               {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                               headers={"authorization": "Bearer sk-m"})
            finally:
                await gw.shutdown()
            assert r.status == 200, r.body
            assert r.json()["choices"][0]["message"]["content"] == "hi" and up.hits == 1

    asyncio.run(main())
