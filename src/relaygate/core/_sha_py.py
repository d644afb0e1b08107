"""SHA-256 hex digests: the pure-Python twin of ``relaygate.core._sha_c`` (``relaygate.core.sha`` picks one).

The digest is CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before) rather than OpenSSL's through
``hashlib``: the same digest, but in a loaded gateway, where every request finds this code cold, OpenSSL's
context set-up and ``hexdigest`` cost more than the built-in's whole hash of a 1 KB body (timed in the serving
worker on 2026-12-06: a cache key 5.2 µs with OpenSSL's, 3.9 with the built-in), even on a CPU with SHA
instructions where OpenSSL is four times faster in a tight loop. The compiled twin uses those instructions
itself and skips the context altogether.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from typing import Any, cast

__all__ = ["SHA_INSTRUCTIONS", "sha256", "sha256_hex", "use_sha_instructions"]

SHA_INSTRUCTIONS = False
"""The pure twin never uses the CPU's SHA instructions itself."""


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's built-in SHA-256 constructor (``_sha2`` from 3.12, ``_sha256`` before), else hashlib's."""
    for module in ("_sha2", "_sha256"):
        try:
            return cast("Callable[[bytes], Any]", importlib.import_module(module).sha256)
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


sha256 = _builtin_sha256()
"""SHA-256 (see the module docstring); its digests are hashlib's."""


def sha256_hex(data: bytes, prefix: bytes = b"") -> str:
    """The SHA-256 of ``prefix + data`` as 64 lowercase hex digits (``hashlib.sha256(prefix + data).hexdigest()``)."""
    return cast(str, sha256(prefix + data if prefix else data).hexdigest())


def use_sha_instructions(on: bool) -> None:
    """No-op (the compiled twin's switch)."""
