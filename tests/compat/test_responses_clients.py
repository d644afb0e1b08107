"""End to end: the official ``openai`` Python SDK's Responses API against a real Granian gateway, once per
deployment: ``openai/`` (native passthrough), ``anthropic/`` and ``gemini/`` (translated), all served by the
loopback provider mocks of :mod:`tests.compat.responses_mocks`.

Covered: ``responses.create`` (with image and PDF input), ``responses.stream`` (events and
``get_final_response()``), a provider's refusal before the stream and its failure mid-stream;
``previous_response_id`` over three turns with GET / DELETE / ``input_items``, OpenAI's function-calling loop
over it, ``store: false``, stored responses that belong to their key; function calling (a round trip,
streamed, forced, parallel); reasoning summaries and OpenAI's stateless reasoning-with-tools loop; structured
output (``text.format`` json_schema, ``responses.parse`` and its stream with a pydantic model).

Each test asserts what the client got (text, tool calls, ids, usage numbers as the mock sent them, mapped by
the provider's rules) and what the upstream received (the provider's path and auth from the config, the
upstream model name, the translated fields); the mock refuses what the real provider refuses, and every test
ends with its list of refusals empty (or holding exactly the one it asked for).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest

from tests.compat.responses_mocks import (
    GEMINI_3_GROUP,
    MODELS,
    OVERLOADED,
    PROVIDERS,
    THOUGHT,
    Mock,
    Received,
    check_reasoning_request,
    check_route,
    check_tool_result,
    check_translated_text,
    expected_usage,
    gateway_config,
    reply_text,
    sample,
    serve_mock,
    tool_reply,
)
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-responses-clients-master"
ALICE, BOB = "sk-responses-alice", "sk-responses-bob"  # virtual keys of no team
WEATHER: dict[str, Any] = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"], "additionalProperties": False},
                           "strict": True}


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Mock]]:
    with serve_mock() as mock, start_gateway(gateway_config(mock.url, MASTER, (ALICE, BOB))) as gw:
        yield gw, mock


@pytest.fixture
def mock(stack: tuple[GatewayProc, Mock]) -> Iterator[Mock]:
    m = stack[1]
    before = len(m.problems)
    yield m
    assert m.problems[before:] == [], "the mock refused what the real provider would refuse"


@pytest.fixture
def client(stack: tuple[GatewayProc, Mock]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack[0].url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


def tag(name: str, provider: str) -> str:
    """A prompt of its own for one case, so the upstream requests it caused can be found."""
    return f"{name} [{provider} {uuid.uuid4().hex[:8]}]"


def only(mock: Mock, prompt: str, provider: str) -> Received:
    sent = mock.for_prompt(prompt)
    assert [r.provider for r in sent] == [provider], [(r.provider, r.path) for r in sent]
    return sent[0]


def check_usage(usage: Any, provider: str) -> None:
    want = expected_usage(provider)
    assert usage is not None
    got = {"input_tokens": usage.input_tokens, "cached_tokens": usage.input_tokens_details.cached_tokens,
           "output_tokens": usage.output_tokens, "reasoning_tokens": usage.output_tokens_details.reasoning_tokens,
           "total_tokens": usage.total_tokens}
    assert got == want


def check_text_request(rec: Received, provider: str, prompt: str, instructions: str, max_tokens: int,
                       temperature: float) -> None:
    """The translated (or passed through) instructions, prompt, token limit and temperature."""
    b = rec.body
    if provider == "openai":
        assert b["input"] == prompt and b["instructions"] == instructions
        assert b["max_output_tokens"] == max_tokens and b["temperature"] == temperature
    else:
        check_translated_text(rec, provider, prompt, instructions, max_tokens, temperature)


# ------------------------------------------------------------------------------------------ create, stream


@pytest.mark.parametrize("provider", PROVIDERS)
def test_create(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("say hello", provider)
    r = client.responses.create(model=MODELS[provider], input=prompt, instructions="be brief",
                                max_output_tokens=200, temperature=0.25)
    assert r.output_text == reply_text(prompt) and r.status == "completed"
    assert r.model == MODELS[provider] and r.object == "response"
    [msg] = r.output
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    check_usage(r.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    check_text_request(rec, provider, prompt, "be brief", 200, 0.25)
    assert r.id.startswith("resp_") and r.instructions == "be brief" and r.max_output_tokens == 200


PNG, PDF = "iVBORw0KGgoAAAANSUhEUg==", "JVBERi0xLjQKJcTl8uXr"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_image_and_pdf_input(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """``input_image`` and ``input_file`` as data URLs become the provider's own image and document parts."""
    prompt = tag("what is in these files?", provider)
    r = client.responses.create(model=MODELS[provider], input=[{"role": "user", "content": [
        {"type": "input_text", "text": prompt},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_file", "filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}]}])
    assert r.output_text == reply_text(prompt)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    if provider == "openai":
        assert rec.body["input"][0]["content"][1:] == [
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
            {"type": "input_file", "filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}]
    elif provider == "anthropic":
        assert rec.body["messages"] == [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]
    else:
        assert rec.body["contents"] == [{"role": "user", "parts": [
            {"text": prompt}, {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_events_and_final_response(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("stream a few words", provider)
    kinds: list[str] = []
    seqs: list[int] = []
    deltas: list[str] = []
    with client.responses.stream(model=MODELS[provider], input=prompt, instructions="be brief",
                                 max_output_tokens=120, temperature=0.5) as s:
        for ev in s:
            kinds.append(ev.type)
            seqs.append(ev.sequence_number)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
            if ev.type == "response.created":
                created_id = ev.response.id
        final = s.get_final_response()
    want = reply_text(prompt)
    assert seqs == list(range(len(seqs)))
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds[2:6] == ["response.output_item.added", "response.content_part.added",
                          "response.output_text.delta", "response.output_text.delta"]
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert len(deltas) > 1 and "".join(deltas) == want
    assert final.output_text == want and final.status == "completed" and final.id == created_id
    assert final.model == MODELS[provider]
    check_usage(final.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, True, MASTER)
    check_text_request(rec, provider, prompt, "be brief", 120, 0.5)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_refusal_is_the_clients_bad_request(client: openai.OpenAI, mock: Mock, provider: str,
                                                     stream: bool) -> None:
    """A request the provider refuses (too many output tokens for its model) reaches the client as a
    ``BadRequestError`` in OpenAI's shape with the provider's words (LiteLLM's), before any event; not retried."""
    prompt = tag("write a whole book", provider)
    with pytest.raises(openai.BadRequestError) as ei:
        if stream:
            with client.responses.stream(model=MODELS[provider], input=prompt, max_output_tokens=999_999) as s:
                for _ in s:
                    pass
        else:
            client.responses.create(model=MODELS[provider], input=prompt, max_output_tokens=999_999)
    err = ei.value
    assert err.status_code == 400 and isinstance(err.body, dict)
    words = {"openai": "Expected a value <= 32768, but got 999999 instead",
             "anthropic": "max_tokens: 999999 > 64000",
             "gemini": "maxOutputTokens value of 999999"}[provider]
    assert words in err.body["message"] and err.body["code"] == "400"
    assert MASTER not in json.dumps(err.body)
    [rec] = mock.for_prompt(prompt)  # one attempt: a 400 is not retried
    assert rec.status == 400
    check_route(rec, provider, stream, MASTER)
    refused = [p for p in mock.problems if words in p]
    assert len(refused) == 1
    mock.problems.remove(refused[0])  # the refusal this test asked for


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_broken_off_mid_way(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """The provider fails after the first words (Anthropic's overloaded_error event, Gemini's error object, OpenAI's
    error event): the client has those words, then one last event naming the failure, numbered in sequence; the
    deployment answers the next request (a failure after the first frame is not the router's)."""
    prompt = tag(f"a long story {OVERLOADED}", provider)
    kinds: list[str] = []
    seqs: list[int] = []
    deltas: list[str] = []
    last: Any = None
    with client.responses.stream(model=MODELS[provider], input=prompt) as s:
        for ev in s:
            kinds.append(ev.type)
            seqs.append(ev.sequence_number)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
            last = ev
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            s.get_final_response()
    assert seqs == list(range(len(seqs))) and "".join(deltas) == "turn 1: "
    assert kinds[:6] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta", "response.output_text.delta"]
    if provider == "openai":  # the upstream's own event, passed through
        assert kinds[6:] == ["error"] and "The server had an error" in last.message
    else:
        assert kinds[6:] == ["response.failed"] and last.response.status == "failed"
        assert last.response.error is not None and last.response.error.code == "server_error"
        words = {"anthropic": "Overloaded", "gemini": "The model is overloaded"}[provider]
        assert words in last.response.error.message
    check_route(only(mock, prompt, provider), provider, True, MASTER)
    after = tag("and then a short one", provider)
    assert client.responses.create(model=MODELS[provider], input=after).output_text == reply_text(after)


# ------------------------------------------------------------------------------------------ conversation state


def _conversation(rec: Received) -> list[tuple[str, str]]:
    assert rec.ask is not None
    return [(t.role, t.text) for t in rec.ask.turns]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_previous_response_id_three_turns(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    model = MODELS[provider]
    p1, p2, p3 = (tag(f"turn {n} of a chat", provider) for n in (1, 2, 3))
    r1 = client.responses.create(model=model, input=p1, instructions="answer in one line")
    assert r1.output_text == reply_text(p1, 1)
    with client.responses.stream(model=model, input=p2, previous_response_id=r1.id) as s:  # a streamed turn too
        r2 = s.get_final_response()
    assert r2.output_text == reply_text(p2, 2) and r2.previous_response_id == r1.id
    r3 = client.responses.create(model=model, input=[{"role": "user", "content": p3}], previous_response_id=r2.id)
    assert r3.output_text == reply_text(p3, 3) and r3.previous_response_id == r2.id
    assert len({r1.id, r2.id, r3.id}) == 3
    check_usage(r3.usage, provider)
    # what the model saw on the third turn: the whole conversation, without the first turn's instructions
    # (OpenAI: instructions are not carried over with previous_response_id)
    rec = only(mock, p3, provider)
    check_route(rec, provider, False, MASTER)
    assert _conversation(rec) == [("user", p1), ("assistant", reply_text(p1, 1)), ("user", p2),
                                  ("assistant", reply_text(p2, 2)), ("user", p3)]
    assert _conversation(only(mock, p2, provider))[0] == ("user", p1)

    items = client.responses.input_items.list(r3.id)
    texts = [c.text for it in items.data if it.type == "message" for c in it.content if hasattr(c, "text")]
    assert p3 in texts and p1 not in texts  # the items of that turn's input only
    got = client.responses.retrieve(r3.id)
    assert got.id == r3.id and got.output_text == reply_text(p3, 3) and got.model == model
    deleted = client.responses.delete(r2.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r2.id)
    assert client.responses.retrieve(r1.id).output_text == reply_text(p1, 1)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_function_call_output_after_previous_response_id(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """OpenAI's own function-calling loop: the next turn sends only the outputs, the call is in the stored turn."""
    model = MODELS[provider]
    prompt = tag("What is the weather in Paris? (stored)", provider)
    first = client.responses.create(model=model, input=prompt, tools=[WEATHER])
    [call] = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(model=model, tools=[WEATHER], previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C and sunny"}])
    assert second.output_text == tool_reply("20C and sunny") and second.previous_response_id == first.id
    check_usage(second.usage, provider)
    asked, answered = mock.for_prompt(prompt)
    for rec in (asked, answered):
        check_route(rec, provider, False, MASTER)
    assert answered.ask is not None
    [user, assistant, results] = answered.ask.turns
    assert user.text == prompt and [c[1:] for c in assistant.calls] == [("get_weather", {"city": "Paris"})]
    assert [r[1] for r in results.results] == ["20C and sunny"]
    if provider != "openai":
        check_tool_result(answered, provider, call.call_id, "20C and sunny")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_store_false_is_not_kept(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """The stateless mode of the Agents SDK and Codex: ``store: false`` and encrypted reasoning asked for."""
    prompt = tag("do not keep this", provider)
    r = client.responses.create(model=MODELS[provider], input=prompt, store=False,
                                include=["reasoning.encrypted_content"])
    assert r.output_text == reply_text(prompt) and r.store is False
    check_usage(r.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    if provider == "openai":
        assert rec.body["store"] is False and rec.body["include"] == ["reasoning.encrypted_content"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stored_responses_belong_to_their_key(stack: tuple[GatewayProc, Mock], mock: Mock, provider: str) -> None:
    url = stack[0].url + "/v1"
    prompt = tag("a secret of alice", provider)
    with openai.OpenAI(base_url=url, api_key=ALICE, max_retries=0, timeout=20) as alice, \
            openai.OpenAI(base_url=url, api_key=BOB, max_retries=0, timeout=20) as bob:
        r = alice.responses.create(model=MODELS[provider], input=prompt)
        assert alice.responses.retrieve(r.id).output_text == reply_text(prompt)
        with pytest.raises(openai.NotFoundError):  # 404 as if it did not exist, never 403
            bob.responses.retrieve(r.id)
        follow = tag("bob continues alice", provider)
        with pytest.raises(openai.NotFoundError) as ei:
            bob.responses.create(model=MODELS[provider], input=follow, previous_response_id=r.id)
        assert prompt not in str(ei.value.body)
        assert mock.for_prompt(follow) == []  # refused before any upstream call
        with pytest.raises(openai.NotFoundError):
            bob.responses.delete(r.id)
        assert alice.responses.retrieve(r.id).id == r.id


# ------------------------------------------------------------------------------------------ function calling


@pytest.mark.parametrize("provider", PROVIDERS)
def test_function_call_round_trip(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    model = MODELS[provider]
    prompt = tag("What is the weather in Paris?", provider)
    first = client.responses.create(model=model, input=[{"role": "user", "content": prompt}], tools=[WEATHER])
    [call] = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id and call.id and call.status == "completed"
    check_usage(first.usage, provider)
    second = client.responses.create(model=model, tools=[WEATHER], input=[
        {"role": "user", "content": prompt},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C and sunny"}])
    assert second.output_text == tool_reply("20C and sunny")
    check_usage(second.usage, provider)

    asked, answered = mock.for_prompt(prompt)
    for rec in (asked, answered):
        check_route(rec, provider, False, MASTER)
    check_tool_result(answered, provider, call.call_id, "20C and sunny")
    params = WEATHER["parameters"]
    if provider == "openai":
        assert call.call_id == asked.answer["call_id"]
        assert asked.body["tools"] == [WEATHER]
    elif provider == "anthropic":
        assert call.call_id == asked.answer["call_id"]  # Claude's toolu_ id is the call id
        assert asked.body["tools"] == [{"name": "get_weather", "description": "The weather in a city",
                                        "input_schema": params}]
    else:
        [decl] = asked.body["tools"][0]["functionDeclarations"]
        assert decl["name"] == "get_weather" and decl["description"] == "The weather in a city"
        assert decl.get("parameters", decl.get("parametersJsonSchema"))["properties"] == params["properties"]
        assert call.call_id.startswith("call_")  # Gemini sends no call ids: the gateway makes one


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_function_call(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("Stream the weather in Paris", provider)
    kinds: list[str] = []
    args: list[str] = []
    with client.responses.stream(model=MODELS[provider], input=prompt, tools=[WEATHER]) as s:
        for ev in s:
            kinds.append(ev.type)
            if ev.type == "response.function_call_arguments.delta":
                args.append(ev.delta)
            if ev.type == "response.function_call_arguments.done":
                done_args = ev.arguments
        final = s.get_final_response()
    [call] = [o for o in final.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert "".join(args) == done_args == call.arguments
    assert kinds[2] == "response.output_item.added" and kinds[-2:] == ["response.output_item.done",
                                                                       "response.completed"]
    check_usage(final.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, True, MASTER)
    if provider != "gemini":
        assert call.call_id == rec.answer["call_id"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_forced_tool_choice(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """``tool_choice`` naming a function: the model must call it even for a prompt it would answer in words."""
    prompt = tag("say anything", provider)
    r = client.responses.create(model=MODELS[provider], input=prompt, tools=[WEATHER],
                                tool_choice={"type": "function", "name": "get_weather"})
    [call] = r.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {
        "city": "Paris"}
    assert r.tool_choice is not None
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    if provider == "openai":
        assert rec.body["tool_choice"] == {"type": "function", "name": "get_weather"}
    elif provider == "anthropic":
        assert rec.body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    else:
        assert rec.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                                    "allowedFunctionNames": ["get_weather"]}}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_function_calls_round_trip(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    model = MODELS[provider]
    prompt = tag("What is the weather in Paris and in Rome?", provider)
    first = client.responses.create(model=model, input=prompt, tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert len({c.call_id for c in calls}) == 2
    outputs = {"Paris": "20C and sunny", "Rome": "25C and cloudy"}
    second = client.responses.create(model=model, tools=[WEATHER], input=[
        {"role": "user", "content": prompt},
        *({"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls),
        *({"type": "function_call_output", "call_id": c.call_id, "output": outputs[json.loads(c.arguments)["city"]]}
          for c in calls)])
    assert second.output_text == tool_reply("20C and sunny; 25C and cloudy")
    asked, answered = mock.for_prompt(prompt)
    if provider != "gemini":
        assert [c.call_id for c in calls] == asked.answer["call_ids"]
    if provider == "anthropic":  # both results in the one user turn after the assistant's two tool_use blocks
        assert [b["tool_use_id"] for b in answered.body["messages"][-1]["content"]] == [c.call_id for c in calls]
    elif provider == "gemini":  # as many function responses as calls, in the turn after them
        assert [p["functionResponse"]["response"] for p in answered.body["contents"][-1]["parts"]] == [
            {"content": "20C and sunny"}, {"content": "25C and cloudy"}]
        assert len(answered.body["contents"][-2]["parts"]) == 2


def test_function_call_round_trip_gemini_3(client: openai.OpenAI, mock: Mock) -> None:
    prompt = tag("What is the weather in Paris?", "gemini-3")
    first = client.responses.create(model=GEMINI_3_GROUP, input=prompt, tools=[WEATHER])
    [call] = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(model=GEMINI_3_GROUP, tools=[WEATHER], input=[
        {"role": "user", "content": prompt},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C and sunny"}])
    assert second.output_text == tool_reply("20C and sunny")
    _asked, answered = mock.for_prompt(prompt)
    [fc] = answered.body["contents"][1]["parts"]
    assert fc["thoughtSignature"] and fc["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}


# ------------------------------------------------------------------------------------------ reasoning


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reasoning_summary(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """``reasoning`` with a summary asked for: Claude's thinking and Gemini's thoughts come back as the summary of a
    reasoning item, first in the output, unary and streamed."""
    model = MODELS[provider]
    prompt = tag("think first", provider)
    r = client.responses.create(model=model, input=prompt, reasoning={"effort": "low", "summary": "auto"})
    reasoning, message = r.output
    assert reasoning.type == "reasoning" and [s.text for s in reasoning.summary] == [THOUGHT]
    assert message.type == "message" and r.output_text == reply_text(prompt)
    check_usage(r.usage, provider)
    streamed = tag("think first, streamed", provider)
    summary: list[str] = []
    with client.responses.stream(model=model, input=streamed, reasoning={"effort": "low", "summary": "auto"}) as s:
        for ev in s:
            if ev.type == "response.reasoning_summary_text.delta":
                summary.append(ev.delta)
        final = s.get_final_response()
    assert "".join(summary) == THOUGHT and final.output_text == reply_text(streamed)
    assert final.output[0].type == "reasoning" and [s.text for s in final.output[0].summary] == [THOUGHT]
    for p, stream in ((prompt, False), (streamed, True)):
        rec = only(mock, p, provider)
        check_route(rec, provider, stream, MASTER)
        check_reasoning_request(rec, provider)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_reasoning_items_passed_back_in_a_tool_loop(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    """OpenAI's stateless pattern for reasoning with tools: ``store: false``, encrypted reasoning included, and
    every output item (reasoning, function call) sent back with the function's output."""
    model = MODELS[provider]
    prompt = tag("What is the weather in Paris? think about it", provider)
    opts: dict[str, Any] = {"reasoning": {"effort": "low", "summary": "auto"}, "store": False,
                            "include": ["reasoning.encrypted_content"], "tools": [WEATHER]}
    first = client.responses.create(model=model, input=[{"role": "user", "content": prompt}], **opts)
    assert [o.type for o in first.output] == ["reasoning", "function_call"]
    call = first.output[1]
    assert call.type == "function_call"
    back = [o.model_dump(exclude_none=True) for o in first.output]
    second = client.responses.create(model=model, **opts, input=[
        {"role": "user", "content": prompt}, *back,
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C and sunny"}])
    assert second.output_text == tool_reply("20C and sunny")
    asked, answered = mock.for_prompt(prompt)
    for rec in (asked, answered):
        check_route(rec, provider, False, MASTER)
        check_reasoning_request(rec, provider)
    if provider == "anthropic":  # the thinking block came back first, with its signature
        [thinking, tool_use] = answered.body["messages"][1]["content"]
        assert thinking["type"] == "thinking" and thinking["thinking"] == THOUGHT and thinking["signature"]
        assert tool_use["id"] == call.call_id


# ------------------------------------------------------------------------------------------ structured output


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int
    sunny: bool


WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Weather", "additionalProperties": False, "required": ["city", "temperature_c", "sunny"],
    "properties": {"city": {"title": "City", "type": "string"},
                   "temperature_c": {"title": "Temperature C", "type": "integer"},
                   "sunny": {"title": "Sunny", "type": "boolean"}}}
"""What the SDK sends for :class:`Weather` (``text_format``)."""
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"},
                                                           "temperature_c": {"type": "integer"}},
                          "required": ["city", "temperature_c"], "additionalProperties": False}


def check_json_request(rec: Received, provider: str, schema: dict[str, Any], name: str) -> None:
    b = rec.body
    if provider == "openai":
        fmt = b["text"]["format"]
        assert fmt["type"] == "json_schema" and fmt["name"] == name and fmt["schema"] == schema
    elif provider == "anthropic":  # LiteLLM's JSON mode for Claude: one forced tool whose input is the answer
        [tool] = b["tools"]
        assert tool["name"] == "json_tool_call" and tool["input_schema"] == schema
        assert b["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    else:
        gc = b["generationConfig"]
        assert gc["responseMimeType"] == "application/json"
        got = gc.get("responseJsonSchema", gc.get("responseSchema"))
        assert got["properties"] == schema["properties"] and got["required"] == schema["required"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_format_json_schema(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("json for a city", provider)
    r = client.responses.create(model=MODELS[provider], input=prompt, text={"format": {
        "type": "json_schema", "name": "city_weather", "schema": SCHEMA, "strict": True}})
    assert json.loads(r.output_text) == sample(SCHEMA) == {"city": "Paris", "temperature_c": 21}
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"
    check_usage(r.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    check_json_request(rec, provider, SCHEMA, "city_weather")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_pydantic_model(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("the weather as an object", provider)
    r = client.responses.parse(model=MODELS[provider], input=prompt, text_format=Weather)
    assert r.output_parsed == Weather(city="Paris", temperature_c=21, sunny=True)
    check_usage(r.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, False, MASTER)
    check_json_request(rec, provider, WEATHER_SCHEMA, "Weather")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_parse_pydantic_model(client: openai.OpenAI, mock: Mock, provider: str) -> None:
    prompt = tag("the weather as a streamed object", provider)
    with client.responses.stream(model=MODELS[provider], input=prompt, text_format=Weather) as s:
        deltas = [ev.delta for ev in s if ev.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert final.output_parsed == Weather(city="Paris", temperature_c=21, sunny=True)
    assert json.loads("".join(deltas)) == {"city": "Paris", "temperature_c": 21, "sunny": True}
    check_usage(final.usage, provider)
    rec = only(mock, prompt, provider)
    check_route(rec, provider, True, MASTER)
    check_json_request(rec, provider, WEATHER_SCHEMA, "Weather")
