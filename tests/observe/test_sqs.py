"""LiteLLM's ``aws_sqs`` callback against a real SQS implementation: moto's server (the SQS API over HTTP), the
messages read back with boto3; the signature checked against botocore's SigV4 signer, by a stand-in SQS server
(for the answers moto does not give: a 500, throttling, per-message failures); the gateway a real
``relaygate serve``; LiteLLM's encrypted envelope opened as its consumers open it; the config errors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.sqs import SqsSink, make_sqs, region_of
from relaygate.observe.standard import PAYLOAD_FIELDS
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, detail, with_detail
from tests.observe.test_s3 import client as moto_client
from tests.observe.test_s3 import moto_server

ACCESS, SECRET = "AKIDSQSTEST", "sqs-secret-key-for-relaygate-tests"
KEY_B64 = base64.b64encode(bytes(range(32))).decode()
BOTH = ("aws_sqs",)


def settings(**params: Any) -> ObserveSettings:
    return ObserveSettings(success_callbacks=BOTH, failure_callbacks=BOTH, aws_sqs_callback_params={
        "sqs_region_name": "us-east-1", "sqs_aws_access_key_id": ACCESS, "sqs_aws_secret_access_key": SECRET,
        **params})


def send(records: list[Any], s: ObserveSettings, events: list[tuple[str, int]] | None = None,
         **options: Any) -> SqsSink:
    sink: SqsSink = receiver.send(make_sqs, records, {}, s, events, **{"backoff": 0.01, **options})
    return sink


# -- moto ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqs_server() -> Iterator[str]:
    with moto_server() as url:
        yield url


def client(url: str) -> Any:
    return moto_client(url, "sqs", ACCESS, SECRET)


def received(sqs: Any, queue_url: str, want: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The queue's messages (each as boto3 gives it) once ``want`` of them have been received."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  AttributeNames=["All"]).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        out.extend(got)
        if not got:
            time.sleep(0.05)
    return out


def test_payloads_arrive_in_the_queue(sqs_server: str) -> None:
    sqs = client(sqs_server)
    url = sqs.create_queue(QueueName="rg-logs")["QueueUrl"]
    ok = [with_detail(detail(), call_id=f"ok-{i}") for i in range(23)]
    failed = with_detail(detail(attempts=[]), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    events: list[tuple[str, int]] = []
    sink = send([*ok, failed], settings(sqs_queue_url=url), events)
    assert sink.sent == 24 and sink.dropped == 0 and sink.requests == 3  # 10 + 10 + 4: SendMessageBatch's bound
    bodies = [json.loads(m["Body"]) for m in received(sqs, url, 24)]
    assert sorted(p["litellm_call_id"] for p in bodies) == sorted([*(f"ok-{i}" for i in range(23)), "bad-1"])
    first = next(p for p in bodies if p["litellm_call_id"] == "ok-0")
    assert set(first) == set(PAYLOAD_FIELDS) and first["status"] == "success"
    assert first["messages"] == CHAT_IN["messages"] and first["response"]["choices"][0]["message"]["content"] == "hello"
    assert first["metadata"]["user_api_key_alias"] == "my-key"
    bad = next(p for p in bodies if p["litellm_call_id"] == "bad-1")
    assert bad["status"] == "failure" and "upstream exploded" in bad["error_str"]
    assert ("aws_sqs_sent", 10) in events and not any(e.endswith("_dropped") for e, _ in events)


def test_encrypted_fifo_messages_without_files_or_key_info(sqs_server: str) -> None:
    """LiteLLM's application-level encryption, opened as its consumers open it; a FIFO queue (which LiteLLM's
    messages cannot enter) gets a group and a deduplication id; ``sqs_strip_base64_files``;
    ``redact_user_api_key_info``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sqs = client(sqs_server)
    url = sqs.create_queue(QueueName="rg-logs.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
    chat = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"look: {png}"}, {"type": "image_url", "image_url": {"url": png}}]}]}
    records = [with_detail(detail(input=chat), call_id=f"enc-{i}") for i in range(3)]
    s = settings(sqs_queue_url=url, sqs_aws_use_application_level_encryption=True,
                 sqs_app_encryption_key_b64=KEY_B64, sqs_app_encryption_aad="relaygate-test",
                 sqs_strip_base64_files="true")
    send(records, msgspec.structs.replace(s, redact_user_api_key_info=True))
    got = received(sqs, url, 3)
    assert [m["Attributes"]["MessageGroupId"] for m in got] == ["litellm"] * 3
    assert [m["Attributes"]["MessageDeduplicationId"] for m in got] == ["enc-0", "enc-1", "enc-2"]  # in order
    aes = AESGCM(bytes(range(32)))
    for m in got:
        envelope = json.loads(m["Body"])
        assert envelope["__encrypted__"] is True
        enc = {k: base64.b64decode(v, validate=True) for k, v in envelope["payload"].items()}
        # the plaintext is nowhere outside the ciphertext (whose base64 may spell "look" by chance)
        assert "look" not in json.dumps({**envelope, "payload": {**envelope["payload"], "ciphertext": ""}})
        payload = json.loads(aes.decrypt(enc["nonce"], enc["ciphertext"] + enc["tag"], b"relaygate-test"))
        assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "look: [BASE64_REDACTED]"}]}]
        assert payload["metadata"]["user_api_key_alias"] is None
    assert chat["messages"][0]["content"][1]["image_url"]["url"] == png  # the request itself is untouched


def test_a_role_assumed_through_sts(sqs_server: str) -> None:
    """``sqs_aws_role_name`` with static keys: STS ``AssumeRole`` (moto's, ``sqs_aws_sts_endpoint``), the
    temporary credentials fetched by the sending task, then the messages sent with them."""
    sqs = client(sqs_server)
    url = sqs.create_queue(QueueName="rg-role")["QueueUrl"]
    s = settings(sqs_queue_url=url, sqs_aws_role_name="arn:aws:iam::123456789012:role/litellm-logger",
                 sqs_aws_session_name="relaygate-test", sqs_aws_sts_endpoint=sqs_server)
    sink = send([with_detail(detail(), call_id="role-1")], s)
    assert sink.signer.kind == "assume_role" and sink.sent == 1
    assert sink.signer.source is not None and sink.signer.source.access_key != ACCESS
    assert [json.loads(m["Body"])["litellm_call_id"] for m in received(sqs, url, 1)] == ["role-1"]


def test_a_missing_queue_drops_and_counts(sqs_server: str, caplog: pytest.LogCaptureFixture) -> None:
    events: list[tuple[str, int]] = []
    url = sqs_server + "/123456789012/no-such-queue"
    with caplog.at_level("WARNING", "relaygate.observe"):
        sink = send([with_detail(detail())], settings(sqs_queue_url=url), events)
    assert sink.dropped == 1 and ("aws_sqs_dropped", 1) in events and ("aws_sqs_send_failed", 1) in events
    assert "QueueDoesNotExist" in caplog.text and SECRET not in caplog.text
    assert CALLBACK_FAILURES["aws_sqs_dropped"] == CALLBACK_FAILURES["aws_sqs_send_failed"] == "aws_sqs"


# -- a stand-in SQS that checks the signature and answers as told -------------------------------------------


def botocore_signature(method: str, url: str, headers: dict[str, str], body: bytes, region: str) -> str:
    """What botocore's SigV4 signer makes of the request (with its ``X-Amz-Date``), signing ``headers`` (their
    names in lower case)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    req.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS, SECRET, headers.get("x-amz-security-token")), "sqs", region)
    return auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)


class FakeSqs(JsonReceiver):
    """``POST /``: checks ``X-Amz-Target`` and the signature (botocore's, over the headers the request says it
    signed), keeps each batch's entries, and answers with ``answer(entries)``: ``(status, JSON body)``."""

    def __init__(self, answer: Callable[[list[dict[str, Any]]], tuple[int, Any]] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.bad_signatures = 0
        self.answer = answer or (lambda entries: (200, {"Successful": [{"Id": e["Id"]} for e in entries],
                                                        "Failed": []}))
        super().__init__(check=self.verify, content_type="application/x-amz-json-1.0")
        self.queue_url = f"{self.url}/123456789012/logs"

    def verify(self, request: Request) -> tuple[int, Any]:
        auth = request.headers["authorization"]
        names = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
        signed = {k: v for k, v in request.headers.items() if k in names and k != "host"}
        want = botocore_signature("POST", f"http://{request.headers['host']}{request.path}", signed, request.raw,
                                  "eu-west-1")
        if not auth.endswith(f"Signature={want}") or request.headers["x-amz-target"] != "AmazonSQS.SendMessageBatch":
            self.bad_signatures += 1
            return 403, {"__type": "com.amazonaws.sqs#SignatureDoesNotMatch", "message": "no"}
        self.batches.append(request.body["Entries"])
        return self.answer(request.body["Entries"])

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(e["MessageBody"]) for b in self.batches for e in b]


@pytest.fixture
def fake() -> Iterator[FakeSqs]:
    with FakeSqs() as f:
        yield f


def fake_settings(f: FakeSqs, **params: Any) -> ObserveSettings:
    return settings(sqs_queue_url=f.queue_url, sqs_region_name="eu-west-1", sqs_aws_session_token="tok-1",
                    **params)


def test_signed_as_botocore_signs_and_batched_within_the_byte_bound(fake: FakeSqs) -> None:
    big = with_detail(detail(input={"messages": [{"role": "user", "content": "x" * 6000}]}), call_id="big")
    small = [with_detail(detail(), call_id=f"s-{i}") for i in range(6)]
    events: list[tuple[str, int]] = []
    sink = send([small[0], big, *small[1:]], fake_settings(fake, sqs_max_message_bytes=4096), events)
    assert fake.bad_signatures == 0 and sink.sent == 7
    for batch in fake.batches:
        assert sum(len(e["MessageBody"].encode()) for e in batch) <= 4096 and len(batch) <= 10
        assert [e["Id"] for e in batch] == [str(i) for i in range(len(batch))]
    by_id = {p["litellm_call_id"]: p for p in fake.payloads()}
    assert sorted(by_id) == sorted(["big", *(f"s-{i}" for i in range(6))]) and len(fake.batches) > 1
    note = by_id["big"]["messages"]
    assert note.startswith("[left out: the SQS message would be") and by_id["big"]["response"] == note
    assert by_id["big"]["prompt_tokens"] == 10 and by_id["s-0"]["messages"] == CHAT_IN["messages"]
    assert ("aws_sqs_truncated", 1) in events and sink.truncated == 1


def test_per_message_failures_are_retried_or_dropped(fake: FakeSqs) -> None:
    def answer(entries: list[dict[str, Any]]) -> tuple[int, Any]:
        if len(fake.batches) == 1:  # the first request: one fails on SQS's side, one is refused
            return 200, {"Successful": [{"Id": "0"}], "Failed": [
                {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad chars"}]}
        return 200, {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}

    fake.answer = answer
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail(), call_id=f"p-{i}") for i in range(3)], fake_settings(fake), events)
    assert [[json.loads(e["MessageBody"])["litellm_call_id"] for e in b] for b in fake.batches] == [
        ["p-0", "p-1", "p-2"], ["p-1"]]
    assert sink.sent == 2 and sink.dropped == 1 and ("aws_sqs_dropped", 1) in events


def test_a_failing_queue_is_counted_and_throttling_retried(fake: FakeSqs, caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    def throttled_once(entries: list[dict[str, Any]]) -> tuple[int, Any]:
        calls["n"] += 1
        if calls["n"] == 1:  # SQS sends throttling as a 400
            return 400, {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "slow down"}
        return 200, {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}

    fake.answer = throttled_once
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail())], fake_settings(fake), events)
    assert sink.sent == 1 and sink.dropped == 0 and ("aws_sqs_send_failed", 1) in events
    fake.answer = lambda entries: (500, {"__type": "InternalFailure", "message": "down"})
    events.clear()
    with caplog.at_level("WARNING", "relaygate.observe"):
        sink = send([with_detail(detail(), call_id=f"d-{i}") for i in range(3)], fake_settings(fake), events,
                    max_attempts=3)
    assert sink.sent == 0 and sink.dropped == 3 and events.count(("aws_sqs_send_failed", 1)) == 3
    assert ("aws_sqs_dropped", 3) in events and "HTTP 500 InternalFailure: down" in caplog.text
    assert SECRET not in caplog.text and "tok-1" not in caplog.text


def test_message_logging_off_and_odd_characters(fake: FakeSqs) -> None:
    odd = {"messages": [{"role": "user", "content": "a\ufffeb\uffffc \ud800 d"}]}
    send([with_detail(detail(input=odd), call_id="odd")], fake_settings(fake))
    (body,) = [e["MessageBody"] for b in fake.batches for e in b]
    assert "\ufffe" not in body and "\uffff" not in body and "\ud800" not in body  # SQS refuses them raw
    assert json.loads(body)["messages"][0]["content"] == "a\ufffeb\uffffc \ud800 d"
    fake.batches.clear()
    off = msgspec.structs.replace(fake_settings(fake), callback_settings={"aws_sqs": {"message_logging": False}})
    send([with_detail(detail())], off)
    (payload,) = fake.payloads()
    assert "hi" not in json.dumps(payload["messages"]) and "hello" not in json.dumps(payload["response"])


def test_regions_endpoints_and_batch_settings() -> None:
    assert region_of("sqs.eu-west-1.amazonaws.com") == "eu-west-1"
    assert region_of("eu-central-2.queue.amazonaws.com") == "eu-central-2"
    assert region_of("vpce-0abc-xyz.sqs.ap-southeast-1.vpce.amazonaws.com") == "ap-southeast-1"
    assert region_of("sqs.cn-north-1.amazonaws.com.cn") == "cn-north-1" and region_of("127.0.0.1") is None
    p = {"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/logs", "sqs_aws_access_key_id": ACCESS,
         "sqs_aws_secret_access_key": SECRET}
    sink = make_sqs(ObserveSettings(success_callbacks=BOTH, aws_sqs_callback_params=p), {}, None)
    assert (sink.url, sink.signer.region, sink.batch_size, sink.flush_interval) == (
        "https://sqs.eu-west-1.amazonaws.com/", "eu-west-1", 512, 10.0)
    assert sink.success and not sink.failure and sink.group is None and sink.max_message == 262_144
    sink.discard()
    env = {"DEFAULT_SQS_BATCH_SIZE": "20", "DEFAULT_SQS_FLUSH_INTERVAL_SECONDS": "2"}
    sink = make_sqs(ObserveSettings(success_callbacks=BOTH, aws_sqs_callback_params={
        **p, "sqs_endpoint_url": "http://localhost:4566", "sqs_flush_interval": 0.5}), env, None)
    assert (sink.url, sink.batch_size, sink.flush_interval) == ("http://localhost:4566/", 20, 0.5)
    sink.discard()


@pytest.mark.parametrize(("params", "env", "match"), [
    ({}, {}, "needs sqs_queue_url"),
    ({"sqs_queue_url": "ftp://x/q"}, {}, "http"),
    ({"sqs_queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"}, {"AWS_EC2_METADATA_DISABLED": "true"},
     "no AWS credentials"),
    ({"sqs_aws_use_application_level_encryption": True}, {}, "required when"),
    ({"sqs_aws_use_application_level_encryption": True, "sqs_app_encryption_key_b64": "c2hvcnQ="}, {}, "32 bytes"),
    ({"sqs_aws_session_token": "tok\r\nX-Injected: 1"}, {}, "control characters"),
    ({"sqs_batch_size": "many"}, {}, "expected a number"),
    ({"sqs_queue_url": "https://sqs.us-east-1.amazonaws.com/1/q.fifo", "sqs_message_group_id": "a b"}, {},
     "sqs_message_group_id"),
])
def test_config_errors(params: dict[str, Any], env: dict[str, str], match: str) -> None:
    base = {"sqs_queue_url": "https://sqs.us-east-1.amazonaws.com/1/q", "sqs_aws_access_key_id": ACCESS,
            "sqs_aws_secret_access_key": SECRET}
    if "sqs_queue_url" in params or match == "needs sqs_queue_url":
        base.pop("sqs_queue_url")
    if match == "no AWS credentials":
        base = {}
    with pytest.raises(ConfigError, match=match):
        make_sqs(ObserveSettings(success_callbacks=BOTH, aws_sqs_callback_params={**base, **params}), env, None)


# -- through a gateway --------------------------------------------------------------------------------------


def gateway_config(queue_url: str, region: str) -> str:
    return f"""
model_list:
  - model_name: echo
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["sqs"]
  aws_sqs_callback_params:
    sqs_queue_url: {queue_url}
    sqs_region_name: {region}
    sqs_aws_access_key_id: {ACCESS}
    sqs_aws_secret_access_key: os.environ/TEST_SQS_SECRET
    sqs_flush_interval: 0.1
general_settings:
  master_key: sk-master-sqs
"""


@pytest.mark.e2e
def test_requests_logged_to_sqs_through_a_gateway(sqs_server: str) -> None:
    sqs = client(sqs_server)
    url = sqs.create_queue(QueueName="rg-gateway")["QueueUrl"]
    admin = {"authorization": "Bearer sk-master-sqs"}
    with start_gateway(gateway_config(url, "us-east-1"), env={"TEST_SQS_SECRET": SECRET}) as gw:
        r = httpx.post(gw.url + "/v1/chat/completions", headers=admin, timeout=30,
                       json={"model": "echo", "messages": [{"role": "user", "content": "hello sqs"}]})
        assert r.status_code == 200, r.text
        r2 = httpx.post(gw.url + "/v1/chat/completions", headers=admin, timeout=30, json={
            "model": "echo", "messages": [{"role": "user", "content": "x"}], "mock_response": "litellm.RateLimitError"})
        assert r2.status_code == 429, r2.text
        bodies = [json.loads(m["Body"]) for m in received(sqs, url, 2)]
        assert SECRET not in gw.log()
    by_status = {p["status"]: p for p in bodies}
    assert set(by_status) == {"success", "failure"}
    ok = by_status["success"]
    assert ok["litellm_call_id"] == r.headers["x-litellm-call-id"] and ok["model_group"] == "echo"
    assert ok["messages"] == [{"role": "user", "content": "hello sqs"}] and ok["total_tokens"] > 0
    assert by_status["failure"]["error_information"]["error_code"] == "429"
