"""The OpenAI Responses API shape as an *inbound* format: translation to and from chat completions.

The gateway's ``/v1/responses`` route accepts Responses requests. Every deployment that does not speak the
Responses API natively gets the request translated to a chat completions request (:func:`to_chat`), and
its chat answer translated back: a body with :func:`chat_to_response`, a stream with
:class:`ResponsesStream`, which turns ``chat.completion.chunk`` frames into the Responses event sequence::

    response.created, response.in_progress,
    per output item (reasoning, message, function_call ...):
        response.output_item.added
        reasoning: response.content_part.added, response.reasoning_text.delta*, .reasoning_text.done,
                   response.content_part.done; when the request asked for a ``reasoning.summary``:
                   response.reasoning_summary_part.added, response.reasoning_summary_text.delta*,
                   .reasoning_summary_text.done, response.reasoning_summary_part.done
        message:   response.content_part.added, response.output_text.delta*, response.output_text.done,
                   response.content_part.done
        function_call: response.function_call_arguments.delta*, response.function_call_arguments.done
        response.output_item.done
    response.completed (the whole Response, usage included) | response.failed

Every event carries ``sequence_number``, 0 first, one more each event. Items are opened as their first
delta arrives (one reasoning item, one message item, one function_call item per chat tool-call
``index``, so interleaved tool calls each keep their item) and all are closed, in output order, when the
stream ends; ``response.completed`` is held back until the upstream's usage chunk (the IO shell asks for
it with ``stream_options.include_usage``) or the end of the stream, so it carries the real token counts.

The model's reasoning (a chat answer's ``reasoning_content``: Claude's thinking, Gemini's thoughts) becomes
one reasoning item: its ``summary`` text when the request asked for ``reasoning.summary``, as OpenAI's
reasoning models answer, else its ``reasoning_text`` content, as open-weight models do; signed thinking
blocks (chat's ``thinking_blocks``) travel in its ``encrypted_content`` as LiteLLM encodes them, and come
back as the next assistant message's ``thinking_blocks``. ``reasoning.effort`` becomes ``reasoning_effort``,
which the target's parameter rules map (Anthropic: ``thinking``, LiteLLM's budgets 1024 / 2048 / 4096).
The echo of the request (``instructions``, ``tools`` ...) that every Response repeats is built once per
request (:func:`echo`); conversation state is the frontend's (``frontends.responses_state``), which also
replaces ``item_reference`` input items by the stored items they name before :func:`to_chat`. No IO here.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import orjson

from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import SHAPE_ERRORS
from relaygate.providers.messages_responses import encrypted_content, thinking_blocks

BUILTIN_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                           "web_search_preview_2025_03_11", "file_search", "code_interpreter",
                           "computer_use_preview", "computer_use", "image_generation", "mcp", "local_shell",
                           "shell", "apply_patch", "custom", "tool_search"})


_bits = random.getrandbits


class Untranslatable(errors.BadRequest):
    """A request only a native Responses upstream can serve (built-in tools, unknown items): raised for a
    translated deployment, never for a native one."""


def new_id(prefix: str) -> str:
    """``prefix`` and 128 random bits in hex. From the process's seeded generator (reseeded in a forked
    child by ``random`` itself), not ``os.urandom``: that syscall releases the GIL, and on a worker whose
    database thread is busy, taking it back cost a stream ~40 us (py-spy), more than translating it. An id
    names a response; it is no credential (stored responses are read by their owner only)."""
    return f"{prefix}{_bits(128):032x}"



# ------------------------------------------------------------------------------ Responses -> chat


def _bad(message: str, param: str = "input") -> Untranslatable:
    return Untranslatable(message, param=param)


def _text_parts(content: Any, role: str) -> str:
    """The text of a system / developer / assistant message (``input_text`` / ``output_text`` parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"input: the content of a `{role}` message must be a string or an array")
    out: list[str] = []
    for p in content:
        t = p.get("type") if isinstance(p, dict) else None
        if t in ("input_text", "output_text", "text"):
            out.append(str(p.get("text") or ""))
        elif t == "refusal":
            out.append(str(p.get("refusal") or ""))
        else:
            raise _bad(f"input: unsupported content type `{t}` in a `{role}` message")
    return "".join(out)


def _user_parts(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad("input: the content of a `user` message must be a string or an array")
    out: list[dict[str, Any]] = []
    for p in content:
        t = p.get("type") if isinstance(p, dict) else None
        if t in ("input_text", "text"):
            out.append({"type": "text", "text": str(p.get("text") or "")})
        elif t == "input_image":
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise _bad("input: `input_image` by `file_id` is not served by this gateway; send `image_url` "
                           "(an https URL or a data URL)")
            image: dict[str, Any] = {"url": url}
            if p.get("detail") in ("low", "high", "auto"):
                image["detail"] = p["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif t == "input_file":
            data = p.get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise _bad("input: `input_file` must carry `file_data` as a data URL "
                           "(data:<mime>;base64,...); `file_id` and `file_url` are not served by this gateway")
            f: dict[str, Any] = {"file_data": data}
            if isinstance(p.get("filename"), str):
                f["filename"] = p["filename"]
            out.append({"type": "file", "file": f})
        else:
            raise _bad(f"input: unsupported content type `{t}` in a `user` message")
    if all(p["type"] == "text" for p in out):
        return "".join(p["text"] for p in out)
    return out


def _output_text(output: Any) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _user_parts(output)
    raise _bad("input: `function_call_output.output` must be a string or an array")


def _messages(items: list[Any]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    marks: list[tuple[int, list[dict[str, Any]]]] = []  # thinking blocks for the assistant message at an index
    for it in items:
        if not isinstance(it, dict):
            raise _bad("input: each input item must be an object")
        t = it.get("type", "message" if "role" in it else None)
        if t == "message":
            role = it.get("role")
            content = it.get("content")
            if role == "user":
                msgs.append({"role": "user", "content": _user_parts(content)})
            elif role in ("system", "developer"):
                msgs.append({"role": "system", "content": _text_parts(content, str(role))})
            elif role == "assistant":
                msgs.append({"role": "assistant", "content": _text_parts(content, "assistant")})
            else:
                raise _bad(f"input: unexpected message role `{role}`")
        elif t == "function_call":
            call = cv.tool_call(str(it.get("call_id") or ""), str(it.get("name") or ""),
                                str(it.get("arguments") or "{}"))
            last = msgs[-1] if msgs else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif t == "function_call_output":
            msgs.append({"role": "tool", "tool_call_id": str(it.get("call_id") or ""),
                         "content": _output_text(it.get("output"))})
        elif t == "reasoning":  # the model's earlier reasoning: only the thinking blocks it carries go back
            blocks = thinking_blocks(it.get("encrypted_content"))
            if blocks:
                marks.append((len(msgs), blocks))
        elif t == "item_reference":
            raise _bad("input: `item_reference` names a stored item, and this gateway stores no responses (it "
                       "has no database): send the item itself")
        else:
            raise _bad(f"input: unsupported input item type `{t}`")
    for at, blocks in marks:
        if at < len(msgs) and msgs[at]["role"] == "assistant":
            msgs[at].setdefault("thinking_blocks", blocks)
    return msgs


WEB_SEARCH_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                              "web_search_preview_2025_03_11"})


def web_search_options(tools: Any) -> dict[str, Any] | None:
    """A Responses web search tool as chat's ``web_search_options`` (its ``search_context_size``; its flat
    ``user_location`` as chat's ``{"type": "approximate", "approximate": {...}}``), as LiteLLM bridges it; None
    without one."""
    for t in tools if isinstance(tools, list) else ():
        if isinstance(t, dict) and t.get("type") in WEB_SEARCH_TOOLS:
            out: dict[str, Any] = {}
            if t.get("search_context_size") is not None:
                out["search_context_size"] = t["search_context_size"]
            where = t.get("user_location")
            if isinstance(where, dict):
                out["user_location"] = {"type": "approximate", "approximate": {
                    k: v for k, v in where.items() if k in ("city", "region", "country", "timezone")}}
            return out
    return None


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tools:
        if not isinstance(t, dict):
            raise errors.BadRequest("tools: each tool must be an object", param="tools")
        tt = t.get("type")
        if tt != "function":
            raise _bad(f"tools: built-in tool `{tt}` is only available on openai/ and azure/ deployments "
                       f"(served natively); this deployment is reached through chat completions", param="tools")
        fn: dict[str, Any] = {"name": str(t.get("name") or "")}
        if t.get("description"):
            fn["description"] = t["description"]
        fn["parameters"] = t.get("parameters") or {"type": "object", "properties": {}}
        if t.get("strict") is not None:
            fn["strict"] = bool(t["strict"])
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(tc: Any) -> Any:
    if tc in ("auto", "none", "required"):
        return tc
    if isinstance(tc, dict) and tc.get("type") == "function":
        return {"type": "function", "function": {"name": str(tc.get("name") or "")}}
    kind = tc.get("type") if isinstance(tc, dict) else tc
    raise _bad(f"tool_choice: `{kind}` is only available on openai/ and azure/ deployments", param="tool_choice")


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        schema: dict[str, Any] = {"name": str(fmt.get("name") or "response"), "schema": fmt.get("schema") or {}}
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        if fmt.get("strict") is not None:
            schema["strict"] = bool(fmt["strict"])
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind in (None, "text"):
        return None
    raise errors.BadRequest(f"text.format: unsupported format type `{kind}`", param="text.format")


class _Request(msgspec.Struct):
    """The top level of a Responses request, checked so a wrong type is a 400 naming the field."""

    model: str
    input: str | list[Any] | None = None
    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None
    store: bool | None = None


def validate(req: dict[str, Any]) -> None:
    """Raise ``BadRequest`` naming the field when a top-level field of ``req`` has the wrong type
    (``previous_response_id`` and ``background`` are the frontend's, taken out before)."""
    try:
        msgspec.convert(req, _Request)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = text.rfind(" - at `$.")
        param = text[at + 9:-1].split(".")[0].split("[")[0] if at != -1 else None
        raise errors.BadRequest(f"Invalid request body: {text}", param=param) from None


def to_chat(req: dict[str, Any], model: str) -> dict[str, Any]:
    """Responses request dict (checked by :func:`validate`) -> chat completions request dict.

    Raises :class:`Untranslatable` for what only a native upstream serves, ``BadRequest`` for the rest."""
    msgs: list[dict[str, Any]] = []
    if req.get("instructions"):
        msgs.append({"role": "system", "content": req["instructions"]})
    inp = req.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        msgs += _messages(inp)
    if not msgs:
        raise errors.BadRequest("input: Field required", param="input")
    out: dict[str, Any] = {"model": model, "messages": msgs}
    tools = req.get("tools")
    search = web_search_options(tools)
    if search is not None:  # LiteLLM's bridge: a web search tool is the chat request's web_search_options
        out["web_search_options"] = search
        tools = [t for t in tools or () if not (isinstance(t, dict) and t.get("type") in WEB_SEARCH_TOOLS)]
    if tools:
        out["tools"] = _tools(tools)
        if req.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(req["tool_choice"])
        if req.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = req["parallel_tool_calls"]
    text = req.get("text")
    rf = _response_format(text.get("format")) if isinstance(text, dict) else None
    if rf is not None:
        out["response_format"] = rf
    reasoning = req.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    if req.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = req["max_output_tokens"]
    for k in ("temperature", "top_p", "user"):
        if req.get(k) is not None:
            out[k] = req[k]
    if req.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def echo(req: dict[str, Any], metadata: Any) -> dict[str, Any]:
    """The request fields every Response object of this request repeats (and their defaults)."""
    text = req.get("text") if isinstance(req.get("text"), dict) else None
    reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else None
    return {
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "metadata": metadata if isinstance(metadata, dict) else {},
        "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")},
        "store": False,
        "temperature": req.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice") if req.get("tool_choice") is not None else "auto",
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "truncation": "disabled",
        "user": req.get("user"),
    }


# ------------------------------------------------------------------------------ chat -> Responses


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def response_usage(u: dict[str, Any] | None) -> dict[str, Any]:
    u = u or {}
    prompt = int(u.get("prompt_tokens") or 0)
    completion = int(u.get("completion_tokens") or 0)
    cached = int(_obj(u.get("prompt_tokens_details")).get("cached_tokens") or 0)
    reasoning = int(_obj(u.get("completion_tokens_details")).get("reasoning_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": int(u.get("total_tokens") or prompt + completion)}


def chat_usage(u: Any, service_tier: Any = None) -> bytes:
    """A Responses ``usage`` as a chat-shaped ``{"usage": ...}`` (and the ``service_tier`` it was priced at)."""
    if not isinstance(u, dict):
        return b""
    ind = _obj(u.get("input_tokens_details"))
    outd = _obj(u.get("output_tokens_details"))
    tier = {"service_tier": service_tier} if isinstance(service_tier, str) and service_tier else {}
    return orjson.dumps({**tier, "usage": {
        "prompt_tokens": int(u.get("input_tokens") or 0), "completion_tokens": int(u.get("output_tokens") or 0),
        "total_tokens": int(u.get("total_tokens") or 0),
        "prompt_tokens_details": {"cached_tokens": int(ind.get("cached_tokens") or 0)},
        "completion_tokens_details": {"reasoning_tokens": int(outd.get("reasoning_tokens") or 0)}}})


def response_object(rid: str, created: int, model: str, ech: dict[str, Any], status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "status": status, "background": False,
            "error": error, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": model, "output": output, **ech, "usage": usage}


def summarized(ech: dict[str, Any]) -> bool:
    """Whether the request asked for a reasoning summary (the echo's ``reasoning.summary``)."""
    return bool(_obj(ech.get("reasoning")).get("summary"))


def _reasoning_item(iid: str, text: str, status: str, summary: bool = False,
                    encrypted: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": iid, "type": "reasoning", "summary": [], "status": status}
    if summary:
        item["summary"] = [{"type": "summary_text", "text": text}]
    else:
        item["content"] = [{"type": "reasoning_text", "text": text}]
    if encrypted:
        item["encrypted_content"] = encrypted
    return item


def _message_item(iid: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": iid, "type": "message", "role": "assistant", "status": status, "content": content}


def _call_item(iid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": iid, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def chat_to_response(body: bytes, model: str, created: int, ech: dict[str, Any]) -> bytes:
    """chat.completion body -> Response object body; one it cannot read is a 502."""
    try:
        return _chat_to_response(body, model, created, ech)
    except SHAPE_ERRORS as exc:
        raise errors.UpstreamProtocolError(
            f"the upstream sent a response of an unexpected shape ({type(exc).__name__}: {exc})") from None


def _chat_to_response(body: bytes, model: str, created: int, ech: dict[str, Any]) -> bytes:
    obj = orjson.loads(body)
    ch = (obj.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    output: list[dict[str, Any]] = []
    rid = new_id("resp_")  # item ids: the response's random part and the item's place

    def iid(prefix: str) -> str:
        return f"{prefix}{rid[5:]}{len(output):02x}"

    enc = encrypted_content(msg.get("thinking_blocks"))
    if msg.get("reasoning_content") or enc:
        output.append(_reasoning_item(iid("rs_"), str(msg.get("reasoning_content") or ""), "completed",
                                      summarized(ech), enc))
    text = msg.get("content")
    if isinstance(text, list):
        text = cv.text_of(text)
    if text:
        output.append(_message_item(iid("msg_"), str(text), "completed"))
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        output.append(_call_item(iid("fc_"), str(tc.get("id") or cv.new_call_id()), str(fn.get("name") or ""),
                                 str(fn.get("arguments") or ""), "completed"))
    status = "incomplete" if ch.get("finish_reason") == "length" else "completed"
    return orjson.dumps(response_object(rid, created, model, ech, status, output,
                                        response_usage(obj.get("usage"))))


class _Fn(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Fn | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolDelta] | None = None
    thinking_blocks: list[Any] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)


_DELTA_EVENT = {"reasoning": "response.reasoning_text.delta", "summary": "response.reasoning_summary_text.delta",
                "message": "response.output_text.delta", "function_call": "response.function_call_arguments.delta"}
_DELTA_AT = {"reasoning": b',"content_index":0,"delta":', "summary": b',"summary_index":0,"delta":',
             "message": b',"content_index":0,"delta":', "function_call": b',"delta":'}
_DELTA_END = {"message": b',"logprobs":[]}\n\n'}


class _Item:
    """One output item being streamed: its kind, id, position, what it has accumulated, and its delta event
    encoded once (``head`` + sequence number + ``mid`` + the delta as a JSON string + ``tail``): the hot loop
    builds no dict and encodes only the delta text."""

    __slots__ = ("kind", "id", "index", "parts", "call_id", "name", "head", "mid", "tail", "blocks", "final")

    def __init__(self, kind: str, iid: str, index: int, call_id: str = "", name: str = "",
                 delta: str = "") -> None:
        self.kind = kind
        self.id = iid
        self.index = index
        self.parts: list[str] = []
        self.call_id = call_id
        self.name = name
        self.blocks: list[dict[str, Any]] = []  # reasoning: the thinking blocks' signatures and redacted data
        self.final: dict[str, Any] | None = None  # the item as its output_item.done sent it, once closed
        event = _DELTA_EVENT[delta or kind]
        self.head = b"event: %b\ndata: {\"type\":\"%b\",\"sequence_number\":" % (event.encode(), event.encode())
        self.mid = b',"item_id":%b,"output_index":%d%b' % (orjson.dumps(iid), index, _DELTA_AT[delta or kind])
        self.tail = _DELTA_END.get(delta or kind, b"}\n\n")

    def done(self, summary: bool) -> dict[str, Any]:
        text = "".join(self.parts)
        if self.kind == "reasoning":
            sig = next((b["signature"] for b in reversed(self.blocks) if b.get("signature")), None)
            blocks = [{"type": "thinking", "thinking": text, "signature": sig}] if sig else []
            blocks += [b for b in self.blocks if b.get("type") == "redacted_thinking"]  # signed text, then redacted
            return _reasoning_item(self.id, text, "completed", summary, encrypted_content(blocks))
        if self.kind == "message":
            return _message_item(self.id, text, "completed")
        return _call_item(self.id, self.call_id, self.name, text, "completed")


def error_code(status: int) -> str:
    return "rate_limit_exceeded" if status == 429 else "server_error"


class ResponsesStream:
    """chat chunk frames (clean ``data: ...\\n\\n``) in, Responses SSE events out.

    ``feed`` returns the event bytes completed by its input; ``close`` ends the response (closing the open
    items and sending ``response.completed`` if the upstream did not get that far); :meth:`failed` renders
    a ``response.failed`` event for an upstream that broke off mid-stream.
    """

    __slots__ = ("_buf", "_created", "_echo", "_items", "_message", "_reasoning", "_seq", "_started", "_status",
                 "_summary", "_tools", "_usage", "done", "id", "model")

    def __init__(self, model: str, created: int, ech: dict[str, Any]) -> None:
        self.model = model
        self.id = new_id("resp_")
        self._created = created
        self._echo = ech
        self._summary = summarized(ech)
        self._buf = b""
        self._seq = 0
        self._started = False
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._tools: dict[int, _Item] = {}
        self._status = "completed"
        self._usage: dict[str, Any] | None = None
        self.done = False

    def _delta(self, out: list[bytes], item: _Item, text: str) -> None:
        item.parts.append(text)
        out.append(item.head + b"%d" % self._seq + item.mid + orjson.dumps(text) + item.tail)
        self._seq += 1

    def _ev(self, out: list[bytes], kind: str, fields: dict[str, Any]) -> None:
        payload = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")

    def _response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                  error: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.id, self._created, self.model, self._echo, status, output, usage, error)

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        r = self._response("in_progress", [], None)
        self._ev(out, "response.created", {"response": r})
        self._ev(out, "response.in_progress", {"response": r})

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        while True:
            j = buf.find(b"\n\n", pos)
            if j < 0:
                break
            block = buf[pos:j]
            pos = j + 2
            if block.startswith(b"data: "):
                payload = block[6:]
                if payload == b"[DONE]":
                    self._finish(out)
                    break
                self._chunk(payload, out)
                if self.done:
                    break
        self._buf = buf[pos:] if not self.done else b""
        return b"".join(out)

    def close(self) -> bytes:
        if self.done:
            return b""
        out: list[bytes] = []
        self._finish(out)
        return b"".join(out)

    def failed(self, exc: errors.GatewayError) -> bytes:
        """``response.failed`` for a stream the upstream broke off (the open items are left unfinished)."""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._ev(out, "response.failed", {"response": self._response(
            "failed", [], None, {"code": error_code(exc.status), "message": exc.message})})
        self.done = True
        return b"".join(out)

    def _open(self, out: list[bytes], kind: str, prefix: str, call_id: str = "", name: str = "") -> _Item:
        index = len(self._items)  # item ids: the response's random part and the item's place (one urandom call)
        item = _Item(kind, f"{prefix}{self.id[5:]}{index:02x}", index, call_id, name,
                     "summary" if kind == "reasoning" and self._summary else "")
        self._items.append(item)
        if kind == "reasoning":
            added = {"id": item.id, "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
        elif kind == "message":
            added = _message_item(item.id, None, "in_progress")
        else:
            added = _call_item(item.id, call_id, name, "", "in_progress")
        self._ev(out, "response.output_item.added", {"output_index": item.index, "item": added})
        if kind == "reasoning" and self._summary:
            self._ev(out, "response.reasoning_summary_part.added", {
                "item_id": item.id, "output_index": item.index, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""}})
        elif kind == "reasoning":
            self._ev(out, "response.content_part.added", {"item_id": item.id, "output_index": item.index,
                                                          "content_index": 0,
                                                          "part": {"type": "reasoning_text", "text": ""}})
        elif kind == "message":
            self._ev(out, "response.content_part.added", {
                "item_id": item.id, "output_index": item.index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        return item

    def _chunk(self, payload: bytes, out: list[bytes]) -> None:
        try:
            ch = _chunk_decoder.decode(payload)
        except msgspec.DecodeError:
            return
        if not self._started:
            self._start(out)
        if ch.error is not None:
            code = str(ch.error.get("code") or "")
            status = int(code) if code.isdigit() else 500
            exc = errors.GatewayError(str(ch.error.get("message") or "upstream error"), status=status)
            out.append(self.failed(exc))
            return
        if ch.usage is not None:
            self._usage = ch.usage
        for c in ch.choices:
            d = c.delta
            if d is not None:  # as OpenAI streams, an item is done before the next kind of item starts
                if d.reasoning_content or d.thinking_blocks:
                    item = self._reasoning
                    if item is None:
                        self._settle(out)
                        item = self._reasoning = self._open(out, "reasoning", "rs_")
                    if d.reasoning_content:
                        self._delta(out, item, d.reasoning_content)
                    if d.thinking_blocks:
                        item.blocks += [b for b in d.thinking_blocks if isinstance(b, dict)]
                if d.content:
                    item = self._message
                    if item is None:
                        self._settle(out)
                        item = self._message = self._open(out, "message", "msg_")
                    self._delta(out, item, d.content)
                for tc in d.tool_calls or ():
                    fn = tc.function
                    call = self._tools.get(tc.index)
                    if call is None:
                        self._settle(out)
                        call = self._open(out, "function_call", "fc_", tc.id or cv.new_call_id(),
                                          (fn.name if fn else None) or "")
                        self._tools[tc.index] = call
                    if fn is not None and fn.arguments:
                        self._delta(out, call, fn.arguments)
            if c.finish_reason == "length":
                self._status = "incomplete"

    def _settle(self, out: list[bytes]) -> None:  # another kind of item starts: close the open ones
        for item in (self._reasoning, self._message):
            if item is not None:
                self._close(out, item)
        self._reasoning = self._message = None

    def _finish(self, out: list[bytes]) -> None:
        if not self._started:
            self._start(out)
        for item in self._items:
            if item.final is None:
                self._close(out, item)
        kind = "response.incomplete" if self._status == "incomplete" else "response.completed"
        final = [item.final for item in self._items if item.final is not None]
        self._ev(out, kind, {"response": self._response(self._status, final, response_usage(self._usage))})
        self.done = True

    def _close(self, out: list[bytes], item: _Item) -> None:
        where = {"item_id": item.id, "output_index": item.index}
        text = "".join(item.parts)
        done = item.final = item.done(self._summary)
        if item.kind == "reasoning" and self._summary:
            self._ev(out, "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text})
            self._ev(out, "response.reasoning_summary_part.done", {**where, "summary_index": 0,
                                                                   "part": done["summary"][0]})
        elif item.kind == "function_call":
            self._ev(out, "response.function_call_arguments.done", {**where, "name": item.name, "arguments": text})
        else:
            msg = item.kind == "message"
            self._ev(out, "response.output_text.done" if msg else "response.reasoning_text.done",
                     {**where, "content_index": 0, "text": text, **({"logprobs": []} if msg else {})})
            self._ev(out, "response.content_part.done", {**where, "content_index": 0, "part": done["content"][0]})
        self._ev(out, "response.output_item.done", {"output_index": item.index, "item": done})
