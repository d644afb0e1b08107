"""An upstream's response headers as LiteLLM hands them to its clients: ``llm_provider-<name>``.

LiteLLM's proxy returns every header the provider answered with, renamed ``llm_provider-<name>``
(``litellm_core_utils/llm_response_utils/get_headers.py``: a name that already holds ``llm_provider`` is
kept as it is), on unary answers and on streams alike, and has no setting to turn it off. Clients read
``llm_provider-x-ratelimit-remaining-requests``, ``llm_provider-openai-processing-ms`` or
``llm_provider-x-request-id`` from it. :func:`provider_headers` does the same with three differences,
all of them refusals:

- framing and connection headers never go out, even renamed (``content-length``, ``transfer-encoding``,
  ``content-encoding``, ``connection``, ``keep-alive``, ``te``, ``trailer``, ``upgrade``,
  ``proxy-connection``, ``proxy-authenticate``): they describe the upstream's hop, not the answer the
  client gets;
- ``set-cookie`` (and ``set-cookie2``) never go out: an upstream's session or load-balancer cookie is the
  gateway's, not the client's;
- a name that is not an HTTP token, and a value holding CR, LF or NUL, are dropped, so no upstream can
  inject a header line or split the response. The HTTP/1 parser (``core.http1``) already refuses such
  heads, and aiohttp's too; this is the second wall, for every transport.

The upstream's rate-limit state also goes out under OpenAI's own names (:func:`ratelimit_headers`): every
``x-ratelimit-*`` header as it came, and Anthropic's ``anthropic-ratelimit-{requests,tokens}-{limit,remaining}``
as ``x-ratelimit-{limit,remaining}-{requests,tokens}`` (LiteLLM's ``process_anthropic_headers``), so a
client backing off on ``x-ratelimit-remaining-requests`` works whichever provider answered. With
Prometheus on, the two ``remaining`` values also become LiteLLM's ``litellm_remaining_requests_metric`` /
``litellm_remaining_tokens_metric`` (:func:`remaining_of`).

Cost: the names an upstream sends are few and the same on every answer, so each name's outcome (its
prefixed spelling, or a refusal) is decided once per process and kept in a dict (bounded: names past
:data:`MAX_NAMES` are decided each time and not kept, so an upstream sending random names cannot grow
it). Per answer that is one dict look-up, one value check and one tuple per header, on the list of
``(name, value)`` pairs the parser already produced; nothing is copied or decoded.
"""

from __future__ import annotations

__all__ = ["MAX_NAMES", "PREFIX", "provider_headers", "provider_name", "ratelimit_headers", "remaining_of"]

PREFIX = b"llm_provider-"
#: How many distinct upstream header names have their outcome kept.
MAX_NAMES = 4096

_DROPPED = frozenset((
    b"content-length", b"transfer-encoding", b"content-encoding", b"connection", b"keep-alive", b"te",
    b"trailer", b"upgrade", b"proxy-connection", b"proxy-authenticate", b"set-cookie", b"set-cookie2",
))
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_names: dict[bytes, bytes] = {}


def provider_name(name: bytes) -> bytes:
    """The name ``name`` goes out under (``llm_provider-<name>``, lower-case), or ``b""``: not forwarded."""
    low = name.lower()
    if not low or low in _DROPPED or low.translate(None, _TOKEN):
        out = b""
    elif b"llm_provider" in low:
        out = low
    else:
        out = PREFIX + low
    if len(_names) < MAX_NAMES:
        _names[name] = out
    return out


def provider_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (an upstream's response headers) as ``llm_provider-*`` headers for the client."""
    get = _names.get
    out = []
    for k, v in headers:
        p = get(k)
        if p is None:
            p = provider_name(k)
        if p and 10 not in v and 13 not in v and 0 not in v:  # LF, CR, NUL (an int test: ~10x a bytes one)
            out.append((p, v))
    return out


_ANTHROPIC_RATELIMIT = {
    b"anthropic-ratelimit-requests-limit": b"x-ratelimit-limit-requests",
    b"anthropic-ratelimit-requests-remaining": b"x-ratelimit-remaining-requests",
    b"anthropic-ratelimit-tokens-limit": b"x-ratelimit-limit-tokens",
    b"anthropic-ratelimit-tokens-remaining": b"x-ratelimit-remaining-tokens",
}
"""Anthropic's rate-limit headers under OpenAI's names, as LiteLLM's ``process_anthropic_headers`` maps them."""
_RATELIMIT_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")


def ratelimit_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An upstream's rate-limit headers under OpenAI's names (``x-ratelimit-*``), for the client: its own
    ``x-ratelimit-*`` as they are, Anthropic's limits and remaining counts renamed; an upstream's own
    ``x-ratelimit-*`` header wins over a renamed one. The upstream parsers refuse a value holding CR, LF or
    NUL before this sees it (``core.http1``, aiohttp's)."""
    found = [kv for kv in headers if kv[0].startswith(_RATELIMIT_PREFIXES)]  # one pass, as few as they come
    for kv in found:
        if kv[0][0] != 120:  # not b"x": an Anthropic one
            break
    else:  # none, or OpenAI's alone: as they came
        return found
    out = [kv for kv in found if kv[0][0] == 120]
    own = {k for k, _ in out}
    for k, v in found:
        alias = _ANTHROPIC_RATELIMIT.get(k)
        if alias is not None and alias not in own:
            out.append((alias, v))
    return out


def _reading(value: bytes) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def remaining_of(ratelimit: list[tuple[bytes, bytes]]) -> tuple[float | None, float | None] | None:
    """``(remaining requests, remaining tokens)`` from :func:`ratelimit_headers`' output, each ``None`` when
    absent or not a number (LiteLLM's ``_gauge_reading_or_none``); ``None`` when neither is there."""
    requests = tokens = None
    for k, v in ratelimit:
        if k == b"x-ratelimit-remaining-requests":
            requests = _reading(v)
        elif k == b"x-ratelimit-remaining-tokens":
            tokens = _reading(v)
    return None if requests is None and tokens is None else (requests, tokens)
