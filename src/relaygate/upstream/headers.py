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

Cost: the names an upstream sends are few and the same on every answer, so each name's outcome (its
prefixed spelling, or a refusal) is decided once per process and kept in a dict (bounded: names past
:data:`MAX_NAMES` are decided each time and not kept, so an upstream sending random names cannot grow
it). Per answer that is one dict look-up, one value check and one tuple per header, on the list of
``(name, value)`` pairs the parser already produced; nothing is copied or decoded.
"""

from __future__ import annotations

__all__ = ["MAX_NAMES", "PREFIX", "provider_headers", "provider_name"]

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
