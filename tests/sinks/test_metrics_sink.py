"""MetricsSink gives Metrics exactly the calls the request path used to make, and works through the queue."""

from __future__ import annotations

import asyncio

from relaygate.metrics import OTHER, Metrics
from relaygate.sinks import CompletionQueue, MetricsSink, Outcome

from .test_queue import rec

GROUPS = {"g", "alias"}
DEPS = {"d1", "d2"}


def fresh() -> Metrics:
    return Metrics(groups=GROUPS, deployments=DEPS)


def same(a: Metrics, b: Metrics) -> None:
    sa, sb = a.snapshot(), b.snapshot()
    for k in ("requests", "tokens", "latency", "latency_sum", "overhead", "events"):
        assert sa[k] == sb[k], k


def test_ok_unary_is_observe() -> None:
    direct, via = fresh(), fresh()
    direct.observe("g", "d1", 200, 0.5, 0.01, 10, 20)
    MetricsSink(via).handle([rec(0, model="alias", model_group="g", deployment_id="d1", latency=0.5,
                                 overhead=0.01, prompt_tokens=10, completion_tokens=20)])
    same(direct, via)


def test_error_is_observe_error_by_requested_model() -> None:
    direct, via = fresh(), fresh()
    direct.observe_error("nope", 401)
    direct.observe_error("g", 429)
    MetricsSink(via).handle([
        rec(0, model="nope", model_group="", deployment_id="", status=401, outcome=Outcome.ERROR),
        rec(1, model="g", model_group="g", deployment_id="d2", status=429, outcome=Outcome.ERROR),
    ])
    same(direct, via)
    assert (OTHER, "", "401") in via.requests


def test_stream_broken_and_client_gone() -> None:
    direct, via = fresh(), fresh()
    direct.observe("g", "d1", 599, 1.0, 0.0, 3, 4)  # broken mid-stream; negative overhead clamped
    direct.count("client_disconnected")  # a unary client that left: counted, not observed
    direct.count("client_disconnected")  # a stream client that left after the first frame
    direct.observe("g", "d2", 599, 2.0, 0.1, 0, 7)
    MetricsSink(via).handle([
        rec(0, deployment_id="d1", model_group="g", status=599, outcome=Outcome.STREAM_BROKEN, latency=1.0,
            overhead=-0.001, prompt_tokens=3, completion_tokens=4, stream=True, ttft=0.1),
        rec(1, deployment_id="d1", model_group="g", status=200, outcome=Outcome.CLIENT_GONE),
        rec(2, deployment_id="d2", model_group="g", status=599, outcome=Outcome.CLIENT_GONE, latency=2.0,
            overhead=0.1, prompt_tokens=0, completion_tokens=7, stream=True, ttft=0.2),
    ])
    same(direct, via)


def test_through_the_queue_with_drop_events() -> None:
    metrics = fresh()

    async def main() -> bytes:
        sink = MetricsSink(metrics)
        q = CompletionQueue(2, delay=0, on_event=sink.on_event)
        q.add_sink(sink)
        for i in range(3):
            q.put(rec(i, model_group="g", deployment_id="d1"))
        q.start()
        await asyncio.sleep(0)
        out = metrics.render()  # fresh one loop iteration after the records were put
        await q.aclose()
        return out

    text = asyncio.run(main()).decode()
    assert 'relaygate_requests_total{model_group="g",model_id="d1",status="200"} 2' in text
    assert 'relaygate_events_total{event="completion_dropped"} 1' in text
