"""Per-request routing overrides and the call id, read from what the client sent.

:class:`Overrides` reads ``x-litellm-timeout``, ``x-litellm-num-retries`` (or ``x-litellm-max-retries``) and
``x-litellm-call-id`` from the headers in one pass (and checks a declared ``Content-Length`` against the body
limit); a frontend adds
``timeout`` / ``num_retries`` from the body (:meth:`Overrides.merge_body`), headers winning. Values are
validated: a timeout is a finite number of seconds > 0, retries an integer in 0..100; anything else is a
400 naming the header or field. They can only tighten what the operator configured: the runtime takes
``min(override, configured)`` for timeouts (``Runtime.timeouts``) and the router for retries
(``Router._run_group``). Every route reads them the same way, because the pipeline does, not the frontend.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import os
import random
import re
from typing import Any, Iterable

import orjson

from relaygate.core import errors
from relaygate.http.body import declared_length
from relaygate.sinks.record import TAG_MAX

MAX_REQUEST_RETRIES = 100
HEADER_TAGS_MAX = 16
"""``extra_spend_tag_headers`` tags one request may carry (a header repeated gives one tag each, up to this)."""


def timeout_value(raw: Any, name: str) -> float:
    """A client's timeout override in seconds: a finite number > 0, else a 400 naming ``name``."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Invalid {name}: expected a number of seconds", param=name) from None
    if not math.isfinite(value) or value <= 0:
        raise errors.BadRequest(f"Invalid {name}: {raw!s:.40} (expected a finite number of seconds > 0)",
                                param=name)
    return value


def fallbacks_value(raw: Any) -> list[str]:
    """A client's per-request ``fallbacks`` from a body read without a view: a list of model names."""
    if not isinstance(raw, list) or not all(isinstance(m, str) and m for m in raw):
        raise errors.BadRequest("fallbacks: expected a list of model names", param="fallbacks")
    return raw


def retries_value(raw: Any, name: str) -> int:
    """A client's retry override: an integer in 0..MAX_REQUEST_RETRIES, else a 400 naming ``name``."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Invalid {name}: expected an integer", param=name) from None
    if isinstance(raw, float) or not 0 <= value <= MAX_REQUEST_RETRIES:
        raise errors.BadRequest(f"Invalid {name}: {raw!s:.40} (expected an integer 0..{MAX_REQUEST_RETRIES})",
                                param=name)
    return value


_rand = random.SystemRandom().getrandbits(64)
_ids = itertools.count()


def _new_prefix() -> str:
    h = "%016x" % (_rand ^ (os.getpid() << 32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a"


_prefix = _new_prefix()


def _forked() -> None:
    global _prefix
    _prefix = _new_prefix()


os.register_at_fork(after_in_child=_forked)

_CALL_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def new_call_id() -> bytes:
    """A uuid4-shaped id, ~5x cheaper than ``uuid.uuid4()``: a per-process random prefix (the pid mixed in,
    made again in a forked child), then a counter. The counter is not scrambled on purpose: one process's
    ids sort in the order it made them, so the spend log's ``request_id`` index grows at its end (one hot
    page per worker) instead of at a random page per row, which made every spend row cost a page read and
    write once the table outgrew the cache (measured: 22.6 -> 12.8 µs per SQLite insert at 200k rows). A
    call id is no secret: spend rows are read only through a key allowed to see them."""
    n = "%015x" % (next(_ids) & 0xFFFFFFFFFFFFFFF)
    return f"{_prefix}{n[:3]}-{n[3:]}".encode()


def client_call_id(value: bytes) -> bytes | None:
    """A client's ``x-litellm-call-id``, if it is 1-128 visible ASCII characters (it goes back in a response
    header and into log lines); anything else is ignored and the gateway makes its own."""
    return value if _CALL_ID.fullmatch(value) else None


def call_id_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request's call id: the client's valid ``x-litellm-call-id``, else a new one."""
    for k, v in headers:
        if k == b"x-litellm-call-id":
            return client_call_id(v) or new_call_id()
    return new_call_id()


def spend_metadata(value: bytes) -> Any:
    """``x-litellm-spend-logs-metadata``: a JSON object of at most 4 KiB, else a 400 naming the header."""
    try:
        obj = orjson.loads(value) if len(value) <= 4096 else None
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise errors.BadRequest("x-litellm-spend-logs-metadata: expected a JSON object of at most 4 KiB",
                                param="x-litellm-spend-logs-metadata")
    return obj


class Overrides:
    """Per-request values read from the headers in one pass (call id, retries, timeout, declared length)."""

    __slots__ = ("call_id", "num_retries", "timeout", "tags", "end_user", "spend_meta", "forward", "org", "user_agent",
                 "header_tags")

    def __init__(self, headers: Iterable[tuple[bytes, bytes]], max_body: int, user_header: bytes | None = None,
                 tag_headers: dict[bytes, str] | None = None) -> None:
        self.call_id: bytes | None = None
        self.num_retries: int | None = None
        self.timeout: float | None = None
        self.tags: list[str] | None = None
        self.end_user: str | None = None
        """``x-litellm-end-user-id`` / ``x-litellm-customer-id`` (else the header ``user_header_name`` names): the
        customer, for spend logs and customer budgets."""
        self.spend_meta: Any = None
        """``x-litellm-spend-logs-metadata`` (a JSON object), for spend logs."""
        self.forward: list[tuple[str, str]] | None = None
        """The client's headers every upstream call carries (``forward_client_headers_to_llm_api``;
        :func:`forwardable`); None: none."""
        self.org: str | None = None
        """The client's ``OpenAI-Organization``, sent on to OpenAI and Azure (``forward_openai_org_id``)."""
        self.user_agent: bytes | None = None
        """The client's ``User-Agent`` (LiteLLM's ``User-Agent: ...`` request tags, ``sinks.record.ua_tags``)."""
        self.header_tags: list[str] | None = None
        """``<header>: <value>`` of the ``extra_spend_tag_headers`` the request carries (``tag_headers``)."""
        for k, v in headers:
            if k[:10] == b"x-litellm-":
                if k == b"x-litellm-call-id":
                    self.call_id = client_call_id(v)
                elif k == b"x-litellm-num-retries":
                    self.num_retries = retries_value(v, "x-litellm-num-retries")
                elif k == b"x-litellm-max-retries":  # LiteLLM's other spelling; num-retries wins
                    retries = retries_value(v, "x-litellm-max-retries")
                    if self.num_retries is None:
                        self.num_retries = retries
                elif k == b"x-litellm-timeout":
                    self.timeout = timeout_value(v, "x-litellm-timeout")
                elif k == b"x-litellm-tags":  # comma-separated, for tag-based routing and spend tags
                    self.tags = [t.strip() for t in v.decode("latin-1").split(",") if t.strip()]
                elif k == b"x-litellm-end-user-id" or k == b"x-litellm-customer-id":
                    self.end_user = v.decode("utf-8", "replace")[:256] or None
                elif k == b"x-litellm-spend-logs-metadata":
                    self.spend_meta = spend_metadata(v)
            elif k == b"content-length":
                declared_length(v, max_body)
            elif k == b"user-agent":
                self.user_agent = v
            elif tag_headers is not None and k in tag_headers and v:
                tag = f"{tag_headers[k]}: {v.decode('utf-8', 'replace')[:TAG_MAX]}"
                if not self.header_tags:
                    self.header_tags = [tag]
                elif len(self.header_tags) < HEADER_TAGS_MAX:  # a header repeated a thousand times: 16 tags
                    self.header_tags.append(tag)
        if user_header is not None and self.end_user is None:  # general_settings.user_header_name (LiteLLM's)
            for k, v in headers:
                if k == user_header:
                    self.end_user = v.decode("utf-8", "replace").strip()[:256] or None

    def merge_body(self, num_retries: Any, timeout: Any) -> None:
        """Body values (``num_retries``, ``timeout``) apply where no header gave one."""
        if self.num_retries is None and num_retries is not None:
            self.num_retries = retries_value(num_retries, "num_retries")
        if self.timeout is None and timeout is not None:
            self.timeout = timeout_value(timeout, "timeout")


NEVER_FORWARDED = frozenset((b"x-api-key", b"x-litellm-api-key", b"x-goog-api-key", b"x-forwarded-for",
                             b"x-real-ip"))
"""Headers ``forward_client_headers_to_llm_api`` never sends on: the gateway key's headers (a provider must
never see it) and the client's address; skipped by prefix: ``x-litellm-*`` (the gateway's own controls),
``x-stainless-*`` (the OpenAI SDK's, which break some providers, as LiteLLM notes), and ``x-amz-*`` /
``x-goog-*`` (a client's say in how AWS signs or whom Google bills; LiteLLM forwards them)."""


def forwardable(headers: Iterable[tuple[bytes, bytes]], key_header: bytes | None) -> list[tuple[str, str]] | None:
    """The client's headers LiteLLM's ``forward_client_headers_to_llm_api`` sends to the provider: every
    ``x-`` header and ``anthropic-beta``, but never one that carries the gateway's key (``key_header``:
    ``litellm_key_header_name``) nor those of :data:`NEVER_FORWARDED`; None when there is none."""
    out = []
    for k, v in headers:
        if k[:2] == b"x-":
            if k[:10] == b"x-litellm-" or k[:11] == b"x-stainless" or k[:6] == b"x-amz-" or k[:7] == b"x-goog-" \
                    or k in NEVER_FORWARDED or k == key_header:
                continue
        elif k != b"anthropic-beta":
            continue
        out.append((k.decode("latin-1"), bytes(v).decode("latin-1")))
    return out or None


def forwards_for(groups: tuple[str, ...], *names: str) -> bool:
    """Whether a call to a model of ``names`` (the name asked for, its model group) carries the client's headers
    under ``model_group_settings.forward_client_headers_to_llm_api``: a name listed, or matched by a listed
    pattern with ``*`` (``openai/*``), as LiteLLM's ``check_model_access_helper`` matches them."""
    for g in groups:
        for name in names:
            if name == g or ("*" in g and fnmatch.fnmatchcase(name, g)):
                return True
    return False


def organization(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The client's ``OpenAI-Organization`` header (``forward_openai_org_id``)."""
    for k, v in headers:
        if k == b"openai-organization":
            return bytes(v).decode("latin-1").strip() or None
    return None
