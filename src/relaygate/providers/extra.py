"""Translating and Azure adapters, registered by LiteLLM provider prefix (imported by ``providers.registry``)."""

from __future__ import annotations

from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.azure import AzureAIProvider, AzureProvider
from relaygate.providers.base import Provider
from relaygate.providers.bedrock import BedrockProvider
from relaygate.providers.cohere import CohereProvider
from relaygate.providers.gemini import GeminiProvider
from relaygate.providers.ollama import OllamaChatProvider, OllamaProvider
from relaygate.providers.vertex import VertexProvider

PROVIDERS: dict[str, type[Provider]] = {
    "anthropic": AnthropicProvider,
    "azure": AzureProvider,
    "azure_ai": AzureAIProvider,
    "gemini": GeminiProvider,
    "vertex_ai": VertexProvider,
    "vertex_ai_beta": VertexProvider,
    "bedrock": BedrockProvider,
    "cohere": CohereProvider,
    "cohere_chat": CohereProvider,
    "ollama": OllamaProvider,
    "ollama_chat": OllamaChatProvider,
}
