"""The usage details a price needs beyond prompt and completion tokens, read from an answer's bytes.

``core.tokens.extract_usage`` (compiled) gives prompt and completion tokens, which is all most answers
have. Cached-read, cache-write (and the part of it kept 1 hour), reasoning and audio tokens are read here,
and only when the answer's ``usage`` object mentions them (substring tests on the bytes after the last
``"usage"``), so an answer without them costs one ``rfind`` and three ``find``.

Both usage shapes the gateway relays are understood: OpenAI's (``prompt_tokens`` includes the cached
tokens, ``prompt_tokens_details.cached_tokens``; the Anthropic / Bedrock adapters add
``cache_creation_input_tokens``; LiteLLM's ``prompt_tokens_details.cache_creation_token_details``) and
Anthropic's (``input_tokens`` excludes ``cache_read_input_tokens`` and ``cache_creation_input_tokens``;
``cache_creation.ephemeral_1h_input_tokens``). :class:`Details` is always in OpenAI's terms.

The service tier an answer is billed at, as LiteLLM's ``_resolve_billable_service_tier``: the answer's
``service_tier`` (the body's, else its usage's: Anthropic reports it there) when it names a priced tier
(``flex``, ``balanced``, ``priority``, ``ultrafast``; ``fast`` is billed as ``priority``) or the standard
prices (``default``, ``standard``); otherwise (none, ``auto``, anything else) the request's
(:func:`requested_tier`). It is read in the same decode as the counts, and only for a model with
service-tier prices (``tiered``), for which an answer without any count mention costs one more ``find``:
for every other model an answer costs what it did, as does one without 1-hour cache writes (their count is
read only when the answer has cache writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from relaygate.cost.prices import PriceTable

__all__ = ["DEFAULT_TIER", "TIER_LABELS", "Details", "details", "requested_tier", "tier_label"]

DEFAULT_TIER = "default"
""":attr:`Details.service_tier` of an answer that says it was served at the standard prices."""
_PRICED = {"flex": "flex", "balanced": "balanced", "priority": "priority", "fast": "priority",
           "ultrafast": "ultrafast"}
_SERVED = {**_PRICED, "default": DEFAULT_TIER, "standard": DEFAULT_TIER}


class _CacheCreation(msgspec.Struct, gc=False):
    ephemeral_1h_input_tokens: int | None = None


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    cache_creation_token_details: _CacheCreation | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    input_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    service_tier: str | None = None


class _Body(msgspec.Struct):
    usage: _Usage | None = None
    service_tier: str | None = None


class _Request(msgspec.Struct):
    service_tier: object = None


_body = msgspec.json.Decoder(_Body, strict=False)  # lax as ``core.tokens``' usage decoder
_request = msgspec.json.Decoder(_Request)


class Details(msgspec.Struct, frozen=True, gc=False):
    """Token counts priced apart, in OpenAI's terms (``prompt_extra``: tokens to add to an Anthropic-shaped
    ``input_tokens`` to get OpenAI's ``prompt_tokens``; ``audio_in`` / ``audio_out``: the audio part of
    ``prompt_tokens`` / ``completion_tokens``, ``*_tokens_details.audio_tokens``; ``cache_write_1h``: the part
    of ``cache_write`` kept 1 hour), and the service tier the answer names: a cost-key suffix
    (``priority`` ...), :data:`DEFAULT_TIER`, or ``""`` when it names none (the request's then decides)."""

    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    prompt_extra: int = 0
    audio_in: int = 0
    audio_out: int = 0
    cache_write_1h: int = 0
    service_tier: str = ""

    def price(self, table: PriceTable, prompt: int, completion: int) -> int:
        """pico-USD of an answer with these counts and ``prompt`` / ``completion`` tokens (``prompt_extra``
        added) at ``table``'s prices and the answer's service tier (what ``Frontend.price`` computes inline on
        the request path; for the callers off it: batch costs, ``/spend/calculate``)."""
        return table.tokens(prompt + self.prompt_extra, completion, self.cache_read, self.cache_write, self.reasoning,
                            self.audio_in, self.audio_out, self.cache_write_1h, self.service_tier)


NONE = Details()


def _served(tier: str) -> str:
    found = _SERVED.get(tier)
    return found if found is not None else _SERVED.get(tier.lower(), "")


def details(data: bytes, tiered: object = False) -> Details:
    """The cache and reasoning counts of the last ``usage`` object in ``data`` (zeros when it has none) and,
    when ``tiered`` is true (the model has service-tier prices, ``PriceTable.service``), the service tier
    the answer names (``""`` otherwise: it changes no price)."""
    i = data.rfind(b'"usage"')
    if i < 0 or (data.find(b"cache", i) < 0 and data.find(b"reasoning_tokens", i) < 0
                 and data.find(b"audio_tokens", i) < 0):
        if not tiered or data.find(b'"service_tier"') < 0:
            return NONE
    try:
        b = _body.decode(data)
    except msgspec.DecodeError:
        return NONE
    u = b.usage
    tier = ""
    if tiered:
        st = b.service_tier
        if st is None and u is not None:
            st = u.service_tier
        if st is not None:
            tier = _served(st)
    if u is None:
        return Details(service_tier=tier) if tier else NONE
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    cached = pd.cached_tokens if pd is not None and pd.cached_tokens is not None else u.cache_read_input_tokens
    cr = cached or 0
    cw = u.cache_creation_input_tokens or 0
    rs = (cd.reasoning_tokens or 0) if cd is not None else 0
    ai = (pd.audio_tokens or 0) if pd is not None else 0
    ao = (cd.audio_tokens or 0) if cd is not None else 0
    w1 = 0
    if cw:
        cc = u.cache_creation
        if cc is None and pd is not None:
            cc = pd.cache_creation_token_details
        if cc is not None:
            w1 = cc.ephemeral_1h_input_tokens or 0
    anthropic = u.prompt_tokens is None and u.input_tokens is not None
    return Details(cr, cw, rs, cr + cw if anthropic else 0, ai, ao, w1, tier)


def requested_tier(body: bytes, view: object = None) -> str:
    """The service tier a request asks for, as a cost-key suffix (``priority`` ...), ``""`` for the standard
    prices (none, ``auto``, ``default``, anything else): LiteLLM's fallback when the answer names no priced
    tier. Looked for only then, and only for a model with service-tier prices: in the request's parsed view
    when it has the field (the chat, completion and embedding views: no work at all), else in the body."""
    st = getattr(view, "service_tier", _ABSENT)
    if st is _ABSENT:
        if b'"service_tier"' not in body:
            return ""
        try:
            st = _request.decode(body).service_tier
        except msgspec.DecodeError:
            return ""
    return _PRICED.get(st.lower(), "") if isinstance(st, str) else ""


_ABSENT = object()


TIER_LABELS = frozenset({"auto", "flex", "balanced", "priority", "fast", "ultrafast", "batch", "default", "scale",
                         "standard", "standard_only"})
"""The service tiers a Prometheus ``service_tier`` label may name (LiteLLM's ``KNOWN_REQUEST_SERVICE_TIERS``:
its ``ServiceTier`` values and the tiers the providers accept); any other value is ``other``."""
_TIER_KEY = b'"service_tier"'


def tier_label(data: bytes, body: bytes, view: object = None) -> str | None:
    """LiteLLM's ``service_tier`` label of an exchange (``get_service_tier_from_standard_logging_payload``):
    the tier the answer (``data``: a unary body, or a stream's last payload) says it was served at (the
    body's ``service_tier``, else its usage's), else the tier the request (``body`` / ``view``) asked for when
    it names a known one; None when neither does. Read only with Prometheus on. A served tier outside
    :data:`TIER_LABELS` is ``other`` (LiteLLM labels it as sent: a provider's new tier, unbounded)."""
    i = data.rfind(_TIER_KEY) if data else -1
    if i >= 0:  # the value after the key's colon: a string (null or anything else: not served at a named tier)
        rest = data[i + len(_TIER_KEY):i + len(_TIER_KEY) + 48].lstrip(b" \t\r\n")
        if rest[:1] == b":":
            rest = rest[1:].lstrip(b" \t\r\n")
            k = rest.find(b'"', 1)
            if rest[:1] == b'"' and k > 1:
                served = rest[1:k].decode("latin-1")
                return served if served in TIER_LABELS else "other"
    st = getattr(view, "service_tier", _ABSENT)
    if st is _ABSENT:
        if _TIER_KEY not in body:
            return None
        try:
            st = _request.decode(body).service_tier
        except msgspec.DecodeError:
            return None
    return st if isinstance(st, str) and st in TIER_LABELS else None
