"""What differs between the cached call types: where a request's key material is, how a hit is rendered.

The stage (``cache.stage``) is the same for every route; this module answers its three per-route questions:

- **Material** (:func:`material`): the request fields the key is computed over (``cache.key`` drops those
  that never change the answer). Chat, completions, embeddings: the JSON body. ``/v1/messages``: the client's
  Anthropic request (``frontends.anthropic`` keeps it; not the OpenAI body it is translated to, which differs
  by target), with the ``anthropic-beta`` header's values, which change what the model may do.
  ``/v1/responses``: the request with its conversation resolved (``frontends.responses`` keeps it):
  ``previous_response_id`` is replaced by the stored turns it names, expanded into ``input``, so two
  requests continuing the same conversation content share a key whatever the ids of their turns (items'
  ``id`` / ``status`` are not hashed; an ``item_reference``'s id is, being its content). A ``background``
  request is not cached (its answer is a queued response to poll, not an answer). Transcriptions: the
  upload's fields and the file's SHA-256 (``cache.form``, taken apart by ``frontends.media``, which reads a
  cached route's upload whole); a ``stream: true`` transcription is not cached.
- **Stream assembly** (:func:`assembler`): chat, Messages and Responses streams are assembled into the
  answer to store (``core.assemble``); other routes' streams are not stored.
  A Messages or Responses stream translated from a chat stream is stored only when the chat stream
  finished (a finish reason seen, :class:`FinishWatch`): the translators end a stream that broke off
  cleanly with a proper final event, which must not make a partial answer look complete.
- **Rendering a hit** (:func:`unary`, :func:`stream`): the stored answer with the route's fresh id
  (``chatcmpl-`` / ``cmpl-`` / ``msg_`` + the call id, a new ``resp_`` id), in the route's body or SSE shape
  (``cache.replay``, ``replay_anthropic``, ``replay_responses``); a transcription is its stored bytes with
  its stored content type (JSON, text, SRT or VTT as the upstream answered); a rerank is its stored body
  with a new ``id`` (the call id) and nothing added. A Responses hit is also stored
  as this request's turn when the request stores (``store`` with a database), so ``GET
  /v1/responses/{id}`` and ``previous_response_id`` work on a hit's id as on any other.

Sans IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.cache.replay import chat_stream, completion_stream, fresh, fresh_id
from relaygate.cache.replay_anthropic import fresh_message, message_stream
from relaygate.cache.replay_responses import fresh_response, response_stream
from relaygate.core.assemble import assembler_for
from relaygate.providers.responses_api import new_id

if TYPE_CHECKING:
    from relaygate.pipeline.exchange import Exchange

BODY_ROUTES = frozenset({"chat", "completions", "embeddings", "rerank"})
"""Routes whose key material is the JSON body alone (nothing from headers, stored turns or an upload)."""
BETA = "\0anthropic-beta"
"""The key material's name for the ``anthropic-beta`` header values (no body field can have it)."""
JSON = b"application/json"
ID_PREFIX = {"chat": "chatcmpl-", "completions": "cmpl-"}
"""A hit's id prefix by route (the call id follows), as the provider's own ids begin."""


def _unnamed(item: Any) -> Any:
    if isinstance(item, dict) and ("id" in item or "status" in item) and item.get("type") != "item_reference":
        return {k: v for k, v in item.items() if k != "id" and k != "status"}
    return item


def material(ex: Exchange) -> dict[str, Any] | None:
    """The request fields ``ex``'s key is computed over (see the module docstring); None: not cached."""
    route = ex.route
    if route == "messages":
        st = ex.state
        beta = [v for k, v in st.fwd if k == "anthropic-beta"]
        req: dict[str, Any] = st.req
        return {**req, BETA: beta} if beta else req
    if route == "responses":
        st = ex.state
        if st.background or st.req is None:
            return None
        req = st.req
        inp = req.get("input")
        return {**req, "input": [_unnamed(it) for it in inp]} if isinstance(inp, list) else req
    if route == "transcriptions":
        form = getattr(ex.state, "form", None)
        return form if isinstance(form, dict) else None
    try:
        body = orjson.loads(ex.body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


COUNTED = frozenset({"chat", "messages", "responses"})
"""Routes whose requests count messages against ``cache_params.max_messages`` (:func:`message_count`)."""


def message_count(ex: Exchange) -> int:
    """The request's messages as LiteLLM counts them for ``max_messages``: chat and Messages ``messages``, else
    the Responses ``input`` items that are objects other than a ``file`` block (a string ``input``: none)."""
    route = ex.route
    if route == "chat":
        messages = getattr(ex.view, "messages", None)
        return len(messages) if isinstance(messages, list) else 0
    req = getattr(ex.state, "req", None)
    if not isinstance(req, dict):
        return 0
    if route == "messages":
        messages = req.get("messages")
        return len(messages) if isinstance(messages, list) else 0
    items = req.get("input")
    return sum(1 for it in items if isinstance(it, dict) and it.get("type") != "file") if isinstance(items, list) \
        else 0


_CHAT_TEXT = re.compile(rb'"content"\s*:\s*"[^"]')
_MESSAGE_TEXT = re.compile(rb'"(?:text|thinking)"\s*:\s*"[^"]|"type"\s*:\s*"tool_use"')
_RESPONSE_OUTPUT = re.compile(rb'"output"\s*:\s*\[\s*\{')
_EMPTY: tuple[Any, ...] = ("", [], {}, None)


def _says(fields: Any, skip: str) -> bool:
    return not isinstance(fields, dict) or any(k != skip and v not in _EMPTY for k, v in fields.items())


def has_output(route: str, answer: bytes) -> bool:
    """Whether an answer says anything, as LiteLLM's ``is_response_without_output`` judges it (such an answer is
    neither stored nor served: a reasoning model that spent its whole ``max_completion_tokens`` thinking
    answers ``content: ""``, and the same request asked again should get a new try). Chat: some choice's
    message has a field besides ``role`` that is not empty (text, tool calls, a refusal, audio ...); Messages:
    some content block has one besides ``type``; Responses: ``output`` is not empty; other routes always.
    A regular expression finds the common answer's text first; only an answer it finds none in is decoded."""
    if route == "chat":
        at = answer.find(b'"content":"')  # the compact answer most upstreams send: no regular expression
        if at >= 0 and answer[at + 11:at + 12] != b'"':
            return True
        if _CHAT_TEXT.search(answer) is not None:
            return True
        obj = _loads(answer)
        choices = obj.get("choices") if isinstance(obj, dict) else None
        return not isinstance(choices, list) or any(
            _says(c.get("message") if isinstance(c, dict) else None, "role") for c in choices)
    if route == "messages":
        if _MESSAGE_TEXT.search(answer) is not None:
            return True
        obj = _loads(answer)
        blocks = obj.get("content") if isinstance(obj, dict) else None
        return not isinstance(blocks, list) or any(_says(b, "type") for b in blocks)
    if route == "responses":
        if _RESPONSE_OUTPUT.search(answer) is not None:
            return True
        obj = _loads(answer)
        return not isinstance(obj, dict) or bool(obj.get("output"))
    return True


def _loads(answer: bytes) -> Any:
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None


def assembler(route: str) -> Any:
    """The assembler a miss's stream on ``route`` feeds (None: the route's streams are not stored)."""
    return assembler_for(route)


_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')


class FinishWatch:
    """Watches the chat chunks under a translated stream of a miss (see the module docstring)."""

    __slots__ = ("asm", "finished")

    def __init__(self, asm: Any) -> None:
        self.asm = asm
        self.finished = False

    def see(self, chunk: bytes) -> None:
        if not self.finished and _FINISHED.search(chunk) is not None:
            self.finished = True

    def end(self) -> None:
        """The chat stream ended: without a finish reason, its answer is not stored."""
        if not self.finished:
            self.asm.broken = True


def finish_watch(ex: Exchange) -> FinishWatch | None:
    """A watch for ``ex``'s translated stream when the cache stores it (a miss), else None (no work)."""
    st = ex.cache
    asm = st.assembler if st is not None else None
    return FinishWatch(asm) if asm is not None else None


def stored_value(ex: Exchange, answer: bytes, ctype: bytes | None) -> bytes:
    """What is stored of a unary answer: the body, with its content type in front for a transcription."""
    if ex.route == "transcriptions":
        return (ctype or JSON) + b"\n" + answer
    return answer


def answer_of(ex: Exchange, stored: bytes) -> tuple[bytes, bytes]:
    """A stored value's answer body and content type."""
    if ex.route == "transcriptions":
        ctype, _, body = stored.partition(b"\n")
        return body, ctype
    return stored, JSON


def hit_id(ex: Exchange) -> str:
    """The fresh id of a hit on ``ex``'s route."""
    route = ex.route
    if route == "responses":
        return new_id("resp_")
    call_id = ex.call_id.decode("latin-1")
    if route == "messages":
        return "msg_" + call_id.replace("-", "")
    return ID_PREFIX.get(route, "") + call_id


def _response(ex: Exchange, answer: bytes, rid: str, created: int) -> dict[str, Any] | None:
    obj = fresh_response(answer, rid, created, ex.model, getattr(ex.state, "echo", None))
    keep = getattr(ex.state, "keep_hit", None)
    if obj is not None and keep is not None:
        keep(ex, obj)
    return obj


def unary(ex: Exchange, answer: bytes, rid: str, created: int) -> bytes:
    """A hit's body (``answer`` is the stored answer without its content type)."""
    route = ex.route
    if route == "messages":
        return fresh_message(answer, rid, ex.model)
    if route == "responses":
        obj = _response(ex, answer, rid, created)
        return orjson.dumps(obj) if obj is not None else answer
    if route == "transcriptions":
        return answer
    if route == "rerank":
        return fresh_id(answer, rid)
    return fresh(answer, rid, created, ex.model)


def stream(ex: Exchange, answer: bytes, rid: str, created: int, include_usage: bool) -> Iterator[bytes]:
    """A stream hit's SSE frames."""
    route = ex.route
    if route == "messages":
        return message_stream(answer, rid, ex.model)
    if route == "responses":
        obj = _response(ex, answer, rid, created)
        return response_stream(obj) if obj is not None else iter(())
    if route == "completions":
        return completion_stream(answer, rid, created, include_usage, ex.model)
    return chat_stream(answer, rid, created, include_usage, ex.model)


__all__ = ["BETA", "BODY_ROUTES", "COUNTED", "FinishWatch", "answer_of", "assembler", "finish_watch", "has_output",
           "ID_PREFIX", "hit_id", "material", "message_count", "stored_value", "stream", "unary"]
