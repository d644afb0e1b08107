"""End to end: a config reload on a real ``relaygate serve`` with two workers, while a stream is in flight.

The upstream of model group ``a`` is a real HTTP server in this process that streams a few chunks of a
marked request and then holds it until the test lets go, so the stream is deterministically open across
the reload. The reload is asked three ways (``POST /config/reload``, SIGHUP to the main process, a file
change with ``watch_config``); each worker's log line proves it swapped, and many requests on fresh
connections (so both workers answer) check what the new config serves. An invalid file afterwards is
refused and the second config keeps serving. Granian never respawns a worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayProc, child_pids, free_port, start_gateway, stop_process, wait_ready

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-reload-master"
K1 = "sk-e2e-reload-k1"
K2 = "sk-e2e-reload-k2"
CHUNKS = 12
HOLD_AT = 3  # content chunks sent before the held stream waits
WORDS = "".join(f"w{i} " for i in range(CHUNKS))
FRESH = 16  # requests per check, each on a new connection
WAIT = 60.0  # upper bound of every wait on a condition (never asserted as a timing)


# -- the upstream of `a`: an OpenAI-compatible server whose marked streams wait for a release -----------------


class HeldUpstream:
    """Chat completions, streamed or not; a stream whose messages contain ``hold`` sends ``HOLD_AT`` content
    chunks, sets :attr:`held` and waits for :attr:`release` before the rest and ``[DONE]``."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                if not body.get("stream"):
                    data = json.dumps({
                        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from a"},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                hold = "hold" in json.dumps(body.get("messages"))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self.chunk({"role": "assistant", "content": ""}, None)
                for i in range(CHUNKS):
                    if hold and i == HOLD_AT:
                        up.held.set()
                        up.release.wait(WAIT * 2)
                    self.chunk({"content": f"w{i} "}, None)
                self.chunk({}, "stop")
                self.write(b"data: [DONE]\n\n")
                self.write(b"")

            def chunk(self, delta: dict[str, Any], finish: str | None) -> None:
                frame = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self.write(b"data: " + json.dumps(frame).encode() + b"\n\n")

            def write(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="held-upstream", daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[HeldUpstream]:
    up = HeldUpstream()
    try:
        yield up
    finally:
        up.close()


# -- the configs ---------------------------------------------------------------------------------------------


def config(upstream: HeldUpstream, *, watch: bool, second: bool, k1_models: list[str] | None = None,
           poll: str = "0.2", extra_model: str = "") -> str:
    """First: ``a`` (the held upstream), ``b``, K1 on ``a``. Second: ``b`` gone, ``c`` new, K1's rights
    changed to ``k1_models`` (None: K1 removed), K2 new on ``a`` and ``c``."""
    text = f"""
[server]
reload_poll_interval = {poll}
watch_config = {"true" if watch else "false"}

[auth]
master_key = "{MASTER}"

[[models]]
name = "a"
model = "openai/slow"
api_base = "{upstream.base}"
api_key = "sk-upstream"
"""
    if not second:
        return text + f"""
[[models]]
name = "b"
model = "mock/bee"
mock_response = "bee"

[[keys]]
key = "{K1}"
models = ["a"]
"""
    text += """
[[models]]
name = "c"
model = "mock/sea"
mock_response = "sea"
"""
    if extra_model:
        text += f'\n[[models]]\nname = "{extra_model}"\nmodel = "mock/echo"\n'
    if k1_models is not None:
        text += f'\n[[keys]]\nkey = "{K1}"\nmodels = {json.dumps(k1_models)}\n'
    return text + f'\n[[keys]]\nkey = "{K2}"\nmodels = ["a", "c"]\n'


# -- helpers -------------------------------------------------------------------------------------------------


def wait_for(cond: Callable[[], bool], what: str, gw: GatewayProc) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{gw.log()}")
        time.sleep(0.05)


def logged(gw: GatewayProc, text: str) -> bool:
    return text in gw.log()


def ready_workers(gw: GatewayProc) -> list[int]:
    return [int(p) for p in re.findall(r"\] worker (\d+) ready:", gw.log())]


def reloads(gw: GatewayProc) -> list[tuple[int, str, int]]:
    """Every worker's ``config reloaded`` line: (pid, reason, generation)."""
    return [(int(pid), reason, int(gen)) for pid, reason, gen in
            re.findall(r"relaygate\[(\d+)\] config reloaded \((.*?)\): generation (\d+)", gw.log())]


def fresh(gw: GatewayProc, method: str, path: str, key: str | None = MASTER,
          body: dict[str, Any] | None = None) -> list[httpx.Response]:
    """``FRESH`` requests, each on a new connection (the listening socket spreads them over the workers)."""
    headers = {"Connection": "close", **({"Authorization": f"Bearer {key}"} if key else {})}
    out = []
    for _ in range(FRESH):
        with httpx.Client(timeout=30) as client:
            out.append(client.request(method, gw.url + path, json=body, headers=headers))
    return out


def chat(model: str, content: str = "hi", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


def statuses(responses: list[httpx.Response]) -> set[int]:
    return {r.status_code for r in responses}


def model_ids(responses: list[httpx.Response]) -> set[frozenset[str]]:
    return {frozenset(m["id"] for m in r.json()["data"]) for r in responses}


def check_first(gw: GatewayProc) -> None:
    assert {r.json()["config_generation"] for r in fresh(gw, "GET", "/health/readiness", None)} == {0}
    assert model_ids(fresh(gw, "GET", "/v1/models")) == {frozenset({"a", "b"})}
    assert statuses(fresh(gw, "POST", "/v1/chat/completions", K1, chat("b"))) == {401}
    assert statuses(fresh(gw, "POST", "/v1/chat/completions", K2, chat("a"))) == {401}  # not a key yet


def check_second(gw: GatewayProc, k1_models: list[str] | None) -> None:
    """What the second config serves, on every worker."""
    assert {r.json()["config_generation"] for r in fresh(gw, "GET", "/health/readiness", None)} == {1}
    gone = fresh(gw, "POST", "/v1/chat/completions", MASTER, chat("b"))
    assert statuses(gone) == {400}, gone[0].text
    assert all("Invalid model name passed in model=b." in r.json()["error"]["message"] for r in gone)
    new = fresh(gw, "POST", "/v1/chat/completions", MASTER, chat("c"))
    assert statuses(new) == {200}, new[0].text
    assert {r.json()["choices"][0]["message"]["content"] for r in new} == {"sea"}
    assert model_ids(fresh(gw, "GET", "/v1/models")) == {frozenset({"a", "c"})}
    assert model_ids(fresh(gw, "GET", "/v1/models", K2)) == {frozenset({"a", "c"})}
    assert statuses(fresh(gw, "POST", "/v1/chat/completions", K1, chat("a"))) == {401}  # K1's old right: gone
    if k1_models is None:
        assert statuses(fresh(gw, "GET", "/v1/models", K1)) == {401}
    else:
        assert model_ids(fresh(gw, "GET", "/v1/models", K1)) == {frozenset(k1_models)}
    on_a = fresh(gw, "POST", "/v1/chat/completions", K2, chat("a"))
    assert statuses(on_a) == {200}, on_a[0].text
    for _ in range(FRESH):  # K2 through the openai SDK, a new client (and connection) each time
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=K2, max_retries=0, timeout=30) as client:
            r = client.chat.completions.create(model="c", messages=[{"role": "user", "content": "x"}])
            assert r.choices[0].message.content == "sea"


@contextmanager
def held_stream(gw: GatewayProc, upstream: HeldUpstream) -> Iterator[Callable[[], tuple[str, list[str]]]]:
    """A stream on `a` with K1, its first chunks read, the upstream holding it; yields ``finish()``, which
    releases the upstream, reads the stream to its end and returns the content read so far and the lines
    that came after."""
    with httpx.Client(timeout=WAIT * 2) as client, client.stream(
            "POST", gw.url + "/v1/chat/completions", json=chat("a", "hold", stream=True),
            headers={"Authorization": f"Bearer {K1}"}) as resp:
        assert resp.status_code == 200, resp.read()
        lines = resp.iter_lines()
        content = ""
        for line in lines:
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    content += choice["delta"].get("content") or ""
            if len(content) >= len(WORDS.split(f"w{HOLD_AT} ")[0]):
                break
        assert upstream.held.wait(WAIT)

        def finish() -> tuple[str, list[str]]:
            upstream.release.set()
            return content, list(lines)

        yield finish


def assert_complete(content: str, rest: list[str]) -> None:
    """The held stream ended normally: every chunk, the finish reason, ``[DONE]`` last."""
    finish = []
    data = [ln[6:] for ln in rest if ln.startswith("data: ")]
    assert data[-1] == "[DONE]", rest
    for d in data[:-1]:
        for choice in json.loads(d)["choices"]:
            content += choice["delta"].get("content") or ""
            finish.append(choice["finish_reason"])
    assert content == WORDS
    assert finish[-1] == "stop"


def run_scenario(upstream: HeldUpstream, *, watch: bool, k1_models: list[str] | None,
                 trigger: Callable[[GatewayProc], None], reason: str,
                 refuse: Callable[[GatewayProc, list[int]], None]) -> None:
    """Start with the first config, reload to the second while a stream is held, then refuse an invalid one."""
    with start_gateway(config(upstream, watch=watch, second=False), suffix=".toml", workers=2) as gw:
        cfg = gw.log_path.parent / "config.toml"
        main = gw.proc.pid
        wait_for(lambda: len(ready_workers(gw)) == 2, "two workers", gw)
        workers = set(ready_workers(gw))
        assert workers <= child_pids(main)
        check_first(gw)

        with held_stream(gw, upstream) as finish:
            cfg.write_text(config(upstream, watch=watch, second=True, k1_models=k1_models))
            trigger(gw)
            wait_for(lambda: {pid for pid, _, _ in reloads(gw)} == workers, "every worker's reload", gw)
            check_second(gw, k1_models)  # served while the old stream is still open
            assert not upstream.release.is_set()
            before, rest = finish()
        assert_complete(before, rest)
        lines = reloads(gw)
        assert sorted(pid for pid, _, _ in lines) == sorted(workers), lines  # once per worker
        assert {gen for _, _, gen in lines} == {1}
        assert reason in {r for _, r, _ in lines}

        cfg.write_text(config(upstream, watch=watch, second=True, k1_models=k1_models, poll="0",
                              extra_model="d"))
        refuse(gw, sorted(workers))
        check_second(gw, k1_models)
        assert statuses(fresh(gw, "POST", "/v1/chat/completions", MASTER, chat("d"))) == {400}
        assert reloads(gw) == lines  # nothing swapped

        assert gw.proc.poll() is None
        assert len(ready_workers(gw)) == 2 and set(ready_workers(gw)) == workers  # no worker started again
        assert workers <= child_pids(main), gw.log()
        assert "respawning" not in gw.log()
        assert "Traceback" not in gw.log(), gw.log()


# -- the three ways to reload ------------------------------------------------------------------------------


def test_post_config_reload_during_a_stream(upstream: HeldUpstream) -> None:
    def trigger(gw: GatewayProc) -> None:
        denied = httpx.post(gw.url + "/config/reload", headers={"Authorization": f"Bearer {K1}"}, timeout=30)
        assert denied.status_code == 401, denied.text
        r = httpx.post(gw.url + "/config/reload", headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "reloaded" and r.json()["generation"] == 1

    def refuse(gw: GatewayProc, workers: list[int]) -> None:
        for key in (K1, K2):  # virtual keys, old and new: not the admin
            r = httpx.post(gw.url + "/config/reload", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code == 401, r.text
        r = httpx.post(gw.url + "/config/reload", headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "the previous config keeps serving" in message
        assert "server.reload_poll_interval: expected a positive number of seconds" in message

    run_scenario(upstream, watch=False, k1_models=["c"], trigger=trigger, reason="POST /config/reload",
                 refuse=refuse)


def test_sighup_during_a_stream(upstream: HeldUpstream) -> None:
    def trigger(gw: GatewayProc) -> None:
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_for(lambda: "config reload: generation 1" in gw.log(), "the main process's reload line", gw)

    def refuse(gw: GatewayProc, workers: list[int]) -> None:
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_for(lambda: f"relaygate[{gw.proc.pid}] config reload refused: " in gw.log(), "the refusal", gw)
        assert "server.reload_poll_interval: expected a positive number of seconds" in gw.log()
        assert "config reload: generation 2" not in gw.log()

    run_scenario(upstream, watch=False, k1_models=None, trigger=trigger, reason="generation 1", refuse=refuse)


def test_watch_config_file_change_during_a_stream(upstream: HeldUpstream) -> None:
    def refuse(gw: GatewayProc, workers: list[int]) -> None:
        for pid in workers:  # each worker sees the change, checks the file and keeps its snapshot
            line = f"relaygate[{pid}] config reload (config file changed) refused, still serving generation 1: "
            wait_for(partial(logged, gw, line), f"worker {pid}'s refusal", gw)

    run_scenario(upstream, watch=True, k1_models=["c"], trigger=lambda gw: None, reason="config file changed",
                 refuse=refuse)


# -- no file to reload -------------------------------------------------------------------------------------


def test_gateway_without_config_has_nothing_to_reload() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rg-noconf-") as tmp:
        log_path = Path(tmp) / "gateway.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "relaygate.cli", "serve", "--host", "127.0.0.1",
                                     "--port", str(port), "--workers", "1"], stdout=logf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            gw = GatewayProc(proc, port, log_path)
            wait_ready(gw.url + "/health/readiness", proc, log_path)
            r = httpx.post(gw.url + "/config/reload", timeout=30)  # no master key: any caller is the admin
            assert r.status_code == 400, r.text
            assert "there is no file to reload" in r.json()["error"]["message"]
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: "no file to reload" in gw.log(), "the SIGHUP refusal", gw)
            assert httpx.get(gw.url + "/health/readiness", timeout=30).json()["config_generation"] == 0
            assert proc.poll() is None
        finally:
            stop_process(proc)
