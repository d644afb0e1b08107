"""AWS credentials for an exporter that signs its requests (``s3``), found as LiteLLM's logger finds them.

LiteLLM's S3 logger hands its ``s3_aws_*`` parameters to ``BaseAWSLLM.get_credentials``, that is to boto3's
chain: static keys, a role assumed with them, a web identity token, a shared-file profile, then whatever the
platform provides (IRSA's ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, the ECS / EKS Pod Identity
container endpoint, the EC2 instance profile). relaygate reads the same parameters as the Bedrock deployment
parameters they correspond to (``s3_aws_role_name`` is ``aws_role_name`` ...), with the same profile files and
variables (``config.env``), and gets the same sources (``upstream.aws_identity``), so a gateway on EKS or EC2
logs to S3 without static keys, as LiteLLM's does.

What it owns: :func:`aws_signer` (the parameters to a signer; ``ConfigError`` for what cannot work) and
:class:`AwsSigner` (SigV4 with whichever credentials are current). Temporary credentials are renewed off the
request path: the exporter's sending task calls :meth:`AwsSigner.prepare` before each attempt, which renews
them when due (five minutes before they expire), one renewal at a time. A renewal that fails while the held
credentials still serve is logged (at most once a minute) and the attempt goes on with them; with none held
the attempt fails as an unreachable endpoint does (retried with backoff, then dropped and counted, the reason
in the exporter's log line). Renewed secrets are registered for redaction: never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from relaygate.config.env import EnvError, aws_profile, fill_from_env
from relaygate.config.errors import ConfigError
from relaygate.core.errors import GatewayError, register_secrets
from relaygate.observe.renewal import Renewal
from relaygate.providers.bedrock import SigV4
from relaygate.upstream.aws_identity import AwsCredentials, credentials_for

__all__ = ["NAMES", "AwsSigner", "aws_signer"]

log = logging.getLogger("relaygate.observe")

NAMES = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_role_name", "aws_session_name",
         "aws_profile_name", "aws_web_identity_token", "aws_sts_endpoint")
"""The credential parameters an exporter takes under its prefix (``s3_aws_role_name`` ...)."""
KINDS = {"static": "static keys", "assume_role": "a role assumed with static keys (STS AssumeRole)",
         "web_identity": "web identity (STS AssumeRoleWithWebIdentity)",
         "container": "the container credentials endpoint", "imds": "the EC2 instance metadata (IMDS)"}
_PREFIX = "litellm.AuthenticationError: BedrockException - "
"""How ``upstream.aws_identity`` words a failure for Bedrock's clients; not said in an exporter's log."""


class AwsSigner:
    """SigV4 for one service and region with static keys or a renewed source (see the module docstring)."""

    __slots__ = ("service", "region", "kind", "source", "_static", "_temp", "_renewal")

    def __init__(self, service: str, region: str, static: SigV4 | None, source: AwsCredentials | None) -> None:
        if (static is None) == (source is None):
            raise ValueError("exactly one of static keys and a credential source")
        self.service = service
        self.region = region
        self.kind = source.kind if source is not None else "static"
        self.source = source
        self._static = static
        self._temp: SigV4 | None = None
        self._renewal = None if source is None else Renewal(
            source, service, f"AWS credentials from {KINDS[source.kind]}", "the credentials held still serve",
            lambda: source.access_key, (_PREFIX,))

    async def prepare(self) -> None:
        """Renew temporary credentials when due (no-op for static keys); ``PostError`` when none can sign."""
        if self._renewal is not None:
            await self._renewal.renew()

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        """``headers`` signed with the current credentials (after :meth:`prepare`)."""
        src = self.source
        if src is None:
            assert self._static is not None
            return self._static.sign(method, url, headers, body, time.time())
        temp = self._temp
        if temp is None or temp.access_key != src.access_key:  # renewed: sign with the new keys
            register_secrets([src.secret_key, src.session_token])
            temp = self._temp = SigV4(src.access_key, src.secret_key, src.session_token or None, self.region,
                                      service=self.service)
        return temp.sign(method, url, headers, body, time.time())


def _text(value: Any, field: str) -> str | None:
    if value is None or value == "" or value is False:
        return None
    if not isinstance(value, str):
        raise ConfigError("config", field, "expected a string")
    return value.strip() or None


def aws_signer(params: Mapping[str, Any], env: Mapping[str, str], *, prefix: str, field: str, service: str,
               region: str | None) -> AwsSigner:
    """The signer of an exporter configured by ``params`` (its ``<prefix>aws_*`` entries; ``field`` names them
    in errors), ``env`` the environment. ``region``: the exporter's own (else the profile's, else
    ``us-east-1``). Raises ``ConfigError`` when no credentials can be had (a role with nothing to assume it
    with, an unknown profile, no source at all)."""
    given = {name: v for name in NAMES if (v := _text(params.get(prefix + name), f"{field}.{prefix}{name}"))}
    try:
        found = aws_profile(given, env)
    except EnvError as exc:
        raise ConfigError("config", f"{field}.{prefix}aws_profile_name", str(exc)) from None
    keyed, token_given = bool(found.get("aws_access_key_id")), bool(found.get("aws_session_token"))
    found = dict(fill_from_env("bedrock", found, env))
    if keyed and not token_given:
        found.pop("aws_session_token", None)  # the environment's token belongs to the environment's keys only
    region = region or str(found.get("aws_region_name") or "") or "us-east-1"
    try:
        source = credentials_for(found, region, signer_of=SigV4)
    except GatewayError as exc:
        raise ConfigError("config", f"{field}.{prefix}aws_role_name", exc.message.removeprefix("bedrock: ")) from None
    if source is not None:
        signer = AwsSigner(service, region, None, source)
    else:
        ak, sk = found.get("aws_access_key_id"), found.get("aws_secret_access_key")
        if not ak or not sk:
            raise ConfigError("config", f"{field}.{prefix}aws_access_key_id",
                              f"no AWS credentials: set {prefix}aws_access_key_id and {prefix}aws_secret_access_key "
                              f"(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), {prefix}aws_role_name, "
                              "a profile, or run where the platform provides them (the instance metadata is "
                              "disabled by AWS_EC2_METADATA_DISABLED)")
        token = found.get("aws_session_token")
        signer = AwsSigner(service, region, SigV4(str(ak), str(sk), str(token) if token else None, region,
                                                  service=service), None)
    secrets = [str(found[k]) for k in ("aws_secret_access_key", "aws_session_token", "aws_web_identity_token")
               if found.get(k)]
    register_secrets(secrets)
    return signer
