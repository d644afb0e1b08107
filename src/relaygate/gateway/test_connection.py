"""LiteLLM's ``POST /health/test_connection``: try a deployment's connection before (or after) serving it.

The body is LiteLLM's: ``litellm_params`` (a ``model_list`` entry's: ``model`` and its credentials and
settings), ``model_info`` (``id`` picks a configured deployment) and ``mode``. The answer is ``{"status":
"success" | "error", "result": {"model", "custom_llm_provider", "mode", "api_base", "api_version", "error"}}``:
a deployment that cannot be reached or refuses the call is a 200 with ``status: error`` and the provider's
message, as in LiteLLM; a body that cannot describe a deployment is a 400 naming the field.

Which deployment is tried: a configured one picked by ``model_info.id``, else by its model group
(``litellm_params.model`` naming one), else by its ``litellm_params.model`` string, with the request's
``litellm_params`` over its own, so a configured model is tried as it is served; with none, the request's
``litellm_params`` alone (the admin UI's "add model" form). The configured deployment's credentials and
connection settings (secret-named values, ``api_base``, ``api_version``, regions, projects, a credential name)
are carried only into a request that sets none of its own: a request that points elsewhere (another
``api_base``, another key, another credential) never takes the configured secret with it (LiteLLM's rule). A
``litellm_credential_name`` names a stored credential (``/credentials``). ``os.environ/`` references and
paths of the gateway's own files (a credentials file, an AWS profile) are refused (LiteLLM's): the call's values
are the request's, never the gateway's environment or files read on someone's say-so. Environment defaults of
the provider (``OPENAI_API_KEY`` ...) apply as they do to a configured deployment.

``mode``: ``chat`` (and ``completion``, ``responses``, ``anthropic_messages``) makes a one-token chat call,
``embedding`` a one-word embedding; another of LiteLLM's modes (images, audio, rerank ...) is a 400, since
relaygate probes chat and embedding deployments only. Without a mode (and none in ``litellm_params.mode``
or the configured ``model_info.mode``) the deployment is checked as ``/health`` checks it. The proxy admin
only (LiteLLM lets a team admin test its team's models; relaygate's model routes are the admin's). Nothing is
stored: the health check history keeps ``/health``'s checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.config.env import FILE_PARAMS, PROVIDERS
from relaygate.config.errors import ConfigError
from relaygate.config.litellm import with_credential
from relaygate.config.loader import make_deployment
from relaygate.config.model import Deployment
from relaygate.core.errors import GatewayError
from relaygate.core.urls import public_base
from relaygate.gateway.config_view import secret_name
from relaygate.gateway.health_view import probe
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, admin_only, bad_request, route
from relaygate.management.models import stored_credentials
from relaygate.providers import make_provider
from relaygate.router import Target
from relaygate.store.credentials import list_credentials
from relaygate.store.sealing import sealer_for

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

__all__ = ["add_routes", "connection_field"]

SOURCE = "<test_connection>"
ENV_PREFIX = "os.environ/"
MODES = {"chat": "chat", "completion": "chat", "responses": "chat", "anthropic_messages": "chat",
         "embedding": "embeddings"}
"""LiteLLM's modes relaygate can try -> the call it makes."""
LITELLM_MODES = ("audio_speech", "audio_transcription", "image_generation", "image_edit", "video_generation", "batch",
                 "rerank", "realtime", "ocr", "evaluation", "decisions", "extraction")
"""LiteLLM's other modes (a 400 here, naming what can be tried)."""
_CONNECTION = frozenset({"api_base", "base_url", "api_version", "organization", "region_name", "vertex_project",
                         "vertex_location", "project", "location", "tenant_id", "client_id", "deployment_id"})
_CONNECTION_PREFIXES = ("aws_", "vertex_", "azure_", "watsonx_")


class TestBody(msgspec.Struct, kw_only=True):
    litellm_params: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None
    mode: str | None = None


def connection_field(name: str) -> bool:
    """Whether a ``litellm_params`` name says where a call goes or with what credentials."""
    lower = name.lower()
    return lower in _CONNECTION or lower.startswith(_CONNECTION_PREFIXES) or secret_name(lower)


def _refuse_server_files(params: dict[str, Any]) -> None:
    """A request's params never make the gateway read its own files (a credentials file, an AWS profile): their
    values are the request's (LiteLLM refuses server-owned fields here too)."""
    for name in (*FILE_PARAMS, "aws_profile_name"):
        value = params.get(name)
        if isinstance(value, str) and value.strip() and not value.lstrip().startswith("{"):
            raise bad_request(f"litellm_params.{name}: a file or profile of the gateway's is not accepted here; send "
                              "the value itself", f"litellm_params.{name}")


def _refuse_env(value: Any, field: str) -> None:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        raise bad_request(f"{field}: os.environ/ references are not accepted here; send the value", field)
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_env(v, f"{field}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_env(v, f"{field}[{i}]")


def _configured(gw: Gateway, dep_id: Any, model: Any) -> Deployment | None:
    deps = gw.runtime.config.deployments
    if isinstance(dep_id, str) and dep_id:
        found = next((d for d in deps if d.id == dep_id), None)
        if found is None:
            raise GatewayError(f"Model with ID {dep_id} not found", status=404, type="not_found_error",
                               param="model_info.id")
        return found
    if not isinstance(model, str) or not model:
        return None
    return next((d for d in deps if d.model_name == model), None) or next((d for d in deps if d.model == model), None)


def _params_of(dep: Deployment) -> dict[str, Any]:
    """A configured deployment's ``litellm_params`` (its environment references already resolved)."""
    own = {"model": dep.model, "api_key": dep.api_key, "api_base": dep.api_base, "api_version": dep.api_version,
           "organization": dep.organization, "timeout": dep.timeout}
    return {k: v for k, v in {**dep.extra, **own}.items() if v is not None}


async def test_connection(gw: Gateway, ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.body(TestBody)
    sent = dict(body.litellm_params or {})
    info = dict(body.model_info or {})
    _refuse_env(sent, "litellm_params")
    _refuse_env(info, "model_info")
    _refuse_server_files(sent)
    model = sent.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("litellm_params.model must be a string", "litellm_params.model")
    dep = _configured(gw, info.get("id"), model)
    if dep is None and not model:
        raise bad_request("litellm_params.model is required (or model_info.id of a configured deployment)",
                          "litellm_params.model")
    base = _params_of(dep) if dep is not None else {}
    if any(connection_field(k) for k in sent):  # a connection of its own: never the configured secrets
        base = {k: v for k, v in base.items() if not connection_field(k)}
    if dep is not None and model in (dep.model_name, None):
        sent.pop("model", None)  # the group's name: the deployment's own model string
    params = {**base, **sent}
    asked = params.pop("mode", None)
    if asked is not None and not isinstance(asked, str):
        raise bad_request(f"litellm_params.mode must be a string, got {type(asked).__name__}", "litellm_params.mode")
    same_model = dep is not None and params.get("model") == dep.model
    mode = body.mode or asked or (dep.model_info.get("mode") if same_model and dep is not None else None)
    endpoint: str | None = None
    if mode is not None:
        if mode not in MODES:
            known = f"one of {', '.join(MODES)}" if mode in LITELLM_MODES else f"LiteLLM's: {', '.join(MODES)}"
            raise bad_request(f"mode {mode!r} cannot be tested here: {known}", "mode")
        endpoint = MODES[mode]
    if "litellm_credential_name" in params:
        stored = await list_credentials(ctx.store) if gw.store is not None else []
        credentials = stored_credentials(stored, sealer_for(gw.runtime.config))
        try:
            params = with_credential(params, credentials, SOURCE, "")
        except ConfigError as exc:
            raise bad_request(exc.detail, "litellm_params.litellm_credential_name") from None
    group = dep.model_name if dep is not None else str(params.get("model"))
    model_info = {k: v for k, v in (dep.model_info if same_model and dep is not None else info).items() if k != "id"}
    if "*" in str(params.get("model")):
        raise bad_request("a wildcard deployment cannot be tried: name a model it serves", "litellm_params.model")
    try:
        tried = make_deployment(group, params, model_info, SOURCE, "", dep_id="test-connection")
        if tried.provider not in PROVIDERS:
            raise ConfigError(SOURCE, "litellm_params.model", f"relaygate has no provider `{tried.provider}`")
        provider = make_provider(tried)
    except ConfigError as exc:
        raise bad_request(f"{exc.field}: {exc.detail}" if exc.field else exc.detail, "litellm_params") from None
    except GatewayError as exc:
        raise bad_request(exc.message, "litellm_params") from None
    err = await probe(gw, Target(tried, provider), endpoint)
    result: dict[str, Any] = {"model": tried.model, "custom_llm_provider": tried.provider,
                              "mode": mode or ("chat" if provider.supports("chat") else "embedding"),
                              "api_base": public_base(provider.api_base) or None}
    if tried.api_version:
        result["api_version"] = tried.api_version
    if err is not None:
        result["error"] = err
    return {"status": "error" if err is not None else "success", "result": result}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def handler(ctx: Ctx) -> Any:
        return await test_connection(gw, ctx)

    route(t, gw, "POST", "/health/test_connection", handler, store_optional=True)
