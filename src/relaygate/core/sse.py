"""Server-sent events parsing and re-framing (selector).

Re-exports the compiled ``relaygate.core._sse_c`` when it is built and allowed, else the pure twin
``relaygate.core._sse_py``, which is the reference and documents the design and invariants. Type
checkers see the pure twin. ``relaygate.core._ext.LOADED["sse"]`` says which one runs ("c" or "py").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaygate.core import _ext

if TYPE_CHECKING:
    from relaygate.core._sse_py import DONE_FRAME, DataReframer, SSEDecoder, frame
else:
    _impl = _ext.load("sse")
    SSEDecoder = _impl.SSEDecoder
    DataReframer = _impl.DataReframer
    frame = _impl.frame
    DONE_FRAME = _impl.DONE_FRAME

__all__ = ["DONE_FRAME", "DataReframer", "SSEDecoder", "frame"]
