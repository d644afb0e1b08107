"""Vertex AI (``vertex_ai/``): Gemini models (and Anthropic's Claude) on Google Cloud, OAuth-authenticated.

Params as LiteLLM names them: ``vertex_project``, ``vertex_location`` (default ``us-central1``;
``global`` uses the location-less host) and ``vertex_credentials`` (a service-account or authorized-user
JSON, given as a path, a JSON string or a mapping; else ``GOOGLE_APPLICATION_CREDENTIALS``). Gemini models
are called at ``.../publishers/google/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``)
with the Gemini translation; ``claude-*`` models at ``.../publishers/anthropic/models/{model}:rawPredict``
(``:streamRawPredict``) with the Anthropic translation and ``anthropic_version: vertex-2023-10-16``.

Embeddings use the text-embeddings ``:predict`` call (``instances[].content`` with ``task_type``/``title``,
``parameters.outputDimensionality``/``autoTruncate``), 250 texts per call; ``gemini-embedding-*`` takes one
instance per request on Vertex, so each text is its own call (``build_requests``; the shell sends them
concurrently and ``merge_responses`` joins them in order). Usage is the sum of
``statistics.token_count``. Gemini on Vertex fetches public image URLs itself; Claude on Vertex gets them
inline (downloaded by the shell).

Auth stays sans-IO: :class:`TokenSource` holds the access token and answers, for a given ``now``,
whether it needs refreshing (five minutes before expiry) and which token request to send: a
``urn:ietf:params:oauth:grant-type:jwt-bearer`` grant whose assertion is an RS256-signed JWT (service
accounts; signing needs the optional ``cryptography`` package, extra ``relaygate[vertex]``) or a
``refresh_token`` grant (authorized users). The IO shell sends that request before ``build_request``
and hands the answer to :meth:`TokenSource.accept`. Requests in flight during a refresh keep using the
still-valid old token.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import orjson

from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.anthropic import AnthropicStream, from_anthropic, json_mode, to_anthropic
from relaygate.providers.base import Call, StreamTranslator, url_segment
from relaygate.providers.gemini import GeminiProvider, embed_options
from relaygate.upstream.base import UpstreamRequest
from relaygate.upstream.renewal import Renewable

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_URI = "https://oauth2.googleapis.com/token"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
#: texts per ``:predict`` call: Vertex takes up to 250 instances, but ``gemini-embedding-*`` only one
PREDICT_BATCH = 250
#: a Vertex location goes into the host name
_LOCATION = re.compile(r"[a-z0-9-]{1,64}")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def load_credentials(value: Any) -> dict[str, Any]:
    """``vertex_credentials`` as a dict: a mapping or a JSON string (a path in the config was read by
    ``config.env`` when the config was loaded)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip().startswith("{"):
        raise errors.GatewayError("vertex_credentials must be a path, a JSON string or a mapping", status=500)
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise errors.GatewayError("vertex_credentials is not valid JSON", status=500) from None
    if not isinstance(obj, dict):
        raise errors.GatewayError("vertex_credentials JSON must be an object", status=500)
    return obj


class TokenSource(Renewable):
    """An OAuth2 access token for one credential, refreshed by the IO shell. No IO here."""

    __slots__ = ("_key", "creds", "kind", "scope", "token")

    def __init__(self, creds: dict[str, Any], scope: str = SCOPE) -> None:
        self.creds = creds
        self._key: Any = None
        self.kind = creds.get("type", "service_account")
        if self.kind not in ("service_account", "authorized_user"):
            raise errors.GatewayError(f"unsupported Google credential type `{self.kind}`", status=500)
        need = ("client_email", "private_key") if self.kind == "service_account" else (
            "refresh_token", "client_id", "client_secret")
        missing = [f for f in need if not isinstance(creds.get(f), str) or not creds.get(f)]
        if missing:
            raise errors.GatewayError(f"vertex_credentials ({self.kind}) lack {', '.join(missing)}", status=500)
        if self.kind == "service_account" and importlib.util.find_spec("cryptography") is not None:
            self._signer()  # a key that cannot sign is a start-up error, not a 500 on every request
        self.scope = scope
        self.token: str | None = None
        super().__init__()

    def held(self) -> bool:
        return self.token is not None

    def auth_header(self) -> tuple[str, str]:
        if self.token is None:
            raise errors.AuthError("litellm.AuthenticationError: VertexAIException - no access token yet")
        return ("Authorization", f"Bearer {self.token}")

    def _signer(self) -> Any:
        if self._key is None:
            try:
                from cryptography.hazmat.primitives import serialization
            except ImportError:
                raise errors.GatewayError(
                    "Vertex AI service-account auth needs the `cryptography` package "
                    "(pip install 'relaygate[vertex]')", status=500) from None
            try:
                self._key = serialization.load_pem_private_key(self.creds["private_key"].encode(), password=None)
            except (ValueError, TypeError) as exc:
                raise errors.GatewayError(f"vertex_credentials: private_key is not a usable PEM key ({exc})",
                                          status=500) from None
        return self._key

    def assertion(self, now: float) -> bytes:
        """The RS256-signed JWT for the jwt-bearer grant."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
        if self.creds.get("private_key_id"):
            header["kid"] = self.creds["private_key_id"]
        iat = int(now)
        claims = {"iss": self.creds["client_email"], "scope": self.scope,
                  "aud": self.creds.get("token_uri") or TOKEN_URI, "iat": iat, "exp": iat + 3600}
        signing_input = _b64url(orjson.dumps(header)) + b"." + _b64url(orjson.dumps(claims))
        sig = self._signer().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input + b"." + _b64url(sig)

    def refresh_request(self, now: float) -> UpstreamRequest:
        uri = self.creds.get("token_uri") or TOKEN_URI
        if self.kind == "service_account":
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": self.assertion(now).decode()}
        else:
            form = {"grant_type": "refresh_token", "refresh_token": self.creds.get("refresh_token", ""),
                    "client_id": self.creds.get("client_id", ""), "client_secret": self.creds.get("client_secret", "")}
        body = urllib.parse.urlencode(form).encode()
        return UpstreamRequest("POST", uri, [("Content-Type", "application/x-www-form-urlencoded")], body)

    def accept(self, status: int, body: bytes, now: float) -> None:
        """Take the token endpoint's answer; a failure raises (401 for rejected credentials)."""
        try:
            obj = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            obj = {}
        if status >= 400 or not isinstance(obj, dict) or not obj.get("access_token"):
            detail = obj.get("error_description") or obj.get("error") if isinstance(obj, dict) else None
            raise errors.AuthError(
                f"litellm.AuthenticationError: VertexAIException - token request failed ({status}): "
                f"{detail or 'no access_token in response'}", status=401 if status in (400, 401, 403) else 502)
        self.token = str(obj["access_token"])
        self.expires_at = now + float(obj.get("expires_in") or 3600)


# --------------------------------------------------------------------------------------- embeddings


def to_predict(texts: list[str], req: dict[str, Any]) -> dict[str, Any]:
    """Texts -> a text-embeddings ``:predict`` body (``instances[].content``, ``parameters``)."""
    dims, task, title = embed_options(req)
    extra: dict[str, Any] = {}
    if task is not None:
        extra["task_type"] = task
    if title is not None:
        extra["title"] = title
    body: dict[str, Any] = {"instances": [{"content": t, **extra} for t in texts]}
    params: dict[str, Any] = {}
    if dims is not None:
        params["outputDimensionality"] = dims
    if isinstance(req.get("auto_truncate"), bool):
        params["autoTruncate"] = req["auto_truncate"]
    if params:
        body["parameters"] = params
    return body


def from_predict(bodies: list[bytes], req: dict[str, Any], texts: list[str], model: str) -> bytes:
    """``:predict`` answers (``predictions[].embeddings.values`` / ``.statistics.token_count``), in order
    -> one OpenAI embeddings body."""
    vectors: list[list[float]] = []
    counted = 0
    missing = False
    for body in bodies:
        for pred in orjson.loads(body).get("predictions") or ():
            emb = pred.get("embeddings") or {}
            vectors.append(emb.get("values") or [])
            n = (emb.get("statistics") or {}).get("token_count")
            if isinstance(n, (int, float)):
                counted += int(n)
            else:
                missing = True
    return cv.embedding_response(vectors, model, texts, None if missing else counted, req.get("encoding_format"))


def _inline_anthropic_urls(obj: Any, media: Mapping[str, tuple[str, bytes]]) -> None:
    """Replace ``{"type": "url"}`` image sources whose URL was downloaded by base64 sources, in place."""
    if isinstance(obj, dict):
        src = obj.get("source")
        if obj.get("type") == "image" and isinstance(src, dict) and src.get("type") == "url":
            got = cv.fetched(str(src.get("url")), media)
            if got is not None:
                obj["source"] = {"type": "base64", "media_type": got[0], "data": got[1]}
            return
        for v in obj.values():
            _inline_anthropic_urls(v, media)
    elif isinstance(obj, list):
        for v in obj:
            _inline_anthropic_urls(v, media)


class VertexProvider(GeminiProvider):
    name: ClassVar[str] = "vertex_ai"
    default_api_base: ClassVar[str | None] = None
    error_prefix: ClassVar[str] = "VertexAIException"

    def __init__(self, dep: Deployment) -> None:
        x = dep.extra
        self.project = x.get("vertex_project")
        self.location = x.get("vertex_location") or "us-central1"
        creds_val = x.get("vertex_credentials")
        creds = load_credentials(creds_val) if creds_val else None
        if creds is not None and not self.project:
            self.project = creds.get("project_id") or creds.get("quota_project_id")
        if not self.project:
            raise errors.GatewayError(f"vertex_ai deployment {dep.model_name}: vertex_project is required",
                                      status=500)
        if not isinstance(self.location, str) or _LOCATION.fullmatch(self.location) is None:
            raise errors.GatewayError(f"vertex_ai deployment {dep.model_name}: invalid vertex_location "
                                      f"{self.location!r}", status=500)
        host = ("https://aiplatform.googleapis.com" if self.location == "global"
                else f"https://{self.location}-aiplatform.googleapis.com")
        if dep.api_base is None:
            dep = msgspec.structs.replace(dep, api_base=host)
        super().__init__(dep)
        self.headers = [h for h in self.headers if h[0] != "x-goog-api-key"]
        if dep.api_key:
            self.headers.append(("x-goog-api-key", dep.api_key))
        self.token_source = TokenSource(creds) if creds is not None else None
        root = f"{self.api_base}/v1/projects/{url_segment(str(self.project))}/locations/{self.location}/publishers"
        self.claude = self.model.startswith("claude")
        seg = url_segment(self.model)
        self.url_embed = f"{root}/google/models/{seg}:predict"
        self.predict_batch = 1 if self.model.startswith("gemini-embedding") else PREDICT_BATCH
        if self.claude:
            self.url_unary = f"{root}/anthropic/models/{seg}:rawPredict"
            self.url_stream = f"{root}/anthropic/models/{seg}:streamRawPredict"
        else:
            self.url_unary = f"{root}/google/models/{seg}:generateContent"
            self.url_stream = f"{root}/google/models/{seg}:streamGenerateContent?alt=sse"

    def request_headers(self) -> list[tuple[str, str]]:
        ts = self.token_source
        if ts is None:
            if not self.dep.api_key:
                raise errors.AuthError("litellm.AuthenticationError: VertexAIException - no vertex_credentials "
                                       "(or GOOGLE_APPLICATION_CREDENTIALS) configured")
            return self.headers
        return [*self.headers, ts.auth_header()]

    def fetch_urls(self, call: Call) -> list[str]:
        # Gemini on Vertex fetches public http(s) URLs itself; Claude on Vertex gets them inline
        if self.claude and call.endpoint == "chat":
            return cv.image_urls(call.body)
        return []

    def chat_request(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> UpstreamRequest:
        if not self.claude:
            return super().chat_request(call, media)
        req = cv.load_request(call, self.defaults)
        body = to_anthropic(req, self.model)
        body.pop("model", None)
        body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        if media:
            _inline_anthropic_urls(body.get("messages"), media)
        return UpstreamRequest("POST", self.url_stream if call.stream else self.url_unary, self.request_headers(),
                               orjson.dumps(body))

    def embedding_requests(self, req: dict[str, Any]) -> list[UpstreamRequest]:
        """One ``:predict`` call per :attr:`predict_batch` texts (``gemini-embedding-*``: one text each)."""
        texts = cv.embedding_inputs(req, self.name)
        n = self.predict_batch
        headers = self.request_headers()
        return [UpstreamRequest("POST", self.url_embed, headers, orjson.dumps(to_predict(texts[i:i + n], req)))
                for i in range(0, len(texts), n)]

    def embedding_response(self, req: dict[str, Any], bodies: list[bytes]) -> bytes:
        return from_predict(bodies, req, cv.embedding_inputs(req, self.name), self.model)

    def translate_response(self, call: Call, body: bytes) -> bytes:
        if self.claude and call.endpoint == "chat":
            return from_anthropic(body, self.model, int(call.now), json_mode(call))
        return super().translate_response(call, body)

    def stream_translator(self, call: Call) -> StreamTranslator:
        if self.claude:
            return AnthropicStream(call)
        return super().stream_translator(call)
