"""End to end: the ``openai`` SDK's ``client.files`` and ``client.batches`` against a real Granian process
(SQLite store beside its config) whose ``openai/`` and ``azure/`` deployments point at the loopback upstream
of ``conftest``; two virtual keys made by ``/key/generate``."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest

from tests.conftest import GatewayProc, child_pids, dead_port, start_gateway
from tests.files.conftest import Upstream, serve

pytestmark = pytest.mark.e2e

MASTER = "sk-files-master"
BATCH_LINE = b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-files"}}\n'
SENT_LINE = b'{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini"}}\n'
"""``BATCH_LINE`` as the openai deployment gets it: the group's name replaced by the deployment's model."""


def config(up: Upstream, *, extra: str = "", size_mb: int = 64) -> str:
    return f"""
model_list:
  - model_name: gpt-files
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up-openai, api_base: "{up.url}/v1"}}
  - model_name: azure-files
    litellm_params: {{model: azure/my-deploy, api_key: az-key, api_base: "{up.url}", api_version: "2024-10-21"}}
  - model_name: down
    litellm_params: {{model: openai/x, api_key: sk-down, api_base: "http://127.0.0.1:{dead_port()}/v1"}}
  - model_name: other
    litellm_params: {{model: openai/other, api_key: sk-up-other, api_base: "{up.url}/v1"}}
  - model_name: "wild/*"
    litellm_params: {{model: "openai/*", api_key: sk-up-wild, api_base: "{up.url}/v1"}}
general_settings:
  master_key: {MASTER}
  max_request_size_mb: {size_mb}
{extra}"""


def admin_post(url: str, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(f"{url}{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, object] = json.loads(r.read())
        return out


def generate_key(url: str, models: list[str], **fields: object) -> str:
    return str(admin_post(url, "/key/generate", {"models": models, **fields})["key"])


@dataclass
class Stack:
    gw: GatewayProc
    up: Upstream
    a: openai.OpenAI
    b: openai.OpenAI
    c: openai.OpenAI
    master: openai.OpenAI


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with serve() as up, start_gateway(config(up)) as gw:
        models = ["gpt-files", "azure-files", "down"]
        clients = [_client(gw.url, generate_key(gw.url, models)), _client(gw.url, generate_key(gw.url, models)),
                   _client(gw.url, generate_key(gw.url, ["other"])), _client(gw.url, MASTER)]
        try:
            yield Stack(gw, up, *clients)
        finally:
            for c in clients:
                c.close()


def test_files_crud_and_ownership(stack: Stack) -> None:
    a, b = stack.a, stack.b
    f = a.files.create(file=("data.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "gpt-files"})
    assert f.id.startswith("file-") and f.filename == "data.jsonl" and f.bytes == len(SENT_LINE)
    sent = stack.up.last("POST", "/v1/files")
    assert sent.fields == ["purpose", "file"]  # the routing field never reaches the upstream
    assert sent.headers["authorization"] == "Bearer sk-up-openai"
    upstream_id = next(iter(stack.up.files))
    assert upstream_id not in f.id
    assert a.files.retrieve(f.id).id == f.id
    assert a.files.content(f.id).read() == SENT_LINE
    assert f.id in [x.id for x in a.files.list()]
    assert f.id in [x.id for x in stack.master.files.list()]
    assert f.id not in [x.id for x in b.files.list()]
    for op in (lambda: b.files.retrieve(f.id), lambda: b.files.content(f.id), lambda: b.files.delete(f.id)):
        with pytest.raises(openai.NotFoundError) as ei:
            op()
        assert ei.value.body is not None and "No such File object" in str(ei.value)
    assert a.files.delete(f.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        a.files.retrieve(f.id)


def test_batch_input_mapping_and_outputs(stack: Stack) -> None:
    a, b = stack.a, stack.b
    f = a.files.create(file=("in.jsonl", BATCH_LINE), purpose="batch", extra_body={"target_model_names": "gpt-files"})
    batch = a.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                             metadata={"job": "t"})
    assert batch.id.startswith("batch_") and batch.input_file_id == f.id
    sent = stack.up.last("POST", "/v1/batches").body
    assert sent["input_file_id"] in stack.up.files and sent["input_file_id"] not in f.id
    got = a.batches.retrieve(batch.id)
    assert got.status == "completed" and got.output_file_id and got.output_file_id.startswith("file-")
    assert a.files.content(got.output_file_id).read() == b'{"custom_id":"r1"}\n'
    with pytest.raises(openai.NotFoundError):
        b.files.content(got.output_file_id)
    with pytest.raises(openai.NotFoundError):
        b.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):  # another key's file as a batch input
        b.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.id in [x.id for x in a.batches.list()]
    assert batch.id not in [x.id for x in b.batches.list()]
    assert a.batches.cancel(batch.id).status == "cancelling"
    with pytest.raises(openai.NotFoundError):
        b.batches.cancel(batch.id)


def test_azure_deployment(stack: Stack) -> None:
    a = stack.a
    az_line = BATCH_LINE.replace(b"gpt-files", b"azure-files")
    f = a.files.create(file=("az.jsonl", az_line), purpose="batch", extra_headers={"x-litellm-model": "azure-files"})
    sent = stack.up.last("POST", "/openai/files")
    assert sent.path == "/openai/files?api-version=2024-10-21"
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers
    batch = a.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert stack.up.last("POST", "/openai/batches").path == "/openai/batches?api-version=2024-10-21"
    assert a.batches.retrieve(batch.id).input_file_id == f.id
    assert a.files.content(f.id).read() == SENT_LINE.replace(b"gpt-4o-mini", b"my-deploy")  # the Azure deployment
    assert "content-length" not in sent.headers and sent.headers["transfer-encoding"] == "chunked"


def test_provider_forms(stack: Stack) -> None:
    """No model: the provider from the path form, header or form field (default openai)."""
    f = stack.a.files.create(file=("p.jsonl", BATCH_LINE), purpose="user_data",
                             extra_headers={"custom-llm-provider": "azure"})
    assert stack.up.last("POST", "/files").path.startswith("/openai/files?")
    with openai.OpenAI(base_url=stack.gw.url + "/azure/v1", api_key=MASTER, max_retries=0) as c:
        assert c.files.retrieve(f.id).id == f.id
        c.files.create(file=("q.jsonl", BATCH_LINE), purpose="user_data")
    assert stack.up.last("POST", "/files").path.startswith("/openai/files?")
    with pytest.raises(openai.BadRequestError) as ei:
        stack.a.files.create(file=("r.jsonl", BATCH_LINE), purpose="batch",
                             extra_body={"custom_llm_provider": "anthropic"})
    assert ei.value.param == "custom_llm_provider"  # type: ignore[attr-defined]


def test_model_allow_list(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as ei:
        stack.c.files.create(file=("x.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "gpt-files"})
    assert "key not allowed to access model" in str(ei.value)
    f = stack.a.files.create(file=("y.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "gpt-files"})
    with pytest.raises(openai.NotFoundError):  # not its file: never told it exists
        stack.c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    mine = stack.c.files.create(file=("z.jsonl", BATCH_LINE), purpose="batch")  # its only openai group: other
    assert stack.up.last("POST", "/v1/files").headers["authorization"] == "Bearer sk-up-other"
    assert stack.c.files.retrieve(mine.id).id == mine.id


def test_upstream_errors_relayed(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        stack.a.files.create(file=(stack.up.reject_filename, BATCH_LINE), purpose="batch",
                             extra_body={"model": "gpt-files"})
    assert "Invalid file format for Batch API" in str(ei.value)
    with pytest.raises(openai.BadRequestError) as ei:
        stack.a.files.create(file=("p.jsonl", BATCH_LINE), purpose="nonsense", extra_body={"model": "gpt-files"})
    assert ei.value.param == "purpose"  # type: ignore[attr-defined]
    with pytest.raises(openai.InternalServerError) as e5:
        stack.a.files.create(file=("d.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "down"})
    assert e5.value.status_code == 502


@pytest.mark.parametrize("bad", ["file-", "file-garbage", "batch_AAAA", "file-" + "A" * 900, "file-%00",
                                 "file-\u00e9t\u00e9"])
def test_unknown_ids(stack: Stack, bad: str) -> None:
    with pytest.raises(openai.NotFoundError):
        stack.master.files.retrieve(bad)


def test_tampered_id(stack: Stack) -> None:
    f = stack.a.files.create(file=("t.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "gpt-files"})
    flipped = f.id[:-3] + ("A" if f.id[-3] != "A" else "B") + f.id[-2:]
    with pytest.raises(openai.NotFoundError):
        stack.master.files.retrieve(flipped)
    with pytest.raises(openai.NotFoundError):
        stack.a.batches.retrieve(f.id.replace("file-", "batch_", 1))


def _rss_peak(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_large_upload_streams_with_bounded_memory(stack: Stack) -> None:
    (worker,) = child_pids(stack.gw.proc.pid)
    size = 48 * 1024 * 1024
    data = os.urandom(1024 * 1024) * 48
    stack.up.slow = True
    try:
        before = _rss_peak(worker)
        f = stack.a.files.create(file=("big.jsonl", data), purpose="batch", extra_body={"model": "gpt-files"})
        after = _rss_peak(worker)
    finally:
        stack.up.slow = False
    assert f.bytes == size
    stored = next(s for s in stack.up.files.values() if s.filename == "big.jsonl")
    assert stored.digest == hashlib.sha256(data).hexdigest()
    assert after - before < size // 4, (before, after)


def test_request_over_the_body_limit_is_413() -> None:
    with serve() as up, start_gateway(config(up, size_mb=1)) as gw, _client(gw.url, MASTER) as c:
        with pytest.raises(openai.APIStatusError) as ei:
            c.files.create(file=("big.jsonl", b"x" * (2 * 1024 * 1024)), purpose="batch")
        assert ei.value.status_code == 413
        assert not up.files


def test_without_a_store_files_pass_through() -> None:
    extra = "relaygate_settings:\n  embedded_database: false\n"
    with serve() as up, start_gateway(config(up, extra=extra)) as gw, _client(gw.url, MASTER) as c:
        f = c.files.create(file=("n.jsonl", BATCH_LINE), purpose="batch")  # the default provider's first deployment
        assert c.files.retrieve(f.id).id == f.id
        assert c.files.content(f.id).read() == BATCH_LINE  # routed by provider: the lines are not the gateway's
        assert [x.id for x in c.files.list(extra_query={"model": "gpt-files"})] == [f.id]
        batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert [x.id for x in c.batches.list()] == [batch.id]
        assert c.files.content(c.batches.retrieve(batch.id).output_file_id or "").read() == b'{"custom_id":"r1"}\n'


def _spend_row(url: str, request_id: str) -> dict[str, object] | None:
    req = urllib.request.Request(f"{url}/spend/logs?request_id={request_id}",
                                 headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        found = json.loads(r.read())
    return found[0] if found else None


def test_calls_reach_spend_logs(stack: Stack) -> None:
    raw = stack.a.files.with_raw_response.create(file=("s.jsonl", BATCH_LINE), purpose="batch",
                                                 extra_body={"model": "gpt-files"})
    f = raw.parse()
    with pytest.raises(openai.NotFoundError) as ei:
        stack.b.files.retrieve(f.id)
    calls = {"acreate_file": raw.headers["x-litellm-call-id"],
             "afile_retrieve": ei.value.response.headers["x-litellm-call-id"]}
    deadline = time.monotonic() + 10
    rows: dict[str, dict[str, object]] = {}
    while len(rows) < len(calls) and time.monotonic() < deadline:
        for name, call_id in calls.items():
            row = _spend_row(stack.gw.url, call_id)
            if row is not None:
                rows[name] = row
        time.sleep(0.2)
    created, refused = rows["acreate_file"], rows["afile_retrieve"]
    assert created["call_type"] == "acreate_file" and created["spend"] == 0
    assert created["model_group"] == "gpt-files" and created["status"] == "success"
    assert refused["call_type"] == "afile_retrieve" and refused["status"] == "failure"


def test_team_members_share_objects(stack: Stack) -> None:
    url = stack.gw.url
    admin_post(url, "/team/new", {"team_id": "team-files"})
    t1, t2 = (_client(url, generate_key(url, ["gpt-files"], team_id="team-files")) for _ in range(2))
    with t1, t2:
        f = t1.files.create(file=("team.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "gpt-files"})
        assert t2.files.retrieve(f.id).id == f.id and f.id in [x.id for x in t2.files.list()]
        with pytest.raises(openai.NotFoundError):
            stack.a.files.retrieve(f.id)


def test_large_content_streams_back(stack: Stack) -> None:
    data = os.urandom(6 * 1024 * 1024)
    f = stack.a.files.create(file=("blob.bin", data), purpose="user_data", extra_body={"model": "gpt-files"})
    with stack.a.files.with_streaming_response.content(f.id) as resp:
        got = b"".join(resp.iter_bytes())
    assert got == data


def test_wildcard_groups_hold_no_files(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        stack.master.files.create(file=("w.jsonl", BATCH_LINE), purpose="batch", extra_body={"model": "wild/gpt-x"})
    assert ei.value.param == "model"  # type: ignore[attr-defined]
