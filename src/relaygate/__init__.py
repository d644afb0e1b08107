"""relaygate: a fast OpenAI-compatible LLM gateway, drop-in for a LiteLLM proxy."""

__version__ = "0.1.0"
