"""OpenInference span attributes: what Arize and Phoenix read off an LLM span (``observe.arize``).

What it owns: :func:`openinference_attributes`, one completion record (and its :class:`Detail`) as the attributes
LiteLLM's ``arize`` and ``arize_phoenix`` callbacks put on their ``litellm_request`` span (its
``arize._utils.set_attributes``), built from relaygate's own record, never from a LiteLLM payload:

- **Kind and identity**: ``openinference.span.kind`` (``LLM`` for chat, completions, Messages, Responses,
  images and audio; ``EMBEDDING``, ``RERANKER``, ``GUARDRAIL`` for moderations; ``UNKNOWN`` otherwise),
  ``llm.model_name`` (the upstream model), ``llm.provider``, ``llm.request.type`` (LiteLLM's call type),
  ``llm.response.id`` / ``.model``, ``llm.is_streaming`` (the text ``True`` / ``False``, as LiteLLM writes it).
- **Parameters**: ``llm.request.max_tokens`` / ``.temperature`` / ``.top_p``, ``llm.user``,
  ``llm.invocation_parameters`` (JSON of the body without its messages, input, model, metadata and LiteLLM's
  control fields), ``llm.tools.{i}.name`` / ``.description`` / ``.parameters`` (JSON).
- **Messages** (only when content may be exported): ``input.value`` (the last message's content),
  ``llm.input_messages.{i}.message.role`` / ``.content`` / ``.name`` / ``.tool_call_id`` /
  ``.tool_calls.{k}.tool_call.id`` / ``.function.name`` / ``.function.arguments``; a message whose content is
  a list of parts gets ``.contents.{j}.message_content.type`` (``text`` or ``image``) with ``.text`` or
  ``.image.image.url`` (OpenInference's form, which Phoenix draws; LiteLLM writes the list's Python ``repr``
  into ``.content`` as well, and relaygate does not); ``output.value`` and ``llm.output_messages.{c}.*`` from
  each choice (a tool-calling choice without text: ``output.value`` is ``{"tool_calls": [...]}`` as JSON),
  or from a Responses answer's message items. Redacted: the one message ``redacted-by-litellm`` on each side,
  as LiteLLM sends.
- **Usage and cost**: ``llm.token_count.prompt`` / ``.completion`` / ``.total``,
  ``.completion_details.reasoning``, ``.prompt_details.cache_read`` / ``.cache_write`` / ``.audio``;
  ``llm.cost.total`` and ``llm.response.cost`` (USD).
- **Who**: ``metadata`` (LiteLLM's standard logging metadata as JSON), ``user.id`` (the body's ``user``, else
  the key's user), ``session.id`` (the client's ``metadata.session_id``, else the end user: LiteLLM writes only
  the end user there, which is not what OpenInference means by a session), ``litellm.trace_id``,
  ``litellm.team_id`` / ``.team_alias`` / ``.key_alias``, ``tag.tags`` (the request's tags; LiteLLM sends
  none). With ``redact_user_api_key_info`` the key's identity is left out.
- **Errors**: ``error.code``, ``error.type``, ``error.message``, ``error.llm_provider`` and
  ``http.response.status_code``.

Left out: embedding vectors (LiteLLM writes each as the ``repr`` of a list of floats: kilobytes per span
that no viewer draws), image and audio answers' URLs, MCP tool spans, pass-through bodies and guardrail
spans.
"""

from __future__ import annotations

import json
import math
from typing import Any

from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL
from relaygate.observe.detail import Detail
from relaygate.observe.standard import standard_metadata
from relaygate.sinks.record import CALL_TYPES, CompletionRecord, Outcome, error_class

__all__ = ["REDACTED", "openinference_attributes", "span_kind"]

REDACTED = "redacted-by-litellm"
_KINDS = {"chat": "LLM", "completions": "LLM", "messages": "LLM", "responses": "LLM", "images": "LLM",
          "audio_speech": "LLM", "audio_transcriptions": "LLM", "embeddings": "EMBEDDING", "rerank": "RERANKER",
          "moderations": "GUARDRAIL"}
_NOT_PARAMETERS = frozenset({"model", "messages", "prompt", "input", "system", "metadata", *CONTROL_KEYS,
                             *TYPED_CONTROL, "cache", "litellm_metadata", "extra_headers"})
"""Body fields that are not ``llm.invocation_parameters`` (the prompt itself, LiteLLM's control fields)."""


def span_kind(route: str) -> str:
    """``openinference.span.kind`` of a record's route."""
    return _KINDS.get(route, "UNKNOWN")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _scalar(value: Any) -> Any:
    """A value a span attribute holds as it is (text, a finite number, a boolean), else its JSON."""
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return _json(value)


def _tool_calls(prefix: str, calls: Any, out: dict[str, Any]) -> None:
    if not isinstance(calls, list):
        return
    for k, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        at = f"{prefix}.tool_calls.{k}.tool_call"
        if call.get("id"):
            out[f"{at}.id"] = str(call["id"])
        fn = call.get("function")
        if isinstance(fn, dict):
            if fn.get("name"):
                out[f"{at}.function.name"] = str(fn["name"])
            args = fn.get("arguments")
            if args is not None:
                out[f"{at}.function.arguments"] = args if isinstance(args, str) else _json(args)


def _parts(prefix: str, parts: list[Any], out: dict[str, Any]) -> None:
    """A list content's text and image parts (``j``: the part's place in the list; others are skipped)."""
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        at = f"{prefix}.contents.{j}.message_content"
        if kind in ("text", "input_text") and isinstance(part.get("text"), str):
            out[f"{at}.type"] = "text"
            out[f"{at}.text"] = part["text"]
        elif kind in ("image_url", "image", "input_image"):
            url = _image_url(part)
            if url:
                out[f"{at}.type"] = "image"
                out[f"{at}.image.image.url"] = url


def _image_url(part: dict[str, Any]) -> str | None:
    got = part.get("image_url")
    if isinstance(got, dict) and isinstance(got.get("url"), str):
        return str(got["url"])
    if isinstance(got, str):
        return got
    source = part.get("source")
    if isinstance(source, dict) and isinstance(source.get("data"), str):  # Anthropic's base64 block
        return f"data:{source.get('media_type') or 'image/jpeg'};base64,{source['data']}"
    url = part.get("url")
    return url if isinstance(url, str) else None


def _message(prefix: str, message: Any, out: dict[str, Any]) -> None:
    if not isinstance(message, dict):
        return
    out[f"{prefix}.role"] = str(message.get("role") or "")
    content = message.get("content")
    if isinstance(content, list):
        _parts(prefix, content, out)
    else:
        out[f"{prefix}.content"] = "" if content is None else (content if isinstance(content, str) else _json(content))
    for name in ("name", "tool_call_id"):
        if message.get(name):
            out[f"{prefix}.{name}"] = str(message[name])
    _tool_calls(prefix, message.get("tool_calls"), out)


def _messages_of(body: dict[str, Any]) -> list[Any]:
    """The request's messages (chat, Messages with its ``system``), its ``input`` items or text, its ``prompt``."""
    messages = body.get("messages")
    if isinstance(messages, list):
        system = body.get("system")
        return ([{"role": "system", "content": system}] if system else []) + messages
    given = body.get("input", body.get("prompt"))
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if isinstance(given, list):
        return [item if isinstance(item, dict) and "role" in item else {"role": "user", "content": item}
                for item in given]
    return []


def _request(body: dict[str, Any], content: bool, out: dict[str, Any]) -> None:
    get = body.get
    for key, attr in (("temperature", "llm.request.temperature"), ("top_p", "llm.request.top_p")):
        v = get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v and math.isfinite(v):
            out[attr] = v
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        v = get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v:
            out["llm.request.max_tokens"] = v
            break
    user = get("user")
    if isinstance(user, str) and user:
        out["llm.user"] = user
    tools = get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict):
                continue
            for name in ("name", "description"):
                if isinstance(fn.get(name), str):
                    out[f"llm.tools.{i}.{name}"] = fn[name]
            if fn.get("parameters") is not None:
                out[f"llm.tools.{i}.parameters"] = _json(fn["parameters"])
    params = {k: v for k, v in body.items() if k not in _NOT_PARAMETERS}
    if params:
        out["llm.invocation_parameters"] = _json(params)
    if not content:
        return
    messages = _messages_of(body)
    if messages:
        last = messages[-1].get("content") if isinstance(messages[-1], dict) else messages[-1]
        out["input.value"] = "" if last is None else (last if isinstance(last, str) else _json(last))
    for i, message in enumerate(messages):
        _message(f"llm.input_messages.{i}.message", message, out)


def _answer(answer: dict[str, Any], content: bool, out: dict[str, Any]) -> None:
    if answer.get("id"):
        out["llm.response.id"] = str(answer["id"])
    if answer.get("model"):
        out["llm.response.model"] = str(answer["model"])
    if not content:
        return
    choices = answer.get("choices")
    if isinstance(choices, list):
        for c, choice in enumerate(choices):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                text = choice.get("text") if isinstance(choice, dict) else None  # a completions choice
                if isinstance(text, str):
                    out["output.value"] = text
                    out[f"llm.output_messages.{c}.message.role"] = "assistant"
                    out[f"llm.output_messages.{c}.message.content"] = text
                continue
            _message(f"llm.output_messages.{c}.message", message, out)
            said = message.get("content")
            calls = message.get("tool_calls")
            if said:
                out["output.value"] = said if isinstance(said, str) else _json(said)
            elif isinstance(calls, list) and calls:
                out["output.value"] = _json({"tool_calls": calls})
            else:
                out["output.value"] = ""
        return
    output = answer.get("output")
    blocks = answer.get("content")
    if isinstance(output, list):  # a Responses answer
        for i, item in enumerate(output):
            if not isinstance(item, dict):
                continue
            at = f"llm.output_messages.{i}.message"
            if item.get("type") == "reasoning":
                for s in item.get("summary") or ():
                    if isinstance(s, dict) and isinstance(s.get("text"), str):
                        out[f"{at}.reasoning_summary"] = s["text"]
            elif item.get("type") == "message":
                parts = item.get("content")
                first = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], dict) else {}
                text = first.get("text")
                out[f"{at}.role"] = str(item.get("role") or "assistant")
                if isinstance(text, str):
                    out[f"{at}.content"] = text
                    out["output.value"] = text
    elif isinstance(blocks, list):  # an Anthropic Messages answer
        text = "\n\n".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))
        out["output.value"] = text
        out["llm.output_messages.0.message.role"] = "assistant"
        out["llm.output_messages.0.message.content"] = text


def _usage(r: CompletionRecord, answer: Any, out: dict[str, Any]) -> None:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = r.prompt_tokens, r.completion_tokens
    if prompt or completion:
        out["llm.token_count.total"] = prompt + completion
    if prompt:
        out["llm.token_count.prompt"] = prompt
    if completion:
        out["llm.token_count.completion"] = completion
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if isinstance(reasoning, int) and reasoning:
        out["llm.token_count.completion_details.reasoning"] = reasoning
    if r.cache_read_tokens:
        out["llm.token_count.prompt_details.cache_read"] = r.cache_read_tokens
    if r.cache_write_tokens:
        out["llm.token_count.prompt_details.cache_write"] = r.cache_write_tokens
    details = usage.get("prompt_tokens_details")
    audio = details.get("audio_tokens") if isinstance(details, dict) else None
    if isinstance(audio, int) and audio:
        out["llm.token_count.prompt_details.audio"] = audio


def openinference_attributes(r: CompletionRecord, detail: Detail | None, *, content: bool,
                             redact_key_info: bool = False) -> dict[str, Any]:
    """The OpenInference attributes of a record (see the module docstring); ``content``: messages may be
    exported (else they are sent as ``redacted-by-litellm``)."""
    out: dict[str, Any] = {"openinference.span.kind": span_kind(r.route)}
    metadata, _ = standard_metadata(r, detail, redact_key_info=redact_key_info)
    out["metadata"] = _json(metadata)
    model = r.upstream_model or r.model
    if model:
        out["llm.model_name"] = model
    out["llm.request.type"] = CALL_TYPES.get(r.route, r.route)
    out["llm.provider"] = r.provider or "Unknown"
    out["llm.is_streaming"] = "True" if r.stream else "False"
    body = detail.input if detail is not None and isinstance(detail.input, dict) else None
    answer = detail.output if detail is not None and r.outcome is Outcome.OK and isinstance(detail.output, dict) \
        else None
    if body is not None:
        _request(body, content, out)
    if answer is not None:
        _answer(answer, content, out)
    if not content:
        out["input.value"] = REDACTED
        out["llm.input_messages.0.message.role"] = "user"
        out["llm.input_messages.0.message.content"] = REDACTED
        if r.outcome is Outcome.OK:
            out["output.value"] = REDACTED
            out["llm.output_messages.0.message.role"] = "assistant"
            out["llm.output_messages.0.message.content"] = REDACTED
    _usage(r, answer, out)
    user = out.get("llm.user") or (None if redact_key_info else r.user_id)
    if user:
        out["user.id"] = str(user)
    meta = detail.metadata if detail is not None else {}
    session = meta.get("session_id")
    if isinstance(session, str | int) and not isinstance(session, bool) and str(session):
        out["session.id"] = str(session)
        out["litellm.trace_id"] = str(session)
    else:
        if r.end_user_id:
            out["session.id"] = r.end_user_id
        out["litellm.trace_id"] = r.call_id
    if not redact_key_info:
        for attr, value in (("litellm.team_id", r.team_id), ("litellm.key_alias", r.key_alias),
                            ("litellm.team_alias", detail.team_alias if detail is not None else None)):
            if value:
                out[attr] = str(value)
    tags = detail.tags if detail is not None else []
    if tags:
        out["tag.tags"] = tuple(str(t) for t in tags)
    cost = r.cost if math.isfinite(r.cost) and r.cost > 0.0 else 0.0
    out["llm.cost.total"] = cost
    out["llm.response.cost"] = cost
    if r.outcome is not Outcome.OK:
        out["error.code"] = str(r.status)
        out["http.response.status_code"] = r.status
        out["error.type"] = r.error_class or error_class(r.status, r.error_type)
        out["error.message"] = (detail.error_message if detail is not None and detail.error_message
                                else r.error_message) or ""
        out["error.llm_provider"] = r.provider or ""
    return {k: _scalar(v) if not isinstance(v, tuple) else v for k, v in out.items()}
