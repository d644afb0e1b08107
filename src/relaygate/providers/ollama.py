"""Ollama's native API: ``ollama_chat/`` (``/api/chat``) and ``ollama/`` (``/api/generate``).

Default base ``http://localhost:11434`` (or ``OLLAMA_API_BASE``). Sampling params go in ``options``
(``max_tokens`` -> ``num_predict``, ``stop``, ``temperature``, ``top_p``, ``top_k``, ``seed``, penalties);
``response_format`` becomes ``format`` (``"json"`` or the JSON schema); images travel as base64 in the
message's ``images`` list (data URIs as they are; Ollama cannot fetch URLs, so ``http(s)`` images are
downloaded by the shell first; ``input_audio`` is a 400). Embeddings use ``/api/embed`` (``dimensions``,
``truncate``, ``keep_alive`` passed on; usage from ``prompt_eval_count``, else estimated).
``ollama_chat`` carries tools, assistant ``tool_calls`` (arguments as objects) and
``role: tool`` results; ``ollama`` flattens the conversation into ``system`` + ``prompt`` like LiteLLM.
``stream`` is always sent explicitly (Ollama streams by default).

Responses: ``message.content`` / ``response`` -> content, ``message.thinking`` -> reasoning,
``tool_calls`` -> OpenAI tool calls with generated ids, ``done_reason`` stop/length, usage from
``prompt_eval_count`` / ``eval_count``. Streams are NDJSON, one object per line, split anywhere by the
transport: :class:`OllamaStream` buffers the incomplete last line only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import Call, Provider, StreamTranslator
from relaygate.providers.openai import REQUEST_DEFAULTS
from relaygate.upstream.base import UpstreamRequest

_OPTIONS = (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("seed", "seed"),
            ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"),
            ("repeat_penalty", "repeat_penalty"), ("num_ctx", "num_ctx"), ("mirostat", "mirostat"))
FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def _images(content: Any, provider: str, model: str,
            media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> tuple[str, list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for p in cv.parts_of(content):
        t = p.get("type")
        if t == "text":
            texts.append(p.get("text", ""))
        elif t == "image_url":
            url = cv.image_url_of(p)
            du = cv.data_uri(url) or cv.fetched(url, media)
            if du is None:
                raise errors.BadRequest(f"{provider} model `{model}` takes images only as base64 data URIs or "
                                        "http(s) URLs", param="messages")
            images.append(du[1])
        else:
            raise cv.unsupported(str(t), provider, model)
    return "".join(texts), images


def _common(req: dict[str, Any], out: dict[str, Any], stream: bool) -> None:
    opts: dict[str, Any] = {}
    for src, dst in _OPTIONS:
        v = req.get(src)
        if v is not None:
            opts[dst] = v
    mt = cv.max_tokens(req)
    if mt is not None:
        opts["num_predict"] = mt
    stop = cv.stop_list(req.get("stop"))
    if stop:
        opts["stop"] = stop
    extra_opts = req.get("options")
    if isinstance(extra_opts, dict):
        opts.update(extra_opts)
    if opts:
        out["options"] = opts
    rf = req.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            out["format"] = "json"
        elif rf.get("type") == "json_schema":
            out["format"] = (rf.get("json_schema") or {}).get("schema") or "json"
    for k in ("keep_alive", "think"):
        if req.get(k) is not None:
            out[k] = req[k]
    out["stream"] = stream


def to_ollama_chat(req: dict[str, Any], model: str, stream: bool,
                   media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> dict[str, Any]:
    msgs = []
    for m in req.get("messages") or ():
        role = m.get("role")
        if role == "developer":
            role = "system"
        text, images = _images(m.get("content"), "ollama_chat", model, media)
        om: dict[str, Any] = {"role": role, "content": text}
        if images:
            om["images"] = images
        if m.get("tool_calls"):
            om["tool_calls"] = [{"function": {"name": (tc.get("function") or {}).get("name", ""),
                                              "arguments": cv.tool_args((tc.get("function") or {}).get("arguments"))}}
                                for tc in m["tool_calls"]]
        if role == "tool" and m.get("name"):
            om["tool_name"] = m["name"]
        msgs.append(om)
    out: dict[str, Any] = {"model": model, "messages": msgs}
    fns = cv.openai_tools(req)
    if fns:
        out["tools"] = [{"type": "function", "function": f} for f in fns]
    _common(req, out, stream)
    return out


def to_ollama_generate(req: dict[str, Any], model: str, stream: bool,
                       media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> dict[str, Any]:
    system: list[str] = []
    prompt: list[str] = []
    images: list[str] = []
    for m in req.get("messages") or ():
        text, imgs = _images(m.get("content"), "ollama", model, media)
        images.extend(imgs)
        if m.get("role") in ("system", "developer"):
            system.append(text)
        else:
            prompt.append(text)
    out: dict[str, Any] = {"model": model, "prompt": "\n".join(prompt)}
    if system:
        out["system"] = "\n".join(system)
    if images:
        out["images"] = images
    _common(req, out, stream)
    return out


def to_ollama_embed(req: dict[str, Any], model: str, provider: str) -> dict[str, Any]:
    """OpenAI embeddings request -> ``/api/embed`` body (``input`` a list, ``dimensions``, ``truncate``,
    ``keep_alive``, ``options`` passed on)."""
    out: dict[str, Any] = {"model": model, "input": cv.embedding_inputs(req, provider)}
    dims = cv.dimensions(req)
    if dims is not None:
        out["dimensions"] = dims
    for k in ("truncate", "keep_alive", "options"):
        if req.get(k) is not None:
            out[k] = req[k]
    return out


def from_ollama_embed(body: bytes, req: dict[str, Any], model: str, provider: str) -> bytes:
    obj = orjson.loads(body)
    n = obj.get("prompt_eval_count")
    return cv.embedding_response(obj.get("embeddings") or [], obj.get("model") or model,
                                 cv.embedding_inputs(req, provider), int(n) if isinstance(n, int) else None,
                                 req.get("encoding_format"))


def _usage(obj: dict[str, Any]) -> dict[str, Any]:
    return cv.usage(int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0))


def _calls(msg: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        out.append(cv.tool_call(tc.get("id") or cv.new_call_id(), fn.get("name", ""),
                                args if isinstance(args, str) else orjson.dumps(args or {}).decode()))
    return out


def _rid() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


class OllamaStream(cv.ChunkStream):
    """NDJSON lines -> OpenAI chunk frames."""

    def __init__(self, call: Call, generate: bool) -> None:
        super().__init__(call)
        self._buf = b""
        self._generate = generate
        self._calls = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        buf = self._buf + data if self._buf else data
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return b""
        self._buf = buf[end + 1:]
        return b"".join([self._line(line) for line in buf[:end].split(b"\n") if line.strip()])

    def close(self) -> bytes:
        out = self._line(self._buf) if self._buf.strip() else b""
        self._buf = b""
        return out + self.end()

    def _line(self, line: bytes) -> bytes:
        if self.done:
            return b""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise errors.UpstreamProtocolError(f"ollama sent an invalid stream line: {line[:200]!r}") from None
        self.seen = True
        if not isinstance(obj, dict):
            return b""
        if "error" in obj:
            from relaygate.providers.base import classify

            raise classify(500, str(obj["error"]), None, None, None, "OllamaException")
        out: list[bytes] = []
        if self.w is None:
            out.append(self.start(None, obj.get("model")))
        w = self.w
        assert w is not None
        if self._generate:
            if obj.get("thinking"):
                out.append(w.reasoning(obj["thinking"]))
            if obj.get("response"):
                out.append(self.text(obj["response"]))
        else:
            msg = obj.get("message") or {}
            if msg.get("thinking"):
                out.append(w.reasoning(msg["thinking"]))
            if msg.get("content"):
                out.append(self.text(msg["content"]))
            for tc in _calls(msg):
                self.tool_index += 1
                self._calls = True
                self.emitted = True
                fn = tc["function"]
                out.append(w.tool_start(self.tool_index, tc["id"], fn["name"], fn["arguments"]))
        if obj.get("done"):
            self.set_usage(_usage(obj))
            reason = "tool_calls" if self._calls else FINISH.get(obj.get("done_reason") or "stop", "stop")
            out.append(self.finish(reason))
            out.append(self.end())
        return b"".join(out)


class OllamaChatProvider(Provider):
    name: ClassVar[str] = "ollama_chat"
    default_api_base: ClassVar[str | None] = "http://localhost:11434"
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat", "embeddings"})
    error_prefix: ClassVar[str] = "Ollama_chatException"
    generate: ClassVar[bool] = False
    hooks: ClassVar[bool] = True
    stream_types: ClassVar[frozenset[bytes]] = frozenset({b"application/x-ndjson", b"application/json"})

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        self.headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        if dep.api_key:
            self.headers.append(("Authorization", f"Bearer {dep.api_key}"))
        self.defaults = {k: v for k, v in dep.extra.items() if k in REQUEST_DEFAULTS or k in ("top_k", "keep_alive")}
        self.model = dep.upstream_model

    def fetch_urls(self, call: Call) -> list[str]:
        return cv.image_urls(call.body) if call.endpoint == "chat" else []

    def build_request(self, call: Call) -> UpstreamRequest:
        return cv.single(self.build_requests(call, cv.NO_MEDIA), self.name)

    def build_requests(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> list[UpstreamRequest]:
        if call.endpoint == "embeddings":
            body = orjson.dumps(to_ollama_embed(cv.load_request(call), self.model, self.name))
            return [UpstreamRequest("POST", f"{self.api_base}/api/embed", self.headers, body)]
        req = cv.load_request(call, self.defaults)
        if self.generate:
            return [UpstreamRequest("POST", f"{self.api_base}/api/generate", self.headers,
                                    orjson.dumps(to_ollama_generate(req, self.model, call.stream, media)))]
        return [UpstreamRequest("POST", f"{self.api_base}/api/chat", self.headers,
                                orjson.dumps(to_ollama_chat(req, self.model, call.stream, media)))]

    def translate_response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint == "embeddings":
            return from_ollama_embed(body, cv.load_request(call), self.model, self.name)
        obj = orjson.loads(body)
        if self.generate:
            content = obj.get("response", "")
            reasoning = obj.get("thinking")
            calls: list[dict[str, Any]] = []
        else:
            msg = obj.get("message") or {}
            content = msg.get("content", "")
            reasoning = msg.get("thinking")
            calls = _calls(msg)
        finish = "tool_calls" if calls else FINISH.get(obj.get("done_reason") or "stop", "stop")
        return cv.chat_response(_rid(), obj.get("model") or self.model, int(call.now),
                                content if content or not calls else None, calls, finish, _usage(obj), reasoning)

    def stream_translator(self, call: Call) -> StreamTranslator:
        return OllamaStream(call, self.generate)

    def health_request(self) -> UpstreamRequest | None:
        return UpstreamRequest("GET", f"{self.api_base}/api/tags", [], b"")


class OllamaProvider(OllamaChatProvider):
    name: ClassVar[str] = "ollama"
    error_prefix: ClassVar[str] = "OllamaException"
    generate: ClassVar[bool] = True
