"""Anthropic Messages <-> OpenAI Responses: ``/v1/messages`` served by a model only the Responses API runs.

Some OpenAI models exist only behind ``/responses`` (the catalog's ``mode: responses``: o1-pro, o3-pro,
gpt-5-pro, gpt-5-codex ...; or a deployment's own ``model_info.mode``). A ``/v1/messages`` request routed
to such an ``openai/`` or ``azure/`` deployment goes to the upstream's ``/responses`` endpoint
(:func:`needs_responses` decides, memoised per deployment); every other OpenAI deployment keeps the
chat-completions translation, which every OpenAI-compatible server speaks. (LiteLLM sends *every*
``openai/`` deployment to ``/responses`` here, so a vLLM or MLX server behind ``openai/`` answers 404.)

The request (:func:`to_responses`): ``system`` -> ``instructions``; messages -> input items (text, images as
``input_image``, documents as ``input_file``, ``tool_use`` -> ``function_call``, ``tool_result`` ->
``function_call_output``); tools -> function tools (non-strict, as Anthropic's are); ``tool_choice``;
``thinking`` budget -> ``reasoning.effort`` with LiteLLM's thresholds (1024 low, 2048 medium, 4096 high);
``max_tokens`` -> ``max_output_tokens``; ``metadata.user_id`` -> ``user``. It is sent with ``store:
false`` (the client holds the conversation, as Anthropic clients do) and asks for the reasoning's
``encrypted_content``, which travels in the thinking block's ``signature`` (``redacted_thinking`` ``data``
when the reasoning has no visible summary), so a client that sends its thinking blocks back replays the
reasoning items, as OpenAI's function calling with reasoning models wants. Signatures written by LiteLLM's
bridge are read too; any other signature (Claude's own) is dropped, never sent to OpenAI.

The answer: a body with :func:`response_to_message`, a stream with :class:`ResponsesToMessages`, which turns
Responses events into Anthropic's exact event sequence (``message_start``, ``ping``, content blocks,
``message_delta``, ``message_stop``). Reasoning items become ``thinking`` blocks (their summary text, or
their ``reasoning_text`` content from servers such as vLLM that send no summary), ``function_call`` items
``tool_use`` blocks, the usage Anthropic's with cache reads apart, and ``stop_reason`` comes from the status
and ``incomplete_details``. The stream's hot loop copies each delta's JSON string from the upstream's bytes
into a frame whose head was encoded when its block opened: nothing is decoded into a Python ``str``.
``response.failed`` and ``error`` events raise the upstream's error, which the relay sends as Anthropic's
``event: error``. Nothing here does IO.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
import orjson

from relaygate.catalog import Catalog
from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.core.sse import SSEDecoder
from relaygate.providers import _convert as cv
from relaygate.providers import params
from relaygate.providers.base import SHAPE_ERRORS, Provider, StreamTranslator, classify, empty_stream_error
from relaygate.providers.messages_api import anthropic_usage, message_id
from relaygate.upstream.base import UpstreamRequest

_REASONING_FAMILIES = frozenset({"o", "gpt5", "gpt5none"})
_MODES: dict[tuple[str, str, Any, Any], bool] = {}
_MAX_MODES = 4096


def needs_responses(dep: Deployment, provider: Provider, catalog: Catalog) -> bool:
    """Whether ``/v1/messages`` must reach this deployment through ``/responses``: its adapter serves the
    Responses API (``Provider.native_responses``: OpenAI and Azure OpenAI) and its model's mode, from the
    catalog with the deployment's ``model_info`` over it, is ``responses``."""
    if not provider.native_responses:
        return False
    info = dep.model_info
    key = (dep.id, dep.upstream_model, info.get("mode"), info.get("base_model"))
    hit = _MODES.get(key)
    if hit is None:
        entry = catalog.for_deployment(dep)
        hit = entry is not None and entry.mode == "responses"
        if len(_MODES) < _MAX_MODES:
            _MODES[key] = hit
    return hit


def responses_request(p: Provider, body: bytes) -> UpstreamRequest:
    """The upstream request of a Responses body to ``p`` (an adapter with ``native_responses``)."""
    return UpstreamRequest("POST", p.responses_url(), [*p.media_headers(), ("Content-Type", "application/json")],
                           body)


# ------------------------------------------------------------------------------ reasoning in signatures

_SIG = "rgrs1:"
_LITELLM_SIG = "lllm-rsenc-v1:"


def pack_signature(item_id: str, encrypted: str) -> str:
    """A reasoning item's id and ``encrypted_content`` as one thinking-block signature."""
    return _SIG + base64.urlsafe_b64encode(orjson.dumps([item_id, encrypted])).decode()


def unpack_signature(sig: Any) -> tuple[str, str] | None:
    """``(id, encrypted_content)`` of a signature this gateway (or LiteLLM's bridge) wrote, else None."""
    if not isinstance(sig, str):
        return None
    try:
        if sig.startswith(_SIG):
            v = orjson.loads(base64.urlsafe_b64decode(sig[len(_SIG):]))
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) and v[1]:
                return v[0], v[1]
        elif sig.startswith(_LITELLM_SIG):
            v = orjson.loads(base64.b64decode(sig[len(_LITELLM_SIG):]))
            if isinstance(v, dict) and isinstance(v.get("ec"), str) and v["ec"]:
                return str(v.get("id") or ""), v["ec"]
    except (binascii.Error, ValueError):
        return None
    return None


def thinking_blocks(encrypted: Any) -> list[dict[str, Any]] | None:
    """The Anthropic thinking blocks a reasoning item's ``encrypted_content`` carries (LiteLLM's encoding, ours
    too: a JSON list of blocks with their signatures), or None for anything else (an OpenAI blob)."""
    if not isinstance(encrypted, str) or not encrypted.startswith("["):
        return None
    try:
        blocks = orjson.loads(encrypted)
    except orjson.JSONDecodeError:
        return None
    kept = [b for b in blocks if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking")]
    return kept or None


def encrypted_content(blocks: Any) -> str | None:
    """A chat answer's ``thinking_blocks`` (LiteLLM's field) with a signature or data, as ``encrypted_content``."""
    kept = [b for b in blocks if isinstance(b, dict) and (b.get("signature") or b.get("data"))] \
        if isinstance(blocks, list) else []
    return orjson.dumps(kept).decode() if kept else None


# ------------------------------------------------------------------------------ Messages -> Responses


def effort_of(thinking: Any, output_config: Any = None) -> str | None:
    """Anthropic ``thinking`` -> ``reasoning.effort`` (LiteLLM's budget thresholds); None when off."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return effort if isinstance(effort, str) and effort else "medium"
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise errors.BadRequest("thinking.budget_tokens: expected an integer", param="thinking")
    for floor, effort in ((params.THINKING_BUDGET["high"], "high"), (params.THINKING_BUDGET["medium"], "medium"),
                          (params.THINKING_BUDGET["low"], "low")):
        if budget >= floor:
            return effort
    return "minimal"


def _url(source: Any) -> str:
    if not isinstance(source, dict):
        raise errors.BadRequest("messages: a media block needs a `source` object", param="messages")
    st = source.get("type")
    if st == "base64":
        return f"data:{source.get('media_type') or 'application/octet-stream'};base64,{source.get('data', '')}"
    if st == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise errors.BadRequest(f"Unsupported content source type `{st}`", param="messages")


def _part(b: dict[str, Any]) -> dict[str, Any] | None:
    """A user content block as a Responses input part (None for blocks Responses has no place for)."""
    t = b.get("type")
    if t == "text":
        return {"type": "input_text", "text": str(b.get("text") or "")}
    if t == "image":
        return {"type": "input_image", "image_url": _url(b.get("source")), "detail": "auto"}
    if t == "document":
        src = b.get("source") or {}
        if isinstance(src, dict) and src.get("type") == "text":
            return {"type": "input_text", "text": str(src.get("data") or "")}
        url = _url(src)
        if url.startswith("data:"):
            title = b.get("title")
            return {"type": "input_file", "file_data": url,
                    "filename": title if isinstance(title, str) and title else "document.pdf"}
        return {"type": "input_file", "file_url": url}
    if t in ("thinking", "redacted_thinking"):
        return None
    raise errors.BadRequest(f"Unsupported content block type `{t}`", param="messages")


def _tool_output(content: Any, is_error: bool) -> Any:
    if content is None or isinstance(content, str):
        return content or ("error" if is_error else "")
    parts = [p for p in (_part(b) for b in content if isinstance(b, dict)) if p is not None]
    if all(p["type"] == "input_text" for p in parts):
        return "\n".join(p["text"] for p in parts) or ("error" if is_error else "")
    return parts


def _reasoning(b: dict[str, Any]) -> dict[str, Any] | None:
    """A thinking / redacted_thinking block as the reasoning item it came from (None: not ours to replay)."""
    found = unpack_signature(b.get("signature") if b.get("type") == "thinking" else b.get("data"))
    if found is None:
        return None
    text = b.get("thinking") if b.get("type") == "thinking" else None
    item: dict[str, Any] = {"type": "reasoning", "encrypted_content": found[1],
                            "summary": [{"type": "summary_text", "text": text}] if isinstance(text, str) and text
                            else []}
    if found[0]:
        item["id"] = found[0]
    return item


def _items(messages: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if isinstance(content, str):
            items.append({"type": "message", "role": role, "content": content})
            continue
        if role == "user":
            parts: list[dict[str, Any]] = []
            for b in content:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "tool_result":
                    items.append({"type": "function_call_output", "call_id": str(b.get("tool_use_id") or ""),
                                  "output": _tool_output(b.get("content"), bool(b.get("is_error")))})
                    continue
                p = _part(b)
                if p is not None:
                    parts.append(p)
            if parts:
                items.append({"type": "message", "role": "user", "content": parts})
            continue
        texts: list[str] = []
        for b in content:
            t = b.get("type") if isinstance(b, dict) else None
            if t == "text":
                texts.append(str(b.get("text") or ""))
                continue
            if t not in ("tool_use", "thinking", "redacted_thinking"):
                continue
            if texts:
                items.append({"type": "message", "role": "assistant", "content": "".join(texts)})
                texts = []
            if t == "tool_use":
                items.append({"type": "function_call", "call_id": str(b.get("id") or ""),
                              "name": str(b.get("name") or ""),
                              "arguments": orjson.dumps(b.get("input") or {}).decode()})
            else:
                r = _reasoning(b)
                if r is not None:
                    items.append(r)
        if texts:
            items.append({"type": "message", "role": "assistant", "content": "".join(texts)})
    return items


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        if not isinstance(t, dict) or t.get("type") not in (None, "custom"):
            kind = t.get("type") if isinstance(t, dict) else t
            raise errors.BadRequest(f"tools: server tool `{kind}` is only available on anthropic/ models",
                                    param="tools")
        fn: dict[str, Any] = {"type": "function", "name": str(t.get("name") or ""),
                              "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                              "strict": bool(t.get("strict"))}
        if t.get("description"):
            fn["description"] = t["description"]
        out.append(fn)
    return out


def to_responses(req: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """A Messages request dict (already checked by ``messages_api.validate``) -> a Responses request dict
    for ``upstream_model``. A block of the wrong shape is a 400."""
    try:
        return _to_responses(req, upstream_model)
    except (TypeError, AttributeError, ValueError) as exc:
        raise errors.BadRequest(f"Invalid request body: a content block has the wrong shape ({exc})",
                                param="messages") from None


def _to_responses(req: dict[str, Any], model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "input": _items(req.get("messages") or []), "store": False}
    system = req.get("system")
    if isinstance(system, str) and system:
        out["instructions"] = system
    elif isinstance(system, list) and system:
        out["instructions"] = "\n".join(str(b.get("text") or "") for b in system
                                        if isinstance(b, dict) and b.get("type") == "text")
    if req.get("max_tokens") is not None:
        out["max_output_tokens"] = req["max_tokens"]
    reasons = params.family("openai", model) in _REASONING_FAMILIES
    if not reasons:  # reasoning models refuse sampling parameters; the translated request drops them
        for k in ("temperature", "top_p"):
            if req.get(k) is not None:
                out[k] = req[k]
    tools = req.get("tools")
    if tools:
        out["tools"] = _tools(tools)
    tc = req.get("tool_choice")
    if isinstance(tc, dict):
        kind = tc.get("type")
        out["tool_choice"] = {"any": "required", "none": "none"}.get(str(kind), "auto") if kind != "tool" else {
            "type": "function", "name": str(tc.get("name") or "")}
        if tc.get("disable_parallel_tool_use") and tools:
            out["parallel_tool_calls"] = False
    effort = effort_of(req.get("thinking"), req.get("output_config"))
    if effort is not None:
        out["reasoning"] = {"effort": effort}
    if reasons or effort is not None:
        out["include"] = ["reasoning.encrypted_content"]
    fmt = req.get("output_format")
    if not isinstance(fmt, dict) and isinstance(req.get("output_config"), dict):
        fmt = req["output_config"].get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and fmt.get("schema"):
        out["text"] = {"format": {"type": "json_schema", "name": "structured_output", "schema": fmt["schema"],
                                  "strict": bool(fmt.get("strict"))}}
    md = req.get("metadata")
    if isinstance(md, dict) and md.get("user_id"):
        out["user"] = str(md["user_id"])[:64]
    if req.get("stream"):
        out["stream"] = True
    return out


# ------------------------------------------------------------------------------ Responses -> Messages


def _chat_usage(u: Any) -> dict[str, Any]:
    """A Responses ``usage`` in chat's words (what ``anthropic_usage`` and the gateway's counting read)."""
    if not isinstance(u, dict):
        return {}
    ind, outd = u.get("input_tokens_details"), u.get("output_tokens_details")
    ind = ind if isinstance(ind, dict) else {}
    outd = outd if isinstance(outd, dict) else {}
    return {"prompt_tokens": int(u.get("input_tokens") or 0), "completion_tokens": int(u.get("output_tokens") or 0),
            "total_tokens": int(u.get("total_tokens") or 0),
            "prompt_tokens_details": {"cached_tokens": int(ind.get("cached_tokens") or 0)},
            "completion_tokens_details": {"reasoning_tokens": int(outd.get("reasoning_tokens") or 0)}}


def _reasoning_text(item: dict[str, Any]) -> str:
    parts = [str(p.get("text") or "") for p in item.get("summary") or () if isinstance(p, dict)]
    if not any(parts):
        parts = [str(p.get("text") or "") for p in item.get("content") or ()
                 if isinstance(p, dict) and p.get("type") == "reasoning_text"]
    return "\n\n".join(p for p in parts if p)


def _stop(status: Any, incomplete: Any, tool_use: bool) -> str:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "refusal" if reason == "content_filter" else "max_tokens"
    return "tool_use" if tool_use else "end_turn"


def failure(error: Any, default: str = "the upstream response failed") -> errors.GatewayError:
    """A Responses ``error`` object (of ``response.failed`` or an ``error`` event) as the gateway's error."""
    err = error if isinstance(error, dict) else {}
    code = str(err.get("code") or "")
    status = 429 if code in ("rate_limit_exceeded", "insufficient_quota") else int(code) if code.isdigit() else 500
    message = str(err.get("message") or default)
    return classify(status, message, err.get("type") if isinstance(err.get("type"), str) else None, None,
                    code or None, "OpenAIException")


def response_to_message(body: bytes, model: str) -> bytes:
    """A Response object body -> an Anthropic message body; one it cannot read is a 502."""
    try:
        obj = orjson.loads(body)
        return _to_message(obj, model)
    except SHAPE_ERRORS as exc:
        raise errors.UpstreamProtocolError(
            f"the upstream sent a response of an unexpected shape ({type(exc).__name__}: {exc})") from None


def _to_message(obj: dict[str, Any], model: str) -> bytes:
    if obj.get("status") == "failed":
        raise failure(obj.get("error"))
    content: list[dict[str, Any]] = []
    tool_use = False
    for item in obj.get("output") or ():
        t = item.get("type")
        if t == "reasoning":
            text, enc = _reasoning_text(item), item.get("encrypted_content")
            sig = pack_signature(str(item.get("id") or ""), enc) if isinstance(enc, str) and enc else ""
            if text:
                content.append({"type": "thinking", "thinking": text, "signature": sig})
            elif sig:
                content.append({"type": "redacted_thinking", "data": sig})
        elif t == "message":
            for p in item.get("content") or ():
                pt = p.get("type")
                if pt == "output_text" or pt == "refusal":
                    content.append({"type": "text", "text": str(p.get("text" if pt == "output_text" else "refusal")
                                                                 or "")})
        elif t == "function_call":
            tool_use = True
            content.append({"type": "tool_use", "id": str(item.get("call_id") or item.get("id") or cv.new_call_id()),
                            "name": str(item.get("name") or ""), "input": cv.tool_args(item.get("arguments"))})
    return orjson.dumps({
        "id": message_id(str(obj.get("id") or "")), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": _stop(obj.get("status"), obj.get("incomplete_details"), tool_use),
        "stop_sequence": None, "usage": anthropic_usage(_chat_usage(obj.get("usage"))),
    })


class _Type(msgspec.Struct):
    type: str = ""


class _Delta(msgspec.Struct):
    output_index: int = 0
    summary_index: int = 0
    delta: msgspec.Raw = msgspec.Raw(b'""')


class _ItemEvent(msgspec.Struct):
    output_index: int = 0
    item: dict[str, Any] = {}


class _Final(msgspec.Struct):
    response: dict[str, Any] = {}


class _Error(msgspec.Struct):
    code: Any = None
    message: Any = None
    type: str = ""


_delta_dec = msgspec.json.Decoder(_Delta)
_item_dec = msgspec.json.Decoder(_ItemEvent)
_final_dec = msgspec.json.Decoder(_Final)
_error_dec = msgspec.json.Decoder(_Error)
_type_dec = msgspec.json.Decoder(_Type)

_TEXT, _THINK, _TOOL = 1, 2, 3
_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,"content_block":'
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":'
_KINDS = {_TEXT: (b'{"type":"text","text":""}}\n\n', b'"text_delta","text":'),
          _THINK: (b'{"type":"thinking","thinking":"","signature":""}}\n\n', b'"thinking_delta","thinking":')}
_END = b"}}\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class ResponsesToMessages(StreamTranslator):
    """Responses SSE bytes (as the upstream sends them) in, Anthropic SSE events out.

    ``feed`` returns the events completed by its input; ``close`` ends the message when the upstream did
    not (an upstream that sent no event at all is a 502). ``last_data`` is the usage in Anthropic's words
    once the final event arrived; ``content_tokens`` estimates what was generated before that.
    """

    __slots__ = ("_sse", "model", "input_tokens", "_started", "_block", "_kind", "_item", "_part", "_head",
                 "_wrote", "_tool_use", "_chars", "_events")

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self._sse = SSEDecoder()
        self.model = model
        self.input_tokens = input_tokens
        self._started = False
        self._block = -1  # index of the last block opened
        self._kind = 0  # kind of the open block, 0 for none
        self._item = -1  # output_index of the item the open block shows
        self._part = 0  # summary part of the open thinking block
        self._head = b""  # the open block's delta frame up to the delta's JSON value
        self._wrote = False  # the open block got a delta
        self._tool_use = False
        self._chars = 0
        self._events = 0

    @property
    def content_tokens(self) -> int:
        return (self._chars + 3) // 4

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for event, payload in self._sse.feed(data):
            self._event(event, payload, out)
        return b"".join(out)

    def close(self) -> bytes:
        out: list[bytes] = []
        for event, payload in self._sse.close():
            self._event(event, payload, out)
        if not self._events:
            raise empty_stream_error("the upstream")
        if not self.done:
            self._finish(out, "end_turn", {"input_tokens": self.input_tokens, "output_tokens": 0})
        return b"".join(out)

    # -- events ---------------------------------------------------------------------------------------

    def _event(self, event: bytes | None, payload: bytes, out: list[bytes]) -> None:
        if self.done:
            return
        self._events += 1
        name = event if event is not None else _type_dec.decode(payload).type.encode()
        if not self._started:
            rid = _final_dec.decode(payload).response.get("id") if name == b"response.created" else None
            self._start(out, rid if isinstance(rid, str) else "")
        if name == b"response.output_text.delta" or name == b"response.refusal.delta":
            self._delta(_TEXT, payload, out)
        elif name == b"response.function_call_arguments.delta":
            d = _delta_dec.decode(payload)
            if self._kind != _TOOL or self._item != d.output_index:
                self._open_tool(d.output_index, {}, out)
            self._emit(bytes(d.delta), out)
        elif name == b"response.reasoning_summary_text.delta" or name == b"response.reasoning_text.delta":
            self._delta(_THINK, payload, out)
        elif name == b"response.output_item.added":
            ev = _item_dec.decode(payload)
            if ev.item.get("type") == "function_call":
                self._open_tool(ev.output_index, ev.item, out)
        elif name == b"response.output_item.done":
            ev = _item_dec.decode(payload)
            self._item_done(ev.output_index, ev.item, out)
        elif name in (b"response.completed", b"response.incomplete"):
            resp = _final_dec.decode(payload).response
            chat = _chat_usage(resp.get("usage"))
            usage = anthropic_usage(chat) if chat else {"input_tokens": self.input_tokens, "output_tokens": 0}
            if chat:  # counted as the unary answer and a native Anthropic stream are: in Anthropic's words
                self.last_data = orjson.dumps({"usage": usage})
            stop = _stop(resp.get("status") or ("incomplete" if name == b"response.incomplete" else "completed"),
                         resp.get("incomplete_details"), self._tool_use)
            self._finish(out, stop, usage)
        elif name == b"response.failed":
            raise failure(_final_dec.decode(payload).response.get("error"))
        elif name == b"error":
            e = _error_dec.decode(payload)
            raise failure({"code": e.code, "message": e.message, "type": e.type or None})

    def _start(self, out: list[bytes], rid: str) -> None:
        self._started = True
        msg = {"type": "message_start", "message": {
            "id": message_id(rid), "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}}
        out.append(b"event: message_start\ndata: " + orjson.dumps(msg) + b"\n\n" + _PING)

    def _delta(self, kind: int, payload: bytes, out: list[bytes]) -> None:
        d = _delta_dec.decode(payload)
        if self._kind != kind or self._item != d.output_index:
            self._open(kind, d.output_index, _KINDS[kind][0], out)
            self._head = _DELTA % self._block + _KINDS[kind][1]
            self._part = d.summary_index
        elif kind == _THINK and d.summary_index != self._part:  # a new summary part of the same reasoning
            self._part = d.summary_index
            out.append(self._head + b'"\\n\\n"' + _END)
        raw = bytes(d.delta)  # the upstream's JSON string, copied as it is (inlined _emit: the hot path)
        if raw[:1] != b'"':
            raise errors.UpstreamProtocolError("the upstream sent a stream delta that is not a string")
        if len(raw) > 2:
            self._chars += len(raw) - 2
            self._wrote = True
            out.append(self._head + raw + _END)

    def _emit(self, raw: bytes, out: list[bytes]) -> None:
        if raw[:1] != b'"':
            raise errors.UpstreamProtocolError("the upstream sent a stream delta that is not a string")
        if len(raw) > 2:
            self._chars += len(raw) - 2
            self._wrote = True
            out.append(self._head + raw + _END)

    def _open(self, kind: int, index: int, block: bytes, out: list[bytes]) -> None:
        self._close_block(out)
        self._block += 1
        self._kind, self._item, self._wrote = kind, index, False
        out.append(_START % self._block + block)

    def _open_tool(self, index: int, item: dict[str, Any], out: list[bytes]) -> None:
        self._tool_use = True
        block = orjson.dumps({"type": "tool_use", "id": str(item.get("call_id") or item.get("id")
                                                             or cv.new_call_id()),
                              "name": str(item.get("name") or ""), "input": {}}) + b"}\n\n"
        self._open(_TOOL, index, block, out)
        self._head = _DELTA % self._block + b'"input_json_delta","partial_json":'

    def _close_block(self, out: list[bytes]) -> None:
        if self._kind:
            out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
                       % self._block)
            self._kind, self._item = 0, -1

    def _item_done(self, index: int, item: dict[str, Any], out: list[bytes]) -> None:
        t = item.get("type")
        mine = self._kind != 0 and self._item == index
        if t == "reasoning":
            enc = item.get("encrypted_content")
            sig = pack_signature(str(item.get("id") or ""), enc) if isinstance(enc, str) and enc else ""
            if not (mine and self._kind == _THINK):
                text = _reasoning_text(item)
                if text:  # a server that sent the reasoning whole, without deltas
                    self._open(_THINK, index, _KINDS[_THINK][0], out)
                    self._head = _DELTA % self._block + _KINDS[_THINK][1]
                    self._emit(orjson.dumps(text), out)
                    mine = True
                elif sig:
                    self._open(0, index, orjson.dumps({"type": "redacted_thinking", "data": sig}) + b"}\n\n", out)
                    out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
                               % self._block)
                    return
            if mine and sig:
                out.append(_DELTA % self._block + b'"signature_delta","signature":' + orjson.dumps(sig) + _END)
        elif t == "function_call":
            if not mine:
                self._open_tool(index, item, out)
                mine = True
            if not self._wrote and item.get("arguments"):
                self._emit(orjson.dumps(str(item["arguments"])), out)
        elif t == "message" and not (mine and self._wrote):
            text = "".join(str(p.get("text") or p.get("refusal") or "") for p in item.get("content") or ()
                           if isinstance(p, dict))
            if text:
                if not mine:
                    self._open(_TEXT, index, _KINDS[_TEXT][0], out)
                    self._head = _DELTA % self._block + _KINDS[_TEXT][1]
                    mine = True
                self._emit(orjson.dumps(text), out)
        if mine:
            self._close_block(out)

    def _finish(self, out: list[bytes], stop: str, usage: dict[str, Any]) -> None:
        self._close_block(out)
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
        out.append(b"event: message_delta\ndata: " + orjson.dumps(delta) + b"\n\n" + _STOP)
        self.done = True
