"""A whole ``multipart/form-data`` upload read for the response cache (transcriptions; sans IO).

The media frontend streams uploads without reading them (``frontends.media``); a route whose answers are
cached cannot: its key needs the file's bytes. For such a route the frontend reads the upload whole (within
``max_request_body_bytes``) and :func:`read_form` takes it apart once:

- **the key's material** (:attr:`Form.fields`): every plain field by name (the OpenAI SDKs' ``name[]``
  repeats as one list, as LiteLLM's ``get_form_data`` reads them), and each file part as the SHA-256 of its
  bytes under its field name (``{"file": {"sha256": ...}}``): the same audio uploaded under another file
  name or content type is the same request. Which fields are hashed is ``cache.key``'s rule (all but those
  that never change the answer: ``model``, ``user``, ``stream`` ...).
- **the per-request cache controls**: a ``cache`` field holding a JSON object (``-F 'cache={"no-cache":
  true}'``), or the bracketed fields the openai SDK makes of ``extra_body={"cache": {...}}``
  (``cache[no-cache]=true``; ``true`` / ``false`` and numbers read as such). LiteLLM reads neither from a
  form (its transcription route passes ``cache`` on as a string), so this is relaygate's addition; the
  parts are removed from the body the upstream gets (:attr:`Form.body`), as a JSON body's control fields are.

A body that is not well-formed multipart (no closing delimiter, a part without headers) gives ``None``:
the request is then not cached and goes upstream as it came.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

CONTROL = "cache"


class Form:
    """An upload taken apart: the key's material, the cache controls, the body without their parts."""

    __slots__ = ("fields", "controls", "body")

    def __init__(self, fields: dict[str, Any], controls: Any, body: bytes) -> None:
        self.fields = fields
        self.controls = controls
        self.body = body


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _name(head: bytes) -> tuple[str | None, bool]:
    """The part's field name from its headers, and whether it is a file."""
    name = None
    for line in head.split(b"\r\n"):
        if line[:20].lower().startswith(b"content-disposition"):
            i = line.find(b' name="')
            if i < 0:
                i = line.find(b';name="')
            if i >= 0:
                j = line.find(b'"', i + 7)
                if j > 0:
                    name = line[i + 7:j].decode("utf-8", "replace")
            return name, b"filename=" in line
    return name, False


def read_form(body: bytes, boundary: bytes) -> Form | None:
    """``body`` taken apart (see the module docstring), or None when it is not well-formed multipart."""
    delim = b"--" + boundary
    at = body.find(delim)
    if at < 0:
        return None
    fields: dict[str, Any] = {}
    controls: Any = None
    kept: list[bytes] = [body[:at]]
    while True:
        start = at + len(delim)
        if body[start:start + 2] == b"--":  # the closing delimiter
            kept.append(body[at:])
            break
        end = body.find(b"\r\n" + delim, start)
        if end < 0:
            return None
        split = body.find(b"\r\n\r\n", start)
        if split < 0 or split > end:
            return None
        name, is_file = _name(body[start:split])
        value = body[split + 4:end]
        nxt = end + 2
        if name is None:
            return None
        if not is_file and (name == CONTROL or name.startswith(CONTROL + "[")):
            if name == CONTROL:
                try:
                    obj = orjson.loads(value)
                except orjson.JSONDecodeError:
                    obj = value.decode("utf-8", "replace")
                controls = obj  # not an object: the controls' check answers a 400
            else:
                controls = controls if isinstance(controls, dict) else {}
                controls[name[len(CONTROL) + 1:].rstrip("]")] = _scalar(value.decode("utf-8", "replace"))
        else:
            kept.append(body[at:nxt])
            item: Any = {"sha256": hashlib.sha256(value).hexdigest()} if is_file else value.decode("utf-8", "replace")
            if name.endswith("[]"):
                fields.setdefault(name[:-2], []).append(item)
            else:
                fields[name] = item
        at = nxt
    return Form(fields, controls, b"".join(kept) if controls is not None else body)


__all__ = ["CONTROL", "Form", "read_form"]
