"""Per-worker admission control (``max_in_flight_requests_per_worker``, LiteLLM 1.110): the bound, the FIFO wait
queue and its timeout, cancellation, reloads; through the gateway, LiteLLM's 503 ``overloaded_error`` in the
route's shape, the probes exempt, and the admission families on ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate.config import ConfigError, from_litellm
from relaygate.gateway import Gateway
from relaygate.http.admission import Admission
from tests.asgi.conftest import call
from tests.budgets.conftest import upstream


def test_slots_queue_in_order_and_time_out() -> None:
    async def main() -> None:
        adm = Admission(2, 2, timeout=0.2)
        assert adm.enter_now() and adm.enter_now() and not adm.enter_now()
        first = asyncio.ensure_future(adm.enter())
        second = asyncio.ensure_future(adm.enter())
        await asyncio.sleep(0)
        assert len(adm.waiting) == 2
        assert await adm.enter() is False and adm.rejected["queue_full"] == 1  # two wait already
        adm.leave()  # the oldest waiter gets the slot
        assert await first is True and adm.admitted == 2
        assert await second is False and adm.rejected["queue_timeout"] == 1  # nobody left in time
        assert not adm.waiting
        adm.leave()
        adm.leave()
        assert adm.admitted == 0 and adm.enter_now()

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    async def main() -> None:
        adm = Admission(1, 5, timeout=5.0)
        assert adm.enter_now()
        gone = asyncio.ensure_future(adm.enter())
        after = asyncio.ensure_future(adm.enter())
        await asyncio.sleep(0)
        gone.cancel()  # its client went away while it waited
        await asyncio.sleep(0)
        assert len(adm.waiting) == 1
        adm.leave()
        assert await after is True and adm.admitted == 1
        handed = asyncio.ensure_future(adm.enter())
        await asyncio.sleep(0)
        adm.leave()  # the slot is handed over ...
        handed.cancel()  # ... and the waiter cancelled before it ran: the slot is passed on, not lost
        with pytest.raises(asyncio.CancelledError):
            await handed
        assert adm.admitted == 0 and not adm.waiting

    asyncio.run(main())


def test_a_reload_with_more_slots_admits_waiters() -> None:
    async def main() -> None:
        adm = Admission(1, 3, timeout=5.0)
        assert adm.enter_now()
        waiters = [asyncio.ensure_future(adm.enter()) for _ in range(3)]
        await asyncio.sleep(0)
        adm.configure(3, 3, 5.0)
        assert [await w for w in waiters[:2]] == [True, True] and adm.admitted == 3 and len(adm.waiting) == 1
        waiters[2].cancel()

    asyncio.run(main())


@pytest.mark.parametrize(("settings", "field"), [
    ({"max_in_flight_requests_per_worker": 0}, "max_in_flight_requests_per_worker"),
    ({"max_in_flight_requests_per_worker": 2, "max_queued_requests_per_worker": -1}, "max_queued_requests_per_worker"),
    ({"max_in_flight_requests_per_worker": 2, "admission_queue_timeout_seconds": 0}, "admission_queue_timeout"),
])
def test_bad_settings_stop_the_start(settings: dict[str, Any], field: str) -> None:
    cfg = {"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}], "general_settings": settings}
    with pytest.raises(ConfigError, match=field):
        from_litellm(cfg, "<t>")


def _gateway(url: str, **general: Any) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-x", "api_base": url, "api_key": "k"}}],
        "general_settings": {"max_in_flight_requests_per_worker": 2, "max_queued_requests_per_worker": 1,
                             "admission_queue_timeout_seconds": 0.2, **general},
        "litellm_settings": {"callbacks": ["prometheus"]},
        "relaygate_settings": {"embedded_database": False}}, "<t>"))


def test_an_overloaded_worker_answers_503_in_the_route_shape() -> None:
    """Two slots, one waiter, 0.2 s of waiting, an upstream that takes 0.6 s: of five requests at once two are
    served, one waits and times out, two find the queue full; the probes and /metrics are answered meanwhile."""
    async def main() -> None:
        async with upstream(delay=0.6) as up:
            gw = _gateway(up.url)
            await gw.startup()
            try:
                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                tasks = [asyncio.ensure_future(call(gw, "POST", "/v1/chat/completions", chat)) for _ in range(3)]
                await asyncio.sleep(0.05)
                msg = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
                anthropic = await call(gw, "POST", "/v1/messages", msg)  # queue full: Anthropic's error shape
                assert anthropic.status == 503 and anthropic.headers["retry-after"] == "1"
                assert anthropic.json()["type"] == "error"
                assert anthropic.json()["error"]["type"] == "overloaded_error"
                probe = await call(gw, "GET", "/health/liveliness")
                assert probe.status == 200
                text = (await call(gw, "GET", "/metrics")).chunks[0].decode()
                assert "litellm_admission_admitted_requests 2.0" in text
                assert "litellm_admission_queued_requests 1.0" in text
                replies = await asyncio.gather(*tasks)
                assert sorted(r.status for r in replies) == [200, 200, 503]
                refused = next(r for r in replies if r.status == 503)
                assert refused.json()["error"] == {
                    "message": "Worker at capacity: 2 in-flight, 0 queued requests. Retry later.",
                    "type": "overloaded_error", "param": None, "code": "503"}
                assert up.hits == 2
                text = b"".join((await call(gw, "GET", "/metrics")).chunks).decode()
                assert 'litellm_admission_rejected_requests_total{reason="queue_full"} 1.0' in text
                assert 'litellm_admission_rejected_requests_total{reason="queue_timeout"} 1.0' in text
                assert "litellm_admission_admitted_requests 0.0" in text
                assert (await call(gw, "POST", "/v1/chat/completions", chat)).status == 200  # the slots came back
            finally:
                await gw.shutdown()

    asyncio.run(main())


def test_without_the_setting_nothing_is_bounded() -> None:
    async def main() -> None:
        async with upstream(delay=0.2) as up:
            gw = _gateway(up.url, max_in_flight_requests_per_worker=None)
            assert gw.admission is None
            await gw.startup()
            try:
                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                replies = await asyncio.gather(*(call(gw, "POST", "/v1/chat/completions", chat) for _ in range(6)))
                assert [r.status for r in replies] == [200] * 6
            finally:
                await gw.shutdown()

    asyncio.run(main())
