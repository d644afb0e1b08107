"""Cost: what each request cost, exactly, from the usage its provider returned.

``prices`` (integer pico-USD tables and their arithmetic, service tiers included), ``usage`` (cache,
reasoning and audio counts and the billed service tier, read from an answer), ``pricer`` (one snapshot's
tables, per deployment, built once; unknown models cost 0 with one warning and a counted event). The
pipeline prices an exchange where it reads its usage (``pipeline.frontend.Frontend.price``); see
docs/architecture.md "Cost".
"""

from relaygate.cost.pricer import UNKNOWN_EVENT, Pricer
from relaygate.cost.prices import FREE, PICO, PriceTable, pico_of, to_pico, usd
from relaygate.cost.usage import DEFAULT_TIER, Details, details, requested_tier, tier_label

__all__ = ["DEFAULT_TIER", "FREE", "PICO", "UNKNOWN_EVENT", "Details", "PriceTable", "Pricer", "details", "pico_of",
           "requested_tier", "tier_label", "to_pico", "usd"]
