"""The bench mock speaks OpenAI's Responses API: the official ``openai`` SDK's ``responses.create`` and
``responses.stream`` parse its answers (text, a function call, usage), its faults keep their shapes, and
the shapes module's streams are well formed whatever the answer holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from bench.procs import MockHandle, start_mock
from bench.shapes_responses import Answer, response_stream

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockHandle]:
    with start_mock(name="resp", chunks=5, response_tokens=10) as m:
        yield m


@pytest.fixture
def client(mock: MockHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.openai_base, api_key="sk-up", max_retries=0, timeout=10) as c:
        yield c


def test_unary(client: openai.OpenAI) -> None:
    r = client.responses.create(model="mock-model", input="hello")
    assert r.status == "completed" and r.model == "mock-model" and r.id.startswith("resp_")
    assert len(r.output_text.split()) == 10
    assert r.usage is not None and r.usage.output_tokens == 10 and r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_stream(client: openai.OpenAI, mock: MockHandle) -> None:
    kinds: list[str] = []
    seqs: list[int] = []
    with client.responses.stream(model="mock-model", input="hello") as s:
        for ev in s:
            kinds.append(ev.type)
            seqs.append(ev.sequence_number)
        final = s.get_final_response()
    assert seqs == list(range(len(seqs)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds.count("response.output_text.delta") == 5 and kinds[-1] == "response.completed"
    assert len(final.output_text.split()) == 10 and final.usage is not None and final.usage.output_tokens == 10
    assert mock.stats()["by_path"]["/v1/responses"] >= 1


def test_function_call(client: openai.OpenAI) -> None:
    r = client.responses.create(model="mock-model", input="weather?", tools=TOOLS,
                                extra_headers={"x-mock-tool-calls": "1"})
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_mock") and "city" in json.loads(call.arguments)
    with client.responses.stream(model="mock-model", input="weather?", tools=TOOLS,
                                 extra_headers={"x-mock-tool-calls": "1"}) as s:
        kinds = [ev.type for ev in s]
        final = s.get_final_response()
    assert kinds.count("response.function_call_arguments.delta") >= 2
    (streamed,) = [o for o in final.output if o.type == "function_call"]
    assert json.loads(streamed.arguments) == json.loads(call.arguments)


def test_faults_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        client.responses.create(model="mock-model", input="hi", extra_headers={"x-mock-fault": "429"})
    assert ei.value.body is not None and ei.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="mock-model", input="hi", stream=True, extra_headers={"x-mock-fault": "500"})


@pytest.mark.parametrize("answer", [
    Answer(rid="a", model="m", created=1),
    Answer(rid="b", model="m", created=1, text=["x"], reasoning=["r1", "r2"], encrypted="E"),
    Answer(rid="c", model="m", created=1, reasoning=["r"], calls=[("c1", "f", ["{", "}"]), ("c2", "g", ["{}"])],
           status="incomplete"),
])
def test_shapes_stream_well_formed(answer: Answer) -> None:
    raw = b"".join(response_stream(answer))
    evs = [orjson.loads(b.split(b"\n", 1)[1][6:]) for b in raw.split(b"\n\n") if b]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    final = evs[-1]["response"]
    assert evs[-1]["type"] == ("response.incomplete" if answer.status == "incomplete" else "response.completed")
    done = [e["item"] for e in evs if e["type"] == "response.output_item.done"]
    assert done == final["output"] and final["usage"]["total_tokens"] == 15
