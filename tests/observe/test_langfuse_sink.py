"""LangfuseSink against a real local Langfuse stand-in: auth, retries, a hung server, per-key projects, close.

The server (``langfuse_server.py``) checks Basic auth and validates every event against Langfuse's
published schema, answering 207 per event as Langfuse does; an event it accepted passed that check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import Detail, LoggingTarget
from relaygate.observe.langfuse import IN_FLIGHT, LangfuseSink, make_langfuse
from relaygate.observe.langfuse_payload import Credentials
from relaygate.sinks.queue import CompletionQueue
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.observe.langfuse_server import LangfuseServer


def rec(i: int, **kw: Any) -> CompletionRecord:
    fields: dict[str, Any] = dict(
        call_id=f"call-{i}", route="chat", stream=False, model="m", model_group="m", deployment_id="d",
        provider="openai", upstream_model="gpt", key_hash=None, key_alias=None, team_id=None, user_id=None,
        status=200, outcome=Outcome.OK, prompt_tokens=1, completion_tokens=2, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=0.001, cache_hit=False, retries=0,
        fallbacks=0, start_time=time.time())
    fields.update(kw)
    return CompletionRecord(**fields)


def keyed(i: int, target: LoggingTarget, **kw: Any) -> CompletionRecord:
    d = Detail(trace_id=f"{i:032x}", span_id=f"{i:016x}", input={"messages": []}, output=None, logging=[target])
    return rec(i, extra={"observe": d}, **kw)


def creds(srv: LangfuseServer, secret: str | None = None) -> Credentials:
    return Credentials(srv.public_key, srv.secret_key if secret is None else secret, srv.url)


class Events:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event: str, n: int) -> None:
        self.counts[event] += n


def sink(default: Credentials | None, ev: Events, **kw: Any) -> LangfuseSink:
    kw.setdefault("flush_interval", 0.0)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    kw.setdefault("timeout", 2.0)
    return LangfuseSink(default, on_event=ev, **kw)


def calls(srv: LangfuseServer) -> list[str]:
    return sorted(e["body"]["id"] for e in srv.accepted if e["type"] == "generation-create")


def test_batch_is_accepted_by_the_schema_checking_server() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev)
            await s.handle([rec(i) for i in range(3)] + [rec(9, outcome=Outcome.ERROR, status=500)])
            await s.aclose()
        asyncio.run(main())
    assert srv.requests == [(207, 8)]
    assert calls(srv) == ["call-0", "call-1", "call-2", "call-9"]
    assert Counter(e["type"] for e in srv.accepted) == {"trace-create": 4, "generation-create": 4}
    assert ev.counts == {"langfuse_sent": 8}


def test_success_and_failure_callbacks_select_records() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev, success=False, failure=True)
            await s.handle([rec(0), rec(1, outcome=Outcome.STREAM_BROKEN, status=599), rec(2)])
            await s.aclose()
        asyncio.run(main())
    assert calls(srv) == ["call-1"]


def test_wrong_secret_is_401_counted_not_retried_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    ev = Events()
    with LangfuseServer() as srv, caplog.at_level(logging.WARNING, "relaygate.observe"):
        async def main() -> None:
            s = sink(creds(srv, secret="sk-lf-WRONG-s3cret"), ev)
            await s.handle([rec(0), rec(1)])
            await s.handle([rec(2)])
            await s.aclose()
        asyncio.run(main())
    assert [status for status, _ in srv.requests] == [401, 401]
    assert srv.accepted == []
    assert ev.counts == {"langfuse_dropped": 6}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once a minute, whatever the number of batches
    assert "401" in warnings[0] and "wrong public/secret key" in warnings[0] and "pk-lf-test" in warnings[0]
    assert "s3cret" not in caplog.text and "Basic" not in caplog.text


def test_500s_are_retried_with_backoff_and_nothing_is_lost() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        srv.fail_next = 2

        async def main() -> None:
            s = sink(creds(srv), ev)
            await s.handle([rec(i) for i in range(5)])
            await s.aclose()
        asyncio.run(main())
    assert [status for status, _ in srv.requests] == [500, 500, 207]
    assert calls(srv) == [f"call-{i}" for i in range(5)]
    assert ev.counts == {"langfuse_retry": 2, "langfuse_sent": 10}


def test_a_server_that_keeps_failing_is_given_up_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    ev = Events()
    with LangfuseServer() as srv, caplog.at_level(logging.WARNING, "relaygate.observe"):
        srv.fail_next = 1000
        srv.fail_status = 503

        async def main() -> None:
            s = sink(creds(srv), ev, max_attempts=3)
            await s.handle([rec(0), rec(1)])
            await s.handle([rec(2)])
            await s.aclose()
        asyncio.run(main())
    assert len(srv.requests) == 6
    assert ev.counts == {"langfuse_retry": 4, "langfuse_dropped": 6}
    gave_up = [r.getMessage() for r in caplog.records if "dropped after" in r.getMessage()]
    assert len(gave_up) == 1 and "HTTP 503" in gave_up[0]


def test_per_event_errors_of_a_207_are_counted_as_dropped(caplog: pytest.LogCaptureFixture) -> None:
    ev = Events()
    with LangfuseServer() as srv, caplog.at_level(logging.WARNING, "relaygate.observe"):
        srv.reject_types = {"trace-create"}

        async def main() -> None:
            s = sink(creds(srv), ev)
            await s.handle([rec(0), rec(1)])
            await s.aclose()
        asyncio.run(main())
    assert ev.counts == {"langfuse_sent": 2, "langfuse_dropped": 2}
    assert "rejected 2 of 4 event(s)" in caplog.text


def test_requests_are_split_by_max_events() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev, max_events=4)
            await s.handle([rec(i) for i in range(5)])
            await s.aclose()
        asyncio.run(main())
    assert sorted(srv.requests) == [(207, 2), (207, 4), (207, 4)]  # sent side by side: any order
    assert ev.counts == {"langfuse_sent": 10}


def test_per_key_credentials_send_to_the_keys_own_project() -> None:
    ev = Events()
    with LangfuseServer("pk-default", "sk-default") as a, LangfuseServer("pk-team", "sk-team") as b:
        target = LoggingTarget("langfuse", "success_and_failure", {
            "langfuse_public_key": "pk-team", "langfuse_secret_key": "sk-team", "langfuse_host": b.url})
        only_failures = LoggingTarget("langfuse", "failure", {
            "langfuse_public_key": "pk-team", "langfuse_secret_key": "sk-team", "langfuse_host": b.url})

        async def main() -> None:
            s = sink(creds(a), ev)
            await s.handle([rec(0), keyed(1, target), keyed(2, only_failures),
                            keyed(3, only_failures, outcome=Outcome.ERROR, status=400)])
            await s.aclose()
        asyncio.run(main())
    assert calls(a) == ["call-0"]
    assert calls(b) == ["call-1", "call-3"]


def test_per_key_target_without_keys_is_counted_as_dropped() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev)
            await s.handle([keyed(1, LoggingTarget("langfuse", callback_vars={"langfuse_host": srv.url})), rec(2)])
            await s.aclose()
        asyncio.run(main())
    assert calls(srv) == ["call-2"]
    assert ev.counts == {"langfuse_sent": 2, "langfuse_dropped": 2}


def test_per_key_clients_are_bounded() -> None:
    ev = Events()
    with LangfuseServer("pk-1", "sk-1") as b, LangfuseServer("pk-2", "sk-2") as c:
        targets = [LoggingTarget("langfuse", callback_vars={"langfuse_public_key": f"pk-{i}",
                                                            "langfuse_secret_key": f"sk-{i}", "langfuse_host": u})
                   for i, u in ((1, b.url), (2, c.url))]

        async def main() -> int:
            s = sink(None, ev, max_clients=1)
            await s.handle([keyed(1, targets[0]), keyed(2, targets[1])])
            await s.handle([keyed(3, targets[0])])
            n = len(s._projects)
            await s.aclose()
            return n
        assert asyncio.run(main()) == 1
    assert calls(b) == ["call-1", "call-3"] and calls(c) == ["call-2"]


def test_hung_server_never_blocks_the_caller_and_drops_are_bounded_and_counted() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        srv.hang()

        async def main() -> tuple[float, float, dict[str, int]]:
            q = CompletionQueue(delay=0, sink_buffer=50, on_event=ev)
            s = sink(creds(srv), ev, timeout=0.3, max_attempts=2)
            q.add_sink(s, batch_size=20)
            q.start()
            worst_put = 0.0
            worst_tick = 0.0
            for i in range(500):
                t0 = time.perf_counter()
                q.put(rec(i))
                worst_put = max(worst_put, time.perf_counter() - t0)
                if i % 50 == 0:
                    t1 = time.perf_counter()
                    await asyncio.sleep(0.01)
                    worst_tick = max(worst_tick, time.perf_counter() - t1 - 0.01)
            await asyncio.sleep(1.0)  # past two attempts of 0.3 s: the first batch is given up
            stats = q.stats()
            srv.release.set()
            await asyncio.sleep(0.1)
            q.put(rec(1000))
            await q.aclose(timeout=5.0)
            return worst_put, worst_tick, stats
        worst_put, worst_tick, stats = asyncio.run(main())
    # neither put() nor the loop ever waited on Langfuse (a wait would be the 0.3 s timeout at least)
    assert worst_put < 0.1 and worst_tick < 0.25
    assert stats["sink_buffered:langfuse"] <= 50  # the buffer stays bounded
    assert stats["sink_dropped:langfuse"] > 300
    assert ev.counts["sink_dropped:langfuse"] == stats["sink_dropped:langfuse"]
    assert ev.counts["langfuse_dropped"] > 0  # the batches that timed out were counted too
    assert "call-1000" in calls(srv)  # it recovers once Langfuse answers


def test_aclose_ends_the_batching_wait_and_flushes() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> float:
            s = sink(creds(srv), ev, flush_interval=30.0)
            await s.handle([rec(0)])  # the first batch goes at once
            pending = asyncio.ensure_future(s.handle([rec(1), rec(2)]))  # this one waits for more
            await asyncio.sleep(0.05)
            assert not pending.done() and len(srv.requests) == 1
            t0 = time.perf_counter()
            await s.aclose(timeout=5.0)
            await pending
            return time.perf_counter() - t0
        elapsed = asyncio.run(main())
    assert elapsed < 5.0
    assert calls(srv) == ["call-0", "call-1", "call-2"]


def test_hurry_ends_the_batching_wait() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev, flush_interval=30.0)
            await s.handle([rec(0)])
            pending = asyncio.ensure_future(s.handle([rec(1)]))
            await asyncio.sleep(0.05)
            s.hurry()
            await asyncio.wait_for(pending, 5.0)
            await s.aclose()
        asyncio.run(main())
    assert calls(srv) == ["call-0", "call-1"]


def test_queue_close_delivers_what_is_buffered() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            q = CompletionQueue(delay=0, on_event=ev)
            q.add_sink(sink(creds(srv), ev, flush_interval=0.3))
            q.start()
            for i in range(3):
                q.put(rec(i))
                await asyncio.sleep(0.02)
            await q.aclose(timeout=5.0)
        asyncio.run(main())
    assert calls(srv) == ["call-0", "call-1", "call-2"]


def test_connection_refused_is_retried_then_dropped() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        url = srv.url
    dead = Credentials("pk", "sk", url)  # the server is gone: nothing listens there any more

    async def main() -> None:
        s = sink(dead, ev, max_attempts=2)
        await s.handle([rec(0)])
        await s.aclose()
    asyncio.run(main())
    assert ev.counts == {"langfuse_retry": 1, "langfuse_dropped": 2}


# -- make_langfuse ----------------------------------------------------------------------------------

ENV = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk", "LANGFUSE_HOST": "https://lf.example/"}


def test_make_langfuse_only_when_configured() -> None:
    assert make_langfuse(ObserveSettings(success_callbacks=("otel",)), ENV, Events()) is None
    s = make_langfuse(ObserveSettings(success_callbacks=("langfuse",), langfuse_default_tags=("cache_hit",),
                                      redact_user_api_key_info=True),
                      {**ENV, "LANGFUSE_TRACING_ENVIRONMENT": "prod", "LANGFUSE_FLUSH_INTERVAL": "2"}, Events())
    assert s is not None and s.name == "langfuse"
    assert s.success and not s.failure
    assert s.default is not None and s.default.creds == Credentials("pk", "sk", "https://lf.example")
    assert s.options.default_tags == ("cache_hit",) and s.options.redact_key_info
    assert s.options.environment == "prod" and s.flush_interval == 2.0
    s.discard()


def test_make_langfuse_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_SECRET_KEY"):
        make_langfuse(ObserveSettings(failure_callbacks=("langfuse",)), {"LANGFUSE_PUBLIC_KEY": "pk"}, Events())


def test_batches_after_aclose_are_counted_not_sent() -> None:
    ev = Events()
    with LangfuseServer() as srv:
        async def main() -> None:
            s = sink(creds(srv), ev)
            await s.aclose()
            await s.handle([rec(0)])
        asyncio.run(main())
    assert srv.requests == [] and ev.counts == {"langfuse_dropped": 2}


def test_a_projects_requests_go_side_by_side_at_most_in_flight_at_once() -> None:
    """One request at a time, a Langfuse 100 ms away took ~2,000 events a second from a worker."""
    ev = Events()
    with LangfuseServer() as srv:
        srv.delay = 0.2

        async def main() -> None:
            s = sink(creds(srv), ev, max_events=2)
            await s.handle([rec(i) for i in range(12)])  # 24 events: 12 requests
            await s.aclose()
        asyncio.run(main())
    assert len(srv.requests) == 12 and calls(srv) == sorted(f"call-{i}" for i in range(12))
    assert 2 <= srv.max_in_flight <= IN_FLIGHT
    assert ev.counts == {"langfuse_sent": 24}


def test_batches_use_the_gateways_pool_and_a_proxy_from_the_environment_only_where_it_applies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy: the H1 pool, not httpx. ``HTTP_PROXY``: through the proxy (httpx); ``NO_PROXY`` naming
    the host: direct again."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def send(default: Credentials) -> tuple[bool, bool]:
        s = sink(default, Events())
        await s.handle([rec(0)])
        poster = s._poster
        assert poster is not None
        used = (poster._h1 is not None, poster._httpx is not None)
        await s.aclose()
        return used

    with LangfuseServer() as srv:
        assert asyncio.run(send(creds(srv))) == (True, False)
        assert srv.proxied == 0 and calls(srv) == ["call-0"] and srv.user_agents == {"relaygate-langfuse"}

    with LangfuseServer() as proxy:  # the stand-in answers a proxy's absolute-form requests too
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert asyncio.run(send(Credentials(proxy.public_key, proxy.secret_key, "http://langfuse.invalid"))) == (
            False, True)
        assert proxy.proxied == 1 and calls(proxy) == ["call-0"]

        with LangfuseServer() as srv:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
            assert asyncio.run(send(creds(srv))) == (True, False)
            assert srv.proxied == 0 and calls(srv) == ["call-0"] and proxy.proxied == 1


def test_an_https_langfuse_is_verified_and_a_private_ca_is_trusted_through_ssl_cert_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """TLS through the gateway's pool: an untrusted certificate is a failed send (counted, logged, never an
    exception out of the sink); ``SSL_CERT_FILE`` naming the CA, as with httpx, makes it trusted."""
    from tests.upstream.conftest import make_cert

    cert, key = make_cert(tmp_path)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with LangfuseServer(tls=(cert, key)) as srv:
        assert srv.url.startswith("https://")
        ev = Events()

        async def send(i: int) -> None:
            s = sink(creds(srv), ev, max_attempts=1)
            await s.handle([rec(i)])
            await s.aclose()

        with caplog.at_level(logging.WARNING, logger="relaygate.observe"):
            asyncio.run(send(0))
        assert ev.counts == {"langfuse_dropped": 2} and srv.accepted == []
        assert "certificate verify failed" in caplog.text
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        asyncio.run(send(1))
        assert calls(srv) == ["call-1"] and ev.counts == {"langfuse_dropped": 2, "langfuse_sent": 2}
