"""The ASGI messages the gateway exchanges with Granian, as types.

Only the HTTP subset is used: ``http.request`` / ``http.disconnect`` from ``receive()``,
``http.response.start`` / ``http.response.body`` to ``send()``. The sent messages are TypedDicts, so a
misspelt key or a ``str`` body is a type error; received messages are read with ``.get`` (servers add keys
of their own), so they stay plain dicts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, NotRequired, TypedDict


class ResponseStart(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: list[tuple[bytes, bytes]]


class ResponseBody(TypedDict):
    type: Literal["http.response.body"]
    body: bytes
    more_body: NotRequired[bool]


Headers = list[tuple[bytes, bytes]]
Scope = dict[str, Any]
Message = dict[str, Any]
"""A received message (``http.request`` with ``body`` / ``more_body``, or ``http.disconnect``)."""
Outgoing = ResponseStart | ResponseBody
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Outgoing], Awaitable[None]]
