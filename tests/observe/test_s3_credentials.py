"""The ``s3`` callback's AWS credentials, found as LiteLLM's logger finds them (boto3's chain): static keys, a
role assumed with them, web identity, a shared-file profile, the container endpoint, the instance profile.

The end-to-end tests run moto's S3 and STS with IAM authorization on: the gateway's keys belong to a user who
may only assume a role (and read the bucket), so an object lands only when the gateway really assumed the role
(or got the container endpoint's credentials) and signed its ``PUT`` with the temporary keys and token; a wrong
secret or a wrong key is refused by moto as by AWS."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.s3 import make_s3
from tests.conftest import start_gateway
from tests.observe.test_s3 import metrics_with, moto_server

BUCKET = "rg-role-logs"
NO_AWS_ENV = {name: "" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                                    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")}


def make(params: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return make_s3(ObserveSettings(success_callbacks=("s3",), s3_callback_params={"s3_bucket_name": "b", **params}),
                   env or {}, None)


def test_which_credentials(tmp_path: Path) -> None:
    sink = make({"s3_aws_access_key_id": "AKIASTATIC", "s3_aws_secret_access_key": "static-secret-0123"},
                {"AWS_SESSION_TOKEN": "the-environments-token"})
    assert sink.signer.kind == "static"
    signed = dict(sink.sign("PUT", "https://s3.us-east-1.amazonaws.com/b/k", [], b"{}"))
    assert "Credential=AKIASTATIC/" in signed["Authorization"] and "X-Amz-Security-Token" not in signed
    sink.discard()

    sink = make({"s3_aws_access_key_id": "AKIAUSER", "s3_aws_secret_access_key": "user-secret-0123",
                 "s3_aws_role_name": "arn:aws:iam::123456789012:role/logs", "s3_aws_session_name": "gw",
                 "s3_aws_sts_endpoint": "https://sts.internal", "s3_region_name": "eu-west-1"})
    src = sink.signer.source
    assert sink.signer.kind == "assume_role" and sink.signer.region == "eu-west-1"
    req = src.refresh_request(time.time())
    form = urllib.parse.parse_qs(req.body.decode())
    assert req.url == "https://sts.internal/" and form["Action"] == ["AssumeRole"]
    assert form["RoleArn"] == ["arn:aws:iam::123456789012:role/logs"] and form["RoleSessionName"] == ["gw"]
    assert "Credential=AKIAUSER/" in dict(req.headers)["Authorization"]
    sink.discard()

    sink = make({"s3_aws_role_name": "arn:aws:iam::1:role/r", "s3_aws_web_identity_token": "eyJ.token"})
    assert sink.signer.kind == "web_identity"
    assert b"WebIdentityToken=eyJ.token" in sink.signer.source.refresh_request(0.0).body
    sink.discard()

    token_file = tmp_path / "token"
    token_file.write_text("eyJ.irsa\n")
    sink = make({}, {"AWS_ROLE_ARN": "arn:aws:iam::1:role/irsa", "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
                     "AWS_REGION": "ap-south-1"})
    assert sink.signer.kind == "web_identity" and sink.url == "https://s3.ap-south-1.amazonaws.com/b"
    assert b"WebIdentityToken=eyJ.irsa&" in sink.signer.source.refresh_request(0.0).body + b"&"
    sink.discard()

    sink = make({}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"})
    assert sink.signer.kind == "container"
    sink.discard()

    (tmp_path / "credentials").write_text("[logs]\naws_access_key_id = AKIAPROFILE\n"
                                          "aws_secret_access_key = profile-secret-0123\n")
    (tmp_path / "config").write_text("[profile assumer]\nrole_arn = arn:aws:iam::1:role/from-profile\n"
                                     "source_profile = logs\nregion = eu-north-1\n")
    files = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_CONFIG_FILE": str(tmp_path / "config")}
    sink = make({"s3_aws_profile_name": "logs"}, files)
    assert sink.signer.kind == "static"
    assert "Credential=AKIAPROFILE/" in dict(sink.sign("PUT", sink.url + "/k", [], b""))["Authorization"]
    sink.discard()
    sink = make({"s3_aws_profile_name": "assumer"}, files)
    assert sink.signer.kind == "assume_role" and sink.signer.region == "eu-north-1"
    assert b"from-profile" in sink.signer.source.refresh_request(0.0).body
    sink.discard()

    with pytest.raises(ConfigError, match=r"s3_aws_profile_name.*no AWS profile 'nobody'"):
        make({"s3_aws_profile_name": "nobody"}, files)
    with pytest.raises(ConfigError, match="s3_aws_role_name"):
        make({"s3_aws_role_name": "arn:aws:iam::1:role/r"})  # nothing to assume it with
    with pytest.raises(ConfigError, match="s3_aws_session_name: expected a string"):
        make({"s3_aws_session_name": 5, "s3_aws_access_key_id": "a", "s3_aws_secret_access_key": "b"})


@dataclass
class Aws:
    url: str
    user_key: str
    user_secret: str
    role: str

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.user_key,
                            aws_secret_access_key=self.user_secret, region_name="us-east-1")


SETUP_ACTIONS = 6
"""The calls :func:`aws` makes before moto starts authorizing every request."""


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    """moto (S3, STS, IAM) with authorization on after the setup: a user ``gateway`` who may assume the role
    ``logs-writer`` and read the bucket, and the role, which may write to it."""
    import boto3

    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)}) as url:
        setup = {"endpoint_url": url, "aws_access_key_id": "AKIASETUP", "aws_secret_access_key": "setup",
                 "region_name": "us-east-1"}
        iam = boto3.client("iam", **setup)
        user = iam.create_user(UserName="gateway")["User"]["Arn"]
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        iam.put_user_policy(UserName="gateway", PolicyName="assume-and-read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}))
        role = iam.create_role(RoleName="logs-writer", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user},
                                                   "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        iam.put_role_policy(RoleName="logs-writer", PolicyName="write", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        found = Aws(url, key["AccessKeyId"], key["SecretAccessKey"], role)
        with pytest.raises(Exception, match="AccessDenied"):  # authorization is on: the user itself may not write
            found.s3().put_object(Bucket=BUCKET, Key="probe", Body=b"x")
        yield found


def config(aws: Aws, params: str) -> str:
    return f"""
model_list:
  - model_name: echo
    litellm_params: {{model: mock/echo}}
litellm_settings:
  success_callback: ["s3"]
  s3_callback_params: {{s3_bucket_name: {BUCKET}, s3_endpoint_url: "{aws.url}", s3_region_name: us-east-1,
                        s3_flush_interval: 0.2, {params}}}
general_settings:
  master_key: sk-master-s3
"""


def chat(gw: Any, n: int, prefix: str) -> list[str]:
    ids = []
    for i in range(n):
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "echo", "messages": [
            {"role": "user", "content": f"{prefix} {i}"}]}, headers={"authorization": "Bearer sk-master-s3"},
            timeout=30)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])  # the payload's id, which LiteLLM's object key ends with
    return ids


def landed(aws: Aws, ids: list[str], timeout: float = 30.0) -> set[str]:
    """The answers of ``ids`` whose payload object is in the bucket (LiteLLM's key ends ``_<id>.json``), read
    from moto's own state (``/moto-api/data.json``, outside IAM: what the gateway's signed ``PUT`` made)."""
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"{aws.url}/moto-api/data.json", timeout=10).json()
        names = [k["name"] for k in state.get("s3", {}).get("FakeKey", []) if k.get("bucket_name") == BUCKET]
        found = {i for i in ids if any(n.endswith(f"_{i}.json") for n in names)}
        if len(found) >= len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.e2e
def test_assumed_role_through_a_gateway(aws: Aws) -> None:
    """``s3_aws_role_name`` with the user's keys: the gateway assumes the role at ``s3_aws_sts_endpoint`` and
    signs with the temporary keys; moto would refuse the user's own keys (the fixture checks it)."""
    cfg = config(aws, f"s3_aws_access_key_id: {aws.user_key}, s3_aws_secret_access_key: os.environ/TEST_USER_SECRET, "
                      f's3_aws_role_name: "{aws.role}", s3_aws_session_name: relaygate-logs, '
                      f's3_aws_sts_endpoint: "{aws.url}"')
    with start_gateway(cfg, env={**NO_AWS_ENV, "TEST_USER_SECRET": aws.user_secret}) as gw:
        ids = chat(gw, 3, "assumed")
        found = landed(aws, ids)
        text = gw.log()
    assert found == set(ids), text[-2000:]
    assert "s3 exporter: AWS credentials from a role assumed with static keys (STS AssumeRole), valid until" in text
    assert aws.user_secret not in text


class _Container(BaseHTTPRequestHandler):
    """The ECS agent's / EKS Pod Identity's credentials endpoint: the role's temporary keys from moto's STS."""

    creds: dict[str, str] = {}
    calls: list[str | None] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.headers.get("Authorization"))
        ok = self.headers.get("Authorization") == "pod-token" and self.path == "/v1/credentials"
        body = json.dumps(self.creds if ok else {"message": "unauthorized"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.e2e
def test_container_credentials_through_a_gateway(aws: Aws) -> None:
    """No keys anywhere, ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and its token set (EKS Pod Identity): the gateway
    fetches the role's temporary credentials there once, with the token, and logs with them."""
    import boto3

    sts = boto3.client("sts", endpoint_url=aws.url, aws_access_key_id=aws.user_key,
                       aws_secret_access_key=aws.user_secret, region_name="us-east-1")
    got = sts.assume_role(RoleArn=aws.role, RoleSessionName="pod")["Credentials"]
    _Container.creds = {"AccessKeyId": got["AccessKeyId"], "SecretAccessKey": got["SecretAccessKey"],
                        "Token": got["SessionToken"], "Expiration": got["Expiration"].isoformat()}
    _Container.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Container)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**NO_AWS_ENV, "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{server.server_address[1]}"
               "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "pod-token"}
        with start_gateway(config(aws, "s3_path: pod"), env=env) as gw:
            ids = chat(gw, 4, "container")
            found = landed(aws, ids)
            text = gw.log()
    finally:
        server.shutdown()
        server.server_close()
    assert found == set(ids), text[-2000:]
    assert _Container.calls == ["pod-token"]  # fetched once: valid for the hour, shared by every upload
    assert "s3 exporter: AWS credentials from the container credentials endpoint, valid until" in text
    assert got["SecretAccessKey"] not in text and got["SessionToken"] not in text


@pytest.mark.e2e
def test_refused_assumption_drops_and_counts(aws: Aws) -> None:
    """A wrong secret for the role's keys: STS refuses (moto checks the signature); each batch's objects are
    retried, then dropped and counted with STS's reason in one log line; the gateway's answers are unaffected
    and the secret is never logged."""
    wrong = "not-the-users-secret-0123456789"
    cfg = config(aws, f"s3_aws_access_key_id: {aws.user_key}, s3_aws_secret_access_key: {wrong}, "
                      f's3_aws_role_name: "{aws.role}", s3_aws_sts_endpoint: "{aws.url}"')
    with start_gateway(cfg, env=NO_AWS_ENV) as gw:
        ids = chat(gw, 2, "refused")
        text = metrics_with(gw, 'event="s3_dropped"', timeout=40.0)
        log = gw.log()
    assert 'event="s3_dropped"' in text, log[-2000:]
    assert "AWS credentials from a role assumed with static keys (STS AssumeRole): STS AssumeRole failed (403)" \
        in log, log[-2000:]
    assert "BedrockException" not in log and wrong not in log
    assert not landed(aws, ids, timeout=1.0)


def test_signed_with_renewed_keys() -> None:
    """A renewal that brings new keys: the next request is signed with them (and their secret is redacted)."""
    from relaygate.core.errors import redact

    sink = make({"s3_aws_role_name": "arn:aws:iam::1:role/r", "s3_aws_web_identity_token": "eyJ.t"})
    src = sink.signer.source
    for n in (1, 2):
        xml = (f"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
               f"<AccessKeyId>ASIATEMP{n}</AccessKeyId><SecretAccessKey>temporary-secret-{n}-0123</SecretAccessKey>"
               f"<SessionToken>session-token-{n}-0123</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
               f"</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>").encode()
        src.accept(200, xml, time.time())
        headers = dict(sink.sign("PUT", sink.url + "/k", [], b"{}"))
        assert f"Credential=ASIATEMP{n}/" in headers["Authorization"]
        assert headers["X-Amz-Security-Token"] == f"session-token-{n}-0123"
        assert headers["x-amz-content-sha256"] == hashlib.sha256(b"{}").hexdigest()
        assert f"temporary-secret-{n}-0123" not in redact(f"x temporary-secret-{n}-0123 y")
    sink.discard()
