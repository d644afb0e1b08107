"""OpenAI's files and batches APIs (``/v1/files``, ``/v1/batches``) relayed to ``openai/`` and ``azure/``
deployments, with ids that reach the same deployment later and an owner per object (issue 14).

- ``ids``: the ids clients hold (deployment + upstream id, signed; tampered or foreign ids are unknown);
- ``choose``: which deployment a call goes to (``model`` / ``target_model_names`` / ``custom_llm_provider``
  as LiteLLM reads them) and its upstream URLs and headers;
- ``upload``: a multipart upload read up to its file part, then streamed to the upstream;
- ``api``: the handlers, ownership (``store.files``), error relay and completion records.

:func:`add_routes` is what ``gateway.core`` calls.
"""

from __future__ import annotations

from relaygate.files.api import FilesApi, add_routes

__all__ = ["FilesApi", "add_routes"]
