"""The model catalog relaygate ships: context windows, modes, capabilities and prices of the main models of
every provider it serves, in one data file (``models.json``) with a source date.

What it owns: reading that file, LiteLLM's cost map as an override, lookups by provider and model and by
LiteLLM-style names, and a deployment's ``model_info`` / prices over the catalog. Invariants: it is loaded
once per process and never mutated; a lookup never raises (an unknown model is ``None``, which callers
treat as "no limits known, cost 0"); prices leave it in LiteLLM's key names and units (USD per token,
per second, per character, per image, per query), so ``/model/info`` and cost code speak LiteLLM's words.

The data file format (``models.json``, ours, version 1)::

    {
      "format": "relaygate-model-catalog", "version": 1,
      "source_date": "YYYY-MM-DD",          # when the prices were last checked
      "providers": {
        "<provider>": {                     # a provider prefix relaygate serves (openai, anthropic, bedrock ...)
          "extends": ["<provider>", ...],   # optional: sections read after this one (azure -> openai)
          "inherit_service_tiers": {"gpt-5": ["priority"]},
                                            # optional: the service tiers whose prices a model found in an
                                            # extended section keeps here (default: none, each provider
                                            # prices its service tiers itself)
          "models": {
            "<model id>": {                 # the id sent upstream (gpt-4o, anthropic.claude-...-v1:0)
              "mode": "chat",               # default chat; embedding, completion, image_generation,
                                            # audio_transcription, audio_speech, rerank, moderation, responses
              "context": [128000, 16384],   # [max input tokens, max output tokens]; null when unknown
              "per_mtok": {                 # USD per 1M tokens
                "input": 2.5, "output": 10, "cache_read": 1.25, "cache_write": 3.75,
                "cache_write_1h": 6,        # a cache write kept 1 hour (Anthropic's ephemeral_1h_input_tokens;
                                            # priced as cache_write when absent)
                "input_audio": 40, "output_audio": 80, "reasoning": 3
              },
              "service_tiers": {            # USD per 1M tokens of an answer served at that service tier
                "priority": {"input": 4.25, "output": 17, "cache_read": 2.125},
                "flex": {"input": 1.25, "output": 5}
              },                            # tiers: flex, priority, balanced, ultrafast (LiteLLM's names; an
                                            # answer's "fast" is priority); prices: input, output, cache_read,
                                            # cache_write, cache_write_1h, input_audio, reasoning; one a tier
                                            # lacks is the standard price, as LiteLLM
              "tiers": [{"above": 200000, "per_mtok": {"input": 6, "output": 22.5}}],
                                            # prices once the prompt exceeds `above` tokens (input, output,
                                            # cache_read, cache_write, cache_write_1h only)
              "per_image": 0.04,            # USD per generated image (default size and quality)
              "per_image_by": {"hd/1024x1792": 0.12},   # USD per image by quality/size
              "per_second": 0.0001,         # USD per second of input audio
              "per_character": 0.000015,    # USD per input character (speech, some embeddings)
              "per_query": 0.002,           # USD per request (rerank, search)
              "vector_size": 1536,          # embeddings
              "supports": ["function_calling", "vision", ...],   # entry.FLAGS
              "aliases": ["gpt-4o-2024-08-06"],                  # other ids with exactly these facts
              "exact": false                # true: never reached by dropping a date from a longer id
            }
          }
        }
      }
    }

Overrides, in LiteLLM's own formats:

- ``LITELLM_MODEL_COST_MAP_URL`` naming a local file (or ``file://`` URL) in LiteLLM's
  ``model_prices_and_context_window.json`` format: its entries win over the shipped ones (matched by
  ``litellm_provider`` and key); an ``http(s)`` URL is not downloaded (a warning says so). A config reload
  reads the file again when it changed (:func:`refresh_default`, from ``runtime.Runtime.build``), and so does
  LiteLLM's ``POST /reload/model_cost_map`` on every worker.
- a deployment's ``model_info`` (``base_model``, ``mode``, ``max_tokens``, ``max_input_tokens``,
  ``max_output_tokens``, ``supports_*``) and its prices from ``litellm_params`` / ``model_info``
  (``input_cost_per_token``, ``output_cost_per_token``, ``input_cost_per_second``,
  ``cache_read_input_token_cost``, ``*_above_200k_tokens``, ``cache_creation_input_token_cost_above_1hr``,
  service-tier prices ``input_cost_per_token_priority``, ``output_cost_per_token_flex`` ...): see
  :meth:`Catalog.for_deployment`.
"""

from relaygate.catalog.catalog import (
    OVERRIDE_ENV,
    Catalog,
    canonical_provider,
    default_catalog,
    override_path_from_env,
    refresh_default,
    reset_default,
    source_info,
)
from relaygate.catalog.entry import FLAGS, MODES, CatalogError, ModelEntry, Tier

__all__ = ["FLAGS", "MODES", "OVERRIDE_ENV", "Catalog", "CatalogError", "ModelEntry", "Tier", "canonical_provider",
           "default_catalog", "override_path_from_env", "refresh_default", "reset_default", "source_info"]
