"""Provider credentials and endpoints from the environment, as LiteLLM reads them.

A LiteLLM deployment without ``api_key`` uses the provider's conventional variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ...), and some providers take their base URL or API version from the environment
too. The config loader fills a deployment's missing ``api_key`` / ``api_base`` / ``api_version`` from this
table once at startup; adapters only ever read the deployment.
"""

from __future__ import annotations

import os
from typing import Any

#: provider prefix -> (api_key variables, api_base variables, api_version variables), first set wins
ENV: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("OPENAI_API_KEY",), ("OPENAI_API_BASE", "OPENAI_BASE_URL"), ()),
    "text-completion-openai": (("OPENAI_API_KEY",), ("OPENAI_API_BASE", "OPENAI_BASE_URL"), ()),
    "azure": (("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
              ("AZURE_API_VERSION", "OPENAI_API_VERSION")),
    "azure_ai": (("AZURE_AI_API_KEY",), ("AZURE_AI_API_BASE",), ()),
    "anthropic": (("ANTHROPIC_API_KEY",), ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"), ()),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_API_BASE",), ()),
    "groq": (("GROQ_API_KEY",), ("GROQ_API_BASE",), ()),
    "mistral": (("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",), ()),
    "deepseek": (("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",), ()),
    "together_ai": (("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"), ("TOGETHERAI_API_BASE",), ()),
    "fireworks_ai": (("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY"),
                     ("FIREWORKS_API_BASE",), ()),
    "openrouter": (("OPENROUTER_API_KEY", "OR_API_KEY"), ("OPENROUTER_API_BASE",), ()),
    "perplexity": (("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"), ("PERPLEXITY_API_BASE",), ()),
    "xai": (("XAI_API_KEY",), ("XAI_API_BASE",), ()),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"), ("COHERE_API_BASE",), ()),
    "cohere_chat": (("COHERE_API_KEY", "CO_API_KEY"), ("COHERE_API_BASE",), ()),
    "hosted_vllm": (("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",), ()),
    "vllm": (("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",), ()),
    "lm_studio": (("LM_STUDIO_API_KEY",), ("LM_STUDIO_API_BASE",), ()),
    "ollama": ((), ("OLLAMA_API_BASE",), ()),
    "ollama_chat": ((), ("OLLAMA_API_BASE",), ()),
}


def _first(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def fill_from_env(provider: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with missing ``api_key`` / ``api_base`` / ``api_version`` taken from the environment."""
    entry = ENV.get(provider)
    if entry is None:
        return params
    out = params
    for field, names in zip(("api_key", "api_base", "api_version"), entry):
        if names and not params.get(field):
            value = _first(names)
            if value is not None:
                if out is params:
                    out = dict(params)
                out[field] = value
    return out
