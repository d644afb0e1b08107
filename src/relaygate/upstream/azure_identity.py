"""Entra ID (Azure AD) tokens for Azure OpenAI, renewed before they expire: a client secret, a federated token or a
managed identity.

A static ``azure_ad_token`` expires within the hour; production deployments give the gateway an identity
instead, and LiteLLM (through ``azure-identity``) exchanges it for tokens as they are needed. Three ways, as
LiteLLM and ``DefaultAzureCredential`` read them:

- ``tenant_id`` + ``client_id`` + ``client_secret`` in ``litellm_params`` (LiteLLM's), else
  ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET``: the client-credentials grant, for a
  deployment without an API key or a static ``azure_ad_token`` (those win);
- ``AZURE_FEDERATED_TOKEN_FILE`` with the tenant and client ids (AKS workload identity injects all three,
  and ``AZURE_AUTHORITY_HOST``): the same grant with the file's token as the client assertion, the file
  read again at every renewal (the platform rotates it);
- otherwise a **managed identity** (:class:`ManagedIdentityToken`), as ``DefaultAzureCredential`` finds one:
  App Service's and Container Apps' ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, else the VM's instance
  metadata (``http://169.254.169.254``, or ``AZURE_POD_IDENTITY_AUTHORITY_HOST``), for the user-assigned
  identity ``AZURE_CLIENT_ID`` names or the system-assigned one. Called directly (never through a proxy),
  each call waits at most a second, and a failure (off Azure: nothing answers) is a 401 naming the endpoint,
  remembered for :data:`MANAGED_RETRY` seconds so requests are answered at once.

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
from relaygate.upstream.base import Timeouts, UpstreamRequest
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


class ManagedIdentityToken(EntraToken):
    """A managed identity's token (see the module docstring): one ``GET`` of the platform's identity endpoint;
    the answer has the client-credentials grant's shape (``access_token``, ``expires_in``)."""

    __slots__ = ("_headers", "direct", "refresh_timeouts", "_blocked_until", "_blocked")

    def __init__(self, url: str, headers: list[tuple[str, str]], *, scope: str = SCOPE,
                 on_token: Callable[[str], None] | None = None) -> None:
        super().__init__("", "", scope=scope, on_token=on_token)
        self._url = url
        self._headers = headers
        self.direct = True
        """``upstream.calls.refresh_token`` calls the endpoint without the environment's proxy."""
        self.refresh_timeouts = _MANAGED_TIMEOUTS
        self._blocked_until = 0.0
        self._blocked: errors.GatewayError | None = None

    def refresh_request(self, now: float) -> UpstreamRequest:
        if self._blocked is not None and now < self._blocked_until:
            raise self._blocked
        return UpstreamRequest("GET", self._url, list(self._headers), b"")

    def failed(self, now: float, exc: Exception) -> Exception:
        """A failed renewal as a 401 naming the endpoint, remembered :data:`MANAGED_RETRY` seconds."""
        if exc is self._blocked:  # answered from memory (refresh_request): the next try stays when it was
            return exc
        if not isinstance(self._blocked, errors.GatewayError) or self._blocked_until <= now:
            why = exc.message if isinstance(exc, errors.GatewayError) else f"{type(exc).__name__}: {exc}"
            where = self._url.partition("?")[0]
            self._blocked = errors.AuthError(f"{_PREFIX} no Azure credentials: no api_key, azure_ad_token or client "
                                             f"credentials, and the managed identity endpoint {where} gave no token "
                                             f"({why[:300]})")
        self._blocked_until = now + MANAGED_RETRY
        return self._blocked


MANAGED_RETRY = 30.0
"""Seconds a failed managed-identity call is remembered (and answered with) before the next try."""
IMDS = "http://169.254.169.254"
_MANAGED_TIMEOUTS = Timeouts(connect=1.0, first_byte=1.0, idle=1.0, total=2.0)


def managed_identity_for(params: Mapping[str, Any], scope: str) -> ManagedIdentityToken:
    """The managed identity a deployment without a key or client credentials uses (see the module docstring)."""
    query = {"resource": scope.removesuffix("/.default")}
    client = params.get("client_id")
    if client:
        query["client_id"] = str(client)
    endpoint, header = params.get("azure_identity_endpoint"), params.get("azure_identity_header")
    if endpoint and header:  # App Service, Container Apps
        url = f"{endpoint}?{urllib.parse.urlencode({'api-version': '2019-08-01', **query})}"
        return ManagedIdentityToken(url, [("X-IDENTITY-HEADER", str(header))], scope=scope)
    base = str(params.get("azure_imds_endpoint") or IMDS).rstrip("/")
    url = f"{base}/metadata/identity/oauth2/token?{urllib.parse.urlencode({'api-version': '2018-02-01', **query})}"
    return ManagedIdentityToken(url, [("Metadata", "true")], scope=scope)


def entra_for(params: Mapping[str, Any], has_key: bool) -> EntraToken | None:
    """The Entra ID source an Azure deployment uses (``params``: its ``litellm_params``, the ``AZURE_*``
    variables already filled in by ``config.env``; ``has_key``: it has an API key or a static
    ``azure_ad_token``, which win), or None."""
    if has_key:
        return None
    tenant, client = params.get("tenant_id"), params.get("client_id")
    scope = str(params.get("azure_scope") or SCOPE)
    if not (tenant and client and (params.get("client_secret") or params.get("azure_federated_token_file"))):
        return managed_identity_for(params, scope)
    authority = str(params.get("azure_authority_host") or AUTHORITY)
    if params.get("client_secret"):
        return EntraToken(str(tenant), str(client), secret=str(params["client_secret"]), scope=scope,
                          authority=authority)
    return EntraToken(str(tenant), str(client), token_file=str(params["azure_federated_token_file"]), scope=scope,
                      authority=authority)


__all__ = ["ASSERTION_TYPE", "AUTHORITY", "IMDS", "MANAGED_RETRY", "SCOPE", "EntraToken", "ManagedIdentityToken",
           "entra_for", "managed_identity_for"]
