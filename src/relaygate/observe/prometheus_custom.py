"""LiteLLM's custom Prometheus labels: ``custom_prometheus_metadata_labels`` and ``custom_prometheus_tags``.

What it owns: :class:`CustomLabels`, the values one completion record gives the labels the config adds to every
``litellm_*`` family (their names: ``config.prometheus_view.PrometheusView.custom_names``), appended to each
series' label values by :class:`~relaygate.observe.prometheus.LiteLLMMetrics` (records of one identity with
the same values share their cells, as without them).

- **Tags** (``custom_prometheus_tags: [prod, "User-Agent: curl/*"]``): label ``tag_<tag>``, ``"true"`` when the
  request's tags (its own, then the ``User-Agent`` and ``extra_spend_tag_headers`` ones: the record's) hold the
  tag or match its ``*`` pattern, else ``"false"`` (LiteLLM's ``get_custom_labels_from_tags``). Two values: the
  series stay bounded whatever the clients send.
- **Metadata** (``custom_prometheus_metadata_labels: [metadata.cost_center]``): label ``metadata_<path>``, the
  string at that path (dots for nesting) in what the *operator* set, never the client: the fields LiteLLM's
  standard metadata derives from the key (``user_api_key_alias``, ``user_api_key_team_id``,
  ``user_api_key_team_alias``, ``user_api_key_user_id``, ``user_api_key_user_email``, ``user_api_key_org_id``),
  then the stored key's ``metadata`` (LiteLLM's ``user_api_key_auth_metadata``). LiteLLM also reads the
  request's own ``metadata`` and ``spend_logs_metadata`` there, which would let any client mint series at will:
  relaygate does not (README). Anything else, or a path not found, is ``"None"``; at most :data:`MAX_VALUES`
  values per label are kept, later ones counted under ``other``.
"""

from __future__ import annotations

import re
from typing import Any

from relaygate.config.prometheus_view import PrometheusView
from relaygate.observe.prometheus_families import NONE, OTHER
from relaygate.sinks.record import CompletionRecord, header_tags_of

__all__ = ["MAX_VALUES", "CustomLabels"]

MAX_VALUES = 1000
"""Distinct values a metadata label takes; later ones are ``other``."""
VALUE_MAX = 256
"""Characters of a metadata value kept."""


class CustomLabels:
    """The custom labels of one config (see the module docstring)."""

    __slots__ = ("names", "paths", "tags", "_patterns", "_seen")

    def __init__(self, view: PrometheusView) -> None:
        self.names = view.custom_names
        self.paths = [tuple(m.removeprefix("metadata.").split(".")) for m in view.metadata_labels]
        self.tags = list(view.tag_labels)
        self._patterns = [re.compile(re.escape(t).replace(r"\*", ".*")) if "*" in t else None for t in self.tags]
        """A ``*`` tag's regex, matched at a tag's start (LiteLLM's ``pattern_to_regex`` and ``re.match``)."""
        self._seen: list[set[str]] = [set() for _ in self.paths]

    @classmethod
    def of(cls, view: PrometheusView | None) -> CustomLabels | None:
        return cls(view) if view is not None and (view.metadata_labels or view.tag_labels) else None

    def values(self, r: CompletionRecord) -> tuple[str, ...]:
        """The record's values of :attr:`names`, in their order."""
        out: list[str] = []
        if self.paths:
            scalars = {"user_api_key_alias": r.key_alias, "user_api_key_team_id": r.team_id,
                       "user_api_key_team_alias": r.team_alias, "user_api_key_user_id": r.user_id,
                       "user_api_key_user_email": r.user_email, "user_api_key_org_id": r.org_id}
            meta = r.key_metadata if isinstance(r.key_metadata, dict) else {}
            for i, path in enumerate(self.paths):
                value: Any = scalars.get(path[0]) if len(path) == 1 and path[0] in scalars else meta
                if value is meta:
                    for part in path:
                        value = value.get(part) if isinstance(value, dict) else None
                out.append(self._bounded(i, value[:VALUE_MAX]) if isinstance(value, str) else NONE)
        if self.tags:
            extra = r.extra
            sent = [t for t in (extra.get("tags") or ()) if isinstance(t, str)] if isinstance(extra, dict) else []
            if r.user_agent or r.header_tags:
                sent.extend(header_tags_of(r))
            for tag, pattern in zip(self.tags, self._patterns, strict=True):
                hit = tag in sent or (pattern is not None and any(pattern.match(t) for t in sent))
                out.append("true" if hit else "false")
        return tuple(out)

    def _bounded(self, i: int, value: str) -> str:
        seen = self._seen[i]
        if value in seen:
            return value
        if len(seen) >= MAX_VALUES:
            return OTHER
        seen.add(value)
        return value
