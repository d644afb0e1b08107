"""Azure OpenAI (``azure/``) and Azure AI Foundry / AI Studio (``azure_ai/``): OpenAI's shape, Azure's URLs.

``azure/DEPLOYMENT`` calls ``{api_base}/openai/deployments/{DEPLOYMENT}/{chat/completions|completions|
embeddings|...}?api-version={api_version}`` with the key in an ``api-key`` header, or
``Authorization: Bearer {azure_ad_token}`` when an Entra ID token is configured, or a token renewed for an
identity (``tenant_id`` / ``client_id`` / ``client_secret``, AKS workload identity:
``upstream.azure_identity``). ``api_base``,
``api_key`` and ``api_version`` fall back to ``AZURE_API_BASE``, ``AZURE_API_KEY`` (or
``AZURE_OPENAI_API_KEY``) and ``AZURE_API_VERSION`` as in LiteLLM; the default API version is LiteLLM's.
An ``api_base`` that already ends in ``/openai/v1`` uses Azure's version-less v1 API
(``{api_base}/chat/completions``, model in the body).

``azure_ai/MODEL`` is OpenAI-compatible at ``{api_base}/chat/completions`` (``/models/chat/completions``
for ``*.services.ai.azure.com`` hosts without a path), keyed with ``api-key`` on Azure hosts and a bearer
token elsewhere. Bodies and streams pass through like every OpenAI-compatible upstream; Azure's
``content_filter`` errors map to content-policy violations through ``classify``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from relaygate.core import errors
from relaygate.providers.base import ENDPOINT_PATHS, Call, url_segment
from relaygate.providers.openai import OpenAIProvider
from relaygate.upstream.azure_identity import entra_for

DEFAULT_API_VERSION = "2025-02-01-preview"
MEDIA_PATHS = {"images": "/images/generations", "transcriptions": "/audio/transcriptions",
               "speech": "/audio/speech", "moderations": "/moderations"}


class AzureProvider(OpenAIProvider):
    name: ClassVar[str] = "azure"
    default_api_base: ClassVar[str | None] = None
    error_prefix: ClassVar[str] = "AzureException"

    def __init__(self, dep: Any) -> None:
        self._ad_token = dep.extra.get("azure_ad_token") or None
        super().__init__(dep)
        if not self.api_base:
            raise errors.GatewayError(f"{self.name} deployment {dep.model_name}: api_base is required (or "
                                      "AZURE_API_BASE)", status=500)
        if self._ad_token:
            self.static_headers = [h for h in self.static_headers if h[0] != "api-key"]
            self.static_headers.append(("Authorization", f"Bearer {self._ad_token}"))
        entra = entra_for(dep.extra, bool(dep.api_key or self._ad_token))
        if entra is not None:  # an identity, not a key: tokens renewed by the shell (upstream.azure_identity)
            self.static_headers = [h for h in self.static_headers if h[0] not in ("api-key", "Authorization")]
            entra.on_token = self._use_token
            self.token_source = entra
        self.api_version = dep.api_version or DEFAULT_API_VERSION
        base = self.api_base or ""
        self.v1 = base.endswith("/openai/v1")
        self.deployment = dep.upstream_model if self.v1 else url_segment(dep.upstream_model)

    def _auth(self, key: str) -> tuple[str, str]:
        return ("api-key", key)

    def _use_token(self, token: str) -> None:
        """A renewed Entra ID token: the ``Authorization`` header every later request is built with."""
        headers = [h for h in self.static_headers if h[0] != "Authorization"]
        headers.append(("Authorization", f"Bearer {token}"))
        self.static_headers = headers

    def media_url(self, path: str) -> str:
        if self.v1:
            return f"{self.api_base}{path}"
        return f"{self.api_base}/openai/deployments/{self.deployment}{path}?api-version={self.api_version}"

    def url(self, call: Call) -> str:
        return self.media_url(ENDPOINT_PATHS[call.endpoint])

    def responses_url(self, path: str = "") -> str:
        if self.v1:
            return f"{self.api_base}/responses{path}"
        return f"{self.api_base}/openai/responses{path}?api-version={self.api_version}"

    def health_request(self) -> None:
        return None


class AzureAIProvider(OpenAIProvider):
    name: ClassVar[str] = "azure_ai"
    default_api_base: ClassVar[str | None] = None
    error_prefix: ClassVar[str] = "Azure_aiException"
    native_responses: ClassVar[bool] = False  # AI Foundry's OpenAI-compatible models: chat completions only

    def __init__(self, dep: Any) -> None:
        base = (dep.api_base or "").rstrip("/")
        self._azure_host = ".azure.com" in base or ".azure-api.net" in base
        super().__init__(dep)
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        elif base.endswith(".services.ai.azure.com"):
            base += "/models"
        self.api_base = base

    def _auth(self, key: str) -> tuple[str, str]:
        return ("api-key", key) if self._azure_host else ("Authorization", f"Bearer {key}")
