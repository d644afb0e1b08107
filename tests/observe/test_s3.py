"""LiteLLM's ``s3`` callback against a real S3 implementation: moto's S3 server (an HTTP server speaking the S3
REST API), read back with boto3. The signature is checked against botocore's S3 signer; the gateway is a real
Granian process; LiteLLM's object keys, team and key prefixes, hourly partitions and its config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.s3 import make_s3, object_key, strip_base64
from relaygate.observe.standard import PAYLOAD_FIELDS
from tests.conftest import free_port, start_gateway, stop_process, wait_ready

ACCESS, SECRET = "AKIDS3TEST", "s3-secret-key-for-relaygate-tests"
BUCKET = "relaygate-logs"


@contextmanager
def moto_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """moto's server (S3, STS, IAM ...) on a free loopback port, with ``env`` added to its environment; its URL."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="rg-moto-"))
    log_path = tmp / "moto.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    try:
        wait_ready(f"http://127.0.0.1:{port}/moto-api/", proc, log_path, timeout=60.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server; its URL."""
    with moto_server() as url:
        yield url


def client(url: str, service: str = "s3", access: str = ACCESS, secret: str = SECRET) -> Any:
    """A boto3 client for ``service`` at the moto server at ``url``."""
    import boto3

    return boto3.client(service, endpoint_url=url, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1")


def gateway_config(url: str, bucket: str, params: str) -> str:
    """A gateway config logging every success to ``bucket`` on the S3 server at ``url``, with more ``params``."""
    return f"""
model_list:
  - model_name: echo
    litellm_params: {{model: mock/echo}}
litellm_settings:
  success_callback: ["s3"]
  s3_callback_params: {{s3_bucket_name: {bucket}, s3_endpoint_url: "{url}", s3_aws_access_key_id: {ACCESS},
                        s3_aws_secret_access_key: {SECRET}, {params}}}
general_settings:
  master_key: sk-master-s3
"""


def objects(s3: Any, bucket: str, want: int, timeout: float = 30.0) -> dict[str, Any]:
    """The bucket's objects (key -> decoded JSON) once there are at least ``want`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        if len(listed) >= want or time.monotonic() > deadline:
            return {o["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed}
        time.sleep(0.2)


def metrics_with(gw: Any, needle: str, timeout: float = 20.0) -> str:
    """The gateway's ``/metrics`` once it shows ``needle`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        text: str = httpx.get(gw.url + "/metrics", timeout=10).text
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_signature_matches_botocore() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    settings = ObserveSettings(success_callbacks=("s3",), s3_callback_params={
        "s3_bucket_name": "b", "s3_region_name": "eu-west-1", "s3_aws_access_key_id": ACCESS,
        "s3_aws_secret_access_key": SECRET, "s3_aws_session_token": "tok"})
    sink = make_s3(settings, {}, None)
    key = "logs/team a/2026-12-04/time-10-00-00-000001_chatcmpl-1.json"
    method, url = sink.destination([(key, {})])
    assert (method, url) == ("PUT", "https://s3.eu-west-1.amazonaws.com/b/logs/team%20a/2026-12-04/"
                                    "time-10-00-00-000001_chatcmpl-1.json")
    body = b'{"id": "x"}'
    now = time.time()
    ours = dict(sink.sign(method, url, [("Content-Type", "application/json")], body))
    req = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "application/json"})
    auth = S3SigV4Auth(Credentials(ACCESS, SECRET, "tok"), "s3", "eu-west-1")
    stamp = ours["X-Amz-Date"]
    req.context["timestamp"] = stamp
    req.headers["X-Amz-Date"] = stamp
    req.headers["X-Amz-Security-Token"] = "tok"
    req.headers["X-Amz-Content-SHA256"] = ours["x-amz-content-sha256"]
    canonical = auth.canonical_request(req)
    sig = auth.signature(auth.string_to_sign(req, canonical), req)
    assert ours["Authorization"].endswith(f"Signature={sig}"), (canonical, ours["Authorization"])
    assert abs(datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp() - now) < 5
    sink.discard()


def test_object_keys() -> None:
    start = datetime(2026, 12, 4, 9, 8, 7, 654321, tzinfo=UTC)
    assert object_key("", "", start, "time-09-08-07-654321_a:b/c") == "2026-12-04/time-09-08-07-654321_a_b_c.json"
    assert object_key("logs/", "team/key/", start, "n", hourly=True) == "logs/team/key/2026-12-04/09/n.json"
    long_name = "x" * 2000
    keys = {object_key("p" * 900, "", start, long_name + tail) for tail in "ab"}
    assert len(keys) == 2 and all(len(k.encode()) <= 1024 for k in keys)  # shortened, still distinct
    short = object_key("", "", start, long_name)
    assert len(short.rsplit("/", 1)[1].encode()) <= 255


def test_config_errors() -> None:
    def make(params: dict[str, Any], env: dict[str, str] | None = None) -> Any:
        return make_s3(ObserveSettings(success_callbacks=("s3",), s3_callback_params=params), env or {}, None)

    with pytest.raises(ConfigError, match="needs a bucket"):
        make({})
    with pytest.raises(ConfigError, match="no AWS credentials"):
        make({"s3_bucket_name": "b"}, {"AWS_EC2_METADATA_DISABLED": "true"})
    sink = make({"s3_bucket_name": "b"})  # nothing named: the instance profile, as boto3's chain ends
    assert sink.signer.kind == "imds"
    sink.discard()
    with pytest.raises(ConfigError, match="day or hour"):
        make({"s3_bucket_name": "b", "s3_partition_granularity": "week"},
             {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"})
    with pytest.raises(ConfigError, match="http"):
        make({"s3_bucket_name": "b", "s3_endpoint_url": "ftp://x"}, {"AWS_ACCESS_KEY_ID": "a",
                                                                       "AWS_SECRET_ACCESS_KEY": "s"})
    sink = make({"s3_bucket_name": "b", "s3_use_virtual_hosted_style": True, "s3_region_name": "us-west-2"},
                {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"})
    assert sink.destination([("k.json", {})])[1] == "https://b.s3.us-west-2.amazonaws.com/k.json"
    sink.discard()


@pytest.mark.e2e
def test_requests_logged_to_s3_through_a_gateway(s3_server: str) -> None:
    """A real gateway with ``success_callback`` and ``failure_callback: ["s3"]`` puts one StandardLoggingPayload
    per request in the bucket, under the team and key aliases with ``s3_use_team_prefix`` / ``_key_prefix``;
    a missing bucket drops the objects (counted), and the gateway's answers are unaffected."""
    s3 = client(s3_server)
    s3.create_bucket(Bucket=BUCKET)
    cfg = f"""
model_list:
  - model_name: echo
    litellm_params: {{model: mock/echo}}
litellm_settings:
  success_callback: ["s3_v2"]
  failure_callback: ["s3"]
  s3_callback_params:
    s3_bucket_name: {BUCKET}
    s3_region_name: us-east-1
    s3_endpoint_url: {s3_server}
    s3_aws_access_key_id: {ACCESS}
    s3_aws_secret_access_key: os.environ/TEST_S3_SECRET
    s3_path: gateway-logs
    s3_use_team_prefix: true
    s3_use_key_prefix: true
    s3_flush_interval: 0.2
general_settings:
  master_key: sk-master-s3
"""
    admin = {"authorization": "Bearer sk-master-s3"}
    with start_gateway(cfg, env={"TEST_S3_SECRET": SECRET}) as gw:
        r = httpx.post(gw.url + "/team/new", json={"team_alias": "research"}, headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        r = httpx.post(gw.url + "/key/generate", json={"team_id": r.json()["team_id"], "key_alias": "bot-1"},
                       headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        key = {"authorization": f"Bearer {r.json()['key']}"}
        chat = {"messages": [{"role": "user", "content": "log me"}]}
        for _ in range(3):
            r = httpx.post(gw.url + "/v1/chat/completions", json={**chat, "model": "echo"}, headers=key, timeout=30)
            assert r.status_code == 200, r.text
        r = httpx.post(gw.url + "/v1/chat/completions", json={**chat, "model": "echo", "mock_response":
                       "litellm.RateLimitError"}, headers=admin, timeout=30)
        assert r.status_code == 429, r.text
        found = objects(s3, BUCKET, 4)
        assert SECRET not in gw.log()
    assert len(found) == 4, sorted(found)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    keyed = {k: v for k, v in found.items() if k.startswith(f"gateway-logs/research/bot-1/{today}/time-")}
    assert len(keyed) == 3, sorted(found)
    for k, payload in keyed.items():
        assert set(payload) <= set(PAYLOAD_FIELDS) and payload["status"] == "success"
        assert k.endswith(f"_{payload['id']}.json") and payload["model_group"] == "echo"
        assert payload["messages"] == [{"role": "user", "content": "log me"}]
        assert payload["metadata"]["user_api_key_team_alias"] == "research"
    failed = [v for k, v in found.items() if k not in keyed]
    assert failed[0]["status"] == "failure" and failed[0]["error_information"]["error_code"] == "429"


@pytest.mark.e2e
def test_missing_bucket_drops_and_counts(s3_server: str) -> None:
    cfg = f"""
model_list:
  - model_name: echo
    litellm_params: {{model: mock/echo}}
litellm_settings:
  success_callback: ["s3"]
  s3_callback_params: {{s3_bucket_name: no-such-bucket, s3_endpoint_url: "{s3_server}",
                        s3_aws_access_key_id: {ACCESS}, s3_aws_secret_access_key: {SECRET}, s3_flush_interval: 0.1}}
general_settings:
  master_key: sk-master-s3
"""
    with start_gateway(cfg) as gw:
        chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"authorization": "Bearer sk-master-s3"},
                       timeout=30)
        assert r.status_code == 200, r.text
        text = metrics_with(gw, 'event="s3_dropped"')
        assert 'event="s3_dropped"' in text
        assert "NoSuchBucket" in gw.log() and SECRET not in gw.log()


@pytest.mark.e2e
def test_batch_files(s3_server: str) -> None:
    """``s3_batch_file_upload: true``: each flush is one NDJSON object per key prefix, LiteLLM's name."""
    s3 = client(s3_server)
    s3.create_bucket(Bucket="relaygate-batches")
    cfg = gateway_config(s3_server, "relaygate-batches", "s3_path: batched, s3_flush_interval: 1, "
                         "s3_batch_file_upload: true")
    with start_gateway(cfg) as gw:
        chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(12):
            r = httpx.post(gw.url + "/v1/chat/completions", json=chat,
                           headers={"authorization": "Bearer sk-master-s3"}, timeout=30)
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        lines: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(lines) < 12:
            listed = s3.list_objects_v2(Bucket="relaygate-batches").get("Contents", [])
            lines = [json.loads(line) for o in listed
                     for line in s3.get_object(Bucket="relaygate-batches", Key=o["Key"])["Body"].read().splitlines()]
            time.sleep(0.2)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert len(lines) == 12 and len(listed) < 12, [o["Key"] for o in listed]
    for o in listed:
        assert o["Key"].startswith(f"batched/{today}/batch_") and o["Key"].endswith(".jsonl"), o["Key"]
        head = s3.head_object(Bucket="relaygate-batches", Key=o["Key"])
        assert head["ContentType"] == "application/x-ndjson"
    assert {p["status"] for p in lines} == {"success"} and len({p["litellm_call_id"] for p in lines}) == 12


def test_strip_base64_copies_and_redacts() -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    png = "data:image/png;base64,iVBORw0KGgo="
    deep: Any = "x"
    for _ in range(12):
        deep = [deep]
    messages = [{"role": "user", "content": [{"type": "text", "text": f"see {png} here"},
                                             {"type": "image_url", "image_url": {"url": png}},
                                             {"type": "file", "file": {"file_data": pdf}},
                                             {"text": "untyped"}]},
                {"role": "assistant", "content": f"echo {pdf}", "name": png},
                "not a message", {"role": "tool", "content": deep}]
    before = json.dumps(messages)
    out = strip_base64(messages)
    assert json.dumps(messages) == before  # the request the other exporters read is untouched
    # LiteLLM's pattern takes whitespace into the base64 run, so the words after it go too
    assert out[0] == {"role": "user", "content": [{"type": "text", "text": "see [BASE64_REDACTED]"},
                                                  {"text": "untyped"}]}
    assert out[1] == {"role": "assistant", "content": "echo [BASE64_REDACTED]", "name": "[BASE64_REDACTED]"}
    assert len(out) == 3 and "[MAX_DEPTH_REACHED]" in json.dumps(out[2])
    assert strip_base64("text") == "text"


def test_encryption_and_prompts_only_settings(caplog: pytest.LogCaptureFixture) -> None:
    base = {"s3_bucket_name": "b", "s3_aws_access_key_id": ACCESS, "s3_aws_secret_access_key": SECRET}

    def sink(env: dict[str, str] | None = None, **p: Any) -> Any:
        return make_s3(ObserveSettings(success_callbacks=("s3",), s3_callback_params={**base, **p}), env or {}, None)

    assert sink(s3_sse_kms_key_id="k1").headers["x-amz-server-side-encryption"] == "aws:kms"
    assert sink(s3_sse_kms_key_id="k1").headers["x-amz-server-side-encryption-aws-kms-key-id"] == "k1"
    with caplog.at_level("WARNING", "relaygate.observe"):
        h = sink(s3_server_side_encryption="AES256", s3_sse_kms_key_id="k1").headers
    assert h["x-amz-server-side-encryption"] == "AES256" and "x-amz-server-side-encryption-aws-kms-key-id" not in h
    assert "s3_sse_kms_key_id ignored" in caplog.text
    with pytest.raises(ConfigError, match="s3_server_side_encryption"):
        sink(s3_server_side_encryption=5)
    assert not sink().prompts_only and sink({"S3_LOG_PROMPTS_ONLY": "true"}).prompts_only
    assert not sink({"S3_LOG_PROMPTS_ONLY": "true"}, s3_log_prompts_only=False).prompts_only
    with caplog.at_level("WARNING", "relaygate.observe"):
        assert sink(s3_log_prompts_only="sometimes").prompts_only  # LiteLLM: not a boolean means yes
    assert "not a boolean" in caplog.text
    assert sink({"S3_PARTITION_GRANULARITY": "hour"}).hourly


@pytest.mark.e2e
def test_encrypted_prompt_only_objects_without_files(s3_server: str) -> None:
    """``s3_server_side_encryption``, ``s3_log_prompts_only`` and ``s3_strip_base64_files`` through a gateway."""
    s3 = client(s3_server)
    s3.create_bucket(Bucket="relaygate-sse")
    cfg = gateway_config(s3_server, "relaygate-sse", "s3_flush_interval: 0.2, s3_server_side_encryption: AES256, "
                         "s3_log_prompts_only: true, s3_strip_base64_files: true")
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
    chat = {"model": "echo", "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"look: {png}"}, {"type": "image_url", "image_url": {"url": png}}]}]}
    with start_gateway(cfg) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"authorization": "Bearer sk-master-s3"},
                       timeout=30)
        assert r.status_code == 200, r.text
        found = objects(s3, "relaygate-sse", 1)
    (key, payload), = found.items()
    assert s3.head_object(Bucket="relaygate-sse", Key=key)["ServerSideEncryption"] == "AES256"
    assert payload["response"] is None and payload["litellm_call_id"] == r.headers["x-litellm-call-id"]
    assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "look: [BASE64_REDACTED]"}]}]
