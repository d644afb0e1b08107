"""LiteLLM's spend-log size rule (``maximum_spend_logs_size``, ``sinks.retention.run_size``) on SQLite and
PostgreSQL: over the limit, the oldest rows go down to the target, in batches, counters untouched; under it,
nothing; the sizes read as LiteLLM reads them; and through a real ``relaygate serve``."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.litellm_general import size_bytes
from relaygate.config.loader import load_config
from relaygate.config.model import GeneralSettings
from relaygate.sinks import retention
from relaygate.sinks.retention import Bounds, CleanupMetrics, SizeRule, size_rule
from relaygate.sinks.spend import SpendSink
from relaygate.store import Store
from relaygate.store.spend import read_spend_logs, spend_logs_storage
from tests.conftest import start_gateway
from tests.spend.conftest import run
from tests.spend.helpers import record
from tests.spend.test_retention import _fill, _totals


async def _starts(store: Store) -> list[float]:
    return sorted(r.start_time.timestamp() for r in await read_spend_logs(store, limit=10_000))


def test_over_the_limit_the_oldest_rows_go_down_to_the_target(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 300, 0)  # a second apart
        before_totals = await _totals(store)
        starts = await _starts(store)
        live, rows = await spend_logs_storage(store)
        assert rows == 300 and live > 0
        m = CleanupMetrics()
        heard: list[int] = []
        rule = SizeRule(limit=live * 8 // 10, target=live // 2)
        outcome = await retention.run_size(store, rule, m, heard.append, limits=Bounds(batch=40), pause=0.0)
        assert outcome == "completed"
        gone = -(-(live - rule.target) * rows // live)  # the rows estimated to hold the bytes over the target
        left = await _starts(store)
        assert len(left) == 300 - gone and sum(heard) == gone and all(n <= 40 for n in heard)
        assert left == starts[gone:]  # the oldest went, the newest stay
        assert await _totals(store) == before_totals  # rows only: the spend stays
        assert m.deleted == gone and m.runs == {"completed": 1} and m.remaining is None

    run(db_url, body)


def test_under_the_limit_nothing_is_deleted_or_counted(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 20, 0)
        live, _ = await spend_logs_storage(store)
        m = CleanupMetrics()
        assert await retention.run_size(store, SizeRule(live + 1, live), m) == "under_limit"
        assert len(await read_spend_logs(store)) == 20 and m.runs == {} and m.deleted == 0

    run(db_url, body)


def test_a_target_of_nothing_deletes_every_row_within_the_batch_cap(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 30, 0)
        m = CleanupMetrics()
        limits = Bounds(batch=10, max_batches=2)
        assert await retention.run_size(store, SizeRule(1, 1), m, limits=limits, pause=0.0) == "batch_cap_reached"
        assert len(await read_spend_logs(store)) == 10  # the cap holds the run; the next check goes on
        assert await retention.run_size(store, SizeRule(1, 1), m, limits=limits, pause=0.0) == "completed"
        assert await read_spend_logs(store) == [] and m.deleted == 30

    run(db_url, body)


def test_a_database_that_is_gone_ends_the_check_aborted(db_url: str) -> None:
    async def body(store: Store) -> None:
        await _fill(store, 5, 0)
        await store.close()
        m = CleanupMetrics()
        assert await retention.run_size(store, SizeRule(1, 1), m) == "aborted"
        assert m.runs == {"aborted": 1}

    run(db_url, body)


@pytest.mark.parametrize(("text", "size"), [("180GB", 180 * 1024**3), ("512 MiB", 512 * 1024**2),
                                             ("1.5TB", int(1.5 * 1024**4)), ("20gb", 20 * 1024**3), (4096, 4096),
                                             ("100", 100), ("8 KiB", 8192)])
def test_sizes_read_as_litellm_reads_them(text: object, size: int) -> None:
    assert size_bytes(text, "maximum_spend_logs_size") == size


@pytest.mark.parametrize("bad", ["lots", "-1GB", "0", "10 parsecs", "GB", True, ""])
def test_a_size_that_cannot_be_read_stops_the_start(bad: object, tmp_path: object) -> None:
    with pytest.raises(ValueError, match="maximum_spend_logs_size"):
        size_bytes(bad, "maximum_spend_logs_size")
    path = f"{tmp_path}/c.yaml"
    with open(path, "w") as f:
        f.write(f"model_list: []\ngeneral_settings:\n  maximum_spend_logs_size: {bad!r}\n")
    with pytest.raises(ConfigError, match="maximum_spend_logs_size"):
        load_config(path)


def test_the_rule_from_general_settings(caplog: pytest.LogCaptureFixture) -> None:
    assert size_rule(GeneralSettings()) is None
    assert size_rule(GeneralSettings(maximum_spend_logs_size="2GB")) == SizeRule(2 * 1024**3, 2 * 1024**3)
    assert size_rule(GeneralSettings(maximum_spend_logs_size="2GB", maximum_spend_logs_cleanup_target_size="1GB")) \
        == SizeRule(2 * 1024**3, 1024**3)
    with caplog.at_level(logging.WARNING, logger="relaygate.sinks"):  # as LiteLLM: the limit is the target instead
        assert size_rule(GeneralSettings(maximum_spend_logs_size="1GB",
                                         maximum_spend_logs_cleanup_target_size="2GB")) == SizeRule(1024**3, 1024**3)
    assert "must be below maximum_spend_logs_size" in caplog.text


def test_the_size_rule_through_the_gateway() -> None:
    master = "sk-size-master"
    config = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo, input_cost_per_token: 0.001, output_cost_per_token: 0.001}}
general_settings:
  master_key: {master}
  maximum_spend_logs_size: 48KB
  maximum_spend_logs_cleanup_target_size: 24KB
  maximum_spend_logs_size_check_interval: 1s
"""
    with start_gateway(config) as gw, \
            httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {master}"}) as c:
        ids = []
        for i in range(150):
            r = c.post("/v1/chat/completions", json={"model": "m", "messages": [
                {"role": "user", "content": f"request {i} " + "x" * 400}]})
            assert r.status_code == 200
            ids.append(r.headers["x-litellm-call-id"])
        deadline = time.monotonic() + 30
        while True:  # written within a second, then the rule's next check deletes the oldest
            scrape = c.get("/metrics").text
            deleted = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                          if line.startswith("litellm_spend_log_cleanup_rows_deleted_total{"))
            if deleted > 0:
                break
            assert time.monotonic() < deadline, scrape
            time.sleep(0.2)
        left = [row["request_id"] for row in c.get("/spend/logs").json()]
        assert 0 < len(left) < 150
        assert set(left) == set(ids[-len(left):])  # the newest stay
        assert 'litellm_spend_log_cleanup_runs_total{outcome="completed"}' in scrape


def test_the_measure_follows_the_live_rows_after_a_vacuum(db_url: str) -> None:
    """The files stay as large after a cleanup (space kept for reuse): the measure must not, or every check
    would find the table over its limit again. The rows written oldest first, as a gateway writes them (so the
    cleanup frees the heap's first pages, kept for reuse, rather than its last, which a VACUUM truncates)."""
    async def body(store: Store) -> None:
        sink = SpendSink(store, spacing=0.0)
        await sink.handle([record(i, cost=0.01, start=time.time() - 400 + i) for i in range(400)])
        full, _ = await spend_logs_storage(store)
        assert await retention.run_size(store, SizeRule(full // 2, full // 2), limits=Bounds(batch=100),
                                        pause=0.0) == "completed"
        if store.dialect == "postgres":
            async with store._read() as c:
                await c.execute("VACUUM rg_spend_logs", [])
        live, rows = await spend_logs_storage(store)
        assert rows == len(await read_spend_logs(store, limit=10_000)) < 400
        assert full * 0.3 < live < full * 0.7
        assert await retention.run_size(store, SizeRule(full * 3 // 4, full // 2), pause=0.0) == "under_limit"

    run(db_url, body)
