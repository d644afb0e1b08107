"""A snapshot's prices: one :class:`~relaygate.cost.prices.PriceTable` per deployment, and the rules for
models nobody priced.

What it owns: building each deployment's table once per runtime snapshot (``Runtime.build``) from the
catalog entry for its provider and model, or ``model_info.base_model``, with the deployment's own prices
winning (``Catalog.for_deployment``), and finding a request's table by its target in one dict look-up.
A wildcard deployment (``openai/*``) serves many upstream models: each one's table is built on its first
request and kept (bounded), keyed by deployment id and upstream model.

An unknown model (no catalog entry and no deployment prices) costs 0: it is logged once per process and
model (a warning, never an error) and each request priced at 0 for that reason is counted in the
``cost_unknown_model`` event of ``relaygate_events_total`` (``/metrics``). The built-in ``mock`` provider
is free without a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relaygate.catalog import Catalog, default_catalog
from relaygate.cost.adjust import Adjustment, Parts, adjustment_for
from relaygate.cost.prices import FREE, PriceTable

if TYPE_CHECKING:
    from relaygate.config.model import Config, Deployment

__all__ = ["UNKNOWN_EVENT", "Pricer"]

log = logging.getLogger("relaygate.cost")

UNKNOWN_EVENT = "cost_unknown_model"
"""The ``relaygate_events_total`` event counting requests priced 0 because their model has no price."""
_FREE_PROVIDERS = frozenset({"mock"})
_MAX_TABLES = 4096
_warned: set[tuple[str, str]] = set()


def _warn_unknown(provider: str, model: str) -> None:
    key = (provider, model)
    if key not in _warned and len(_warned) < _MAX_TABLES:
        _warned.add(key)
        log.warning("no price known for %s/%s: its requests cost 0 (add it to model_info / litellm_params "
                    "input_cost_per_token and output_cost_per_token, or to a cost map)", provider, model)


class Pricer:
    """The price tables of one runtime snapshot. ``table(dep)`` is the request-time call."""

    __slots__ = ("_adjust", "_catalog", "_discounts", "_margins", "_tables", "adjusting", "metrics", "on_unknown")

    def __init__(self, config: Config, catalog: Catalog | None = None, metrics: Any = None) -> None:
        self._catalog = catalog
        self.metrics = metrics
        self.on_unknown: Callable[[Deployment], None] | None = None
        """Told of each request priced 0 because its model has no price (the alerter's ``failed_tracking_spend``,
        which decides how often to say so); None: nobody asked."""
        self._tables: dict[tuple[str, str], PriceTable] = {}
        general = config.general
        self._discounts = general.cost_discount_config
        self._margins = general.cost_margin_config
        self.adjusting = bool(self._discounts or self._margins)
        """A discount or margin is configured (``cost.adjust``): the request path asks :meth:`charge`."""
        self._adjust: dict[tuple[str, str], Adjustment | None] = {}
        for dep in config.deployments:
            if not dep.is_wildcard:
                self._tables[(dep.id, dep.upstream_model)] = self._build(dep)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = default_catalog()
        return self._catalog

    def _build(self, dep: Deployment) -> PriceTable:
        if dep.provider in _FREE_PROVIDERS and not dep.costs:
            return FREE
        table = PriceTable(self.catalog.for_deployment(dep), dep.provider, dep.upstream_model)
        if not table.known:
            _warn_unknown(dep.provider, dep.upstream_model)
        return table

    def peek(self, dep: Deployment) -> PriceTable:
        """The deployment's prices, without counting an unknown model (:meth:`table` counts)."""
        t = self._tables.get((dep.id, dep.upstream_model))
        if t is None:  # past the tables kept (many wildcard models): built again, rarely
            t = self._build(dep)
        return t

    def priced(self, dep: Deployment) -> bool:
        """Whether the deployment that answered has prices (its table was built by :meth:`table`, which
        counts an unknown model once; this asks again without counting)."""
        return self.peek(dep).known

    def charge(self, dep: Deployment, pico: int) -> tuple[int, Parts | None]:
        """What a request answered by ``dep`` whose list-price cost is ``pico`` is charged, with the discount and
        margin that apply to ``dep`` (``cost.adjust``), and their parts (None: none applies, or the model has
        no price: it costs 0 and gets no margin, as in LiteLLM). Called only when :attr:`adjusting`."""
        key = (dep.id, dep.upstream_model)
        if key in self._adjust:
            adj = self._adjust[key]
        else:
            adj = adjustment_for(self._discounts, self._margins, dep.provider, dep.upstream_model)
            if len(self._adjust) < _MAX_TABLES:
                self._adjust[key] = adj
        if adj is None or not self.priced(dep):
            return pico, None
        return adj.apply(pico)

    def charged(self, dep: Deployment, pico: int) -> int:
        """:meth:`charge`'s amount alone (the same amount whatever the caller: pass-through, stream usage frames,
        ``/spend/calculate``)."""
        return self.charge(dep, pico)[0] if self.adjusting else pico

    def table(self, dep: Deployment) -> PriceTable:
        """The prices of the deployment that answered (a wildcard's concrete deployment included); counts
        a request of an unknown model."""
        key = (dep.id, dep.upstream_model)
        t = self._tables.get(key)
        if t is None:
            t = self._build(dep)
            if len(self._tables) < _MAX_TABLES:
                self._tables[key] = t
        if not t.known and t is not FREE:
            if self.metrics is not None:
                self.metrics.count(UNKNOWN_EVENT)
            if self.on_unknown is not None:
                self.on_unknown(dep)
        return t
