"""OpenAI's Realtime API through a real ``relaygate serve`` (``relaygate.realtime``): the openai SDK's
``client.realtime.connect`` and raw WebSocket clients against a gateway whose ``openai/`` and ``azure/``
deployments point at a real WebSocket upstream (aiohttp, in a thread). A session reaches the upstream with the
deployment's own key, frames go both ways as they are (text and binary), a browser's subprotocol key works,
every refusal is an OpenAI ``error`` event and a close code, a dead deployment is skipped for the next one, and
the session's ``response.done`` usage becomes one priced spend row charged to the key."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import WSMsgType, web
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import GatewayProc, free_port, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-realtime-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
USAGE = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
         "input_token_details": {"cached_tokens": 5, "text_tokens": 12, "audio_tokens": 8},
         "output_token_details": {"text_tokens": 4, "audio_tokens": 6}}


class Upstream:
    """A Realtime API upstream: ``session.created`` on connect, a short answer with :data:`USAGE` on
    ``response.create``, binary frames echoed, text frames of other types echoed inside an ``echo`` event."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []  # per session: path, query, headers, frames
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q, h = dict(request.query), {k.lower(): v for k, v in request.headers.items()}
        azure = request.path == "/openai/realtime"
        ok = (h.get("api-key") == "az-key" and "api-version" in q) if azure else (
            h.get("authorization") == "Bearer sk-up-rt")
        if not ok:
            return web.Response(status=401, text="bad upstream key")
        model = q.get("deployment" if azure else "model")
        seen: dict[str, Any] = {"path": request.path, "query": q, "headers": h, "frames": []}
        self.seen.append(seen)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "session.created", "event_id": "ev_1",
                                      "session": {"id": "sess_1", "object": "realtime.session", "model": model}}))
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                seen["frames"].append(msg.data)
                await ws.send_bytes(msg.data[::-1])
                continue
            if msg.type != WSMsgType.TEXT:
                break
            ev = json.loads(msg.data)
            seen["frames"].append(ev)
            kind = ev.get("type")
            if kind == "response.create":
                rid = "resp_rt1"
                await ws.send_str(json.dumps({"type": "response.created", "event_id": "ev_2",
                                              "response": {"id": rid, "object": "realtime.response",
                                                           "status": "in_progress", "output": []}}))
                await ws.send_str(json.dumps({"type": "response.output_text.delta", "event_id": "ev_3",
                                              "response_id": rid, "item_id": "item_1", "output_index": 0,
                                              "content_index": 0, "delta": "hello"}))
                await ws.send_str(json.dumps({"type": "response.done", "event_id": "ev_4",
                                              "response": {"id": rid, "object": "realtime.response",
                                                           "status": "completed", "output": [], "usage": USAGE}}))
            elif kind == "session.update":
                await ws.send_str(json.dumps({"type": "session.updated", "event_id": "ev_5",
                                              "session": {"id": "sess_1", "object": "realtime.session"}}))
            elif kind == "bye":
                await ws.close(code=1000)
                break
            else:
                await ws.send_str(json.dumps({"type": "echo", "got": ev}))
        return ws


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        up.loop = loop
        app = web.Application()
        app.router.add_get("/v1/realtime", up.handle)
        app.router.add_get("/openai/realtime", up.handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    up.url = f"http://127.0.0.1:{holder['port']}"
    yield up
    assert up.loop is not None
    up.loop.call_soon_threadsafe(up.loop.stop)
    t.join(10)


@pytest.fixture(scope="module")
def gateway(upstream: Upstream) -> Iterator[GatewayProc]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    price = "{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002, input_cost_per_audio_token: 0.00001, " \
            "output_cost_per_audio_token: 0.00002}"
    cfg = f"""
model_list:
  - model_name: rt
    litellm_params: {{model: openai/gpt-dead, api_key: sk-up-rt, api_base: "{dead}"}}
    model_info: {price}
  - model_name: rt
    litellm_params: {{model: openai/gpt-realtime, api_key: sk-up-rt, api_base: "{upstream.url}/v1"}}
    model_info: {price}
  - model_name: rt-az
    litellm_params: {{model: azure/my-rt, api_key: az-key, api_base: "{upstream.url}", api_version: "2025-04-01-preview"}}
  - model_name: rt-badkey
    litellm_params: {{model: openai/gpt-realtime, api_key: sk-wrong, api_base: "{upstream.url}/v1"}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk-ant}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{Path(tempfile.mkdtemp()) / "rt.db"}
"""
    with start_gateway(cfg) as gw:
        yield gw


def _key(gw: GatewayProc, **fields: Any) -> str:
    r = httpx.post(gw.url + "/key/generate", headers=ADMIN, json=fields)
    assert r.status_code == 200, r.text
    return str(r.json()["key"])


def _ws(gw: GatewayProc, query: str, key: str | None = MASTER, path: str = "/v1/realtime", **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return connect(f"ws://127.0.0.1:{gw.port}{path}?{query}", additional_headers=headers, open_timeout=20, **kw)


def _refused(gw: GatewayProc, query: str, key: str | None = MASTER, **kw: Any) -> tuple[dict[str, Any], int]:
    with _ws(gw, query, key, **kw) as ws:
        event = json.loads(ws.recv(timeout=20))
        with pytest.raises(ConnectionClosed) as ei:
            ws.recv(timeout=20)
    assert ei.value.rcvd is not None
    return event, ei.value.rcvd.code


def _spend(gw: GatewayProc, key: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        info = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN).json()
        rows = httpx.get(gw.url + "/spend/logs", params={"api_key": info["key"]}, headers=ADMIN).json()
        if rows or time.monotonic() > deadline:
            return rows  # type: ignore[no-any-return]
        time.sleep(0.3)


def test_sdk_session_relayed_and_charged(gateway: GatewayProc, upstream: Upstream) -> None:
    key = _key(gateway, models=["rt"])
    before = len(upstream.seen)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client, \
            client.realtime.connect(model="rt") as conn:
        first = conn.recv()
        assert first.type == "session.created"
        conn.session.update(session={"type": "realtime", "instructions": "be brief"})
        assert conn.recv().type == "session.updated"
        conn.response.create()
        kinds = []
        for event in conn:
            kinds.append(event.type)
            if event.type == "response.done":
                assert event.response.usage is not None and event.response.usage.input_tokens == 20
                break
    assert kinds == ["response.created", "response.output_text.delta", "response.done"]
    (seen,) = upstream.seen[before:]  # the dead deployment was skipped: one upstream session
    assert seen["path"] == "/v1/realtime" and seen["query"] == {"model": "gpt-realtime"}
    assert seen["headers"]["authorization"] == "Bearer sk-up-rt" and key not in json.dumps(seen["headers"])
    assert [f["type"] for f in seen["frames"]] == ["session.update", "response.create"]
    (row,) = _spend(gateway, key)
    assert row["call_type"] == "_arealtime" and row["model_group"] == "rt"  # LiteLLM's call type
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 10) and row["spend"] > 0


def test_frames_both_ways_and_browser_key(gateway: GatewayProc, upstream: Upstream) -> None:
    key = _key(gateway, models=["rt"])
    url = f"ws://127.0.0.1:{gateway.port}/realtime?model=rt"
    with connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{key}"], open_timeout=20) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "realtime"
        assert json.loads(ws.recv(timeout=20))["type"] == "session.created"
        ws.send(b"\x00\x01audio")
        assert ws.recv(timeout=20) == b"oidua\x01\x00"
        backlog = httpx.get(gateway.url + "/health/backlog", headers=ADMIN).json()
        assert backlog["in_flight_requests"] >= 2  # the open session counts, and this request
        ws.send(json.dumps({"type": "custom", "n": 1}))
        assert json.loads(ws.recv(timeout=20)) == {"type": "echo", "got": {"type": "custom", "n": 1}}
        ws.send(json.dumps({"type": "bye"}))  # the upstream closes: so does the gateway, with its code
        with pytest.raises(ConnectionClosed) as ei:
            ws.recv(timeout=20)
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1000


def test_azure_deployment(gateway: GatewayProc, upstream: Upstream) -> None:
    with _ws(gateway, "model=rt-az") as ws:
        assert json.loads(ws.recv(timeout=20))["session"]["model"] == "my-rt"
    seen = upstream.seen[-1]
    assert seen["path"] == "/openai/realtime" and seen["headers"]["api-key"] == "az-key"
    assert seen["query"] == {"api-version": "2025-04-01-preview", "deployment": "my-rt"}


def test_refusals(gateway: GatewayProc) -> None:
    limited = _key(gateway, models=["rt-az"])
    broke = _key(gateway, models=["rt"], max_budget=0)
    for query, key, code, words in (
            ("model=rt", "sk-not-a-key", 1008, ""),
            ("model=rt", None, 1008, ""),
            ("", MASTER, 1008, "Missing required query parameter: 'model'."),
            ("model=nope", MASTER, 1008, "nope"),
            ("model=claude", MASTER, 1008, "Realtime API"),
            ("model=rt", limited, 1008, "rt"),
            ("model=rt", broke, 1008, "udget"),
            ("model=rt-badkey", MASTER, 1011, "HTTP 401")):
        event, closed = _refused(gateway, query, key)
        assert event["type"] == "error" and closed == code, (query, event, closed)
        assert words in event["error"]["message"], (query, event)
    with pytest.raises(InvalidStatus) as ei:  # not a realtime path: the handshake itself is refused
        _ws(gateway, "model=rt", path="/v1/chat/completions").__enter__()
    assert ei.value.response.status_code == 403
    assert httpx.get(gateway.url + "/health/liveliness").status_code == 200
