"""LiteLLM's ``gcs_bucket`` callback against a real HTTP server playing Google: the OAuth token endpoint (it
verifies the service account's RS256 JWT with the public half of a key pair made here: its signature, ``aud``,
``iss`` and ``scope``), the GCE metadata server and the Cloud Storage JSON API's media upload (it checks the
bearer token it issued, the bucket, the object name and the body). From hand-built records and through a real
``relaygate serve``."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.gcs_bucket import GcsBucketSink, make_gcs_bucket, safe_component, split_bucket
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import LoopbackServer, QuietHandler
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, T0, detail, with_detail

BUCKET = "relaygate-logs"
EMAIL = "logger@relaygate-test.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
BOTH = ObserveSettings(success_callbacks=("gcs_bucket",), failure_callbacks=("gcs_bucket",))
DAY = datetime.fromtimestamp(T0 + 1.5, UTC).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def key_pem() -> tuple[str, bytes]:
    """A fresh RSA key: the private PEM (for the service-account file) and the public PEM (for the server)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


class Google(LoopbackServer):
    """``POST /token`` (jwt-bearer and refresh-token grants), ``GET`` the metadata server's token and
    ``POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=...``; keeps what it was sent. It also keeps
    the objects (``stored``) as Cloud Storage's JSON API serves them to the response cache's ``gcs`` level:
    ``GET .../o/<name>?alt=media``, ``GET .../o?prefix=&pageToken=`` (pages of :attr:`page_size`), ``DELETE
    .../o/<name>`` and ``GET /storage/v1/b/<bucket>``, each with the bearer token checked."""

    def __init__(self, public_pem: bytes) -> None:
        self.public_pem = public_pem
        self.issued: set[str] = set()
        self.grants: list[dict[str, Any]] = []
        self.uploads: list[tuple[str, str, dict[str, str], bytes]] = []
        self.raw_paths: list[str] = []
        self.upload_status = 200
        self.token_status = 200
        self.read_status = 200
        self.stored: dict[tuple[str, str], bytes] = {}
        self.buckets: set[str] = {BUCKET}
        self.page_size = 2
        self.reads: list[str] = []
        google = self

        class Handler(QuietHandler):
            def answer(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode() if status != 204 else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authorized(self) -> bool:
                auth = self.headers.get("authorization", "")
                if auth.startswith("Bearer ") and auth[7:] in google.issued:
                    return True
                self.answer(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                            "errors": [{"reason": "authError"}]}})
                return False

            def storage(self, method: str) -> None:
                parts = urlsplit(self.path)
                m = re.fullmatch(r"/storage/v1/b/([^/]+)(/o(?:/([^/]+))?)?", parts.path)
                if m is None:
                    return self.answer(404, {})
                if not self.authorized():
                    return None
                bucket, objects, raw_name = unquote(m.group(1)), m.group(2), m.group(3)
                if bucket not in google.buckets:
                    return self.answer(404, {"error": {"code": 404, "errors": [{"reason": "notFound"}]}})
                if google.read_status != 200:
                    return self.answer(google.read_status, {"error": {"errors": [{"reason": "backendError"}]}})
                if objects is None:
                    return self.answer(200, {"kind": "storage#bucket", "name": bucket})
                if raw_name is None:  # a listing, in pages
                    query = parse_qs(parts.query)
                    prefix = query.get("prefix", [""])[0]
                    names = sorted(n for b, n in google.stored if b == bucket and n.startswith(prefix))
                    start = int(query.get("pageToken", ["0"])[0])
                    page: dict[str, Any] = {"items": [{"name": n} for n in names[start:start + google.page_size]]}
                    if start + google.page_size < len(names):
                        page["nextPageToken"] = str(start + google.page_size)
                    return self.answer(200, page)
                name = unquote(raw_name)
                if method == "DELETE":
                    return self.answer(204 if google.stored.pop((bucket, name), None) is not None else 404, {})
                google.reads.append(name)
                if parse_qs(parts.query).get("alt") != ["media"] or (bucket, name) not in google.stored:
                    return self.answer(404, {"error": {"code": 404, "errors": [{"reason": "notFound"}]}})
                data = google.stored[(bucket, name)]
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_DELETE(self) -> None:
                self.storage("DELETE")

            def do_GET(self) -> None:
                if self.path.startswith("/storage/"):
                    return self.storage("GET")
                if self.path != "/computeMetadata/v1/instance/service-accounts/default/token":
                    return self.answer(404, {})
                if self.headers.get("metadata-flavor") != "Google":
                    return self.answer(403, {"error": "missing Metadata-Flavor"})
                google.grants.append({"metadata": True})
                self.answer(200, google.issue())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                if parts.path == "/token":
                    return self.token(parse_qs(raw.decode()))
                m = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", parts.path)
                query = parse_qs(parts.query)
                if m is None or query.get("uploadType") != ["media"] or len(query.get("name", [])) != 1:
                    return self.answer(404, {"error": "not an upload"})
                auth = self.headers.get("authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in google.issued:
                    return self.answer(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
                google.raw_paths.append(self.path)
                if google.upload_status != 200:
                    return self.answer(google.upload_status, {"error": {"message": "backend error"}})
                google.uploads.append((m.group(1), query["name"][0], {k.lower(): v for k, v in self.headers.items()},
                                       raw))
                google.stored[(unquote(m.group(1)), query["name"][0])] = raw
                self.answer(200, {"kind": "storage#object", "bucket": m.group(1), "name": query["name"][0]})

            def token(self, form: dict[str, list[str]]) -> None:
                if google.token_status != 200:
                    return self.answer(google.token_status, {"error": "invalid_grant", "error_description": "nope"})
                grant = form.get("grant_type", [""])[0]
                if grant == "refresh_token":
                    if form.get("refresh_token") != ["rt-1"] or form.get("client_secret") != ["cs-1"]:
                        return self.answer(400, {"error": "invalid_grant"})
                    google.grants.append({"refresh_token": True})
                    return self.answer(200, google.issue())
                if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    return self.answer(400, {"error": "unsupported_grant_type"})
                try:  # the signature, with the public half of the test's key, and the audience
                    claims = jwt.decode(form["assertion"][0], google.public_pem, algorithms=["RS256"],
                                        audience=google.url + "/token")
                except jwt.PyJWTError as exc:
                    return self.answer(400, {"error": "invalid_grant", "error_description": str(exc)})
                if claims.get("iss") != EMAIL or claims.get("scope") != SCOPE or claims["exp"] - claims["iat"] > 3600:
                    return self.answer(400, {"error": "invalid_scope"})
                google.grants.append(claims)
                self.answer(200, google.issue())

        super().__init__(Handler)

    def issue(self) -> dict[str, Any]:
        token = f"ya29.fake-token-{len(self.issued)}-abcdefgh"
        self.issued.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def objects(self, want: int, timeout: float = 15.0) -> list[tuple[str, str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.uploads) < want and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.uploads)


@pytest.fixture
def google(key_pem: tuple[str, bytes]) -> Iterator[Google]:
    with Google(key_pem[1]) as g:
        yield g


@pytest.fixture
def sa_file(tmp_path: Path, google: Google, key_pem: tuple[str, bytes]) -> Path:
    """A service-account JSON file whose ``token_uri`` is the test's server."""
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "relaygate-test", "private_key_id": "kid-1",
                                "private_key": key_pem[0], "client_email": EMAIL, "client_id": "1",
                                "token_uri": google.url + "/token"}))
    return path


def env_of(google: Google, sa: Path | str | None, **extra: str) -> dict[str, str]:
    env = {"GCS_BUCKET_NAME": BUCKET, "GCS_BASE_URL": google.url, **extra}
    if sa is not None:
        env["GCS_PATH_SERVICE_ACCOUNT"] = str(sa)
    return env


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> GcsBucketSink:
    sink: GcsBucketSink = receiver.send(make_gcs_bucket, records, env, settings, events,
                                        **{"max_attempts": 1, **options})
    return sink


def test_an_object_per_request_named_as_litellm_names_them(google: Google, sa_file: Path) -> None:
    ok = with_detail(detail(), call_id="ok-1")
    failed = with_detail(detail(attempts=[]), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    custom = with_detail(detail(metadata={"gcs_log_id": "../../etc/x?y=1&name=evil#f"}), call_id="custom-1")
    odd_id = with_detail(detail(output={**CHAT_OUT, "id": "a/../b?c=d&uploadType=x"}), call_id="odd-1")
    sink = send([ok, failed, custom, odd_id], env_of(google, sa_file, GCS_USE_BATCHED_LOGGING="false",
                                                     GCS_BUCKET_NAME=f"{BUCKET}/logs/dev"))
    uploads = google.objects(4)
    assert sink.sent == 4 and len(uploads) == 4
    by_call = {json.loads(body)["litellm_call_id"]: (bucket, name, headers, json.loads(body))
               for bucket, name, headers, body in uploads}
    bucket, name, headers, payload = by_call["ok-1"]
    assert bucket == BUCKET and name == f"logs/dev/{DAY}/chatcmpl-123"  # the folder of GCS_BUCKET_NAME first
    assert headers["content-type"] == "application/json" and headers["authorization"].startswith("Bearer ya29.")
    assert payload["messages"] == CHAT_IN["messages"] and payload["response"]["choices"] == CHAT_OUT["choices"]
    assert payload["status"] == "success" and payload["startTime"] == T0
    assert re.fullmatch(rf"logs/dev/{DAY}/failure-[0-9a-f]{{32}}", by_call["bad-1"][1])
    assert by_call["bad-1"][3]["status"] == "failure" and "upstream exploded" in by_call["bad-1"][3]["error_str"]
    # a client's gcs_log_id and an upstream's response id are sanitized, and every name is encoded whole
    assert re.fullmatch(rf"logs/dev/{DAY}/custom-[0-9a-f]{{32}}-x_y_1_name_evil_f", by_call["custom-1"][1])
    assert by_call["odd-1"][1] == f"logs/dev/{DAY}/b_c_d_uploadType_x"
    for raw in google.raw_paths:
        path, _, query = raw.partition("?")
        assert path == f"/upload/storage/v1/b/{BUCKET}/o" and query.startswith("uploadType=media&name=logs%2Fdev%2F")
        assert query.count("&") == 1 and "/" not in query
    # one token for all four uploads: its JWT verified by the server (signature, aud, iss, scope)
    (grant,) = google.grants
    assert grant["iss"] == EMAIL and grant["aud"] == google.url + "/token" and grant["scope"] == SCOPE


def test_batched_by_default_one_ndjson_object_per_flush(google: Google, sa_file: Path) -> None:
    records = [with_detail(detail(), call_id=f"c{i}") for i in range(5)]
    before = time.time()
    send(records, env_of(google, sa_file))
    ((bucket, name, headers, body),) = google.objects(1)
    assert bucket == BUCKET and headers["content-type"] == "application/json"
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})/batch-(\d+)-[0-9a-f]{8}\.ndjson", name)
    assert m is not None and m.group(1) == datetime.now(UTC).strftime("%Y-%m-%d")
    assert before * 1000 - 1 <= int(m.group(2)) <= time.time() * 1000 + 1
    lines = [json.loads(line) for line in body.split(b"\n")]
    assert [p["litellm_call_id"] for p in lines] == [f"c{i}" for i in range(5)]


def test_token_is_kept_then_renewed_when_due(google: Google, sa_file: Path) -> None:
    sink = make_gcs_bucket(BOTH, env_of(google, sa_file, GCS_USE_BATCHED_LOGGING="0"), None, flush_interval=0.01,
                           max_attempts=1)

    async def main() -> None:
        await sink.handle([with_detail(detail(), call_id="a")])
        await sink.handle([with_detail(detail(), call_id="b")])
        while sink.sent < 2:
            await asyncio.sleep(0.01)
        assert len(google.grants) == 1  # cached
        sink.auth.source.expires_at = time.time() + 60  # within five minutes of expiry: renewed before the upload
        await sink.handle([with_detail(detail(), call_id="c")])
        await sink.aclose()

    asyncio.run(main())
    assert len(google.grants) == 2 and sink.sent == 3
    tokens = [h["authorization"] for _, _, h, _ in google.objects(3)]
    assert tokens[0] == tokens[1] != tokens[2]


def test_the_metadata_server_without_a_file(google: Google) -> None:
    env = env_of(google, None, GCE_METADATA_HOST=google.host)
    sink = send([with_detail(detail())], env)
    assert sink.sent == 1 and google.grants == [{"metadata": True}]
    assert sink.auth.where == f"the metadata server {google.host}"


def test_inline_json_and_authorized_user_credentials(google: Google, sa_file: Path, tmp_path: Path) -> None:
    send([with_detail(detail())], env_of(google, "  " + sa_file.read_text() + "\n"))
    assert len(google.uploads) == 1 and google.grants[0]["iss"] == EMAIL
    user = tmp_path / "adc.json"
    user.write_text(json.dumps({"type": "authorized_user", "client_id": "cid", "client_secret": "cs-1",
                                "refresh_token": "rt-1", "token_uri": google.url + "/token"}))
    send([with_detail(detail())], env_of(google, None, GOOGLE_APPLICATION_CREDENTIALS=str(user)))
    assert len(google.uploads) == 2 and google.grants[1] == {"refresh_token": True}


def test_a_failing_receiver_is_counted_and_never_raises(google: Google, sa_file: Path,
                                                        caplog: pytest.LogCaptureFixture,
                                                        key_pem: tuple[str, bytes]) -> None:
    google.upload_status = 500
    events: list[tuple[str, int]] = []
    with caplog.at_level("INFO", "relaygate.observe"):
        sink = send([with_detail(detail())], env_of(google, sa_file), events=events, max_attempts=2, backoff=0.01)
    assert sink.dropped == 1 and ("gcs_bucket_send_failed", 1) in events and ("gcs_bucket_dropped", 1) in events
    assert CALLBACK_FAILURES["gcs_bucket_dropped"] == CALLBACK_FAILURES["gcs_bucket_send_failed"] == "gcs_bucket"
    google.upload_status, google.token_status = 200, 400  # the token endpoint refuses: nothing sent, counted
    events.clear()
    sink = send([with_detail(detail())], env_of(google, sa_file), events=events)
    assert sink.dropped == 1 and ("gcs_bucket_dropped", 1) in events and google.uploads == []
    assert "invalid_grant" in caplog.text or "token request failed" in caplog.text
    assert "PRIVATE KEY" not in caplog.text and "ya29." not in caplog.text


def test_no_messages_when_message_logging_is_off(google: Google, sa_file: Path) -> None:
    for settings in (ObserveSettings(success_callbacks=("gcs_bucket",), turn_off_message_logging=True),
                     ObserveSettings(success_callbacks=("gcs_bucket",),
                                     callback_settings={"gcs_bucket": {"message_logging": False}})):
        google.uploads.clear()
        send([with_detail(detail())], env_of(google, sa_file), settings)
        ((_, _, _, body),) = google.objects(1)
        assert b'"hi"' not in body and b'"hello"' not in body and b"redacted-by-litellm" in body


def test_a_keys_logging_entry_adds_its_requests(google: Google, sa_file: Path) -> None:
    keyed = with_detail(detail(logging=[LoggingTarget("gcs_bucket", "success", {"gcs_bucket_name": "other"})]),
                        call_id="keyed")
    failure_only = with_detail(detail(logging=[LoggingTarget("gcs_bucket", "failure", {})]), call_id="not-a-failure")
    plain = with_detail(detail(), call_id="plain")
    send([keyed, failure_only, plain], env_of(google, sa_file), ObserveSettings(), keys_only=True)
    ((bucket, _, _, body),) = google.objects(1)
    assert bucket == BUCKET  # a key's gcs_bucket_name is ignored, as in LiteLLM 1.110
    assert [json.loads(line)["litellm_call_id"] for line in body.split(b"\n")] == ["keyed"]


def test_names() -> None:
    assert split_bucket(" b-1/a/b/ ") == ("b-1", "a/b") and split_bucket("my.bucket_x") == ("my.bucket_x", "")
    for bad in ("gs://b", "b?x", "b#x", "B", "b/../x", "b//x", "b\n", "ab", "-bc"):
        with pytest.raises(ValueError):
            split_bucket(bad)
    assert safe_component("..") == "" and safe_component(7) == "" and safe_component("a\x00 b/c d") == "c_d"
    assert safe_component("._x y._") == "x_y" and len(safe_component("z" * 999)) == 255


@pytest.mark.parametrize(("extra", "name"), [
    ({"GCS_BUCKET_NAME": ""}, "GCS_BUCKET_NAME"),
    ({"GCS_BUCKET_NAME": "gs://b"}, "GCS_BUCKET_NAME"),
    ({"GCS_USE_BATCHED_LOGGING": "maybe"}, "GCS_USE_BATCHED_LOGGING"),
    ({"GCS_BASE_URL": "ftp://x"}, "GCS_BASE_URL"),
    ({"GCS_BATCH_SIZE": "lots"}, "GCS_BATCH_SIZE"),
    ({"GCS_FLUSH_INTERVAL": "soon"}, "GCS_FLUSH_INTERVAL"),
    ({"GCS_PATH_SERVICE_ACCOUNT": "/no/such/file.json"}, "GCS_PATH_SERVICE_ACCOUNT"),
    ({"GCS_PATH_SERVICE_ACCOUNT": '{"type": "external_account"}'}, "GCS_PATH_SERVICE_ACCOUNT"),
    ({"GCS_PATH_SERVICE_ACCOUNT": '{"type": "service_account", "client_email": "e", "private_key": "nope"}'},
     "GCS_PATH_SERVICE_ACCOUNT"),
    ({"GCS_PATH_SERVICE_ACCOUNT": '{"private_key": "x", "client_email": "e", "token_uri": "file:///x"}'},
     "GCS_PATH_SERVICE_ACCOUNT"),
    ({"GCS_PATH_SERVICE_ACCOUNT": "{not json"}, "GCS_PATH_SERVICE_ACCOUNT"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/no/such/adc.json"}, "GOOGLE_APPLICATION_CREDENTIALS"),
    ({"GCE_METADATA_HOST": "evil/path"}, "GCE_METADATA_HOST"),
])
def test_config_errors(extra: dict[str, str], name: str) -> None:
    env = {"GCS_BUCKET_NAME": BUCKET, **extra}
    with pytest.raises(ConfigError, match=name):
        make_gcs_bucket(BOTH, env, None)


GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["gcs_bucket", "prometheus"]
general_settings:
  master_key: sk-gcs-master
"""


def chat(gw: Any, text: str) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-gcs-master"},
                      json={"model": "m", "messages": [{"role": "user", "content": text}]}, timeout=10)


@pytest.mark.e2e
def test_gcs_bucket_callback_through_the_gateway(google: Google, sa_file: Path, key_pem: tuple[str, bytes]) -> None:
    env = env_of(google, sa_file, GCS_FLUSH_INTERVAL="0.1", GCS_USE_BATCHED_LOGGING="false")
    with start_gateway(GATEWAY, env=env) as gw:
        r = chat(gw, "hello gcs")
        assert r.status_code == 200, r.text
        ((bucket, name, headers, body),) = google.objects(1)
        payload = json.loads(body)
        assert bucket == BUCKET and headers["authorization"].removeprefix("Bearer ") in google.issued
        assert payload["litellm_call_id"] == r.headers["x-litellm-call-id"]
        assert name == f"{datetime.now(UTC).strftime('%Y-%m-%d')}/{payload['id']}"
        assert payload["messages"] == [{"role": "user", "content": "hello gcs"}] and payload["total_tokens"] > 0
        log = gw.log()
        assert key_pem[0].splitlines()[1] not in log and headers["authorization"][7:] not in log
