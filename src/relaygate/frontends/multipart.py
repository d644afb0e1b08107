"""Finding one small field in a ``multipart/form-data`` upload as it streams in (sans-IO).

Audio and image uploads are forwarded to the upstream as they arrive, but the gateway must know the
``model`` form field to route them. :class:`FieldFinder` is fed the upload's leading bytes piece by piece
and scans just far enough to locate that field's value, keeping its place between pieces (each byte is
searched about once whatever the split). Clients (the OpenAI SDKs among them) send plain fields before
files, so the field is normally in the first piece. Once more than ``limit`` bytes were fed without the
field, :meth:`FieldFinder.feed` raises a 400 saying to send it before the file, so the caller holds at
most ``limit`` bytes plus one piece.

Invariants: the answer (the value's ``(start, end)`` offsets in the fed bytes) does not depend on how the
input was split; only the bytes fed so far are held (``buffered``); nothing here awaits or does IO.
"""

from __future__ import annotations

from relaygate.core import errors

__all__ = ["FieldFinder", "boundary_of"]

_SEEK = 0  # looking for the next delimiter line
_HEAD = 1  # inside a part's headers
_VALUE = 2  # inside the wanted field's value
_SKIP = 3  # inside another part's content
_DONE = 4


def boundary_of(ctype: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` content type; 400 if there is none."""
    for part in ctype.split(";"):
        k, _, v = part.strip().partition("=")
        if k.lower() == "boundary" and v:
            return v.strip('"').encode()
    raise errors.BadRequest("multipart/form-data request without a boundary")


class FieldFinder:
    """Locates the value of the (non-file) form field ``name`` in a multipart body fed in pieces."""

    __slots__ = ("_buf", "_delim", "_from", "_limit", "_name", "_needle", "_start", "_state", "field", "span")

    def __init__(self, boundary: bytes, name: str, limit: int) -> None:
        self._delim = b"--" + boundary
        self._needle = b'name="' + name.encode() + b'"'
        self._name = name
        self._limit = limit
        self._buf = bytearray()
        self._state = _SEEK
        self._from = 0  # where the next search starts
        self._start = 0  # start of the current part's headers or content
        #: ``(start, end)`` of the value in the fed bytes, once found.
        self.span: tuple[int, int] | None = None
        self.field: bytes | None = None

    @property
    def buffered(self) -> bytearray:
        """Every byte fed so far."""
        return self._buf

    def feed(self, data: bytes) -> bool:
        """Take the next piece; True once the field's value is known. Raises 400 past ``limit`` bytes
        without it, or when the body's closing delimiter comes first."""
        if self._state == _DONE:
            return True
        self._buf += data
        self._scan()
        if self._state == _DONE:
            return True
        if len(self._buf) > self._limit:
            raise errors.BadRequest(
                f"{self._name}: form field not found in the first {self._limit} bytes of the multipart upload; "
                f"send the `{self._name}` field before the file", param=self._name)
        return False

    def end(self) -> tuple[int, int]:
        """The body ended: the value's span, or 400 if the field was not in it."""
        if self.span is None:
            raise errors.BadRequest(f"{self._name}: form field required", param=self._name)
        return self.span

    def _find(self, needle: bytes) -> int:
        buf = self._buf
        i = buf.find(needle, self._from)
        if i < 0:
            self._from = max(self._from, len(buf) - len(needle) + 1)
        return i

    def _scan(self) -> None:
        buf = self._buf
        delim = self._delim
        while True:
            state = self._state
            if state == _SEEK:
                i = self._find(delim)
                if i < 0:
                    return
                after = i + len(delim)
                if len(buf) < after + 2:
                    self._from = i
                    return
                if buf[after:after + 2] == b"--":  # the closing delimiter: the field is not in this body
                    raise errors.BadRequest(f"{self._name}: form field required", param=self._name)
                self._state = _HEAD
                self._start = self._from = after
            elif state == _HEAD:
                i = self._find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(buf[self._start:i])
                self._start = self._from = i + 4
                wanted = self._needle in head and b"filename=" not in head
                self._state = _VALUE if wanted else _SKIP
            else:
                i = self._find(b"\r\n" + delim)
                if i < 0:
                    return
                if state == _VALUE:
                    self.span = (self._start, i)
                    self.field = bytes(buf[self._start:i])
                    self._state = _DONE
                    return
                self._state = _SEEK
                self._from = i + 2
