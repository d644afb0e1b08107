"""LiteLLM's controls over what its Prometheus logger writes: which ``litellm_*`` families, with which labels.

What it owns: :class:`PrometheusView` and :func:`view_from`, reading LiteLLM 1.110's ``litellm_settings``:

- ``prometheus_metrics_config``: a list of groups, each ``{group: <name>, metrics: [<family> ...],
  include_labels: [<label> ...]}``. When some group lists metrics, only the families listed are written; a
  family in a group with ``include_labels`` keeps only those of its labels (a family in two groups with such
  lists: the later group's, as LiteLLM's ``_build_label_filters``; a group without one changes nothing).
- ``prometheus_exclude_metrics``: families never written, listed or not.
- ``prometheus_exclude_labels``: labels dropped from every family.
- ``custom_prometheus_metadata_labels`` (``metadata.<key>`` paths, dots for nesting) and
  ``custom_prometheus_tags`` (tags, ``*`` wildcards): labels added to every family, ``metadata_<key>`` and
  ``tag_<tag>`` (LiteLLM's names, sanitised as its ``sanitize_prometheus_label_name``), counted by
  ``observe.prometheus_custom``.
- ``prometheus_emit_stream_label: true``: ``litellm_proxy_total_requests_metric`` gets LiteLLM's ``stream``
  label (``True`` / ``False``); ``prometheus_metrics_max_series_per_metric``: the series a family holds before a
  new one counts under all-``other`` labels (relaygate's backstop, 100,000, otherwise).
- ``prometheus_latency_buckets``: the upper bounds (seconds, ascending; ``+Inf`` is implied) of every latency
  histogram LiteLLM gives its ``LATENCY_BUCKETS`` (request, LLM API, overhead and time-to-first-token latency,
  and the ``prometheus_system`` service latencies) instead of those; the per-output-token histogram keeps
  prometheus_client's defaults, as in LiteLLM.
- ``prometheus_metrics_ttl_seconds``: a series idle that long leaves ``/metrics`` (``observe.prometheus_ttl``),
  checked every ``prometheus_metrics_cleanup_interval_seconds`` (60 by default, as LiteLLM's).

The view is applied when ``/metrics`` is written (``observe.prometheus_view``), never on the request path.
Sans IO; a value of the wrong shape is an ``ObserveConfigError`` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

__all__ = ["FIELDS", "PrometheusView", "label_name", "one_label", "view_from"]

FIELDS = ("prometheus_metrics_config", "prometheus_exclude_metrics", "prometheus_exclude_labels",
          "custom_prometheus_metadata_labels", "custom_prometheus_tags", "prometheus_emit_stream_label",
          "prometheus_metrics_max_series_per_metric", "prometheus_latency_buckets",
          "prometheus_metrics_ttl_seconds", "prometheus_metrics_cleanup_interval_seconds")
"""The ``litellm_settings`` keys :func:`view_from` reads."""


class PrometheusView(msgspec.Struct, frozen=True, kw_only=True):
    """Which families ``/metrics`` writes and with which labels (see the module docstring)."""

    metrics: frozenset[str] | None = None
    """The families written (None: every one)."""
    exclude_metrics: frozenset[str] = frozenset()
    exclude_labels: frozenset[str] = frozenset()
    include_labels: dict[str, tuple[str, ...]] = {}
    """family -> the only labels it keeps."""
    metadata_labels: tuple[str, ...] = ()
    """``custom_prometheus_metadata_labels`` as configured (``metadata.team_cost_center`` ...)."""
    tag_labels: tuple[str, ...] = ()
    """``custom_prometheus_tags`` as configured (``prod``, ``User-Agent: curl/*`` ...)."""
    stream_label: bool = False
    """``prometheus_emit_stream_label``."""
    max_series: int | None = None
    """``prometheus_metrics_max_series_per_metric`` (None: relaygate's backstop)."""
    latency_buckets: tuple[float, ...] | None = None
    """``prometheus_latency_buckets``: the latency histograms' bounds, ascending, without ``+Inf`` (None:
    LiteLLM's ``LATENCY_BUCKETS``)."""
    ttl: float | None = None
    """``prometheus_metrics_ttl_seconds`` (None: series stay)."""
    cleanup_interval: float = 60.0
    """``prometheus_metrics_cleanup_interval_seconds``: how often idle series are looked for."""

    @property
    def custom_names(self) -> tuple[str, ...]:
        """The label names the custom labels add to every family, in LiteLLM's order (metadata, then tags)."""
        names = [label_name(m.replace(".", "_")) for m in self.metadata_labels]
        names += [label_name(f"tag_{t}") for t in self.tag_labels]
        return tuple(dict.fromkeys(names))

    def enabled(self, family: str) -> bool:
        """Whether ``family`` is written; a counter may be named as LiteLLM's code names it, with ``_total``
        (``litellm_zero_cost_requests_total``, whose family is ``litellm_zero_cost_requests``)."""
        named = (family, family + "_total")
        return not any(n in self.exclude_metrics for n in named) and (
            self.metrics is None or any(n in self.metrics for n in named))

    def kept(self, family: str, names: tuple[str, ...]) -> tuple[int, ...] | None:
        """The positions of the labels ``family`` keeps of ``names`` (None: all of them)."""
        only = self.include_labels.get(family) or self.include_labels.get(family + "_total")
        keep = tuple(i for i, n in enumerate(names) if n not in self.exclude_labels and (only is None or n in only))
        return None if len(keep) == len(names) else keep


def label_name(text: str) -> str:
    """LiteLLM's ``sanitize_prometheus_label_name``: every character but letters, digits and ``_`` made ``_``,
    a leading digit prefixed with ``_``."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", text)
    return "_" + name if not name or not (name[0].isalpha() or name[0] == "_") else name


def _strings(value: Any, field: str) -> tuple[str, ...]:
    from relaygate.config.observe import ObserveConfigError

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ObserveConfigError(field, "expected a list of names")
    return tuple(v.strip() for v in value)


def view_from(ls: dict[str, Any]) -> PrometheusView | None:
    """The view ``litellm_settings`` ask for; None when they set none of :data:`FIELDS`."""
    from relaygate.config.observe import ObserveConfigError

    if all(ls.get(f) is None for f in FIELDS):
        return None
    groups = ls.get("prometheus_metrics_config")
    field = "litellm_settings.prometheus_metrics_config"
    metrics: list[str] = []
    include: dict[str, tuple[str, ...]] = {}
    if groups is not None:
        if not isinstance(groups, list):
            raise ObserveConfigError(field, "expected a list of groups ({group, metrics, include_labels})")
        for i, g in enumerate(groups):
            if not isinstance(g, dict):
                raise ObserveConfigError(f"{field}[{i}]", "expected a mapping with group, metrics, include_labels")
            names = _strings(g.get("metrics"), f"{field}[{i}].metrics")
            metrics.extend(names)
            if g.get("include_labels"):  # an empty list filters nothing, as in LiteLLM
                labels = _strings(g["include_labels"], f"{field}[{i}].include_labels")
                include.update(dict.fromkeys(names, labels))
    return PrometheusView(
        metrics=frozenset(metrics) if metrics else None,
        exclude_metrics=frozenset(_strings(ls.get("prometheus_exclude_metrics") or [],
                                           "litellm_settings.prometheus_exclude_metrics")),
        exclude_labels=frozenset(_strings(ls.get("prometheus_exclude_labels") or [],
                                          "litellm_settings.prometheus_exclude_labels")),
        include_labels=include,
        metadata_labels=_strings(ls.get("custom_prometheus_metadata_labels") or [],
                                 "litellm_settings.custom_prometheus_metadata_labels"),
        tag_labels=_strings(ls.get("custom_prometheus_tags") or [], "litellm_settings.custom_prometheus_tags"),
        stream_label=_flag(ls.get("prometheus_emit_stream_label"), "litellm_settings.prometheus_emit_stream_label"),
        max_series=_positive(ls.get("prometheus_metrics_max_series_per_metric"),
                             "litellm_settings.prometheus_metrics_max_series_per_metric"),
        latency_buckets=_bounds(ls.get("prometheus_latency_buckets"), "litellm_settings.prometheus_latency_buckets"),
        ttl=_seconds(ls.get("prometheus_metrics_ttl_seconds"), "litellm_settings.prometheus_metrics_ttl_seconds"),
        cleanup_interval=_seconds(ls.get("prometheus_metrics_cleanup_interval_seconds"),
                                  "litellm_settings.prometheus_metrics_cleanup_interval_seconds", 60.0, zero=True))


def _flag(value: Any, field: str) -> bool:
    from relaygate.config.observe import _flag as observe_flag  # the observability settings' own reading

    return False if value is None else observe_flag(value, field)


MAX_BUCKETS = 64
"""Bounds a latency histogram may have: every series writes a line per bound, so a list of thousands would make
``/metrics`` that many times larger."""


def _bounds(value: Any, field: str) -> tuple[float, ...] | None:
    """Histogram bounds as prometheus_client takes them: numbers in ascending order, ``+Inf`` last or implied
    (dropped here: the renderer writes it)."""
    from relaygate.config.observe import ObserveConfigError

    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ObserveConfigError(field, "expected a list of bucket bounds in seconds, ascending")
    out: list[float] = []
    for i, v in enumerate(value):
        if isinstance(v, str) and v.strip().lower() in ("+inf", "inf"):
            v = math.inf
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            raise ObserveConfigError(f"{field}[{i}]", f"expected a number of seconds, got {v!r}")
        if math.isinf(v) and (v < 0 or i != len(value) - 1):
            raise ObserveConfigError(f"{field}[{i}]", "+Inf can only be the last bound")
        if out and not v > out[-1]:
            raise ObserveConfigError(f"{field}[{i}]", "bounds must be in ascending order, each once")
        out.append(float(v))
    if out[-1] == math.inf:
        out.pop()
    if not out:
        raise ObserveConfigError(field, "expected at least one finite bound")
    if len(out) > MAX_BUCKETS:
        raise ObserveConfigError(field, f"at most {MAX_BUCKETS} bounds (got {len(out)})")
    return tuple(out)


def _seconds(value: Any, field: str, default: Any = None, *, zero: bool = False) -> Any:
    """A number of seconds, > 0 (``zero``: >= 0); ``default`` when not set."""
    from relaygate.config.observe import ObserveConfigError

    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            value < 0 or (value == 0 and not zero):
        raise ObserveConfigError(field, f"expected a number of seconds {'>=' if zero else '>'} 0, got {value!r}")
    return float(value)


def _positive(value: Any, field: str) -> int | None:
    from relaygate.config.observe import ObserveConfigError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ObserveConfigError(field, "expected a whole number of series > 0")
    return value


def one_label(view: PrometheusView | None, family: str, label: str, rows: Mapping[str, float],
              merge: Callable[[float, float], float]) -> Mapping[str, float] | None:
    """A family of one label (``rows``: its value -> the reading) as ``view`` writes it: None when left out;
    ``{"": merged}`` when the label is dropped (the lines then have no labels)."""
    if view is None:
        return rows
    if not view.enabled(family):
        return None
    if view.kept(family, (label,)) is None:
        return rows
    merged: dict[str, float] = {}
    for value in rows.values():
        merged[""] = value if "" not in merged else merge(merged[""], value)
    return merged
