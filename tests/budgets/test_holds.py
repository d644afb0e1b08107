"""Budget reservations (``budgets.holds``, LiteLLM 1.110's optimistic reservation): requests in flight hold their
estimated cost on their budgets, so concurrent requests cannot all spend the same remaining budget; the holds
go when the requests complete, fail, or their records are dropped.

The budget tests' model costs 1e-6 USD an input token and 2e-6 an output token; a request ``hi`` is a short
conversation, held at a token a byte of its message (30) plus 4, so with ``max_tokens: 1`` it holds 3.6e-5 USD
and costs 3e-6 (1 + 1 tokens, what the upstream answers)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.budgets.holds import DEFAULT_MAX_OUTPUT, caps_of, output_tokens
from relaygate.core import tokens
from relaygate.core.views import decode_view
from relaygate.cost import PICO, to_pico
from relaygate.sinks import CompletionQueue
from relaygate.store import Key
from tests.asgi.conftest import call
from tests.budgets.conftest import COST, MASTER, ask, config, gateway, started, token, upstream
from tests.budgets.test_budgets import refused
from tests.sinks.test_queue import rec

PROMPT = len(b'{"role":"user","content":"hi"}') + 4
"""The prompt tokens a ``hi`` request is held at: its message's bytes and 4 (``holds._SMALL``)."""
HOLD = PROMPT * 1e-6 + 2e-6
"""What a ``hi`` request with ``max_tokens: 1`` holds: the prompt at 1e-6 a token, 1 output token at 2e-6."""
BUDGET = 2.5 * HOLD
"""Two holds and a half: three requests at once (the third on the half left); thirty completed requests' cost."""


def _held(gw: Any) -> int:
    return sum(t.held for t in gw.budgets.tallies.values())


async def _in_flight(gw: Any, up: Any, count: int, key: str, **body: Any) -> tuple[list[asyncio.Task[Any]], int]:
    """Start ``count`` requests; once the upstream has them all (or every other one was refused), what is held."""
    tasks = [asyncio.ensure_future(ask(gw, key, **body)) for _ in range(count)]
    for _ in range(500):
        await asyncio.sleep(0.01)
        done = sum(1 for t in tasks if t.done())
        if up.hits + done >= count:
            break
    return tasks, _held(gw)


def test_concurrent_requests_hold_what_they_may_cost_and_the_rest_are_refused(db_url: str) -> None:
    """20 requests at once on a key with room for two and a half holds: three holds fill it (the third the half
    left), the other 17 are refused before the upstream with "Current cost" the holds; once the three complete
    their real cost (3e-6 each) is what counts, and requests one at a time reach the budget (30 requests'
    cost) as without reservations."""
    async def main() -> None:
        # the sink writes its first batch at once, then holds small batches for an hour: no write of a row
        # races a read of it below (its timing could count a cost twice, the safe side, whatever the holds)
        async with upstream(delay=0.5) as up, gateway(db_url, up, general_settings={"proxy_batch_write_at": 3600}) as gw:
            assert gw.budgets is not None and gw.budgets.reserving
            await gw.store.create_key(Key(token=token("sk-hold"), max_budget=BUDGET))
            await gw.budgets.refresh()
            tasks, held = await _in_flight(gw, up, 20, "sk-hold", max_tokens=1)
            assert held == to_pico(BUDGET)  # key tally: HOLD + HOLD + the half left
            replies = await asyncio.gather(*tasks)
            assert [r.status for r in replies].count(200) == 3 and up.hits == 3
            for r in replies:
                if r.status != 200:
                    refused(r, "Budget has been exceeded! Key=")
                    assert f"Current cost: {to_pico(BUDGET) / PICO}" in r.json()["error"]["message"]
            gw.completions.drain_now()
            assert _held(gw) == 0 and not gw.budgets.holds.live
            ok = 3
            while (await ask(gw, "sk-hold", max_tokens=1)).status == 200:
                ok += 1
                assert ok <= 30
            assert ok == 30 and up.hits == 30  # what fits, as one at a time without holds
            assert _held(gw) == 0

    asyncio.run(main())


def test_disable_budget_reservation_lets_every_concurrent_request_through(db_url: str) -> None:
    """``general_settings.disable_budget_reservation: true`` (LiteLLM's switch): the check reads completed
    spend only, so the 20 requests in flight when the budget had room for ten all reach the upstream."""
    async def main() -> None:
        async with upstream(delay=0.3) as up, gateway(
                db_url, up, general_settings={"disable_budget_reservation": True}) as gw:
            assert gw.budgets is not None and not gw.budgets.reserving
            await gw.store.create_key(Key(token=token("sk-nohold"), max_budget=10 * COST - 1e-7))  # ten fit
            await gw.budgets.refresh()
            tasks, held = await _in_flight(gw, up, 20, "sk-nohold", max_tokens=1)
            assert held == 0
            assert [r.status for r in await asyncio.gather(*tasks)] == [200] * 20
            refused(await ask(gw, "sk-nohold"), "Budget has been exceeded! Key=")

    asyncio.run(main())


def _priced(up: Any, info: dict[str, Any]) -> Any:
    """A gateway without a store whose only budget is the proxy's (``litellm_settings.max_budget``), its
    deployments' ``model_info`` updated with ``info``."""
    cfg = config(None, up, litellm_settings={"max_budget": 100.0})
    for entry in cfg["model_list"]:
        entry["model_info"].update(info)
    return started(cfg)


@pytest.mark.parametrize(("body", "info", "usd"), [
    ({"max_tokens": 1}, {}, HOLD),
    ({"max_completion_tokens": 4, "max_tokens": 1}, {}, PROMPT * 1e-6 + 4 * 2e-6),  # max_completion_tokens first
    ({"max_tokens": 3, "n": 2}, {}, PROMPT * 1e-6 + 2 * 3 * 2e-6),  # every answer asked for
    ({}, {}, PROMPT * 1e-6 + DEFAULT_MAX_OUTPUT * 2e-6),  # no cap: LiteLLM's 16,384
    ({}, {"max_output_tokens": 100}, PROMPT * 1e-6 + 100 * 2e-6),  # capped at what the model can write
    ({"max_tokens": 10**9}, {"max_output_tokens": 100}, PROMPT * 1e-6 + 100 * 2e-6),  # no inflating it
    ({"max_tokens": "lots"}, {"max_output_tokens": 50}, PROMPT * 1e-6 + 50 * 2e-6),  # not a count: no cap
    ({"max_tokens": 2}, {"output_cost_per_reasoning_token": 5e-6}, PROMPT * 1e-6 + 2 * 5e-6),  # dearer output
    ({"max_tokens": 1}, {"max_input_tokens": 5}, 5e-6 + 2e-6),  # the prompt capped at the model's window
])
def test_what_a_request_holds(body: dict[str, Any], info: dict[str, Any], usd: float) -> None:
    """The estimate (LiteLLM's ``estimate_request_max_cost``), held on the proxy's budget while the request is
    in flight, and nothing once it completed."""
    async def main() -> None:
        async with upstream(delay=0.3) as up, _priced(up, info) as gw:
            assert gw.budgets is not None and gw.budgets.proxy is not None
            tasks, held = await _in_flight(gw, up, 1, MASTER, **body)
            assert held == to_pico(usd)
            assert (await tasks[0]).status == 200
            assert _held(gw) == 0 and not gw.budgets.holds.live
            assert gw.budgets.proxy.tally.pico == to_pico(COST)  # what it cost, counted once

    asyncio.run(main())


def test_a_long_conversation_is_held_at_its_token_estimate() -> None:
    """Past ``holds._SMALL`` bytes the prompt is held at the token estimate (an image counted as one, not as its
    bytes), not at a token a byte."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "words " * 300},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                                                 + "A" * 20000}}]}]
    prompt = tokens.estimate_messages_tokens(orjson.dumps(messages))
    assert prompt < 1000  # the image's 20 KB count as one image

    async def main() -> None:
        async with upstream(delay=0.3) as up, _priced(up, {}) as gw:
            tasks, held = await _in_flight(gw, up, 1, MASTER, messages=messages, max_tokens=1)
            assert held == to_pico(prompt * 1e-6 + 2e-6)
            assert (await tasks[0]).status == 200

    asyncio.run(main())


def test_embeddings_hold_their_input_and_unpriced_routes_nothing() -> None:
    """An embedding holds its input's estimate only; a request the model's prices do not cover by the token
    (here a model without prices) holds nothing and is checked against completed spend alone."""
    async def main() -> None:
        async with upstream() as up, _priced(up, {}) as gw:
            assert gw.budgets is not None
            est = gw.budgets.estimate
            rt = gw.runtime
            body = b'{"model":"m","input":"hello world"}'
            ex = SimpleNamespace(route="embeddings", group=rt.router.resolve("m"), rt=rt, view=None, body=body)
            assert est(ex) == 10 * to_pico(1e-6)  # ~10 tokens of the body, input price only
            ex.route = "images"
            assert est(ex) == 0
            ex.route, ex.group = "chat", None
            assert est(ex) == 0

    asyncio.run(main())


def test_a_failed_request_holds_nothing_after_it(db_url: str) -> None:
    """A request whose upstream is gone fails (502), costs 0 and releases its hold; so does a request refused
    by its own budget."""
    async def main() -> None:
        async with upstream() as dead:
            pass  # its port is closed now: every attempt fails to connect
        async with gateway(db_url, dead, router_settings={"num_retries": 0}) as gw:
            assert gw.budgets is not None
            await gw.store.create_key(Key(token=token("sk-fail"), max_budget=1.0))
            await gw.budgets.refresh()
            reply = await ask(gw, "sk-fail", max_tokens=1)
            assert reply.status >= 500
            assert _held(gw) == 0 and not gw.budgets.holds.live

    asyncio.run(main())


def test_a_record_the_completion_queue_drops_releases_its_hold() -> None:
    """The completion queue full: the record it drops goes to ``on_drop`` (the guard releases its hold there),
    since no sink will see it."""
    seen: list[str] = []
    q = CompletionQueue(maxsize=2)
    q.on_drop = lambda r: seen.append(r.call_id)
    for i in range(4):
        q.put(rec(i, hold=i + 1))
    assert seen == ["c0", "c1"] and q.dropped == 2


def test_holds_release_once_and_an_abandoned_one_is_swept() -> None:
    from relaygate.budgets.holds import MAX_AGE, Holds
    from relaygate.budgets.limits import Tally

    holds, a, b = Holds(), Tally(), Tally()
    h = holds.take([a, b], 5 * PICO)
    assert a.held == b.held == 5 * PICO
    holds.release([rec(0, hold=h.id)])
    h.release()
    assert a.held == b.held == 0 and not holds.live
    old = holds.take([a], PICO)
    old.at -= MAX_AGE + 1
    holds.take([b], PICO)
    holds.sweep(old.at + MAX_AGE + 2)
    assert a.held == 0 and b.held == PICO and len(holds.live) == 1


def test_a_request_right_after_one_that_held_all_the_room_is_not_refused(db_url: str) -> None:
    """A request that held all the room left (the resize) and ended releases it before the next one is checked,
    even while its record still waits in the completion queue's batch (its ~1 ms delay): a client asking again
    the moment its answer arrives is checked against what was spent, not against a hold that has ended."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            assert gw.budgets is not None and gw.budgets.reserving
            await gw.store.create_key(Key(token=token("sk-room"), max_budget=HOLD / 2))  # less than one hold
            await gw.budgets.refresh()
            gw.completions.delay = 5.0  # a record waits in the queue's batch far longer than the next request takes
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
            statuses = [(await call(gw, "POST", "/v1/chat/completions", body,  # not ask(): it drains the queue
                                    headers={"authorization": "Bearer sk-room"})).status for _ in range(5)]
            assert statuses == [200] * 5 and up.hits == 5  # 5 x 3e-6 spent of 1.8e-5
            gw.completions.drain_now()
            assert _held(gw) == 0 and not gw.budgets.holds.live

    asyncio.run(main())


_CAP_VALUES = st.one_of(st.none(), st.integers(min_value=-5, max_value=2**66), st.booleans(),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
                        st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["max_completion_tokens", "max_tokens", "max_output_tokens", "n", "best_of"]),
                       _CAP_VALUES, max_size=5),
       st.sampled_from(["chat", "completions"]), st.booleans())
def test_the_caps_read_from_the_view_equal_the_body_s(caps: dict[str, Any], route: str, repeat: bool) -> None:
    """The estimate reads a chat or completions request's output caps from its view (decoded once, with the
    request) where it decoded the body again: the same caps for every body, valid or not. A repeated key counts
    with its last value (as the view, and most providers' parsers, read it; the second decode refused the body
    when an earlier value was not a cap, and held the default)."""
    fields = {"model": "m", **({"messages": [{"role": "user", "content": "hi"}]} if route == "chat" else
                                {"prompt": "hi"}), **caps}
    body = expected = json.dumps(fields).encode()
    if repeat and caps:
        name = next(iter(caps))
        body = body[:-1] + b', "' + name.encode() + b'": 7}'
        expected = json.dumps({**fields, name: 7}).encode()
    try:
        view = decode_view(route, body)
    except Exception:  # a body the view refuses is a 400 before any estimate
        return
    assert caps_of(view) == output_tokens(expected)
