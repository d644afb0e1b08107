"""The provider adapter interface: sans-IO translation between OpenAI's shape and a provider's.

A provider adapter is built once per deployment at startup. For each attempt the request path hands it a
:class:`Call` (the endpoint, the client's bytes, the decoded view, the upstream model name) and gets back
an :class:`relaygate.upstream.base.UpstreamRequest`; it then translates the upstream's response body, or
its stream bytes through a :class:`StreamTranslator`, into OpenAI-format bytes, and maps upstream error
bodies to :class:`relaygate.core.errors.GatewayError` subclasses with LiteLLM's classes so the router's
fallbacks trigger on them. Adapters never await and never touch sockets.

The only IO-like things an adapter touches: ``os.urandom`` for response ids where the upstream gives none
(entropy, not environment, file or clock state: it makes no result depend on the machine), and the
:attr:`Provider.transport` object it may name (the mock's in-process upstream), which only the shell calls.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Callable, ClassVar, TypeVar

import orjson

from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.core.views import AnyView
from relaygate.providers import params
from relaygate.upstream.base import Transport, UpstreamRequest

T = TypeVar("T")

ENDPOINT_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
#: the media routes' kinds and OpenAI's paths for them
MEDIA_PATHS = {"images": "/images/generations", "speech": "/audio/speech",
               "transcriptions": "/audio/transcriptions", "translations": "/audio/translations",
               "moderations": "/moderations", "rerank": "/rerank", "image_edits": "/images/edits"}
MEDIA_KINDS = frozenset(MEDIA_PATHS)


class Call:
    """One attempt's input to an adapter. ``now`` is the wall-clock time (Unix seconds) the shell read
    once for the request: adapters stamp ``created`` and sign requests with it and never read a clock."""

    __slots__ = ("endpoint", "body", "view", "stream", "model", "upstream_model", "include_usage", "now", "rules",
                 "usage_policy", "usage_injected")

    def __init__(self, endpoint: str, body: bytes, view: AnyView, model: str, upstream_model: str,
                 now: float, rules: params.Rules | None = None) -> None:
        self.now = now
        #: the parameter rules of this provider/model under the request's drop settings (chat only);
        #: None when nothing is checked (``providers.params``)
        self.rules = rules
        self.endpoint = endpoint
        self.body = body
        self.view = view
        self.stream = bool(view.stream)
        self.model = model
        self.upstream_model = upstream_model
        so = getattr(view, "stream_options", None)
        self.include_usage = bool(so is not None and so.include_usage)
        #: ``general_settings.always_include_stream_usage`` for a stream (None: LiteLLM's default, ask the upstream
        #: for usage and keep it from a client that did not; True: the client gets it too; False: never ask)
        self.usage_policy: bool | None = False
        #: the adapter added ``stream_options.include_usage`` to this attempt's body (the client did not)
        self.usage_injected = False


class StreamTranslator:
    """Turns upstream stream bytes into client SSE bytes (``data: {...}\\n\\n`` frames).

    ``feed`` returns the bytes to send now (``b""`` for none); ``close`` flushes at upstream EOF and
    must end with ``data: [DONE]\\n\\n`` exactly once. ``last_data`` holds the last JSON payload seen
    (usage is read from it) and ``content_tokens`` an estimate of completion tokens from content deltas.
    """

    done: bool = False
    last_data: bytes = b""

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError


class WrappedTranslator(StreamTranslator):
    """A translator that re-shapes what ``inner`` emits; usage and the token estimate are ``inner``'s."""

    def __init__(self, inner: StreamTranslator) -> None:
        self.inner = inner

    @property
    def last_data(self) -> bytes:  # type: ignore[override]
        return self.inner.last_data

    @property
    def content_tokens(self) -> int:
        return int(getattr(self.inner, "content_tokens", 0))


class Provider:
    """Base adapter. Subclasses set ``name`` and override what differs from OpenAI."""

    name: ClassVar[str] = "openai"
    default_api_base: ClassVar[str | None] = "https://api.openai.com/v1"
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat", "completions", "embeddings"})
    error_prefix: ClassVar[str] = "OpenAIException"
    #: media types (``content-type`` without parameters) a 200 stream answer may carry
    stream_types: ClassVar[frozenset[bytes]] = frozenset({b"text/event-stream"})
    #: an OAuth token holder (``providers.vertex.TokenSource``) that the IO shell refreshes before
    #: ``build_request`` when ``needs_refresh(now)``; None for adapters with static credentials
    token_source: Any = None
    #: the transport that answers this adapter's requests instead of the gateway's network transport
    #: (``upstream.local.LOCAL`` for the built-in mock); None for every network adapter
    transport: Transport | None = None

    # -- capabilities the shell dispatches on (never on the adapter's class) --------------------------

    #: media routes (``images``, ``speech``, ``transcriptions``, ``translations``, ``image_edits``,
    #: ``moderations``, ``rerank``) forwarded in OpenAI's shape: the client's body with only ``model``
    #: changed, sent to :meth:`media_url` with :meth:`media_headers`
    media_forward: ClassVar[frozenset[str]] = frozenset()
    #: media routes whose JSON body the adapter translates itself (:meth:`media_request`); checked first
    media_translated: ClassVar[frozenset[str]] = frozenset()
    #: the upstream speaks Anthropic's ``/v1/messages`` natively (:meth:`native_request`,
    #: :meth:`native_response`), so that route passes through instead of translating
    native_messages: ClassVar[bool] = False
    #: the upstream serves OpenAI's Responses API itself (``/responses``, with its stored state, background
    #: responses and built-in tools) at :meth:`responses_url`: the gateway's ``/v1/responses`` passes through
    #: instead of translating to chat completions. Only the real OpenAI and Azure OpenAI adapters set it
    #: (OpenAI-compatible servers rarely have the endpoint)
    native_responses: ClassVar[bool] = False

    def __init__(self, dep: Deployment) -> None:
        check_name(dep.model_name)
        check_name(dep.upstream_model)
        self.dep = dep
        base = dep.api_base or self.default_api_base
        self.api_base = base.rstrip("/") if base else None
        self._param_settings = params.deployment_settings(dep.extra, False)
        self._rules: dict[str, params.Rules] = {}

    # -- requests -----------------------------------------------------------------------------------

    def param_rules(self, upstream_model: str, control: dict[str, Any] | None) -> params.Rules:
        """The chat parameter rules for ``upstream_model`` (built once per name, at most
        :data:`_RULES_CACHED` names: a wildcard group's names are the clients'), with the request's own
        ``drop_params`` / ``additional_drop_params`` / ``allowed_openai_params`` when ``control`` has any."""
        try:
            rules = self._rules[upstream_model]
        except KeyError:
            model = str(self.dep.model_info.get("base_model") or upstream_model)
            rules = params.build(self.name, model, *self._param_settings)
            if len(self._rules) < _RULES_CACHED:
                self._rules[upstream_model] = rules
        if control is not None and not params.REQUEST_KEYS.isdisjoint(control):
            rules = rules.with_request(control)
        return rules

    def supports(self, endpoint: str) -> bool:
        return endpoint in self.endpoints

    def completions_native(self, upstream_model: str) -> bool:
        """Whether ``/completions`` goes to this deployment as it is; when not, the gateway bridges it to
        ``/chat/completions`` (as LiteLLM does for chat models)."""
        return "completions" in self.endpoints

    def build_request(self, call: Call) -> UpstreamRequest:
        raise NotImplementedError

    def health_request(self) -> UpstreamRequest | None:
        """A cheap request that proves the deployment answers (``GET /health`` uses it)."""
        return None

    def media_url(self, path: str) -> str:
        """The upstream URL of a forwarded media route (``path`` is OpenAI's, e.g. ``/images/generations``)."""
        return f"{self.api_base}{path}"

    def media_headers(self) -> list[tuple[str, str]]:
        """Headers of a forwarded media request, without ``Content-Type`` (the client's is kept)."""
        return []

    def responses_url(self, path: str = "") -> str:
        """The upstream URL of the Responses API (adapters with :attr:`native_responses`): ``/responses``
        followed by ``path`` (``/{id}``, ``/{id}/cancel``: an id already made safe for a URL)."""
        raise NotImplementedError(f"{self.name} does not serve the Responses API")

    def media_request(self, kind: str, req: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        """The upstream request of a media route in :attr:`media_translated` (``req`` without ``model``)."""
        raise NotImplementedError

    def native_request(self, body: bytes, headers: list[tuple[str, str]] | None = None,
                       count_tokens: bool = False) -> UpstreamRequest:
        """An Anthropic Messages body sent as it is (adapters with :attr:`native_messages`)."""
        raise NotImplementedError

    def native_response(self, body: bytes) -> bytes:
        """A native Messages answer checked for the client (adapters with :attr:`native_messages`)."""
        raise NotImplementedError

    # -- hooks for adapters that need more than one request/response (``hooks = True``) -----------------
    #
    # The shell checks the ``hooks`` flag once per attempt; for adapters that leave it False (every
    # OpenAI-compatible one) nothing below runs and ``build_request``/``translate_response`` are used.
    # With it set the shell (1) downloads the URLs ``fetch_urls`` names and (2) sends every request of
    # ``build_requests`` concurrently, then joins the answers with ``merge_responses``.

    #: the adapter implements ``fetch_urls`` / ``build_requests`` / ``merge_responses``
    hooks: ClassVar[bool] = False

    def fetch_urls(self, call: Call) -> list[str]:
        """``http(s)`` URLs in the request this upstream cannot take by reference (only inline data): the
        shell downloads them (bounded, cached) and hands them to :meth:`build_requests`. Must be cheap
        when the request holds no URL (look for ``image_url`` in ``call.body`` before decoding)."""
        return []

    def build_requests(self, call: Call, media: Mapping[str, tuple[str, bytes]]) -> list[UpstreamRequest]:
        """The upstream requests for one attempt, given the downloaded ``media`` (``{url: (mime type,
        bytes)}``). Usually one; several when the upstream takes one input per call (embeddings on
        some Bedrock/Vertex models). A stream must be exactly one request."""
        return [self.build_request(call)]

    def merge_responses(self, call: Call, bodies: list[bytes]) -> bytes:
        """The OpenAI body from the success bodies of :meth:`build_requests`' requests, in order."""
        return self.translate_response(call, bodies[0])

    # -- responses ----------------------------------------------------------------------------------

    def translate_response(self, call: Call, body: bytes) -> bytes:
        """Upstream success body -> OpenAI body (identity for OpenAI-compatible upstreams, whose 2xx body
        must be a JSON object: anything else, an HTML page from a proxy, is a 502)."""
        return json_object(body, self.name)

    def stream_translator(self, call: Call) -> StreamTranslator:
        raise NotImplementedError

    def map_error(self, status: int, body: bytes, retry_after: float | None) -> errors.GatewayError:
        """Upstream error response -> a GatewayError carrying the upstream's status and message."""
        message, etype, param, code = _error_fields(body)
        return classify(status, message, etype, param, code, self.error_prefix, retry_after)


_RULES_CACHED = 256


def _error_fields(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        obj: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail") or ""
            code = err.get("code")
            return (
                str(msg) if msg else body[:500].decode("utf-8", "replace"),
                err.get("type") if isinstance(err.get("type"), str) else None,
                err.get("param") if isinstance(err.get("param"), str) else None,
                str(code) if code is not None else None,
            )
        if isinstance(err, str):
            return err, None, None, None
    return body[:500].decode("utf-8", "replace").strip() or "upstream error", None, None, None


_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens",
                    "prompt is too long", "input is too long", "exceeds the context",
                    "exceeds the maximum number of tokens", "context length")
_POLICY_MARKERS = ("content_policy", "content policy", "content_filter", "responsibleaipolicyviolation",
                   "safety")


def classify(
    status: int,
    message: str,
    etype: str | None,
    param: str | None,
    code: str | None,
    prefix: str,
    retry_after: float | None = None,
) -> errors.GatewayError:
    """Map an upstream failure to LiteLLM's exception classes (by status and by message markers)."""
    low = f"{message} {etype or ''} {code or ''}".lower()
    if status == 400 or status == 413:
        if any(m in low for m in _CONTEXT_MARKERS):
            return errors.ContextWindowExceeded(
                f"litellm.ContextWindowExceededError: {prefix} - {message}", status=400, param=param,
                code="400")
        if any(m in low for m in _POLICY_MARKERS):
            return errors.ContentPolicyViolation(
                f"litellm.ContentPolicyViolationError: {prefix} - {message}", status=400, param=param,
                code="400")
    name = {
        400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError", 404: "NotFoundError",
        408: "Timeout", 422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
        502: "APIConnectionError", 503: "ServiceUnavailableError", 504: "Timeout",
    }.get(status, "APIError")
    headers: list[tuple[bytes, bytes]] = []
    if retry_after is not None:
        headers.append((b"retry-after", str(int(retry_after + 0.999)).encode()))
    return errors.UpstreamError(
        f"litellm.{name}: {prefix} - {message}",
        status=status,
        retry_after=retry_after,
        type=etype or ("rate_limit_error" if status == 429 else None),
        param=param,
        code=str(status),
        headers=headers,
    )


# -- names that reach the upstream ------------------------------------------------------------------
#
# On a wildcard group (``gemini/*``, ``azure/*``) the client's model name becomes the deployment's upstream
# model, and adapters put that into the upstream URL. A model id is a short token: letters, digits and
# ``-._~:@+*`` (``gemini-1.5-pro-002``, ``claude-3-5-sonnet@20240620``, ``llama3:8b``, ``ft:gpt-4o:org::id``,
# ``*`` in wildcard templates), plus ``/`` where an adapter takes paths (Bedrock ARNs). Anything else
# (``?``, ``#``, ``%``, ``..``, whitespace, control characters) is a 400 naming ``model``, raised when the
# adapter is built: in ``Router.resolve`` for a wildcard name, at startup for a configured one.

_SEGMENT = re.compile(r"[A-Za-z0-9._~:@+*-]{1,256}")
_PATH = re.compile(r"[A-Za-z0-9._~:@+*/-]{1,512}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: str) -> None:
    """A model or group name carries no control characters (it reaches headers, logs and bodies)."""
    if _CONTROL.search(name) is not None:
        raise errors.BadRequest(f"Invalid model name {name!r}: control characters are not allowed",
                                param="model")


def url_segment(value: str, *, slash: bool = False, safe: str | None = None) -> str:
    """``value`` (a model id) checked against the strict character set and percent-encoded for a URL path.

    Without ``slash`` it must be one path segment. With ``slash`` it may hold ``/`` but no empty, ``.`` or
    ``..`` segment; pass ``safe=""`` to encode ``/`` and ``:`` too (Bedrock's model ids, as SigV4 signs
    them). Characters outside the set, ``?``, ``#``, ``%`` and traversal are a :class:`BadRequest`.
    """
    pattern = _PATH if slash else _SEGMENT
    if pattern.fullmatch(value) is None or any(s in ("", ".", "..") for s in value.split("/")):
        shown = value if len(value) <= 100 else value[:100] + "..."
        raise errors.BadRequest(
            f"Invalid model name {shown!r}: a model id is letters, digits and -._~:@+*"
            f"{'/' if slash else ''}, without . or .. segments", param="model")
    return urllib.parse.quote(value, safe=(":@+*/" if slash else ":@+*") if safe is None else safe)


# -- upstream answers that are not what the API promises -------------------------------------------------
#
# A 2xx answer that is not what the API promises (an HTML page from a captive proxy or a load balancer, a
# truncated body, a stream that is not a stream) is an upstream protocol error: a 502 that the router can
# retry or fall back from, never a 200 the client's SDK chokes on. The checks are O(1) on the hot path.


def json_object(body: bytes, who: str) -> bytes:
    """``body`` if it looks like one JSON object (``{`` ... ``}``, surrounding whitespace allowed), else a
    502. Passthrough bodies are not parsed (that costs ~60 us on a 100 KiB answer); this looks at both ends,
    which also catches a body cut short."""
    if body and body[0] == 123 and body[-1] == 125:  # b"{" ... b"}"
        return body
    s = body.strip()
    if s[:1] == b"{" and s[-1:] == b"}":
        return body
    raise errors.UpstreamProtocolError(
        f"{who} answered with a success status but a body that is not a JSON object: {_snippet(body)}")


def stream_head_error(provider: Provider, content_type: bytes | None) -> errors.GatewayError | None:
    """The error for a 2xx stream answer whose ``content-type`` is not the adapter's stream type (the
    shell closes the response and raises it before any frame, so the router can still retry); None when
    it is, or when the header is absent (the stream translators then judge the bytes)."""
    if content_type is None:
        return None
    mtype = content_type.split(b";", 1)[0].strip().lower()
    if mtype in provider.stream_types:
        return None
    want = " or ".join(sorted(t.decode() for t in provider.stream_types))
    return errors.UpstreamProtocolError(f"{provider.name} answered a stream request with content-type "
                                        f"{content_type[:100].decode('latin-1')!r}, not {want}")


def empty_stream_error(who: str) -> errors.GatewayError:
    """A stream that ended without a single event (no data frame, no end marker) is not an empty answer."""
    return errors.UpstreamProtocolError(f"{who} ended the stream without sending any event")


def _snippet(body: bytes) -> str:
    text = body[:120].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > 120 else "")) if body else "an empty body"


# -- errors -----------------------------------------------------------------------------------------
#
# Client bodies reach adapters after only the view decode, so message parts, tools and params can be any
# JSON: the adapters' readers check each shape they read (``_check.check_chat``) and raise ``BadRequest``
# (400, naming the field) for content this provider cannot take. Any other exception from
# ``build_request`` / ``build_requests`` is a bug in the adapter: the shell calls them directly, so it
# propagates unchanged, the shell answers 500 and logs the traceback, and tests and fuzzers see it (h11's
# rule: an error not raised on purpose is a bug, never the client's fault). Upstream answers are another
# matter: one the adapter cannot read is the upstream's fault, a 502 (``translate_upstream``).

#: what reading an upstream answer of an unexpected shape raises inside an adapter
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)


def translate_upstream(provider: Provider, fn: Callable[..., T], *args: Any) -> T:
    """Run an adapter's response translation; an upstream answer it cannot read is a 502, not a crash."""
    try:
        return fn(*args)
    except SHAPE_ERRORS as exc:
        raise errors.UpstreamProtocolError(
            f"{provider.name} sent a response of an unexpected shape ({type(exc).__name__}: {exc})") from None
