"""Config reload protocol (``relaygate.reload``): the generation file, the workers' Watcher, the checked load,
and SIGHUP to a real ``relaygate serve`` (Granian must not respawn its workers)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from relaygate import reload
from relaygate.config import ConfigError
from tests.conftest import RedisServer, child_pids, start_gateway

GOOD = '[[models]]\nname = "m"\nmodel = "mock/echo"\n'


# -- generation file --------------------------------------------------------------------------------------


def _bump_many(directory: str, n: int) -> list[int]:
    return [reload.bump(directory) for _ in range(n)]


def test_bump_is_atomic_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_bump_many, [(str(tmp_path), 25)] * 4)
    values = [v for chunk in results for v in chunk]
    assert sorted(values) == list(range(1, 101))  # all distinct, none lost
    assert reload.current(str(tmp_path)) == 100
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_current_is_zero_when_missing_or_unreadable(tmp_path: Path) -> None:
    assert reload.current(None) == 0
    assert reload.current(str(tmp_path)) == 0
    (tmp_path / reload.GENERATION_FILE).write_text("garbage")
    assert reload.current(str(tmp_path)) == 0
    assert reload.current(str(tmp_path / "missing")) == 0
    (tmp_path / reload.GENERATION_FILE).write_text("7\n")
    assert reload.current(str(tmp_path)) == 7
    assert reload.bump(str(tmp_path)) == 8


# -- Watcher ----------------------------------------------------------------------------------------------


def _watcher(directory: Path, config: Path | None = None, *, watch_file: bool = False,
             fail: Callable[[str], bool] = lambda reason: False) -> tuple[reload.Watcher, list[str]]:
    reasons: list[str] = []

    async def on_change(reason: str) -> None:
        reasons.append(reason)
        if fail(reason):
            raise RuntimeError(f"boom\non {reason}")

    w = reload.Watcher(str(directory), str(config) if config else None, on_change, interval=0.01,
                       watch_file=watch_file)
    return w, reasons


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_poll_fires_once_per_generation_and_not_otherwise(tmp_path: Path) -> None:
    reload.bump(str(tmp_path))  # a generation that existed before the worker started is not a change
    w, _ = _watcher(tmp_path)
    assert w.generation == 1
    assert [w.poll() for _ in range(3)] == [None, None, None]
    reload.bump(str(tmp_path))
    assert w.poll() == "generation 2"
    assert w.poll() is None
    w.seen(reload.bump(str(tmp_path)))  # the worker's own bump: already applied
    assert w.poll() is None
    (tmp_path / reload.GENERATION_FILE).unlink()
    assert w.poll() is None and w.generation == 3


def test_poll_fires_on_a_file_change_once_it_is_stable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    w, _ = _watcher(tmp_path, cfg, watch_file=True)
    assert w.poll() is None
    cfg.write_text(GOOD + "# edited\n")
    assert w.poll() is None  # seen changing: wait one interval for the write to finish
    assert w.poll() == "config file changed"
    assert w.poll() is None
    cfg.write_text(GOOD + "# again, and a bump\n")
    reload.bump(str(tmp_path))
    assert w.poll() == "generation 1"  # one reload, which reads the file as it is now
    assert [w.poll(), w.poll()] == [None, None]
    cfg.unlink()
    assert [w.poll(), w.poll()] == [None, None]  # a missing file keeps the config being served
    off, _ = _watcher(tmp_path, cfg, watch_file=False)
    cfg.write_text(GOOD + "# x\n")
    assert [off.poll(), off.poll()] == [None, None]


def test_watcher_task_fires_on_bump_and_file_change_and_survives_a_failing_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    w, reasons = _watcher(tmp_path, cfg, watch_file=True, fail=lambda r: r == "generation 1")

    async def main() -> None:
        w.start()
        w.start()  # idempotent
        await asyncio.sleep(0.1)
        assert reasons == []
        reload.bump(str(tmp_path))
        await _until(lambda: len(reasons) == 1)
        reload.bump(str(tmp_path))  # the task outlived the failure
        await _until(lambda: len(reasons) == 2)
        cfg.write_text(GOOD + "# edited\n")
        await _until(lambda: len(reasons) == 3)
        await asyncio.sleep(0.1)
        await w.aclose()
        await w.aclose()

    with caplog.at_level(logging.ERROR, logger="relaygate"):
        asyncio.run(main())
    assert reasons == ["generation 1", "generation 2", "config file changed"]
    (rec,) = [r for r in caplog.records if "config reload failed" in r.getMessage()]
    assert rec.getMessage() == "config reload failed (generation 1): RuntimeError: boom\\non generation 1"


def test_watcher_rejects_a_bad_interval(tmp_path: Path) -> None:
    async def noop(reason: str) -> None:
        return None

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="interval"):
            reload.Watcher(str(tmp_path), None, noop, interval=bad, watch_file=False)


# -- checking and requesting a reload ------------------------------------------------------------------


def test_load_checked_names_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/dep\n"
                   "      api_key: k\n      api_version: '2024-02-01'\n"
                   "relaygate_settings:\n  reload_poll_interval: 0\n")
    with pytest.raises(ConfigError) as info:
        reload.load_checked(str(cfg))
    text = str(info.value)
    assert "server.reload_poll_interval: expected a positive number of seconds" in text
    assert "model_list[0] (az):" in text and "api_base" in text
    assert reload.load_checked(None).source == "<embedded default>"


def test_request_reload_bumps_only_for_a_valid_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    with caplog.at_level(logging.INFO, logger="relaygate"):
        assert reload.request_reload(str(cfg), str(tmp_path)) == 1
        cfg.write_text(GOOD + "[server]\nreload_poll_interval = -1\n\x1b[31m = 1\n")
        assert reload.request_reload(str(cfg), str(tmp_path)) is None
        assert reload.request_reload(None, str(tmp_path)) is None
    assert reload.current(str(tmp_path)) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert "config reload: generation 1" in lines
    refused = [m for m in lines if m.startswith("config reload refused: ")]
    assert len(refused) == 1 and "invalid TOML" in refused[0] and "\x1b" not in refused[0]
    assert any("embedded default" in m for m in lines)


# -- Redis pub/sub fan-out ----------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_fan_out_reaches_other_hosts_and_survives_an_outage(redis_server: RedisServer,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    url = redis_server.url
    got: dict[str, list[str]] = {"a": [], "b": []}

    def recorder(name: str) -> Callable[[str], Awaitable[None]]:
        async def on_change(reason: str) -> None:
            got[name].append(reason)
            if reason == "redis" and len(got[name]) == 1 and name == "b":
                raise RuntimeError("first reload fails")
        return on_change

    async def subscribers() -> int:
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            return int((await client.pubsub_numsub(reload.RELOAD_CHANNEL))[0][1])
        finally:
            await client.aclose()

    async def main() -> None:
        tasks = [asyncio.create_task(reload.subscribe_reloads(url, recorder(n), origin=f"host-{n}", retry=0.05))
                 for n in ("a", "b")]
        try:
            deadline = time.monotonic() + 10
            while await subscribers() < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert await reload.publish_reload(url, 5, origin="host-a") == 2
            await _until(lambda: got["b"] == ["redis"])
            assert await reload.publish_reload(url, 6, origin="host-a") == 2
            await _until(lambda: got["b"] == ["redis", "redis"])  # still listening after a failed reload
            await asyncio.sleep(0.1)
            assert got["a"] == []  # its own host reloads through the generation file
            redis_server.stop()
            await asyncio.sleep(0.3)
            redis_server.start()
            await _until(lambda: got["a"] == ["redis reconnected"] and got["b"][-1] == "redis reconnected")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="relaygate"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records]
    assert "config reload failed (redis): RuntimeError: first reload fails" in lines
    assert sum("cannot listen on Redis pub/sub" in m for m in lines) == 2  # one warning per subscriber and outage


# -- SIGHUP to a real gateway ------------------------------------------------------------------------------


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.e2e
def test_sighup_checks_the_config_and_bumps_the_generation_without_respawning_workers() -> None:
    with tempfile.TemporaryDirectory(prefix="rg-hup-") as tmp:
        with start_gateway(GOOD, suffix=".toml", workers=2, env={"TMPDIR": tmp}) as gw:
            (runtime,) = [os.path.join(tmp, d) for d in os.listdir(tmp) if d.startswith("relaygate-")]
            cfg = gw.log_path.parent / "config.toml"
            main = gw.proc.pid
            workers = child_pids(main)
            assert len(workers) >= 2
            assert reload.current(runtime) == 0

            cfg.write_text(GOOD + '[[models]]\nname = "n"\nmodel = "mock/echo"\n')
            os.kill(main, signal.SIGHUP)
            _wait(lambda: reload.current(runtime) == 1, "generation 1")
            _wait(lambda: "config reload: generation 1" in gw.log(), "the reload log line")

            cfg.write_text(GOOD + "[server]\nreload_poll_interval = 0\n")
            os.kill(main, signal.SIGHUP)
            _wait(lambda: "config reload refused: " in gw.log(), "the refusal log line")
            time.sleep(0.5)
            # (the message must not fail itself: the runtime directory goes when the server process ends)
            assert reload.current(runtime) == 1, (os.path.isdir(runtime) and os.listdir(runtime), gw.proc.poll(),
                                                  gw.log())
            assert "server.reload_poll_interval: expected a positive number of seconds" in gw.log()

            assert gw.proc.poll() is None
            assert child_pids(main) == workers, gw.log()  # Granian did not respawn its workers
            assert "respawning" not in gw.log()
            with urllib.request.urlopen(gw.url + "/health/readiness", timeout=5) as r:
                assert r.status == 200


@pytest.mark.e2e
def test_a_worker_respawned_while_a_refused_edit_sits_on_disk_starts_from_the_accepted_config() -> None:
    """A worker killed (as the OOM killer would) while the config file holds an edit the server refuses: Granian
    respawns it, and it starts from the last accepted config instead of failing its start, which Granian's
    crash-loop rule turned into the whole server's exit. The file fixed, a SIGHUP reloads every worker."""
    with tempfile.TemporaryDirectory(prefix="rg-respawn-") as tmp:
        with start_gateway(GOOD, suffix=".toml", workers=2, env={"TMPDIR": tmp}) as gw:
            cfg = gw.log_path.parent / "config.toml"
            main = gw.proc.pid
            workers = child_pids(main)
            assert len(workers) == 2
            victim = min(workers)
            cfg.write_text(GOOD + "[server]\nreload_poll_interval = 0\n")  # refused by serve's checks
            os.kill(victim, signal.SIGKILL)
            _wait(lambda: "starting from the last config the server accepted" in gw.log(), "the fallback line")
            _wait(lambda: len(child_pids(main)) == 2 and victim not in child_pids(main), "the respawn")
            time.sleep(1.0)
            assert gw.proc.poll() is None, gw.log()
            assert "crash loop" not in gw.log()
            for _ in range(6):  # both workers answer (connections spread over them)
                body = b'{"model": "m", "messages": [{"role": "user", "content": "still here"}]}'
                req = urllib.request.Request(gw.url + "/v1/chat/completions", body,
                                             {"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200
            cfg.write_text(GOOD + '[[models]]\nname = "n"\nmodel = "mock/echo"\n')
            os.kill(main, signal.SIGHUP)
            _wait(lambda: "config reload: generation 1" in gw.log(), "the reload")
            body = b'{"model": "n", "messages": [{"role": "user", "content": "new model"}]}'

            def answered() -> bool:
                req = urllib.request.Request(gw.url + "/v1/chat/completions", body, {"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        return r.status == 200
                except urllib.error.HTTPError as exc:
                    exc.close()
                    return False

            _wait(lambda: all(answered() for _ in range(6)), "the new model on both workers")
