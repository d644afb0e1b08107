"""Google Gemini (``gemini/``, AI Studio keys): OpenAI chat requests as ``generateContent`` calls.

Requests: system/developer messages become ``systemInstruction``; user and assistant turns become
``contents`` with roles ``user``/``model`` (consecutive same-role turns merged); text, images
(``inlineData`` for data URIs and for ``http(s)`` URLs, which AI Studio will not fetch: the adapter names
them in ``fetch_urls`` and the shell downloads them; ``fileData`` for ``gs://``, Files API and YouTube
URLs), ``input_audio`` and PDF
``file`` parts become parts; assistant ``tool_calls`` become ``functionCall`` parts and ``role: tool``
messages ``functionResponse`` parts named after the call they answer. Sampling params go in
``generationConfig`` (``max_tokens`` -> ``maxOutputTokens``, ``stop`` -> ``stopSequences``, ``n`` ->
``candidateCount``, ``response_format`` -> ``responseMimeType``/``responseJsonSchema``,
``reasoning_effort`` -> ``thinkingConfig``), tools become ``functionDeclarations`` (JSON-schema keys
Gemini rejects are dropped) and ``tool_choice`` a ``functionCallingConfig`` mode.

Responses: text parts join into ``content`` (``thought`` parts into ``reasoning_content``),
``functionCall`` parts become ``tool_calls`` with generated ids; ``finishReason`` maps STOP -> stop (or
tool_calls when the model called a function), MAX_TOKENS -> length, the safety family ->
content_filter. A prompt blocked by ``promptFeedback.blockReason``, or a candidate stopped for safety
before any output, is a :class:`ContentPolicyViolation` so ``content_policy_fallbacks`` apply.
``usageMetadata`` maps to usage (thoughts count as completion tokens and as
``reasoning_tokens``; ``cachedContentTokenCount`` as ``cached_tokens``).

Embeddings use ``:batchEmbedContents``: one ``EmbedContentRequest`` per input (``content.parts[].text``),
``dimensions`` -> ``outputDimensionality``, ``task_type`` (or ``input_type``) -> ``taskType``, ``title``;
deployments may default these in ``litellm_params``. The answer carries no token count, so usage is
estimated from the inputs; ``encoding_format: base64`` packs float32 little-endian like OpenAI.

Streams use ``:streamGenerateContent?alt=sse``: every SSE event is a whole response object, translated
as it arrives (:class:`GeminiStream`); a function call arrives whole, so it becomes one tool call chunk.

Thought signatures: a thinking model signs the ``functionCall`` part of each step (``thoughtSignature``; of
parallel calls only the first), and Gemini 3 refuses a request whose current turn sends a call back without
its signature. Chat has no field for it, so the signature rides in the tool call id as LiteLLM carries it:
``<id>__thought__<signature>``, the signature as Gemini sent it (already base64). Clients echo the id, and
:func:`to_gemini` splits it back into the part's ``thoughtSignature`` (LiteLLM's
``provider_specific_fields.thought_signature`` on a tool call is read first). The signature is passed on
unchecked: Gemini judges it. Unsigned calls keep plain ids, so an unsigned call of a parallel step stays
unsigned. Signatures on text parts are dropped: Gemini validates only those of function calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.core.mime import guess_mime
from relaygate.providers import _convert as cv
from relaygate.providers.base import Call, Provider, StreamTranslator, url_segment
from relaygate.providers.openai import REQUEST_DEFAULTS
from relaygate.upstream.base import UpstreamRequest

SAFETY = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                    "IMAGE_PROHIBITED_CONTENT", "LANGUAGE"})
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "MALFORMED_FUNCTION_CALL": "stop", "OTHER": "stop",
          "FINISH_REASON_UNSPECIFIED": "stop", "UNEXPECTED_TOOL_CALL": "stop"}
#: between a tool call id and the thought signature it carries (LiteLLM's ``THOUGHT_SIGNATURE_SEPARATOR``)
THOUGHT_SEP = "__thought__"
_SCHEMA_DROP = frozenset({"$schema", "additionalProperties", "$id", "strict"})
_THINKING = {"minimal": 128, "low": 1024, "medium": 2048, "high": 4096, "disable": 0, "none": 0}
_GEN_PARAMS = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
               ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
               ("n", "candidateCount"), ("top_logprobs", "logprobs"), ("logprobs", "responseLogprobs"))


def clean_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items() if k not in _SCHEMA_DROP}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def _media_part(mime: str, data: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": data}}


def _parts(content: Any, provider: str, model: str,
           media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in cv.parts_of(content):
        t = p.get("type")
        if t == "text":
            if p.get("text"):
                out.append({"text": p["text"]})
        elif t == "image_url":
            url = cv.image_url_of(p)
            du = cv.data_uri(url) or cv.fetched(url, media)
            if du is not None:
                out.append(_media_part(*du))
            else:
                iu = p.get("image_url")
                fmt = iu.get("format") if isinstance(iu, dict) else None
                out.append({"fileData": {"mimeType": fmt or guess_mime(url), "fileUri": url}})
        elif t == "input_audio":
            out.append(_media_part(*cv.audio_of(p)))
        elif t == "file":
            f = p.get("file") or {}
            fd = f.get("file_data")
            du = cv.data_uri(fd) if isinstance(fd, str) else None
            if du is not None:
                out.append(_media_part(*du))
            elif f.get("file_id"):
                fid = str(f["file_id"])
                out.append({"fileData": {"mimeType": f.get("format") or guess_mime(fid, "application/pdf"),
                                         "fileUri": fid}})
            else:
                raise cv.unsupported("file (without file_data or file_id)", provider, model)
        else:
            raise errors.BadRequest(f"Unsupported content part type `{t}` for {provider}", param="messages")
    return out


def _response_value(content: Any) -> Any:
    text = content if isinstance(content, str) else cv.text_of(content)
    try:
        val = orjson.loads(text)
    except orjson.JSONDecodeError:  # tool output that is not JSON is sent as text
        return {"content": text}
    return val if isinstance(val, dict) else {"content": val}


def call_id(p: dict[str, Any], fc: dict[str, Any]) -> str:
    """The chat tool call id for a ``functionCall`` part: Gemini's id (or a new one), with the part's thought
    signature appended after :data:`THOUGHT_SEP` when it has one."""
    cid = fc.get("id") or cv.new_call_id()
    sig = p.get("thoughtSignature")
    return f"{cid}{THOUGHT_SEP}{sig}" if sig and isinstance(sig, str) else cid


def _signature(tc: dict[str, Any]) -> str | None:
    """The thought signature a chat tool call carries back: LiteLLM's ``provider_specific_fields`` (of the call,
    then of its function), else the part of its id after :data:`THOUGHT_SEP`."""
    for holder in (tc, tc.get("function")):
        psf = holder.get("provider_specific_fields") if isinstance(holder, dict) else None
        if isinstance(psf, dict):
            sig = psf.get("thought_signature")
            if sig and isinstance(sig, str):
                return sig
    cid = tc.get("id")
    if cid and THOUGHT_SEP in cid:
        return cid.partition(THOUGHT_SEP)[2] or None
    return None


def _call_part(tc: dict[str, Any]) -> dict[str, Any]:
    fn = tc.get("function") or {}
    part: dict[str, Any] = {"functionCall": {"name": fn.get("name", ""), "args": cv.tool_args(fn.get("arguments"))}}
    sig = _signature(tc)
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


def _tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name; a signed id is also found by its id without the signature (and the other
    way round, in :func:`to_gemini`), so a result answers its call whichever side kept the signature."""
    names = cv.tool_name_index(messages)
    for cid, name in list(names.items()):
        if THOUGHT_SEP in cid:
            names.setdefault(cid.partition(THOUGHT_SEP)[0], name)
    return names


def to_gemini(req: dict[str, Any], provider: str, model: str,
              media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> dict[str, Any]:
    """OpenAI chat request dict -> Gemini ``GenerateContentRequest`` dict (``media``: downloaded image
    URLs, sent inline)."""
    messages = req.get("messages") or []
    names = _tool_names(messages)
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []

    def push(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_parts(content, provider, model, media))
        elif role == "user":
            push("user", _parts(content, provider, model, media))
        elif role == "assistant":
            parts = _parts(content, provider, model, media)
            parts.extend(_call_part(tc) for tc in m.get("tool_calls") or ())
            push("model", parts)
        elif role in ("tool", "function"):
            tcid = m.get("tool_call_id") or ""
            name = names.get(tcid) or names.get(tcid.partition(THOUGHT_SEP)[0]) or m.get("name") or ""
            push("user", [{"functionResponse": {"name": name, "response": _response_value(content)}}])
        else:
            raise errors.BadRequest(f"Invalid message role `{role}`", param="messages")
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    gc: dict[str, Any] = {}
    for src, dst in _GEN_PARAMS:
        v = req.get(src)
        if v is not None:
            gc[dst] = v
    mt = cv.max_tokens(req)
    if mt is not None:
        gc["maxOutputTokens"] = mt
    stop = cv.stop_list(req.get("stop"))
    if stop:
        gc["stopSequences"] = stop
    rf = req.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            gc["responseMimeType"] = "application/json"
        elif rf.get("type") == "json_schema":
            gc["responseMimeType"] = "application/json"
            schema = (rf.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                gc["responseJsonSchema"] = schema
    effort = req.get("reasoning_effort")
    if isinstance(effort, str) and effort in _THINKING:
        budget = _THINKING[effort]
        gc["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    thinking = req.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        gc["thinkingConfig"] = {"thinkingBudget": int(thinking.get("budget_tokens") or 1024),
                                "includeThoughts": True}
    modalities = req.get("modalities")
    if isinstance(modalities, list) and modalities:  # LiteLLM's map: ["text", "image"] -> ["TEXT", "IMAGE"]
        gc["responseModalities"] = [str(m).upper() for m in modalities]
    if gc:
        out["generationConfig"] = gc
    fns = cv.openai_tools(req)
    tools: list[dict[str, Any]] = []
    if fns:
        decls = []
        for f in fns:
            d: dict[str, Any] = {"name": f.get("name", "")}
            if f.get("description"):
                d["description"] = f["description"]
            params = f.get("parameters")
            if isinstance(params, dict) and (params.get("properties") or params.get("type") != "object"):
                d["parameters"] = clean_schema(params)
            decls.append(d)
        tools.append({"functionDeclarations": decls})
    # Gemini-native tools given as-is ({"googleSearch": {}}, {"codeExecution": {}}, ...)
    tools.extend(t for t in req.get("tools") or () if isinstance(t, dict) and "type" not in t and "function" not in t)
    if req.get("web_search_options") is not None and not any("googleSearch" in t for t in tools):
        tools.append({"googleSearch": {}})  # LiteLLM's map of OpenAI's web search: grounding with Google Search
    if tools:
        out["tools"] = tools
    tc = req.get("tool_choice")
    if tc is not None and fns:
        if tc == "auto":
            out["toolConfig"] = {"functionCallingConfig": {"mode": "AUTO"}}
        elif tc == "required":
            out["toolConfig"] = {"functionCallingConfig": {"mode": "ANY"}}
        elif tc == "none":
            out["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
        elif isinstance(tc, dict) and (tc.get("function") or {}).get("name"):
            out["toolConfig"] = {"functionCallingConfig": {"mode": "ANY",
                                                           "allowedFunctionNames": [tc["function"]["name"]]}}
    ss = req.get("safety_settings") or req.get("safetySettings")
    if ss:
        out["safetySettings"] = ss
    cc = req.get("cached_content") or req.get("cachedContent")
    if cc:
        out["cachedContent"] = cc
    return out


# ---------------------------------------------------------------------------------------- responses


def convert_usage(um: dict[str, Any] | None) -> dict[str, Any] | None:
    if not um:
        return None
    prompt = int(um.get("promptTokenCount") or 0) + int(um.get("toolUsePromptTokenCount") or 0)
    thoughts = um.get("thoughtsTokenCount")
    completion = int(um.get("candidatesTokenCount") or 0) + int(thoughts or 0)
    cached = um.get("cachedContentTokenCount")
    u = cv.usage(prompt, completion, cached=int(cached) if cached is not None else None,
                 reasoning=int(thoughts) if thoughts is not None else None)
    # the audio part of each side (``*TokensDetails``: one count per modality), priced at the audio rate
    for src, dst in (("promptTokensDetails", "prompt_tokens_details"),
                     ("candidatesTokensDetails", "completion_tokens_details")):
        audio = _modality_tokens(um.get(src), "AUDIO")
        if audio:
            u.setdefault(dst, {})["audio_tokens"] = audio
    return u


def _modality_tokens(details: Any, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    n = 0
    for d in details:
        if isinstance(d, dict) and d.get("modality") == modality and isinstance(d.get("tokenCount"), int):
            n += d["tokenCount"]
    return n


def _blocked(obj: dict[str, Any], provider: str) -> errors.GatewayError | None:
    pf = obj.get("promptFeedback")
    if isinstance(pf, dict) and pf.get("blockReason"):
        return errors.ContentPolicyViolation(
            f"litellm.ContentPolicyViolationError: {provider} - The prompt was blocked: {pf['blockReason']}"
            + (f" ({pf['blockReasonMessage']})" if pf.get("blockReasonMessage") else ""), code="400")
    return None


def _safety_error(reason: str, provider: str) -> errors.GatewayError:
    return errors.ContentPolicyViolation(
        f"litellm.ContentPolicyViolationError: {provider} - The response was blocked: finishReason={reason}",
        code="400")


def from_gemini(body: bytes, model: str, prefix: str, created: int) -> bytes:
    obj = orjson.loads(body)
    blocked = _blocked(obj, prefix)
    cands = obj.get("candidates") or []
    if blocked is not None and not cands:
        raise blocked
    cand = cands[0] if cands else {}
    texts: list[str] = []
    thoughts: list[str] = []
    calls = []
    images: list[dict[str, Any]] = []
    for p in (cand.get("content") or {}).get("parts") or ():
        if "functionCall" in p:
            fc = p["functionCall"]
            calls.append(cv.tool_call(call_id(p, fc), fc.get("name", ""), orjson.dumps(fc.get("args") or {}).decode()))
        elif "text" in p:
            (thoughts if p.get("thought") else texts).append(p["text"])
        elif (image := image_of(p, len(images))) is not None:
            images.append(image)
    reason = cand.get("finishReason") or "STOP"
    if reason in SAFETY:
        if not texts and not calls:
            raise _safety_error(reason, prefix)
        finish = "content_filter"
    else:
        finish = "tool_calls" if calls else FINISH.get(reason, "stop")
    out = cv.chat_response(obj.get("responseId") or "chatcmpl-" + os.urandom(12).hex(),
                           obj.get("modelVersion") or model, created,
                           "".join(texts) if texts or not calls else None, calls, finish,
                           convert_usage(obj.get("usageMetadata")), "".join(thoughts) or None)
    if not images:
        return out
    answer = orjson.loads(out)  # (rare: an image model's answer)
    answer["choices"][0]["message"]["images"] = images
    return orjson.dumps(answer)


def image_of(part: dict[str, Any], index: int) -> dict[str, Any] | None:
    """An image part of an answer (``inlineData`` of an ``image/*`` type) as LiteLLM's ``message.images`` entry:
    ``{"image_url": {"url": "data:<type>;base64,<data>", "detail": "auto"}, "index", "type": "image_url"}``."""
    data = part.get("inlineData") or part.get("inline_data")
    if not isinstance(data, dict):
        return None
    mime = str(data.get("mimeType") or data.get("mime_type") or "")
    if not mime.startswith("image/") or not isinstance(data.get("data"), str):
        return None
    return {"image_url": {"url": f"data:{mime};base64,{data['data']}", "detail": "auto"}, "index": index,
            "type": "image_url"}


class GeminiStream(cv.SSEChunkStream):
    """``alt=sse`` events (one GenerateContentResponse each) -> OpenAI chunk frames."""

    def __init__(self, call: Call, prefix: str) -> None:
        super().__init__(call)
        self._prefix = prefix
        self._calls = False
        self._images = 0

    def _event(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise errors.UpstreamProtocolError(f"gemini sent an invalid stream event: {data[:200]!r}") from None
        if not isinstance(obj, dict):
            return b""
        if "error" in obj and isinstance(obj["error"], dict):
            err = obj["error"]
            from relaygate.providers.base import classify

            raise classify(int(err.get("code") or 500), str(err.get("message", "")), err.get("status"), None,
                           None, self._prefix)
        out: list[bytes] = []
        if self.w is None:
            out.append(self.start(obj.get("responseId"), obj.get("modelVersion")))
        um = obj.get("usageMetadata")
        if um:
            u = convert_usage(um)
            if u is not None:
                self.set_usage(u)
        cands = obj.get("candidates") or []
        if not cands:
            blocked = _blocked(obj, self._prefix)
            if blocked is not None:
                if not self.emitted:
                    raise blocked
                out.append(self.finish("content_filter"))
            return b"".join(out)
        cand = cands[0]
        w = self.w
        assert w is not None
        for p in (cand.get("content") or {}).get("parts") or ():
            if "functionCall" in p:
                fc = p["functionCall"]
                self.tool_index += 1
                self._calls = True
                self.emitted = True
                args = orjson.dumps(fc.get("args") or {}).decode()
                self._chars += len(args)
                out.append(w.tool_start(self.tool_index, call_id(p, fc), fc.get("name", ""), args))
            elif p.get("text"):
                if p.get("thought"):
                    self._chars += len(p["text"])
                    out.append(w.reasoning(p["text"]))
                else:
                    out.append(self.text(p["text"]))
            elif (image := image_of(p, self._images)) is not None:  # LiteLLM's delta.images
                self._images += 1
                self.emitted = True
                out.append(w.delta(b'{"images":[' + orjson.dumps(image) + b"]}"))
        reason = cand.get("finishReason")
        if reason:
            if reason in SAFETY:
                if not self.emitted:
                    raise _safety_error(reason, self._prefix)
                out.append(self.finish("content_filter"))
            else:
                out.append(self.finish("tool_calls" if self._calls else FINISH.get(reason, "stop")))
        return b"".join(out)


# --------------------------------------------------------------------------------------- embeddings

#: OpenAI-side embedding params a deployment may default (``litellm_params``) or a request may carry
EMBED_PARAMS = ("dimensions", "task_type", "input_type", "title", "auto_truncate")


def embed_options(req: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """(``outputDimensionality``, ``taskType``, ``title``) from an OpenAI embeddings request."""
    task = req.get("task_type") or req.get("input_type")
    title = req.get("title")
    return (cv.dimensions(req), str(task).upper() if isinstance(task, str) and task else None,
            title if isinstance(title, str) and title else None)


def to_batch_embed(req: dict[str, Any], model: str, provider: str) -> dict[str, Any]:
    """OpenAI embeddings request -> ``BatchEmbedContentsRequest``: one ``EmbedContentRequest`` per input."""
    dims, task, title = embed_options(req)
    extra: dict[str, Any] = {}
    if dims is not None:
        extra["outputDimensionality"] = dims
    if task is not None:
        extra["taskType"] = task
    if title is not None:
        extra["title"] = title
    name = f"models/{model}"
    return {"requests": [{"model": name, "content": {"parts": [{"text": t}]}, **extra}
                         for t in cv.embedding_inputs(req, provider)]}


def from_batch_embed(body: bytes, req: dict[str, Any], model: str, provider: str) -> bytes:
    """``BatchEmbedContentsResponse`` (``embeddings[].values``) -> OpenAI embeddings body."""
    obj = orjson.loads(body)
    vectors = [e.get("values") or [] for e in obj.get("embeddings") or ()]
    um = obj.get("usageMetadata") or {}
    pt = um.get("promptTokenCount")
    return cv.embedding_response(vectors, model, cv.embedding_inputs(req, provider),
                                 int(pt) if isinstance(pt, int) else None, req.get("encoding_format"))


def _google_hosted(url: str) -> bool:
    """URLs Gemini fetches itself: its Files API and YouTube videos."""
    host = url.split("://", 1)[-1].split("/", 1)[0].lower()
    return host == "generativelanguage.googleapis.com" or host.endswith(("youtube.com", "youtu.be"))


def _must_inline(url: str) -> bool:
    return cv.is_http(url) and not _google_hosted(url)


class GeminiProvider(Provider):
    name: ClassVar[str] = "gemini"
    default_api_base: ClassVar[str | None] = "https://generativelanguage.googleapis.com"
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat", "embeddings"})
    error_prefix: ClassVar[str] = "GeminiException"
    hooks: ClassVar[bool] = True

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        self.model = dep.upstream_model.removeprefix("models/")
        self.headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        key = dep.api_key
        if key:
            self.headers.append(("x-goog-api-key", key))
        self._extra_headers(dep)
        self.defaults = {k: v for k, v in dep.extra.items()  # (cache points: Claude on Vertex, core.cache_points)
                         if k in REQUEST_DEFAULTS or k in ("top_k", "safety_settings", "cached_content",
                                                           "cache_control_injection_points")}
        self.embed_defaults = {k: v for k, v in dep.extra.items() if k in EMBED_PARAMS}
        base = self.api_base or ""
        root = base if base.endswith(("/v1beta", "/v1", "/v1alpha")) else base + "/v1beta"
        seg = url_segment(self.model)
        self.url_unary = f"{root}/models/{seg}:generateContent"
        self.url_stream = f"{root}/models/{seg}:streamGenerateContent?alt=sse"
        self.url_embed = f"{root}/models/{seg}:batchEmbedContents"

    def _extra_headers(self, dep: Deployment) -> None:
        eh = dep.extra.get("extra_headers") or dep.extra.get("headers")
        if isinstance(eh, dict):
            self.headers.extend((str(k), str(v)) for k, v in eh.items())

    def request_headers(self) -> list[tuple[str, str]]:
        return self.headers

    def fetch_urls(self, call: Call) -> list[str]:
        if call.endpoint != "chat":
            return []
        return cv.image_urls(call.body, _must_inline)

    def build_request(self, call: Call) -> UpstreamRequest:
        return cv.single(self.build_requests(call, cv.NO_MEDIA), self.name)

    def build_requests(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> list[UpstreamRequest]:
        if call.endpoint == "embeddings":
            return self.embedding_requests(self.embedding_request(call))
        return [self.chat_request(call, media)]

    def chat_request(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> UpstreamRequest:
        req = cv.load_request(call, self.defaults)
        body = orjson.dumps(to_gemini(req, self.name, self.model, media))
        return UpstreamRequest("POST", self.url_stream if call.stream else self.url_unary,
                               self.request_headers(), body)

    def embedding_request(self, call: Call) -> dict[str, Any]:
        req = cv.load_request(call)
        if self.embed_defaults:
            cv.apply_defaults(req, self.embed_defaults)
        return req

    def embedding_requests(self, req: dict[str, Any]) -> list[UpstreamRequest]:
        body = orjson.dumps(to_batch_embed(req, self.model, self.name))
        return [UpstreamRequest("POST", self.url_embed, self.request_headers(), body)]

    def translate_response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint == "embeddings":
            return self.merge_responses(call, [body])
        return from_gemini(body, self.model, self.error_prefix, int(call.now))

    def merge_responses(self, call: Call, bodies: list[bytes]) -> bytes:
        if call.endpoint == "embeddings":
            return self.embedding_response(self.embedding_request(call), bodies)
        return self.translate_response(call, bodies[0])

    def embedding_response(self, req: dict[str, Any], bodies: list[bytes]) -> bytes:
        return from_batch_embed(bodies[0], req, self.model, self.name)

    def stream_translator(self, call: Call) -> StreamTranslator:
        return GeminiStream(call, self.error_prefix)
