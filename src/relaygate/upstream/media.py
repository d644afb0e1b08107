"""Image URLs for upstreams that take only inline data: which URLs, how to fetch them, what came back.

Gemini on AI Studio, Bedrock and Ollama cannot fetch an ``http(s)`` image URL themselves; LiteLLM downloads
such images and sends them inline, and so does relaygate. The adapter names the URLs
(``Provider.fetch_urls``, built on ``providers._convert.image_urls``), the IO shell
(``upstream.calls.fetch_media``) downloads them concurrently through the gateway's own transport, and
the adapter receives ``{url: (mime type, bytes)}`` in ``Provider.build_requests``. This module holds
every rule of that exchange and no IO:

- which URLs may be fetched at all (:func:`parse_url`): a client's URL is parsed strictly and normalized
  before anything is resolved or sent, and anything unparseable, with a scheme other than ``http(s)``,
  no host, a bad port, control characters, whitespace or a backslash, or credentials (``user:pass@``) is
  a 400 naming the field (:data:`URL_FIELD`), never a 500; the transport only ever sees the normalized
  URL, so no two URL parsers can disagree about where it points. Redirect targets obey the same rule;
- which request to send (:func:`fetch_request`: ``GET``, an ``Accept`` for images, :data:`TIMEOUT` for
  each phase), what to do with the response head (:func:`check_head`: follow up to
  :data:`MAX_REDIRECTS` redirects, refuse an error status or a ``Content-Length`` above
  :data:`MAX_BYTES`), and the body bound the shell enforces while reading;
- the MIME type of what came back (:func:`sniff`): the magic bytes when they name a known format, else
  the ``Content-Type`` header, else the URL's extension;
- a small per-worker LRU cache keyed by URL (:data:`CACHE`, bounded in entries and bytes), so a
  conversation that re-sends the same image each turn downloads it once;
- errors: any failure is a :class:`MediaFetchError` (400) naming the URL without its query string,
  fragment or user info (signed URLs carry secrets there), so the client sees which image failed.

It lives in ``upstream`` (the layer that fetches) so that ``upstream`` never imports ``providers``.
Cost: ``image_urls`` looks for ``"image_url"`` in the raw body before decoding anything, so a request
without images costs one ``bytes.find``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections import OrderedDict
from typing import NamedTuple

from relaygate.core.errors import BadRequest
from relaygate.core.mime import guess_mime
from relaygate.upstream.base import Timeouts, UpstreamRequest

#: largest image accepted, per URL (Content-Length and the bytes actually read)
MAX_BYTES = 20 * 1024 * 1024
#: seconds for each phase of one download (connect, first byte, gaps, whole)
TIMEOUT = 15.0
MAX_REDIRECTS = 3
CACHE_ENTRIES = 32
CACHE_BYTES = 64 * 1024 * 1024
#: longest URL accepted for a fetch
MAX_URL_CHARS = 8192
#: where a chat request carries the URLs fetched here, named in errors
URL_FIELD = "messages[].content[].image_url.url"

_HEADERS = [("Accept", "image/*,application/pdf;q=0.9,*/*;q=0.5"), ("User-Agent", "relaygate")]
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary",
                      "application/unknown"})


class MediaFetchError(BadRequest):
    """A media URL could not be downloaded: the client's request is at fault (400), no retry helps."""


def public_url(url: str) -> str:
    """``url`` without user info, query string and fragment: safe to show and to log."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if u.port:
            host = f"{host}:{u.port}"
    except ValueError:
        return "<invalid url>"
    if _UNSAFE.search(url) is not None:
        return "<invalid url>"
    return urllib.parse.urlunsplit((u.scheme, host, u.path, "", ""))


def fetch_error(url: str, reason: str) -> MediaFetchError:
    return MediaFetchError(f"Unable to fetch image from {public_url(url)}: {reason}", param="messages",
                           code="400")


class MediaURL(NamedTuple):
    """A URL that may be fetched, as :func:`parse_url` normalized it."""

    url: str
    """``scheme://host[:port]/path[?query]``: no user info, no fragment, non-ASCII percent-encoded."""
    scheme: str
    host: str
    """Lower-case ASCII (IDNA) name, or an IP address (IPv6 without brackets)."""
    port: int


class InvalidURL(ValueError):
    """A URL :func:`parse_url` refuses; ``reason`` says why without repeating the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")
_PATH_SAFE = "!$&'()*+,/:;=?@[]~%"


def parse_url(url: str) -> MediaURL:
    """Parse a URL to fetch, strictly; raise :class:`InvalidURL` for anything not plainly
    ``http(s)://host[:port][/path][?query][#fragment]`` with a usable host and port."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidURL(f"longer than {MAX_URL_CHARS} characters")
    if _UNSAFE.search(url) is not None:
        raise InvalidURL("contains whitespace, control characters or a backslash")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise InvalidURL("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL("only http and https URLs can be fetched")
    netloc = parts.netloc
    if "@" in netloc:
        raise InvalidURL("credentials (user:password@) are not accepted in URLs")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0 or "%" in netloc[:end]:
            raise InvalidURL("not a valid IPv6 address")
        try:
            host = ipaddress.IPv6Address(netloc[1:end]).compressed
        except ValueError:
            raise InvalidURL("not a valid IPv6 address") from None
        authority, rest = f"[{host}]", netloc[end + 1 :]
    else:
        name, colon, port_text = netloc.partition(":")
        host = _host_name(name)
        authority, rest = host, colon + port_text
    port = 443 if scheme == "https" else 80
    if rest not in ("", ":"):
        digits = rest[1:]
        if rest[0] != ":" or not (digits.isascii() and digits.isdigit() and len(digits) <= 5):
            raise InvalidURL("not a valid port")
        port = int(digits)
        if not 0 < port < 65536:
            raise InvalidURL("port out of range")
        authority = f"{authority}:{port}"
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE) or "/"
    query = urllib.parse.quote(parts.query, safe=_PATH_SAFE)
    return MediaURL(f"{scheme}://{authority}{path}{'?' + query if query else ''}", scheme, host, port)


def _host_name(name: str) -> str:
    if not name:
        raise InvalidURL("no host")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL("not a valid host name") from None
    name = name.lower()
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if _HOST_CHARS.fullmatch(name) is None or len(name) > 253 or any(not 0 < len(x) < 64 for x in labels):
        raise InvalidURL("not a valid host name")
    return name


def invalid_url(reason: str) -> MediaFetchError:
    """The client's image URL cannot be fetched as written: a 400 naming the field."""
    return MediaFetchError(f"Invalid image URL in {URL_FIELD}: {reason}", param="messages", code="400")


# ---------------------------------------------------------------------------------------- the fetch


def fetch_request(target: MediaURL, connect_to: str | None = None) -> UpstreamRequest:
    """The download of ``target``, pinned to the address ``connect_to`` (the one the SSRF guard checked)."""
    return UpstreamRequest("GET", target.url, list(_HEADERS), connect_to=connect_to)


def timeouts() -> Timeouts:
    return Timeouts(connect=TIMEOUT, first_byte=TIMEOUT, idle=TIMEOUT, total=TIMEOUT)


def check_head(url: str, current: str, status: int, content_length: bytes | None,
               location: bytes | None) -> MediaURL | None:
    """Judge a response head: the next URL for a redirect (parsed by :func:`parse_url`), None when the
    body should be read; raises :class:`MediaFetchError` for an error status, a bad redirect target or a
    declared size above :data:`MAX_BYTES`."""
    if status in _REDIRECTS and location:
        try:
            nxt = urllib.parse.urljoin(current, location.decode("latin-1").strip())
        except ValueError:
            raise fetch_error(url, "redirected to an invalid URL") from None
        if not nxt.lower().startswith(("https://", "http://")):
            raise fetch_error(url, "redirected to a non-http URL")
        try:
            return parse_url(nxt)
        except InvalidURL as exc:
            raise fetch_error(url, f"redirected to an invalid URL ({exc.reason})") from None
    if status >= 300:
        raise fetch_error(url, f"the server answered HTTP {status}")
    if content_length is not None:
        try:
            size = int(content_length)
        except ValueError:
            size = 0
        if size > MAX_BYTES:
            raise too_large(url)
    return None


def too_large(url: str) -> MediaFetchError:
    return fetch_error(url, f"larger than {MAX_BYTES // (1024 * 1024)} MB")


def sniff(url: str, content_type: bytes | None, data: bytes) -> str:
    """The MIME type of a downloaded file: magic bytes, else the ``Content-Type`` header, else the URL."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic"
    header = (content_type or b"").split(b";", 1)[0].strip().lower().decode("latin-1")
    if header not in _GENERIC:
        return header
    return guess_mime(url, "application/octet-stream")


def accept(url: str, content_type: bytes | None, data: bytes) -> tuple[str, bytes]:
    """The downloaded body as (mime type, bytes); an empty body is an error."""
    if not data:
        raise fetch_error(url, "the response body is empty")
    return sniff(url, content_type, data), data


# ------------------------------------------------------------------------------------------- cache


class MediaCache:
    """LRU of downloaded files keyed by URL, bounded in entries and total bytes (one per worker)."""

    __slots__ = ("_items", "bytes", "max_bytes", "max_entries")

    def __init__(self, max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, url: str) -> tuple[str, bytes] | None:
        hit = self._items.get(url)
        if hit is not None:
            self._items.move_to_end(url)
        return hit

    def put(self, url: str, item: tuple[str, bytes]) -> None:
        size = len(item[1])
        if size > self.max_bytes or self.max_entries <= 0:
            return
        old = self._items.pop(url, None)
        if old is not None:
            self.bytes -= len(old[1])
        self._items[url] = item
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= len(dropped[1])

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


CACHE = MediaCache()
