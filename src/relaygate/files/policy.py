"""LiteLLM's upload rules for ``POST /v1/files``: which files the gateway takes before any byte goes upstream.

What it owns: :func:`check`, sans IO, called once the upload's file part is found (its name and where its bytes
start are known, nothing is sent yet):

- a file name with a ``..`` path component or a NUL is refused (400), always, as LiteLLM refuses it;
- ``general_settings.allowed_file_extensions`` (``[".jsonl", ".pdf"]``): a file whose name has none of them, or no
  extension, is refused (400); ``blocked_file_extensions``: one whose name has one of them (400); compared
  without case, with or without the leading dot in the setting;
- ``general_settings.max_file_size_mb``: a file (but a batch input file, which LiteLLM exempts too) larger than
  that is a 413 — at once when the upload declares its length, else as soon as the streamed body passes the
  bound (the transfer upstream is then cut, and the provider never completes the file).

The errors are LiteLLM's words (``... The file was not forwarded to the provider.``), ``param`` ``file``.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from relaygate.core import errors

if TYPE_CHECKING:
    from relaygate.config.model import GeneralSettings

__all__ = ["MB", "check"]

MB = 1024 * 1024


def _extension(name: str) -> str:
    return posixpath.splitext(name.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()


def _listed(values: list[str]) -> frozenset[str]:
    return frozenset(v.lower() if v.startswith(".") else "." + v.lower() for v in values if v)


def check(general: GeneralSettings, filename: str | None, purpose: str, declared: int | None, content_start: int,
          boundary: bytes) -> int | None:
    """Refuse the upload (raises) or return the most bytes its whole body may have under ``max_file_size_mb``
    (None: no such bound). ``declared``: the body's ``Content-Length``; ``content_start``: where the file's
    bytes begin in it."""
    name = filename or ""
    if "\x00" in name or ".." in name.replace("\\", "/").split("/"):
        raise errors.BadRequest(f"Filename {name[:100]!r} is not allowed: directory traversal sequences are not "
                                "permitted in uploaded file names. The file was not forwarded to the provider.",
                                param="file")
    ext = _extension(name)
    allowed = general.allowed_file_extensions
    if allowed is not None and (not ext or ext not in _listed(allowed)):
        what = f"File extension '{ext}'" if ext else "A file without an extension"
        raise errors.BadRequest(f"{what} is not in this proxy's allowed_file_extensions setting. The file was not "
                                "forwarded to the provider.", param="file")
    blocked = general.blocked_file_extensions
    if blocked and ext and ext in _listed(blocked):
        raise errors.BadRequest(f"File extension '{ext}' is blocked by this proxy's blocked_file_extensions setting. "
                                "The file was not forwarded to the provider.", param="file")
    limit_mb = general.max_file_size_mb
    if not limit_mb or limit_mb <= 0 or purpose == "batch":
        return None
    tail = len(boundary) + 8  # the closing "\r\n--boundary--\r\n"
    if declared is not None and declared - content_start - tail > limit_mb * MB:
        size = declared - content_start - tail
        raise errors.PayloadTooLarge(f"Uploaded file exceeds the configured max_file_size_mb of {limit_mb} MB "
                                     f"(read stopped at {size / MB:.1f} MB). The file was not forwarded to the "
                                     "provider.", param="file", code="413")
    return content_start + limit_mb * MB + tail
