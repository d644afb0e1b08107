"""The Responses API's requests translated to chat completions (:func:`to_chat`), checked (:func:`validate`), and
the request fields every Response repeats (:func:`echo`): the inbound half of :mod:`relaygate.providers.responses_api`
(which re-exports these names), apart so each module stays readable. No IO here.

What a translated deployment cannot serve (built-in tools, unknown items) is :class:`Untranslatable`, a 400; a web
search tool becomes chat's ``web_search_options`` (:func:`web_search_options`), as LiteLLM bridges it.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.messages_responses import thinking_blocks

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
    cv.check_shape(req, _Request)


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
