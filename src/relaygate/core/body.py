"""Editing a client's JSON body without re-encoding what does not change.

The gateway forwards the client's bytes unchanged whenever it can. When a field must change (the model
name of a group differs from the upstream's, or a deployment adds default params), the body is decoded
one level deep into ``dict[str, msgspec.Raw]`` so untouched values are copied as raw bytes, never
re-encoded. Replacing the model alone takes a faster byte-level path when the key/value pair occurs
exactly once in the body (so it must be the top-level one).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from relaygate.core.errors import BadRequest

_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=1024)
def _model_pattern(model: str) -> re.Pattern[bytes]:
    lit = _encoder.encode(model)
    return re.compile(rb'"model"(\s*:\s*)' + re.escape(lit))


def _top_level(body: bytes) -> dict[str, Any]:
    """``body``'s top level, values as raw bytes."""
    try:
        obj: dict[str, Any] = _raw_decoder.decode(body)
    except msgspec.DecodeError as exc:  # already validated upstream of here; defensive
        raise BadRequest(f"Invalid JSON in request body: {exc}") from None
    except RecursionError:
        raise BadRequest("Invalid JSON in request body: nested too deeply") from None
    return obj


top_level = _top_level


def encode(obj: dict[str, Any]) -> bytes:
    """A top level from :func:`top_level` (raw values copied as they are) as JSON."""
    return _encoder.encode(obj)


def set_fields(body: bytes, replace: dict[str, Any], defaults: dict[str, Any] | None = None) -> bytes:
    """Return ``body`` with top-level keys of ``replace`` set and keys of ``defaults`` added if absent."""
    obj = _top_level(body)
    if defaults:
        for k, v in defaults.items():
            if k not in obj:
                obj[k] = v
    obj.update(replace)
    return _encoder.encode(obj)


def drop_fields(body: bytes, names: object) -> bytes:
    """Return ``body`` without the top-level keys in ``names`` (a container of str); other values are copied
    as raw bytes."""
    return _encoder.encode({k: v for k, v in _top_level(body).items() if k not in names})  # type: ignore[operator]


_MODEL_VALUE = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def model_literal(body: bytes) -> bytes | None:
    """The first ``"model": "..."`` pair of a JSON answer as written (inside strings, quotes are escaped,
    so the first literal pair is the object's own), or None."""
    m = _MODEL_VALUE.search(body)
    return m.group(0) if m is not None else None


def model_pair(model: str) -> bytes:
    """``"model":"<model>"`` as JSON."""
    return b'"model":' + _encoder.encode(model)


def restamp_model(body: bytes, model: str) -> bytes:
    """``body`` with its ``model`` set to ``model`` (LiteLLM answers with the name the client asked for)."""
    old = model_literal(body)
    if old is None:
        return body
    new = model_pair(model)
    return body if old == new else body.replace(old, new, 1)


def replace_model(body: bytes, old: str, new: str) -> bytes:
    """Set the top-level ``model`` to ``new`` (the body's current value is ``old``)."""
    if old == new:
        return body
    pat = _model_pattern(old)
    first = pat.search(body)
    if first is not None and pat.search(body, first.end()) is None:
        return body[: first.start()] + b'"model"' + first.group(1) + _encoder.encode(new) + body[first.end():]
    return set_fields(body, {"model": new})
