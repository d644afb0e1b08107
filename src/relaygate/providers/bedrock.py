"""AWS Bedrock (``bedrock/``): the Converse and ConverseStream APIs, SigV4-signed, event-stream decoded.

Credentials are LiteLLM's params ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``
and ``aws_region_name`` (else ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``); a Bedrock API key (``api_key`` or ``AWS_BEARER_TOKEN_BEDROCK``) is
sent as a bearer token instead of signing. Model ids may carry LiteLLM's ``converse/`` route prefix; they
are URL-encoded into ``/model/{id}/converse`` (``/converse-stream``).

:class:`SigV4` signs a request for a given ``now`` (sans-IO; the signing key is cached per day). The
canonical URI is the already-encoded path encoded once more, as SigV4 requires for every service but S3.

:class:`EventStreamDecoder` reads AWS's binary ``application/vnd.amazon.eventstream`` framing
incrementally: a 12-byte prelude (total length, headers length, prelude CRC32), typed headers, the
payload and a message CRC32; both CRCs are checked, a frame split anywhere waits for its remaining
bytes, and a corrupt or oversized frame raises :class:`UpstreamProtocolError`.

Translation: system messages -> ``system`` blocks; turns merged to alternate, starting with the user;
text, base64 images and PDFs (``http(s)`` image URLs are downloaded by the shell and sent as bytes),
``toolUse`` / ``toolResult`` blocks, ``cache_control`` -> ``cachePoint``;
sampling params -> ``inferenceConfig``; ``top_k``/``thinking`` -> ``additionalModelRequestFields``;
tools -> ``toolConfig``. ConverseStream events (messageStart, contentBlockStart/Delta/Stop, messageStop,
metadata) become OpenAI chunks; exception frames raise the mapped :class:`GatewayError`.

Embeddings go through InvokeModel (``/model/{id}/invoke``). Titan Text Embeddings take one ``inputText``
per call, so a request with N inputs becomes N signed calls (``build_requests``), sent concurrently by the
shell and joined in order (``merge_responses``; usage sums ``inputTextTokenCount``); ``dimensions`` and
``normalize`` are passed on for v2 (v1 takes neither). Cohere Embed takes up to 96 ``texts`` per call
(``input_type`` defaults to ``search_document`` as in LiteLLM; usage is estimated: the body has no count).
Floats are always requested; ``encoding_format: base64`` is packed by the gateway as OpenAI does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
import urllib.parse
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from relaygate.config.model import Deployment
from relaygate.core import cache_points, errors
from relaygate.core.mime import guess_mime
from relaygate.providers import _convert as cv
from relaygate.providers.anthropic import JSON_TOOL, json_mode, json_mode_schema
from relaygate.providers.base import Call, Provider, StreamTranslator, classify, url_segment
from relaygate.providers.openai import REQUEST_DEFAULTS
from relaygate.upstream.aws_identity import credentials_for
from relaygate.upstream.base import UpstreamRequest

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length"}
EXCEPTION_STATUS = {"throttlingException": 429, "validationException": 400, "accessDeniedException": 403,
                    "resourceNotFoundException": 404, "serviceUnavailableException": 503,
                    "internalServerException": 500, "modelStreamErrorException": 500,
                    "modelTimeoutException": 408, "modelNotReadyException": 503, "serviceQuotaExceededException": 429}
MAX_FRAME = 32 * 1024 * 1024
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}
_DOC_FORMATS = {"application/pdf": "pdf", "text/csv": "csv", "text/plain": "txt", "text/html": "html",
                "text/markdown": "md", "application/msword": "doc",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                "application/vnd.ms-excel": "xls",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


# ------------------------------------------------------------------------------------------- SigV4


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class SigV4:
    """AWS Signature Version 4 for one set of credentials, region and service. No IO, no clock."""

    __slots__ = ("_day", "_key", "access_key", "region", "secret_key", "service", "session_token")

    def __init__(self, access_key: str, secret_key: str, session_token: str | None, region: str,
                 service: str = "bedrock") -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.service = service
        self._day = ""
        self._key = b""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            k = _hmac(("AWS4" + self.secret_key).encode(), day)
            k = _hmac(k, self.region)
            k = _hmac(k, self.service)
            self._key = _hmac(k, "aws4_request")
            self._day = day
        return self._key

    def sign(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
             now: float) -> list[tuple[str, str]]:
        """``headers`` plus ``X-Amz-Date``, the session token and ``Authorization`` for this request."""
        u = urllib.parse.urlsplit(url)
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amz_date[:8]
        out = [*headers, ("X-Amz-Date", amz_date)]
        if self.session_token:
            out.append(("X-Amz-Security-Token", self.session_token))
        signed: dict[str, str] = {"host": u.netloc}
        for k, v in out:
            lk = k.lower()
            if lk in ("content-type", "x-amz-date", "x-amz-security-token") or lk.startswith("x-amz-"):
                signed[lk] = " ".join(v.strip().split())
        names = sorted(signed)
        canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
        signed_headers = ";".join(names)
        # S3 signs the path as sent (its object keys are encoded once, by the caller); the other services
        # sign it encoded again
        path = (u.path or "/") if self.service == "s3" else urllib.parse.quote(u.path or "/", safe="/-_.~")
        query = "&".join(sorted(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)))
        canonical = "\n".join((method, path, query, canonical_headers, signed_headers,
                               hashlib.sha256(body).hexdigest()))
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
        sig = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        auth = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={sig}")
        out.append(("Authorization", auth))
        return out


# ------------------------------------------------------------------------------------ event stream


def _header_value(buf: bytes, i: int, t: int) -> tuple[Any, int]:
    if t == 0:
        return True, i
    if t == 1:
        return False, i
    if t == 2:
        return struct.unpack_from(">b", buf, i)[0], i + 1
    if t == 3:
        return struct.unpack_from(">h", buf, i)[0], i + 2
    if t == 4:
        return struct.unpack_from(">i", buf, i)[0], i + 4
    if t == 5 or t == 8:
        return struct.unpack_from(">q", buf, i)[0], i + 8
    if t == 6 or t == 7:
        n = struct.unpack_from(">H", buf, i)[0]
        raw = bytes(buf[i + 2:i + 2 + n])
        return (raw.decode("utf-8", "replace") if t == 7 else raw), i + 2 + n
    if t == 9:
        return bytes(buf[i:i + 16]), i + 16
    raise errors.UpstreamProtocolError(f"bedrock event stream: unknown header type {t}")


def parse_headers(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    end = len(buf)
    while i < end:
        n = buf[i]
        name = bytes(buf[i + 1:i + 1 + n]).decode("utf-8", "replace")
        i += 1 + n
        t = buf[i]
        out[name], i = _header_value(buf, i + 1, t)
    return out


#: header blocks repeat (every text delta carries the same three headers): parse each distinct one once;
#: the cached dicts are shared, so callers must not mutate them
_HEADER_CACHE: dict[bytes, dict[str, Any]] = {}


class EventStreamDecoder:
    """Incremental decoder of ``application/vnd.amazon.eventstream`` frames -> (headers, payload)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[dict[str, Any], bytes]] = []
        pos = 0
        n = len(buf)
        while n - pos >= 12:
            total, hlen, pcrc = struct.unpack_from(">III", buf, pos)
            if zlib.crc32(buf[pos:pos + 8]) != pcrc:
                raise errors.UpstreamProtocolError("bedrock event stream: prelude CRC mismatch")
            if total < 16 + hlen or total > MAX_FRAME:
                raise errors.UpstreamProtocolError(f"bedrock event stream: bad frame length {total}")
            if n - pos < total:
                break
            end = pos + total
            (mcrc,) = struct.unpack_from(">I", buf, end - 4)
            if zlib.crc32(buf[pos:end - 4]) != mcrc:
                raise errors.UpstreamProtocolError("bedrock event stream: message CRC mismatch")
            hb = bytes(buf[pos + 12:pos + 12 + hlen])
            headers = _HEADER_CACHE.get(hb)
            if headers is None:
                headers = parse_headers(hb)
                if len(_HEADER_CACHE) < 256:
                    _HEADER_CACHE[hb] = headers
            out.append((headers, bytes(buf[pos + 12 + hlen:end - 4])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream frame with string headers (tests and the bench mock use it)."""
    hb = b"".join(struct.pack(">B", len(k.encode())) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode()))
                  + v.encode() for k, v in headers.items())
    total = 16 + len(hb) + len(payload)
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


# ------------------------------------------------------------------------------------- translation


def _media_block(mime: str, data: str, model: str) -> dict[str, Any]:
    if mime in _IMAGE_FORMATS:
        return {"image": {"format": _IMAGE_FORMATS[mime], "source": {"bytes": data}}}
    if mime in _DOC_FORMATS:
        return {"document": {"format": _DOC_FORMATS[mime], "name": "document", "source": {"bytes": data}}}
    if mime.startswith("video/"):
        return {"video": {"format": mime.split("/", 1)[1], "source": {"bytes": data}}}
    raise cv.unsupported(f"media of type {mime}", "bedrock", model)


def _blocks(content: Any, model: str, media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in cv.parts_of(content):
        t = p.get("type")
        if t == "text":
            if p.get("text"):
                out.append({"text": p["text"]})
        elif t == "image_url":
            url = cv.image_url_of(p)
            du = cv.data_uri(url) or cv.fetched(url, media)
            if du is None:
                if url.startswith("s3://"):
                    out.append({"image": {"format": guess_mime(url).split("/")[-1],
                                          "source": {"s3Location": {"uri": url}}}})
                    continue
                raise errors.BadRequest(f"bedrock model `{model}` takes images only as base64 data URIs, s3:// "
                                        "URIs or http(s) URLs", param="messages")
            out.append(_media_block(du[0], du[1], model))
        elif t == "file":
            fd = (p.get("file") or {}).get("file_data")
            du = cv.data_uri(fd) if isinstance(fd, str) else None
            if du is None:
                raise cv.unsupported("file (without file_data)", "bedrock", model)
            out.append(_media_block(du[0], du[1], model))
        else:
            raise cv.unsupported(str(t), "bedrock", model)
        if "cache_control" in p:
            out.append({"cachePoint": {"type": "default"}})
    return out


def _cache_point(blocks: list[dict[str, Any]], marker: Any) -> list[dict[str, Any]]:
    """``blocks`` followed by a cache point when their message carried ``cache_control`` (and they do not end
    with one already)."""
    if marker is not None and blocks and "cachePoint" not in blocks[-1]:
        blocks.append({"cachePoint": {"type": "default"}})
    return blocks


def to_converse(req: dict[str, Any], model: str,
                media: Mapping[str, tuple[str, bytes]] = cv.NO_MEDIA) -> dict[str, Any]:
    """OpenAI chat request dict -> Converse body (``media``: downloaded image URLs, sent as bytes)."""
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
        role = m.get("role")
        content = m.get("content")
        marker = m.get("cache_control")  # a message's own breakpoint: a cache point after its blocks
        if role in ("system", "developer"):
            system.extend(_cache_point(_blocks(content, model, media), marker))
        elif role == "user":
            push("user", _cache_point(_blocks(content, model, media), marker))
        elif role == "assistant":
            blocks = _blocks(content, model, media)
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function") or {}
                blocks.append({"toolUse": {"toolUseId": tc.get("id") or cv.new_call_id(), "name": fn.get("name", ""),
                                           "input": cv.tool_args(fn.get("arguments"))}})
            push("assistant", _cache_point(blocks, marker))
        elif role in ("tool", "function"):
            text = content if isinstance(content, str) else cv.text_of(content)
            result = {"toolUseId": m.get("tool_call_id") or "", "content": [{"text": text or "."}]}
            push("user", _cache_point([{"toolResult": result}], marker))
        else:
            raise errors.BadRequest(f"Invalid message role `{role}`", param="messages")
    if turns and turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": "."}]})
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system
    ic: dict[str, Any] = {}
    mt = cv.max_tokens(req)
    if mt is not None:
        ic["maxTokens"] = mt
    if req.get("temperature") is not None:
        ic["temperature"] = req["temperature"]
    if req.get("top_p") is not None:
        ic["topP"] = req["top_p"]
    stop = cv.stop_list(req.get("stop"))
    if stop:
        ic["stopSequences"] = stop
    if ic:
        out["inferenceConfig"] = ic
    amrf: dict[str, Any] = {}
    if req.get("top_k") is not None:
        amrf["top_k"] = req["top_k"]
    if isinstance(req.get("thinking"), dict):
        amrf["thinking"] = req["thinking"]
    if amrf:
        out["additionalModelRequestFields"] = amrf
    fns = cv.openai_tools(req)
    tc = req.get("tool_choice")
    schema = json_mode_schema(req.get("response_format"))
    tools: list[dict[str, Any]] = []
    if fns and tc != "none":
        tools = [{"toolSpec": {"name": f.get("name", ""), "description": f.get("description") or f.get("name", ""),
                               "inputSchema": {"json": f.get("parameters") or {"type": "object", "properties": {}}}}}
                 for f in fns]
    if schema is not None:  # LiteLLM's JSON mode on Converse: one forced tool whose input is the answer
        tools.append({"toolSpec": {"name": JSON_TOOL, "description": JSON_TOOL, "inputSchema": {"json": schema}}})
    if tools:
        cfg: dict[str, Any] = {"tools": tools}
        if schema is not None and not isinstance(amrf.get("thinking"), dict):  # (not while thinking: refused)
            cfg["toolChoice"] = {"tool": {"name": JSON_TOOL}}
        elif tc == "auto":
            cfg["toolChoice"] = {"auto": {}}
        elif tc == "required":
            cfg["toolChoice"] = {"any": {}}
        elif isinstance(tc, dict) and (tc.get("function") or {}).get("name"):
            cfg["toolChoice"] = {"tool": {"name": tc["function"]["name"]}}
        out["toolConfig"] = cfg
    gc = req.get("guardrailConfig")
    if isinstance(gc, dict):
        out["guardrailConfig"] = gc
    return out


def convert_usage(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not u:
        return None
    inp = int(u.get("inputTokens") or 0)
    cr = int(u.get("cacheReadInputTokens") or 0)
    cw = int(u.get("cacheWriteInputTokens") or 0)
    return cv.usage(inp + cr + cw, int(u.get("outputTokens") or 0), cached=cr,
                    cache_creation_input_tokens=cw, cache_read_input_tokens=cr)


def from_converse(body: bytes, model: str, created: int, json_answer: bool = False) -> bytes:
    """Converse response body -> OpenAI chat.completion body (with ``json_answer``, a call of ``JSON_TOOL`` is the
    message's content, as LiteLLM answers JSON mode)."""
    obj = orjson.loads(body)
    msg = (obj.get("output") or {}).get("message") or {}
    texts: list[str] = []
    thoughts: list[str] = []
    calls = []
    for b in msg.get("content") or ():
        if "text" in b:
            texts.append(b["text"])
        elif "toolUse" in b and json_answer and (b["toolUse"] or {}).get("name") == JSON_TOOL:
            texts.append(orjson.dumps(b["toolUse"].get("input") or {}).decode())
        elif "toolUse" in b:
            tu = b["toolUse"]
            calls.append(cv.tool_call(tu.get("toolUseId") or cv.new_call_id(), tu.get("name", ""),
                                      orjson.dumps(tu.get("input") or {}).decode()))
        elif "reasoningContent" in b:
            thoughts.append(((b["reasoningContent"] or {}).get("reasoningText") or {}).get("text", ""))
    finish = FINISH.get(obj.get("stopReason") or "end_turn", "stop")
    if json_answer and finish == "tool_calls" and not calls:
        finish = "stop"
    return cv.chat_response("chatcmpl-" + os.urandom(12).hex(), model, created,
                            "".join(texts) if texts or not calls else None, calls, finish,
                            convert_usage(obj.get("usage")), "".join(thoughts) or None)


def _exception(headers: dict[str, Any], payload: bytes) -> errors.GatewayError:
    etype = str(headers.get(":exception-type") or headers.get(":error-code") or "internalServerException")
    try:
        msg = orjson.loads(payload).get("message") or ""
    except (orjson.JSONDecodeError, AttributeError):
        msg = payload[:300].decode("utf-8", "replace")
    msg = msg or str(headers.get(":error-message") or etype)
    return classify(EXCEPTION_STATUS.get(etype, 500), msg, etype, None, None, "BedrockException")


class ConverseStream(cv.ChunkStream):
    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._dec = EventStreamDecoder()
        self._blocks: dict[int, int] = {}  # Converse block index -> OpenAI tool index (-1: the JSON answer)
        self._pending_finish: str | None = None
        self._json = json_mode(call)

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        frames = self._dec.feed(data)
        if not frames:
            return b""
        self.seen = True
        return b"".join([self._frame(h, p) for h, p in frames])

    def close(self) -> bytes:
        out = b""
        if not self.done and self._pending_finish is not None:
            out = self.finish(self._pending_finish)
        return out + self.end()

    def _frame(self, headers: dict[str, Any], payload: bytes) -> bytes:
        if self.done:
            return b""
        mtype = headers.get(":message-type", "event")
        if mtype != "event":
            raise _exception(headers, payload)
        et = headers.get(":event-type")
        ev = orjson.loads(payload) if payload else {}
        if et == "contentBlockDelta":
            d = ev.get("delta") or {}
            if "text" in d:
                return self.text(d["text"]) if d["text"] else b""
            w, first = self.writer()
            if "toolUse" in d:
                idx = self._blocks.get(ev.get("contentBlockIndex", 0))
                frag = (d["toolUse"] or {}).get("input") or ""
                if idx is None or not frag:
                    return first
                if idx < 0:  # JSON mode: the forced tool's input is the answer's text
                    return first + self.text(frag)
                self._chars += len(frag)
                return first + w.tool_args(idx, frag)
            if "reasoningContent" in d:
                text = (d["reasoningContent"] or {}).get("text")
                return first + w.reasoning(text) if text else first
            return first
        if et == "messageStart":
            return self.start(None, self.model) if self.w is None else b""
        if et == "contentBlockStart":
            tu = (ev.get("start") or {}).get("toolUse")
            if not tu:
                return b""
            if self._json and tu.get("name") == JSON_TOOL:
                self._blocks[ev.get("contentBlockIndex", 0)] = -1
                return b""
            self.tool_index += 1
            self._blocks[ev.get("contentBlockIndex", 0)] = self.tool_index
            self.emitted = True
            w, first = self.writer()
            return first + w.tool_start(self.tool_index, tu.get("toolUseId") or cv.new_call_id(), tu.get("name", ""))
        if et == "messageStop":
            # the finish chunk waits for metadata (usage), which follows messageStop
            self._pending_finish = FINISH.get(ev.get("stopReason") or "end_turn", "stop")
            if self._pending_finish == "tool_calls" and self._json and self.tool_index < 0:  # only the JSON answer
                self._pending_finish = "stop"
            return b""
        if et == "metadata":
            u = convert_usage(ev.get("usage"))
            if u is not None:
                self.set_usage(u)
            out = self.finish(self._pending_finish or "stop")
            return out + self.end()
        return b""


# --------------------------------------------------------------------------------------- embeddings

#: texts per InvokeModel call: Cohere Embed takes up to 96, Titan Text Embeddings one
COHERE_BATCH = 96
_TITAN = ("amazon.titan-embed-text-", "amazon.titan-embed-g1-text-")


def embed_family(model_id: str) -> str | None:
    """``titan`` / ``titan_v1`` / ``cohere`` for the embedding models relaygate translates, else None."""
    base = model_id.split("/")[-1]
    if base.startswith(_TITAN):
        return "titan" if base.startswith("amazon.titan-embed-text-v2") else "titan_v1"
    if base.startswith("cohere.embed-"):
        return "cohere"
    return None


def to_invoke_embed(family: str, texts: list[str], req: dict[str, Any], model: str) -> dict[str, Any]:
    """InvokeModel body for ``texts`` (exactly one for Titan)."""
    dims = cv.dimensions(req)
    if family == "cohere":
        it = req.get("input_type")
        body: dict[str, Any] = {"texts": texts, "input_type": it if isinstance(it, str) and it else "search_document"}
        if isinstance(req.get("truncate"), str):
            body["truncate"] = req["truncate"]
        if dims is not None:
            body["output_dimension"] = dims
        return body
    body = {"inputText": texts[0]}
    if family == "titan_v1":
        if dims is not None:
            raise errors.BadRequest(f"bedrock model `{model}` does not support `dimensions`", param="dimensions")
        return body
    if dims is not None:
        body["dimensions"] = dims
    if isinstance(req.get("normalize"), bool):
        body["normalize"] = req["normalize"]
    return body


def from_invoke_embed(family: str, bodies: list[bytes], texts: list[str], req: dict[str, Any], model: str) -> bytes:
    """InvokeModel answers, in request order -> one OpenAI embeddings body. Titan reports
    ``inputTextTokenCount``; Cohere's body has no count, so usage is estimated."""
    vectors: list[list[float]] = []
    counted: int | None = 0
    for body in bodies:
        obj = orjson.loads(body)
        if family == "cohere":
            embs = obj.get("embeddings")
            if isinstance(embs, dict):
                embs = embs.get("float")
            vectors.extend(embs or [])
            counted = None
        else:
            vec = obj.get("embedding")
            if vec is None:
                vec = (obj.get("embeddingsByType") or {}).get("float")
            vectors.append(vec or [])
            n = obj.get("inputTextTokenCount")
            if counted is not None and isinstance(n, int):
                counted += n
            else:
                counted = None
    return cv.embedding_response(vectors, model, texts, counted, req.get("encoding_format"))


class BedrockProvider(Provider):
    name: ClassVar[str] = "bedrock"
    default_api_base: ClassVar[str | None] = None
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat", "embeddings"})
    error_prefix: ClassVar[str] = "BedrockException"
    hooks: ClassVar[bool] = True
    stream_types: ClassVar[frozenset[bytes]] = frozenset({b"application/vnd.amazon.eventstream"})

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        x = dep.extra
        self.region = x.get("aws_region_name") or "us-east-1"
        model = dep.upstream_model
        for route in ("converse/", "converse_like/"):
            model = model.removeprefix(route)
        self.model_id = model
        base = self.api_base or x.get("aws_bedrock_runtime_endpoint") or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        base = base.rstrip("/")
        self.api_base = base
        quoted = url_segment(model, slash=True, safe="")
        self.url_unary = f"{base}/model/{quoted}/converse"
        self.url_stream = f"{base}/model/{quoted}/converse-stream"
        self.url_invoke = f"{base}/model/{quoted}/invoke"
        self.embed_family = embed_family(model)
        self.headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        bearer = dep.api_key
        self.signer: SigV4 | None = None
        self._temporary: SigV4 | None = None
        if bearer:
            self.headers.append(("Authorization", f"Bearer {bearer}"))
        else:
            # a role, web identity or container credentials: temporary keys the shell renews (aws_identity)
            self.token_source = credentials_for(x, self.region, signer_of=SigV4)
            ak = x.get("aws_access_key_id")
            sk = x.get("aws_secret_access_key")
            tok = x.get("aws_session_token")
            if ak and sk and self.token_source is None:
                self.signer = SigV4(str(ak), str(sk), str(tok) if tok else None, self.region)
        self.defaults = {k: v for k, v in x.items() if k in REQUEST_DEFAULTS or k in ("top_k", cache_points.FIELD)}
        self.embed_defaults = {k: v for k, v in x.items() if k in ("dimensions", "input_type", "truncate", "normalize")}

    def fetch_urls(self, call: Call) -> list[str]:
        return cv.image_urls(call.body) if call.endpoint == "chat" else []

    def build_request(self, call: Call) -> UpstreamRequest:
        return cv.single(self.build_requests(call, cv.NO_MEDIA), self.name)

    def build_requests(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> list[UpstreamRequest]:
        if call.endpoint == "embeddings":
            req, texts = self._embedding_input(call)
            family = self.embed_family
            assert family is not None
            n = COHERE_BATCH if family == "cohere" else 1
            return [self.signed("POST", self.url_invoke, orjson.dumps(to_invoke_embed(family, texts[i:i + n], req,
                                                                                       self.model_id)), call.now)
                    for i in range(0, len(texts), n)]
        req = cv.load_request(call, self.defaults)
        body = orjson.dumps(to_converse(req, self.model_id, media))
        url = self.url_stream if call.stream else self.url_unary
        return [self.signed("POST", url, body, call.now)]

    def _embedding_input(self, call: Call) -> tuple[dict[str, Any], list[str]]:
        if self.embed_family is None:
            raise errors.BadRequest(f"bedrock embeddings support Titan Text (amazon.titan-embed-text-*) and Cohere "
                                    f"Embed (cohere.embed-*) models, not `{self.model_id}`", param="model")
        req = cv.load_request(call)
        if self.embed_defaults:
            cv.apply_defaults(req, self.embed_defaults)
        return req, cv.embedding_inputs(req, self.name)

    def merge_responses(self, call: Call, bodies: list[bytes]) -> bytes:
        if call.endpoint == "embeddings":
            req, texts = self._embedding_input(call)
            assert self.embed_family is not None
            return from_invoke_embed(self.embed_family, bodies, texts, req, self.model_id)
        return from_converse(bodies[0], self.model_id, int(call.now))

    def signed(self, method: str, url: str, body: bytes, now: float) -> UpstreamRequest:
        headers = self.headers
        src = self.token_source
        if src is not None and src.access_key:
            signer = self._temporary
            if signer is None or signer.access_key != src.access_key:  # renewed: sign with the new keys
                signer = self._temporary = SigV4(src.access_key, src.secret_key, src.session_token or None,
                                                 self.region)
            headers = signer.sign(method, url, headers, body, now)
        elif self.signer is not None:
            headers = self.signer.sign(method, url, headers, body, now)
        elif not any(h[0] == "Authorization" for h in headers):
            raise errors.AuthError("litellm.AuthenticationError: BedrockException - no AWS credentials configured "
                                   "(aws_access_key_id/aws_secret_access_key or an api_key)")
        return UpstreamRequest(method, url, headers, body)

    def translate_response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint == "embeddings":
            return self.merge_responses(call, [body])
        return from_converse(body, self.model_id, int(call.now), json_mode(call))

    def stream_translator(self, call: Call) -> StreamTranslator:
        return ConverseStream(call)

    def map_error(self, status: int, body: bytes, retry_after: float | None) -> errors.GatewayError:
        low = body[:2000].lower()
        if status == 400 and (b"too many input tokens" in low or b"input is too long" in low
                              or b"too long for requested model" in low):
            exc = super().map_error(status, body, retry_after)
            return errors.ContextWindowExceeded(
                exc.message.replace("litellm.BadRequestError", "litellm.ContextWindowExceededError"), code="400")
        return super().map_error(status, body, retry_after)
