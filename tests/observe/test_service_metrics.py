"""LiteLLM's service families (``relaygate.service_metrics``): the text they render, what counts as a failure,
bounded labels, several workers summed, the config, and real database statements timed (SQLite and
PostgreSQL) including a failed one and a failed batch write of the spend sink."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate import service_metrics
from relaygate.config import from_litellm
from relaygate.core.errors import GatewayError
from relaygate.limits.resp import command_name, encode
from relaygate.metrics import Metrics
from relaygate.service_metrics import LATENCY_BUCKETS, MAX_FAILURE_LABELS, SERVICES, ServiceMetrics, timed
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import SpendSink
from relaygate.store import open_store
from tests.observe.test_prometheus_dashboard import Scrape, parse_exposition
from tests.store.conftest import db_url  # noqa: F401  (both backends: a fresh SQLite file, a PostgreSQL database)


def _scrape(*parts: ServiceMetrics) -> Scrape:
    text = "\n".join(parts[0].render([p.snapshot() for p in parts])) + "\n"
    return parse_exposition(text)


def _value(scrape: Scrape, name: str, **labels: str) -> float:
    return sum(v for lab, v in zip(scrape.samples.get(name, []), scrape.values.get(name, []), strict=True)
               if all(lab.get(k) == x for k, x in labels.items()))


def test_every_service_declares_its_three_families_and_only_used_ones_have_samples() -> None:
    svc = ServiceMetrics()
    svc.ok("redis", 0.002)
    scrape = _scrape(svc)
    for s in SERVICES:
        assert scrape.types[f"litellm_{s}_latency"] == "histogram"
        assert scrape.types[f"litellm_{s}_failed_requests"] == "counter"
        assert scrape.types[f"litellm_{s}_total_requests"] == "counter"
    assert set(scrape.samples) == {"litellm_redis_latency_bucket", "litellm_redis_latency_count",
                                   "litellm_redis_latency_sum", "litellm_redis_total_requests_total"}
    assert scrape.samples["litellm_redis_total_requests_total"] == [{"redis": "redis"}]


def test_buckets_are_cumulative_with_the_bound_inclusive() -> None:
    svc = ServiceMetrics()
    for seconds in (0.001, 0.005, 0.0051, 0.5, 700.0):  # 0.005 is a bound: counted in le="0.005"
        svc.ok("postgres", seconds)
    scrape = _scrape(svc)
    les = {lab["le"]: v for lab, v in zip(scrape.samples["litellm_postgres_latency_bucket"],
                                          scrape.values["litellm_postgres_latency_bucket"], strict=True)}
    assert list(les) == [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
    assert les["0.005"] == 2 and les["0.01"] == 3 and les["0.5"] == 4 and les["600.0"] == 4 and les["+Inf"] == 5
    assert _value(scrape, "litellm_postgres_latency_count") == 5
    assert _value(scrape, "litellm_postgres_latency_sum") == pytest.approx(700.5111)


def test_a_failure_counts_in_total_and_failed_not_in_latency() -> None:
    svc = ServiceMetrics()
    svc.ok("auth", 0.01)
    svc.failed("auth", GatewayError("no", status=401, type="auth_error"), "acompletion")
    svc.failed("auth", ConnectionError("gone"), "acompletion")
    svc.failed("auth", "ResponseError", "evalsha")
    scrape = _scrape(svc)
    assert _value(scrape, "litellm_auth_total_requests_total") == 4
    assert _value(scrape, "litellm_auth_latency_count") == 1
    got = {(lab["error_class"], lab["function_name"]): v for lab, v in
           zip(scrape.samples["litellm_auth_failed_requests_total"],
               scrape.values["litellm_auth_failed_requests_total"], strict=True)}
    # relaygate's plain GatewayError is named by its OpenAI error type; other exceptions by their class
    assert got == {("auth_error", "acompletion"): 1, ("ConnectionError", "acompletion"): 1,
                   ("ResponseError", "evalsha"): 1}
    assert all(lab["auth"] == "auth" for lab in scrape.samples["litellm_auth_failed_requests_total"])


def test_failure_labels_are_bounded_and_escaped() -> None:
    svc = ServiceMetrics()
    odd = type('Odd"Error\n', (Exception,), {})
    svc.failed("router", odd("x"), "acompletion")
    for i in range(MAX_FAILURE_LABELS + 50):
        svc.failed("router", type(f"E{i}", (Exception,), {})("x"), "acompletion")
    scrape = _scrape(svc)
    labels = scrape.samples["litellm_router_failed_requests_total"]
    assert len(labels) == MAX_FAILURE_LABELS + 1  # the distinct pairs kept, then one "other" series
    assert {"router": "router", "error_class": "other", "function_name": "other"} in labels
    assert {"router": "router", "error_class": 'Odd"Error\n', "function_name": "acompletion"} in labels
    assert _value(scrape, "litellm_router_total_requests_total") == MAX_FAILURE_LABELS + 51


def test_workers_are_summed_and_queues_read_at_snapshot_time() -> None:
    a, b = ServiceMetrics(), ServiceMetrics()
    a.ok("self", 0.2)
    b.ok("self", 0.3)
    b.failed("self", TimeoutError(), "openai")
    depth = [3]
    a.queue(service_metrics.QUEUE_SPEND, lambda: depth[0])
    b.queue(service_metrics.QUEUE_SPEND, lambda: 1 // 0)  # a reader that fails reads 0
    scrape = _scrape(a, b)
    assert _value(scrape, "litellm_self_total_requests_total") == 3
    assert _value(scrape, "litellm_self_latency_count") == 2
    assert _value(scrape, "litellm_self_latency_sum") == pytest.approx(0.5)
    assert _value(scrape, "litellm_in_memory_spend_update_queue_size") == 3
    depth[0] = 7
    assert _value(_scrape(a, b), "litellm_in_memory_spend_update_queue_size") == 7


def test_metrics_carries_the_families_only_when_on() -> None:
    m = Metrics()
    assert "services" not in m.snapshot() and b"litellm_redis" not in m.render()
    m.services = svc = ServiceMetrics()
    svc.ok("redis", 0.001)
    assert "services" in m.snapshot()
    assert b'litellm_redis_total_requests_total{redis="redis"} 1.0' in m.render()


def test_timed_is_the_awaitable_itself_when_off_and_counts_when_on() -> None:
    async def ok() -> int:
        return 7

    async def bad() -> int:
        raise ConnectionError("refused")

    async def cancelled() -> int:
        raise asyncio.CancelledError

    async def main() -> None:
        assert service_metrics.active is None
        coro = ok()
        assert timed("redis", "get", coro) is coro
        assert await coro == 7
        svc = ServiceMetrics()
        service_metrics.activate(svc)
        try:
            assert await timed("redis", "get", ok()) == 7
            with pytest.raises(ConnectionError):
                await timed("redis", "get", bad())
            with pytest.raises(asyncio.CancelledError):  # a cancelled call is neither a success nor a failure
                await timed("redis", "get", cancelled())
        finally:
            service_metrics.deactivate(svc)
        assert service_metrics.active is None
        scrape = _scrape(svc)
        assert _value(scrape, "litellm_redis_total_requests_total") == 2
        assert _value(scrape, "litellm_redis_failed_requests_total", error_class="ConnectionError",
                      function_name="get") == 1

    asyncio.run(main())


def test_deactivate_leaves_another_gateways_metrics_on() -> None:
    mine, other = ServiceMetrics(), ServiceMetrics()
    service_metrics.activate(other)
    try:
        service_metrics.deactivate(mine)
        assert service_metrics.active is other
    finally:
        service_metrics.deactivate(other)


def test_a_failed_commands_name_is_one_of_relaygates_own() -> None:
    assert command_name(encode(("EVALSHA", "abc", 1, "k"))) == "evalsha"
    assert command_name(encode(("GET", "k"))) == "get"
    assert command_name(encode(("FLUSHALL",))) == "other"
    assert command_name(encode(("get\r\nx" * 50,))) == "other"
    assert command_name(b"") == "other" and command_name(b"*1\r\n") == "other"


@pytest.mark.parametrize(("value", "kept", "warned"), [
    (["prometheus_system"], ("prometheus_system",), False),
    (" Prometheus_System ", ("prometheus_system",), False),
    (["datadog", "prometheus_system", "prometheus_system"], ("prometheus_system",), True),
    (["otel"], (), True),
])
def test_service_callback_config(value: Any, kept: tuple[str, ...], warned: bool) -> None:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "litellm_settings": {"service_callback": value}}, "config.yaml")
    got = cfg.observe.service_callbacks if cfg.observe is not None else ()
    assert got == kept
    assert any("service callback" in w and "not supported" in w for w in cfg.warnings) is warned


def test_service_callback_must_be_names() -> None:
    from relaygate.config.errors import ConfigError

    with pytest.raises(ConfigError, match="service_callback: expected a list of callback names"):
        from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                      "litellm_settings": {"service_callback": {"prometheus_system": True}}}, "config.yaml")


def _record(i: int) -> CompletionRecord:
    return CompletionRecord(f"call-{i}", "chat", False, "m", "m", "d0", "openai", "m", None, None, None, None, 200,
                            Outcome.OK, 3, 4, 0, 0, 0.01, None, 0.001, 0.0001, False, 0, 0, 1_700_000_000.0)


def test_database_statements_and_the_spend_write_are_timed(db_url: str) -> None:  # noqa: F811 (the fixture)
    async def main() -> Scrape:
        svc = ServiceMetrics()
        store = await open_store(db_url)
        service_metrics.activate(svc)
        try:
            async with store._read() as c:
                assert await c.fetch("SELECT 1 AS one", []) == [{"one": 1}]
                with pytest.raises(Exception):  # noqa: B017 - each dialect's own error class
                    await c.fetch("SELECT * FROM no_such_table", [])
            sink = SpendSink(store, spacing=0.0)
            await sink.handle([_record(i) for i in range(3)])
            assert sink.written == 3
            async with store._transaction() as c:  # the next batch's write fails (not an outage: given up)
                await c.execute("DROP TABLE rg_spend_logs" + (" CASCADE" if store.dialect == "postgres" else ""), [])
            failing = SpendSink(store, spacing=0.0, max_attempts=1, backoff=0.0)
            await asyncio.wait_for(failing.handle([_record(9)]), 10)
            assert failing.dropped == 1
        finally:
            service_metrics.deactivate(svc)
            await store.close()
        return _scrape(svc)

    scrape = asyncio.run(main())
    assert _value(scrape, "litellm_postgres_latency_count") >= 2  # the SELECT and the batch's statements
    assert _value(scrape, "litellm_postgres_failed_requests_total", function_name="fetch") == 1
    assert {lab["error_class"] for lab in scrape.samples["litellm_postgres_failed_requests_total"]} <= {
        "OperationalError", "UndefinedTableError"}
    assert _value(scrape, "litellm_batch_write_to_db_total_requests_total") == 2
    assert _value(scrape, "litellm_batch_write_to_db_latency_count") == 1
    assert _value(scrape, "litellm_batch_write_to_db_failed_requests_total", function_name="update_spend") == 1


def test_callback_failures_are_litellms_metric_by_exporter() -> None:
    from relaygate.metrics import callback_failures
    from relaygate.observe.prometheus import LiteLLMMetrics

    events = {"langfuse_dropped": 4, "langfuse_retry": 1, "langfuse_sent": 9, "otel_dropped": 0,
              "datadog_send_failed": 2, "sink_dropped:otel": 3, "sink_error:generic_api": 1, "sink_dropped:spend": 7,
              "json_log_failed": 1}
    assert callback_failures(events) == {"langfuse": 5, "otel": 3, "datadog": 2, "generic_api": 1, "json_logs": 1}
    m = Metrics()
    for event, n in events.items():
        m.count(event, n)
    assert b"litellm_callback_logging_failures_metric" not in m.render()  # LiteLLM's family: with prometheus only
    m.litellm = LiteLLMMetrics()
    scrape = parse_exposition(m.render().decode())
    assert scrape.types["litellm_callback_logging_failures_metric"] == "counter"
    assert _value(scrape, "litellm_callback_logging_failures_metric_total", callback_name="langfuse") == 5
    assert {lab["callback_name"] for lab in scrape.samples["litellm_callback_logging_failures_metric_total"]} == {
        "langfuse", "otel", "datadog", "generic_api", "json_logs"}


def test_user_and_team_counts_are_litellms_gauges_when_read() -> None:
    from relaygate.observe.prometheus import LiteLLMMetrics

    m = Metrics()
    m.litellm = a = LiteLLMMetrics()
    assert b"litellm_total_users" not in m.render()  # no store read: no gauge (LiteLLM's 0 would be a lie)
    a.set_counts(3, 2)
    b = LiteLLMMetrics()
    b.set_counts(4, 2)  # another worker read after a user was added
    text = "\n".join(a.render([a.snapshot(), b.snapshot()])) + "\n"
    scrape = parse_exposition(text)
    assert scrape.types["litellm_total_users"] == "gauge" and scrape.types["litellm_teams_count"] == "gauge"
    assert _value(scrape, "litellm_total_users") == 4 and _value(scrape, "litellm_teams_count") == 2
    assert scrape.samples["litellm_total_users"] == [{}]
    # no SCIM deactivation in relaygate: every user is an active (billable) one
    assert scrape.types["litellm_active_users"] == "gauge" and _value(scrape, "litellm_active_users") == 4


def test_principal_counts(db_url: str) -> None:  # noqa: F811 (the fixture)
    from relaygate.store import Team, User
    from relaygate.store.activity import principal_counts

    async def main() -> None:
        store = await open_store(db_url)
        try:
            assert await principal_counts(store) == (0, 0)
            for i in range(3):
                await store.create_user(User(user_id=f"u{i}"))
            await store.create_team(Team(team_id="t0"))
            assert await principal_counts(store) == (3, 1)
        finally:
            await store.close()

    asyncio.run(main())


def test_team_members_are_litellms_gauge_per_team_when_read() -> None:
    from relaygate.observe.prometheus import LiteLLMMetrics

    m = Metrics()
    m.litellm = a = LiteLLMMetrics()
    assert b"litellm_team_members_metric" not in m.render()  # not read (no store): no series at all
    a.set_team_members([("t1", "Acme", 3), ("t2", "", 0), ('t"3\n', 'al"ias\\', 1)])
    b = LiteLLMMetrics()
    b.set_team_members([("t1", "Acme", 4), ("t2", "", 0)])  # read after a member joined t1, before t"3 was made
    scrape = parse_exposition("\n".join(a.render([a.snapshot(), b.snapshot()])) + "\n")
    assert scrape.types["litellm_team_members_metric"] == "gauge"
    assert _value(scrape, "litellm_team_members_metric", team="t1", team_alias="Acme") == 4
    assert _value(scrape, "litellm_team_members_metric", team="t2", team_alias="") == 0  # LiteLLM's "" for no alias
    assert _value(scrape, "litellm_team_members_metric", team='t"3\n', team_alias='al"ias\\') == 1  # escaped
    assert len(scrape.samples["litellm_team_members_metric"]) == 3
    c = LiteLLMMetrics()
    c.set_team_members([(f"t{i}", "", 1) for i in range(c.MAX_TEAMS + 5)])
    assert c.team_members is not None and len(c.team_members) == c.MAX_TEAMS  # bounded whatever the store holds


def test_team_member_counts(db_url: str) -> None:  # noqa: F811 (the fixture)
    from relaygate.store import Team, TeamMember, User
    from relaygate.store.activity import team_member_counts

    async def main() -> None:
        store = await open_store(db_url)
        try:
            assert await team_member_counts(store, 10) == []
            for i in range(3):
                await store.create_user(User(user_id=f"u{i}"))
            await store.create_team(Team(team_id="b", team_alias="Beta"),
                                    [TeamMember(team_id="b", user_id=f"u{i}") for i in range(3)])
            await store.create_team(Team(team_id="a"))
            await store.create_team(Team(team_id="c", team_alias="Gamma"), [TeamMember(team_id="c", user_id="u0")])
            assert await team_member_counts(store, 10) == [("a", "", 0), ("b", "Beta", 3), ("c", "Gamma", 1)]
            await store.remove_team_member("b", "u1")
            assert await team_member_counts(store, 2) == [("a", "", 0), ("b", "Beta", 2)]  # the first by id
        finally:
            await store.close()

    asyncio.run(main())
