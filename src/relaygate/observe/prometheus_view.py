"""LiteLLM's Prometheus output controls applied to the ``litellm_*`` families as ``/metrics`` writes them.

What it owns: :func:`shape` (a family's labels as the view leaves them, or None when it is not written),
:func:`fold` (the family's series merged over the labels dropped) and :func:`unknown_names` (the view's names
relaygate does not emit, for one startup warning). The view itself is ``config.prometheus_view``.

Counting is unchanged: the view only changes what is written at scrape time, so it costs the request path
nothing. A family that loses labels has its series merged the way one series would have counted them all:
counters and histograms summed (LiteLLM's client library ends up with the same: one series every request
increments); gauges by the family's own merge rule (``_SUM`` families summed, ``_WORST`` the highest, the
others the lowest: remaining requests, tokens and budgets are the safe figure), where LiteLLM keeps whichever
value was set last. A name LiteLLM defines that relaygate does not emit (its MCP, guardrail or batch
families) is accepted and warned about, not refused: a config LiteLLM starts with starts here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from relaygate.config.prometheus_view import PrometheusView

__all__ = ["add_lists", "fold", "shape", "unknown_names", "view_of"]

log = logging.getLogger("relaygate.observe")


def shape(view: PrometheusView | None, family: str, names: tuple[str, ...]
          ) -> tuple[tuple[str, ...], tuple[int, ...] | None] | None:
    """``family``'s label names as written and the positions they take from the counted ones (None: all);
    None when ``view`` leaves the family out."""
    if view is None:
        return names, None
    if not view.enabled(family):
        return None
    keep = view.kept(family, names)
    return (names, None) if keep is None else (tuple(names[i] for i in keep), keep)


def fold(rows: dict[tuple[str, ...], Any], keep: tuple[int, ...] | None,
         merge: Callable[[Any, Any], Any]) -> dict[tuple[str, ...], Any]:
    """``rows`` (label values -> value) with only the labels at ``keep``, values of series that meet merged
    with ``merge``."""
    if keep is None:
        return rows
    out: dict[tuple[str, ...], Any] = {}
    for key, value in rows.items():
        k = tuple(key[i] for i in keep)
        seen = out.get(k)
        out[k] = value if seen is None else merge(seen, value)
    return out


def add_lists(a: list[float], b: list[float]) -> list[float]:
    """Two histograms' cells summed."""
    return [x + y for x, y in zip(a, b, strict=True)]


def unknown_names(view: PrometheusView, families: dict[str, tuple[Any, tuple[str, ...], Any]],
                  extra: Iterable[tuple[str, tuple[str, ...]]] = ()) -> list[str]:
    """The view's families relaygate does not write, and its labels no family has (sorted)."""
    custom = view.custom_names  # every family carries the custom labels too
    known = {name: (*f[1], *custom) for name, f in families.items()}
    known.update(extra)
    known.update({f"{name}_total": names for name, names in known.items() if families.get(name, ("",))[0] == "counter"
                  and not name.endswith("_total")})  # a counter as LiteLLM's code names it (PrometheusView.enabled)
    out = [f"metric {n}" for n in sorted((view.metrics or frozenset()) | view.exclude_metrics) if n not in known]
    labels = {label for names in known.values() for label in names}
    out += [f"label {n}" for n in sorted(view.exclude_labels) if n not in labels]
    for family, only in sorted(view.include_labels.items()):
        if family in known:
            out += [f"label {n} of {family}" for n in only if n not in known[family]]
    return out


_warned: list[PrometheusView] = []


def view_of(config: Any) -> PrometheusView | None:
    """``config``'s view (``config.observe.prometheus_view``); the names it gives that relaygate does not write
    are logged once per view (a warning: LiteLLM defines families relaygate has not)."""
    obs = config.observe
    view = obs.prometheus_view if obs is not None else None
    if view is not None and view not in _warned:
        from relaygate.observe.prometheus_families import FAMILIES
        from relaygate.observe.prometheus_text import EXTRA_FAMILIES

        _warned[:] = [view]
        missing = unknown_names(view, FAMILIES, EXTRA_FAMILIES)
        if missing:
            log.warning("prometheus: litellm_settings name %s, which relaygate does not write: ignored",
                        ", ".join(missing))
    return view

