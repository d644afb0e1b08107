"""End to end: a 50 MiB multipart upload through a real Granian worker to a real upstream socket.

The upstream (``tests.upstream.test_streamed_body.Sink``, on its own event loop thread) hashes what it
reads; the worker's resident memory is sampled from /proc while the upload runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway
from tests.providers.test_media_upload import MB, B, Client
from tests.upstream.test_streamed_body import Sink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Sink]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sink = Sink(read_size=64 * 1024)
    asyncio.run_coroutine_threadsafe(sink.__aenter__(), loop).result(10)
    cfg = f"""
model_list:
  - model_name: whisper
    litellm_params: {{model: openai/whisper-1, api_key: sk, api_base: {sink.url}/v1}}
general_settings: {{master_key: sk-m, max_request_size_mb: 200}}
"""
    try:
        with start_gateway(cfg) as gw:
            yield gw, sink
    finally:
        asyncio.run_coroutine_threadsafe(sink.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _max_rss_mib(session: int) -> float:
    pids = subprocess.run(["pgrep", "-s", str(session)], check=False, capture_output=True,
                          text=True).stdout.split()
    best = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best / 1024


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_50mb_upload_streams_through_a_worker(stack: tuple[GatewayProc, Sink], content_length: bool) -> None:
    gw, sink = stack
    client = Client(50 * MB)
    headers = {"authorization": "Bearer sk-m", "content-type": f"multipart/form-data; boundary={B}"}
    if content_length:
        headers["content-length"] = str(client.length)
    before = _max_rss_mib(gw.proc.pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _max_rss_mib(gw.proc.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = httpx.post(gw.url + "/v1/audio/transcriptions", content=iter(client._messages()), headers=headers,
                       timeout=60)
    finally:
        done.set()
        sampler.join()
    assert r.status_code == 200, r.text
    digest, size = client.expected("whisper-1")
    assert sink.sizes[-1] == size and sink.digests[-1] == digest
    assert peak[0] - before < 16, (before, peak[0])  # the worker never held the 50 MiB upload
