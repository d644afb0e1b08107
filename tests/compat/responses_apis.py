"""The three provider APIs of the Responses client suites' mock, as the providers speak them: each reads a
request into the rule's :class:`~tests.compat.responses_rule.Ask`, refuses what the real provider refuses (a
:class:`~tests.compat.responses_rule.Refused` with its own error body) and renders the rule's answer in its own
shape, unary or streamed.

* OpenAI's Responses API (:func:`openai_answer`): responses stored unless ``store`` is false,
  ``previous_response_id`` and ``item_reference`` resolved against them, unknown parameters, item types and
  tool outputs without their call refused, a strict ``json_schema`` without ``additionalProperties: false``
  refused; events with ``sequence_number``\\ s as OpenAI sends them, a reasoning item with its summary when
  reasoning is asked for;
* Anthropic's Messages API (:func:`anthropic_answer`): ``x-api-key`` and ``anthropic-version`` required,
  ``max_tokens`` required, turns alternating from the user, every ``tool_use`` answered by a ``tool_result``
  in the next turn and no other, extended thinking only with the budget, temperature and tool choice it allows
  and with the thinking block of a tool loop sent back; ``message_start`` ... ``message_stop`` events;
* Gemini's ``generateContent`` / ``streamGenerateContent?alt=sse`` (:func:`gemini_answer`):
  ``x-goog-api-key`` required, roles ``user`` / ``model``, as many ``functionResponse`` parts as the
  ``functionCall`` turn before had, OpenAPI ``parameters`` without the JSON-schema keys Gemini refuses; every
  event framed with CRLF as Google frames them; thoughts when ``includeThoughts`` is asked; for a Gemini 3
  model (:data:`~tests.compat.responses_rule.GEMINI_3`) the thought signatures of the current turn's function
  calls sent back, as Gemini 3 requires.

Every model has its output-token limit (:data:`~tests.compat.responses_rule.MAX_OUTPUT`): more is the
provider's own 400. A streamed prompt holding :data:`~tests.compat.responses_rule.OVERLOADED` is broken off
after its first words the provider's way (an ``error`` event, an ``overloaded_error`` event, an error object).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.compat.responses_rule import (
    GEMINI_3,
    KEYS,
    MAX_OUTPUT,
    OVERLOADED,
    UPSTREAM_MODELS,
    USAGE,
    Answer,
    Ask,
    Mock,
    Received,
    Refused,
    Turn,
    decide,
    hex_id,
    pieces,
)

# ----------------------------------------------------------------------------------------- OpenAI


_OA_PARAMS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs", "user", "metadata", "stream",
    "stream_options", "store", "previous_response_id", "background", "include", "truncation", "service_tier",
    "prompt", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "conversation",
    "context_management"})


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> Refused:
    return Refused(status, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                      "code": code}}, message)


def _oa_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for p in content or ():
        if p.get("type") not in ("input_text", "output_text", "refusal", "input_image", "input_file"):
            raise openai_error(400, f"Invalid value: '{p.get('type')}'. Supported values are: 'input_text', "
                                 "'input_image', 'output_text', 'refusal', 'input_file'.", "input")
        out.append(p.get("text") or "")
    return "".join(out)


def _oa_items(mock: Mock, items: list[Any]) -> list[dict[str, Any]]:
    """The input items with every ``item_reference`` replaced by the stored item."""
    out = []
    for it in items:
        if it.get("type") == "item_reference":
            found = next((o for s in mock.stored.values() for o in s["input"] + s["output"]
                          if o.get("id") == it.get("id")), None)
            if found is None:
                raise openai_error(404, f"Item with id '{it.get('id')}' not found. Items are not persisted when "
                                     "`store` is set to false. Try again with `store` set to true, or remove "
                                     "this item from your input.", "input")
            out.append(found)
        else:
            out.append(it)
    return out


def _oa_ask(mock: Mock, body: dict[str, Any]) -> tuple[Ask, list[dict[str, Any]]]:
    unknown = sorted(set(body) - _OA_PARAMS)
    if unknown:
        raise openai_error(400, f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    if body.get("model") != UPSTREAM_MODELS["openai"]:
        raise openai_error(404, f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                        None, "model_not_found")
    inp = body.get("input")
    items = [{"type": "message", "role": "user", "content": inp}] if isinstance(inp, str) else list(inp or [])
    history: list[dict[str, Any]] = []
    prev = body.get("previous_response_id")
    while prev:
        s = mock.stored.get(prev)
        if s is None:
            raise openai_error(400, f"Previous response with id '{prev}' not found.", "previous_response_id",
                            "previous_response_not_found")
        history = s["input"] + s["output"] + history
        prev = s["response"].get("previous_response_id")
    items = _oa_items(mock, items)
    turns = [Turn("system", body["instructions"])] if body.get("instructions") else []
    calls: set[str] = set()
    for it in history + items:
        kind = it.get("type", "message" if "role" in it else None)
        if kind == "message":
            role = "system" if it.get("role") in ("system", "developer") else it.get("role")
            if role not in ("system", "user", "assistant"):
                raise openai_error(400, f"Invalid value: '{it.get('role')}'.", "input")
            turns.append(Turn(str(role), _oa_text(it.get("content"))))
        elif kind == "function_call":
            calls.add(str(it.get("call_id")))
            if not turns or turns[-1].role != "assistant" or turns[-1].results:
                turns.append(Turn("assistant"))
            turns[-1].calls.append((str(it["call_id"]), str(it["name"]), json.loads(it.get("arguments") or "{}")))
        elif kind == "function_call_output":
            if it.get("call_id") not in calls:
                raise openai_error(400, f"No tool call found for function call output with call_id "
                                     f"{it.get('call_id')}.", "input")
            if not turns or turns[-1].role != "user" or turns[-1].text:
                turns.append(Turn("user"))
            out = it.get("output")
            turns[-1].results.append((str(it["call_id"]), out if isinstance(out, str) else _oa_text(out)))
        elif kind == "reasoning":
            continue
        else:
            raise openai_error(400, f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                                 "'function_call_output', 'reasoning', 'item_reference', ...", "input")
    tools: dict[str, dict[str, Any]] = {}
    for t in body.get("tools") or ():
        if t.get("type") != "function" or not t.get("name"):
            raise openai_error(400, "Missing required parameter: 'tools[0].name'.", "tools")
        tools[t["name"]] = t.get("parameters") or {}
    tc = body.get("tool_choice")
    forced = tc.get("name") if isinstance(tc, dict) and tc.get("type") == "function" else None
    fmt = (body.get("text") or {}).get("format") or {}
    schema = None
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if fmt.get("strict") and (schema or {}).get("additionalProperties") is not False:
            raise openai_error(400, f"Invalid schema for response_format '{fmt.get('name')}': In context=(), "
                                 "'additionalProperties' is required to be supplied and to be false.",
                            "text.format.schema", "invalid_json_schema")
    reasoning = body.get("reasoning") or {}
    think = bool(reasoning.get("summary")) or "reasoning.encrypted_content" in (body.get("include") or ())
    return Ask(turns, tools, forced, schema, bool(body.get("stream")), think), items


def _oa_response(body: dict[str, Any], rid: str, status: str, output: list[dict[str, Any]],
                 usage: dict[str, Any] | None) -> dict[str, Any]:
    text = body.get("text") or {"format": {"type": "text"}}
    return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None, "model": UPSTREAM_MODELS["openai"] + "-2025-04-14", "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"), "prompt_cache_key": None,
            "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
            "service_tier": "default", "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
            "text": {**text, "verbosity": "medium"}, "tool_choice": body.get("tool_choice", "auto"),
            "tools": [{**t, "strict": t.get("strict", True)} for t in body.get("tools") or ()],
            "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
            "usage": usage, "user": body.get("user"), "metadata": body.get("metadata") or {}}


def _oa_usage() -> dict[str, Any]:
    u = USAGE["openai"]
    return {"input_tokens": u["input_tokens"], "input_tokens_details": {"cached_tokens": u["cached_tokens"]},
            "output_tokens": u["output_tokens"], "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
            "total_tokens": u["input_tokens"] + u["output_tokens"]}


def _oa_output(ans: Answer, body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if ans.thought is not None:
        summary = [{"type": "summary_text", "text": ans.thought}] if (body.get("reasoning") or {}).get("summary") \
            else []
        item: dict[str, Any] = {"id": "rs_" + hex_id(), "type": "reasoning", "summary": summary}
        if "reasoning.encrypted_content" in (body.get("include") or ()):
            item["encrypted_content"] = "gAAAAB" + hex_id(32)
        out.append(item)
    if ans.text is not None:
        out.append({"id": "msg_" + hex_id(), "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": ans.text}]})
    for name, args in ans.calls:
        out.append({"id": "fc_" + hex_id(), "type": "function_call", "status": "completed",
                    "arguments": json.dumps(args), "call_id": "call_" + hex_id(12), "name": name})
    return out


def _oa_events(resp: dict[str, Any], output: list[dict[str, Any]]) -> list[bytes]:
    started = {**resp, "status": "in_progress", "output": [], "usage": None}
    evs: list[tuple[str, dict[str, Any]]] = [("response.created", {"response": started}),
                                             ("response.in_progress", {"response": started})]
    for n, item in enumerate(output):
        where = {"item_id": item["id"], "output_index": n}
        if item["type"] == "reasoning":
            evs.append(("response.output_item.added", {"output_index": n, "item": {**item, "summary": []}}))
            for k, part in enumerate(item["summary"]):
                at = {**where, "summary_index": k}
                evs.append(("response.reasoning_summary_part.added", {**at, "part": {**part, "text": ""}}))
                evs += [("response.reasoning_summary_text.delta", {**at, "delta": p, "obfuscation": hex_id(3)})
                        for p in pieces(part["text"])]
                evs += [("response.reasoning_summary_text.done", {**at, "text": part["text"]}),
                        ("response.reasoning_summary_part.done", {**at, "part": part})]
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            evs += [("response.output_item.added", {"output_index": n, "item": {**item, "status": "in_progress",
                                                                                "content": []}}),
                    ("response.content_part.added", {**where, "content_index": 0, "part": part})]
            evs += [("response.output_text.delta", {**where, "content_index": 0, "delta": p, "logprobs": [],
                                                    "obfuscation": hex_id(3)}) for p in pieces(text)]
            evs += [("response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}),
                    ("response.content_part.done", {**where, "content_index": 0, "part": {**part, "text": text}})]
        else:
            args = item["arguments"]
            evs += [("response.output_item.added", {"output_index": n, "item": {**item, "status": "in_progress",
                                                                                "arguments": ""}}),
                    ("response.function_call_arguments.delta", {**where, "delta": args[: len(args) // 2],
                                                                "obfuscation": hex_id(3)}),
                    ("response.function_call_arguments.delta", {**where, "delta": args[len(args) // 2:],
                                                                "obfuscation": hex_id(3)}),
                    ("response.function_call_arguments.done", {**where, "arguments": args})]
        evs.append(("response.output_item.done", {"output_index": n, "item": item}))
    evs.append(("response.completed", {"response": resp}))
    return [f"event: {k}\ndata: {json.dumps({'type': k, 'sequence_number': i, **v})}\n\n".encode()
            for i, (k, v) in enumerate(evs)]


def openai_answer(mock: Mock, rec: Received) -> tuple[dict[str, Any] | list[bytes], str | None]:
    """The Responses API answer to ``rec`` (a body, or SSE events) and the stored id (or None)."""
    body = rec.body
    ask, items = _oa_ask(mock, body)
    rec.ask = ask
    mot = body.get("max_output_tokens")
    if isinstance(mot, int) and mot > MAX_OUTPUT["openai"]:
        raise openai_error(400, f"max_output_tokens: integer above maximum value. Expected a value <= "
                                f"{MAX_OUTPUT['openai']}, but got {mot} instead.", "max_output_tokens",
                           "integer_above_max_value")
    ans = decide(ask)
    output = _oa_output(ans, body)
    resp = _oa_response(body, "resp_" + hex_id(), "completed", output, _oa_usage())
    calls = [o for o in output if o["type"] == "function_call"]
    rec.answer = {"id": resp["id"], "item_ids": [o["id"] for o in output],
                  "call_id": calls[0]["call_id"] if calls else None, "call_ids": [c["call_id"] for c in calls],
                  "text": ans.text, "calls": ans.calls}
    if body.get("store", True):
        with mock.lock:
            mock.stored[resp["id"]] = {"input": items, "output": output, "response": resp}
    if not ask.stream:
        return resp, resp["id"]
    events = _oa_events(resp, output)
    if OVERLOADED in ask.prompt:  # OpenAI's failure mid-stream: an error event after the first deltas
        first = next(i for i, e in enumerate(events) if e.startswith(b"event: response.output_text.delta"))
        events = [*events[: first + 2], b"event: error\ndata: " + json.dumps({
            "type": "error", "code": "server_error", "param": None, "sequence_number": first + 2,
            "message": "The server had an error while processing your request. Sorry about that!"}).encode()
            + b"\n\n"]
    return events, resp["id"]


# ----------------------------------------------------------------------------------------- Anthropic


_ANT_PARAMS = frozenset({"model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream",
                         "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
                         "container", "mcp_servers", "context_management"})


_ANT_MEDIA = {"image": ("image/jpeg", "image/png", "image/gif", "image/webp"),
              "document": ("application/pdf", "text/plain")}


def _ant_error(status: int, message: str, kind: str = "invalid_request_error") -> Refused:
    return Refused(status, {"type": "error", "error": {"type": kind, "message": message},
                            "request_id": "req_" + hex_id(12)}, message)


def _ant_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise _ant_error(400, "messages: content must be a non-empty string or list of blocks")
    return content


def _ant_ask(headers: dict[str, str], body: dict[str, Any]) -> Ask:
    if headers.get("x-api-key") != KEYS["anthropic"]:
        raise _ant_error(401, "invalid x-api-key", "authentication_error")
    if not headers.get("anthropic-version"):
        raise _ant_error(400, "anthropic-version: header is required")
    unknown = sorted(set(body) - _ANT_PARAMS)
    if unknown:
        raise _ant_error(400, f"{unknown[0]}: Extra inputs are not permitted")
    if body.get("model") != UPSTREAM_MODELS["anthropic"]:
        raise _ant_error(404, f"model: {body.get('model')}", "not_found_error")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise _ant_error(400, "max_tokens: Field required")
    msgs = body.get("messages") or []
    if not msgs or msgs[0].get("role") != "user":
        raise _ant_error(400, "messages: first message must use the \"user\" role")
    sys_ = body.get("system")
    turns = []
    if sys_:
        turns.append(Turn("system", sys_ if isinstance(sys_, str) else "".join(b["text"] for b in sys_)))
    pending: set[str] = set()
    for i, m in enumerate(msgs):
        role = m.get("role")
        if i and msgs[i - 1].get("role") == role:
            raise _ant_error(400, "messages: roles must alternate between \"user\" and \"assistant\"")
        turn = Turn(str(role))
        answered: set[str] = set()
        for b in _ant_blocks(m.get("content")):
            t = b.get("type")
            if t == "text":
                if not b.get("text"):
                    raise _ant_error(400, f"messages.{i}.content: text content blocks must be non-empty")
                turn.text += b["text"]
            elif t == "tool_use" and role == "assistant":
                turn.calls.append((b["id"], b["name"], b.get("input") or {}))
            elif t == "tool_result" and role == "user":
                tid = b.get("tool_use_id")
                if tid not in pending:
                    raise _ant_error(400, f"messages.{i}.content: unexpected `tool_use_id` found in "
                                          f"`tool_result` blocks: {tid}. Each `tool_result` block must have a "
                                          "corresponding `tool_use` block in the previous message.")
                answered.add(str(tid))
                c = b.get("content")
                turn.results.append((str(tid), c if isinstance(c, str) else
                                     "".join(x.get("text") or "" for x in c or ())))
            elif t in ("image", "document") and role == "user":
                src = b.get("source") or {}
                kinds = _ANT_MEDIA[t]
                if src.get("type") == "base64" and (src.get("media_type") not in kinds or not src.get("data")):
                    raise _ant_error(400, f"messages.{i}.content: {t} source media_type must be one of "
                                          f"{', '.join(kinds)} and data must be base64")
                if src.get("type") not in ("base64", "url"):
                    raise _ant_error(400, f"messages.{i}.content: unknown {t} source type `{src.get('type')}`")
            elif t == "thinking" and role == "assistant":
                continue
            else:
                raise _ant_error(400, f"messages.{i}.content: unexpected block type `{t}` for role {role}")
        if role == "user" and pending - answered:
            raise _ant_error(400, f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                                  f"immediately after: {sorted(pending - answered)[0]}")
        pending = {c[0] for c in turn.calls}
        turns.append(turn)
    tools: dict[str, dict[str, Any]] = {}
    for t in body.get("tools") or ():
        if not t.get("name") or not isinstance(t.get("input_schema"), dict):
            raise _ant_error(400, "tools.0: name and input_schema are required")
        tools[t["name"]] = t["input_schema"]
    tc = body.get("tool_choice") or {}
    forced = tc.get("name") if tc.get("type") == "tool" else None
    if forced is not None and forced not in tools:
        raise _ant_error(400, f"tool_choice: tool `{forced}` not found in tools")
    think = _ant_thinking(body, msgs)
    return Ask(turns, tools, forced, None, bool(body.get("stream")), think)


def _ant_thinking(body: dict[str, Any], msgs: list[dict[str, Any]]) -> bool:
    """Whether extended thinking is on, refusing what Anthropic refuses with it."""
    th = body.get("thinking")
    if not isinstance(th, dict) or th.get("type") != "enabled":
        return False
    budget = th.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise _ant_error(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if body["max_tokens"] <= budget:
        raise _ant_error(400, "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                              "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
    if body.get("temperature") not in (None, 1) or "top_k" in body:
        raise _ant_error(400, "`temperature` may only be set to 1 when thinking is enabled or in build mode. "
                              "`top_k` must be unset when thinking is enabled.")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise _ant_error(400, "Thinking may not be enabled when tool_choice forces tool use.")
    last = msgs[-2] if len(msgs) >= 2 and msgs[-2].get("role") == "assistant" else None
    blocks = _ant_blocks(last.get("content")) if last is not None else []
    if any(b.get("type") == "tool_use" for b in blocks) and blocks[0].get("type") not in (
            "thinking", "redacted_thinking"):
        raise _ant_error(400, f"messages.{len(msgs) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                              f"but found `{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` "
                              "message must start with a thinking block (preceeding the lastmost set of `tool_use` "
                              "and `tool_result` blocks). We recommend you include thinking blocks from previous "
                              "turns.")
    for b in blocks:
        if b.get("type") == "thinking" and not b.get("signature"):
            raise _ant_error(400, f"messages.{len(msgs) - 2}.content: thinking blocks need their `signature`")
    return True


def anthropic_answer(rec: Received) -> dict[str, Any] | list[bytes]:
    ask = _ant_ask(rec.headers, rec.body)
    rec.ask = ask
    body = rec.body
    if body["max_tokens"] > MAX_OUTPUT["anthropic"]:
        raise _ant_error(400, f"max_tokens: {body['max_tokens']} > {MAX_OUTPUT['anthropic']}, which is the maximum "
                              f"allowed number of output tokens for {UPSTREAM_MODELS['anthropic']}")
    ans = decide(ask)
    u = USAGE["anthropic"]
    mid = "msg_01" + hex_id(11)
    blocks: list[dict[str, Any]] = []
    if ans.thought is not None:
        blocks.append({"type": "thinking", "thinking": ans.thought, "signature": "EqMB" + hex_id(24)})
    if ans.text is not None:
        blocks.append({"type": "text", "text": ans.text})
    for name, args in ans.calls:
        blocks.append({"type": "tool_use", "id": "toolu_01" + hex_id(11), "name": name, "input": args})
    stop = "tool_use" if ans.calls else "end_turn"
    ids = [b["id"] for b in blocks if b["type"] == "tool_use"]
    rec.answer = {"id": mid, "call_id": ids[0] if ids else None, "call_ids": ids, "text": ans.text,
                  "calls": ans.calls}
    usage = {"input_tokens": u["input_tokens"], "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": u["cache_read_input_tokens"], "output_tokens": u["output_tokens"],
             "service_tier": "standard"}
    msg = {"id": mid, "type": "message", "role": "assistant", "model": UPSTREAM_MODELS["anthropic"],
           "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not ask.stream:
        return msg
    evs: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {**msg, "content": [], "stop_reason": None,
                                       "usage": {**usage, "output_tokens": 1}}}),
        ("ping", {})]
    for n, block in enumerate(blocks):
        if block["type"] == "tool_use":
            args = json.dumps(block["input"])
            evs.append(("content_block_start", {"index": n, "content_block": {**block, "input": {}}}))
            evs += [("content_block_delta", {"index": n, "delta": {"type": "input_json_delta", "partial_json": p}})
                    for p in ("", args[: len(args) // 2], args[len(args) // 2:])]
        elif block["type"] == "thinking":
            evs.append(("content_block_start", {"index": n, "content_block": {"type": "thinking", "thinking": "",
                                                                             "signature": ""}}))
            evs += [("content_block_delta", {"index": n, "delta": {"type": "thinking_delta", "thinking": p}})
                    for p in pieces(block["thinking"])]
            evs.append(("content_block_delta", {"index": n, "delta": {"type": "signature_delta",
                                                                      "signature": block["signature"]}}))
        else:
            evs.append(("content_block_start", {"index": n, "content_block": {"type": "text", "text": ""}}))
            evs += [("content_block_delta", {"index": n, "delta": {"type": "text_delta", "text": p}})
                    for p in pieces(block["text"])]
        evs.append(("content_block_stop", {"index": n}))
    evs += [("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": u["output_tokens"]}}),
            ("message_stop", {})]
    if OVERLOADED in ask.prompt:  # Anthropic's overload mid-stream: an error event, and the stream ends
        first = next(i for i, (k, v) in enumerate(evs) if k == "content_block_delta" and "text" in v["delta"])
        evs = [*evs[: first + 2], ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})]
    return [f"event: {k}\ndata: {json.dumps({'type': k, **v})}\n\n".encode() for k, v in evs]


# ----------------------------------------------------------------------------------------- Gemini


_GM_PARAMS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                        "safetySettings", "cachedContent", "labels"})
_GM_REFUSED_SCHEMA = frozenset({"additionalProperties", "$schema", "strict", "$id"})


def _gm_error(status: int, message: str, kind: str = "INVALID_ARGUMENT") -> Refused:
    return Refused(status, {"error": {"code": status, "message": message, "status": kind}}, message)


def _gm_check_schema(schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k in _GM_REFUSED_SCHEMA:
                raise _gm_error(400, f"Invalid JSON payload received. Unknown name \"{k}\" at '{where}': "
                                     "Cannot find field.")
            _gm_check_schema(v, f"{where}.{k}")
    elif isinstance(schema, list):
        for v in schema:
            _gm_check_schema(v, where)


def _gm_ask(path: str, headers: dict[str, str], body: dict[str, Any]) -> Ask:
    if headers.get("x-goog-api-key") != KEYS["gemini"] and f"key={KEYS['gemini']}" not in path:
        raise _gm_error(400, "API key not valid. Please pass a valid API key.")
    unknown = sorted(set(body) - _GM_PARAMS)
    if unknown:
        raise _gm_error(400, f"Invalid JSON payload received. Unknown name \"{unknown[0]}\": Cannot find field.")
    contents = body.get("contents") or []
    if not contents:
        raise _gm_error(400, "* GenerateContentRequest.contents: contents is not specified")
    turns = []
    si = body.get("systemInstruction")
    if si:
        turns.append(Turn("system", "".join(p.get("text") or "" for p in si.get("parts") or ())))
    prev_calls: list[str] = []
    for i, c in enumerate(contents):
        role = c.get("role", "user")
        if role not in ("user", "model"):
            raise _gm_error(400, f"Please use a valid role: user, model. (contents[{i}].role = {role})")
        turn = Turn("assistant" if role == "model" else "user")
        responses: list[str] = []
        if not c.get("parts"):
            raise _gm_error(400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for p in c.get("parts") or ():
            if "text" in p:
                if not p.get("thought"):
                    turn.text += p["text"]
            elif "functionCall" in p and role == "model":
                fc = p["functionCall"]
                turn.calls.append((fc["name"], fc["name"], fc.get("args") or {}))
            elif "functionResponse" in p and role == "user":
                fr = p["functionResponse"]
                responses.append(fr["name"])
                resp = fr.get("response")
                out = resp["content"] if isinstance(resp, dict) and set(resp) == {"content"} else json.dumps(resp)
                turn.results.append((fr["name"], out if isinstance(out, str) else json.dumps(out)))
            elif "inlineData" in p:
                if not p["inlineData"].get("mimeType") or not p["inlineData"].get("data"):
                    raise _gm_error(400, f"* contents[{i}].parts: inline_data needs mime_type and data")
            elif "fileData" in p:
                continue
            else:
                raise _gm_error(400, f"Invalid JSON payload received. Unknown part at contents[{i}].parts")
        if responses and sorted(responses) != sorted(prev_calls):
            raise _gm_error(400, "Please ensure that the number of function response parts is equal to the number "
                                 "of function call parts of the function call turn.")
        if prev_calls and not responses:
            raise _gm_error(400, "Please ensure that function call turn comes immediately after a user turn or "
                                 "after a function response turn.")
        prev_calls = [n for _, n, _ in turn.calls]
        turns.append(turn)
    tools: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(body.get("tools") or ()):
        for j, fd in enumerate(t.get("functionDeclarations") or ()):
            if "parameters" in fd:
                _gm_check_schema(fd["parameters"], f"tools[{i}].function_declarations[{j}].parameters")
            tools[fd["name"]] = fd.get("parameters") or fd.get("parametersJsonSchema") or {}
    fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = fcc.get("allowedFunctionNames") or []
    forced = allowed[0] if fcc.get("mode") == "ANY" and len(allowed) == 1 else None
    gc = body.get("generationConfig") or {}
    schema = None
    if gc.get("responseMimeType") == "application/json":
        if "responseSchema" in gc:
            _gm_check_schema(gc["responseSchema"], "generation_config.response_schema")
        schema = gc.get("responseJsonSchema") or gc.get("responseSchema") or {"type": "object"}
    think = bool((gc.get("thinkingConfig") or {}).get("includeThoughts"))
    return Ask(turns, tools, forced, schema, ":streamGenerateContent" in path, think)


def _gm_signatures(body: dict[str, Any]) -> None:
    """Gemini 3 validates the current turn (from the last user text on): the first function call of each model
    step in it must carry the ``thoughtSignature`` the model sent with it."""
    contents = body.get("contents") or []
    start = max((i for i, c in enumerate(contents) if c.get("role", "user") == "user"
                 and any("text" in p for p in c.get("parts") or ())), default=0)
    for c in contents[start:]:
        calls = [p for p in c.get("parts") or () if "functionCall" in p]
        if c.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            name = calls[0]["functionCall"].get("name")
            raise _gm_error(400, "Function call is missing a thought_signature in functionCall parts. This is "
                                 "required for tools to work correctly, and missing thought_signature may lead to "
                                 f"degraded model performance. Additional data, function call `default_api:{name}`."
                                 " Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for "
                                 "more details.")


def gemini_answer(rec: Received) -> dict[str, Any] | list[bytes]:
    path = rec.path.split("?")[0]
    model, _, method = path.removeprefix("/v1beta/models/").partition(":")
    if model not in (UPSTREAM_MODELS["gemini"], GEMINI_3):
        raise _gm_error(404, f"models/{model} is not found for API version v1beta", "NOT_FOUND")
    if method not in ("generateContent", "streamGenerateContent"):
        raise _gm_error(404, f"Method {method} not found", "NOT_FOUND")
    ask = _gm_ask(rec.path, rec.headers, rec.body)
    if model == GEMINI_3:
        _gm_signatures(rec.body)
    rec.ask = ask
    gc = rec.body.get("generationConfig") or {}
    if gc.get("maxOutputTokens", 0) > MAX_OUTPUT["gemini"]:
        raise _gm_error(400, f"Unable to submit request because it has a maxOutputTokens value of "
                             f"{gc['maxOutputTokens']} but the supported range is from 1 (inclusive) to "
                             f"{MAX_OUTPUT['gemini'] + 1} (exclusive). Update the value and try again.")
    if ask.stream and "alt=sse" not in rec.path:
        raise _gm_error(400, "the mock streams only with alt=sse (without it Gemini sends a JSON array)")
    ans = decide(ask)
    u = USAGE["gemini"]
    rid = hex_id(11)
    rec.answer = {"id": rid, "text": ans.text, "calls": ans.calls}
    total = u["promptTokenCount"] + u["candidatesTokenCount"] + u["thoughtsTokenCount"]
    usage = {"promptTokenCount": u["promptTokenCount"], "candidatesTokenCount": u["candidatesTokenCount"],
             "totalTokenCount": total, "thoughtsTokenCount": u["thoughtsTokenCount"],
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u["promptTokenCount"]}]}

    def chunk(parts: list[dict[str, Any]], finish: bool, usage_now: dict[str, Any]) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "usageMetadata": usage_now, "modelVersion": model, "responseId": rid}

    call = [{"functionCall": {"name": name, "args": args}, **({"thoughtSignature": "c2ln" + hex_id(6)} if not i else {})}
            for i, (name, args) in enumerate(ans.calls)]
    thought = [] if ans.thought is None else [{"text": ans.thought, "thought": True}]
    if not ask.stream:
        return chunk(thought + ([] if ans.text is None else [{"text": ans.text}]) + call, True, usage)
    parts = thought + ([] if ans.text is None else [{"text": p} for p in pieces(ans.text)]) + call
    running = {"promptTokenCount": u["promptTokenCount"], "totalTokenCount": u["promptTokenCount"],
               "promptTokensDetails": usage["promptTokensDetails"]}
    last = len(parts) - 1
    events = [b"data: " + json.dumps(chunk([p], i == last, usage if i == last else running)).encode() + b"\r\n\r\n"
              for i, p in enumerate(parts)]
    if OVERLOADED in ask.prompt:  # Gemini's failure mid-stream: an error object as the next event
        events = [*events[:2], b"data: " + json.dumps({"error": {
            "code": 503, "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE"}}).encode() + b"\r\n\r\n"]
    return events
