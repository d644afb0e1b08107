"""Why a billable answer was priced at $0: LiteLLM 1.110's zero-cost diagnostic, on a deployment's prices.

What it owns: :func:`diagnose`, called by ``Frontend.price`` only when an answer with usage came to 0 pico-USD
on a model that has prices (so an answer that costs something pays one integer test for it). As LiteLLM's
``diagnose_zero_cost``:

- **the prices the usage needed**: ``input_cost_per_token`` for the prompt's text tokens (the prompt less its
  cached-read and audio tokens), ``input_cost_per_audio_token`` for its audio, ``cache_read_input_token_cost``
  for the cached-read tokens (the input price when the model has none, as the cost is computed),
  ``output_cost_per_token`` for the completion's text tokens and ``output_cost_per_audio_token`` for its audio;
- **no finding** when the usage needed none, when every price it needed is there and is 0 (a model marked
  free), or when the model has no positive price at all;
- **missing_pricing_key**: a price the usage needed is not in the model's entry (``missing_pricing_keys``
  names them); **pricing_not_applied**: they are all there, some positive, and the cost still came to 0.

LiteLLM's third reason, ``cost_calculation_error``, is a calculation that raised: relaygate's integer pricing
does not raise. The finding goes into the completion record (``CompletionRecord.zero_cost``), hence into
LiteLLM's ``litellm_zero_cost_requests_total{reason}`` and the standard payload's ``zero_cost_diagnostic``;
:func:`warn` logs LiteLLM's warning for it, at most once a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from relaygate.logs import Every

__all__ = ["ZeroCost", "diagnose", "rated", "warn"]

log = logging.getLogger("relaygate.cost")

ZeroCost = tuple[str, str, tuple[str, ...]]
"""``(reason, pricing model, missing pricing keys)``: LiteLLM's ``StandardLoggingZeroCostDiagnostic``."""

_INPUT, _AUDIO_IN, _CACHE_READ, _OUTPUT, _AUDIO_OUT = (
    "input_cost_per_token", "input_cost_per_audio_token", "cache_read_input_token_cost", "output_cost_per_token",
    "output_cost_per_audio_token")
_every = Every(60.0)


def rated(prices: Mapping[str, float], *more: Mapping[str, float]) -> bool:
    """Whether any price (a key naming a cost or pricing) of the model is positive."""
    return any(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and ("cost" in k or "pricing" in k)
               for m in (prices, *more) for k, v in m.items())


def diagnose(model: str, prices: Mapping[str, float], prompt: int, completion: int, cache_read: int = 0,
             audio_in: int = 0, audio_out: int = 0) -> ZeroCost | None:
    """The finding for an answer priced at 0 with this usage on a model with these ``prices`` (its entry's
    flat prices; the caller knows the model has a positive one), or None (see the module docstring)."""
    text_in = max(prompt - cache_read - audio_in, 0)
    used = []
    for key, count in ((_INPUT, text_in), (_AUDIO_IN, audio_in), (_CACHE_READ, cache_read),
                       (_OUTPUT, completion - audio_out), (_AUDIO_OUT, audio_out)):
        if count > 0:
            if key == _CACHE_READ and prices.get(key) is None:  # priced at the input price, as the cost is
                key = _INPUT
            if key not in used:
                used.append(key)
    if not used:
        return None
    missing = tuple(k for k in used if prices.get(k) is None)
    if missing:
        return ("missing_pricing_key", model, missing)
    if all(prices[k] == 0 for k in used):
        return None
    return ("pricing_not_applied", model, ())


def warn(found: ZeroCost, group: str, provider: str, prompt: int, completion: int) -> None:
    """LiteLLM's warning for a billable answer priced at 0, at most once a minute (the metric counts them all);
    every value is the config's or a count, never the client's text."""
    quiet = _every.ready()
    if quiet is None:
        return
    reason, model, missing = found
    cause = (f"pricing entry '{model}' has no {', '.join(missing)}. Set the missing rate in the deployment's "
             "model_info or in the model cost map, or set every rate to 0 to mark the model free"
             if reason == "missing_pricing_key" else
             f"pricing entry '{model}' declares non-zero rates for this usage, but the cost calculator returned $0")
    log.warning("Billable request priced at $0 and logged as such (model_group=%s model=%s provider=%s "
                "prompt_tokens=%d completion_tokens=%d): %s. Counted in litellm_zero_cost_requests_total"
                '{reason="%s"} (%d more not logged since the last)', group, model, provider or "unknown", prompt,
                completion, cause, reason, quiet)
