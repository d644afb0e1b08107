"""Entra ID (Azure AD) tokens for Azure OpenAI, renewed before they expire: a client secret or a federated token.

A static ``azure_ad_token`` expires within the hour; production deployments give the gateway an identity
instead, and LiteLLM (through ``azure-identity``) exchanges it for tokens as they are needed. Two ways, as
LiteLLM and ``DefaultAzureCredential`` read them:

- ``tenant_id`` + ``client_id`` + ``client_secret`` in ``litellm_params`` (LiteLLM's), else
  ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET``: the client-credentials grant, for a
  deployment without an API key or a static ``azure_ad_token`` (those win);
- ``AZURE_FEDERATED_TOKEN_FILE`` with the tenant and client ids (AKS workload identity injects all three,
  and ``AZURE_AUTHORITY_HOST``): the same grant with the file's token as the client assertion, the file
  read again at every renewal (the platform rotates it).

The variables reach :func:`entra_for` as parameters (``config.env`` reads the environment once, when the
config loads: ``tenant_id``, ``client_id``, ``client_secret``, ``azure_federated_token_file``,
``azure_authority_host``); the token file is read here, at every renewal (the IO shell's part).
The token endpoint is ``{AZURE_AUTHORITY_HOST or https://login.microsoftonline.com/}{tenant}/oauth2/v2.0/token``;
the scope ``azure_scope`` (default ``https://cognitiveservices.azure.com/.default``). The source has the
shape the pipeline refreshes (``upstream.calls.refresh_token``), like Vertex's: renewed five minutes before
expiry, one refresh at a time while the old token still serves; each new token is handed to ``on_token``
(the provider's ``Authorization`` header). A refused grant is a 401 naming Entra's error. Sans IO.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from relaygate.core import errors
from relaygate.upstream.base import UpstreamRequest
from relaygate.upstream.renewal import Renewable, json_object, read_token_file

SCOPE = "https://cognitiveservices.azure.com/.default"
AUTHORITY = "https://login.microsoftonline.com/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_PREFIX = "litellm.AuthenticationError: AzureException -"


class EntraToken(Renewable):
    """One identity's access token (see the module docstring)."""

    __slots__ = ("client_id", "on_token", "scope", "token", "_secret", "_file", "_url")

    def __init__(self, tenant: str, client_id: str, *, secret: str = "", token_file: str = "",
                 scope: str = SCOPE, authority: str = AUTHORITY,
                 on_token: Callable[[str], None] | None = None) -> None:
        self.client_id = client_id
        self._secret, self._file = secret, token_file
        self.scope = scope
        base = authority if authority.endswith("/") else authority + "/"
        self._url = f"{base}{urllib.parse.quote(tenant, safe='')}/oauth2/v2.0/token"
        self.on_token = on_token
        self.token: str | None = None
        super().__init__()

    def held(self) -> bool:
        return self.token is not None

    def refresh_request(self, now: float) -> UpstreamRequest:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "scope": self.scope}
        if self._secret:
            form["client_secret"] = self._secret
        else:
            assertion = read_token_file(self._file, "AZURE_FEDERATED_TOKEN_FILE", _PREFIX)
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = assertion
        return UpstreamRequest("POST", self._url, [("Content-Type", "application/x-www-form-urlencoded")],
                               urllib.parse.urlencode(form).encode())

    def accept(self, status: int, body: bytes, now: float) -> None:
        """Take the token endpoint's answer; a failure raises (401 for a refused grant)."""
        obj = json_object(body)
        if status >= 400 or not isinstance(obj.get("access_token"), str) or not obj["access_token"]:
            why = obj.get("error_description") or obj.get("error") or "no access_token in the answer"
            text = f"{_PREFIX} Entra ID token request failed ({status}): {str(why)[:300]}"
            raise errors.AuthError(text) if status in (400, 401, 403) else errors.GatewayError(text, status=502)
        self.token = obj["access_token"]
        try:
            lifetime = float(obj.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.expires_at = now + lifetime
        if self.on_token is not None:
            self.on_token(self.token)


def entra_for(params: Mapping[str, Any], has_key: bool) -> EntraToken | None:
    """The Entra ID source an Azure deployment uses (``params``: its ``litellm_params``, the ``AZURE_*``
    variables already filled in by ``config.env``; ``has_key``: it has an API key or a static
    ``azure_ad_token``, which win), or None."""
    if has_key:
        return None
    tenant, client = params.get("tenant_id"), params.get("client_id")
    if not (tenant and client):
        return None
    scope = str(params.get("azure_scope") or SCOPE)
    authority = str(params.get("azure_authority_host") or AUTHORITY)
    if params.get("client_secret"):
        return EntraToken(str(tenant), str(client), secret=str(params["client_secret"]), scope=scope,
                          authority=authority)
    if params.get("azure_federated_token_file"):
        return EntraToken(str(tenant), str(client), token_file=str(params["azure_federated_token_file"]), scope=scope,
                          authority=authority)
    return None


__all__ = ["ASSERTION_TYPE", "AUTHORITY", "SCOPE", "EntraToken", "entra_for"]
