"""Two gateway hosts sharing one real Redis: a ``POST /config/reload`` on one makes the other reload its own
file (redis-py pub/sub, wired by ``Gateway.startup`` / ``Gateway.reload``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from relaygate.config import load_config
from relaygate.gateway import Gateway
from tests.asgi.conftest import call
from tests.conftest import RedisServer


def _config(redis_port: int, models: list[str]) -> str:
    body = [f'''[router]\nredis_host = "127.0.0.1"\nredis_port = {redis_port}\n''']
    body += [f'[[models]]\nname = "{m}"\nmodel = "mock/echo"\n' for m in models]
    return "\n".join(body)


@pytest.mark.redis
def test_a_reload_on_one_host_reaches_the_other(redis_server: RedisServer, tmp_path: Path) -> None:
    files, dirs = [], []
    for name in ("a", "b"):
        f = tmp_path / f"{name}.toml"
        f.write_text(_config(redis_server.port, ["m1"]))
        d = tmp_path / f"run-{name}"
        d.mkdir()
        files.append(f)
        dirs.append(d)

    async def main() -> None:
        gws = [Gateway(load_config(str(f)), config_path=str(f), runtime_dir=str(d)) for f, d in zip(files, dirs)]
        for gw in gws:
            await gw.startup()
        try:
            await asyncio.sleep(0.5)  # both subscribed
            for f in files:
                f.write_text(_config(redis_server.port, ["m1", "m2"]))
            r = await call(gws[0], "POST", "/config/reload")
            assert r.status == 200, r.body
            assert r.json()["generation"] == 1
            deadline = time.monotonic() + 10
            while "m2" not in gws[1].router.groups:
                assert time.monotonic() < deadline, "host b never reloaded"
                await asyncio.sleep(0.05)
            r = await call(gws[1], "POST", "/v1/chat/completions",
                           {"model": "m2", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status == 200, r.body
            # host a's own announcement did not make it reload a second time
            assert gws[0].runtime.generation == 1
        finally:
            for gw in gws:
                await gw.shutdown()

    asyncio.run(main())
