"""Issue 13, "Must hold": database slow or down. A real ``relaygate serve`` on a PostgreSQL cluster of its
own, under load from a client for the whole window:

- the server is stopped (``pg_ctl stop -m fast``) for 30 s: every request is still answered 200, the
  spend rows wait in the sink's bounded buffer (retried with backoff) and are all written when the server
  is back (rows == requests; counters equal their rows' sums);
- the server is paused (SIGSTOP: connections open, nothing answers) for 5 s: the same, the writes that
  were waiting complete when it resumes;
- with a tiny ``general_settings.spend_logs_buffer`` the bound is exceeded while the server is down: the
  rows past the bound are lost, and only those: rows written + lost == requests, the number lost is
  ``relaygate_events_total{event="sink_dropped:spend"}`` in ``/metrics`` and in the one line logged when
  the sink has caught up (besides the warning at the first drop)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from bench.procs import start_mock
from relaygate.store import open_store
from tests.conftest import GatewayProc, child_pids, start_gateway
from tests.pg import PostgresServer, postgres_server
from tests.spend.helpers import check_counters
from tests.spend.test_spend_outage import start, stop

pytestmark = pytest.mark.e2e

MASTER = "sk-spend-outage-master"
OUTAGE = 30.0


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this module's own: stopping it must not disturb the session's server."""
    gen = postgres_server.__wrapped__()  # type: ignore[attr-defined]
    server = next(gen)
    try:
        yield server
    finally:
        try:
            start(server)  # the fixture's teardown stops it: it must be running (or at least not half-way)
        except Exception:
            pass
        for _ in gen:
            pass


def config(upstream: str, db: str, extra: str = "") -> str:
    return f"""model_list:
  - model_name: chat
    litellm_params: {{model: openai/gpt-x, api_key: sk-up, api_base: "{upstream}/v1",
                      input_cost_per_token: 0.000000137, output_cost_per_token: 0.000000411}}
general_settings:
  master_key: {MASTER}
  database_url: {db}
  allow_requests_on_db_unavailable: true
{extra}"""


class Load:
    """Requests from a thread of its own until stopped: ``concurrency`` clients, each pausing ``pause`` s
    between requests; keys taken in turn."""

    def __init__(self, url: str, keys: list[str], concurrency: int = 4, pause: float = 0.01) -> None:
        self.url, self.keys, self.concurrency, self.pause = url, keys, concurrency, pause
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _main(self) -> None:
        async with aiohttp.ClientSession(self.url, timeout=aiohttp.ClientTimeout(total=20)) as session:
            async def client(n: int) -> None:
                i = n
                while not self._stop.is_set():
                    key = self.keys[i % len(self.keys)]
                    i += self.concurrency
                    body = {"model": "chat", "messages": [{"role": "user", "content": f"hello {i}"}],
                            "stream": i % 3 == 0, "metadata": {"tags": ["outage"]}}
                    self.sent += 1
                    try:
                        async with session.post("/v1/chat/completions", json=body,
                                                headers={"authorization": f"Bearer {key}"}) as r:
                            text = await r.read()
                            self.statuses[r.status] += 1
                            if r.status != 200 and len(self.errors) < 5:
                                self.errors.append(text.decode(errors="replace")[:300])
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        self.statuses[0] += 1
                        self.errors.append(repr(exc))
                    await asyncio.sleep(self.pause)

            await asyncio.gather(*(client(n) for n in range(self.concurrency)))


def api(gw: GatewayProc, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = httpx.request(method, gw.url + path, json=body, headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json() if path != "/metrics" else r.text


def event(gw: GatewayProc, name: str) -> int:
    m = re.search(rf'^relaygate_events_total{{event="{re.escape(name)}"}} (\d+)$', api(gw, "GET", "/metrics"), re.M)
    return int(m.group(1)) if m else 0


async def rows(url: str, expected: int, timeout: float) -> int:
    """Poll until ``expected`` rows are written (or time runs out); the count."""
    deadline = time.monotonic() + timeout
    store = await open_store(url)
    try:
        while True:
            async with store._read() as c:
                n = int((await c.fetch("SELECT COUNT(*) AS n FROM rg_spend_logs", []))[0]["n"])
            if n >= expected or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.25)
    finally:
        await store.close()


async def exact(url: str) -> dict[tuple[str, str], int]:
    store = await open_store(url)
    try:
        return await check_counters(store)
    finally:
        await store.close()


def test_postgres_down_30s_under_load_serving_continues_no_row_lost(own_postgres: PostgresServer) -> None:
    db = own_postgres.new_database()
    with start_mock(name="up", chunks=3, seed=3) as mock, start_gateway(config(mock.url, db)) as gw:
        keys = [api(gw, "POST", "/key/generate", {"key_alias": f"o{i}", "user_id": f"u{i}"})["key"] for i in range(3)]
        with Load(gw.url, [*keys, MASTER]) as load:
            time.sleep(2.0)
            before = load.sent
            t0 = time.monotonic()
            stop(own_postgres)
            stopped_at = time.monotonic()
            time.sleep(OUTAGE)
            written_before = event(gw, "spend_rows_written")  # the rest waits in the buffer
            start(own_postgres)
            down = time.monotonic() - stopped_at
            during = load.sent - before
            time.sleep(2.0)
        sent = sum(load.statuses.values())
        assert load.statuses == Counter({200: sent}), (load.statuses, load.errors)
        assert during > 0
        written = asyncio.run(rows(db, sent, timeout=60))
        failed_writes = event(gw, "spend_write_failed")
        assert written == sent, f"{written} rows for {sent} requests"
        assert written - written_before >= during  # buffered while down, written when back
        assert failed_writes >= 2, failed_writes  # it was down, and the sink knew
        assert event(gw, "sink_dropped:spend") == 0
        deadline = time.monotonic() + 10
        while event(gw, "spend_rows_written") != sent and time.monotonic() < deadline:
            time.sleep(0.2)  # /metrics is at most a flush interval old
        assert event(gw, "spend_rows_written") == sent  # key generation writes no spend row
        sums = asyncio.run(exact(db))
        assert sums[("tag", "outage")] == sums[("global", "")] > 0
        log = gw.log()
        assert "spend sink: database back" in log, log[-3000:]
        print({"requests": sent, "during_outage": during, "rows": written, "outage_s": round(down, 1),
               "buffered_then_written": written - written_before,
               "failed_writes": failed_writes, "stopped_after_s": round(stopped_at - t0, 2)})


def test_buffer_bound_exceeded_while_down_losses_counted_and_logged(own_postgres: PostgresServer) -> None:
    db = own_postgres.new_database()
    bound = 200
    extra = f"  spend_logs_buffer: {bound}\n"
    with start_mock(name="up", chunks=2, seed=4) as mock, start_gateway(config(mock.url, db, extra)) as gw:
        with Load(gw.url, [MASTER], concurrency=4, pause=0.005) as load:
            time.sleep(1.0)
            stop(own_postgres)
            at_stop = load.sent
            deadline = time.monotonic() + 20
            while load.sent - at_stop < 4 * bound and time.monotonic() < deadline:  # well past the bound
                time.sleep(0.1)
        # the load ends while the server is down: every row written once it is back was held during the outage
        # (requests answered after the restart would be written too, and were counted here before)
        time.sleep(2.5)  # /metrics is at most a flush interval (1 s) old
        before = event(gw, "spend_rows_written")  # written before the server went down
        start(own_postgres)
        time.sleep(1.0)
        sent = sum(load.statuses.values())
        assert load.statuses == Counter({200: sent}), (load.statuses, load.errors)
        deadline = time.monotonic() + 60
        while True:
            lost = event(gw, "sink_dropped:spend")
            written = asyncio.run(rows(db, sent - lost, timeout=1))
            if written + lost == sent or time.monotonic() > deadline:
                break
        assert lost > 0, "the bound was not exceeded"
        assert written + lost == sent, (written, lost, sent)
        # held while down: the buffer (the bound) and the one batch being retried (at most the bound too)
        assert written - before <= 2 * bound, (before, written)
        while event(gw, "spend_rows_written") != written and time.monotonic() < deadline:
            time.sleep(0.2)
        assert event(gw, "spend_rows_written") == written
        first = [x for x in gw.log().splitlines() if "sink spend is behind: dropped" in x]
        assert len(first) == 1, first  # the first drop, at once (the next are counted, not each logged)
        summary: list[str] = []
        while not summary and time.monotonic() < deadline:  # the total, once the sink has caught up
            summary = [x for x in gw.log().splitlines() if "record(s) dropped while it was behind" in x]
            time.sleep(0.1)
        assert len(summary) == 1 and f"sink spend: {lost} record(s) dropped" in summary[0], summary
        asyncio.run(exact(db))
        print({"requests": sent, "rows": written, "rows_before_outage": before, "lost": lost, "bound": bound, "log": summary[0][-110:]})


def test_postgres_paused_5s_under_load_rows_written_when_it_resumes(own_postgres: PostgresServer) -> None:
    db = own_postgres.new_database()
    postmaster = int((own_postgres.datadir / "postmaster.pid").read_text().split()[0])
    with start_mock(name="up", chunks=2, seed=5) as mock, start_gateway(config(mock.url, db)) as gw:
        with Load(gw.url, [MASTER]) as load:
            time.sleep(1.5)
            paused = [postmaster, *child_pids(postmaster)]
            try:
                for pid in paused:
                    os.kill(pid, signal.SIGSTOP)
                at = load.sent
                time.sleep(5.0)
                during = load.sent - at
            finally:
                for pid in paused:
                    os.kill(pid, signal.SIGCONT)
            time.sleep(1.0)
        sent = sum(load.statuses.values())
        assert load.statuses == Counter({200: sent}), (load.statuses, load.errors)
        assert during > 0
        written = asyncio.run(rows(db, sent, timeout=60))
        assert written == sent, f"{written} rows for {sent} requests"
        assert event(gw, "sink_dropped:spend") == 0
        asyncio.run(exact(db))
        print({"requests": sent, "during_pause": during, "rows": written})
