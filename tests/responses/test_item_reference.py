"""``item_reference`` input items in-process, on a real SQLite database: a reference to an item the gateway
stored becomes that item for a translated deployment (text and function_call items, from unary and streamed
answers, from a background run, from the conversation ``previous_response_id`` continues), the caller's
ownership decides (another team's item is OpenAI's 404, as an unknown id), a native deployment gets the
reference untouched when its upstream may hold the item, and a gateway without a database keeps its 400."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relaygate.frontends.responses_state import response_of
from tests.asgi.conftest import Reply, call
from tests.responses.conftest import AUTH, Script, Upstream, auth, gateway
from tests.responses.test_state import TOOLS, post, run
from tests.responses.test_translate import events

PREAMBLE = "Let me look that up."
CALL = ("call_w1", "get_weather", '{"city":"Paris"}')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relaygate.db'}"


def ref(iid: str) -> dict[str, str]:
    return {"type": "item_reference", "id": iid}


async def ask(gw: Any, body: dict[str, Any], who: str = "a1") -> Reply:
    return await call(gw, "POST", "/v1/responses", body, auth(who))


async def first_step(gw: Any, up: Upstream, stream: bool) -> dict[str, Any]:
    """A turn whose model writes a line, then calls a tool (the Response object the client got)."""
    up.script = Script(content=PREAMBLE, tool_calls=[CALL], finish="tool_calls")
    r = await post(gw, {"model": "chat", "input": "weather in Paris?", "tools": TOOLS, "stream": stream})
    got: dict[str, Any] = events(r.body)[-1][1]["response"] if stream else r.json()
    return got


def check_not_found(r: Reply, iid: str) -> None:
    assert r.status == 404, r.body
    err = r.json()["error"]
    assert err["message"] == f"Item with id '{iid}' not found."
    assert (err["type"], err["param"]) == ("invalid_request_error", "input")


def test_item_ids_name_their_response() -> None:
    rid = "resp_" + "ab" * 16
    assert response_of("msg_" + rid[5:] + "00") == rid and response_of("fc_" + rid[5:] + "1f") == rid
    assert response_of("rs_" + rid[5:] + "100") == rid  # a 257th item
    for other in ("msg_n1", "msg_" + rid[5:], "fco_" + rid[5:] + "00", "msg_" + "AB" * 17, rid,
                  "msg_68c1f0e0b5d88190a1b2c3d4e5f6a7b80e5d8f9a1b2c3d4e"):
        assert response_of(other) is None, other


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
def test_text_and_function_call_resolved(upstream: Upstream, sqlite_url: str, stream: bool) -> None:
    async def body(gw: Any) -> None:
        one = await first_step(gw, upstream, stream)
        msg, fc = one["output"]
        assert (msg["type"], fc["type"]) == ("message", "function_call")
        upstream.script = Script(content="It is 20C in Paris")
        two = (await post(gw, {"model": "chat", "tools": TOOLS, "stream": stream, "input": [
            {"role": "user", "content": "weather in Paris?"}, ref(msg["id"]), ref(fc["id"]),
            {"type": "function_call_output", "call_id": "call_w1", "output": "20C"}]}, who="a2"))  # same team
        sent = upstream.bodies("/chat/completions")[-1]["messages"]
        assert sent[0] == {"role": "user", "content": "weather in Paris?"}
        assert sent[1]["role"] == "assistant" and sent[1]["content"] == PREAMBLE
        assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in sent[1]["tool_calls"]] == [
            CALL]
        assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "20C"} and len(sent) == 3
        rid = (events(two.body)[-1][1]["response"] if stream else two.json())["id"]
        items = (await call(gw, "GET", f"/v1/responses/{rid}/input_items?order=asc", None, auth("a1"))).json()
        assert [i["id"] for i in items["data"][1:3]] == [msg["id"], fc["id"]]  # stored as the items themselves
        assert items["data"][1]["content"][0]["text"] == PREAMBLE and items["data"][2]["call_id"] == "call_w1"

    run(upstream, sqlite_url, body)


def test_reference_into_the_conversation(upstream: Upstream, sqlite_url: str) -> None:
    """With ``previous_response_id``, an id of the conversation's own items resolves (an input item's too)."""
    async def body(gw: Any) -> None:
        upstream.script = Script(content="first answer")
        one = (await post(gw, {"model": "chat", "input": "remember me"})).json()
        page = (await call(gw, "GET", f"/v1/responses/{one['id']}/input_items", None, auth("a1"))).json()
        [said] = page["data"]
        await post(gw, {"model": "chat", "previous_response_id": one["id"], "input": [
            ref(said["id"]), ref(one["output"][0]["id"])]})
        assert upstream.bodies("/chat/completions")[-1]["messages"] == [
            {"role": "user", "content": "remember me"}, {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "remember me"}, {"role": "assistant", "content": "first answer"}]

    run(upstream, sqlite_url, body)


def test_background_item_ids_name_the_stored_response(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        upstream.script = Script(content="done in the background")
        rid = (await post(gw, {"model": "chat", "input": "slow", "background": True})).json()["id"]
        got: dict[str, Any] = {}
        for _ in range(200):
            got = (await call(gw, "GET", f"/v1/responses/{rid}", None, auth("a1"))).json()
            if got["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        [msg] = got["output"]
        assert response_of(msg["id"]) == rid
        await post(gw, {"model": "chat", "input": [ref(msg["id"]), {"role": "user", "content": "go on"}]})
        assert upstream.bodies("/chat/completions")[-1]["messages"] == [
            {"role": "assistant", "content": "done in the background"}, {"role": "user", "content": "go on"}]

    run(upstream, sqlite_url, body)


def test_another_teams_item_is_not_found(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        one = await first_step(gw, upstream, False)
        asked = len(upstream.bodies("/chat/completions"))
        for model in ("chat", "native"):  # the gateway's own id: no upstream holds it either
            iid = one["output"][0]["id"]
            r = await ask(gw, {"model": model, "input": [ref(iid), {"role": "user", "content": "and?"}]}, "b1")
            if model == "chat":
                check_not_found(r, iid)
            else:
                assert r.status == 200, r.body
                assert upstream.bodies("/responses")[-1]["input"][0] == ref(iid)  # the upstream says 404 itself
        assert len(upstream.bodies("/chat/completions")) == asked

    run(upstream, sqlite_url, body)


def test_unknown_id_is_not_found(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        one = await first_step(gw, upstream, True)
        asked = len(upstream.bodies("/chat/completions"))
        msg_id = one["output"][0]["id"]
        unknown = ["msg_nope", "msg_" + "0" * 34, msg_id[:-2] + "07"]  # no such response; no such item in one
        for iid in unknown:
            r = await ask(gw, {"model": "chat", "input": [ref(iid), {"role": "user", "content": "and?"}]})
            check_not_found(r, iid)
        r = await ask(gw, {"model": "chat", "stream": True, "input": [ref(msg_id), ref("fc_none")]})
        check_not_found(r, "fc_none")
        r = await ask(gw, {"model": "chat", "input": [ref("msg_%00" + "x" * 300)]})
        assert r.status == 404 and r.json()["error"]["message"] == "Item not found: no such id."
        r = await ask(gw, {"model": "chat", "input": [{"type": "item_reference"}]})
        assert r.status == 400 and r.json()["error"]["param"] == "input"
        assert len(upstream.bodies("/chat/completions")) == asked

    run(upstream, sqlite_url, body)


def test_native_passthrough(upstream: Upstream, sqlite_url: str) -> None:
    async def body(gw: Any) -> None:
        # an id the gateway does not know (the upstream's own): sent as it is
        await post(gw, {"model": "native", "input": [ref("msg_upstream1"), {"role": "user", "content": "hi"}]})
        assert upstream.bodies("/responses")[-1]["input"] == [ref("msg_upstream1"), {"role": "user", "content": "hi"}]
        # the upstream stored the turn and holds the conversation: the reference to its item stays a reference
        one = (await post(gw, {"model": "native", "input": "n1"})).json()
        item = one["output"][0]["id"]
        assert item == "msg_n1"
        await post(gw, {"model": "native", "previous_response_id": one["id"],
                        "input": [ref(item), {"role": "user", "content": "n2"}]})
        sent = upstream.bodies("/responses")[-1]
        assert sent["previous_response_id"] == "resp_native2"
        assert sent["input"] == [ref(item), {"role": "user", "content": "n2"}]
        # the turn's input item has the gateway's id, not the upstream's: it goes as the item itself
        [said] = (await call(gw, "GET", f"/v1/responses/{one['id']}/input_items", None, auth("a1"))).json()["data"]
        await post(gw, {"model": "native", "previous_response_id": one["id"], "input": [ref(said["id"])]})
        assert upstream.bodies("/responses")[-1]["input"] == [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "n1"}]}]
        # a translated deployment gets the item from the conversation the gateway stored
        await post(gw, {"model": "chat", "previous_response_id": one["id"],
                        "input": [ref(item), {"role": "user", "content": "n3"}]})
        assert upstream.bodies("/chat/completions")[-1]["messages"][-2:] == [
            {"role": "assistant", "content": "native says hi"}, {"role": "user", "content": "n3"}]
        # an item only the gateway holds (a translated turn's) goes to a native upstream as the item itself
        upstream.script = Script(content="translated words", reasoning="thinking")
        two = (await post(gw, {"model": "chat", "input": "t1"})).json()
        rs_item, msg = two["output"]
        await post(gw, {"model": "native", "input": [ref(rs_item["id"]), ref(msg["id"])]})
        assert upstream.bodies("/responses")[-1]["input"] == [
            {"type": "message", "role": "assistant", "content": msg["content"]}]

    run(upstream, sqlite_url, body)


def test_without_a_database(upstream: Upstream) -> None:
    async def main() -> None:
        async with gateway(upstream) as gw:
            r = await call(gw, "POST", "/v1/responses", {"model": "chat", "input": [ref("msg_1")]}, AUTH)
            assert r.status == 400, r.body
            err = r.json()["error"]
            assert err["param"] == "input" and "item_reference" in err["message"]
            assert "database" in err["message"]
            r = await call(gw, "POST", "/v1/responses", {"model": "native", "input": [ref("msg_1")]}, AUTH)
            assert r.status == 200 and upstream.bodies("/responses")[-1]["input"] == [ref("msg_1")]

    asyncio.run(main())
