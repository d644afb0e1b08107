"""HTTP/1.1 response parsing and request building for upstream connections (selector).

Re-exports the compiled ``relaygate.core._http1_c`` when it is built and allowed, else the pure twin
``relaygate.core._http1_py``, which is the reference and documents the framing rules, the event encoding
and the invariants. Type checkers see the pure twin. ``relaygate.core._ext.LOADED["http1"]`` says which one
runs ("c" or "py").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaygate.core import _ext

if TYPE_CHECKING:
    from relaygate.core._http1_py import (
        END,
        MAX_CHUNK_LINE,
        MAX_HEAD,
        End,
        Head,
        ResponseParser,
        build_request,
        build_request_head,
    )
else:
    _impl = _ext.load("http1")
    ResponseParser = _impl.ResponseParser
    Head = _impl.Head
    End = _impl.End
    END = _impl.END
    build_request = _impl.build_request
    build_request_head = _impl.build_request_head
    MAX_HEAD = _impl.MAX_HEAD
    MAX_CHUNK_LINE = _impl.MAX_CHUNK_LINE

__all__ = [
    "END",
    "MAX_CHUNK_LINE",
    "MAX_HEAD",
    "End",
    "Head",
    "ResponseParser",
    "build_request",
    "build_request_head",
]
