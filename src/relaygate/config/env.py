"""Provider names, and provider credentials and defaults from the environment, as LiteLLM reads them.

A LiteLLM deployment without ``api_key`` uses the provider's conventional variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ...); some providers take their base URL, API version, project, region or
credentials file from the environment too. :func:`resolve` fills a deployment's missing parameters from
:data:`ENV` once, when the config is loaded, and reads the one file a parameter may name
(``vertex_credentials`` / ``GOOGLE_APPLICATION_CREDENTIALS``: a service account's JSON). This is the only
place that reads the environment for providers: adapters (``relaygate.providers``) only ever read the
:class:`~relaygate.config.model.Deployment`, so they stay sans-IO.

:data:`PROVIDERS` names every ``provider/`` prefix the adapters serve, so the config can be validated
without importing them (``relaygate.providers`` builds its registry from the same names; a test keeps
the two equal).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from typing import Any

#: every provider prefix an adapter serves (``relaygate.providers.registry`` has exactly these keys)
PROVIDERS = frozenset({
    "openai", "custom_openai", "text-completion-openai", "groq", "mistral", "deepseek", "together_ai",
    "fireworks_ai", "openrouter", "perplexity", "xai", "hosted_vllm", "vllm", "lm_studio", "mock",
    "anthropic", "azure", "azure_ai", "gemini", "vertex_ai", "vertex_ai_beta", "bedrock", "cohere",
    "cohere_chat", "ollama", "ollama_chat",
    "nvidia_nim", "cerebras", "sambanova", "meta_llama", "nebius", "codestral", "github", "friendliai",
    "novita", "deepinfra", "litellm_proxy", "hyperbolic", "lambda_ai", "moonshot", "dashscope",
    "featherless_ai", "nscale", "wandb", "volcengine", "zai", "inception", "vercel_ai_gateway",
})

#: one rule: (parameter, environment variables, first set wins; a parameter that, when set, skips the rule)
Rule = tuple[str, tuple[str, ...], str | None]


def _std(key: tuple[str, ...], base: tuple[str, ...], version: tuple[str, ...] = ()) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for param, names in (("api_key", key), ("api_base", base), ("api_version", version)):
        if names:
            rules.append((param, names, None))
    return tuple(rules)


_OPENAI = _std(("OPENAI_API_KEY",), ("OPENAI_API_BASE", "OPENAI_BASE_URL"))
_COHERE = _std(("COHERE_API_KEY", "CO_API_KEY"), ("COHERE_API_BASE",))
_VLLM = _std(("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",))
_OLLAMA = _std((), ("OLLAMA_API_BASE",))
_VERTEX: tuple[Rule, ...] = (
    ("vertex_project", ("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"), None),
    ("vertex_location", ("VERTEXAI_LOCATION",), None),
    ("vertex_credentials", ("GOOGLE_APPLICATION_CREDENTIALS",), None),
)

#: provider prefix -> the parameters it may take from the environment, in order
ENV: dict[str, tuple[Rule, ...]] = {
    "openai": _OPENAI,
    "text-completion-openai": _OPENAI,
    "azure": (*_std(("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
                    ("AZURE_API_VERSION", "OPENAI_API_VERSION")),
              ("azure_ad_token", ("AZURE_AD_TOKEN",), "api_key"),
              # an Entra ID identity (DefaultAzureCredential's variables; AKS workload identity injects them):
              # used by a deployment without a key or a static token (upstream.azure_identity)
              ("tenant_id", ("AZURE_TENANT_ID",), None), ("client_id", ("AZURE_CLIENT_ID",), None),
              ("client_secret", ("AZURE_CLIENT_SECRET",), None),
              ("azure_identity_endpoint", ("IDENTITY_ENDPOINT",), None),
              ("azure_identity_header", ("IDENTITY_HEADER",), None),
              ("azure_imds_endpoint", ("AZURE_POD_IDENTITY_AUTHORITY_HOST",), None),
              ("azure_federated_token_file", ("AZURE_FEDERATED_TOKEN_FILE",), None),
              ("azure_authority_host", ("AZURE_AUTHORITY_HOST",), None)),
    "azure_ai": _std(("AZURE_AI_API_KEY",), ("AZURE_AI_API_BASE",)),
    "anthropic": _std(("ANTHROPIC_API_KEY",), ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")),
    "gemini": _std(("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_API_BASE",)),
    "vertex_ai": _VERTEX,
    "vertex_ai_beta": _VERTEX,
    "bedrock": (
        ("api_key", ("AWS_BEARER_TOKEN_BEDROCK",), None),
        ("aws_region_name", ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"), None),
        ("aws_access_key_id", ("AWS_ACCESS_KEY_ID",), None),
        ("aws_secret_access_key", ("AWS_SECRET_ACCESS_KEY",), None),
        ("aws_session_token", ("AWS_SESSION_TOKEN",), None),
        # temporary credentials as the AWS SDKs find them (upstream.aws_identity), unless static keys are set
        ("aws_role_name", ("AWS_ROLE_ARN",), "aws_access_key_id"),
        ("aws_web_identity_token_file", ("AWS_WEB_IDENTITY_TOKEN_FILE",), "aws_access_key_id"),
        ("aws_session_name", ("AWS_ROLE_SESSION_NAME",), None),
        ("aws_sts_endpoint", ("AWS_ENDPOINT_URL_STS",), None),
        ("aws_container_credentials_relative_uri", ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",), "aws_access_key_id"),
        ("aws_container_credentials_uri", ("AWS_CONTAINER_CREDENTIALS_FULL_URI",), "aws_access_key_id"),
        ("aws_container_authorization_token", ("AWS_CONTAINER_AUTHORIZATION_TOKEN",), None),
        ("aws_container_authorization_token_file", ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",), None),
        ("aws_ec2_metadata_endpoint", ("AWS_EC2_METADATA_SERVICE_ENDPOINT",), None),
        ("aws_ec2_metadata_disabled", ("AWS_EC2_METADATA_DISABLED",), None),
        ("aws_ec2_metadata_v1_disabled", ("AWS_EC2_METADATA_V1_DISABLED",), None),
    ),
    "groq": _std(("GROQ_API_KEY",), ("GROQ_API_BASE",)),
    "mistral": _std(("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",)),
    "deepseek": _std(("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
    "together_ai": _std(("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"), ("TOGETHERAI_API_BASE",)),
    "fireworks_ai": _std(("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY"),
                         ("FIREWORKS_API_BASE",)),
    "openrouter": _std(("OPENROUTER_API_KEY", "OR_API_KEY"), ("OPENROUTER_API_BASE",)),
    "perplexity": _std(("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"), ("PERPLEXITY_API_BASE",)),
    "xai": _std(("XAI_API_KEY",), ("XAI_API_BASE",)),
    "cohere": _COHERE,
    "cohere_chat": _COHERE,
    "hosted_vllm": _VLLM,
    "vllm": _VLLM,
    "lm_studio": _std(("LM_STUDIO_API_KEY",), ("LM_STUDIO_API_BASE",)),
    "nvidia_nim": _std(("NVIDIA_NIM_API_KEY",), ("NVIDIA_NIM_API_BASE",)),
    "cerebras": _std(("CEREBRAS_API_KEY",), ("CEREBRAS_API_BASE",)),
    "sambanova": _std(("SAMBANOVA_API_KEY",), ("SAMBANOVA_API_BASE",)),
    "meta_llama": _std(("LLAMA_API_KEY",), ("LLAMA_API_BASE",)),
    "nebius": _std(("NEBIUS_API_KEY",), ("NEBIUS_API_BASE",)),
    "codestral": _std(("CODESTRAL_API_KEY",), ("CODESTRAL_API_BASE",)),
    "github": _std(("GITHUB_API_KEY",), ("GITHUB_API_BASE",)),
    "friendliai": _std(("FRIENDLIAI_API_KEY", "FRIENDLI_TOKEN"), ("FRIENDLI_API_BASE",)),
    "novita": _std(("NOVITA_API_KEY",), ("NOVITA_API_BASE",)),
    "deepinfra": _std(("DEEPINFRA_API_KEY",), ("DEEPINFRA_API_BASE",)),
    "litellm_proxy": _std(("LITELLM_PROXY_API_KEY",), ("LITELLM_PROXY_API_BASE",)),
    "hyperbolic": _std(("HYPERBOLIC_API_KEY",), ("HYPERBOLIC_API_BASE",)),
    "lambda_ai": _std(("LAMBDA_API_KEY",), ("LAMBDA_API_BASE",)),
    "moonshot": _std(("MOONSHOT_API_KEY",), ("MOONSHOT_API_BASE",)),
    "dashscope": _std(("DASHSCOPE_API_KEY",), ("DASHSCOPE_API_BASE",)),
    "featherless_ai": _std(("FEATHERLESS_AI_API_KEY", "FEATHERLESS_API_KEY"),
                           ("FEATHERLESS_AI_API_BASE", "FEATHERLESS_API_BASE")),
    "nscale": _std(("NSCALE_API_KEY",), ("NSCALE_API_BASE",)),
    "wandb": _std(("WANDB_API_KEY",), ("WANDB_API_BASE",)),
    "volcengine": _std(("VOLCENGINE_API_KEY",), ("VOLCENGINE_API_BASE",)),
    "zai": _std(("ZAI_API_KEY",), ("ZAI_API_BASE",)),
    "inception": _std(("INCEPTION_API_KEY",), ("INCEPTION_API_BASE",)),
    "vercel_ai_gateway": _std(("VERCEL_AI_GATEWAY_API_KEY",), ("VERCEL_AI_GATEWAY_API_BASE",)),
    "ollama": _OLLAMA,
    "ollama_chat": _OLLAMA,
}

#: parameters that may name a file whose content the adapter needs (read here, never by the adapter)
FILE_PARAMS = frozenset({"vertex_credentials"})


class EnvError(ValueError):
    """A parameter names a file that cannot be read (the loader turns it into a ``ConfigError``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _first(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def fill_from_env(provider: str, params: dict[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``params`` with the missing parameters of ``provider``'s rules taken from the environment (``env``:
    the process's when None)."""
    rules = ENV.get(provider)
    if rules is None:
        return params
    env = os.environ if env is None else env
    out = params
    for param, names, unless in rules:
        if params.get(param) or (unless is not None and out.get(unless)):
            continue
        value = _first(names, env)
        if value is not None:
            if out is params:
                out = dict(params)
            out[param] = value
    return out


def read_files(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each :data:`FILE_PARAMS` value that is a path (not inline JSON, not a mapping)
    replaced by the file's text."""
    out = params
    for param in FILE_PARAMS:
        value = params.get(param)
        if not isinstance(value, str) or not value.strip() or value.lstrip().startswith("{"):
            continue
        path = os.path.expanduser(value.strip())
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            raise EnvError(param, f"cannot read the file it names: {exc.strerror or exc}") from None
        if out is params:
            out = dict(params)
        out[param] = text
    return out


def _profile_sections(path: str, config: bool) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(os.path.expanduser(path), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise EnvError("aws_profile_name", f"cannot read {path}: {exc}") from None
    out = {}
    for section in parser.sections():
        name = section.removeprefix("profile ").strip() if config else section.strip()
        out[name] = dict(parser.items(section))
    return out


def aws_profile(params: dict[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Bedrock deployment's ``aws_profile_name`` (LiteLLM's; else ``AWS_PROFILE`` when no keys are given,
    the AWS SDKs' order) read from the shared files (``AWS_SHARED_CREDENTIALS_FILE`` / ``~/.aws/credentials``,
    ``AWS_CONFIG_FILE`` / ``~/.aws/config``): its static keys, its region, and a ``role_arn`` with its
    ``source_profile``'s keys or its ``web_identity_token_file``, as parameters the deployment does not set
    itself. SSO and credential-process profiles are not read. An unknown profile is an :class:`EnvError`.
    ``env``: the environment (the process's when None)."""
    env = os.environ if env is None else env
    name = params.get("aws_profile_name")
    earlier = (env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ROLE_ARN") or params.get("aws_access_key_id")
               or params.get("api_key"))  # what the SDKs' chain uses before a shared-file profile
    if not name and (earlier or not env.get("AWS_PROFILE")):
        return params
    name = str(name or env["AWS_PROFILE"])
    creds = _profile_sections(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", False)
    config = _profile_sections(env.get("AWS_CONFIG_FILE") or "~/.aws/config", True)
    if name not in creds and name not in config:
        raise EnvError("aws_profile_name", f"no AWS profile {name!r} in the shared credentials or config file")
    profile = {**config.get(name, {}), **creds.get(name, {})}
    found: dict[str, Any] = {}
    for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        if profile.get(key):
            found[key] = profile[key]
    if profile.get("region"):
        found["aws_region_name"] = profile["region"]
    if profile.get("role_arn"):
        found["aws_role_name"] = profile["role_arn"]
        if profile.get("role_session_name"):
            found["aws_session_name"] = profile["role_session_name"]
        if profile.get("web_identity_token_file"):
            found["aws_web_identity_token_file"] = profile["web_identity_token_file"]
        source = profile.get("source_profile")
        if source:
            base = {**config.get(source, {}), **creds.get(source, {})}
            found.update({k: base[k] for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
                          if base.get(k)})
    return {**found, **{k: v for k, v in params.items() if k != "aws_profile_name"}}


def resolve(provider: str, params: dict[str, Any]) -> dict[str, Any]:
    """A deployment's ``litellm_params`` as its adapter reads them: a Bedrock profile read, environment
    defaults filled in, files read. Raises :class:`EnvError` for a file that cannot be read."""
    if provider == "bedrock":
        params = aws_profile(params)
    return read_files(fill_from_env(provider, params))


_TRUTHY = frozenset({"1", "true", "t", "yes", "y"})


def load_dotenv_file(directory: str | None = None) -> tuple[str, list[str]] | None:
    """LiteLLM's start-up ``.env``: while ``LITELLM_MODE`` is ``DEV`` (its default) and
    ``LITELLM_DISABLE_DOTENV`` is not true, the variables of the ``.env`` file in ``directory`` (the working
    directory) are set where the environment does not already have them (python-dotenv's parser, LiteLLM's).
    LiteLLM lets ``find_dotenv`` walk up from its own package for the file; relaygate reads the working
    directory's only, so which file is read does not depend on where the package is installed. Returns the
    file and the names it set (never their values), or None when no file was read."""
    if os.environ.get("LITELLM_MODE", "DEV") != "DEV" or \
            os.environ.get("LITELLM_DISABLE_DOTENV", "").strip().casefold() in _TRUTHY:
        return None
    path = os.path.join(directory or os.getcwd(), ".env")
    if not os.path.isfile(path):
        return None
    from dotenv import dotenv_values

    names = []
    for name, value in dotenv_values(path).items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            names.append(name)
    return path, names
