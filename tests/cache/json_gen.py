"""Generated JSON for the twin tests of compiled JSON readers (``test_key_twins``, ``test_fresh_twins``): values
of every kind, and each written by three encoders and orjson."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import strategies as st

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)
"""Any JSON value: nested lists and objects of strings, integers past 64 bits, floats, booleans and nulls."""


def spellings(value: Any) -> list[bytes]:
    """``value`` as ``json`` writes it escaped, unescaped and indented with sorted keys, and as orjson writes it
    (when it can: not an integer past 64 bits)."""
    out = [json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode(),
           json.dumps(value, indent=2, sort_keys=True).encode()]
    try:
        out.append(orjson.dumps(value))
    except TypeError:  # an integer past 64 bits: orjson does not write it
        pass
    return out
