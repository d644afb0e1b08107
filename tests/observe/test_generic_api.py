"""generic_api: LiteLLM's configuration, batching, retries, bounds and shutdown against a real local server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact
from relaygate.observe.generic_api import GenericApiSink, make_generic_api, parse_headers, url_secrets
from relaygate.observe.standard import PAYLOAD_FIELDS
from relaygate.sinks.queue import CompletionQueue
from relaygate.sinks.record import Outcome
from tests.observe.collector_server import Collector, detail, record

BOTH = ObserveSettings(success_callbacks=("generic_api",), failure_callbacks=("generic_api",))
FAST: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 2.0, "close_timeout": 2.0}


class Events:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event: str, n: int) -> None:
        self.counts[event] += n


@pytest.fixture
def collector():
    with Collector() as c:
        yield c


def sink_for(c: Collector, settings: ObserveSettings = BOTH, env: dict[str, str] | None = None,
             events: Events | None = None, **options: Any) -> GenericApiSink:
    env = {"GENERIC_LOGGER_ENDPOINT": c.url + "/logs", **(env or {})}
    return make_generic_api(settings, env, events, **{**FAST, **options})


def records(n: int, **kw: Any) -> list:
    return [record(call_id=f"c{i}", **kw) for i in range(n)]


# -- configuration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("Authorization=Bearer abc,X-Team=t1", {"Authorization": "Bearer abc", "X-Team": "t1"}),
    (" a = b , c=d ", {"a": "b", "c": "d"}),
    ("k=v=w", {"k": "v=w"}),
    ("novalue,x=1", {"x": "1"}),
    ("=v", {}),
    ("", {}),
    (None, {}),
])
def test_parse_headers(raw: str | None, expected: dict[str, str]) -> None:
    assert parse_headers(raw) == expected


def test_url_secrets() -> None:
    assert url_secrets("https://user:pa55word@h.example/x?token=abc&b=2") == ["abc", "2", "pa55word"]
    assert url_secrets("https://h.example/x") == []


def test_endpoint_is_required() -> None:
    with pytest.raises(ConfigError) as e:
        make_generic_api(BOTH, {}, None)
    assert e.value.field == "GENERIC_LOGGER_ENDPOINT"
    with pytest.raises(ConfigError):
        make_generic_api(BOTH, {"GENERIC_LOGGER_ENDPOINT": "not a url"}, None)


def test_headers_and_settings() -> None:
    env = {"GENERIC_LOGGER_ENDPOINT": "https://logs.example.com/in?token=abc",
           "GENERIC_LOGGER_HEADERS": "Authorization=Bearer env-secret-token,X-A=1"}
    settings = ObserveSettings(success_callbacks=("generic_api",), callback_settings={
        "generic_api": {"headers": {"X-A": "2", "X-B": "3"}, "log_format": "ndjson"}})
    sink = make_generic_api(settings, env, None)
    assert sink.headers == {"Content-Type": "application/json", "Authorization": "Bearer env-secret-token",
                            "X-A": "2", "X-B": "3"}
    assert sink.log_format == "ndjson"
    assert (sink.success, sink.failure) == (True, False)
    assert sink.batch_size == 512 and sink.flush_interval == 5.0 and sink.max_pending == 10_000
    assert sink.target == "https://logs.example.com/in"  # what logs may show: no query
    sink.discard()
    other = make_generic_api(ObserveSettings(failure_callbacks=("generic_api",), callback_settings={
        "generic_api": {"endpoint": "http://override.example/x"}}), env, None)
    assert other.url == "http://override.example/x" and (other.success, other.failure) == (False, True)


def test_named_webhook(collector: Collector) -> None:
    events = Events()
    settings = ObserveSettings(success_callbacks=("my_hook",), callback_settings={
        "my_hook": {"callback_type": "generic_api", "endpoint": collector.url + "/hook"}})

    async def main() -> None:
        sink = make_generic_api(settings, {}, events, name="my_hook", **FAST)
        assert sink.name == "my_hook" and (sink.success, sink.failure) == (True, False)
        await sink.handle(records(2))
        await sink.aclose()

    asyncio.run(main())
    assert [p.path for p in collector.posts] == ["/hook"]
    assert events.counts == {"my_hook_sent": 2}


def test_batch_knobs_are_bounded() -> None:
    env = {"GENERIC_LOGGER_ENDPOINT": "http://x.example/", "DEFAULT_BATCH_SIZE": "999999",
           "DEFAULT_FLUSH_INTERVAL_SECONDS": "0"}
    sink = make_generic_api(BOTH, env, None)
    assert sink.batch_size == 10_000 and sink.flush_interval == 0.01
    with pytest.raises(ConfigError) as e:
        make_generic_api(BOTH, {**env, "DEFAULT_BATCH_SIZE": "lots"}, None)
    assert e.value.field == "DEFAULT_BATCH_SIZE"
    with pytest.raises(ConfigError):
        make_generic_api(BOTH, {**env, "DEFAULT_FLUSH_INTERVAL_SECONDS": "soon"}, None)


def test_bad_callback_settings() -> None:
    env = {"GENERIC_LOGGER_ENDPOINT": "http://x.example/"}
    for opts in ({"log_format": "xml"}, {"event_types": ["llm_api_sometimes"]}, {"headers": ["a"]}):
        with pytest.raises(ConfigError):
            make_generic_api(ObserveSettings(success_callbacks=("generic_api",),
                                             callback_settings={"generic_api": opts}), env, None)


def test_event_types_narrow() -> None:
    settings = ObserveSettings(success_callbacks=("generic_api",), failure_callbacks=("generic_api",),
                               callback_settings={"generic_api": {"event_types": ["llm_api_failure"]}})
    sink = make_generic_api(settings, {"GENERIC_LOGGER_ENDPOINT": "http://x.example/"}, None)
    assert (sink.success, sink.failure) == (False, True)


# -- sending ------------------------------------------------------------------------------------------------


def test_posts_a_json_list_of_standard_payloads(collector: Collector) -> None:
    events = Events()

    async def main() -> None:
        sink = sink_for(collector, env={"GENERIC_LOGGER_HEADERS": "Authorization=Bearer tok-123"}, events=events)
        d = detail()
        await sink.handle([record(call_id="a", extra={"observe": d}),
                           record(call_id="b", outcome=Outcome.ERROR, status=500, error_type="api_error")])
        await sink.aclose()

    asyncio.run(main())
    assert len(collector.posts) == 1
    post = collector.posts[0]
    assert post.path == "/logs"
    assert post.headers["authorization"] == "Bearer tok-123"
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert isinstance(body, list) and len(body) == 2
    assert all(set(p) == set(PAYLOAD_FIELDS) for p in body)
    assert [p["call_id"] for p in body] == ["a", "b"]
    assert [p["status"] for p in body] == ["success", "failure"]
    assert body[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert events.counts == {"generic_api_sent": 2}


def test_success_and_failure_lists_select_records(collector: Collector) -> None:
    async def main() -> None:
        sink = sink_for(collector, settings=ObserveSettings(success_callbacks=("generic_api",)))
        await sink.handle([record(call_id="ok"), record(call_id="bad", outcome=Outcome.ERROR, status=400),
                           record(call_id="gone", outcome=Outcome.CLIENT_GONE, status=499)])
        await sink.aclose()

    asyncio.run(main())
    assert [p["call_id"] for p in collector.entries()] == ["ok"]


def test_batches_by_size_then_interval(collector: Collector) -> None:
    async def main() -> float:
        sink = sink_for(collector, batch_size=3, flush_interval=0.3)
        t0 = time.monotonic()
        await sink.handle(records(7))
        while len(collector.entries()) < 7:
            await asyncio.sleep(0.01)
        took = time.monotonic() - t0
        await sink.aclose()
        return took

    took = asyncio.run(main())
    assert [len(p.entries()) for p in collector.posts] == [3, 3, 1]
    assert took >= 0.25  # the partial batch waited for the flush interval
    assert [e["call_id"] for e in collector.entries()] == [f"c{i}" for i in range(7)]


def test_partial_batch_waits_for_the_interval_and_aclose_flushes_it(collector: Collector) -> None:
    async def main() -> float:
        sink = sink_for(collector, batch_size=100, flush_interval=60.0)
        await sink.handle(records(1))
        await asyncio.sleep(0.1)  # the first one goes at once (nothing sent for an interval)
        await sink.handle([record(call_id="late1"), record(call_id="late2")])
        await asyncio.sleep(0.2)
        assert len(collector.entries()) == 1  # the rest waits for the interval ...
        t0 = time.monotonic()
        await sink.aclose()  # ... or for shutdown
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert [e["call_id"] for e in collector.entries()] == ["c0", "late1", "late2"]
    assert took < 10.0  # not the 60 s interval (a loaded CI pauses a second or more)


def test_records_after_an_idle_spell_are_sent(collector: Collector) -> None:
    async def main() -> None:
        sink = sink_for(collector, batch_size=100, flush_interval=0.2)
        await sink.handle(records(1))
        await asyncio.sleep(0.3)  # idle longer than the interval: the next record goes at once
        await sink.handle([record(call_id="after-idle")])
        await asyncio.sleep(0.05)
        await sink.handle([record(call_id="soon-after")])  # within the interval: waits for it
        for _ in range(100):
            if len(collector.entries()) == 3:
                break
            await asyncio.sleep(0.01)
        assert [len(p.entries()) for p in collector.posts] == [1, 1, 1]
        await sink.aclose()

    asyncio.run(main())


def test_ndjson_and_single_formats(collector: Collector) -> None:
    async def run(fmt: str) -> None:
        settings = ObserveSettings(success_callbacks=("generic_api",),
                                   callback_settings={"generic_api": {"log_format": fmt}})
        sink = sink_for(collector, settings=settings)
        await sink.handle(records(3))
        await sink.aclose()

    asyncio.run(run("ndjson"))
    assert len(collector.posts) == 1
    lines = collector.posts[0].body.decode().split("\n")
    assert len(lines) == 3 and all(line.startswith("{") for line in lines)
    collector.posts.clear()
    asyncio.run(run("single"))
    assert len(collector.posts) == 3
    assert [p.json()["call_id"] for p in collector.posts] == ["c0", "c1", "c2"]


def test_retry_then_recover_loses_nothing(collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    collector.fail_next(3, 500)

    async def main() -> None:
        sink = sink_for(collector, events=events, batch_size=5, flush_interval=0.01, max_attempts=6)
        await sink.handle(records(5))
        await asyncio.sleep(0.02)
        # more records while the endpoint is failing: they wait in the bounded pending list
        await sink.handle([record(call_id=f"d{i}") for i in range(4)])
        while len(collector.entries()) < 9:
            await asyncio.sleep(0.01)
        await sink.aclose()
        assert sink.dropped == 0

    with caplog.at_level(logging.INFO, logger="relaygate.observe"):
        asyncio.run(main())
    ids = [e["call_id"] for e in collector.entries()]
    assert sorted(ids) == sorted([f"c{i}" for i in range(5)] + [f"d{i}" for i in range(4)])
    assert len(set(ids)) == 9  # nothing twice
    assert events.counts["generic_api_send_failed"] == 3
    assert events.counts["generic_api_sent"] == 9
    assert "generic_api_dropped" not in events.counts
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_429_and_connection_errors_are_retried(collector: Collector) -> None:
    collector.fail_next(1, 429, headers={"Retry-After": "0"})
    collector.fail_next(1, 503)

    async def main() -> None:
        sink = sink_for(collector, max_attempts=5)
        await sink.handle(records(2))
        await sink.aclose()

    asyncio.run(main())
    assert len(collector.entries()) == 2
    assert collector.requests == 3


def test_refused_batches_are_dropped_without_retry(collector: Collector) -> None:
    events = Events()
    collector.fail_next(1, 400, body=b'{"error": "bad payload"}')

    async def main() -> GenericApiSink:
        sink = sink_for(collector, events=events, max_attempts=5)
        await sink.handle(records(3))
        await sink.aclose()
        return sink

    sink = asyncio.run(main())
    assert collector.requests == 1
    assert sink.dropped == 3
    assert events.counts["generic_api_dropped"] == 3


def test_gives_up_after_max_attempts_and_logs_once(collector: Collector,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    collector.fail_next(100, 500)

    async def main() -> GenericApiSink:
        sink = sink_for(collector, events=events, max_attempts=2, batch_size=1, flush_interval=0.0)
        await sink.handle(records(4))
        while sink.dropped < 4:
            await asyncio.sleep(0.01)
        await sink.aclose()
        return sink

    with caplog.at_level(logging.WARNING, logger="relaygate.observe"):
        sink = asyncio.run(main())
    assert collector.requests == 8  # 4 batches x 2 attempts
    assert events.counts["generic_api_dropped"] == 4
    assert events.counts["generic_api_send_failed"] == 8
    drop_lines = [r for r in caplog.records if "dropped" in r.getMessage()]
    # one line when the first was dropped, one summary at close: never one per drop
    assert len(drop_lines) == 2
    assert "(4 in total)" in drop_lines[-1].getMessage()
    assert sink.sent == 0


def test_unreachable_endpoint_is_retried_then_dropped() -> None:
    with Collector() as c:
        url = c.url  # a port that was just free: nothing listens there after stop
    events = Events()

    async def main() -> GenericApiSink:
        sink = make_generic_api(BOTH, {"GENERIC_LOGGER_ENDPOINT": url}, events, **{**FAST, "max_attempts": 3})
        await sink.handle(records(2))
        await sink.aclose()
        return sink

    sink = asyncio.run(main())
    assert sink.dropped == 2 and sink.failures == 3
    assert events.counts["generic_api_dropped"] == 2


def test_hanging_endpoint_is_bounded(collector: Collector) -> None:
    events = Events()
    collector.hang()

    async def main() -> tuple[float, float, GenericApiSink]:
        sink = sink_for(collector, events=events, timeout=0.2, max_attempts=2, close_timeout=5.0)
        t0 = time.monotonic()
        await sink.handle(records(3))
        handled = time.monotonic() - t0
        while sink.dropped < 3:
            await asyncio.sleep(0.01)
        gave_up = time.monotonic() - t0
        await sink.aclose()
        return handled, gave_up, sink

    handled, gave_up, sink = asyncio.run(main())
    assert handled < 0.05  # handle never waits on the endpoint
    assert 0.35 <= gave_up < 2.0  # two attempts of at most 0.2 s each, then dropped
    assert events.counts["generic_api_dropped"] == 3
    assert sink.sent == 0


def test_aclose_is_bounded_when_the_endpoint_hangs(collector: Collector) -> None:
    events = Events()
    collector.hang()

    async def main() -> tuple[float, GenericApiSink]:
        sink = sink_for(collector, events=events, timeout=30.0, close_timeout=0.3, batch_size=2)
        await sink.handle(records(5))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await sink.aclose()
        return time.monotonic() - t0, sink

    took, sink = asyncio.run(main())
    assert took < 10.0  # the 0.3 s close bound, not the 30 s timeout
    assert sink.dropped == 5  # the batch in flight and the ones waiting
    assert events.counts["generic_api_dropped"] == 5


def test_pending_list_is_bounded(collector: Collector) -> None:
    events = Events()
    collector.hang()

    async def main() -> GenericApiSink:
        sink = sink_for(collector, events=events, timeout=30.0, close_timeout=0.2, max_pending=5, batch_size=2)
        await sink.handle(records(2))
        await asyncio.sleep(0.05)  # that batch is in flight, held by the server
        for i in range(5):
            await sink.handle([record(call_id=f"x{i}-{j}") for j in range(4)])
        assert len(sink.pending) == 5
        await sink.aclose()
        return sink

    sink = asyncio.run(main())
    assert sink.dropped == 22  # 15 over the bound, then 5 waiting and 2 in flight at close
    assert events.counts["generic_api_dropped"] == 22


def test_handle_after_close_counts_drops(collector: Collector) -> None:
    events = Events()

    async def main() -> None:
        sink = sink_for(collector, events=events)
        await sink.aclose()
        await sink.handle(records(2))

    asyncio.run(main())
    assert events.counts["generic_api_dropped"] == 2
    assert collector.requests == 0


def test_secrets_never_logged(collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-webhook-secret-0123456789"
    collector.fail_next(2, 500, body=f'{{"error": "bad token {secret}"}}'.encode())

    async def main() -> None:
        env = {"GENERIC_LOGGER_ENDPOINT": collector.url + f"/logs?key={secret}",
               "GENERIC_LOGGER_HEADERS": f"Authorization={secret}"}
        sink = make_generic_api(BOTH, env, None, **{**FAST, "max_attempts": 2, "log_interval": 0.0})
        await sink.handle(records(1))
        await sink.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("relaygate")]
    assert ours
    assert not any(secret in line for line in ours)
    assert any("[redacted]" in line for line in ours)
    # httpx logs each request's URL itself: the gateway's formatters redact every line, and the URL's
    # query value is a registered secret
    assert secret not in redact(f"POST {collector.url}/logs?key={secret}")


def test_through_the_completion_queue(collector: Collector) -> None:
    events = Events()

    async def main() -> None:
        q = CompletionQueue(on_event=events)
        q.add_sink(sink_for(collector, events=events, batch_size=50, flush_interval=0.05), buffer=1000)
        q.start()
        for r in records(120):
            q.put(r)
        await asyncio.sleep(0.01)
        await q.aclose(timeout=5.0)

    asyncio.run(main())
    assert sorted(e["call_id"] for e in collector.entries()) == sorted(f"c{i}" for i in range(120))
    assert events.counts["generic_api_sent"] == 120
