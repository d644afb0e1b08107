"""LiteLLM's ``azure_storage`` callback: each request's ``StandardLoggingPayload`` written as a JSON file to an Azure
Data Lake Storage (Gen2) file system, or any Blob Storage container.

What it owns: :class:`AzureStorageSink` (the file's name and URL, the credential on each attempt),
:func:`shared_key` (Azure Storage's Shared Key signature) and the configuration (:func:`make_azure_storage`). The
bounded buffer, retries with backoff, drop counting and the close are
:class:`~relaygate.observe.generic_api.HttpExporter`'s; Entra ID tokens are ``upstream.azure_identity``'s, renewed
by the sending task (``observe.renewal``), never on a request's path.

Configuration, as LiteLLM's ``AzureBlobStorageLogger`` reads it: ``AZURE_STORAGE_ACCOUNT_NAME`` and
``AZURE_STORAGE_FILE_SYSTEM`` (required: a ``ConfigError`` at start without them), ``AZURE_STORAGE_ENDPOINT_SUFFIX``
(``core.windows.net``); the credential, as LiteLLM chooses it: ``AZURE_STORAGE_ACCOUNT_KEY`` (Shared Key), else
``AZURE_STORAGE_TENANT_ID`` + ``AZURE_STORAGE_CLIENT_ID`` + ``AZURE_STORAGE_CLIENT_SECRET`` (Entra ID client
credentials, scope ``https://storage.azure.com/.default``, ``AZURE_AUTHORITY_HOST`` for another cloud; one or two of
the three is a ``ConfigError`` naming the missing one), else the deployment's own identity as LiteLLM's credential
chain finds it (``AZURE_FEDERATED_TOKEN_FILE`` with ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID``, else a managed
identity). ``AZURE_STORAGE_ACCOUNT_URL`` (relaygate's) replaces ``https://<account>.blob.<suffix>``, for an
emulator's path-style URL or a private endpoint. ``callback_settings.azure_storage.message_logging: false``,
``turn_off_message_logging`` and ``redact_user_api_key_info`` apply as to the other payload exporters.

Each request (answered or failed, as LiteLLM logs both) is one file ``<YYYY-MM-DD>/<id>.json`` (the request's end,
UTC; ``<id>`` the payload's ``id``, the provider's response id or the call id, kept to ``A-Za-z0-9._-``), written
with one ``Put Blob`` (``PUT <account url>/<file system>/<name>``, a block blob, ``x-ms-version``
:data:`API_VERSION`) — on a Data Lake account the file system is the container and the folder a directory.

Where relaygate differs, on purpose: LiteLLM writes through the Data Lake API in three calls (create, append,
flush) and names files differently by credential (``<date>/<id>.json`` with an account key, ``<id>.json`` at the
file system's root with Entra ID); here one call and one naming. A file name never carries what a client sent
unchecked (LiteLLM keeps a client's ``x-litellm-call-id`` as is, rewriting only dot segments). A write is retried
on a connection error, ``408``, ``429`` or ``5xx``, and what is given up on counted (``azure_storage_dropped``).
LiteLLM's audit-log files are not written; no Enterprise licence is asked for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.detail import detail_of
from relaygate.observe.exporter_env import ENV_SOURCE, base_url
from relaygate.observe.gcs_bucket import safe_component
from relaygate.observe.generic_api import HttpExporter, batching, callback_options, event_flags
from relaygate.observe.post import PostError
from relaygate.observe.renewal import Renewal
from relaygate.observe.standard import standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord
from relaygate.upstream.azure_identity import entra_for

__all__ = ["API_VERSION", "AzureStorageSink", "make_azure_storage", "shared_key"]

NAME = "azure_storage"
API_VERSION = "2023-11-03"
STORAGE_SCOPE = "https://storage.azure.com/.default"
CONCURRENCY = 8
_SIGNED = ("content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
           "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


def shared_key(account: str, key: bytes, method: str, url: str, headers: Sequence[tuple[str, str]]) -> str:
    """The ``Authorization`` value of Azure Storage's Shared Key scheme for one request (headers as sent,
    ``Content-Length`` included; an empty or zero length is signed as empty, as the service expects)."""
    parts = urlsplit(url)
    h = {k.lower(): v.strip() for k, v in headers}
    fixed = [h.get(name, "") for name in _SIGNED]
    if fixed[2] == "0":
        fixed[2] = ""
    canonical = "".join(f"{k}:{h[k]}\n" for k in sorted(k for k in h if k.startswith("x-ms-")))
    resource = f"/{account}{parts.path or '/'}"
    if parts.query:
        pairs: dict[str, list[str]] = {}
        for item in parts.query.split("&"):
            k, _, v = item.partition("=")
            pairs.setdefault(k.lower(), []).append(v)
        resource += "".join(f"\n{k}:{','.join(sorted(v))}" for k, v in sorted(pairs.items()))
    text = "\n".join([method.upper(), *fixed]) + "\n" + canonical + resource
    sig = base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")
    return f"SharedKey {account}:{sig}"


class AzureStorageSink(HttpExporter):
    """LiteLLM's ``azure_storage`` callback (module docstring); entries are ``(file name, payload JSON)``."""

    name = NAME
    single = True
    concurrency = CONCURRENCY

    def __init__(self, account_url: str, account: str, file_system: str, *, key: bytes | None = None,
                 source: Any = None, redact_key_info: bool = False, redact_messages: bool = False,
                 **options: Any) -> None:
        super().__init__(f"{account_url.rstrip('/')}/{quote(file_system, safe='')}",
                         {"Content-Type": "application/json", "x-ms-blob-type": "BlockBlob"}, **options)
        self.account = account
        self.key = key
        self.source = source
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self._renewal = Renewal(source, NAME, "an Entra ID token", "the token held still serves",
                                lambda: source.token) if source is not None else None
        self._header: tuple[str | None, str] = (None, "")

    def entry(self, record: CompletionRecord) -> tuple[str, bytes]:
        payload = standard_payload(record, detail_of(record), redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        end = payload.get("endTime")
        day = datetime.fromtimestamp(end if isinstance(end, float | int) else time.time(), UTC).strftime("%Y-%m-%d")
        ident = safe_component(payload.get("id")) or safe_component(record.call_id) or "request"
        return f"{day}/{ident}.json", orjson.dumps(payload, default=str)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return entries[0][1]  # type: ignore[no-any-return]

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        return "PUT", f"{self.url}/{quote(entries[0][0], safe='/')}"

    async def prepare(self) -> None:
        if self._renewal is not None:
            await self._renewal.renew()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        out = [*headers, ("x-ms-version", API_VERSION), ("x-ms-date", formatdate(usegmt=True))]
        if self.key is not None:
            out.append(("Content-Length", str(len(body))))
            return [*out, ("Authorization", shared_key(self.account, self.key, method, url, out))]
        token = self.source.token if self.source is not None else None
        if token is None:
            raise PostError("no Entra ID token for Azure Storage")
        if self._header[0] != token:
            register_secrets([token])
            self._header = (token, f"Bearer {token}")
        return [*out, ("Authorization", self._header[1])]


_CHAIN = (("tenant_id", "AZURE_TENANT_ID"), ("client_id", "AZURE_CLIENT_ID"),
          ("azure_federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"),
          ("azure_authority_host", "AZURE_AUTHORITY_HOST"),
          ("azure_identity_endpoint", "IDENTITY_ENDPOINT"), ("azure_identity_header", "IDENTITY_HEADER"),
          ("azure_imds_endpoint", "AZURE_POD_IDENTITY_AUTHORITY_HOST"))
"""The deployment identity's variables (LiteLLM's credential chain without a service principal)."""


def _credential(env: Mapping[str, str]) -> tuple[bytes | None, Any]:
    key = (env.get("AZURE_STORAGE_ACCOUNT_KEY") or "").strip()
    if key:
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(ENV_SOURCE, "AZURE_STORAGE_ACCOUNT_KEY", "not a base64 account key") from None
        register_secrets([key])
        return raw, None
    names = ("AZURE_STORAGE_TENANT_ID", "AZURE_STORAGE_CLIENT_ID", "AZURE_STORAGE_CLIENT_SECRET")
    given = {n: (env.get(n) or "").strip() for n in names}
    if any(given.values()):
        for n in names:
            if not given[n]:
                raise ConfigError(ENV_SOURCE, n, "the azure_storage callback's Entra ID credentials need "
                                                 "AZURE_STORAGE_TENANT_ID, AZURE_STORAGE_CLIENT_ID and "
                                                 "AZURE_STORAGE_CLIENT_SECRET")
        register_secrets([given["AZURE_STORAGE_CLIENT_SECRET"]])
        params: dict[str, Any] = {"tenant_id": given["AZURE_STORAGE_TENANT_ID"],
                                  "client_id": given["AZURE_STORAGE_CLIENT_ID"],
                                  "client_secret": given["AZURE_STORAGE_CLIENT_SECRET"]}
        if env.get("AZURE_AUTHORITY_HOST"):
            params["azure_authority_host"] = env["AZURE_AUTHORITY_HOST"]
    else:
        params = {name: env.get(var) for name, var in _CHAIN if env.get(var)}
    params["azure_scope"] = STORAGE_SCOPE
    return None, entra_for(params, False)


def make_azure_storage(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                       **options: Any) -> AzureStorageSink:
    """The ``azure_storage`` sink for ``settings``, configured from ``env`` (module docstring); ``ConfigError`` for
    a missing account or file system, an unusable URL, or credentials that cannot work."""
    account, fs = ((env.get(n) or "").strip() for n in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_FILE_SYSTEM"))
    for name, value in (("AZURE_STORAGE_ACCOUNT_NAME", account), ("AZURE_STORAGE_FILE_SYSTEM", fs)):
        if not value:
            raise ConfigError(ENV_SOURCE, name, "the azure_storage callback needs AZURE_STORAGE_ACCOUNT_NAME and "
                                                "AZURE_STORAGE_FILE_SYSTEM")
    if not all(c.isalnum() or c == "-" for c in fs) or not 3 <= len(fs) <= 63:
        raise ConfigError(ENV_SOURCE, "AZURE_STORAGE_FILE_SYSTEM", "expected 3-63 letters, digits or hyphens")
    suffix = (env.get("AZURE_STORAGE_ENDPOINT_SUFFIX") or "").strip() or "core.windows.net"
    url = base_url(env, "AZURE_STORAGE_ACCOUNT_URL", f"https://{account}.blob.{suffix}")
    key, source = _credential(env)
    opts = callback_options(settings, NAME)
    success, failure = event_flags(settings, NAME, None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch=512, interval=5.0)
    return AzureStorageSink(url, account, fs, key=key, source=source, success=success, failure=failure,
                            on_event=on_event, redact_key_info=settings.redact_user_api_key_info,
                            redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                            **defaults)
