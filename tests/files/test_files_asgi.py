"""The files and batches routes called in-process (the app, a SQLite store, the loopback upstream of
``conftest``) with hostile input: ids, multipart bodies and batch bodies of any shape get a 4xx in OpenAI's
error shape, never a 500, and nothing reaches the upstream that the gateway did not mean to send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import open_store
from tests.asgi.conftest import Reply, call
from tests.files.conftest import Upstream, serve

MASTER = "sk-master-files-asgi"
VKEY = "sk-virtual-files-asgi"


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    with serve() as u:
        yield u


def gateway(up: Upstream) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "gpt-files", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": f"{up.url}/v1"}}],
        "general_settings": {"master_key": MASTER},
        "relaygate_settings": {"max_request_body_bytes": 64 * 1024},
        "relaygate_keys": [{"key": VKEY, "models": ["gpt-files"]}],
    }, "<test>"))


def run(up: Upstream, tmp: Path, body: Any) -> Any:
    async def main() -> Any:
        gw = gateway(up)
        store = await open_store(f"sqlite:///{tmp / 'files.db'}")
        gw.store = store
        gw.runtime.use_store(store)
        try:
            return await body(gw)
        finally:
            gw.store = None
            await store.close()

    return asyncio.run(main())


def check_error(r: Reply, allowed: tuple[int, ...] = (400, 401, 404, 405, 413)) -> None:
    assert r.status in allowed, (r.status, r.body[:500])
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}


AUTH = {"authorization": f"Bearer {VKEY}"}

ids_text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=120).map(
    lambda s: quote(s, safe="")).filter(lambda s: "/" not in s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(ids_text, st.sampled_from(["file-", "batch_", "file-AAAA", "batch_AQ", "file-" + "A" * 60,
                                                   "ftjob-", "ftjob-AQ", "vs_", "vs_AQ"])),
                min_size=1, max_size=6))
def test_hostile_ids_are_404(up: Upstream, tmp_path: Path, got: list[str]) -> None:
    async def body(gw: Gateway) -> None:
        before = len(up.seen)
        for i in got:
            for method, path in (("GET", f"/v1/files/{i}"), ("GET", f"/v1/files/{i}/content"),
                                 ("DELETE", f"/files/{i}"), ("GET", f"/v1/batches/{i}"),
                                 ("POST", f"/openai/v1/batches/{i}/cancel"), ("GET", f"/v1/fine_tuning/jobs/{i}"),
                                 ("POST", f"/fine_tuning/jobs/{i}/cancel"),
                                 ("GET", f"/v1/fine_tuning/jobs/{i}/events"), ("GET", f"/v1/vector_stores/{i}"),
                                 ("DELETE", f"/vector_stores/{i}"), ("GET", f"/v1/vector_stores/{i}/files")):
                check_error(await call(gw, method, path, headers=AUTH), (404, 405))
            check_error(await call(gw, "POST", "/v1/batches", {"input_file_id": i, "endpoint": "/v1/chat/completions",
                                                               "completion_window": "24h"}, headers=AUTH), (404,))
            check_error(await call(gw, "POST", "/v1/fine_tuning/jobs", {"training_file": i, "model": "gpt-4o-mini"},
                                   headers=AUTH), (404,))
            check_error(await call(gw, "POST", f"/v1/vector_stores/{i}/search", {"query": "q"}, headers=AUTH), (404,))
            check_error(await call(gw, "POST", "/v1/vector_stores", {"file_ids": [i]}, headers=AUTH), (404,))
        assert len(up.seen) == before  # not one of them reached the upstream

    run(up, tmp_path, body)


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "xyzzy") -> tuple[bytes, dict[str, str]]:
    out = b""
    for name, filename, value in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {**AUTH, "content-type": f"multipart/form-data; boundary={boundary}"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["purpose", "model", "custom_llm_provider", "target_model_names", "x"]),
                          st.one_of(st.none(), st.text(max_size=20)), st.binary(max_size=200)), max_size=5),
       st.integers(min_value=1, max_value=7))
def test_hostile_uploads_are_4xx(up: Upstream, tmp_path: Path, parts: list[tuple[str, str | None, bytes]],
                                 pieces: int) -> None:
    async def body(gw: Gateway) -> None:
        data, headers = multipart(parts)
        r = await call(gw, "POST", "/v1/files", data, headers=headers, body_parts=pieces)
        if r.status == 200:  # a well-formed upload to the one deployment the key may use
            assert r.json()["id"].startswith("file-")
        else:
            check_error(r, (400, 401, 413))

    run(up, tmp_path, body)


@pytest.mark.parametrize("data,ctype", [
    (b"", "multipart/form-data; boundary=b"), (b"--b--\r\n", "multipart/form-data; boundary=b"),
    (b"abc", "multipart/form-data"), (b"{}", "application/json"), (b"--b\r\n" * 50000, "multipart/form-data; boundary=b"),
])
def test_malformed_uploads(up: Upstream, tmp_path: Path, data: bytes, ctype: str) -> None:
    async def body(gw: Gateway) -> None:
        check_error(await call(gw, "POST", "/v1/files", data, headers={**AUTH, "content-type": ctype}, body_parts=3))

    run(up, tmp_path, body)


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b"{", b'{"input_file_id": 5}', b'{"input_file_id": ""}',
                                 b'{"input_file_id": ["file-x"]}', b"\xff\xfe"])
def test_malformed_batches(up: Upstream, tmp_path: Path, raw: bytes) -> None:
    async def body(gw: Gateway) -> None:
        check_error(await call(gw, "POST", "/v1/batches", raw, headers={**AUTH, "content-type": "application/json"}))
        check_error(await call(gw, "GET", "/v1/batches?limit=abc", headers=AUTH))
        check_error(await call(gw, "GET", "/v1/files?limit=0", headers=AUTH))
        check_error(await call(gw, "GET", "/v1/files?order=sideways", headers=AUTH))
        check_error(await call(gw, "GET", "/v1/files", headers={"authorization": "Bearer sk-nope"}), (401,))

    run(up, tmp_path, body)


def test_upload_and_batch_in_process(up: Upstream, tmp_path: Path) -> None:
    line = b'{"custom_id": "a", "body": {"model": "gpt-files"}}\n'

    async def body(gw: Gateway) -> None:
        data, headers = multipart([("purpose", None, b"batch"), ("model", None, b"gpt-files"),
                                   ("file", "in.jsonl", line)])
        r = await call(gw, "POST", "/v1/files", data, headers=headers, body_parts=9)
        assert r.status == 200, r.body
        fid = r.json()["id"]
        assert "x-litellm-call-id" in r.headers
        r = await call(gw, "POST", "/v1/batches", {"input_file_id": fid, "endpoint": "/v1/chat/completions",
                                                   "completion_window": "24h", "model": "gpt-files"}, headers=AUTH)
        assert r.status == 200, r.body
        assert "model" not in up.last("POST", "/v1/batches").body
        listed = await call(gw, "GET", "/v1/batches?limit=1", headers={"authorization": f"Bearer {MASTER}"})
        assert [b["id"] for b in listed.json()["data"]] == [r.json()["id"]]
        content = await call(gw, "GET", f"/v1/files/{fid}/content", headers=AUTH)
        assert orjson.loads(content.body)["body"]["model"] == "gpt-4o-mini"

    run(up, tmp_path, body)


@pytest.mark.parametrize("retry_after,header", [("7", "7"), ("inf", None), ("nan", None), ("-3", None),
                                                ("soon", None)])
def test_upstream_429_relayed(up: Upstream, tmp_path: Path, retry_after: str, header: str | None) -> None:
    async def body(gw: Gateway) -> None:
        data, headers = multipart([("purpose", None, b"batch"), ("file", f"rate-limit-{retry_after}.jsonl", b"{}")])
        r = await call(gw, "POST", "/v1/files", data, headers=headers)
        check_error(r, (429,))
        assert r.json()["error"]["type"] == "throttling_error" and "Rate limit reached" in r.json()["error"]["message"]
        assert r.headers.get("retry-after") == header

    run(up, tmp_path, body)
