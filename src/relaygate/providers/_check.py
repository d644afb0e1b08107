"""The shapes translating adapters read from a client's chat request, checked once before they read them.

A chat body reaches the adapters after only the view decode (``model``, ``stream``, ``messages`` is a
list): message contents, tool calls, tools and params can be any JSON. The translating adapters
(Anthropic, Gemini, Vertex, Bedrock, Cohere, Ollama) index into those fields, so
:func:`check_chat` checks, in one walk, every field they read against OpenAI's types and raises
:class:`~relaygate.core.errors.BadRequest` (400) naming the field (``messages[2].content[0].image_url``)
for anything else. After it the readers may trust the shapes: any exception they still raise is a bug in
the adapter (a 500 with a traceback), never the client's fault.

Fields are checked for their JSON type only where an adapter reads them; a value the upstream itself
judges (a temperature out of range) is passed on. OpenAI-compatible upstreams forward the client's bytes
and never run this.
"""

from __future__ import annotations

from typing import Any

from relaygate.core.errors import BadRequest

_OPTIONAL_STR = ("name", "tool_call_id", "reasoning_content", "refusal")
_NUMBERS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n", "seed",
            "presence_penalty", "frequency_penalty")


def _bad(path: str, expected: str) -> BadRequest:
    param = path.split("[", 1)[0].split(".", 1)[0]
    return BadRequest(f"Invalid request body: `{path}` must be {expected}", param=param)


def _str(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _bad(path, "a string")


def _opt_str(obj: dict[str, Any], key: str, path: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(f"{path}.{key}", "a string")


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "an object")
    return value


def _opt_dict(obj: dict[str, Any], key: str, path: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise _bad(f"{path}.{key}", "an object")


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(path, "an array")
    return value


def _function(value: Any, path: str, *, arguments: bool) -> None:
    fn = _dict(value, path)
    _str(fn.get("name"), f"{path}.name")
    if arguments:
        args = fn.get("arguments")
        if args is not None and not isinstance(args, (str, dict)):
            raise _bad(f"{path}.arguments", "a string")
    else:
        _opt_str(fn, "description", path)
        _opt_dict(fn, "parameters", path)


def _part(part: Any, path: str) -> None:
    p = _dict(part, path)
    kind = p.get("type", "text")
    _str(kind, f"{path}.type")
    if kind == "text":
        _str(p.get("text"), f"{path}.text")
    elif kind == "image_url":
        iu = p.get("image_url")
        url = iu.get("url") if isinstance(iu, dict) else iu
        if not isinstance(url, str):
            raise _bad(f"{path}.image_url", "an object with a string `url`")
        if isinstance(iu, dict):
            _opt_str(iu, "detail", f"{path}.image_url")
            _opt_str(iu, "format", f"{path}.image_url")
    elif kind == "input_audio":
        ia = _dict(p.get("input_audio"), f"{path}.input_audio")
        _str(ia.get("data"), f"{path}.input_audio.data")
        _opt_str(ia, "format", f"{path}.input_audio")
    elif kind == "file":
        f = _dict(p.get("file"), f"{path}.file")
        for key in ("file_id", "file_data", "filename", "format"):
            _opt_str(f, key, f"{path}.file")


def _content(value: Any, path: str) -> None:
    if value is None or isinstance(value, str):
        return
    for i, part in enumerate(_list(value, path)):
        _part(part, f"{path}[{i}]")


def _message(value: Any, path: str) -> None:
    m = _dict(value, path)
    _str(m.get("role"), f"{path}.role")
    _content(m.get("content"), f"{path}.content")
    for key in _OPTIONAL_STR:
        _opt_str(m, key, path)
    calls = m.get("tool_calls")
    if calls is not None:
        for i, tc in enumerate(_list(calls, f"{path}.tool_calls")):
            tpath = f"{path}.tool_calls[{i}]"
            t = _dict(tc, tpath)
            _opt_str(t, "id", tpath)
            _opt_str(t, "type", tpath)
            _function(t.get("function"), f"{tpath}.function", arguments=True)
    if m.get("function_call") is not None:
        _function(m["function_call"], f"{path}.function_call", arguments=True)
    blocks = m.get("thinking_blocks")
    if blocks is not None:
        for i, b in enumerate(_list(blocks, f"{path}.thinking_blocks")):
            _dict(b, f"{path}.thinking_blocks[{i}]")


def check_chat(req: dict[str, Any]) -> None:
    """400 naming the field for any field a translating adapter reads whose JSON type is not OpenAI's."""
    for i, m in enumerate(_list(req.get("messages"), "messages")):
        _message(m, f"messages[{i}]")
    tools = req.get("tools")
    if tools is not None:
        for i, t in enumerate(_list(tools, "tools")):
            tp = _dict(t, f"tools[{i}]")
            kind = tp.get("type", "function")
            _str(kind, f"tools[{i}].type")
            if kind == "function":
                _function(tp.get("function"), f"tools[{i}].function", arguments=False)
    functions = req.get("functions")
    if functions is not None:
        for i, f in enumerate(_list(functions, "functions")):
            _function(f, f"functions[{i}]", arguments=False)
    choice = req.get("tool_choice")
    if choice is not None and not isinstance(choice, str):
        c = _dict(choice, "tool_choice")
        _opt_str(c, "type", "tool_choice")
        if c.get("function") is not None:
            _function(c["function"], "tool_choice.function", arguments=True)
    rf = req.get("response_format")
    if rf is not None:
        r = _dict(rf, "response_format")
        _opt_str(r, "type", "response_format")
        js = r.get("json_schema")
        if js is not None:
            j = _dict(js, "response_format.json_schema")
            _opt_str(j, "name", "response_format.json_schema")
            _opt_dict(j, "schema", "response_format.json_schema")
    for key in _NUMBERS:
        v = req.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _bad(key, "a number")
    for key in ("stream_options", "metadata", "thinking"):
        v = req.get(key)
        if v is not None and not isinstance(v, dict):
            raise _bad(key, "an object")
