"""The usage details a price needs beyond prompt and completion tokens, read from an answer's bytes.

``core.tokens.extract_usage`` (compiled) gives prompt and completion tokens, which is all most answers
have. Cached-read, cache-write, reasoning and audio tokens are read here, and only when the answer's
``usage`` object mentions them (substring tests on the bytes after the last ``"usage"``), so an answer
without them costs one ``rfind`` and three ``find``.

Both usage shapes the gateway relays are understood: OpenAI's (``prompt_tokens`` includes the cached
tokens, ``prompt_tokens_details.cached_tokens``; the Anthropic / Bedrock adapters add
``cache_creation_input_tokens``) and Anthropic's (``input_tokens`` excludes ``cache_read_input_tokens``
and ``cache_creation_input_tokens``). :class:`Details` is always in OpenAI's terms.
"""

from __future__ import annotations

import msgspec

__all__ = ["Details", "details"]


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    input_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Body(msgspec.Struct):
    usage: _Usage | None = None


_body = msgspec.json.Decoder(_Body)


class Details(msgspec.Struct, frozen=True, gc=False):
    """Token counts priced apart, in OpenAI's terms (``prompt_extra``: tokens to add to an Anthropic-shaped
    ``input_tokens`` to get OpenAI's ``prompt_tokens``; ``audio_in`` / ``audio_out``: the audio part of
    ``prompt_tokens`` / ``completion_tokens``, ``*_tokens_details.audio_tokens``)."""

    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    prompt_extra: int = 0
    audio_in: int = 0
    audio_out: int = 0


NONE = Details()


def details(data: bytes) -> Details:
    """The cache and reasoning counts of the last ``usage`` object in ``data`` (zeros when it has none)."""
    i = data.rfind(b'"usage"')
    if i < 0:
        return NONE
    if data.find(b"cache", i) < 0 and data.find(b"reasoning_tokens", i) < 0 and data.find(b"audio_tokens", i) < 0:
        return NONE
    try:
        u = _body.decode(data).usage
    except msgspec.DecodeError:
        return NONE
    if u is None:
        return NONE
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    cached = pd.cached_tokens if pd is not None and pd.cached_tokens is not None else u.cache_read_input_tokens
    cr = cached or 0
    cw = u.cache_creation_input_tokens or 0
    rs = (cd.reasoning_tokens or 0) if cd is not None else 0
    ai = (pd.audio_tokens or 0) if pd is not None else 0
    ao = (cd.audio_tokens or 0) if cd is not None else 0
    anthropic = u.prompt_tokens is None and u.input_tokens is not None
    return Details(cr, cw, rs, cr + cw if anthropic else 0, ai, ao)
