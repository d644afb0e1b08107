"""The ``litellm_*`` families as Prometheus text: every worker's part merged, then written.

What it owns: the merge rules of :class:`~relaygate.observe.prometheus.LiteLLMMetrics` snapshots (one per
live worker) and the exposition text (version 0.0.4, as prometheus_client writes it: ``# HELP`` and
``# TYPE`` per family, counters' samples with the ``_total`` suffix, histograms as cumulative ``_bucket``
samples with ``le`` then ``_sum`` and ``_count``). It runs only at scrape time.

Merge rules: counters and histograms are summed; ``litellm_deployment_state`` takes the worst worker's
state; ``litellm_in_flight_requests`` is the sum; remaining requests / tokens the lowest (each worker only
knows its own view of a shared limit, so the lowest is the safe figure); configured limits are the same
everywhere; a budget is the latest report about it, its remaining hours computed at ``now``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from relaygate.config.prometheus_view import PrometheusView
from relaygate.observe.prometheus_families import (
    _BUDGET_FAMILIES,
    COUNTER,
    DEFAULT_BUCKETS,
    FAMILIES,
    GAUGE,
    HISTOGRAM,
    LATENCY_BUCKETS,
    NONE,
)
from relaygate.observe.prometheus_limits import merge as merge_key_limits
from relaygate.observe.prometheus_view import add_lists, fold, shape

__all__ = ["EXTRA_FAMILIES", "TEAM_MEMBERS_LABELS", "latency_bounds", "render", "sparse"]

TEAM_MEMBERS_LABELS = ("team", "team_alias")
EXTRA_FAMILIES = (("litellm_total_users", ()), ("litellm_active_users", ()), ("litellm_teams_count", ()),
                  ("litellm_team_members_metric", TEAM_MEMBERS_LABELS))
"""The families written beside :data:`FAMILIES` (from the store's counts), with their labels."""

_LEGACY = {"litellm_remaining_requests": "litellm_remaining_requests_metric",
           "litellm_remaining_tokens": "litellm_remaining_tokens_metric"}
_WORST = {"litellm_deployment_state"}
_SUM = {"litellm_in_flight_requests", "litellm_admission_admitted_requests", "litellm_admission_queued_requests"}
_INF = 'le="+Inf"'


def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[Any], extra: str = "") -> str:
    parts = [f'{n}="{_esc(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"{v:.1f}"
    return repr(v)


def _buckets(name: str, latency: tuple[float, ...]) -> tuple[float, ...]:
    """``name``'s bounds: ``latency`` (LiteLLM's or ``prometheus_latency_buckets``) for all but one family."""
    return DEFAULT_BUCKETS if name == "litellm_deployment_latency_per_output_token" else latency


def latency_bounds(view: PrometheusView | None) -> tuple[float, ...]:
    """The latency histograms' bounds ``view`` gives (``prometheus_latency_buckets``), else LiteLLM's."""
    return view.latency_buckets if view is not None and view.latency_buckets is not None else LATENCY_BUCKETS


def sparse(hist: list[float]) -> list[float]:
    """A histogram's cells as [sum, index, count, index, count ...]: most series fill few buckets, and the
    snapshot is written every second."""
    out = [hist[-1]]
    for i in range(len(hist) - 1):
        n = hist[i]
        if n:
            out.append(i)
            out.append(n)
    return out


def _merge(parts: Sequence[dict[str, Any]], latency: tuple[float, ...]
           ) -> tuple[dict[str, dict[tuple[str, ...], float]], dict[str, dict[tuple[str, ...], list[float]]],
                      dict[str, dict[tuple[str, ...], float]], dict[tuple[str, str, str], list[float]]]:
    counters: dict[str, dict[tuple[str, ...], float]] = {}
    hists: dict[str, dict[tuple[str, ...], list[float]]] = {}
    gauges: dict[str, dict[tuple[str, ...], float]] = {}
    budgets: dict[tuple[str, str, str], list[float]] = {}
    told: dict[tuple[str, ...], tuple[float | None, float | None, float]] = {}
    for part in parts:
        for name, rows in part.get("c", {}).items():
            into = counters.setdefault(name, {})
            for row in rows:
                key = tuple(row[:-1])
                into[key] = into.get(key, 0) + row[-1]
        # a worker counting with other bounds (a reload that reached it later or not yet): its histograms are
        # left out of this scrape, never added bucket by bucket to counts of other bounds
        same = list(part.get("lb", LATENCY_BUCKETS)) == list(latency)
        for name, rows in part.get("h", {}).items():
            if not same and name != "litellm_deployment_latency_per_output_token":
                continue
            hinto = hists.setdefault(name, {})
            width = len(FAMILIES[name][1]) + part.get("cw", 0)  # the custom labels' values end the labels
            size = len(_buckets(name, latency)) + 2
            for row in rows:  # labels, then the sum, then (bucket index, count) pairs
                key = tuple(row[:width])
                seen = hinto.get(key)
                if seen is None:
                    seen = hinto[key] = [0.0] * size
                seen[-1] += row[width]
                for j in range(width + 1, len(row), 2):
                    seen[int(row[j])] += row[j + 1]
        for name, rows in part.get("g", {}).items():
            ginto = gauges.setdefault(name, {})
            for row in rows:
                key = tuple(row[:-1])
                value = row[-1]
                old = ginto.get(key)
                if old is None:
                    ginto[key] = value
                elif name in _SUM:
                    ginto[key] = old + value
                elif name in _WORST:
                    ginto[key] = max(old, value)
                else:
                    ginto[key] = min(old, value)
        for row in part.get("r", []):  # an upstream's remaining requests / tokens: the latest reading wins
            rkey = tuple(row[:-3])
            seen_r = told.get(rkey)
            if seen_r is None or row[-1] >= seen_r[2]:
                told[rkey] = (row[-3], row[-2], row[-1])
        for row in part.get("b", []):
            bkey = (row[0], row[1], row[2])
            seen_b = budgets.get(bkey)
            if seen_b is None or row[6] >= seen_b[3]:
                budgets[bkey] = list(row[3:7])
    merge_key_limits(parts, gauges)  # the keys' and teams' limiter readings: the latest wins
    for rkey, (requests, tokens, _at) in told.items():
        if requests is not None:
            gauges.setdefault("litellm_remaining_requests_metric", {})[rkey] = requests
        if tokens is not None:
            gauges.setdefault("litellm_remaining_tokens_metric", {})[rkey] = tokens
    return counters, hists, gauges, budgets


def _widen(rows: dict[tuple[str, ...], Any], width: int,
           merge: Callable[[Any, Any], Any]) -> dict[tuple[str, ...], Any]:
    """``rows`` with every key ``width`` labels long: padded with ``"None"`` (a series counted before the custom
    labels were configured, or by a family that has no values for them), cut when longer (after they were
    removed); series that meet merged."""
    if all(len(k) == width for k in rows):
        return rows
    out: dict[tuple[str, ...], Any] = {}
    for key, value in rows.items():
        k = (*key, *(NONE,) * (width - len(key)))[:width]
        seen = out.get(k)
        out[k] = value if seen is None else merge(seen, value)
    return out


def _gauge_merge(name: str) -> Callable[[float, float], float]:
    """How two of ``name``'s readings that meet become one (the workers' merge rule, :func:`_merge`)."""
    return (lambda a, b: a + b) if name in _SUM else max if name in _WORST else min


def render(parts: Sequence[dict[str, Any]], now: float, view: PrometheusView | None = None) -> list[str]:
    """The text lines of every ``litellm_*`` family (families without samples get their HELP / TYPE only);
    ``view``: LiteLLM's output controls (``observe.prometheus_view``: families left out, labels dropped)."""
    latency = latency_bounds(view)
    counters, hists, gauges, budgets = _merge(parts, latency)
    for legacy, current in _LEGACY.items():
        if current in gauges:
            gauges[legacy] = gauges[current]
    for kind, (remaining, maximum, hours) in _BUDGET_FAMILIES.items():
        for (k, ident, alias), (max_budget, spend, reset_at, _at) in budgets.items():
            if k != kind:
                continue
            key: tuple[str, ...] = (ident, alias) if kind != "user" else (ident,)
            gauges.setdefault(remaining, {})[key] = max_budget - spend
            gauges.setdefault(maximum, {})[key] = max_budget
            if reset_at >= 0:
                gauges.setdefault(hours, {})[key] = max(0.0, (reset_at - now) / 3600.0)
    out: list[str] = []
    custom = view.custom_names if view is not None else ()
    for name, (kind, counted, help_text) in FAMILIES.items():
        stream = name == "litellm_proxy_total_requests_metric" and view is not None and view.stream_label
        if stream or custom:  # every family carries the custom labels; a series counted without them has them "None"
            counted = (*counted, *(("stream",) if stream else ()), *custom)  # stream: prometheus_emit_stream_label
            counters[name] = _widen(counters.get(name, {}), len(counted), operator.add)
            gauges[name] = _widen(gauges.get(name, {}), len(counted), _gauge_merge(name))
            hists[name] = _widen(hists.get(name, {}), len(counted), add_lists)
        shaped = shape(view, name, counted)
        if shaped is None:
            continue
        names, keep = shaped
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        if kind == COUNTER:
            for key, value in sorted(fold(counters.get(name, {}), keep, operator.add).items()):
                out.append(f"{name}_total{_labels(names, key)} {_num(float(value))}")
        elif kind == GAUGE:
            for key, value in sorted(fold(gauges.get(name, {}), keep, _gauge_merge(name)).items()):
                out.append(f"{name}{_labels(names, key)} {_num(float(value))}")
        elif kind == HISTOGRAM:
            buckets = _buckets(name, latency)
            for key, hist in sorted(fold(hists.get(name, {}), keep, add_lists).items()):
                acc = 0.0
                for bound, n in zip(buckets, hist):
                    acc += n
                    le = 'le="' + str(bound) + '"'
                    out.append(f"{name}_bucket{_labels(names, key, le)} {_num(acc)}")
                acc += hist[len(buckets)]
                out.append(f"{name}_bucket{_labels(names, key, _INF)} {_num(acc)}")
                out.append(f"{name}_sum{_labels(names, key)} {_num(float(hist[-1]))}")
                out.append(f"{name}_count{_labels(names, key)} {_num(acc)}")
    counts = [p["n"] for p in parts if p.get("n")]
    if counts:  # every worker reads the same store: the latest read is the highest only by chance, so max
        # litellm_active_users is LiteLLM's users less those deactivated through SCIM; relaygate has no SCIM
        # and deactivates no user, so every user counts
        for name, i, help_text in (("litellm_total_users", 0, "Total number of users in LiteLLM"),
                                   ("litellm_active_users", 0, "Number of active (billable) users in LiteLLM"),
                                   ("litellm_teams_count", 1, "Total number of teams in LiteLLM")):
            if view is not None and not view.enabled(name):
                continue
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name} {_num(float(max(c[i] for c in counts)))}")
    reads = [p["tm"] for p in parts if p.get("tm") is not None]
    name = "litellm_team_members_metric"
    shaped = shape(view, name, TEAM_MEMBERS_LABELS)
    if reads and shaped is not None:  # each worker's latest read; one that read before a change counts until it
        members: dict[tuple[str, ...], int] = {}  # reads again
        for read in reads:
            for team, alias, n in read:
                members[(team, alias)] = max(members.get((team, alias), 0), n)
        out.append(f"# HELP {name} Number of members in each team")
        out.append(f"# TYPE {name} gauge")
        for key, n in sorted(fold(members, shaped[1], operator.add).items()):
            out.append(f"{name}{_labels(shaped[0], key)} {_num(float(n))}")
    return out
