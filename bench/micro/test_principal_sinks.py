"""Micro-benchmarks of the principal resolver's fast path (vs the sync ``Authenticator``) and of the
completion record path (record construction, queue put, MetricsSink vs a direct ``Metrics.observe``).

    python -m pytest bench/micro/test_principal_sinks.py --benchmark-only --benchmark-enable -p no:cacheprovider

The per-request cost of put + drain inside a running event loop is measured by ``sinks_loop.py`` here.
"""

from __future__ import annotations

import asyncio
import collections

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from relaygate.auth import Authenticator, PrincipalResolver
from relaygate.config.model import Config, GeneralSettings, KeyConfig
from relaygate.metrics import Metrics
from relaygate.sinks import CompletionQueue, CompletionRecord, MetricsSink, Outcome

CFG = Config(keys=[KeyConfig(key=f"sk-user-{i}", key_alias=f"u{i}", rpm_limit=1000) for i in range(1000)],
             general=GeneralSettings(master_key="sk-master"))


def headers(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"localhost:4000"), (b"user-agent", b"OpenAI/Python 1.50.0"), (b"accept", b"application/json"),
            (b"content-type", b"application/json"), (b"content-length", b"212"),
            (b"authorization", b"Bearer " + key.encode())]


@pytest.mark.parametrize("who", ["master", "virtual"])
def test_authenticator_sync(benchmark: BenchmarkFixture, who: str) -> None:
    auth = Authenticator(CFG)
    h = headers("sk-master" if who == "master" else "sk-user-500")
    benchmark(auth.authenticate, h)


@pytest.mark.parametrize("who", ["master", "virtual"])
def test_resolver_cached(benchmark: BenchmarkFixture, who: str) -> None:
    r = PrincipalResolver.from_config(CFG)
    h = headers("sk-master" if who == "master" else "sk-user-500")
    asyncio.run(r.resolve(h))  # warm the cache
    p = benchmark(r.resolve_cached, h)
    assert p is not None


def _record() -> CompletionRecord:
    return CompletionRecord("call-1", "chat", False, "gpt-4o-mini", "gpt-4o-mini", "d1", "openai", "gpt-4o-mini",
                            "ab" * 32, "alias", "team", "user", 200, Outcome.OK, 12, 34, 0, 0, 0.012, None,
                            0.0004, 0.0, False, 0, 0, 1.7e9)


def test_record_positional(benchmark: BenchmarkFixture) -> None:
    benchmark(_record)


def test_record_keywords(benchmark: BenchmarkFixture) -> None:
    def kw() -> CompletionRecord:
        return CompletionRecord(
            call_id="call-1", route="chat", stream=False, model="gpt-4o-mini", model_group="gpt-4o-mini",
            deployment_id="d1", provider="openai", upstream_model="gpt-4o-mini", key_hash="ab" * 32,
            key_alias="alias", team_id="team", user_id="user", status=200, outcome=Outcome.OK, prompt_tokens=12,
            completion_tokens=34, cache_read_tokens=0, cache_write_tokens=0, latency=0.012, ttft=None,
            overhead=0.0004, cost=0.0, cache_hit=False, retries=0, fallbacks=0, start_time=1.7e9)
    benchmark(kw)


def _metrics() -> Metrics:
    return Metrics(groups={"gpt-4o-mini"}, deployments={"d1"})


def test_metrics_observe_direct(benchmark: BenchmarkFixture) -> None:
    m = _metrics()
    benchmark(m.observe, "gpt-4o-mini", "d1", 200, 0.012, 0.0004, 12, 34)


def test_metrics_sink_one_record(benchmark: BenchmarkFixture) -> None:
    sink, batch = MetricsSink(_metrics()), [_record()]
    benchmark(sink.handle, batch)


def test_queue_put_and_take_one(benchmark: BenchmarkFixture) -> None:
    """put() of one record plus the drain's take and delivery to one sink, without a loop's wake-up."""
    q = CompletionQueue()
    sink = MetricsSink(_metrics())
    q.add_sink(sink)
    rec = _record()

    def one() -> None:
        q.put(rec)
        q.drain_now()

    benchmark(one)
    assert isinstance(q._records, collections.deque)
