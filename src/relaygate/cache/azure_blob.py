"""The shared level of the response cache in an Azure Blob Storage container: LiteLLM's
``cache_params: {type: azure-blob}``.

What it owns: :class:`AzureBlobCache`, which the cache stage (``cache.stage``) uses as it uses the S3 level, for
every worker and instance pointed at the same container. The deadline, outages, the store queue and the
management errors are :class:`~relaygate.cache.bucket.BucketCache`'s. Configuration, as LiteLLM 1.110's
``AzureBlobCache`` reads it:

- ``azure_account_url`` (required): the account's blob endpoint, ``https://<account>.blob.core.windows.net``
  (or an emulator's ``http(s)://host:port/<account>``);
- ``azure_blob_container`` (required): the container, created on the first store when it does not exist, as
  LiteLLM creates it when it starts;
- credentials as LiteLLM's ``DefaultAzureCredential`` finds them, through the Entra ID sources the Azure
  provider uses (``upstream.azure_identity``; scope ``https://storage.azure.com/.default``):
  ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET`` (client credentials), else
  ``AZURE_FEDERATED_TOKEN_FILE`` with the tenant and client (AKS workload identity), else a managed identity
  (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, else the instance metadata service; ``AZURE_CLIENT_ID`` picks a
  user-assigned one); ``AZURE_AUTHORITY_HOST`` for another cloud. ``DefaultAzureCredential``'s developer
  sources (the Azure CLI's, PowerShell's, a certificate or a username and password) are not read. The token is
  kept until five minutes before it expires and renewed by the first call that needs it, one renewal at a time;
  tokens and the client secret are never logged.

**Where.** An entry is the blob named as LiteLLM names it: the cache key (a namespace's ``:`` included), read
with ``GET <account>/<container>/<name>`` and written with ``Put Blob`` (a block blob), with
``x-ms-version`` :data:`API_VERSION` and ``x-ms-date`` on every call; the container and name are
percent-encoded whole, so nothing in a key or a namespace reaches another path. ``/cache/ping`` reads the
container's properties, ``/cache/delete`` deletes blobs, ``/cache/flushall`` lists the container (``List
Blobs``, page by page) and deletes only the blobs whose name ends in a cache key's digest (LiteLLM's deletes
every blob in it).

**Expiry**, where relaygate differs: LiteLLM's blobs never expire. Here each blob carries its expiry as the
metadata ``x-ms-meta-relaygate_expires`` (epoch seconds); a lookup that finds it passed, or finds a blob
without it (LiteLLM's JSON, anything else), is a miss. Azure does not delete them: a lifecycle management rule
on the container does (say one day after the blob's last modification, past the longest TTL).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from xml.etree import ElementTree

from relaygate.cache.bucket import BucketCache
from relaygate.config.errors import ConfigError
from relaygate.core.errors import GatewayError, register_secrets
from relaygate.observe.post import Answer, Poster, PostError
from relaygate.observe.renewal import Renewal
from relaygate.upstream.azure_identity import EntraToken, entra_for

if TYPE_CHECKING:
    from relaygate.config.cache import CacheSettings

__all__ = ["API_VERSION", "EXPIRES", "STORAGE_SCOPE", "AzureBlobCache"]

API_VERSION = "2023-11-03"
"""The Blob service version every call names (OAuth needs one of 2017-11-09 or later)."""
STORAGE_SCOPE = "https://storage.azure.com/.default"
EXPIRES = "x-ms-meta-relaygate_expires"
"""The metadata header carrying a blob's expiry (epoch seconds)."""
_CODE = re.compile(r"[A-Za-z0-9]{1,64}")
_ENV = (("tenant_id", "AZURE_TENANT_ID"), ("client_id", "AZURE_CLIENT_ID"), ("client_secret", "AZURE_CLIENT_SECRET"),
        ("azure_federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"), ("azure_authority_host", "AZURE_AUTHORITY_HOST"),
        ("azure_identity_endpoint", "IDENTITY_ENDPOINT"), ("azure_identity_header", "IDENTITY_HEADER"),
        ("azure_imds_endpoint", "AZURE_POD_IDENTITY_AUTHORITY_HOST"))
"""``DefaultAzureCredential``'s variables, as the Entra ID sources' parameters (``upstream.azure_identity``)."""


class AzureBlobCache(BucketCache):
    """The response cache's shared level in an Azure Blob Storage container (see the module docstring)."""

    kind = "azure_blob"
    label = "Azure Blob container"
    deleted = (200, 202, 204, 404)

    def __init__(self, account_url: str, container: str, source: EntraToken, **options: Any) -> None:
        """``options``: :class:`BucketCache`'s (timeouts, queue bound, concurrency)."""
        base = account_url.rstrip("/")
        super().__init__(container, base, **options)
        self.source = source
        self._renewal = Renewal(source, "azure-blob cache", "an Entra ID token", "the token held still serves",
                                lambda: source.token, ("litellm.AuthenticationError: AzureException -",))
        self._header: tuple[str | None, str] = (None, "")
        self._container = f"{base}/{quote(container, safe='')}"

    @classmethod
    def from_settings(cls, settings: CacheSettings, environ: Mapping[str, str] | None = None) -> AzureBlobCache:
        """The level ``cache_params`` describes (``config.cache``: ``azure_*`` parameters), its credentials from
        the environment (module docstring)."""
        env = os.environ if environ is None else environ
        p = settings.azure_params or {}
        params: dict[str, Any] = {name: env.get(var) for name, var in _ENV if env.get(var)}
        params["azure_scope"] = STORAGE_SCOPE
        if params.get("client_secret"):
            register_secrets([str(params["client_secret"])])
        source = entra_for(params, False)
        if source is None:  # never: without a key every deployment has a source
            raise ConfigError("<environment>", "AZURE_CLIENT_ID", "no Entra ID credentials")
        return cls(str(p["account_url"]), str(p["container"]), source, timeout=settings.redis_timeout)

    def describe(self) -> dict[str, Any]:
        """Where the level is (never a credential)."""
        return {"account_url": self.endpoint, "container": self.bucket}

    async def _request(self, poster: Poster, method: str, url: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Answer:
        await self._renewal.renew()
        token = self.source.token
        if token is None:
            raise PostError("no Entra ID token")
        if self._header[0] != token:
            register_secrets([token])
            self._header = (token, f"Bearer {token}")
        signed = [*(headers or []), ("Authorization", self._header[1]), ("x-ms-version", API_VERSION),
                  ("x-ms-date", formatdate(usegmt=True))]
        return await poster.post(url, body, signed, method)

    def _name(self, key: str) -> str:
        return key

    def _read_url(self, key: str) -> str:
        return f"{self._container}/{quote(key, safe='')}"

    def _delete_url(self, name: str) -> str:
        return f"{self._container}/{quote(name, safe='')}"

    def _value(self, answer: Answer) -> bytes | None:
        raw = answer.headers.get(EXPIRES)
        try:
            expires = float(raw) if raw else 0.0
        except ValueError:
            return None
        return answer.content if expires > time.time() else None

    def _write(self, key: str, value: bytes, ttl: float) -> tuple[str, str, list[tuple[str, str]], bytes]:
        headers = [("x-ms-blob-type", "BlockBlob"), ("Content-Type", "application/octet-stream"),
                   (EXPIRES, str(int(time.time() + max(1.0, ttl))))]
        return "PUT", self._read_url(key), headers, value

    async def _prepare_writes(self) -> None:
        """Create the container unless it exists (LiteLLM's ``create_container`` at start); a failure is the
        writes' to report."""
        try:
            await self._request(self._writes, "PUT", f"{self._container}?restype=container")
        except (PostError, OSError, GatewayError):
            pass

    def _ping_call(self) -> tuple[str, str]:
        return "GET", f"{self._container}?restype=container"

    def _error_code(self, answer: Answer) -> str:
        """Azure's error code (``x-ms-error-code``, else the XML body's ``Code``), or ``""``."""
        code = answer.headers.get("x-ms-error-code") or ""
        if not code:
            m = re.search(rb"<Code>([A-Za-z0-9]{1,64})</Code>", answer.content[:4096])
            code = m.group(1).decode() if m else ""
        return code if _CODE.fullmatch(code) else ""

    listing = "List Blobs"

    def _list_url(self, token: str | None) -> str:
        query = {"restype": "container", "comp": "list", "maxresults": str(self.page)}
        if token:
            query["marker"] = token
        return f"{self._container}?{urlencode(query, quote_via=quote)}"

    def _page(self, content: bytes) -> tuple[list[str], str | None]:
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError:
            raise LookupError("Azure answered List Blobs with no XML") from None
        return [b.findtext("Name") or "" for b in root.iter("Blob")], root.findtext("NextMarker") or None
