"""One request's routing state (:class:`RouteContext`): what the pipeline asks of the router (retries,
fallbacks, timeout, the key) and what the router reports back (attempt counters, failed attempts, the
buckets paid). Kept apart from ``relaygate.router`` (which re-exports it) so that the router module holds
the routing itself."""

from __future__ import annotations

from typing import Any, Sequence

from relaygate.core.ratelimit import Bucket

__all__ = ["RouteContext"]


class RouteContext:
    """Per-request routing input and output (attempt counters for the response headers)."""

    __slots__ = ("num_retries", "fallbacks", "timeout", "stream", "attempted_retries", "attempted_fallbacks",
                 "prompt_tokens", "key", "paid", "paid_costs", "messages", "tags", "failed", "no_fallbacks",
                 "window_fallbacks", "policy_fallbacks")

    def __init__(self, *, stream: bool = False, num_retries: int | None = None,
                 fallbacks: list[str] | None = None, timeout: float | None = None, prompt_tokens: int = 0,
                 key: Any = None, messages: Sequence[Any] | None = None) -> None:
        self.stream = stream
        self.num_retries = num_retries
        self.fallbacks = fallbacks
        self.timeout = timeout
        self.prompt_tokens = prompt_tokens
        self.key = key
        """``auth.KeyInfo`` of the request's virtual key (``None``: master key or open gateway)."""
        self.messages = messages
        """The raw ``messages`` of a chat request, for the prompt estimate when a tpm limit applies."""
        self.attempted_retries = 0
        self.attempted_fallbacks = 0
        self.paid: tuple[Bucket, ...] = ()
        self.paid_costs: tuple[float, ...] = ()
        self.tags: frozenset[str] | None = None
        """The request's tags (body ``tags`` / ``metadata.tags``, ``x-litellm-tags``) for tag filtering."""
        self.failed: list[tuple[str, int, str]] | None = None
        """``(deployment id, status, error type)`` of each attempt that failed, in order (None: none did)."""
        self.no_fallbacks = False
        """LiteLLM's ``disable_fallbacks`` (the request's, or its key's ``metadata.disable_fallbacks``): no
        fallback of any kind is tried (``pipeline.control.route_controls``)."""
        self.window_fallbacks: list[dict[str, list[str]]] | None = None
        """The request's own ``context_window_fallbacks`` table, in place of the router's (None: the router's)."""
        self.policy_fallbacks: list[dict[str, list[str]]] | None = None
        """The request's own ``content_policy_fallbacks`` table, in place of the router's (None: the router's)."""
