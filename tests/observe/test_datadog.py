"""datadog: LiteLLM's Datadog logs payload, env vars and intake protocol, against a real local intake."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.datadog import (
    DD_MAX_BATCH_SIZE,
    MAX_CONTENT_CHARS,
    TRUNCATED,
    DatadogSink,
    base_tags,
    make_datadog,
    truncate_content,
)
from relaygate.observe.standard import PAYLOAD_FIELDS
from relaygate.sinks.record import Outcome
from tests.observe.collector_server import Collector, Post, detail, record

BOTH = ObserveSettings(success_callbacks=("datadog",), failure_callbacks=("datadog",))
FAST: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 2.0, "close_timeout": 2.0}
KEY = "dd-api-key-0123456789abcdef"
DATADOG_PAYLOAD = {"ddsource", "ddtags", "hostname", "message", "service", "status"}
"""LiteLLM's ``DatadogPayload`` keys (litellm/types/integrations/datadog.py)."""


class Events:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event: str, n: int) -> None:
        self.counts[event] += n


@pytest.fixture
def collector():
    with Collector(status=202) as c:
        yield c


def env_for(c: Collector, **extra: str) -> dict[str, str]:
    return {"DD_API_KEY": KEY, "DD_SITE": "us5.datadoghq.com", "DD_BASE_URL": c.url, **extra}


def sink_for(c: Collector, settings: ObserveSettings = BOTH, events: Events | None = None,
             env: dict[str, str] | None = None, **options: Any) -> DatadogSink:
    return make_datadog(settings, env or env_for(c), events, **{**FAST, **options})


# -- configuration ------------------------------------------------------------------------------------------


def test_intake_urls() -> None:
    direct = make_datadog(BOTH, {"DD_API_KEY": KEY, "DD_SITE": "us5.datadoghq.com"}, None)
    assert direct.url == "https://http-intake.logs.us5.datadoghq.com/api/v2/logs"
    assert direct.headers["DD-API-KEY"] == KEY
    assert direct.batch_size == DD_MAX_BATCH_SIZE and direct.flush_interval == 5.0
    agent = make_datadog(BOTH, {"LITELLM_DD_AGENT_HOST": "dd-agent"}, None)
    assert agent.url == "http://dd-agent:10518/api/v2/logs"
    assert "DD-API-KEY" not in agent.headers  # optional with an agent
    agent = make_datadog(BOTH, {"LITELLM_DD_AGENT_HOST": "dd-agent", "LITELLM_DD_AGENT_PORT": "9000",
                                "DD_API_KEY": KEY}, None)
    assert agent.url == "http://dd-agent:9000/api/v2/logs" and agent.headers["DD-API-KEY"] == KEY
    based = make_datadog(BOTH, {"DD_API_KEY": KEY, "DD_BASE_URL": "http://127.0.0.1:1234/"}, None)
    assert based.url == "http://127.0.0.1:1234/api/v2/logs"
    assert KEY not in direct.target


def test_missing_credentials() -> None:
    with pytest.raises(ConfigError) as e:
        make_datadog(BOTH, {"DD_SITE": "datadoghq.com"}, None)
    assert e.value.field == "DD_API_KEY"
    assert KEY not in str(e.value)
    with pytest.raises(ConfigError) as e:
        make_datadog(BOTH, {"DD_API_KEY": KEY}, None)
    assert e.value.field == "DD_SITE"
    assert KEY not in str(e.value)


def test_batch_size_env() -> None:
    env = {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com"}
    assert make_datadog(BOTH, {**env, "DD_BATCH_SIZE": "50"}, None).batch_size == 50
    assert make_datadog(BOTH, {**env, "DD_BATCH_SIZE": "5000"}, None).batch_size == DD_MAX_BATCH_SIZE
    assert make_datadog(BOTH, {**env, "DD_BATCH_SIZE": "0"}, None).batch_size == 1
    with pytest.raises(ConfigError):
        make_datadog(BOTH, {**env, "DD_BATCH_SIZE": "many"}, None)


def test_base_tags_defaults_and_env() -> None:
    assert base_tags({}) == "env:unknown,service:litellm-server,version:unknown,HOSTNAME:,POD_NAME:unknown"
    env = {"DD_ENV": "prod", "DD_SERVICE": "gw", "DD_VERSION": "1.2", "HOSTNAME": "h1", "POD_NAME": "p1"}
    assert base_tags(env) == "env:prod,service:gw,version:1.2,HOSTNAME:h1,POD_NAME:p1"


# -- entries ------------------------------------------------------------------------------------------------


def test_entry_is_litellms_datadog_payload() -> None:
    env = {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com", "DD_SOURCE": "relay", "DD_SERVICE": "gw",
           "HOSTNAME": "host-1", "DD_ENV": "prod"}
    sink = make_datadog(BOTH, env, None)
    d = detail()
    ok = sink.entry(record(extra={"observe": d}))
    assert set(ok) == DATADOG_PAYLOAD
    assert ok["ddsource"] == "relay" and ok["service"] == "gw" and ok["hostname"] == "host-1"
    assert ok["status"] == "info"
    assert ok["ddtags"] == ("env:prod,service:gw,version:unknown,HOSTNAME:host-1,POD_NAME:unknown,"
                            "request_tag:t1,request_tag:t2,team:team-alias")
    message = json.loads(ok["message"])
    assert set(message) == set(PAYLOAD_FIELDS)
    assert message["status"] == "success" and message["id"] == "chatcmpl-123"
    failed = sink.entry(record(outcome=Outcome.ERROR, status=500, error_type="api_error", team_id="team-9"))
    assert failed["status"] == "error"
    assert failed["ddtags"].endswith(",team:team-9")
    assert json.loads(failed["message"])["status"] == "failure"


def test_tag_values_are_normalised_as_litellm_does() -> None:
    """A comma in a team's name would split its ``ddtags`` entry in two: LiteLLM's ``normalize_datadog_tag_value``
    (lower case, other characters than letters, digits and ``_-:./`` as one ``_``)."""
    sink = make_datadog(BOTH, {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com"}, None)
    e = sink.entry(record(team_id="Team A,  b!"))
    assert e["ddtags"] == base_tags({}) + ",team:team_a_b"


def test_entry_without_team_or_tags() -> None:
    sink = make_datadog(BOTH, {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com"}, None)
    e = sink.entry(record(team_id=None))
    assert e["ddtags"] == base_tags({})


def test_long_content_is_truncated_as_litellm_does() -> None:
    long_text = "x" * (MAX_CONTENT_CHARS + 500)
    d = detail(input={"messages": [{"role": "user", "content": long_text}]},
               output={"id": "r", "choices": [{"message": {"content": "short"}}]})
    sink = make_datadog(BOTH, {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com"}, None)
    message = json.loads(sink.entry(record(extra={"observe": d}))["message"])
    assert isinstance(message["messages"], str)
    assert len(message["messages"]) == MAX_CONTENT_CHARS + len(TRUNCATED)
    assert message["messages"].endswith(TRUNCATED)
    assert message["response"] == d.output  # short fields stay structured
    payload = {"error_str": "e" * (MAX_CONTENT_CHARS + 1), "messages": None, "response": {"a": 1}}
    cut = truncate_content(payload)
    assert cut is not payload and cut["error_str"].endswith(TRUNCATED) and cut["response"] == {"a": 1}
    same = {"error_str": "short", "messages": [], "response": None}
    assert truncate_content(same) is same


# -- sending ------------------------------------------------------------------------------------------------


def test_posts_gzipped_batches_with_the_api_key(collector: Collector) -> None:
    events = Events()

    async def main() -> None:
        sink = sink_for(collector, events=events)
        await sink.handle([record(call_id="a"), record(call_id="b", outcome=Outcome.ERROR, status=429,
                                                       error_type="rate_limit_error")])
        await sink.aclose()

    asyncio.run(main())
    assert len(collector.posts) == 1
    post = collector.posts[0]
    assert post.path == "/api/v2/logs"
    assert post.headers["dd-api-key"] == KEY
    assert post.headers["content-encoding"] == "gzip"
    assert post.headers["content-type"] == "application/json"
    assert post.raw[:2] == b"\x1f\x8b"
    body = post.json()
    assert [set(e) for e in body] == [DATADOG_PAYLOAD, DATADOG_PAYLOAD]
    assert [e["status"] for e in body] == ["info", "error"]
    assert [json.loads(e["message"])["call_id"] for e in body] == ["a", "b"]
    assert events.counts == {"datadog_sent": 2}


def test_only_configured_events(collector: Collector) -> None:
    async def main() -> None:
        sink = sink_for(collector, settings=ObserveSettings(failure_callbacks=("datadog",)))
        await sink.handle([record(call_id="ok"), record(call_id="bad", outcome=Outcome.ERROR, status=500)])
        await sink.aclose()

    asyncio.run(main())
    assert [json.loads(e["message"])["call_id"] for e in collector.entries()] == ["bad"]


def test_batches_respect_dd_batch_size(collector: Collector) -> None:
    async def main() -> None:
        sink = sink_for(collector, env=env_for(collector, DD_BATCH_SIZE="4"), flush_interval=0.01)
        await sink.handle([record(call_id=f"c{i}") for i in range(10)])
        await sink.aclose()

    asyncio.run(main())
    assert [len(p.entries()) for p in collector.posts] == [4, 4, 2]


def test_413_splits_the_batch(collector: Collector) -> None:
    collector.answer = lambda post: 413 if len(post.entries()) > 2 else None

    async def main() -> DatadogSink:
        sink = sink_for(collector)
        await sink.handle([record(call_id=f"c{i}") for i in range(8)])
        await sink.aclose()
        return sink

    sink = asyncio.run(main())
    sizes = [len(p.entries()) for p in collector.posts]
    assert sizes == [2, 2, 2, 2]
    assert sink.dropped == 0
    assert sorted(json.loads(e["message"])["call_id"] for e in collector.entries()) == sorted(
        f"c{i}" for i in range(8))


def test_a_lone_entry_refused_as_too_large_is_dropped(collector: Collector) -> None:
    events = Events()
    collector.answer = lambda post: 413

    async def main() -> DatadogSink:
        sink = sink_for(collector, events=events)
        await sink.handle([record(call_id="big")])
        await sink.aclose()
        return sink

    sink = asyncio.run(main())
    assert sink.dropped == 1 and events.counts["datadog_dropped"] == 1
    assert collector.requests == 1


def test_large_batches_are_split_before_sending(collector: Collector) -> None:
    def bigger(post: Post) -> int | None:
        return 413 if len(post.body) > 6000 else None

    collector.answer = bigger

    async def main() -> None:
        sink = sink_for(collector)
        sink.max_body = 6000
        await sink.handle([record(call_id=f"c{i}", extra={"observe": detail()}) for i in range(12)])
        await sink.aclose()

    asyncio.run(main())
    assert len(collector.entries()) == 12
    assert collector.requests == len(collector.posts)  # split before sending: nothing refused
    assert all(len(p.body) <= 6000 for p in collector.posts)


def test_retry_then_recover(collector: Collector) -> None:
    events = Events()
    collector.fail_next(2, 503)

    async def main() -> None:
        sink = sink_for(collector, events=events, max_attempts=4)
        await sink.handle([record(call_id=f"c{i}") for i in range(3)])
        await sink.aclose()

    asyncio.run(main())
    assert len(collector.entries()) == 3
    assert events.counts["datadog_send_failed"] == 2 and events.counts["datadog_sent"] == 3


def test_hanging_intake_is_bounded(collector: Collector) -> None:
    events = Events()
    collector.hang()

    async def main() -> DatadogSink:
        sink = sink_for(collector, events=events, timeout=0.2, max_attempts=2, close_timeout=0.3)
        await sink.handle([record(call_id=f"c{i}") for i in range(3)])
        await asyncio.wait_for(sink.aclose(), 2.0)
        return sink

    sink = asyncio.run(main())
    assert sink.dropped == 3 and events.counts["datadog_dropped"] == 3


def test_api_key_never_logged(collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    collector.fail_next(3, 403, body=f'{{"errors": ["invalid key {KEY}"]}}'.encode())
    collector.fail_next(1, 500, body=f'{{"errors": ["down, key {KEY}"]}}'.encode())

    async def main() -> None:
        sink = sink_for(collector, max_attempts=2, log_interval=0.0)
        for i in range(2):
            await sink.handle([record(call_id=f"c{i}")])
            await asyncio.sleep(0.05)
        await sink.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("relaygate")]
    assert ours
    assert not any(KEY in line for line in ours)


def test_message_logging_off_and_key_info_redacted() -> None:
    settings = ObserveSettings(success_callbacks=("datadog",), redact_user_api_key_info=True,
                               callback_settings={"datadog": {"message_logging": False}})
    sink = make_datadog(settings, {"DD_API_KEY": KEY, "DD_SITE": "datadoghq.com"}, None)
    message = json.loads(sink.entry(record(extra={"observe": detail()}))["message"])
    assert message["messages"] == [{"role": "user", "content": "redacted-by-litellm"}]
    assert message["metadata"]["user_api_key_hash"] is None
    assert (sink.success, sink.failure) == (True, False)
