"""core.body: edit the top-level model without re-encoding the rest of the client's bytes."""

from __future__ import annotations

import orjson
import pytest

from relaygate.core.body import replace_model, set_fields
from relaygate.core.errors import BadRequest


def test_same_model_returns_the_same_bytes() -> None:
    body = b'{"model":"m","messages":[]}'
    assert replace_model(body, "m", "m") is body


@pytest.mark.parametrize("body", [
    b'{"model":"gpt","messages":[{"role":"user","content":"hi"}]}',
    b'{ "messages": [], "model" :  "gpt" , "stream": true }',
    b'{"model":"gpt","metadata":{"note":"model"}}',
])
def test_unique_pair_is_replaced_in_place(body: bytes) -> None:
    out = replace_model(body, "gpt", "gpt-4o-2024")
    assert orjson.loads(out) == {**orjson.loads(body), "model": "gpt-4o-2024"}
    assert len(out) == len(body) + len("-4o-2024")  # nothing else was re-encoded


def test_nested_model_key_with_the_same_value_falls_back_to_a_safe_edit() -> None:
    body = b'{"metadata":{"model":"gpt"},"model":"gpt"}'
    assert orjson.loads(replace_model(body, "gpt", "x")) == {"metadata": {"model": "gpt"}, "model": "x"}


def test_missing_model_is_added_and_escapes_are_kept() -> None:
    assert orjson.loads(replace_model(b'{"input":"a"}', "m", "up")) == {"input": "a", "model": "up"}
    body = b'{"model":"m\\u00e9","x":"\\"model\\""}'
    assert orjson.loads(replace_model(body, "mé", "plain"))["model"] == "plain"


def test_set_fields_keeps_raw_values_and_defaults_do_not_override() -> None:
    body = b'{"model":"a","temperature":0.9,"messages":[1, 2,  3]}'
    out = set_fields(body, {"model": "b"}, {"temperature": 0.1, "max_tokens": 5})
    assert orjson.loads(out) == {"model": "b", "temperature": 0.9, "messages": [1, 2, 3], "max_tokens": 5}
    assert b"[1, 2,  3]" in out  # copied as raw bytes, not re-encoded
    with pytest.raises(BadRequest):
        set_fields(b"{oops", {"model": "b"})
