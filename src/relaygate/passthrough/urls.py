"""Where a pass-through request goes and what it carries: the upstream URL and the headers both ways (sans-IO).

What it owns:

- :func:`subpath`: the part of the client's path under a route's prefix, read from the **raw** path (as the
  client wrote it, before the server decoded it), split into segments, each decoded once, checked and
  percent-encoded again canonically. Refused with a 400, so nothing can climb out of the target's base
  path or point the gateway elsewhere: ``.`` and ``..`` segments (written plainly or encoded), encoded
  slashes and backslashes (``%2F``, ``%5C``), empty segments (``//``, the start of an absolute URL), a
  first segment that reads as a URL scheme (``http:``), control characters, and a prefix written in
  another spelling than the route's (``/%61nthropic``).
- :func:`query`: the client's query string as it came, with the named parameters removed (a Gemini
  ``key``: the client's gateway key, never forwarded) and any byte a URL cannot hold percent-encoded.
- :func:`join`: the upstream URL from a base, a checked subpath and a query (the base's own query first).
- :func:`request_headers`: what the upstream receives of the client's headers. Never: credentials
  (``Authorization``, ``x-api-key``, ``api-key``, ``x-goog-api-key``, ``x-litellm-api-key``: the gateway's
  key), hop-by-hop headers (and any the client's ``Connection`` names), ``Host``, ``Content-Length``,
  ``Expect``, ``Accept-Encoding`` (answers come uncompressed so their usage can be read), cookies and the
  gateway's own ``x-litellm-*`` headers. With ``forward_all`` everything else goes; without it, only the
  body's ``Content-Type`` / ``Content-Encoding``. ``x-pass-<name>`` is always sent as ``<name>`` (LiteLLM's
  convention) unless ``<name>`` is one of those never sent or an ``x-amz-*`` signing header. The route's
  own headers (credentials, ``anthropic-version`` ...) win over any the client sent with the same name.
- :func:`response_headers`: what the client receives of the upstream's: without hop-by-hop and framing
  headers (the gateway frames the body itself), ``Server``, ``Date`` and ``Set-Cookie``.

Invariant: every value returned is free of CR, LF and NUL (a header value holding one is dropped).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from relaygate.core import errors

__all__ = ["join", "query", "request_headers", "response_headers", "subpath"]

_PCHAR = "!$&'()*+,;=:@-._~"
"""Characters a path segment keeps as they are (RFC 3986 ``pchar`` less the percent sign)."""
_QUERY_OK = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%")
_SCHEME = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*:")
_ENCODED_SEP = re.compile(rb"%(2[fF]|5[cC])")

_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                  b"upgrade", b"proxy-authenticate", b"proxy-authorization"})
CREDENTIALS = frozenset({b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key", b"x-litellm-api-key"})
"""The headers a client's gateway key arrives in: never sent upstream."""
_NEVER = _HOP | CREDENTIALS | {b"host", b"content-length", b"expect", b"accept-encoding", b"cookie"}
_BODY = frozenset({b"content-type", b"content-encoding"})
_PASS = b"x-pass-"
_RESPONSE_DROP = _HOP | {b"content-length", b"server", b"date", b"set-cookie"}


def _bad(message: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid pass-through path: {message}", param="path")


def subpath(raw_path: bytes, prefix: str) -> str:
    """The checked, canonically encoded path under ``prefix`` (``""`` or ``/seg/seg[/]``); 400 when hostile."""
    p = prefix.encode()
    if raw_path != p and not raw_path.startswith(p + b"/"):
        raise _bad(f"write the route as {prefix} (no encoded characters in it)")
    rest = raw_path[len(p):]
    if not rest:
        return ""
    parts = rest.split(b"/")[1:]
    trailing = len(parts) > 1 and parts[-1] == b""
    if trailing:
        parts.pop()
    out: list[str] = []
    for i, seg in enumerate(parts):
        if not seg:
            if len(parts) == 1:  # the prefix with a slash after it: /anthropic/
                return "/"
            raise _bad("empty segment (//)")
        if _ENCODED_SEP.search(seg) is not None:
            raise _bad("encoded slash or backslash")
        raw = unquote_to_bytes(seg)
        if raw in (b".", b".."):
            raise _bad("dot segment")
        if b"\\" in raw or b"/" in raw or any(c < 0x20 or c == 0x7F for c in raw):
            raise _bad("backslash or control character")
        if i == 0 and _SCHEME.match(raw) is not None and b"://" in rest:
            raise _bad("absolute URL")
        out.append(quote(raw, safe=_PCHAR))
    return "/" + "/".join(out) + ("/" if trailing else "")


def query(raw: bytes, drop: frozenset[str] = frozenset()) -> tuple[str, dict[str, str]]:
    """The query to forward (bytes a URL cannot hold percent-encoded; parameters named in ``drop`` removed)
    and the dropped parameters' values, decoded."""
    if not raw:
        return "", {}
    dropped: dict[str, str] = {}
    kept: list[bytes] = []
    for part in raw.split(b"&"):
        if not part:
            continue
        if drop:
            name, _, value = part.partition(b"=")
            key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
            if key in drop:
                dropped[key] = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8", "replace")
                continue
        kept.append(part)
    text = b"&".join(kept)
    if not all(c in _QUERY_OK for c in text):
        text = b"".join(bytes((c,)) if c in _QUERY_OK else b"%%%02X" % c for c in text)
    return text.decode("ascii"), dropped


def join(base: str, sub: str, q: str = "") -> str:
    """``base`` (an absolute URL, its query kept first) with the checked ``sub`` path and the query ``q``."""
    head, sep, base_q = base.partition("?")
    url = head.rstrip("/") + sub if sub else head
    qs = "&".join(x for x in (base_q if sep else "", q) if x)
    return f"{url}?{qs}" if qs else url


def _named_by_connection(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    names: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":
            names.update(n.strip().lower() for n in v.split(b",") if n.strip())
    return frozenset(names)


def _clean(v: bytes) -> bool:
    return b"\r" not in v and b"\n" not in v and b"\0" not in v


def request_headers(client: list[tuple[bytes, bytes]], forward_all: bool,
                    own: list[tuple[str, str]], key_header: bytes | None = None) -> list[tuple[str, str]]:
    """The upstream request's headers: ``own`` (the route's: credentials, fixed headers) and what may be
    forwarded of ``client``'s (see the module docstring); ``key_header``: the config's own gateway-key
    header (``litellm_key_header_name``), a credential too."""
    mine = {k.lower().encode("latin-1") for k, _ in own}
    if key_header is not None:
        mine.add(key_header)
    connection = _named_by_connection(client)
    out: list[tuple[str, str]] = list(own)
    for k, v in client:
        if not _clean(v):
            continue
        if k.startswith(_PASS):
            name = k[len(_PASS):]
            if (name and name not in _NEVER and name not in mine and not name.startswith(b"x-amz-")
                    and not name.startswith(b"x-litellm-")):
                out.append((name.decode("latin-1"), v.decode("latin-1")))
            continue
        if k in mine or k in _NEVER or k in connection or k.startswith(b"x-litellm-"):
            continue
        if forward_all or k in _BODY:
            out.append((k.decode("latin-1"), v.decode("latin-1")))
    return out


def response_headers(upstream: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream answer's headers the client receives (see the module docstring)."""
    connection = _named_by_connection(upstream)
    return [(k, v) for k, v in upstream if k not in _RESPONSE_DROP and k not in connection and _clean(v)]
