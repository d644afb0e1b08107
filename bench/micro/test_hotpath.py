"""Micro-benchmarks of the request path that has no compiled twin: request decode, body edit, auth,
routing decision, and one whole in-process request through the ASGI app (built-in mock provider, no IO).

    python -m pytest bench/micro/test_hotpath.py --benchmark-only --benchmark-enable -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.core import body as body_edit
from relaygate.core import routing
from relaygate.core.views import decode_view
from relaygate.router import Router

BODY = orjson.dumps({
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "You are a helpful assistant."},
                 {"role": "user", "content": "Hello, how are you today? Tell me about token buckets."}],
    "max_tokens": 64, "temperature": 0.2, "stream": False,
})


def _config(strategy: str = "simple-shuffle", n: int = 3) -> Any:
    return from_litellm({
        "model_list": [{"model_name": "gpt-4o-mini",
                        "litellm_params": {"model": "mock/echo", "rpm": 1000 * (i + 1)},
                        "model_info": {"id": f"d{i}"}} for i in range(n)],
        "router_settings": {"routing_strategy": strategy},
        "general_settings": {"master_key": "sk-master"},
    }, "<bench>")


def test_decode_view(benchmark: BenchmarkFixture) -> None:
    view = benchmark(decode_view, "chat", BODY)
    assert view.model == "gpt-4o-mini"


def test_replace_model(benchmark: BenchmarkFixture) -> None:
    out = benchmark(body_edit.replace_model, BODY, "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert b'"gpt-4o-mini-2024-07-18"' in out


@pytest.mark.parametrize("strategy", ["simple-shuffle", "least-busy", "latency-based-routing",
                                      "usage-based-routing-v2"])
def test_routing_decision(benchmark: BenchmarkFixture, strategy: str) -> None:
    router = Router(_config(strategy))
    group = router.resolve("gpt-4o-mini")
    rng = random.Random(1).random
    code = router.strategy
    pick = benchmark(routing.choose, code, group.tiers, 1000.0, 0, False, rng, 0.0)
    assert pick is not None


def test_auth_master_key(benchmark: BenchmarkFixture) -> None:
    gw = Gateway(_config())
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-master")]
    assert benchmark(gw.principals.resolve_cached, headers).is_master


def test_whole_request_in_process(benchmark: BenchmarkFixture) -> None:
    """The ASGI app end to end on the built-in mock provider: everything but the network."""
    gw = Gateway(_config())
    loop = asyncio.new_event_loop()
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [
        (b"content-type", b"application/json"), (b"authorization", b"Bearer sk-master"),
        (b"content-length", str(len(BODY)).encode())]}
    sent: list[dict[str, Any]] = []

    async def one() -> None:
        msgs = [{"type": "http.request", "body": BODY, "more_body": False}]
        disconnect = loop.create_future()

        async def receive() -> dict[str, Any]:
            return msgs.pop() if msgs else await disconnect

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        await gw(scope, receive, send)

    benchmark(lambda: loop.run_until_complete(one()))
    loop.close()
    assert sent[0]["status"] == 200
