"""Conversation state in-process, on a real database (SQLite and PostgreSQL): the store's SQL, turns chained by
``previous_response_id`` (translated and native deployments, unary and streamed), the stored-response routes
and who may read them, retention, ``store: false``, background responses, and a gateway without a database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relaygate.frontends.responses_state import state_of
from relaygate.store import Store, open_store
from relaygate.store.responses import (
    StoredResponse,
    delete_response,
    purge_expired,
    read_chain,
    read_response,
    read_statuses,
    write_responses,
)
from tests.asgi.conftest import Reply, call
from tests.pg import PostgresServer
from tests.providers.conftest import provider
from tests.responses.conftest import AUTH, Script, Upstream, auth, gateway, stored_gateway
from tests.responses.test_translate import events

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relaygate.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relaygate.db'}"


Body = Callable[[Any], Awaitable[None]]


def run(up: Upstream, url: str, body: Body, retention: str | None = "30d", **server: Any) -> None:
    async def main() -> None:
        async with stored_gateway(up, url, retention, **server) as gw:
            await body(gw)

    asyncio.run(main())


async def post(gw: Any, body: dict[str, Any], who: str = "a1") -> Reply:
    r = await call(gw, "POST", "/v1/responses", body, auth(who))
    assert r.status == 200, r.body
    return r


# -- the store's SQL --------------------------------------------------------------------------------------


def test_store_round_trip(db_url: str) -> None:
    async def main() -> None:
        store: Store = await open_store(db_url)
        try:
            now = datetime.now(UTC)
            later = now + timedelta(days=1)
            rows = [StoredResponse(response_id=f"resp_{i}", api_key="h1", team_id="t1", model="chat",
                                   previous_response_id=f"resp_{i - 1}" if i else None, status="completed",
                                   input=[{"type": "message", "role": "user", "content": [
                                       {"type": "input_text", "text": f"turn {i}"}]}],
                                   response={"id": f"resp_{i}", "output": [], "status": "completed"},
                                   expires_at=later) for i in range(3)]
            assert await write_responses(store, rows) == 3
            got = await read_response(store, "resp_2", now)
            assert got is not None and got.input == rows[2].input and got.response == rows[2].response
            assert (got.api_key, got.team_id, got.previous_response_id, got.background) == ("h1", "t1", "resp_1",
                                                                                             False)
            chain = await read_chain(store, "resp_2", now, 10)
            assert [r.response_id for r in chain] == ["resp_2", "resp_1", "resp_0"]
            assert [r.response_id for r in await read_chain(store, "resp_2", now, 1)] == ["resp_2", "resp_1"]
            # a second write of one id updates its result, keeps its input
            done = StoredResponse(response_id="resp_0", api_key="h1", status="cancelled", background=True,
                                  response={"id": "resp_0", "status": "cancelled"}, expires_at=later)
            await write_responses(store, [done])
            again = await read_response(store, "resp_0", now)
            assert again is not None and again.status == "cancelled" and again.background
            assert again.input == rows[0].input
            assert await read_statuses(store, ["resp_0", "resp_2", "resp_none"]) == {"resp_0": "cancelled",
                                                                                      "resp_2": "completed"}
            # an expired row is invisible at once, and gone once purged; the chain stops before it
            await write_responses(store, [StoredResponse(response_id="resp_1", status="completed",
                                                         expires_at=now - timedelta(seconds=1))])
            assert await read_response(store, "resp_1", now) is None
            assert [r.response_id for r in await read_chain(store, "resp_2", now, 10)] == ["resp_2"]
            assert await purge_expired(store, now) == 1
            assert await delete_response(store, "resp_2") and not await delete_response(store, "resp_2")
            assert await read_response(store, "resp_2", now) is None
        finally:
            await store.close()

    asyncio.run(main())


def test_a_nul_in_a_clients_input_does_not_lose_the_response(db_url: str) -> None:
    """PostgreSQL cannot store U+0000: a stored response whose input holds one is kept with U+FFFD there
    (SQLite keeps it as is), never refused and lost (a later turn or GET would find nothing)."""
    async def main() -> None:
        store: Store = await open_store(db_url)
        try:
            now = datetime.now(UTC)
            row = StoredResponse(response_id="resp_nul", api_key="h1", model="chat\x00x", status="completed",
                                 input=[{"type": "message", "role": "user", "content": [
                                     {"type": "input_text", "text": "bin\x00ary \\u0000 literal"}]}],
                                 response={"id": "resp_nul", "output": [], "status": "completed"},
                                 expires_at=now + timedelta(days=1))
            assert await write_responses(store, [row]) == 1
            got = await read_response(store, "resp_nul", now)
            assert got is not None
            sub = "\ufffd" if db_url.startswith("postgres") else "\x00"
            assert got.input[0]["content"][0]["text"] == f"bin{sub}ary \\u0000 literal"
            assert got.model == f"chat{sub}x" and got.response == row.response
        finally:
            await store.close()

    asyncio.run(main())


# -- turns ------------------------------------------------------------------------------------------------


def test_three_turns_translated(upstream: Upstream, db_url: str) -> None:
    async def body(gw: Any) -> None:
        upstream.script = Script(content="first answer")
        one = (await post(gw, {"model": "chat", "input": "hi", "instructions": "be brief"})).json()
        assert one["store"] is True and one["previous_response_id"] is None
        upstream.script = Script(content="second answer")
        r = await post(gw, {"model": "chat", "input": "and then?", "stream": True, "previous_response_id": one["id"]})
        evs = events(r.body)
        two = evs[-1][1]["response"]
        assert evs[-1][0] == "response.completed" and two["previous_response_id"] == one["id"]
        upstream.script = Script(content="third answer")
        three = (await post(gw, {"model": "chat", "input": [{"role": "user", "content": "last"}],
                                 "previous_response_id": two["id"]})).json()
        sent = upstream.bodies("/chat/completions")[-1]["messages"]
        assert sent == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "first answer"},
                        {"role": "user", "content": "and then?"}, {"role": "assistant", "content": "second answer"},
                        {"role": "user", "content": "last"}]  # the instructions are not carried over
        got = await call(gw, "GET", f"/v1/responses/{three['id']}", None, auth("a1"))
        assert got.status == 200 and got.json() == three
        st = state_of(gw)
        for _ in range(100):
            if not st.pending:
                break
            await asyncio.sleep(0.01)
        assert not st.pending and gw.store is not None
        row = await read_response(gw.store, two["id"], datetime.now(UTC))
        assert row is not None and row.previous_response_id == one["id"] and row.model == "chat"
        assert row.api_key is not None and (row.team_id, row.user_id) == ("t1", "u1")
        assert row.deployment_id and row.response["output"][0]["content"][0]["text"] == "second answer"
        assert row.input[0]["content"] == [{"type": "input_text", "text": "and then?"}] and row.input[0]["id"]

    run(upstream, db_url, body)


def test_function_call_round_trip(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        upstream.script = Script(content="", tool_calls=[("call_w1", "get_weather", '{"city":"Paris"}')],
                                 finish="tool_calls")
        first = (await post(gw, {"model": "chat", "input": "weather in Paris?", "tools": TOOLS})).json()
        (fc,) = [o for o in first["output"] if o["type"] == "function_call"]
        upstream.script = Script(content="It is 20C in Paris")
        second = (await post(gw, {"model": "chat", "tools": TOOLS, "previous_response_id": first["id"], "input": [
            {"type": "function_call_output", "call_id": fc["call_id"], "output": "20C"}]})).json()
        assert second["output"][0]["content"][0]["text"] == "It is 20C in Paris"
        sent = upstream.bodies("/chat/completions")[-1]["messages"]
        assert sent[0] == {"role": "user", "content": "weather in Paris?"}
        assert sent[1]["tool_calls"][0]["id"] == "call_w1" and sent[1]["tool_calls"][0]["function"]["name"] == \
            "get_weather"
        assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "20C"}

    run(upstream, sqlite_url, body)


def test_native_holds_its_state(upstream: Upstream, db_url: str) -> None:
    async def body(gw: Any) -> None:
        one = (await post(gw, {"model": "native", "input": "n1"})).json()
        assert one["id"] != "resp_native1" and one["id"].startswith("resp_")  # ours, mapped to the upstream's
        assert upstream.bodies("/responses")[-1]["store"] is True
        r = await post(gw, {"model": "native", "input": "n2", "previous_response_id": one["id"], "stream": True})
        evs = events(r.body)
        two = evs[-1][1]["response"]
        assert two["id"] not in ("resp_native2", one["id"]) and b"resp_native" not in r.body
        assert evs[0][1]["response"]["id"] == two["id"] and two["model"] == "native"
        assert two["previous_response_id"] == one["id"]
        sent = upstream.bodies("/responses")[-1]
        assert sent["previous_response_id"] == "resp_native1" and sent["input"] == "n2"  # the upstream holds it
        await post(gw, {"model": "chat", "input": "n3", "previous_response_id": two["id"]})
        assert upstream.bodies("/chat/completions")[-1]["messages"] == [
            {"role": "user", "content": "n1"}, {"role": "assistant", "content": "native says hi"},
            {"role": "user", "content": "n2"}, {"role": "assistant", "content": "native says hi"},
            {"role": "user", "content": "n3"}]
        got = await call(gw, "GET", f"/v1/responses/{two['id']}", None, auth("a1"))
        assert got.status == 200 and got.json()["id"] == two["id"]
        assert (await call(gw, "DELETE", f"/v1/responses/{one['id']}", None, auth("a1"))).status == 200
        assert upstream.requests[-1][0] == "/v1/responses/resp_native1"  # the upstream's copy goes too

    run(upstream, db_url, body)


def test_database_down_keeps_pending_rows(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        store, st = gw.store, state_of(gw)
        await store.close()  # the database goes away: the answers still go out, the rows wait in this worker
        rid = (await post(gw, {"model": "chat", "input": "while down"})).json()["id"]
        await asyncio.sleep(0.05)
        assert rid in st.pending
        got = await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))
        assert got.status == 200 and got.json()["id"] == rid
        nxt = await post(gw, {"model": "chat", "input": "next", "previous_response_id": rid})
        assert nxt.json()["previous_response_id"] == rid
        await store.connect()  # back: the writer's next retry writes them
        for _ in range(200):
            if not st.pending:
                break
            await asyncio.sleep(0.05)
        assert not st.pending
        assert await read_response(store, rid, datetime.now(UTC)) is not None

    run(upstream, sqlite_url, body)


# -- the routes, and who may read -----------------------------------------------------------------------


def test_routes_and_owners(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        rid = (await post(gw, {"model": "chat", "input": [
            {"role": "user", "content": "one"}, {"role": "user", "content": "two"},
            {"role": "user", "content": "three"}]})).json()["id"]
        for who, status in (("a1", 200), ("a2", 200), ("b1", 404)):
            r = await call(gw, "GET", f"/responses/{rid}", None, auth(who))
            assert r.status == status, (who, r.body)
        assert (await call(gw, "GET", f"/v1/responses/{rid}", None, AUTH)).status == 200  # the master key
        other = await call(gw, "GET", f"/v1/responses/{rid}", None, auth("b1"))
        missing = await call(gw, "GET", "/v1/responses/resp_nope", None, auth("b1"))
        assert other.json()["error"]["message"] == f"Response with id '{rid}' not found."
        assert other.json()["error"]["type"] == missing.json()["error"]["type"] == "invalid_request_error"
        r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", "previous_response_id": rid},
                       auth("b1"))
        assert r.status == 404 and r.json()["error"]["param"] == "previous_response_id"
        for method, path in (("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel")):
            assert (await call(gw, method, f"/v1/responses/{rid}{path}", None, auth("b1"))).status == 404
        page = (await call(gw, "GET", f"/v1/responses/{rid}/input_items", None, auth("a1"))).json()
        assert page["object"] == "list" and not page["has_more"]
        assert [i["content"][0]["text"] for i in page["data"]] == ["three", "two", "one"]  # desc by default
        asc = (await call(gw, "GET", f"/v1/responses/{rid}/input_items?order=asc&limit=1", None, auth("a1"))).json()
        assert [i["content"][0]["text"] for i in asc["data"]] == ["one"] and asc["has_more"]
        nxt = (await call(gw, "GET", f"/v1/responses/{rid}/input_items?order=asc&after={asc['last_id']}", None,
                          auth("a1"))).json()
        assert [i["content"][0]["text"] for i in nxt["data"]] == ["two", "three"] and nxt["first_id"]
        bad = await call(gw, "GET", f"/v1/responses/{rid}/input_items?limit=0", None, auth("a1"))
        assert bad.status == 400 and bad.json()["error"]["param"] == "limit"
        assert (await call(gw, "GET", "/v1/responses/resp_%00bad", None, auth("a1"))).status == 404
        r = await call(gw, "DELETE", f"/v1/responses/{rid}", None, auth("a2"))
        assert r.status == 200 and r.json() == {"id": rid, "object": "response", "deleted": True}
        assert (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).status == 404
        assert (await call(gw, "GET", f"/v1/responses/{rid}", None, {})).status == 401

    run(upstream, sqlite_url, body)


def test_expired_is_not_found(upstream: Upstream, db_url: str) -> None:
    async def body(gw: Any) -> None:
        rid = (await post(gw, {"model": "chat", "input": "hi"})).json()["id"]
        st = state_of(gw)
        row = st.pending.get(rid) or await read_response(gw.store, rid, datetime.now(UTC))
        assert row is not None and row.expires_at is not None
        assert row.expires_at - datetime.now(UTC) > timedelta(hours=1)  # 2h of retention
        past = datetime.now(UTC) - timedelta(seconds=1)
        st.pending.pop(rid, None)
        await write_responses(gw.store, [StoredResponse(**{**{f: getattr(row, f) for f in row.__struct_fields__},
                                                           "expires_at": past})])
        assert (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).status == 404
        r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", "previous_response_id": rid},
                       auth("a1"))
        assert r.status == 404
        assert await purge_expired(gw.store, datetime.now(UTC)) == 1

    run(upstream, db_url, body, retention="2h")


def test_the_purge_goes_in_batches_by_one_process_at_a_time(upstream: Upstream, db_url: str) -> None:
    async def body(gw: Any) -> None:
        now = datetime.now(UTC)
        await write_responses(gw.store, [StoredResponse(response_id=f"resp_old{i}", status="completed",
                                                        expires_at=now - timedelta(seconds=10 + i))
                                         for i in range(5)] +
                              [StoredResponse(response_id="resp_live", status="completed",
                                              expires_at=now + timedelta(hours=1))])
        st = state_of(gw)
        other = await open_store(gw.store.url if gw.store.dialect == "sqlite" else db_url)
        try:
            async with other.job_lock("responses_retention") as held:  # another worker purges now
                assert held
                assert await st._purge(gw.store, batch=2) == "skipped_locked"
            assert await st._purge(gw.store, batch=2) == "completed"  # batches of 2, 2, 1
        finally:
            await other.close()
        later = datetime.now(UTC)
        assert [await read_response(gw.store, f"resp_old{i}", now - timedelta(hours=1)) for i in range(5)] == \
            [None] * 5
        assert await read_response(gw.store, "resp_live", later) is not None
        assert gw.metrics.events.get("responses_expired") == 5

    run(upstream, db_url, body, retention="2h")


def test_store_false_stores_nothing(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        unary = (await post(gw, {"model": "chat", "input": "hi", "store": False})).json()
        streamed = events((await post(gw, {"model": "chat", "input": "hi", "store": False, "stream": True})).body)
        native = (await post(gw, {"model": "native", "input": "hi", "store": False})).json()
        assert unary["store"] is False and native["id"] == "resp_native1"  # nothing to map: the upstream's id
        assert upstream.bodies("/responses")[-1]["store"] is False
        assert not state_of(gw).pending
        for rid in (unary["id"], streamed[-1][1]["response"]["id"]):
            assert (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).status == 404
        async with gw.store._read() as c:
            assert (await c.fetch("SELECT COUNT(*) AS n FROM rg_responses", []))[0]["n"] == 0

    run(upstream, sqlite_url, body)


def test_bad_input(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        for extra, param in (({"previous_response_id": 7}, "previous_response_id"), ({"background": "yes"}, "background"),
                             ({"background": True, "stream": True}, "background")):
            r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", **extra}, auth("a1"))
            assert r.status == 400 and r.json()["error"]["param"] == param, r.body
        huge = "resp_" + "x/\n" * 500
        r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", "previous_response_id": huge},
                       auth("a1"))
        assert r.status == 404 and len(r.body) < 300  # an id the gateway never hands out is not echoed
        big = "word " * 600
        one = (await post(gw, {"model": "chat", "input": big})).json()["id"]
        two = (await post(gw, {"model": "chat", "input": big, "previous_response_id": one})).json()["id"]
        r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": big, "previous_response_id": two},
                       auth("a1"))
        assert r.status == 400 and "larger" in r.json()["error"]["message"]  # the turns outgrow a request

    run(upstream, sqlite_url, body, max_request_body_bytes=4000)


# -- background ----------------------------------------------------------------------------------------


def test_background_poll_and_cancel(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        upstream.script = Script(content="done in the background", delay=0.2)
        queued = (await post(gw, {"model": "chat", "input": "slow", "background": True})).json()
        assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
        rid = queued["id"]
        status = ""
        for _ in range(200):
            got = (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).json()
            status = got["status"]
            if status == "completed":
                break
            await asyncio.sleep(0.05)
        assert status == "completed" and got["id"] == rid and got["background"] is True
        assert got["output"][0]["content"][0]["text"] == "done in the background"
        upstream.script = Script(content="never", delay=5)
        rid = (await post(gw, {"model": "chat", "input": "slower", "background": True})).json()["id"]
        r = await call(gw, "POST", f"/v1/responses/{rid}/cancel", None, auth("a2"))
        assert r.status == 200 and r.json()["status"] == "cancelled"
        assert (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).json()["status"] == "cancelled"
        assert not state_of(gw).runs
        done = await call(gw, "POST", f"/v1/responses/{got['id']}/cancel", None, auth("a1"))
        assert done.status == 200 and done.json()["status"] == "completed"  # nothing left to cancel
        plain = (await post(gw, {"model": "chat", "input": "x"})).json()["id"]
        r = await call(gw, "POST", f"/v1/responses/{plain}/cancel", None, auth("a1"))
        assert r.status == 400 and "background" in r.json()["error"]["message"]
        r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", "background": True,
                                                     "store": False}, auth("a1"))
        assert r.status == 400 and r.json()["error"]["param"] == "background"

    run(upstream, sqlite_url, body)


def test_cancel_reaches_the_worker_running_it(upstream: Upstream, sqlite_url: str) -> None:
    """Two gateways on one database (two workers): a cancel that reaches the one not running the response
    marks it, and the one running it stops."""
    async def main() -> None:
        async with stored_gateway(upstream, sqlite_url) as a, stored_gateway(upstream, sqlite_url) as b:
            upstream.script = Script(content="never", delay=5)
            rid = (await post(a, {"model": "chat", "input": "slow", "background": True})).json()["id"]
            seen = await call(b, "GET", f"/v1/responses/{rid}", None, auth("a2"))  # the row, from the database
            assert seen.status == 200 and seen.json()["status"] == "queued"
            r = await call(b, "POST", f"/v1/responses/{rid}/cancel", None, auth("a1"))
            assert r.status == 200 and r.json()["status"] == "cancelled"
            runs = state_of(a).runs
            for _ in range(100):
                if rid not in runs:
                    break
                await asyncio.sleep(0.1)
            assert rid not in runs
            got = await call(a, "GET", f"/v1/responses/{rid}", None, auth("a1"))
            assert got.json()["status"] == "cancelled"

    asyncio.run(main())


def test_background_native_passes_through(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        queued = (await post(gw, {"model": "native", "input": "slow", "background": True})).json()
        assert queued["status"] == "queued" and queued["id"] != "resp_native1"
        assert upstream.bodies("/responses")[-1]["background"] is True
        got = (await call(gw, "GET", f"/v1/responses/{queued['id']}", None, auth("a1"))).json()
        assert got["status"] == "completed" and got["id"] == queued["id"]  # asked of the upstream
        assert upstream.requests[-1][0] == "/v1/responses/resp_native1"
        queued = (await post(gw, {"model": "native", "input": "slow", "background": True})).json()
        r = await call(gw, "POST", f"/v1/responses/{queued['id']}/cancel", None, auth("a1"))
        assert r.status == 200 and r.json()["status"] == "cancelled" and r.json()["id"] == queued["id"]
        assert upstream.requests[-1][0] == "/v1/responses/resp_native2/cancel"

    run(upstream, sqlite_url, body)


# -- without a database ---------------------------------------------------------------------------------


def test_without_a_database(upstream: Upstream) -> None:
    async def main() -> None:
        async with gateway(upstream) as gw:
            r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "hi"}, AUTH)
            assert r.status == 200 and r.json()["store"] is False
            r = await call(gw, "GET", f"/v1/responses/{r.json()['id']}", None, AUTH)
            assert r.status == 404 and "no database" in r.json()["error"]["message"]
            for field in ("previous_response_id", "background"):
                value: Any = "resp_1" if field == "previous_response_id" else True
                r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": "x", field: value}, AUTH)
                assert r.status == 400 and r.json()["error"]["param"] == field
                assert "database" in r.json()["error"]["message"]

    asyncio.run(main())


# -- which adapters serve /responses themselves ---------------------------------------------------------


def test_native_responses_capability() -> None:
    native = {"openai/gpt-4o": "https://api.openai.com/v1/responses",
              "azure/dep": "https://x.openai.azure.com/openai/responses?api-version=2025-04-01-preview"}
    for model, url in native.items():
        p = provider(model, api_key="k", api_base="https://x.openai.azure.com", api_version="2025-04-01-preview") \
            if model.startswith("azure/") else provider(model, api_key="k")
        assert p.native_responses and p.responses_url() == url
    v1 = provider("azure/dep", api_key="k", api_base="https://x.openai.azure.com/openai/v1")
    assert v1.responses_url("/resp_1/cancel") == "https://x.openai.azure.com/openai/v1/responses/resp_1/cancel"
    for model in ("hosted_vllm/m", "groq/m", "azure_ai/m", "anthropic/claude-x", "gemini/gemini-2.0-flash",
                  "text-completion-openai/m"):
        p = provider(model, api_key="k", api_base="https://h.example/v1")
        assert not p.native_responses, model
