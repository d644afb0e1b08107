"""What one deployment costs, as integers: a :class:`PriceTable` built once per deployment and snapshot.

What it owns: turning the catalog's prices (``catalog.ModelEntry``: LiteLLM's key names, USD per token,
per image, per second, per character, per query; a deployment's own prices already over them) into
integer **pico-USD** (10^-12 USD) per unit, and the arithmetic of one request's cost on them.

Invariants:

- Every price is an ``int`` of pico-USD, converted once from the catalog's float through its shortest
  decimal spelling (``repr``), so ``2.5e-06`` USD per token is exactly ``2_500_000``; a price finer than
  a pico-USD (none in the catalog) is rounded half-even. A request's cost is a sum of ``int`` products:
  exact, no float drift, whatever the number of requests added up. USD as a float exists only at the
  edges (:func:`usd`: the ``x-litellm-response-cost`` header, ``CompletionRecord.cost``);
  :func:`pico_of` gets the exact integer back from such a float for any cost below 4,500 USD.
- Prompt tokens follow OpenAI's usage: ``prompt`` includes the cached-read and cache-write tokens, which
  are priced apart (``cache_read_input_token_cost`` / ``cache_creation_input_token_cost``, the input
  price when the model has none), as LiteLLM's ``generic_cost_per_token``; reasoning tokens are part of
  ``completion`` and priced as output unless the model has ``output_cost_per_reasoning_token``; audio
  tokens (``*_tokens_details.audio_tokens``) are part of ``prompt`` / ``completion`` and priced at
  ``input_cost_per_audio_token`` / ``output_cost_per_audio_token`` (the text price when the model has
  none), as LiteLLM.
- Cache writes Anthropic keeps 1 hour (``ephemeral_1h_input_tokens``, part of the cache-write tokens) cost
  ``cache_creation_input_token_cost_above_1hr``, the cache-write price when the model has none, as
  LiteLLM's ``calculate_cache_writing_cost``.
- Tiers (``*_above_<N>k_tokens``): the highest tier whose threshold the prompt exceeds gives the token
  prices it names (the others stay the base ones), decided by the prompt's size as LiteLLM.
- Service tiers (:data:`~relaygate.catalog.entry.SERVICE_TIERS`: an answer served at ``priority`` or
  ``flex`` ...): a model with any ``<key>_<tier>`` price has a second set of tables for that tier, built as
  LiteLLM's ``_get_token_base_cost`` looks prices up: each price is ``<key>_<tier>``, else the standard
  ``<key>`` (then the usual defaults: cache prices fall back to the tier's input price); above a size
  threshold ``<key>_above_<N>k_tokens_<tier>``, else ``<key>_above_<N>k_tokens`` (never for the 1-hour
  cache-write price: LiteLLM's lookup skips it at any service tier, so a model whose size tiers price 1-hour
  writes has tables for every service tier), else the tier's price;
  reasoning tokens cost the tier's output price when the tier prices output but not reasoning; output
  audio is never tier-priced. Which tier an answer is billed at is decided by ``cost.usage``.
- Nothing here does IO or reads a clock; pricing a request is a tier test and a few multiplications.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from relaygate.catalog import ModelEntry
from relaygate.catalog.entry import SERVICE_TIERS, TIERED
from relaygate.cost.zero_cost import rated

__all__ = ["FREE", "PICO", "PriceTable", "pico_of", "to_pico", "usd"]

PICO = 10**12
"""pico-USD per USD."""
_PICO_D = Decimal(PICO)


def to_pico(value: float | int | str | Decimal) -> int:
    """A USD amount as integer pico-USD (through the float's shortest decimal spelling: no binary noise)."""
    d = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value))
    return int((d * _PICO_D).to_integral_value(ROUND_HALF_EVEN))


def usd(pico: int) -> float:
    """pico-USD as a float USD (only at the edges: headers, the record)."""
    return pico / PICO


def pico_of(cost: float) -> int:
    """The exact pico-USD integer behind a float :func:`usd` made (exact below 4,500 USD a request)."""
    return round(cost * PICO)


class _Tokens:
    """Token prices at one tier: input, output, cached read, cache write (and kept 1 hour), reasoning,
    audio in and out (pico-USD per token)."""

    __slots__ = ("audio_in", "audio_out", "cache_read", "cache_write", "cache_write_1h", "input", "output",
                 "reasoning")

    def __init__(self, prices: dict[str, float]) -> None:
        g = prices.get
        self.input = to_pico(g("input_cost_per_token", 0.0))
        self.output = to_pico(g("output_cost_per_token", 0.0))
        cr, cw, rs = (g("cache_read_input_token_cost"), g("cache_creation_input_token_cost"),
                      g("output_cost_per_reasoning_token"))
        self.cache_read = to_pico(cr) if cr is not None else self.input
        self.cache_write = to_pico(cw) if cw is not None else self.input
        w1 = g("cache_creation_input_token_cost_above_1hr")
        self.cache_write_1h = to_pico(w1) if w1 is not None else self.cache_write
        self.reasoning = to_pico(rs) if rs is not None else self.output
        ai, ao = g("input_cost_per_audio_token"), g("output_cost_per_audio_token")
        self.audio_in = to_pico(ai) if ai is not None else self.input
        self.audio_out = to_pico(ao) if ao is not None else self.output


_WRITE_1H = "cache_creation_input_token_cost_above_1hr"
_BY_SERVICE_TIER = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                    "cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr",
                    "output_cost_per_reasoning_token", "input_cost_per_audio_token")
"""The prices LiteLLM looks up by service tier (``output_cost_per_audio_token`` is not one)."""
_TierTables = tuple[_Tokens, tuple[tuple[int, _Tokens], ...]]


def _service_prices(entry: ModelEntry, tier: str, thresholds: tuple[int, ...], prompt: int) -> dict[str, float]:
    """The prices of ``entry`` at service tier ``tier`` for a prompt of ``prompt`` tokens, in the base key
    names (the rules in the module docstring)."""
    flat = entry.prices
    sfx = "_" + tier
    out = dict(flat)
    for k in _BY_SERVICE_TIER:
        v = flat.get(k + sfx)
        if v is not None:
            out[k] = v
    if "output_cost_per_token" + sfx in flat and "output_cost_per_reasoning_token" + sfx not in flat:
        out.pop("output_cost_per_reasoning_token", None)
    sized = {t.above: t.prices for t in entry.tiers}
    for above in thresholds:
        if prompt > above:
            for k, v in sized.get(above, {}).items():
                if k != _WRITE_1H:  # LiteLLM reads only <1h key>_above_<N>k_tokens_<tier> at a service tier
                    out[k] = v
            for k in TIERED:
                v = flat.get(f"{k}_above_{above // 1000}k_tokens{sfx}")
                if v is not None:
                    out[k] = v
    return out


def _service_tables(entry: ModelEntry | None) -> dict[str, _TierTables]:
    """Per service tier the model prices (any ``<key>_<tier>``): its base table and size tiers. Every tier
    has its tables when a size tier prices 1-hour cache writes, which LiteLLM ignores at any service tier."""
    if entry is None:
        return {}
    out: dict[str, _TierTables] = {}
    sized_1h = any(_WRITE_1H in t.prices for t in entry.tiers)
    for tier in SERVICE_TIERS:
        sfx = "_" + tier
        own = [k for k in entry.prices if k.endswith(sfx)]
        if not own and not sized_1h:
            continue
        above = {t.above for t in entry.tiers}
        for k in own:  # thresholds only this tier has (<key>_above_<N>k_tokens_<tier>)
            base, _, rest = k[:-len(sfx)].rpartition("_above_")
            if base in TIERED and rest.endswith("k_tokens") and rest[:-8].isdigit():
                above.add(int(rest[:-8]) * 1000)
        thresholds = tuple(sorted(above))
        out[tier] = (_Tokens(_service_prices(entry, tier, thresholds, 0)),
                     tuple((a, _Tokens(_service_prices(entry, tier, thresholds, a + 1))) for a in thresholds))
    return out


class PriceTable:
    """One deployment's prices in pico-USD, precomputed. ``known`` is False for a model nobody priced
    (every method then answers 0)."""

    __slots__ = ("base", "image_by", "known", "model", "per_character", "per_image", "per_query",
                 "per_second", "prices", "provider", "rated", "service", "tiers")

    def __init__(self, entry: ModelEntry | None, provider: str = "", model: str = "") -> None:
        self.known = entry is not None and bool(entry.prices or entry.tiers or entry.image_prices)
        self.provider = entry.provider if entry is not None else provider
        self.model = entry.model if entry is not None else model
        prices = self.prices = entry.prices if entry is not None else {}
        """The entry's flat prices as the catalog has them (absent keys absent: ``cost.zero_cost`` reads them)."""
        self.rated = entry is not None and self.known and rated(prices, entry.image_prices, *(
            t.prices for t in entry.tiers))
        """Some price is positive: an answer with usage priced 0 is diagnosed (``cost.zero_cost``)."""
        self.base = _Tokens(prices)
        self.tiers: tuple[tuple[int, _Tokens], ...] = tuple(
            (t.above, _Tokens(entry.prices_at(t.above + 1))) for t in entry.tiers) if entry is not None else ()
        g = prices.get
        self.per_image = to_pico(g("output_cost_per_image", 0.0))
        self.per_second = to_pico(g("input_cost_per_second", 0.0))
        self.per_character = to_pico(g("input_cost_per_character", 0.0))
        self.per_query = to_pico(g("input_cost_per_query", 0.0))
        self.image_by = {k: to_pico(v) for k, v in entry.image_prices.items()} if entry is not None else {}
        self.service = _service_tables(entry)
        """Service tier (``priority``, ``flex`` ...) -> its base table and size tiers; empty for a model
        priced the same at every tier (most), so the hot path tests one field."""

    def tokens(self, prompt: int, completion: int, cache_read: int = 0, cache_write: int = 0,
               reasoning: int = 0, audio_in: int = 0, audio_out: int = 0, cache_write_1h: int = 0,
               service_tier: str = "") -> int:
        """pico-USD of a token-priced answer (OpenAI's usage: ``prompt`` includes both cache counts and
        ``audio_in``, ``completion`` the reasoning tokens and ``audio_out``; ``cache_write_1h`` is the part
        of ``cache_write`` kept 1 hour) served at ``service_tier`` (a cost-key suffix, ``cost.usage``'s
        resolution; ``""`` or ``default``: the standard prices, as is a tier the model has no price for)."""
        tiers = self.tiers
        p = self.rates(prompt, service_tier) if service_tier or (tiers and prompt > tiers[0][0]) else self.base
        text_in = prompt - cache_read - cache_write
        if text_in < 0:
            text_in = 0
        cost = text_in * p.input + completion * p.output
        if cache_read:
            cost += cache_read * p.cache_read
        if cache_write:
            cost += cache_write * p.cache_write
            if cache_write_1h:
                cost += min(cache_write_1h, cache_write) * (p.cache_write_1h - p.cache_write)
        if reasoning and p.reasoning != p.output:
            cost += (min(reasoning, completion)) * (p.reasoning - p.output)
        if audio_in:
            cost += min(audio_in, text_in) * (p.audio_in - p.input)
        if audio_out:
            cost += min(audio_out, completion) * (p.audio_out - p.output)
        return cost

    def rates(self, prompt: int, service_tier: str = "") -> _Tokens:
        """The token prices a request of ``prompt`` input tokens is billed at (its size tier, at
        ``service_tier``), as :meth:`tokens` picks them."""
        p = self.base
        tiers = self.tiers
        if service_tier:
            s = self.service.get(service_tier)
            if s is not None:
                p, tiers = s
        if tiers and prompt > tiers[0][0]:
            for above, t in tiers:
                if prompt > above:
                    p = t
        return p

    def images(self, n: int, size: str = "", quality: str = "") -> int:
        """pico-USD of ``n`` generated images (by ``quality/size``, then ``size``, then the default)."""
        by = self.image_by
        price = self.per_image
        if by:
            found = by.get(f"{quality}/{size}") if quality else None
            if found is None:
                found = by.get(size) if size else None
            if found is None and quality and quality != "standard":
                found = by.get(f"{quality}/1024x1024")
            if found is not None:
                price = found
        return n * price

    def seconds(self, seconds: float) -> int:
        """pico-USD of ``seconds`` of input audio (exact for durations given to the millisecond)."""
        return (to_pico(round(seconds, 3)) * self.per_second) // PICO

    def characters(self, n: int) -> int:
        return n * self.per_character

    def queries(self, n: int = 1) -> int:
        return n * self.per_query


FREE = PriceTable(None)
"""The table of a model that costs nothing (the built-in mock) or is unknown."""
