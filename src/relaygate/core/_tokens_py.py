"""Token accounting: the pure-Python twin of ``ext/_tokens_c.pyx`` (the reference implementation).

This module owns the gateway's two token questions, neither of which may cost a full JSON decode or a
real tokenizer on the request path:

* **How many tokens did the upstream say it used?** :func:`extract_usage` finds the last ``"usage"`` key
  in a response body or final stream chunk (``rfind``; OpenAI puts usage last), checks that it is a key
  (followed by ``:``), brace-matches its object (skipping strings) and decodes only that slice with
  msgspec. ``null``, a missing key, or a malformed object give ``None``; ``input_tokens`` /
  ``output_tokens`` (Anthropic, Responses API) are accepted when the OpenAI names are absent. Each count
  is bounded to ``[0, MAX_TOKENS]``: an upstream's negative or absurd figure (more than 64 bits hold) would
  otherwise be priced, charged to budgets and written to the database as it is.
* **How many tokens will this prompt / did this stream probably use?** :func:`estimate_tokens` is a
  linear model over byte classes, calibrated against tiktoken ``cl100k_base`` on English prose, code,
  JSON, CJK, other scripts and numbers (see ``tests/core/test_tokens.py``, which reports the error):
  each ASCII letter run costs ``WORD`` plus ``WORD_EXTRA`` per letter past ``WORD_FREE``; digit runs
  cost ``DIGITS`` per group of three; punctuation runs ``PUNCT`` plus ``PUNCT_EXTRA`` per further byte;
  whitespace runs other than a single space ``SPACE``; non-ASCII characters by their UTF-8 length (two
  bytes: most Latin/Cyrillic letters, three: CJK, four: emoji). Weights are integers in thousandths of
  a token so both twins compute the same result bit for bit; a non-empty text is at least one token.
  :func:`estimate_messages_tokens` walks a raw JSON ``messages`` array without decoding it: every
  string value is estimated (escaped strings are unescaped first), ``type`` values are free,
  ``url``/``data``/``file_data`` values (images, audio, files: often megabytes of base64) count a fixed
  :data:`MEDIA_TOKENS`, and each message adds 3 plus 3 for the reply priming, as OpenAI documents.
  :func:`count_stream_content` estimates a streamed chunk's ``content`` / ``text`` / ``arguments`` /
  ``reasoning_content`` / ``refusal`` strings, for upstreams that send no usage.

Invariants: pure functions of their input; never raise on malformed input (they answer ``None`` or a
best-effort count); identical results in both twins.
"""

from __future__ import annotations

import re

import msgspec

__all__ = [
    "MAX_TOKENS",
    "MEDIA_TOKENS",
    "bound",
    "count_stream_content",
    "estimate_messages_tokens",
    "estimate_tokens",
    "extract_usage",
]

# Weights in thousandths of a token (calibrated against cl100k_base; see the module docstring).
WORD = 955
WORD_EXTRA = 90
WORD_FREE = 5
DIGITS = 1380
PUNCT = 870
PUNCT_EXTRA = 110
SPACE = 1210
NONASCII_2 = 480
NONASCII_3 = 1080
NONASCII_4 = 2470
#: Fixed estimate for a media value (image URL or base64 data): OpenAI's low-detail image cost.
MEDIA_TOKENS = 85

_WORD_RE = re.compile(rb"[A-Za-z]+")
_DIGIT_RE = re.compile(rb"[0-9]+")
_PUNCT_RE = re.compile(rb"[\x00-\x08\x0e-\x1f\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_SPACE_RE = re.compile(rb"[ \t\n\v\f\r]{2,}|[\t\n\v\f\r]")
_ALL = bytes(range(256))
_NOT_LEAD2 = bytes(b for b in range(256) if not 0xC0 <= b <= 0xDF)
_NOT_LEAD3 = bytes(b for b in range(256) if not 0xE0 <= b <= 0xEF)
_NOT_LEAD4 = bytes(b for b in range(256) if b < 0xF0)

_WS = b" \t\n\r"
_STRING_OR_BRACKET = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"[ \t\n\r]*(:)?|[\[{]|[\]}]', re.DOTALL)
_BRACE_OR_STRING = re.compile(rb'[{}]|"(?:[^"\\]|\\.)*"', re.DOTALL)
_STREAM_KEYS = frozenset((b"content", b"text", b"arguments", b"reasoning_content", b"refusal"))
_MEDIA_KEYS = frozenset((b"url", b"data", b"file_data"))
_str_decoder = msgspec.json.Decoder(str)


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


_usage_decoder = msgspec.json.Decoder(_Usage, strict=False)
"""Lax as LiteLLM's pydantic ``Usage``: ``12.0`` and ``"12"`` are 12 (strict, such an answer's usage was not read
and the request cost nothing); ``12.5`` and booleans are still not counts."""

MAX_TOKENS = 2**40
"""The most tokens one count of one answer's usage may say (~10^12: a million times the longest context window
there is); a larger count is taken as this, a negative one as 0 (see the module docstring)."""


def bound(n: int) -> int:
    """``n`` within ``[0, MAX_TOKENS]``."""
    return n if 0 <= n <= MAX_TOKENS else (0 if n < 0 else MAX_TOKENS)


def _usage_span(body: bytes) -> tuple[int, int] | None:
    """(start, end) of the last ``"usage": {...}`` object in ``body``, or None."""
    end = len(body)
    n = end
    while True:
        i = body.rfind(b'"usage"', 0, end)
        if i < 0:
            return None
        j = i + 7
        while j < n and body[j] in _WS:
            j += 1
        if j < n and body[j] == 58:  # ':'
            j += 1
            while j < n and body[j] in _WS:
                j += 1
            if j >= n or body[j] != 123:  # '{' (null or anything else: no usage)
                return None
            depth = 0
            for m in _BRACE_OR_STRING.finditer(body, j):
                tok = m.group()
                if tok == b"{":
                    depth += 1
                elif tok == b"}":
                    depth -= 1
                    if depth == 0:
                        return j, m.end()
            return None
        end = i  # a string value "usage", not a key: look further left


def extract_usage(body: bytes) -> tuple[int, int, int] | None:
    """``(prompt, completion, total)`` from the last ``usage`` object in ``body``, or None."""
    span = _usage_span(body)
    if span is None:
        return None
    try:
        u = _usage_decoder.decode(body[span[0] : span[1]])
    except msgspec.DecodeError:
        return None
    prompt = u.prompt_tokens if u.prompt_tokens is not None else u.input_tokens
    completion = u.completion_tokens if u.completion_tokens is not None else u.output_tokens
    if prompt is None and completion is None:
        return None
    prompt = prompt or 0
    completion = completion or 0
    total = u.total_tokens if u.total_tokens is not None else prompt + completion
    if not (0 <= prompt <= MAX_TOKENS and 0 <= completion <= MAX_TOKENS and 0 <= total <= MAX_TOKENS):
        prompt, completion, total = bound(prompt), bound(completion), bound(total)
    return prompt, completion, total


def _estimate_milli(b: bytes) -> int:
    total = 0
    words = _WORD_RE.findall(b)
    if words:
        total += WORD * len(words)
        extra = sum(len(w) - WORD_FREE for w in words if len(w) > WORD_FREE)
        total += WORD_EXTRA * extra
    for d in _DIGIT_RE.findall(b):
        total += DIGITS * ((len(d) + 2) // 3)
    puncts = _PUNCT_RE.findall(b)
    if puncts:
        total += PUNCT * len(puncts) + PUNCT_EXTRA * (sum(map(len, puncts)) - len(puncts))
    total += SPACE * len(_SPACE_RE.findall(b))
    if not b.isascii():
        total += NONASCII_2 * len(b.translate(_ALL, _NOT_LEAD2))
        total += NONASCII_3 * len(b.translate(_ALL, _NOT_LEAD3))
        total += NONASCII_4 * len(b.translate(_ALL, _NOT_LEAD4))
    return total


def _estimate_bytes(b: bytes) -> int:
    if not b:
        return 0
    return max(1, (_estimate_milli(b) + 500) // 1000)


def estimate_tokens(text: str | bytes) -> int:
    """A fast estimate of the token count of ``text`` (UTF-8 bytes or str); 0 only for empty text."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    return _estimate_bytes(bytes(text))


def _string_value_tokens(raw: bytes) -> int:
    if b"\\" in raw:
        try:
            return _estimate_bytes(_str_decoder.decode(b'"' + raw + b'"').encode("utf-8", "surrogatepass"))
        except msgspec.DecodeError:
            pass
    return _estimate_bytes(raw)


def estimate_messages_tokens(messages_raw: bytes) -> int:
    """Estimate the prompt tokens of a raw JSON ``messages`` array, with OpenAI's per-message overhead."""
    total = 0
    messages = 0
    depth = 0
    key = b""
    for m in _STRING_OR_BRACKET.finditer(messages_raw):
        s = m.group(1)
        if s is None:
            c = m.group()
            if c == b"{":
                if depth == 1:
                    messages += 1
                depth += 1
            elif c == b"[":
                depth += 1
            else:
                depth -= 1
            continue
        if m.group(2) is not None:
            key = s
        elif key == b"type":
            continue
        elif key in _MEDIA_KEYS:
            total += MEDIA_TOKENS
        else:
            total += _string_value_tokens(s)
    return total + 3 * messages + 3


def count_stream_content(chunk_json: bytes) -> int:
    """Estimated completion tokens in one streamed chunk (``delta.content``, ``text``, ``arguments`` ...)."""
    total = 0
    key = b""
    for m in _STRING_OR_BRACKET.finditer(chunk_json):
        s = m.group(1)
        if s is None:
            continue
        if m.group(2) is not None:
            key = s
        elif key in _STREAM_KEYS and s:
            total += _string_value_tokens(s)
    return total
