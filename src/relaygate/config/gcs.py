"""Cloud Storage bucket names as LiteLLM's ``GCS_BUCKET_NAME`` is read: by the ``gcs_bucket`` logging callback
(``observe.gcs_bucket``) and the response cache's ``type: gcs`` (``config.cache``, ``cache.gcs``)."""

from __future__ import annotations

import re

__all__ = ["split_bucket"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_bucket(raw: str) -> tuple[str, str]:
    """``GCS_BUCKET_NAME`` as the bucket and its folder (LiteLLM's ``split_configured_cloud_bucket_name``);
    ``ValueError`` for what GCS cannot take: a scheme, ``?``, ``#``, control characters, a ``.`` / ``..`` or
    empty folder segment, a bucket outside GCS's naming rules."""
    text = raw.strip()
    if "://" in text or "?" in text or "#" in text or _CONTROL.search(text):
        raise ValueError("a bucket name, optionally with a folder (my-bucket/logs): no scheme, query or "
                         "control characters")
    bucket, _, prefix = text.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not a GCS bucket name (3-222 of a-z 0-9 . _ -, starting and ending with "
                         "a letter or digit)")
    prefix = prefix.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError("the folder after the bucket has an empty, '.' or '..' segment")
    if len(prefix.encode()) > 512:
        raise ValueError("the folder after the bucket is longer than 512 bytes")
    return bucket, prefix
