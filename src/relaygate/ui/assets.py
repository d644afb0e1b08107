"""The admin UI's static files: ``/ui``, ``/ui/`` and ``/ui/{path}`` served from the package's ``static/``.

What it owns: mapping a request path to a file of ``relaygate/ui/static`` (shipped built in the wheel:
nothing is built at install time or fetched at run time), and the answer's headers.

Rules:

- **No path escape.** A path is split on ``/``; any empty, ``.`` or ``..`` segment, a segment starting with
  a dot, a backslash, a NUL or another control character, or a ``%`` (the server already decoded the path
  once; what is left encoded is an attempt at a second decoding) is a 404. The resolved file must still be
  inside the static directory (symlinks included).
- **Client routing.** A path whose last segment has no extension (``/ui/keys``) that is not a file is the
  single-page app's route: ``index.html``. A missing path with an extension (``/ui/js/nope.js``) is a 404.
- **Caching.** ``index.html`` is ``Cache-Control: no-cache`` (the browser revalidates each load, so a new
  release is seen at once); other files ``max-age=3600``; both carry a strong ``ETag`` (SHA-256 of the
  bytes) and ``If-None-Match`` gets a 304. Files are read once per worker and kept (the directory is small;
  at most :data:`MAX_CACHED_BYTES` are kept, larger sets are read on each request beyond that).
- ``HEAD`` answers the headers only. The caller adds the security headers (``ui.server``).
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATIC", "Asset", "AssetStore", "etag"]

STATIC = Path(__file__).resolve().parent / "static"
MAX_CACHED_BYTES = 32 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024

_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml",
    ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff",
    ".txt": "text/plain; charset=utf-8", ".webmanifest": "application/manifest+json",
}

_FALLBACK_INDEX = (b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>relaygate admin</title>'
                   b'</head><body><main><h1>relaygate admin UI</h1><p>The UI\'s files are not installed in '
                   b'this package (relaygate/ui/static/index.html is missing).</p></main></body></html>')


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: bytes
    cache_control: bytes


class AssetStore:
    """Files of one directory, resolved safely and cached (one per worker)."""

    def __init__(self, root: Path = STATIC) -> None:
        self.root = root.resolve()
        self._cache: dict[str, Asset | None] = {}
        self._bytes = 0

    def index(self) -> Asset:
        found = self._load("index.html")
        if found is not None:
            return found
        return Asset(_FALLBACK_INDEX, _TYPES[".html"].encode(), etag(_FALLBACK_INDEX), b"no-cache")

    def find(self, rel: str) -> Asset | None:
        """The asset for the request path below ``/ui/`` (``""``: the index); None: answer 404."""
        if rel in ("", "index.html"):
            return self.index()
        segments = rel.split("/")
        if not all(_safe(s) for s in segments):
            return None
        found = self._load(rel)
        if found is not None:
            return found
        return None if "." in segments[-1] else self.index()

    def _load(self, rel: str) -> Asset | None:
        if rel in self._cache:
            return self._cache[rel]
        path = (self.root / rel).resolve()
        asset: Asset | None = None
        if path.is_relative_to(self.root) and path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
            body = path.read_bytes()
            ctype = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            cache = b"no-cache" if rel == "index.html" else b"public, max-age=3600"
            asset = Asset(body, ctype.encode(), etag(body), cache)
        size = len(asset.body) if asset is not None else 0
        if self._bytes + size <= MAX_CACHED_BYTES and len(self._cache) < 4096:
            self._cache[rel] = asset
            self._bytes += size
        return asset


def _safe(segment: str) -> bool:
    if not segment or segment.startswith(".") or "%" in segment or "\\" in segment:
        return False
    return all(ord(ch) >= 0x20 and ch != "\x7f" for ch in segment) and ":" not in segment


def etag(body: bytes) -> bytes:
    return b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
