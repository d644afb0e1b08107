"""Config reload in-process: ``Gateway.reload`` re-reads the file and swaps the runtime snapshot.

What must hold: per-deployment stats carry over by deployment id (the same objects), a changed deployment
starts fresh, metrics labels and the transport follow the gateway not the snapshot, a stream started
before the swap ends on its own snapshot, and an invalid file changes nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate import reload
from relaygate.asgi import Gateway
from relaygate.config import ConfigError, load_config
from relaygate.runtime import Runtime

from .conftest import call

MASTER = "sk-reload-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}
WORDS = " ".join(f"w{i}" for i in range(10))

HEAD = f'[auth]\nmaster_key = "{MASTER}"\n\n'
A1 = '[[models]]\nname = "a"\nmodel = "mock/echo"\n\n'
A2_OLD = '[[models]]\nname = "a"\nmodel = "mock/two"\nmock_response = "two"\n\n'
A2_NEW = '[[models]]\nname = "a"\nmodel = "mock/two"\nmock_response = "TWO"\n\n'  # other params: other id
B = '[[models]]\nname = "b"\nmodel = "mock/bee"\nmock_response = "bee"\n\n'
C = '[[models]]\nname = "c"\nmodel = "mock/sea"\nmock_response = "sea"\n\n'
S = f'[[models]]\nname = "s"\nmodel = "mock/s"\nmock_response = "{WORDS}"\nmock_chunks = 10\n\n'
KEY = '[[keys]]\nkey = "sk-virtual"\nmodels = ["a"]\n\n'

FIRST = HEAD + A1 + A2_OLD + B + S + KEY
SECOND = HEAD + A1 + A2_NEW + C + S + KEY


def chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}


def gateway(tmp_path: Path, text: str = FIRST) -> tuple[Gateway, Path]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    return Gateway(load_config(str(cfg)), config_path=str(cfg), runtime_dir=None), cfg


def stats_by_id(rt: Runtime) -> dict[str, Any]:
    return {t.dep.id: t.stats for g in rt.router.groups.values() for t in g.targets}


def dep_ids(rt: Runtime, group: str) -> dict[str, str]:
    """The group's deployments: upstream model -> deployment id."""
    return {t.dep.upstream_model: t.dep.id for t in rt.router.groups[group].targets}


def test_stats_carry_over_by_deployment_id(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path)

    async def main() -> None:
        old = gw.runtime
        ids = dep_ids(old, "a")
        a1 = stats_by_id(old)[ids["echo"]]
        a2 = stats_by_id(old)[ids["two"]]
        sent = 0
        while sent < 6 or not (a1.latency_n and a2.latency_n):  # the shuffle reaches both (bounded below)
            assert (await call(gw, "POST", "/v1/chat/completions", chat("a"), AUTH)).status == 200
            sent += 1
            assert sent < 200
        assert a1.latency_n + a2.latency_n == sent
        a1.cooldown_until = old.router.clock() + 300.0
        a1_latency, a1_n, a1_cool = a1.latency, a1.latency_n, a1.cooldown_until
        limiter, transport = old.router.limiter, gw.transport

        cfg.write_text(SECOND)
        new = await gw.reload("test")
        assert gw.runtime is new and new is not old
        assert new.generation == old.generation + 1 == 1
        new_ids = dep_ids(new, "a")
        assert new_ids["echo"] == ids["echo"] and new_ids["two"] != ids["two"]
        after = stats_by_id(new)
        assert after[ids["echo"]] is a1  # the same object: EWMA and cooldown kept
        assert (a1.latency, a1.latency_n, a1.cooldown_until) == (a1_latency, a1_n, a1_cool)
        fresh = after[new_ids["two"]]
        assert fresh is not a2 and fresh.latency_n == 0 and fresh.cooldown_until == 0.0 and fresh.inflight == 0
        assert ids["two"] not in after
        assert gw.transport is transport  # connection pools kept
        assert new.router.limiter is limiter  # limiter settings unchanged: kept with its buckets
        assert sorted(new.router.groups) == ["a", "c", "s"]

        # a1 is still cooling down on the new snapshot: every request to `a` goes to the new a2
        for _ in range(3):
            r = await call(gw, "POST", "/v1/chat/completions", chat("a"), AUTH)
            assert r.status == 200 and r.headers["x-litellm-model-id"] == new_ids["two"]
            assert r.json()["choices"][0]["message"]["content"] == "TWO"
        assert fresh.latency_n == 3 and a1.latency_n == a1_n

        assert (await gw.reload("again")).generation == 2

    asyncio.run(main())


def test_metrics_labels_follow_the_new_model_names(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path)

    async def main() -> None:
        assert (await call(gw, "POST", "/v1/chat/completions", chat("b"), AUTH)).status == 200
        assert (await call(gw, "POST", "/v1/chat/completions", chat("c"), AUTH)).status == 400
        before = (await call(gw, "GET", "/metrics", headers=AUTH)).body.decode()  # drains the completion queue
        assert 'model_group="b",' in before
        cfg.write_text(SECOND)
        await gw.reload("test")
        c_id = dep_ids(gw.runtime, "c")["sea"]
        assert (await call(gw, "POST", "/v1/chat/completions", chat("c"), AUTH)).status == 200
        assert (await call(gw, "POST", "/v1/chat/completions", chat("b"), AUTH)).status == 400
        r = await call(gw, "GET", "/metrics", headers=AUTH)
        assert r.status == 200
        lines = r.body.decode().splitlines()
        requests = [ln for ln in lines if ln.startswith("relaygate_requests_total{")]
        assert any(f'model_group="c",model_id="{c_id}",status="200"' in ln for ln in requests), requests
        assert any('model_group="b",' in ln and 'status="200"' in ln for ln in requests)  # counted before, kept
        # errors for a name the config does not have (then `c`, now `b`) are `other`, never a new label
        assert not any('model_group="c"' in ln and 'status="400"' in ln for ln in requests)
        assert not any('model_group="b"' in ln and 'status="400"' in ln for ln in requests)
        assert any('model_group="other"' in ln and 'status="400"' in ln and ln.endswith(" 2")
                   for ln in requests), requests

    asyncio.run(main())


class HeldStream:
    """A streaming request driven by hand: its ``send`` blocks after ``hold_after`` body chunks until
    :meth:`release`, so the exchange is in flight for as long as the test wants."""

    def __init__(self, app: Any, body: dict[str, Any], headers: dict[str, str], hold_after: int) -> None:
        self.chunks: list[bytes] = []
        self.status = 0
        self.ended = False
        self.held = asyncio.Event()
        self._go = asyncio.Event()
        self._hold_after = hold_after
        self._never = asyncio.Event()
        raw = orjson.dumps(body)
        hdrs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": hdrs,
                 "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 4000),
                 "client": ("127.0.0.1", 1)}
        messages = [{"type": "http.request", "body": raw, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await self._never.wait()  # the client stays connected
            return {"type": "http.disconnect"}

        self.task = asyncio.ensure_future(app(scope, receive, self._send))

    async def _send(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            self.status = msg["status"]
            return
        if msg.get("body"):
            self.chunks.append(msg["body"])
        if not msg.get("more_body", False):
            self.ended = True
        if len(self.chunks) == self._hold_after and not self._go.is_set():
            self.held.set()
            await self._go.wait()

    async def release(self) -> None:
        self._go.set()
        await self.task


def test_stream_in_flight_ends_on_its_snapshot_and_new_requests_use_the_new_one(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path)
    seen: list[tuple[str, Runtime]] = []

    async def record(ex: Any) -> None:
        seen.append((ex.model, ex.rt))

    async def main() -> None:
        old = gw.runtime
        old.before_route = (record,)
        s_id = dep_ids(old, "s")["s"]
        s_stats = stats_by_id(old)[s_id]
        stream = HeldStream(gw, {**chat("s", stream=True), "stream_options": {"include_usage": True}}, AUTH,
                            hold_after=3)
        await asyncio.wait_for(stream.held.wait(), 30)
        assert stream.status == 200 and not stream.ended
        assert s_stats.inflight == 1

        cfg.write_text(SECOND.replace('models = ["a"]', 'models = ["c"]'))
        new = await gw.reload("test")
        new.before_route = (record,)
        assert stats_by_id(new)[s_id] is s_stats and s_stats.inflight == 1  # the old request's lease counts
        # the new snapshot serves at once, while the stream is still held in its send
        assert (await call(gw, "POST", "/v1/chat/completions", chat("c"), AUTH)).status == 200
        assert (await call(gw, "POST", "/v1/chat/completions", chat("b"), AUTH)).status == 400
        denied = await call(gw, "POST", "/v1/chat/completions", chat("a"), {"Authorization": "Bearer sk-virtual"})
        assert denied.status == 401, denied.body
        assert not stream.ended

        await asyncio.wait_for(stream.release(), 30)
        assert stream.ended and s_stats.inflight == 0
        text = b"".join(stream.chunks).decode()
        frames = [f for f in text.split("\n\n") if f.strip()]
        assert frames[-1] == "data: [DONE]"
        content = ""
        for f in frames[:-1]:
            assert f.startswith("data: "), f
            for choice in orjson.loads(f[6:])["choices"]:
                content += choice["delta"].get("content") or ""
        assert content == WORDS  # every chunk arrived
        assert [(m, rt is old) for m, rt in seen] == [("s", True), ("c", False)]
        assert seen[1][1] is new

    asyncio.run(main())


@pytest.mark.parametrize("bad", [
    pytest.param('[[models]]\nname = "x"\nmodel = "openai/x"\napi_base = "http://127.0.0.1:9/v1"\nweight = -1\n',
                 id="negative-weight"),
    pytest.param("[server]\nreload_poll_interval = 0\n", id="zero-poll-interval"),
    pytest.param("[[models]]\nname = \n", id="invalid-toml"),
])
def test_an_invalid_file_raises_and_the_old_snapshot_keeps_serving(tmp_path: Path, bad: str) -> None:
    gw, cfg = gateway(tmp_path)

    async def main() -> None:
        cfg.write_text(SECOND)
        good = await gw.reload("test")
        cfg.write_text(bad + "\n" + SECOND if bad.startswith("[[") else SECOND + bad)
        with pytest.raises(ConfigError):
            await gw.reload("test")
        assert gw.runtime is good and good.generation == 1
        assert (await call(gw, "POST", "/v1/chat/completions", chat("c"), AUTH)).status == 200
        r = await call(gw, "POST", "/config/reload", headers=AUTH)
        assert r.status == 400
        assert "the previous config keeps serving" in r.json()["error"]["message"]
        assert gw.runtime is good
        r = await call(gw, "GET", "/health/readiness")
        assert r.json()["config_generation"] == 1

    asyncio.run(main())


def test_config_reload_route(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path)

    async def main() -> None:
        cfg.write_text(SECOND)
        r = await call(gw, "POST", "/config/reload", headers={"Authorization": "Bearer sk-virtual"})
        assert r.status == 401
        assert gw.runtime.generation == 0
        r = await call(gw, "POST", "/config/reload", headers=AUTH)
        assert r.status == 200, r.body
        assert r.json()["status"] == "reloaded" and r.json()["generation"] == 1
        models = await call(gw, "GET", "/v1/models", headers=AUTH)
        assert sorted(m["id"] for m in models.json()["data"]) == ["a", "c", "s"]

        fixed = Gateway(load_config(str(cfg)), runtime_dir=None)  # no file: nothing to reload
        r = await call(fixed, "POST", "/config/reload", headers=AUTH)
        assert r.status == 400 and "--config" in r.json()["error"]["message"]

    asyncio.run(main())


WATCH = "[server]\nwatch_config = true\nreload_poll_interval = 0.01\n\n"


async def reload_by_file_change(gw: Gateway, cfg: Path, text: str) -> Runtime:
    """Start the gateway (its watcher), rewrite the file, wait for the watcher's swap, shut down."""
    old = gw.runtime
    await gw.startup()
    try:
        await asyncio.sleep(0.05)
        cfg.write_text(text)
        for _ in range(3000):
            if gw.runtime is not old:
                break
            await asyncio.sleep(0.01)
        return gw.runtime
    finally:
        await gw.shutdown()


def test_watch_config_reloads_on_a_file_change(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path, WATCH + FIRST)
    old = gw.runtime
    s_stats = stats_by_id(old)[dep_ids(old, "s")["s"]]
    new = asyncio.run(reload_by_file_change(gw, cfg, WATCH + SECOND))
    assert new is not old
    assert sorted(new.router.groups) == ["a", "c", "s"]
    assert stats_by_id(new)[dep_ids(new, "s")["s"]] is s_stats


def test_watch_config_reload_increments_the_generation(tmp_path: Path) -> None:
    gw, cfg = gateway(tmp_path, WATCH + FIRST)
    assert gw.runtime.generation == 0
    new = asyncio.run(reload_by_file_change(gw, cfg, WATCH + SECOND))
    assert sorted(new.router.groups) == ["a", "c", "s"]
    assert new.generation == 1


def test_a_bump_after_a_reload_only_this_worker_saw_is_still_applied(tmp_path: Path) -> None:
    """A worker reloaded on its own (a Redis message from another host): its snapshot's generation moved
    past the shared file's. The next bump of the shared generation (SIGHUP, another worker's POST
    /config/reload) must still reach it."""
    shared = tmp_path / "runtime"
    shared.mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(FIRST)
    gw = Gateway(load_config(str(cfg)), config_path=str(cfg), runtime_dir=str(shared))
    watcher = gw.watcher
    assert watcher is not None

    async def main() -> None:
        cfg.write_text(SECOND)
        await gw._on_change("redis")  # what subscribe_reloads calls for another host's reload
        assert sorted(gw.runtime.router.groups) == ["a", "c", "s"]
        cfg.write_text(SECOND + '[[models]]\nname = "d"\nmodel = "mock/echo"\n')
        reload.bump(str(shared))  # SIGHUP in the main process, or another worker's POST /config/reload
        reason = watcher.poll()  # one step of the watcher's loop
        if reason is not None:
            await gw._on_change(reason)
        assert "d" in gw.runtime.router.groups, (reason, gw.runtime.generation, reload.current(str(shared)))

    asyncio.run(main())


def test_an_unknown_provider_is_skipped_on_reload_as_at_start(tmp_path: Path) -> None:
    """LiteLLM's proxy ignores a deployment it cannot create; so does a reload (issue 11, rule 11)."""
    gw, cfg = gateway(tmp_path)

    async def main() -> None:
        cfg.write_text(SECOND + '[[models]]\nname = "x"\nmodel = "nosuchprovider/x"\n')
        new = await gw.reload("test")
        assert "x" not in new.router.groups and sorted(new.router.groups) == ["a", "c", "s"]
        assert any("nosuchprovider" in line for line in new.config.skipped)

    asyncio.run(main())
