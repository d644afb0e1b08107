"""Embeddings cached per input, as LiteLLM caches them: a list's inputs are looked up one by one, only those
not found go upstream, and the answer is put back together in the request's order.

What it owns (``cache.stage`` calls it for the ``embeddings`` route; sans IO but for the lookup):

- **Inputs** (:func:`inputs_of`): ``input`` as a string is one input, and so is a token array (a list of
  integers); a non-empty list of strings, token arrays or objects (multimodal inputs) is one input each.
  Anything else (an empty list, numbers mixed with strings ...) is not cached: the upstream answers it as it
  would. LiteLLM splits a token array into one input per integer; it is one input to OpenAI, and here.
- **Keys**: each input's key is the request's key with ``input`` replaced by that one input
  (``cache.key.input_keys``): an input embedded once, alone or in a list, is found again by any later request
  with the same other fields (model group, ``dimensions``, ``encoding_format`` ...), alone or in a list.
- **Lookup** (:func:`lookup`): this worker's memory first, then Redis for the rest (one ``MGET`` per hash
  slot; a Redis entry is copied into memory); an entry older than the request's ``s-maxage`` is not found.
  Every input found: the answer is assembled from the entries (:meth:`Parts.answer`: ``data`` in the
  request's order, ``index`` 0..n-1, ``usage.prompt_tokens`` the sum of the entries') and served as any hit,
  at cost 0. Some found: the request goes upstream with the missing inputs only (``Exchange.body`` and
  ``view`` rewritten, so every adapter sends just those) and counts as a miss. None found: it goes upstream
  as it came.
- **Merge** (:meth:`Parts.merged`): the upstream's answer for the missing inputs, its items put at their
  inputs' places among the found ones (by their ``index``), ``usage`` the whole request's (the upstream's
  plus the found inputs' prompt tokens, as LiteLLM's ``combine_usage``), its other fields as the upstream
  wrote them. The request's cost and its spend row's tokens are the upstream call's alone: only what was
  sent is billed. An upstream that answers another number of embeddings than it was sent is a 502.
- **Store** (:meth:`Parts.entries`): each input sent upstream is stored under its key as ``<prompt
  tokens>\\n<the embedding's JSON as the upstream wrote it>`` (after the stage's stamp). When one answer
  embedded several inputs, its ``prompt_tokens`` are shared out in proportion to each input's estimated tokens
  (largest remainders, so the shares add up to the answer's total, and a later hit on the same inputs reports
  the usage the original answer did).
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core import errors
from relaygate.core.tokens import estimate_tokens

MAX_HEADER_KEYS = 32
"""Input keys named at most in a hit's ``x-litellm-cache-key`` (comma-separated, in input order)."""


class _Item(msgspec.Struct):
    embedding: msgspec.Raw
    index: Any = None


class _Answer(msgspec.Struct):
    data: list[_Item]
    usage: Any = None


_answer = msgspec.json.Decoder(_Answer)
_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


def inputs_of(body: dict[str, Any]) -> list[Any] | None:
    """The request's inputs, one per embedding it asks for (see the module docstring); None: not cached."""
    inp = body.get("input")
    if isinstance(inp, str):
        return [inp]
    if not isinstance(inp, list) or not inp:
        return None
    if all(type(x) is int for x in inp):
        return [inp]  # one token array
    for x in inp:
        if not (isinstance(x, (str, dict)) or (isinstance(x, list) and x and all(type(t) is int for t in x))):
            return None
    return inp


def _weight(item: Any) -> int:
    """An input's estimated tokens (a token array's length), at least 1."""
    if isinstance(item, str):
        return max(estimate_tokens(item), 1)
    if isinstance(item, list):
        return max(len(item), 1)
    return max(estimate_tokens(_encode(item)), 1)


def shares(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders: the shares add up to ``total``)."""
    whole = sum(weights)
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    exact = [total * w for w in weights]
    out = [e // whole for e in exact]
    left = total - sum(out)
    for i in sorted(range(len(weights)), key=lambda i: exact[i] % whole, reverse=True)[:left]:
        out[i] += 1
    return out


def split_entry(value: bytes) -> tuple[int, bytes] | None:
    """A stored entry's (prompt tokens, embedding JSON), or None when it is not one."""
    head, nl, emb = value.partition(b"\n")
    if not nl or not emb or not head.isdigit():
        return None
    return int(head), emb


def _data(embeddings: list[bytes | None]) -> bytes:
    """The items of an answer's ``data`` array (without the brackets), indexed in order."""
    return b",".join(b'{"object":"embedding","index":%d,"embedding":%s}' % (i, emb)
                     for i, emb in enumerate(embeddings) if emb is not None)


class Parts:
    """One embeddings request's inputs against the cache: their keys, what was found, what goes upstream."""

    __slots__ = ("keys", "found", "found_tokens", "missing", "inputs")

    def __init__(self, keys: list[str], inputs: list[Any]) -> None:
        self.keys = keys
        self.inputs = inputs
        self.found: list[bytes | None] = [None] * len(keys)
        """Per input: its stored embedding's JSON, or None (sent upstream)."""
        self.found_tokens = 0
        self.missing: list[int] = []
        """The positions of the inputs sent upstream, in the order they are sent."""

    def header_key(self) -> str:
        """What a hit's ``x-litellm-cache-key`` says: the inputs' keys (at most :data:`MAX_HEADER_KEYS`)."""
        return ",".join(self.keys[:MAX_HEADER_KEYS])

    def answer(self, model: str) -> bytes:
        """The whole answer from the entries (every input found)."""
        data = _data(self.found)
        n = self.found_tokens
        return b'{"object":"list","data":[%s],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (
            data, _encode(model), n, n)

    def _items(self, data: bytes) -> tuple[list[bytes], int]:
        """The upstream answer's embeddings in the order their inputs were sent, and its prompt tokens."""
        try:
            ans = _answer.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise errors.UpstreamConnectError("the upstream's embeddings answer could not be read") from None
        items = ans.data
        if len(items) != len(self.missing):
            raise errors.UpstreamConnectError(
                f"the upstream answered {len(items)} embedding(s) for the {len(self.missing)} input(s) it was sent")
        if all(type(it.index) is int for it in items):
            items = sorted(items, key=lambda it: it.index)
        usage = ans.usage
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return [bytes(it.embedding) for it in items], tokens if type(tokens) is int and tokens > 0 else 0

    def merged(self, data: bytes) -> bytes:
        """The client's answer: the upstream's (for the missing inputs) with the found ones put back."""
        embs, _ = self._items(data)
        found = list(self.found)
        for pos, emb in zip(self.missing, embs, strict=True):
            found[pos] = emb
        top = _top.decode(data)
        top["data"] = msgspec.Raw(b"[" + _data(found) + b"]")
        usage: Any = None
        raw_usage = top.get("usage")
        if raw_usage is not None:
            try:
                usage = msgspec.json.decode(raw_usage)
            except msgspec.DecodeError:
                usage = None
        if not isinstance(usage, dict):
            usage = {"prompt_tokens": 0, "total_tokens": 0}
        for name in ("prompt_tokens", "total_tokens"):
            v = usage.get(name)
            usage[name] = (v if type(v) is int else 0) + self.found_tokens
        top["usage"] = msgspec.Raw(_encode(usage))
        return _encode(top)

    def entries(self, data: bytes) -> list[tuple[str, bytes]]:
        """What to store of the upstream's answer: ``(key, entry)`` per input sent."""
        try:
            embs, tokens = self._items(data)
        except errors.GatewayError:
            return []
        sent = [self.inputs[i] for i in self.missing]
        each = shares(tokens, [_weight(x) for x in sent])
        return [(self.keys[pos], b"%d\n" % n + emb) for pos, n, emb in zip(self.missing, each, embs, strict=True)]


__all__ = ["MAX_HEADER_KEYS", "Parts", "inputs_of", "shares", "split_entry"]
