"""Anthropic Messages API (``anthropic/``): OpenAI chat requests in, Anthropic's shape on the wire.

Request translation follows LiteLLM's choices: every ``system`` (and ``developer``) message is lifted
into the top-level ``system`` blocks (``cache_control`` kept); ``role: tool`` messages become
``tool_result`` blocks of a user turn; consecutive same-role turns are merged (Anthropic requires
alternation) and a conversation that starts with the assistant gets a ``"."`` user turn first;
``image_url`` parts become ``image`` blocks (base64 for data URIs, ``url`` sources otherwise), PDF
``file`` parts ``document`` blocks; ``input_audio`` is a 400. ``max_tokens`` defaults to 4096, ``stop``
becomes ``stop_sequences``, ``tools``/``tool_choice``/``parallel_tool_calls`` map to Anthropic's forms and
``user`` to ``metadata.user_id``.

Responses: text blocks join into ``content``, ``tool_use`` blocks become ``tool_calls`` (arguments as
JSON text), ``thinking`` blocks ``reasoning_content``; every ``thinking`` block (with its ``signature``) and
``redacted_thinking`` block is also kept whole in the message's ``thinking_blocks`` (LiteLLM's field), which
a client sends back on its assistant message (sent first, as Anthropic requires of a tool loop's last
assistant turn while thinking is on); stop reasons map end_turn/stop_sequence -> stop,
max_tokens -> length, tool_use -> tool_calls; usage counts cache reads and writes into
``prompt_tokens`` (as LiteLLM does) and reports ``cache_read_input_tokens`` as
``prompt_tokens_details.cached_tokens``.

Streams are translated event by event (:class:`AnthropicStream`): ``message_start`` -> role chunk,
``content_block_start`` of a ``tool_use`` -> a tool call chunk with its id, name and OpenAI ``index``
(counted over tool blocks only), ``input_json_delta`` -> argument fragments at that index,
``text_delta``/``thinking_delta`` -> content/reasoning, ``signature_delta`` -> a ``thinking_blocks`` delta
holding the signature (``{"type": "thinking", "thinking": "", "signature": ...}``: the text went out as
reasoning), ``content_block_start`` of a ``redacted_thinking`` block -> a ``thinking_blocks`` delta with its
``data`` (streams without thinking pay nothing for either), ``message_delta`` -> finish chunk and output
tokens, ``message_stop`` -> usage chunk (if asked) and ``[DONE]``; ``ping`` is dropped and an ``error``
event raises the mapped :class:`GatewayError` (retried or sent in-band by the shell).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import msgspec
import orjson

from relaygate.config.model import Deployment
from relaygate.core import cache_points, errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import Call, Provider, StreamTranslator, classify, json_object
from relaygate.providers.openai import REQUEST_DEFAULTS
from relaygate.upstream.base import UpstreamRequest

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}

#: Anthropic error type -> HTTP status, for errors that arrive inside a 200 stream
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                "overloaded_error": 529, "timeout_error": 504}

_PASS_PARAMS = ("temperature", "top_p", "top_k", "thinking", "metadata", "service_tier", "container",
                "mcp_servers")


# ------------------------------------------------------------------------------------ request side


def _image_block(url: str) -> dict[str, Any]:
    du = cv.data_uri(url)
    if du is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": du[0], "data": du[1]}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any, model: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for p in cv.parts_of(content):
        t = p.get("type")
        if t == "text":
            b: dict[str, Any] = {"type": "text", "text": p.get("text", "")}
        elif t == "image_url":
            b = _image_block(cv.image_url_of(p))
        elif t == "file":
            f = p.get("file") or {}
            fd = f.get("file_data")
            du = cv.data_uri(fd) if isinstance(fd, str) else None
            if du is None:
                raise cv.unsupported("file (without file_data)", "anthropic", model)
            kind = "document" if du[0] == "application/pdf" or not du[0].startswith("image/") else "image"
            b = {"type": kind, "source": {"type": "base64", "media_type": du[0], "data": du[1]}}
        elif t == "input_audio":
            raise cv.unsupported("input_audio", "anthropic", model)
        elif t in ("image", "document", "tool_result", "tool_use", "thinking", "redacted_thinking"):
            b = dict(p)  # already Anthropic-shaped: pass through
        else:
            raise errors.BadRequest(f"Unsupported content part type `{t}` for anthropic", param="messages")
        if "cache_control" in p and "cache_control" not in b:
            b["cache_control"] = p["cache_control"]
        blocks.append(b)
    return blocks


def _tool_result_content(content: Any, model: str) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    return _user_blocks(content, model)


def _mark_last(blocks: list[dict[str, Any]], control: Any) -> None:
    """A message's own ``cache_control`` (LiteLLM's message-level breakpoint, as ``core.cache_points`` puts it on
    a text message) on the last block it became, unless that block has one."""
    if control is not None and blocks and "cache_control" not in blocks[-1]:
        blocks[-1]["cache_control"] = control


def to_anthropic(req: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI chat request dict -> Anthropic Messages request dict (``model`` set to ``model``)."""
    cache_points.inject(req)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in req.get("messages") or ():
        if not isinstance(m, dict):
            raise errors.BadRequest("Invalid request body: each message must be an object", param="messages")
        role = m.get("role")
        content = m.get("content")
        marker = m.get("cache_control")
        if role in ("system", "developer"):
            texts = [b for b in _user_blocks(content, model) if b.get("type") == "text" and b.get("text")]
            _mark_last(texts, marker)
            system.extend(texts)
        elif role == "user":
            blocks = _user_blocks(content, model)
            if not blocks and content == "":
                blocks = [{"type": "text", "text": " "}]
            _mark_last(blocks, marker)
            push("user", blocks)
        elif role == "assistant":
            blocks = []
            thinking = m.get("thinking_blocks")
            if isinstance(thinking, list):
                blocks.extend(b for b in thinking if isinstance(b, dict))
            for b in _user_blocks(content, model):
                if b.get("type") != "text" or b.get("text"):
                    blocks.append(b)
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function") or {}
                blocks.append({"type": "tool_use", "id": tc.get("id") or cv.new_call_id(),
                               "name": fn.get("name", ""), "input": cv.tool_args(fn.get("arguments"))})
            fc = m.get("function_call")
            if isinstance(fc, dict):
                blocks.append({"type": "tool_use", "id": cv.new_call_id(), "name": fc.get("name", ""),
                               "input": cv.tool_args(fc.get("arguments"))})
            _mark_last(blocks, marker)
            push("assistant", blocks)
        elif role in ("tool", "function"):
            block: dict[str, Any] = {"type": "tool_result",
                                     "tool_use_id": m.get("tool_call_id") or m.get("name") or "",
                                     "content": _tool_result_content(content, model)}
            if m.get("is_error"):
                block["is_error"] = True
            if isinstance(content, list):
                cc = next((p["cache_control"] for p in content if isinstance(p, dict) and "cache_control" in p),
                          None)
                if cc is not None:
                    block["cache_control"] = cc
            _mark_last([block], marker)
            push("user", [block])
        else:
            raise errors.BadRequest(f"Invalid message role `{role}`", param="messages")
    if turns and turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "."}]})
    if not turns:
        raise errors.BadRequest("anthropic requires at least one user or assistant message", param="messages")

    out: dict[str, Any] = {"model": model, "messages": turns}
    if system:
        out["system"] = system
    mt = cv.max_tokens(req)
    out["max_tokens"] = mt if mt is not None else DEFAULT_MAX_TOKENS
    for k in _PASS_PARAMS:
        v = req.get(k)
        if v is not None:
            out[k] = v
    stop = cv.stop_list(req.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    if req.get("user") and "metadata" not in out:
        out["metadata"] = {"user_id": str(req["user"])}
    fns = cv.openai_tools(req)
    tools = []
    for f in fns:
        t: dict[str, Any] = {"name": f.get("name", ""),
                             "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
        if f.get("description"):
            t["description"] = f["description"]
        if "cache_control" in f:
            t["cache_control"] = f["cache_control"]
        tools.append(t)
    # Anthropic-native tools (computer use, web search, bash ...) pass through as given, with functions or alone
    tools.extend(t for t in req.get("tools") or () if isinstance(t, dict) and t.get("type", "function")
                 not in ("function",) and "function" not in t)
    if tools:
        out["tools"] = tools
    search = web_search_tool(req.get("web_search_options"))
    if search is not None:
        out.setdefault("tools", []).append(search)
    tc = _tool_choice(req.get("tool_choice") or req.get("function_call"))
    schema = json_mode_schema(req.get("response_format"))
    if schema is not None:
        # LiteLLM's JSON mode for Claude: one forced tool whose input is the answer (a forced tool choice is
        # refused while thinking is on: then the model is only offered it)
        out.setdefault("tools", []).append({"name": JSON_TOOL, "input_schema": schema})
        thinking = out.get("thinking")
        if not (isinstance(thinking, dict) and thinking.get("type") == "enabled"):
            tc = {"type": "tool", "name": JSON_TOOL}
    if req.get("parallel_tool_calls") is False and fns:
        tc = tc or {"type": "auto"}
        tc["disable_parallel_tool_use"] = True
    if tc is not None:
        if tc.get("type") == "none":
            out.pop("tools", None)
        elif "tools" in out:  # (Anthropic refuses a tool_choice without tools)
            out["tool_choice"] = tc
    if req.get("stream"):
        out["stream"] = True
    return out


WEB_SEARCH_MAX_USES = {"low": 1, "medium": 5, "high": 10}
"""LiteLLM's ``search_context_size`` -> the web search tool's ``max_uses``."""
_LOCATION_KEYS = ("city", "region", "country", "timezone")


def web_search_tool(options: Any) -> dict[str, Any] | None:
    """OpenAI's ``web_search_options`` as Anthropic's server web search tool, as LiteLLM maps it
    (``search_context_size`` -> ``max_uses``, ``user_location.approximate`` -> ``user_location``); None without."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise errors.BadRequest("web_search_options: expected an object", param="web_search_options")
    tool: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
    where = options.get("user_location")
    approx = where.get("approximate") if isinstance(where, dict) else None
    if isinstance(approx, dict):
        tool["user_location"] = {"type": "approximate", **{k: approx[k] for k in _LOCATION_KEYS
                                                            if isinstance(approx.get(k), str)}}
    size = options.get("search_context_size")
    if size is not None:
        if size not in WEB_SEARCH_MAX_USES:
            raise errors.BadRequest("web_search_options.search_context_size: expected low, medium or high",
                                    param="web_search_options")
        tool["max_uses"] = WEB_SEARCH_MAX_USES[size]
    return tool


JSON_TOOL = "json_tool_call"
"""The tool a ``response_format`` becomes (LiteLLM's ``RESPONSE_FORMAT_TOOL_NAME``); its call is the answer."""


def json_mode_schema(rf: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for (``json_object``: any object), None for text/absent."""
    if not isinstance(rf, dict):
        return None
    kind = rf.get("type")
    if kind == "json_schema":
        js = rf.get("json_schema")
        schema = js.get("schema") if isinstance(js, dict) else None
        if not isinstance(schema, dict):
            raise errors.BadRequest("response_format.json_schema.schema: expected an object", param="response_format")
        return schema
    if kind == "json_object":
        return {"type": "object", "additionalProperties": True, "properties": {}}
    return None


def json_mode(call: Call) -> bool:
    """Whether the request asked for JSON (a substring test first: the body is decoded only when it names
    ``response_format``)."""
    if b'"response_format"' not in call.body:
        return False
    try:
        rf = orjson.loads(call.body).get("response_format")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(rf, dict) and rf.get("type") in ("json_schema", "json_object")


def _tool_choice(tc: Any) -> dict[str, Any] | None:
    if tc is None:
        return None
    if tc == "auto":
        return {"type": "auto"}
    if tc == "required" or tc == "any":
        return {"type": "any"}
    if tc == "none":
        return {"type": "none"}
    if isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name") or tc.get("name")
        if name:
            return {"type": "tool", "name": name}
    raise errors.BadRequest(f"Invalid tool_choice: {tc!r}", param="tool_choice")


# ----------------------------------------------------------------------------------- response side


def convert_usage(u: dict[str, Any] | Any) -> dict[str, Any]:
    get = u.get if isinstance(u, dict) else (lambda k, d=None: getattr(u, k, d))
    inp = get("input_tokens") or 0
    cr = get("cache_read_input_tokens") or 0
    cw = get("cache_creation_input_tokens") or 0
    out = get("output_tokens") or 0
    usage = cv.usage(inp + cr + cw, out, cached=cr, cache_creation_input_tokens=cw, cache_read_input_tokens=cr)
    cc = get("cache_creation")
    if cc is not None:  # the 5m / 1h split of the cache writes, where LiteLLM puts it (priced apart)
        cget = cc.get if isinstance(cc, dict) else (lambda k, d=None: getattr(cc, k, d))
        usage["prompt_tokens_details"]["cache_creation_token_details"] = {
            "ephemeral_5m_input_tokens": int(cget("ephemeral_5m_input_tokens") or 0),
            "ephemeral_1h_input_tokens": int(cget("ephemeral_1h_input_tokens") or 0)}
    return usage


def from_anthropic(body: bytes, fallback_model: str, created: int, json_answer: bool = False) -> bytes:
    """Anthropic Messages response body -> OpenAI chat.completion body (with ``json_answer``, a call of
    :data:`JSON_TOOL` is the message's content, as LiteLLM answers JSON mode)."""
    obj = orjson.loads(body)
    if obj.get("type") == "error":
        raise _stream_error(obj.get("error") or {})
    texts: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    tool_calls = []
    for b in obj.get("content") or ():
        t = b.get("type")
        if t == "text":
            texts.append(b.get("text", ""))
        elif t == "tool_use" and json_answer and b.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(b.get("input", {})).decode())
        elif t == "tool_use":
            tool_calls.append(cv.tool_call(b.get("id", ""), b.get("name", ""), orjson.dumps(b.get("input", {}))
                                           .decode()))
        elif t == "thinking":
            reasoning.append(b.get("thinking", ""))
            thinking.append(b)
        elif t == "redacted_thinking":
            thinking.append(b)
    finish = FINISH.get(obj.get("stop_reason") or "end_turn", "stop")
    if json_answer and finish == "tool_calls" and not tool_calls:
        finish = "stop"
    return cv.chat_response(obj.get("id") or "chatcmpl-" + os.urandom(12).hex(),
                            obj.get("model") or fallback_model, created,
                            "".join(texts) if texts or not tool_calls else None, tool_calls, finish,
                            convert_usage(obj.get("usage") or {}), "".join(reasoning) or None, thinking)


def _stream_error(err: dict[str, Any]) -> errors.GatewayError:
    etype = err.get("type") or "api_error"
    return classify(ERROR_STATUS.get(etype, 500), str(err.get("message") or etype), etype, None, None,
                    "AnthropicException")


class _Delta(msgspec.Struct):
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None


class _Block(msgspec.Struct):
    type: str = ""
    id: str | None = None
    name: str | None = None
    text: str | None = None
    data: str | None = None  # redacted_thinking


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    index: int = 0
    delta: _Delta | None = None
    content_block: _Block | None = None
    message: _Message | None = None
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


_event_decoder = msgspec.json.Decoder(_Event)


class AnthropicStream(cv.SSEChunkStream):
    """Anthropic SSE events -> OpenAI chunk frames, one event at a time."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._blocks: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index (-1: the JSON answer)
        self._u = _Usage(0, 0, 0, 0)
        self._json = json_mode(call)

    def _event(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            ev = _event_decoder.decode(data)
        except msgspec.DecodeError:
            raise errors.UpstreamProtocolError(f"anthropic sent an invalid stream event: {data[:200]!r}") from None
        t = ev.type
        if t == "content_block_delta":
            d = ev.delta
            if d is None:
                return b""
            if d.type == "text_delta":
                return self.text(d.text or "")
            w, first = self.writer()
            if d.type == "input_json_delta":
                idx = self._blocks.get(ev.index)
                if idx is None or not d.partial_json:
                    return first
                if idx < 0:  # JSON mode: the forced tool's input is the answer's text
                    return first + self.text(d.partial_json)
                self._chars += len(d.partial_json)
                return first + w.tool_args(idx, d.partial_json)
            if d.type == "thinking_delta" and d.thinking:
                self._chars += len(d.thinking)
                return first + w.reasoning(d.thinking)
            if d.type == "signature_delta" and d.signature:
                return first + w.thinking_block({"type": "thinking", "thinking": "", "signature": d.signature})
            return first
        if t == "content_block_start":
            b = ev.content_block
            if b is None:
                return b""
            if self._json and b.type == "tool_use" and b.name == JSON_TOOL:
                self._blocks[ev.index] = -1
                return b""
            if b.type == "tool_use" or b.type == "server_tool_use":
                self.tool_index += 1
                self._blocks[ev.index] = self.tool_index
                w, first = self.writer()
                self.emitted = True
                return first + w.tool_start(self.tool_index, b.id or "", b.name or "")
            if b.type == "text" and b.text:
                return self.text(b.text)
            if b.type == "redacted_thinking" and b.data:
                w, first = self.writer()
                return first + w.thinking_block({"type": "redacted_thinking", "data": b.data})
            return b""
        if t == "message_start":
            m = ev.message
            if m is not None and m.usage is not None:
                self._merge(m.usage)
            if self.w is not None:
                return b""
            return self.start(m.id if m else None, m.model if m else None)
        if t == "message_delta":
            if ev.usage is not None:
                self._merge(ev.usage)
            u = self._u
            self.set_usage(convert_usage(u))
            reason = ev.delta.stop_reason if ev.delta is not None else None
            if reason:
                finish = FINISH.get(reason, "stop")
                if finish == "tool_calls" and self._json and self.tool_index < 0:  # only the JSON answer was one
                    finish = "stop"
                return self.finish(finish)
            return b""
        if t == "message_stop":
            return self.end()
        if t == "error":
            raise _stream_error(ev.error or {})
        return b""  # ping, content_block_stop, unknown future events

    def _merge(self, u: _Usage) -> None:
        mine = self._u
        for f in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                  "cache_creation"):
            v = getattr(u, f)
            if v is not None:
                setattr(mine, f, v)


class AnthropicProvider(Provider):
    name: ClassVar[str] = "anthropic"
    default_api_base: ClassVar[str | None] = "https://api.anthropic.com"
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat"})
    error_prefix: ClassVar[str] = "AnthropicException"
    native_messages: ClassVar[bool] = True

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        base = self.api_base or ""
        if base.endswith("/v1/messages"):
            base = base[: -len("/v1/messages")]
        elif base.endswith("/v1"):
            base = base[:-3]
        self.api_base = base
        self.messages_url = base + "/v1/messages"
        self.count_tokens_url = base + "/v1/messages/count_tokens"
        key = dep.api_key or ""
        self.headers: list[tuple[str, str]] = [("Content-Type", "application/json"), ("x-api-key", key),
                                               ("anthropic-version", ANTHROPIC_VERSION)]
        extra = dep.extra
        self.defaults = {k: v for k, v in extra.items()
                         if k in REQUEST_DEFAULTS or k in _PASS_PARAMS or k == cache_points.FIELD}
        beta = extra.get("anthropic_beta")
        if beta:
            self.headers.append(("anthropic-beta", ",".join(beta) if isinstance(beta, list) else str(beta)))
        extra_headers = extra.get("extra_headers") or extra.get("headers")
        if isinstance(extra_headers, dict):
            self.headers.extend((str(k), str(v)) for k, v in extra_headers.items())

    def build_request(self, call: Call) -> UpstreamRequest:
        req = cv.load_request(call, self.defaults)
        body = orjson.dumps(to_anthropic(req, call.upstream_model))
        return UpstreamRequest("POST", self.messages_url, self.headers, body)

    def native_request(self, body: bytes, headers: list[tuple[str, str]] | None = None,
                       count_tokens: bool = False) -> UpstreamRequest:
        """An Anthropic-shaped body sent as is (the inbound ``/v1/messages`` passthrough)."""
        return UpstreamRequest("POST", self.count_tokens_url if count_tokens else self.messages_url,
                               self.headers + (headers or []), body)

    def native_response(self, body: bytes) -> bytes:
        """A 2xx body of the native ``/v1/messages`` passthrough: sent as is, but it must be a JSON object
        (an HTML page from a proxy is a 502)."""
        return json_object(body, self.name)

    def translate_response(self, call: Call, body: bytes) -> bytes:
        return from_anthropic(body, call.upstream_model, int(call.now), json_mode(call))

    def stream_translator(self, call: Call) -> StreamTranslator:
        return AnthropicStream(call)

    def health_request(self) -> UpstreamRequest | None:
        body = orjson.dumps({"model": self.dep.upstream_model, "max_tokens": 1,
                             "messages": [{"role": "user", "content": "ping"}]})
        return UpstreamRequest("POST", self.messages_url, self.headers, body)
