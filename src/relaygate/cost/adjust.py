"""Provider discounts and margins on top of list prices: LiteLLM's ``litellm_settings.cost_discount_config``
and ``litellm_settings.cost_margin_config``.

What it owns (the settings are checked at start-up by ``config.cost_settings``: a ``ValueError`` naming the
entry, in LiteLLM's ranges): resolving the discount and the margin of one
deployment once per runtime snapshot (:func:`adjustment_for`, called by ``cost.pricer.Pricer`` when it builds
the deployment's price table), and applying them to a request's cost (:meth:`Adjustment.apply`).

LiteLLM's rules, as its ``cost_calculator`` applies them to every priced call:

- **Discount** (``{"vertex_ai": 0.05, "vertex_ai/claude-*": 0.2, "openai/gpt-4o": 0.1}``: a fraction in
  [0, 1]): the key ``<provider>/<model>`` naming the deployment's model exactly wins; else the
  ``<provider>/<glob>`` (``fnmatch``, case-sensitive) with the most literal characters among those that match
  (the first such in the config on a tie); else the bare ``<provider>`` key; else none. The model is matched
  without its provider prefix (``openai/gpt-4o`` and ``gpt-4o`` are the same model); a name that still
  carries the prefix only matches a pattern with a ``/`` in it.
- **Margin** (``{"openai": 0.1, "global": {"percentage": 0.08, "fixed_amount": 0.0005}}``: a fraction in
  [0, 10], or an object with ``percentage`` and/or ``fixed_amount`` in USD per request): the provider's
  entry, else ``global``, else none. It is added to the cost *after* the discount.
- The cost a request is charged (``x-litellm-response-cost``, the spend logs, every budget and counter) is
  ``cost x (1 - discount) x (1 + percentage) + fixed_amount``. A model nobody priced costs 0 and gets no
  margin either (LiteLLM prices it at nothing before any margin is looked at); a cache hit costs 0.

Amounts are kept in pico-USD integers like every other cost (``cost.prices``); each part is rounded to the
nearest pico-USD. Nothing here runs unless one of the two settings is given (``Pricer.adjusting``).
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from relaygate.cost.prices import to_pico, usd

__all__ = ["Adjustment", "Parts", "adjustment_for", "breakdown", "headers", "resolve_discount",
           "resolve_margin"]

_GLOB = frozenset("*?[")


def _names(model: str, prefix: str) -> tuple[str, ...]:
    """``model`` without each of its leading ``prefix`` repeats (``openai/openai/x`` -> ``openai/x``, ``x``);
    ``model`` itself when it has none."""
    depth = 0
    while model.startswith(prefix * (depth + 1)):
        depth += 1
    if depth == 0:
        return (model,)
    return tuple(model[len(prefix) * level:] for level in range(1, depth + 1))


def _literal_length(pattern: str) -> int:
    """The characters of a glob that match only themselves (``*``, ``?`` and bracket sets do not count)."""
    n = 0
    i = 0
    size = len(pattern)
    while i < size:
        c = pattern[i]
        if c == "[":
            j = i + 1
            if j < size and pattern[j] == "!":
                j += 1
            if j < size and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close >= 0:  # a set: one character of several
                i = close + 1
                continue
        if c not in "*?":
            n += 1
        i += 1
    return n


def resolve_discount(config: Mapping[str, float], provider: str | None, model: str | None) -> float | None:
    """The discount of ``provider``'s ``model`` under ``config`` (see the module docstring), None: none."""
    if not provider or not config:
        return None
    prefix = provider + "/"
    names = _names(model, prefix) if model else ()
    exact: dict[str, float] = {}
    globs: list[tuple[str, float]] = []
    for key, value in config.items():
        p, slash, pattern = key.partition("/")
        if p != provider or not slash:
            continue
        if _GLOB.isdisjoint(pattern):
            exact[pattern] = value
        else:
            globs.append((pattern, value))
    for name in names:
        if name in exact:
            return exact[name]
    best: tuple[int, float] | None = None
    for pattern, value in globs:
        if any(fnmatchcase(name, pattern) for name in names if "/" in pattern or not name.startswith(prefix)):
            score = _literal_length(pattern)
            if best is None or score > best[0]:
                best = (score, value)
    if best is not None:
        return best[1]
    return config.get(provider)


def resolve_margin(config: Mapping[str, Any], provider: str | None) -> tuple[float, float] | None:
    """``(percentage, fixed USD)`` of ``provider``'s margin under ``config`` (its own, else ``global``), None:
    none."""
    value = config.get(provider) if provider and provider in config else config.get("global")
    if value is None:
        return None
    if isinstance(value, dict):
        return float(value.get("percentage", 0.0)), float(value.get("fixed_amount", 0.0))
    return float(value), 0.0


Parts = tuple[int, int, int, float, float, int]
"""A charged request's ``(original, discount amount, margin amount, margin percentage, discount fraction, fixed
margin)``: pico-USD before the discount and margin, the amount taken off, the amount added (percentage and
fixed together), the margin's percentage, the discount, and the margin's fixed pico-USD."""


class Adjustment:
    """One deployment's discount and margin, resolved once (see the module docstring)."""

    __slots__ = ("discount", "fixed", "percentage")

    def __init__(self, discount: float, percentage: float, fixed_usd: float) -> None:
        self.discount = discount
        self.percentage = percentage
        self.fixed = to_pico(fixed_usd)

    def apply(self, pico: int) -> tuple[int, Parts]:
        """The charged pico-USD of a request whose list-price cost is ``pico``, and its :data:`Parts`."""
        off = round(pico * self.discount) if self.discount else 0
        after = pico - off
        margin = (round(after * self.percentage) if self.percentage else 0) + self.fixed
        return after + margin, (pico, off, margin, self.percentage, self.discount, self.fixed)


def adjustment_for(discounts: Mapping[str, float], margins: Mapping[str, Any], provider: str,
                   model: str) -> Adjustment | None:
    """The :class:`Adjustment` of a deployment of ``provider`` serving ``model``, None when neither setting
    has an entry that applies to it."""
    discount = resolve_discount(discounts, provider, model)
    margin = resolve_margin(margins, provider)
    if discount is None and margin is None:
        return None
    percentage, fixed = margin if margin is not None else (0.0, 0.0)
    return Adjustment(discount or 0.0, percentage, fixed)


def headers(parts: Parts) -> list[tuple[bytes, bytes]]:
    """LiteLLM's cost breakdown headers of a charged request (USD, as ``x-litellm-response-cost``)."""
    original, off, margin, percentage = parts[:4]
    return [(b"x-litellm-response-cost-original", repr(usd(original)).encode()),
            (b"x-litellm-response-cost-discount-amount", repr(usd(off)).encode()),
            (b"x-litellm-response-cost-margin-amount", repr(usd(margin)).encode()),
            (b"x-litellm-response-cost-margin-percent", repr(float(percentage)).encode())]


def breakdown(parts: Parts) -> dict[str, float]:
    """LiteLLM's ``cost_breakdown`` of a charged request (USD; its ``StandardLoggingPayload`` field, in the spend
    log's ``metadata`` and OpenTelemetry's ``gen_ai.cost.*``), the parts the discount and margin make."""
    original, off, margin, percentage, discount, fixed = parts
    return {"total_cost": usd(original - off + margin), "original_cost": usd(original),
            "discount_percent": discount, "discount_amount": usd(off), "margin_percent": percentage,
            "margin_fixed_amount": usd(fixed), "margin_total_amount": usd(margin)}
