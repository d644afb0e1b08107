"""What a spend-log row keeps of the request and the answer (``store_prompts_in_spend_logs``).

What it owns: turning the request body and the answer an exchange captured into the two JSON texts a
spend-log row stores, LiteLLM's ``proxy_server_request`` and ``response`` columns, as LiteLLM's spend
tracking stores them, so its Logs view and a query written against its table read the same thing:

- **Only when asked.** ``general_settings.store_prompts_in_spend_logs: true`` (or the environment's
  ``STORE_PROMPTS_IN_SPEND_LOGS=true``, as LiteLLM); a key or a team whose ``metadata`` says
  ``store_prompts_in_spend_logs: false`` keeps its requests out (LiteLLM's tenant opt-out). Otherwise both
  columns hold ``{}``. The pipeline decides per request (:func:`tenant_allows`) and hands the sink a
  :class:`Prompts`; everything else here runs in the spend sink, off the request path.
- **Never a credential.** Every object in the stored body loses its ``secret_fields`` and has the string value
  of a key whose name has a segment (split at ``_`` and ``-``) such as ``key``, ``token``, ``secret``,
  ``password``, ``auth`` or ``credential`` replaced by ``redacted-by-litellm`` (LiteLLM's masker and word
  list, ``cost`` exempting a pricing field; ``max_tokens`` has no ``token`` segment), except inside what a
  model wrote or read as content: tool-call ``arguments``, ``logprobs``, a tool's output.
- **Bounded in memory.** The bodies and answers waiting for the sink in a worker (many while the database is
  down: the sink's buffer holds ``spend_logs_buffer`` records) take at most :data:`HELD_MAX` bytes; a request
  past it stores :data:`NOT_KEPT` instead of its body, and the sink counts it (``spend_prompts_not_kept``).
- **Bounded.** Every string longer than ``MAX_STRING_LENGTH_PROMPT_IN_DB`` characters (LiteLLM's variable,
  2,048 by default) keeps its first 35% and its last 65% around LiteLLM's marker
  ``... (litellm_truncated skipped N chars. ...) ...``, so a base64 image or a long document cannot bloat a
  row; exporters get the whole text. Nesting past :data:`MAX_DEPTH` is cut.
- **Message logging off.** With ``turn_off_message_logging``, the ``x-litellm-enable-message-redaction``
  header or a key's ``metadata.turn_off_message_logging``, the body is stored with ``messages`` as the one
  message ``redacted-by-litellm`` and ``prompt`` / ``input`` empty (its other parameters kept), as LiteLLM's
  redaction does; the answer is not stored (LiteLLM stores its object with the text replaced).
- **Latest turn.** ``general_settings.spend_logs_prompt_storage: latest_turn`` keeps only the model and the
  latest user message of a stateless request (its text parts joined by new lines, an image, file or audio
  part as ``[image omitted]`` ...; a tool result is no user turn), dropping the system prompt, tools and
  earlier turns; a ``/v1/responses`` request that continues a stored conversation (``previous_response_id``,
  ``conversation``) is kept whole, and so is the answer, as in LiteLLM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["DEFAULT_MAX", "HELD_MAX", "MAX_DEPTH", "NOT_KEPT", "REDACTED", "Prompts", "held", "latest_turn",
           "max_string_length", "request_text", "response_text", "sanitized", "tenant_allows", "truncated"]

REDACTED = "redacted-by-litellm"
MAX_DEPTH = 32
"""Nesting kept in a stored body; deeper values become ``null`` (a client's JSON can nest thousands deep)."""
DEFAULT_MAX = 2048
_SECRET_WORDS = frozenset(("password", "secret", "key", "token", "auth", "authorization", "cookie", "credential",
                           "credentials", "access", "private", "certificate", "fingerprint", "tenancy", "apikey"))
_NOT_SECRET_WORDS = frozenset(("cost",))
_DROPPED_KEYS = frozenset(("secret_fields",))
_CONTENT_KEYS = frozenset(("arguments", "logprobs", "input", "content", "output"))
"""The keys :func:`_content` can say hold content."""
_TOOL_INPUT_BLOCKS = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))
_TOOL_OUTPUT_BLOCKS = frozenset(("tool_result", "mcp_tool_result", "function_call_output"))
_TEXT_BLOCKS = frozenset(("text", "input_text"))
_OMITTED = {"image": "[image omitted]", "image_url": "[image omitted]", "input_image": "[image omitted]",
            "file": "[file omitted]", "input_file": "[file omitted]", "document": "[file omitted]",
            "input_audio": "[audio omitted]"}
_CONTINUES = ("previous_response_id", "conversation")
_WORDS = tuple(w.encode() for w in sorted(_SECRET_WORDS))
_NOTE = ("Truncation is a DB storage safeguard. Full, untruncated data is logged to logging callbacks (OTEL, "
         "Datadog, etc.). To increase the truncation limit, set `MAX_STRING_LENGTH_PROMPT_IN_DB` in your env.")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


HELD_MAX = 256 * 1024 * 1024
"""Bytes of bodies and answers a worker holds for the spend logs at most (records waiting for the sink: many
while the database is slow or down). A request past it keeps neither: its row says so (:data:`NOT_KEPT`)."""
NOT_KEPT = '{"relaygate_not_kept":"the request came while the spend logs waited on 256 MiB of prompts"}'
_held = 0
"""Bytes held by the :class:`Prompts` alive in this worker (each gives its own back when it goes)."""


def held() -> int:
    """Bytes of bodies and answers this worker holds for the spend logs now."""
    return _held


class Prompts:
    """What one request hands the spend sink: its body (the JSON bytes as received, or decoded; ``None`` when it
    was not JSON), its answer (likewise; ``None`` when there was none or it may not be logged), whether message
    logging was off, and the route (``latest_turn`` keeps a continued Responses conversation whole).

    Bounded: the bytes of every instance alive in the worker count against :data:`HELD_MAX` from creation until
    the instance goes (its row written, or its record dropped by a full buffer); one that would pass it keeps
    nothing (``kept`` false)."""

    __slots__ = ("body", "answer", "redacted", "route", "size", "kept")

    def __init__(self, body: Any, answer: Any, redacted: bool, route: str) -> None:
        global _held
        size = (len(body) if isinstance(body, bytes) else 0) + (len(answer) if isinstance(answer, bytes) else 0)
        self.kept = _held + size <= HELD_MAX
        if not self.kept:
            body = answer = None
            size = 0
        self.body = body
        self.answer = answer
        self.redacted = redacted
        self.route = route
        self.size = size
        _held += size

    def __del__(self) -> None:
        global _held
        _held -= self.size


def max_string_length(env: Mapping[str, str] | None = None) -> int:
    """LiteLLM's ``MAX_STRING_LENGTH_PROMPT_IN_DB`` (2,048 when unset or not a positive number)."""
    raw = (os.environ if env is None else env).get("MAX_STRING_LENGTH_PROMPT_IN_DB")
    try:
        n = int(raw) if raw is not None else DEFAULT_MAX
    except ValueError:
        return DEFAULT_MAX
    return n if n > 0 else DEFAULT_MAX


def tenant_allows(*metadatas: Any) -> bool:
    """False when the key's or team's ``metadata.store_prompts_in_spend_logs`` is false (or ``"false"``)."""
    for meta in metadatas:
        if isinstance(meta, dict):
            v = meta.get("store_prompts_in_spend_logs")
            if v is False or (isinstance(v, str) and v.strip().lower() in ("false", "0", "no", "off")):
                return False
    return True


def truncated(text: str, limit: int) -> str:
    """``text`` cut to its first 35% and last 65% of ``limit`` around LiteLLM's marker when longer."""
    if len(text) <= limit:
        return text
    head = int(limit * 0.35)
    tail = min(int(limit * 0.65), limit - head)
    skipped = len(text) - head - tail
    return f"{text[:head]}... (litellm_truncated skipped {skipped} chars. {_NOTE}) ...{text[len(text) - tail:]}"


_secrets: dict[str, bool] = {}
""":func:`_secret` of the keys seen (the same few dozen names come in every body), up to :data:`_SECRETS_MAX`."""
_SECRETS_MAX = 4096


def _secret(key: str) -> bool:
    """A credential's name: one of its ``_`` / ``-`` segments is a credential word and none is ``cost``."""
    hit = _secrets.get(key)
    if hit is None:
        words = key.lower().replace("-", "_").split("_")
        hit = not any(w in _NOT_SECRET_WORDS for w in words) and any(w in _SECRET_WORDS for w in words)
        if len(_secrets) < _SECRETS_MAX:
            _secrets[key] = hit
    return hit


def _kind(block: dict[str, Any]) -> str | None:
    kind = block.get("type")
    return kind if isinstance(kind, str) else None


def _content(parent: dict[str, Any], key: str) -> bool:
    """The value under ``key`` is what a model wrote or read (a tool call's arguments, a tool's output)."""
    kind = _kind(parent)
    return key in ("arguments", "logprobs") or (key == "input" and kind in _TOOL_INPUT_BLOCKS) or (
        key in ("content", "output") and (kind in _TOOL_OUTPUT_BLOCKS or parent.get("role") == "tool"))


def sanitized(value: Any, limit: int, mask: bool = True, depth: int = 0) -> Any:
    """``value`` as a row stores it: credentials masked, ``secret_fields`` dropped, long strings truncated."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= limit else truncated(value, limit)
    if kind is not dict and kind is not list:
        return value
    if depth >= MAX_DEPTH:
        return None
    if kind is list:
        return [sanitized(v, limit, mask, depth + 1) for v in value]
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k in _DROPPED_KEYS:
            continue
        vk = type(v)
        if vk is str:
            out[k] = REDACTED if mask and _secret(k) else v if len(v) <= limit else truncated(v, limit)
        elif vk is dict or vk is list:
            out[k] = sanitized(v, limit, mask and not (k in _CONTENT_KEYS and _content(value, k)), depth + 1)
        else:
            out[k] = v
    return out


def _block_text(block: Any) -> str | None:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return None
    kind = _kind(block)
    if kind in _TEXT_BLOCKS:
        text = block.get("text")
        return text if isinstance(text, str) else None
    return _OMITTED.get(kind) if kind is not None else None


def _latest_user_text(turns: Any) -> str | None:
    if isinstance(turns, str):
        return turns or None
    if not isinstance(turns, list) or not turns:
        return None
    last = turns[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content or None
    if not isinstance(content, list):
        return None
    if any(isinstance(b, dict) and _kind(b) in _TOOL_OUTPUT_BLOCKS for b in content):
        return None
    return "\n".join(t for t in map(_block_text, content) if t) or None


def latest_turn(body: dict[str, Any], route: str) -> dict[str, Any]:
    """``body`` with only its model and its latest user message (a continued Responses conversation whole)."""
    if route == "responses" and any(body.get(k) for k in _CONTINUES):
        return body
    kept: dict[str, Any] = {"model": body["model"]} if "model" in body else {}
    key = "messages" if "messages" in body else "input" if "input" in body else None
    text = _latest_user_text(body[key]) if key is not None else None
    if key is not None and text is not None:
        kept[key] = [{"role": "user", "content": text}]
    return kept


def _verbatim(raw: bytes, limit: int) -> bool:
    """``raw`` (valid JSON) can be stored as it is, because :func:`sanitized` would not change it: it is no
    longer than ``limit`` (so none of its strings is), ASCII, without ``\\u`` escapes, and none of the
    credential words stands alone in it (a key with such a segment always would). Most requests and answers
    take this path: the sink then checks them with one regular-expression search instead of a walk."""
    return len(raw) <= limit and raw.isascii() and b"\\u" not in raw and not _has_word(raw.lower())


def _has_word(low: bytes) -> bool:
    """A credential word stands alone in ``low`` (lower-case ASCII): not inside a longer word or number."""
    for w in _WORDS:
        i = low.find(w)
        while i >= 0:
            j = i + len(w)
            if not low[i - 1:i].isalnum() and not low[j:j + 1].isalnum():
                return True
            i = low.find(w, j)
    return False


def _json(raw: Any) -> tuple[Any, bytes | None]:
    """``(decoded, bytes)`` of a captured body or answer (``bytes`` None when it came decoded or is not JSON)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return raw, None
    try:
        return _decode(raw), bytes(raw)
    except msgspec.DecodeError:
        return None, None


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["messages"] = [{"role": "user", "content": REDACTED}]
    out["prompt"] = ""
    out["input"] = ""
    return out


def request_text(p: Prompts, latest_turn_only: bool, limit: int) -> str:
    """The ``proxy_server_request`` column of a request (JSON text)."""
    if not p.kept:
        return NOT_KEPT
    body, raw = _json(p.body)
    if not isinstance(body, dict):
        return "{}"
    if raw is not None and not latest_turn_only and not p.redacted and _verbatim(raw, limit):
        return raw.decode()
    if latest_turn_only:
        body = latest_turn(body, p.route)
    if p.redacted:
        body = _redacted(body)
    return _encode(sanitized(body, limit)).decode()


def response_text(p: Prompts, limit: int) -> str:
    """The ``response`` column of a request (JSON text; ``{}`` when nothing may be stored)."""
    if p.redacted:
        return "{}"
    answer, raw = _json(p.answer)
    if answer is None:
        return "{}"
    if raw is not None and isinstance(answer, dict) and _verbatim(raw, limit):
        return raw.decode()
    kept = sanitized(answer, limit)
    return _encode(kept if isinstance(kept, dict) else {"content": kept}).decode()
