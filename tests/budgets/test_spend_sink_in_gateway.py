"""The spend sink as the gateway runs it.

``general_settings.proxy_batch_write_at`` (LiteLLM's name) spaces its writes: a short one writes a request's
row within it; a long one holds small batches until it ends, and shutdown writes them at once (it used to
wait out the interval, and drop what waited after 5 s). The key tags it reads for the rows are kept, and
read again as soon as the gateway hears that the key changed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from relaygate.store import Key, open_store
from relaygate.store.spend import read_spend_logs
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream


async def _rows(url: str) -> int:
    store = await open_store(url)
    try:
        return len(await read_spend_logs(store))
    finally:
        await store.close()


def test_short_interval_writes_soon_long_interval_waits_and_shutdown_writes(tmp_path: Path) -> None:
    async def main() -> None:
        short = f"sqlite:///{tmp_path / 'short.db'}"
        async with upstream() as up, gateway(short, up, general_settings={"proxy_batch_write_at": 0.2}) as gw:
            assert (await ask(gw, MASTER)).status == 200
            deadline = time.monotonic() + 5
            while await _rows(short) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await _rows(short) == 1

        long = f"sqlite:///{tmp_path / 'long.db'}"
        async with upstream() as up, gateway(long, up, general_settings={"proxy_batch_write_at": 3600}) as gw:
            assert gw.config.general.proxy_batch_write_at == 3600.0
            assert (await ask(gw, MASTER)).status == 200  # the sink's first batch is written at once
            deadline = time.monotonic() + 5
            while await _rows(long) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for _ in range(3):
                assert (await ask(gw, MASTER)).status == 200
            await asyncio.sleep(1.5)  # well past the default interval (1 s): held for the next hour
            assert await _rows(long) == 1
        # shutdown wrote what waited (before the fix it waited out the interval, gave up after 5 s and
        # dropped the three records)
        assert await _rows(long) == 4

    asyncio.run(main())


def test_a_changed_key_tags_its_next_rows_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        url = f"sqlite:///{tmp_path / 'tags.db'}"
        async with upstream() as up, gateway(url, up, general_settings={"proxy_batch_write_at": 0}) as gw:
            assert gw.store is not None and gw.spend_sink is not None
            h = token("sk-tagged")
            await gw.store.create_key(Key(token=h, tags=["before"]))
            assert (await ask(gw, "sk-tagged")).status == 200
            deadline = time.monotonic() + 5
            while await _rows(url) < 1 and time.monotonic() < deadline:  # the first row written (the sink reads
                await asyncio.sleep(0.05)                                 # a key's tags when it writes its rows)
            await gw.store.update_key(h, tags=["after"])
            gw.keys_changed([h])  # what the management API does after /key/update
            assert (await ask(gw, "sk-tagged")).status == 200
            deadline = time.monotonic() + 5
            while await _rows(url) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            store = await open_store(url)
            try:
                logs = sorted(await read_spend_logs(store, api_key=h), key=lambda r: r.start_time)
            finally:
                await store.close()
            assert [r.request_tags for r in logs] == [["before"], ["after"]]

    asyncio.run(main())
