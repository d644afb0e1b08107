"""The pass-through routes and where each sends its requests, with which credentials (no IO on requests).

A :class:`Route` is one mounted prefix: a provider's (``/anthropic``, ``/openai`` and
``/openai_passthrough``, ``/azure``, ``/gemini``, ``/vertex_ai`` and ``/vertex-ai``, ``/bedrock``, ``/cohere``,
``/mistral``: :data:`PROVIDER_ROUTES`, as LiteLLM names them) or a
custom endpoint of ``general_settings.pass_through_endpoints``. It knows its error shape (what a client
of that API parses: Anthropic's, Google's, Bedrock's, else OpenAI's), whether the client's other headers
are forwarded, and where the client's gateway key is read (Gemini's ``?key=`` besides the headers).

:func:`upstream_for` builds, once per config snapshot and route, the :class:`Upstream` a request is sent
to: its base URL and the credentials the gateway adds. A provider's credentials are LiteLLM's: the first
deployment of that provider marked ``use_in_pass_through: true`` (its ``api_key``, and here also its
``api_base`` and ``api_version``, which LiteLLM takes from the environment only), else the provider's
environment variables (``ANTHROPIC_API_KEY``, ``ANTHROPIC_API_BASE``, ``OPENAI_API_KEY``, ``AZURE_API_BASE``,
``GEMINI_API_KEY``, ``VERTEXAI_PROJECT`` / ``GOOGLE_APPLICATION_CREDENTIALS``, ``AWS_*``), read through
``config.env``'s one table when the snapshot's routes are first built. Vertex's OAuth token and Bedrock's
SigV4 signature come from the provider adapter built for those credentials (``providers.make_provider``),
so token refresh and signing are the adapters' own code. A route without credentials is not served: it
answers a 404 that says what to configure (after the caller's key and path were checked).

The client never supplies a credential: its key is the gateway's, and :mod:`relaygate.passthrough.urls`
never forwards it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from relaygate.config import env
from relaygate.config.model import Config, Deployment, PassThroughEndpoint
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.providers import make_provider
from relaygate.providers.base import Provider
from relaygate.providers.messages_api import error_body as anthropic_error_body

__all__ = ["PROVIDER_ROUTES", "Route", "Upstream", "error_body", "model_in_path", "upstream_for"]

_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  408: "DEADLINE_EXCEEDED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                  499: "CANCELLED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(shape: str, exc: GatewayError) -> bytes:
    """``exc`` in the error shape a client of the route parses."""
    if shape == "anthropic":
        return anthropic_error_body(exc)
    if shape == "google":
        return orjson.dumps({"error": {"code": exc.status, "message": exc.message,
                                       "status": _GOOGLE_STATUS.get(exc.status, "INTERNAL")}})
    if shape == "bedrock":
        return orjson.dumps({"message": exc.message})
    return exc.body()


class Route:
    """One pass-through prefix; ``provider`` is ``""`` for a custom endpoint (``endpoint`` names it)."""

    __slots__ = ("name", "prefix", "provider", "shape", "forward_all", "query_key", "endpoint")

    def __init__(self, name: str, prefix: str, provider: str, shape: str, *, forward_all: bool = True,
                 query_key: bool = False, endpoint: str = "") -> None:
        self.name = name
        """What the spend logs and the metrics call it (``anthropic``, or the custom endpoint's path)."""
        self.prefix = prefix
        self.provider = provider
        self.shape = shape
        self.forward_all = forward_all
        self.query_key = query_key
        """The client's gateway key may come as ``?key=`` (Gemini's SDKs send it so); never forwarded."""
        self.endpoint = endpoint


PROVIDER_ROUTES: tuple[Route, ...] = (
    Route("anthropic", "/anthropic", "anthropic", "anthropic"),
    Route("openai", "/openai", "openai", "openai"),
    Route("openai", "/openai_passthrough", "openai", "openai"),
    Route("azure", "/azure", "azure", "openai"),
    Route("gemini", "/gemini", "gemini", "google", query_key=True),
    Route("vertex_ai", "/vertex_ai", "vertex_ai", "google"),
    Route("vertex_ai", "/vertex-ai", "vertex_ai", "google"),
    Route("bedrock", "/bedrock", "bedrock", "bedrock"),
    Route("cohere", "/cohere", "cohere", "openai"),
    Route("mistral", "/mistral", "mistral", "openai"),
)

#: the deployments' providers each provider route takes credentials from
_DEPLOYMENT_PROVIDERS = {"vertex_ai": ("vertex_ai", "vertex_ai_beta"), "azure": ("azure",)}
_DEFAULT_BASE = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1",
                 "gemini": "https://generativelanguage.googleapis.com", "cohere": "https://api.cohere.com",
                 "mistral": "https://api.mistral.ai"}
_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "azure": "AZURE_API_KEY",
            "gemini": "GEMINI_API_KEY", "cohere": "COHERE_API_KEY", "mistral": "MISTRAL_API_KEY"}


class Upstream:
    """Where one route's requests go under one config: ``base`` URL, the headers the gateway adds, the
    query parameters it adds when the client gave none of that name (Azure's ``api-version``), the adapter
    that signs or refreshes a token (Vertex, Bedrock), the deployment whose prices apply (when marked
    ``use_in_pass_through``), and a custom endpoint's ``cost_per_request`` and settings. ``error`` is set
    instead when the route has no usable credentials."""

    __slots__ = ("base", "headers", "defaults", "adapter", "dep", "endpoint", "error", "strip_v1")

    def __init__(self, base: str = "", headers: list[tuple[str, str]] | None = None, *,
                 defaults: dict[str, str] | None = None, adapter: Provider | None = None,
                 dep: Deployment | None = None, endpoint: PassThroughEndpoint | None = None,
                 error: GatewayError | None = None, strip_v1: bool = False) -> None:
        self.base = base
        self.headers = headers or []
        self.defaults = defaults or {}
        self.adapter = adapter
        self.dep = dep
        self.endpoint = endpoint
        self.error = error
        self.strip_v1 = strip_v1
        """The base ends with ``/v1`` and a client path starting with ``/v1`` must not repeat it."""


def _missing(route: Route, what: str) -> Upstream:
    """A provider route without credentials is not served: a 404 saying what would serve it."""
    return Upstream(error=errors.NotFound(
        f"The /{route.prefix.strip('/')} pass-through route is not configured: no {route.provider} credentials "
        f"({what})", code="404"))


def _credentials(provider: str, config: Config) -> tuple[Deployment | None, dict[str, Any]]:
    """The ``use_in_pass_through`` deployment of ``provider`` and its parameters, else the environment's."""
    for dep in config.deployments:
        if dep.use_in_pass_through and dep.provider in _DEPLOYMENT_PROVIDERS.get(provider, (provider,)):
            params: dict[str, Any] = dict(dep.extra)
            params.update(api_key=dep.api_key, api_base=dep.api_base, api_version=dep.api_version)
            return dep, params
    return None, env.resolve(provider, {})


def _adapter(provider: str, dep: Deployment | None, params: dict[str, Any]) -> Provider:
    """The provider adapter that holds the route's token source or signer (a deployment of the env's
    credentials when none is marked)."""
    if dep is None:
        extra = {k: v for k, v in params.items() if k not in ("api_key", "api_base", "api_version") and v}
        dep = Deployment(model_name="pass-through", model=f"{provider}/pass-through", provider=provider,
                         upstream_model="pass-through", id=f"pass_through:{provider}", api_key=params.get("api_key"),
                         api_base=params.get("api_base"), api_version=params.get("api_version"), extra=extra,
                         where="pass-through")
    return make_provider(dep)


def upstream_for(route: Route, config: Config) -> Upstream:
    """The route's :class:`Upstream` under ``config`` (built once per snapshot by the caller)."""
    if not route.provider:
        ep = next((e for e in config.general.pass_through_endpoints if e.path == route.endpoint), None)
        if ep is None:
            return Upstream(error=errors.NotFound(f"Route not found: {route.endpoint} (no longer configured)"))
        return Upstream(ep.target, list(ep.headers.items()), endpoint=ep)
    provider = route.provider
    dep, params = _credentials(provider, config)
    key = params.get("api_key")
    base = str(params.get("api_base") or _DEFAULT_BASE.get(provider, "")).rstrip("/")
    where = "mark a deployment use_in_pass_through: true, or set "
    if provider in _KEY_ENV and not key:
        return _missing(route, where + _KEY_ENV[provider])
    if provider == "anthropic":
        base = base.removesuffix("/v1/messages").removesuffix("/v1")
        return Upstream(base, [("x-api-key", str(key))], dep=dep)
    if provider in ("openai", "cohere", "mistral"):  # the client's path names its version (/v1/..., /v2/...)
        strip = provider == "openai" and base.endswith("/v1")
        if provider != "openai":
            base = re.sub(r"/v[12]$", "", base)
        return Upstream(base, [("Authorization", f"Bearer {key}")], dep=dep, strip_v1=strip)
    if provider == "azure":
        if not base:
            return _missing(route, where + "AZURE_API_BASE")
        version = params.get("api_version")
        return Upstream(base, [("api-key", str(key))], dep=dep,
                        defaults={"api-version": str(version)} if version else None)
    if provider == "gemini":
        base = re.sub(r"/v1(beta|alpha)?$", "", base)
        return Upstream(base, [("x-goog-api-key", str(key))], dep=dep)
    try:
        adapter = _adapter(provider, dep, params)
    except GatewayError as exc:
        return _missing(route, f"{exc.message} ({where}the provider's environment variables)")
    if provider == "vertex_ai" and adapter.token_source is None and not adapter.dep.api_key:
        return _missing(route, where + "GOOGLE_APPLICATION_CREDENTIALS (a service account)")
    if provider == "bedrock" and getattr(adapter, "signer", None) is None and adapter.token_source is None \
            and not adapter.dep.api_key:
        return _missing(route, where + "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_BEARER_TOKEN_BEDROCK")
    return Upstream((adapter.api_base or "").rstrip("/"), dep=dep, adapter=adapter)


_GOOGLE_MODEL = re.compile(r"/models/([^/:]+)")
_BEDROCK_MODEL = re.compile(r"^/model/([^/]+)/")
_AZURE_MODEL = re.compile(r"/deployments/([^/]+)/")


def model_in_path(provider: str, decoded: str) -> str:
    """The model a provider's path names (Gemini and Vertex ``.../models/{m}:action``, Bedrock
    ``/model/{id}/action``, Azure ``/openai/deployments/{d}/...``), or ``""``."""
    rx = (_GOOGLE_MODEL if provider in ("gemini", "vertex_ai") else _BEDROCK_MODEL if provider == "bedrock"
          else _AZURE_MODEL if provider == "azure" else None)
    if rx is None:
        return ""
    m = rx.search(decoded)
    return m.group(1)[:256] if m is not None else ""
