"""Router end to end: real Granian gateway processes, real mock upstreams failing on command, real Redis.

Covers the issue's "done when": a LiteLLM config with one failing and one slow deployment next to a fast
one, plus a fallback group, serves a bounded run without a client-visible error and prefers the fast
deployment; limits answer 429 in LiteLLM's wording with headers; an rpm limit holds across two workers
through Redis; Redis can die and come back mid-run.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from bench.procs import start_mock
from tests.conftest import start_gateway
from tests.e2e.conftest_router import MASTER, blast, config, deployment, redis_cmd, share

pytestmark = pytest.mark.e2e


def test_failing_slow_fast_and_fallback_serve_everything() -> None:
    with start_mock(name="bad", fault_500=1.0) as bad, start_mock(name="slow", latency_ms=80) as slow, \
            start_mock(name="fast", latency_ms=3) as fast, start_mock(name="backup", latency_ms=3) as backup:
        cfg = config(
            [deployment("gpt", "bad", bad.openai_base), deployment("gpt", "slow", slow.openai_base),
             deployment("gpt", "fast", fast.openai_base), deployment("gpt-backup", "backup", backup.openai_base)],
            router="  routing_strategy: latency-based-routing\n  num_retries: 2\n  allowed_fails: 1\n"
                   "  cooldown_time: 2\n  fallbacks: [{\"gpt\": [\"gpt-backup\"]}]")
        with start_gateway(cfg) as gw:
            replies = blast(gw.url, "gpt", 500, concurrency=16)
            errors = [r for r in replies if r.status != 200]
            assert not errors, errors[:3]
            got = share(replies)
            assert got.get("fast", 0) > 0.6 * len(replies), got
            assert got.get("fast", 0) > 3 * got.get("slow", 0), got
            assert "bad" not in got
            # every failure of `bad` was answered by a retry, and cooldown kept it mostly out of rotation
            assert bad.stats()["requests"] < 60, bad.stats()
            # the whole group failing goes to the fallback group
            fast.set_config(fault_500=1.0)
            slow.set_config(fault_500=1.0)
            replies = blast(gw.url, "gpt", 40, concurrency=4)
            assert [r.status for r in replies] == [200] * 40
            got = share(replies)
            assert got == {"backup": 40}, got
            assert {r.headers["x-litellm-model-group"] for r in replies} == {"gpt-backup"}
            assert all(int(r.headers["x-litellm-attempted-fallbacks"]) <= 1 for r in replies)


def test_cooldown_then_recovery() -> None:
    with start_mock(name="a") as a, start_mock(name="b") as b:
        cfg = config([deployment("g", "a", a.openai_base), deployment("g", "b", b.openai_base)],
                     router="  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 1")
        with start_gateway(cfg) as gw:
            a.set_config(fault_503=1.0, retry_after=0)
            replies = blast(gw.url, "g", 40, concurrency=1)
            assert [r.status for r in replies] == [200] * 40
            assert share(replies) == {"b": 40}
            assert a.stats()["requests"] <= 3  # cooled after its first failure, retried once a second
            a.set_config(fault_503=0.0)
            time.sleep(1.2)
            replies = blast(gw.url, "g", 60, concurrency=1)
            assert [r.status for r in replies] == [200] * 60
            assert share(replies).get("a", 0) > 10  # back in rotation


def test_limits_answer_429_with_headers() -> None:
    with start_mock(name="up") as up:
        cfg = config([deployment("g", "d1", up.openai_base, rpm=5), deployment("other", "o1", up.openai_base)],
                     extra="relaygate_keys:\n  - key: sk-team-key\n    rpm_limit: 3\n    models: [g]\n")
        with start_gateway(cfg) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-team-key", max_retries=0)
            master = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)
            msgs: Any = [{"role": "user", "content": "hi"}]
            for i in range(3):
                raw = client.chat.completions.with_raw_response.create(model="g", messages=msgs)
                assert raw.headers["x-ratelimit-limit-requests"] == "3"
                assert raw.headers["x-ratelimit-remaining-requests"] == str(2 - i)
                assert "x-ratelimit-reset-requests" in raw.headers
            with pytest.raises(openai.RateLimitError) as ei:
                client.chat.completions.create(model="g", messages=msgs)
            err = ei.value
            assert "Crossed TPM / RPM / Max Parallel Request Limit" in err.message
            assert int(err.response.headers["retry-after"]) >= 1
            with pytest.raises(openai.AuthenticationError) as ai:
                client.chat.completions.create(model="other", messages=msgs)
            assert ai.value.status_code == 401
            assert "key not allowed to access model" in ai.value.message
            # the master key is not limited by the key's bucket, but by the deployment's rpm=5
            statuses = []
            for _ in range(4):
                try:
                    master.chat.completions.create(model="g", messages=msgs)
                    statuses.append(200)
                except openai.RateLimitError as exc:
                    statuses.append(429)
                    assert "No deployments available for selected model" in exc.message
                    assert int(exc.response.headers["retry-after"]) >= 1
            assert statuses == [200, 200, 429, 429]
            client.close()
            master.close()


@pytest.mark.redis
def test_rpm_across_two_workers_through_redis(redis_server: Any) -> None:
    limit = 60
    with start_mock(name="up") as up:
        cfg = config([deployment("g", "d1", up.openai_base, rpm=limit)],
                     router=f"  redis_host: 127.0.0.1\n  redis_port: {redis_server.port}")
        with start_gateway(cfg, workers=2) as gw:
            t0 = time.monotonic()
            replies = blast(gw.url, "g", 3 * limit, concurrency=12, fresh_connections=True)
            elapsed = time.monotonic() - t0
            ok = sum(r.status == 200 for r in replies)
            print(f"rpm {limit} across 2 workers: admitted {ok} of {len(replies)} in {elapsed:.2f}s")
            limited = [r for r in replies if r.status == 429]
            assert ok + len(limited) == len(replies)
            # a token bucket admits its burst (limit) plus the refill during the run (limit/60 per second),
            # never more; leases (at most max(1, 5% of the limit) per worker) may leave up to
            # workers * lease units unspent in the other worker (relaygate.core.ratelimit's tolerance)
            lease = max(1, int(limit * 0.05))
            assert limit - 2 * lease <= ok <= limit + limit / 60.0 * elapsed + 1, (ok, elapsed)
            assert all(b"No deployments available" in r.body for r in limited)
            assert up.stats()["requests"] == ok
            log = gw.log()
            assert "unavailable" not in log


@pytest.mark.redis
def test_redis_killed_and_restarted_mid_run(redis_server: Any) -> None:
    with start_mock(name="up") as up:
        cfg = config([deployment("g", "d1", up.openai_base, rpm=100000)],
                     router=f"  redis_url: redis://127.0.0.1:{redis_server.port}/0\n  redis_timeout: 0.3")
        with start_gateway(cfg, workers=1) as gw:
            assert [r.status for r in blast(gw.url, "g", 20, concurrency=4)] == [200] * 20
            assert redis_cmd(redis_server.port, "EXISTS", "{relaygate}:d:d1:rpm") == 1
            redis_server.stop()
            # enough requests to outrun the worker's lease (~0.5 s of its traffic), so the limiter must ask
            # Redis and find it gone
            replies = blast(gw.url, "g", 160, concurrency=4)
            assert [r.status for r in replies] == [200] * 160  # in-process limits meanwhile
            redis_server.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                blast(gw.url, "g", 2, concurrency=1)
                if redis_cmd(redis_server.port, "EXISTS", "{relaygate}:d:d1:rpm") == 1:
                    break
                time.sleep(0.2)
            assert redis_cmd(redis_server.port, "EXISTS", "{relaygate}:d:d1:rpm") == 1  # shared again
            log = gw.log()
            # each outage is logged once, and each is followed by the line saying Redis is back
            assert log.count("unavailable") >= 1 and log.count("unavailable") == log.count("shared limits restored"), log
            metrics = blast(gw.url, "g", 1)  # still serving
            assert metrics[0].status == 200


def test_stream_broken_mid_way_counts_towards_cooldown() -> None:
    """A stream that breaks after its first bytes is not retried, but it is the deployment's failure."""
    with start_mock(name="cut", fault_cut=1.0, chunks=20) as cut, start_mock(name="ok") as ok:
        cfg = config([deployment("g", "cut", cut.openai_base, order=1), deployment("g", "ok", ok.openai_base, order=2)],
                     router="  routing_strategy: simple-shuffle\n  allowed_fails: 0\n  cooldown_time: 60")
        with start_gateway(cfg) as gw:
            first = blast(gw.url, "g", 1, concurrency=1, stream=True)[0]
            assert first.status == 200 and first.headers["x-litellm-model-id"] == "cut"
            assert b'"error"' in first.body and first.body.endswith(b"data: [DONE]\n\n")
            after = blast(gw.url, "g", 10, concurrency=2, stream=True)
            assert share(after) == {"ok": 10}  # `cut` is cooling down
            assert all(r.body.endswith(b"data: [DONE]\n\n") and b'"error"' not in r.body for r in after)


def test_default_cooldown_rules() -> None:
    """LiteLLM's default rules (no `allowed_fails`): a 503 deployment is cooled only once failures are more
    than half of at least 5 requests this minute, and then for its own `cooldown_time`; a 429 cools at once
    for the upstream's `Retry-After`."""
    with start_mock(name="down", fault_503=1.0, retry_after=0) as down, \
            start_mock(name="limited", fault_429=1.0, retry_after=2) as limited, start_mock(name="ok") as ok:
        cfg = config([deployment("g", "down", down.openai_base, order=1, cooldown_time=60),
                      deployment("g", "limited", limited.openai_base, order=2),
                      deployment("g", "ok", ok.openai_base, order=3)],
                     router="  num_retries: 2\n  cooldown_time: 1")
        with start_gateway(cfg) as gw:
            replies = blast(gw.url, "g", 20, concurrency=1)
            assert [r.status for r in replies] == [200] * 20 and share(replies) == {"ok": 20}
            assert down.stats()["requests"] == 5  # 5 of 5 failed: cooled (one worker, one minute)
            assert limited.stats()["requests"] == 1  # its 429 cooled it at once, for 2 s
            time.sleep(2.2)  # past the 429's Retry-After and the router's cooldown_time, not `down`'s own
            replies = blast(gw.url, "g", 5, concurrency=1)
            assert share(replies) == {"ok": 5}
            assert down.stats()["requests"] == 5 and limited.stats()["requests"] == 2
