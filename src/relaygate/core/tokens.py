"""Token accounting: usage extraction and fast token estimates (selector).

Re-exports the compiled ``relaygate.core._tokens_c`` when it is built and allowed, else the pure twin
``relaygate.core._tokens_py``, which is the reference and documents the design, the calibration and the
invariants. Type checkers see the pure twin. ``relaygate.core._ext.LOADED["tokens"]`` says which one
runs ("c" or "py").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaygate.core import _ext

if TYPE_CHECKING:
    from relaygate.core._tokens_py import (
        MAX_TOKENS,
        MEDIA_TOKENS,
        bound,
        count_stream_content,
        estimate_messages_tokens,
        estimate_tokens,
        extract_usage,
    )
else:
    _impl = _ext.load("tokens")
    extract_usage = _impl.extract_usage
    estimate_tokens = _impl.estimate_tokens
    estimate_messages_tokens = _impl.estimate_messages_tokens
    count_stream_content = _impl.count_stream_content
    MEDIA_TOKENS = _impl.MEDIA_TOKENS
    MAX_TOKENS = _impl.MAX_TOKENS
    bound = _impl.bound

__all__ = [
    "MAX_TOKENS",
    "MEDIA_TOKENS",
    "bound",
    "count_stream_content",
    "estimate_messages_tokens",
    "estimate_tokens",
    "extract_usage",
]
