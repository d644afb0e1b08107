"""MIME types guessed from a URL's file extension (media parts without a declared type, fetched media
whose bytes and headers name none)."""

from __future__ import annotations

_EXT_MIME = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf", "mp3": "audio/mp3",
    "wav": "audio/wav", "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/m4a", "mp4": "video/mp4",
    "webm": "video/webm", "mov": "video/mov", "txt": "text/plain",
}


def guess_mime(url: str, default: str = "image/jpeg") -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _EXT_MIME.get(ext, default)
