"""LiteLLM's ``cache_control_injection_points``: prompt-caching breakpoints put into a chat request's messages.

What it owns: :func:`points` (the setting checked: a list of ``{"location": "message", "role" | "index",
"control"}``) and :func:`inject`, which the Claude adapters (``anthropic``, ``bedrock``, ``vertex_ai``) run on the
OpenAI-format request before translating it, so a deployment configured with them gets Anthropic's prompt cache
without any client change. Given in a deployment's ``litellm_params`` or in the request body (the request's
replaces the deployment's, as LiteLLM's router merges them); never sent to the provider. LiteLLM's rules, as its
current hook applies them:

- ``index`` (an integer or an integer's text; negative counts from the end) picks one message, else ``role``
  every message of that role; an index out of range picks none. ``control`` defaults to ``{"type":
  "ephemeral"}`` (``{"type": "ephemeral", "ttl": "1h"}`` is passed as it is).
- A message with text content gets the breakpoint on the message (the adapter puts it on the text block it
  becomes); with a list of parts, on the last part. A message or part that has one already keeps its own.
- At most 4 breakpoints in all (Anthropic's limit), those already in the messages counted; the points apply in
  order until then.
- A request whose client set any ``cache_control`` itself (messages, parts or tools) gets no injection: the
  client's breakpoints are its choice (LiteLLM 1.92's rule).
"""

from __future__ import annotations

import copy
from typing import Any

from relaygate.core.errors import BadRequest

__all__ = ["FIELD", "MAX_BREAKPOINTS", "inject", "points"]

FIELD = "cache_control_injection_points"
MAX_BREAKPOINTS = 4
_DEFAULT = {"type": "ephemeral"}


def points(value: Any) -> list[dict[str, Any]]:
    """The injection points of ``value``, checked; ``ValueError`` naming what is wrong."""
    if not isinstance(value, list):
        raise ValueError("expected a list of {location: message, role or index, control}")
    out = []
    for i, p in enumerate(value):
        if not isinstance(p, dict) or p.get("location") != "message":
            raise ValueError(f"[{i}]: expected {{location: message, ...}} (only message injection points are "
                             "supported)")
        index, role, control = p.get("index"), p.get("role"), p.get("control")
        if isinstance(index, str):
            try:
                index = int(index)
            except ValueError:
                raise ValueError(f"[{i}].index: expected an integer, got {index!r}") from None
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise ValueError(f"[{i}].index: expected an integer")
        if index is None and not isinstance(role, str):
            raise ValueError(f"[{i}]: expected a role or an index")
        if control is not None and not isinstance(control, dict):
            raise ValueError(f"[{i}].control: expected an object such as {{type: ephemeral}}")
        out.append({"index": index, "role": role, "control": control or _DEFAULT})
    return out


def _marked(messages: list[Any], tools: Any) -> int:
    """Breakpoints the client set: on messages, their parts, and tools (any at all: no injection)."""
    n = 0
    for m in messages:
        if isinstance(m, dict):
            n += "cache_control" in m
            content = m.get("content")
            if isinstance(content, list):
                n += sum(1 for part in content if isinstance(part, dict) and "cache_control" in part)
    for t in tools if isinstance(tools, list) else ():
        if isinstance(t, dict):
            fn = t.get("function")
            n += "cache_control" in t or (isinstance(fn, dict) and "cache_control" in fn)
    return n


def _targets(p: dict[str, Any], messages: list[Any]) -> list[int]:
    """The indexes of the messages point ``p`` picks: its index (negative from the end), else its role's."""
    if p["index"] is not None:
        i = p["index"] + len(messages) if p["index"] < 0 else p["index"]
        return [i] if 0 <= i < len(messages) else []
    return [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == p["role"]]


def inject(req: dict[str, Any]) -> None:
    """Apply and remove the request's ``cache_control_injection_points`` (module docstring); a malformed value is
    a 400 naming the field."""
    raw = req.pop(FIELD, None)
    if raw is None:
        return
    try:
        wanted = points(raw)
    except ValueError as exc:
        raise BadRequest(f"{FIELD}{exc}", param=FIELD) from None
    messages = req.get("messages")
    if not wanted or not isinstance(messages, list) or _marked(messages, req.get("tools")):
        return
    messages = req["messages"] = copy.copy(messages)
    room = MAX_BREAKPOINTS
    for p in wanted:
        for i in _targets(p, messages):
            if room <= 0:
                return
            m = messages[i]
            if not isinstance(m, dict) or "cache_control" in m:
                continue
            content = m.get("content")
            if isinstance(content, str):
                messages[i] = {**m, "cache_control": p["control"]}
            elif isinstance(content, list) and content and isinstance(content[-1], dict) \
                    and "cache_control" not in content[-1]:
                messages[i] = {**m, "content": [*content[:-1], {**content[-1], "cache_control": p["control"]}]}
            else:
                continue
            room -= 1


def inject_messages(req: dict[str, Any], raw: Any) -> bool:
    """The same rules on an Anthropic Messages request (the ``/v1/messages`` passthrough, LiteLLM 1.89's): a
    ``system`` role point marks the top-level ``system`` (a text becomes one text block), other points the
    messages, a text content becoming one text block that carries the breakpoint (Anthropic takes none on a
    message); nothing when the client set any ``cache_control`` itself. Whether ``req`` changed."""
    try:
        wanted = points(raw)
    except ValueError as exc:
        raise BadRequest(f"{FIELD}{exc}", param=FIELD) from None
    messages = req.get("messages")
    system = req.get("system")
    if not wanted or not isinstance(messages, list) or _marked(messages, req.get("tools")) or (
            isinstance(system, list) and any(isinstance(b, dict) and "cache_control" in b for b in system)):
        return False
    messages = list(messages)
    room, changed = MAX_BREAKPOINTS, False

    def marked(content: Any, control: dict[str, Any]) -> Any:
        if isinstance(content, str) and content:
            return [{"type": "text", "text": content, "cache_control": control}]
        if isinstance(content, list) and content and isinstance(content[-1], dict) \
                and "cache_control" not in content[-1]:
            return [*content[:-1], {**content[-1], "cache_control": control}]
        return None

    for p in wanted:
        if p["index"] is None and p["role"] == "system":
            new = marked(system, p["control"]) if room > 0 else None
            if new is not None:
                system = req["system"] = new
                room, changed = room - 1, True
            continue
        for i in _targets(p, messages):
            m = messages[i]
            new = marked(m.get("content"), p["control"]) if isinstance(m, dict) and room > 0 else None
            if new is not None:
                messages[i] = {**m, "content": new}
                room, changed = room - 1, True
    if changed:
        req["messages"] = messages
    return changed
