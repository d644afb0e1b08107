"""Temporary AWS credentials for Bedrock, as a workload gets them: web identity, container, an assumed role.

On EKS (IAM roles for service accounts, IRSA), ECS and EKS Pod Identity a pod has no static keys: the AWS
SDKs (and LiteLLM, through boto3) exchange what the platform mounts for temporary credentials and renew
them before they expire. :class:`AwsCredentials` does the same, sans IO, in the shape of the token sources
the pipeline already refreshes (``upstream.calls.refresh_token``: ``needs_refresh`` / ``refresh_request`` /
``accept``), so the refresh runs off the request path except the first, one at a time, while the old
credentials still sign. Three sources, in the AWS SDKs' order:

- **web identity**: ``aws_role_name`` + ``aws_web_identity_token`` in ``litellm_params`` (LiteLLM's), else
  ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE`` (what IRSA injects; the file is read at every renewal,
  as the platform rotates it: the reason this lives in the IO shell, not in the sans-IO adapter);
  ``aws_session_name`` / ``AWS_ROLE_SESSION_NAME`` names the session. STS ``AssumeRoleWithWebIdentity``
  (an unsigned call).
- **assumed role**: ``aws_role_name`` with static keys (``aws_access_key_id`` / ``aws_secret_access_key``):
  STS ``AssumeRole``, signed with those keys.
- **container**: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (ECS: ``http://169.254.170.2`` + it) or
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` /
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (EKS Pod Identity).
- **instance profile** (EC2's IMDS), last, when nothing else names credentials and
  ``AWS_EC2_METADATA_DISABLED`` is not true: IMDSv2 as the SDKs speak it — a session token (``PUT
  /latest/api/token``), the role's name, then its keys — at ``http://169.254.169.254`` or
  ``AWS_EC2_METADATA_SERVICE_ENDPOINT``; a token refused with 403 / 404 / 405 falls back to IMDSv1 unless
  ``AWS_EC2_METADATA_V1_DISABLED`` is true. Each step waits at most a second (the SDKs' default); a failed
  exchange is remembered for :data:`IMDS_RETRY` seconds, so a host that is not on EC2 answers its requests
  at once (a 401 naming the endpoint) instead of waiting a second each.

STS is ``aws_sts_endpoint`` (LiteLLM's), else ``AWS_ENDPOINT_URL_STS`` (the SDKs' override), else the
region's ``https://sts.<region>.amazonaws.com``. Credentials are renewed five minutes before they expire.
The variables reach :func:`credentials_for` as the deployment's parameters: ``config.env`` reads the
environment once, when the config loads (``aws_role_name``, ``aws_web_identity_token_file``,
``aws_session_name``, ``aws_sts_endpoint``, ``aws_container_credentials_uri`` /
``aws_container_credentials_relative_uri``, ``aws_container_authorization_token`` / ``..._file``).
A refused exchange is a 401 naming STS's message; a token file that cannot be read, a 500 naming the file.
The metadata endpoints (container, IMDS) are called directly, never through a proxy of the environment.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relaygate.core import errors
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.renewal import Renewable, json_object, read_token_file

ECS_HOST = "http://169.254.170.2"
IMDS_HOST = "http://169.254.169.254"
IMDS_RETRY = 30.0
"""Seconds a failed instance-metadata exchange is remembered (and answered with) before the next try."""
_IMDS_TIMEOUTS = Timeouts(connect=1.0, first_byte=1.0, idle=1.0, total=2.0)
_IMDS_CREDS = "/latest/meta-data/iam/security-credentials/"
_TRUE = ("1", "true", "yes")
_FORM = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/xml")]


def _fail(message: str, status: int) -> errors.GatewayError:
    text = f"litellm.AuthenticationError: BedrockException - {message}"
    return errors.AuthError(text) if status == 401 else errors.GatewayError(text, status=status)


class AwsCredentials(Renewable):
    """One workload's temporary credentials (see the module docstring). The shell sends
    :meth:`refresh_request` and hands the answer to :meth:`accept`; the only IO here is reading a token file
    when the renewal request is built."""

    __slots__ = ("access_key", "kind", "secret_key", "session_token", "_signer", "direct", "refresh_timeouts",
                 "_role", "_session", "_token", "_token_file", "_sts", "_url", "_auth", "_auth_file", "region",
                 "_v1", "_step", "_imds_token", "_imds_role", "_blocked_until", "_blocked")

    def __init__(self, kind: str, region: str, *, role: str = "", session: str = "relaygate", token: str = "",
                 token_file: str = "", sts: str = "", url: str = "", auth: str = "", auth_file: str = "",
                 signer: Any = None, v1: bool = True) -> None:
        self.kind = kind
        self.region = region
        self._role, self._session, self._token, self._token_file = role, session, token, token_file
        self._sts, self._url, self._auth, self._auth_file = sts, url, auth, auth_file
        self._signer = signer
        """A ``bedrock.SigV4`` of the static keys (service ``sts``) for ``assume_role``."""
        self.access_key = self.secret_key = self.session_token = ""
        self.direct = kind in ("container", "imds")
        """A metadata endpoint: ``upstream.calls.refresh_token`` calls it without the environment's proxy."""
        self.refresh_timeouts = _IMDS_TIMEOUTS if kind == "imds" else None
        self._v1 = v1
        """IMDS: fall back to IMDSv1 when the session token is refused (``AWS_EC2_METADATA_V1_DISABLED``: no)."""
        self._step = 0
        """IMDS: the next request of the exchange (0 the session token, 1 the role's name, 2 its keys)."""
        self._imds_token = self._imds_role = ""
        self._blocked_until = 0.0
        self._blocked: errors.GatewayError | None = None
        super().__init__()

    # -- the token-source protocol ---------------------------------------------------------------------

    def held(self) -> bool:
        return bool(self.access_key)

    def refresh_request(self, now: float) -> UpstreamRequest:
        if self.kind == "imds":
            return self._imds_request(now)
        if self.kind == "container":
            headers = []
            auth = self._auth or (_read(self._auth_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
                                  if self._auth_file else "")
            if auth:
                headers.append(("Authorization", auth))
            return UpstreamRequest("GET", self._url, headers, b"")
        action = "AssumeRoleWithWebIdentity" if self.kind == "web_identity" else "AssumeRole"
        form = {"Action": action, "Version": "2011-06-15", "RoleArn": self._role, "RoleSessionName": self._session,
                "DurationSeconds": "3600"}
        if self.kind == "web_identity":
            form["WebIdentityToken"] = self._token or _read(self._token_file, "AWS_WEB_IDENTITY_TOKEN_FILE")
            return UpstreamRequest("POST", self._sts, list(_FORM), urllib.parse.urlencode(form).encode())
        body = urllib.parse.urlencode(form).encode()
        return UpstreamRequest("POST", self._sts, self._signer.sign("POST", self._sts, list(_FORM), body, now), body)

    def accept(self, status: int, body: bytes, now: float) -> bool:
        """Take STS's (or a metadata endpoint's) answer; True when the exchange has a next request (IMDS). A
        failure raises (401 when refused)."""
        if self.kind == "imds" and self._step < 2:
            self._imds_step(status, body)
            return True
        if self.kind in ("container", "imds"):
            self._step = 0
            found = _container_answer(status, body, "instance metadata (IMDS)" if self.kind == "imds" else
                                      "container credentials endpoint")
        else:
            found = _sts_answer(status, body, self.kind)
        self.access_key, self.secret_key, self.session_token, expiration = found
        self.expires_at = _epoch(expiration, now)
        return False

    def failed(self, now: float, exc: Exception) -> Exception:
        """The error a failed renewal raises (``upstream.calls.refresh_token``). IMDS: worded as a missing
        credential and remembered for :data:`IMDS_RETRY` seconds (:meth:`refresh_request` raises it again)."""
        if self.kind != "imds":
            return exc
        if exc is self._blocked:  # answered from memory (refresh_request): the next try stays when it was
            return exc
        self._step = 0
        if not isinstance(self._blocked, errors.GatewayError) or self._blocked_until <= now:
            why = exc.message if isinstance(exc, errors.GatewayError) else f"{type(exc).__name__}: {exc}"
            self._blocked = _fail(f"no AWS credentials: none configured, and the EC2 instance metadata at "
                                  f"{self._url} gave none ({why[:300]})", 401)
        self._blocked_until = now + IMDS_RETRY
        return self._blocked

    def _imds_request(self, now: float) -> UpstreamRequest:
        if self._blocked is not None and now < self._blocked_until:
            raise self._blocked
        if self._step == 0:
            return UpstreamRequest("PUT", self._url + "/latest/api/token",
                                   [("X-aws-ec2-metadata-token-ttl-seconds", "21600")], b"")
        headers = [("X-aws-ec2-metadata-token", self._imds_token)] if self._imds_token else []
        path = _IMDS_CREDS + (urllib.parse.quote(self._imds_role, safe="") if self._step == 2 else "")
        return UpstreamRequest("GET", self._url + path, headers, b"")

    def _imds_step(self, status: int, body: bytes) -> None:
        if self._step == 0:
            if status == 200 and body.strip():
                self._imds_token = body.decode("latin-1").strip()
            elif status in (403, 404, 405) and self._v1:
                self._imds_token = ""  # IMDSv1
            else:
                raise _fail(f"instance metadata (IMDS) refused a session token ({status})", 502)
            self._step = 1
            return
        role = body.decode("utf-8", "replace").strip().splitlines()[0].strip() if body.strip() else ""
        if status != 200 or not role:
            raise _fail(f"instance metadata (IMDS) names no instance profile role ({status})",
                        401 if status in (200, 401, 403, 404) else 502)
        self._imds_role = role
        self._step = 2


def _read(path: str, name: str) -> str:
    return read_token_file(path, name, "litellm.AuthenticationError: BedrockException -")


def _epoch(expiration: str, now: float) -> float:
    try:
        return datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now + 900.0  # no usable expiry: renew in a quarter of an hour


def _sts_answer(status: int, body: bytes, kind: str) -> tuple[str, str, str, str]:
    action = "AssumeRoleWithWebIdentity" if kind == "web_identity" else "AssumeRole"
    try:
        root = ET.fromstring(body) if body else None
    except ET.ParseError:
        root = None
    values: dict[str, str] = {}
    if root is not None:
        for el in root.iter():
            tag = el.tag.rpartition("}")[2]
            if tag in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "Message", "Code"):
                values.setdefault(tag, (el.text or "").strip())
    if status >= 400 or not all(values.get(k) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")):
        why = values.get("Message") or values.get("Code") or "no credentials in the answer"
        raise _fail(f"STS {action} failed ({status}): {why[:300]}", 401 if status in (400, 401, 403) else 502)
    return values["AccessKeyId"], values["SecretAccessKey"], values["SessionToken"], values.get("Expiration", "")


def _container_answer(status: int, body: bytes, what: str) -> tuple[str, str, str, str]:
    obj = json_object(body)
    if status >= 400 or not all(isinstance(obj.get(k), str) and obj[k] for k in ("AccessKeyId", "SecretAccessKey")):
        why = obj.get("message") or obj.get("Message") or obj.get("Code") or "no credentials in the answer"
        raise _fail(f"{what} failed ({status}): {str(why)[:300]}", 401 if status in (400, 401, 403) else 502)
    return obj["AccessKeyId"], obj["SecretAccessKey"], str(obj.get("Token") or ""), str(obj.get("Expiration") or "")


def credentials_for(params: Mapping[str, Any], region: str, signer_of: Any = None) -> AwsCredentials | None:
    """The temporary-credential source a Bedrock deployment uses (``params``: its ``litellm_params``, with the
    environment's already filled in by ``config.env``), or None when it has static keys and no role, or
    nothing names a source. ``signer_of(access_key, secret_key, session_token, region, service)`` makes the
    static keys' signer."""
    sts = str(params.get("aws_sts_endpoint") or f"https://sts.{region}.amazonaws.com")
    if not sts.endswith("/"):
        sts += "/"
    role = params.get("aws_role_name")
    session = str(params.get("aws_session_name") or "relaygate")
    ak, sk = params.get("aws_access_key_id"), params.get("aws_secret_access_key")
    if role:
        token = params.get("aws_web_identity_token")
        if token:
            return AwsCredentials("web_identity", region, role=str(role), session=session, token=str(token), sts=sts)
        if ak and sk:
            tok = params.get("aws_session_token")
            signer = signer_of(str(ak), str(sk), str(tok) if tok else None, region, "sts")
            return AwsCredentials("assume_role", region, role=str(role), session=session, sts=sts, signer=signer)
        if params.get("aws_web_identity_token_file"):
            return AwsCredentials("web_identity", region, role=str(role), session=session,
                                  token_file=str(params["aws_web_identity_token_file"]), sts=sts)
        raise errors.GatewayError("bedrock: aws_role_name needs aws_web_identity_token, static keys to assume it "
                                  "with, or AWS_WEB_IDENTITY_TOKEN_FILE", status=500)
    if ak and sk:
        return None
    relative = params.get("aws_container_credentials_relative_uri")
    full = params.get("aws_container_credentials_uri")
    if relative or full:
        url = ECS_HOST + str(relative) if relative else str(full)
        return AwsCredentials("container", region, url=url,
                              auth=str(params.get("aws_container_authorization_token") or ""),
                              auth_file=str(params.get("aws_container_authorization_token_file") or ""))
    if str(params.get("aws_ec2_metadata_disabled") or "").strip().lower() in _TRUE:
        return None
    endpoint = str(params.get("aws_ec2_metadata_endpoint") or IMDS_HOST).rstrip("/")
    v1 = str(params.get("aws_ec2_metadata_v1_disabled") or "").strip().lower() not in _TRUE
    return AwsCredentials("imds", region, url=endpoint, v1=v1)


__all__ = ["IMDS_HOST", "IMDS_RETRY", "AwsCredentials", "credentials_for"]
