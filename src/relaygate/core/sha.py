"""SHA-256 hex digests, compiled where the extension is built (``_sha_c``) else pure (``_sha_py``).

Used where a request hashes on the hot path: a virtual key's token (LiteLLM stores keys by the SHA-256 hex of
the token) and the response cache's key. See the twins for how each computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from relaygate.core._ext import load


class _Hex(Protocol):
    def __call__(self, data: bytes, prefix: bytes = b"") -> str: ...


_impl = load("sha")

SHA_INSTRUCTIONS: bool = _impl.SHA_INSTRUCTIONS
"""Whether the compiled twin hashes with the CPU's SHA instructions."""
sha256: Callable[[bytes], Any] = _impl.sha256
"""A SHA-256 constructor (for a digest built in parts), hashlib's digests."""
sha256_hex: _Hex = _impl.sha256_hex
"""``sha256_hex(data, prefix=b"")``: the SHA-256 of ``prefix + data`` as 64 lowercase hex digits."""
use_sha_instructions: Callable[[bool], None] = _impl.use_sha_instructions

__all__ = ["SHA_INSTRUCTIONS", "sha256", "sha256_hex", "use_sha_instructions"]
