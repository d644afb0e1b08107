"""A finished batch's cost, end to end: the ``openai`` SDK creates and retrieves batches through a real Granian
process (SQLite store beside its config) whose ``openai/gpt-4o-mini`` deployment is the loopback upstream of
``conftest``; the batch's output file carries answers with usage. Its cost (half the synchronous price)
becomes one spend row, charged to the key that created the batch, written once however often the batch is
retrieved; a download that fails gives the claim back and the next retrieve logs it."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import openai
import orjson
import pytest

from relaygate.store import hash_token
from tests.conftest import start_gateway
from tests.files.conftest import serve
from tests.files.test_files_e2e import BATCH_LINE, MASTER, _client, config, generate_key

pytestmark = pytest.mark.e2e

IN, OUT, CACHED = 0.15e-6, 0.6e-6, 0.075e-6  # gpt-4o-mini in the catalog, USD per token


def answer(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage}


OUTPUT = b"".join(orjson.dumps(line) + b"\n" for line in (
    {"id": "b1", "custom_id": "r1", "response": {"status_code": 200, "request_id": "q1", "body": answer(1000, 200)},
     "error": None},
    {"id": "b2", "custom_id": "r2", "response": {"status_code": 200, "request_id": "q2",
                                                 "body": answer(2000, 100, cached=1000)}, "error": None},
    {"id": "b3", "custom_id": "r3", "response": {"status_code": 500, "request_id": "q3",
                                                 "body": {"error": {"message": "boom"}}}, "error": None},
))
EXPECTED = ((1000 * IN + 200 * OUT) + (1000 * IN + 1000 * CACHED + 100 * OUT)) / 2


def admin_get(url: str, path: str) -> Any:
    req = urllib.request.Request(f"{url}{path}", headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def rows_of(url: str, batch_id: str, expect: int, wait: float = 15.0) -> list[dict[str, Any]]:
    """The spend rows of ``batch_id`` once there are ``expect`` of them (the sink writes about each second)."""
    deadline = time.monotonic() + wait
    while True:
        rows = [r for r in admin_get(url, "/spend/logs?limit=1000") if r["request_id"] == batch_id]
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_batch_cost_logged_once_and_charged_to_its_owner() -> None:
    with serve() as up, start_gateway(config(up)) as gw:
        up.batch_output = OUTPUT
        key = generate_key(gw.url, ["gpt-files"])
        owner = _client(gw.url, key)
        other = _client(gw.url, MASTER)
        try:
            f = owner.files.create(file=("in.jsonl", BATCH_LINE), purpose="batch",
                                   extra_body={"model": "gpt-files"})
            batch = owner.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
            assert batch.status == "completed"
            (row,) = rows_of(gw.url, batch.id, 1)
            assert row["spend"] == pytest.approx(EXPECTED, rel=1e-9)
            assert row["call_type"] == "aretrieve_batch" and row["model_group"] == "gpt-files"
            assert (row["prompt_tokens"], row["completion_tokens"]) == (3000, 300)
            assert row["metadata"]["spend_logs_metadata"] == {"batch_id": batch.id, "requests_priced": 2,
                                                              "requests_unpriced": 1, "lines_unread": 0}
            assert row["api_key"] == hash_token(key)
            # retrieved again, by the owner and by the admin: the output is not read again, no second row
            for c in (owner, other, owner):
                assert c.batches.retrieve(batch.id).status == "completed"
            time.sleep(1.5)
            assert up.output_reads == 1 and len(rows_of(gw.url, batch.id, 2, wait=0.5)) == 1
            deadline = time.monotonic() + 10
            while admin_get(gw.url, f"/key/info?key={key}")["info"]["spend"] < EXPECTED * 0.999:
                assert time.monotonic() < deadline, "the batch's cost never reached its key's spend"
                time.sleep(0.2)

            # a download that fails gives the claim back: the next retrieve logs the cost
            up.failing_reads = 1
            second = owner.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            deadline = time.monotonic() + 10
            while up.output_reads < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
            assert rows_of(gw.url, second.id, 1, wait=1.5) == []
            owner.batches.retrieve(second.id)
            (row2,) = rows_of(gw.url, second.id, 1)
            assert row2["spend"] == pytest.approx(EXPECTED, rel=1e-9) and up.output_reads == 3
        except openai.APIError as exc:
            raise AssertionError(f"{exc}: {getattr(exc, 'body', None)}") from None
        finally:
            owner.close()
            other.close()
