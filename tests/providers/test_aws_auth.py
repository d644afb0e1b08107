"""Bedrock with temporary AWS credentials (``upstream.aws_identity``): which source a deployment uses, the STS,
container-endpoint and instance-metadata (IMDS) exchanges and their failures (sans IO), a real gateway on an EC2
instance profile (a local IMDSv2), and a real gateway on EKS-style web identity
(``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``) against a local STS and a local Bedrock endpoint that
checks each request's SigV4 signature with botocore, the keys renewed when they near expiry and the
rotated token file read again."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from relaygate.config.env import fill_from_env
from relaygate.core import errors
from relaygate.providers.bedrock import SigV4
from relaygate.upstream.aws_identity import AwsCredentials, credentials_for
from tests.conftest import dead_port, start_gateway

ROLE = "arn:aws:iam::123456789012:role/gateway"


def _stamp(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sts_xml(n: int, expires_in: float) -> bytes:
    return (f'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIATEMP{n}</AccessKeyId>"
            f"<SecretAccessKey>secret-{n}</SecretAccessKey><SessionToken>session-{n}</SessionToken>"
            f"<Expiration>{_stamp(expires_in)}</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
            f"</AssumeRoleWithWebIdentityResponse>").encode()


def test_which_source(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials_for({"aws_access_key_id": "AK", "aws_secret_access_key": "SK"}, "us-east-1") is None
    imds = credentials_for({}, "us-east-1")  # nothing configured: EC2's instance profile, last, as the SDKs
    assert imds is not None and imds.kind == "imds" and imds.direct
    assert credentials_for({"aws_ec2_metadata_disabled": "true"}, "us-east-1") is None
    # the environment reaches the adapter as parameters, read once by config.env (the SDKs' variables)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token")
    params = fill_from_env("bedrock", {})
    assert params["aws_role_name"] == ROLE and params["aws_web_identity_token_file"] == "/var/run/secrets/token"
    irsa = credentials_for(params, "eu-west-1")
    assert irsa is not None and irsa.kind == "web_identity"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKSTATIC")  # static keys in the environment: no role from it
    assert "aws_role_name" not in fill_from_env("bedrock", {})
    ecs = credentials_for({"aws_container_credentials_relative_uri": "/v2/credentials/x"}, "us-east-1")
    assert ecs is not None and ecs.kind == "container"
    assert ecs.refresh_request(0).url == "http://169.254.170.2/v2/credentials/x"
    pod = credentials_for({"aws_container_credentials_uri": "http://169.254.170.23/v1/c",
                           "aws_container_authorization_token": "Bearer pod"}, "us-east-1")
    assert pod is not None and dict(pod.refresh_request(0).headers)["Authorization"] == "Bearer pod"
    assumed = credentials_for({"aws_role_name": ROLE, "aws_access_key_id": "AKID", "aws_secret_access_key": "SK"},
                              "us-west-2", signer_of=SigV4)
    assert assumed is not None and assumed.kind == "assume_role"
    req = assumed.refresh_request(1_700_000_000.0)
    assert req.url == "https://sts.us-west-2.amazonaws.com/" and req.body.startswith(b"Action=AssumeRole&")  # type: ignore[union-attr]
    assert "/us-west-2/sts/aws4_request" in dict(req.headers)["Authorization"]
    token = credentials_for({"aws_role_name": ROLE, "aws_web_identity_token": "eyJ.t", "aws_session_name": "s1",
                             "aws_sts_endpoint": "https://sts.internal"}, "us-east-1")
    assert token is not None
    form = urllib.parse.parse_qs(bytes(token.refresh_request(0).body).decode())  # type: ignore[arg-type]
    assert token.refresh_request(0).url == "https://sts.internal/"
    assert form["WebIdentityToken"] == ["eyJ.t"] and form["RoleSessionName"] == ["s1"] and form["RoleArn"] == [ROLE]
    with pytest.raises(errors.GatewayError, match="aws_role_name needs"):
        credentials_for({"aws_role_name": ROLE}, "us-east-1")


def test_answers_and_renewal(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.one\n")
    c = AwsCredentials("web_identity", "us-east-1", role=ROLE, token_file=str(token_file), sts="https://sts/")
    now = time.time()
    assert c.needs_refresh(now) and not c.valid(now)
    form = urllib.parse.parse_qs(bytes(c.refresh_request(now).body).decode())  # type: ignore[arg-type]
    assert form["WebIdentityToken"] == ["eyJ.one"] and form["Action"] == ["AssumeRoleWithWebIdentity"]
    c.accept(200, sts_xml(1, 3600), now)
    assert (c.access_key, c.secret_key, c.session_token) == ("ASIATEMP1", "secret-1", "session-1")
    assert c.valid(now) and not c.needs_refresh(now) and c.needs_refresh(now + 3400)
    refused = (b'<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to '
               b'perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>')
    with pytest.raises(errors.AuthError, match="Not authorized to perform"):
        c.accept(403, refused, now)
    with pytest.raises(errors.GatewayError) as info:
        c.accept(500, b"<html>oops", now)
    assert info.value.status == 502
    token_file.unlink()
    with pytest.raises(errors.GatewayError, match="cannot read AWS_WEB_IDENTITY_TOKEN_FILE"):
        c.refresh_request(now)
    ecs = AwsCredentials("container", "us-east-1", url="http://169.254.170.2/x")
    ecs.accept(200, orjson.dumps({"AccessKeyId": "ASIAECS", "SecretAccessKey": "s", "Token": "t",
                                  "Expiration": _stamp(3600)}), now)
    assert ecs.access_key == "ASIAECS" and ecs.session_token == "t" and ecs.valid(now)
    with pytest.raises(errors.AuthError):
        ecs.accept(401, b'{"message": "no"}', now)


class _Servers:
    """A local STS (AssumeRoleWithWebIdentity) and a local Bedrock Converse endpoint that checks signatures."""

    def __init__(self, token_file: Path) -> None:
        self.sts_calls: list[dict[str, list[str]]] = []
        self.signed_with: list[str] = []
        self.bad_signatures: list[str] = []
        self.lifetimes = [302.0, 3600.0]  # the first keys expire soon: the second request renews them
        servers = self

        class Sts(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
                servers.sts_calls.append(form)
                n = len(servers.sts_calls)
                ok = form.get("Action") == ["AssumeRoleWithWebIdentity"] and form.get("RoleArn") == [ROLE] and \
                    form.get("WebIdentityToken") == [token_file.read_text().strip()]
                body = sts_xml(n, servers.lifetimes[min(n - 1, 1)]) if ok else b"<ErrorResponse/>"
                self.send_response(200 if ok else 403)
                self.send_header("content-type", "text/xml")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Bedrock(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                from botocore.auth import SigV4Auth
                from botocore.awsrequest import AWSRequest
                from botocore.credentials import Credentials

                body = self.rfile.read(int(self.headers["content-length"]))
                auth = self.headers["authorization"] or ""
                key = auth.partition("Credential=")[2].partition("/")[0]
                n = key.removeprefix("ASIATEMP")
                url = f"http://{self.headers['host']}{self.path}"
                req = AWSRequest(method="POST", url=url, data=body,
                                 headers={"Content-Type": self.headers["content-type"]})
                signer = SigV4Auth(Credentials(key, f"secret-{n}", f"session-{n}"), "bedrock", "us-west-2")
                req.context["timestamp"] = self.headers["x-amz-date"]
                req.headers["X-Amz-Date"] = self.headers["x-amz-date"]
                req.headers["X-Amz-Security-Token"] = self.headers["x-amz-security-token"] or ""
                sig = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
                servers.signed_with.append(key)
                if not auth.endswith(f"Signature={sig}") or self.headers["x-amz-security-token"] != f"session-{n}":
                    servers.bad_signatures.append(auth)
                out = orjson.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "signed"}]}},
                                    "stopReason": "end_turn",
                                    "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.sts = ThreadingHTTPServer(("127.0.0.1", 0), Sts)
        self.bedrock = ThreadingHTTPServer(("127.0.0.1", 0), Bedrock)
        for s in (self.sts, self.bedrock):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def close(self) -> None:
        for s in (self.sts, self.bedrock):
            s.shutdown()
            s.server_close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[_Servers, Path]]:
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.first-token")
    s = _Servers(token_file)
    yield s, token_file
    s.close()


def _bedrock_config(s: _Servers) -> str:
    """A gateway serving one Bedrock deployment at the local signature-checking endpoint, without keys."""
    return f"""
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_region_name: us-west-2
      aws_bedrock_runtime_endpoint: http://127.0.0.1:{s.bedrock.server_address[1]}
general_settings:
  master_key: sk-master-aws
"""


@pytest.mark.e2e
def test_bedrock_on_web_identity_through_a_gateway(servers: tuple[_Servers, Path]) -> None:
    s, token_file = servers
    cfg = _bedrock_config(s)
    env = {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
           "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{s.sts.server_address[1]}", "AWS_ACCESS_KEY_ID": "",
           "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_BEARER_TOKEN_BEDROCK": ""}
    with start_gateway(cfg, env=env) as gw:
        def ask() -> str:
            r = httpx.post(gw.url + "/v1/chat/completions", timeout=30, headers={"authorization": "Bearer sk-master-aws"},
                           json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
            return str(r.json()["choices"][0]["message"]["content"])

        assert ask() == "signed" and ask() == "signed"
        assert len(s.sts_calls) == 1 and s.signed_with == ["ASIATEMP1", "ASIATEMP1"]
        time.sleep(2.5)  # the first keys are now within five minutes of their expiry
        token_file.write_text("eyJ.rotated-token")  # as the platform rotates it
        assert ask() == "signed"
        assert len(s.sts_calls) == 2 and s.sts_calls[1]["WebIdentityToken"] == ["eyJ.rotated-token"]
        assert s.signed_with[-1] == "ASIATEMP2" and s.bad_signatures == []
        log = gw.log()
        assert "secret-1" not in log and "session-2" not in log and "eyJ.rotated-token" not in log


def _imds_answer(n: int, expires_in: float) -> bytes:
    return orjson.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": f"ASIATEMP{n}",
                         "SecretAccessKey": f"secret-{n}", "Token": f"session-{n}", "Expiration": _stamp(expires_in)})


def test_imds_exchange_sans_io() -> None:
    """IMDSv2's three steps, the IMDSv1 fallback when the session token is refused, and the failures."""
    now = time.time()
    c = AwsCredentials("imds", "us-east-1", url="http://imds")
    put = c.refresh_request(now)
    assert (put.method, put.url) == ("PUT", "http://imds/latest/api/token")
    assert dict(put.headers)["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert c.accept(200, b"tok-1", now) is True
    role = c.refresh_request(now)
    assert role.url == "http://imds/latest/meta-data/iam/security-credentials/"
    assert dict(role.headers)["X-aws-ec2-metadata-token"] == "tok-1"
    assert c.accept(200, b"gateway-role\n", now) is True
    keys = c.refresh_request(now)
    assert keys.url == "http://imds/latest/meta-data/iam/security-credentials/gateway-role"
    assert c.accept(200, _imds_answer(1, 3600), now) is False
    assert (c.access_key, c.secret_key, c.session_token) == ("ASIATEMP1", "secret-1", "session-1") and c.valid(now)
    v1 = AwsCredentials("imds", "us-east-1", url="http://imds")
    v1.refresh_request(now)
    assert v1.accept(403, b"", now) is True  # no session token: IMDSv1
    assert "X-aws-ec2-metadata-token" not in dict(v1.refresh_request(now).headers)
    strict = AwsCredentials("imds", "us-east-1", url="http://imds", v1=False)
    strict.refresh_request(now)
    with pytest.raises(errors.GatewayError, match="refused a session token"):
        strict.accept(403, b"", now)
    no_role = AwsCredentials("imds", "us-east-1", url="http://imds")
    no_role.refresh_request(now)
    no_role.accept(200, b"t", now)
    with pytest.raises(errors.AuthError, match="names no instance profile role"):
        no_role.accept(404, b"", now)


def test_imds_unreachable_is_a_401_remembered() -> None:
    """No instance metadata (a closed port): a 401 naming the endpoint, and for IMDS_RETRY seconds the same
    answer at once, with no second attempt."""
    import asyncio

    from relaygate.upstream.calls import refresh_token
    from relaygate.upstream.identity import aclose_identity_clients, identity_client

    port = dead_port()
    c = credentials_for({"aws_ec2_metadata_endpoint": f"http://127.0.0.1:{port}"}, "us-east-1")
    assert c is not None and c.kind == "imds"

    async def main() -> None:
        with pytest.raises(errors.AuthError, match=f"EC2 instance metadata at http://127.0.0.1:{port} gave none"):
            await refresh_token(c, identity_client())
        until = c._blocked_until
        t0 = time.monotonic()
        with pytest.raises(errors.AuthError, match="gave none"):
            await refresh_token(c, identity_client())
        assert time.monotonic() - t0 < 3.0 and not c.refreshing  # (a loaded CI pauses a second or more)
        assert c._blocked_until == until  # an answer from memory does not push the next try back
        # answering from memory does not extend it: once it has passed, the endpoint is asked again
        c._blocked_until = time.time() - 1
        c.expires_at = 0.0
        with pytest.raises(errors.AuthError, match="gave none \\(") as again:
            await refresh_token(c, identity_client())
        assert "connect" in str(again.value).lower() or "unreachable" in str(again.value).lower()
        await aclose_identity_clients()

    asyncio.run(main())


class _Imds:
    """A local instance metadata service (IMDSv2) handing out ASIATEMP<n> keys, the first soon to expire."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.issued = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                served.calls.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")))
                self._send(200, b"imds-session")

            def do_GET(self) -> None:
                served.calls.append(("GET", self.path, self.headers.get("X-aws-ec2-metadata-token", "")))
                if self.headers.get("X-aws-ec2-metadata-token") != "imds-session":
                    self._send(401, b"")
                elif self.path == "/latest/meta-data/iam/security-credentials/":
                    self._send(200, b"gateway-role")
                elif self.path == "/latest/meta-data/iam/security-credentials/gateway-role":
                    served.issued += 1
                    self._send(200, _imds_answer(served.issued, 302.0 if served.issued == 1 else 3600.0))
                else:
                    self._send(404, b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
def test_bedrock_on_an_ec2_instance_profile_through_a_gateway(servers: tuple[_Servers, Path]) -> None:
    s, _ = servers
    imds = _Imds()
    cfg = _bedrock_config(s)
    env = {"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{imds.server.server_address[1]}",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_BEARER_TOKEN_BEDROCK": "",
           "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_PROFILE": "",
           # the metadata service is called directly: a proxy in the environment must not see it
           "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    try:
        with start_gateway(cfg, env=env) as gw:
            def ask() -> str:
                r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                               headers={"authorization": "Bearer sk-master-aws"},
                               json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200, r.text
                return str(r.json()["choices"][0]["message"]["content"])

            assert ask() == "signed" and ask() == "signed"
            assert imds.issued == 1 and s.signed_with == ["ASIATEMP1", "ASIATEMP1"]
            assert [c[:2] for c in imds.calls] == [("PUT", "/latest/api/token"),
                                                   ("GET", "/latest/meta-data/iam/security-credentials/"),
                                                   ("GET", "/latest/meta-data/iam/security-credentials/gateway-role")]
            time.sleep(2.5)  # the first keys are now within five minutes of their expiry
            assert ask() == "signed"
            assert imds.issued == 2 and s.signed_with[-1] == "ASIATEMP2" and s.bad_signatures == []
            log = gw.log()
            assert "secret-1" not in log and "session-2" not in log and "imds-session" not in log
    finally:
        imds.close()
