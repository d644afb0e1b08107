"""Which deployment a files or batches call goes to, and the upstream URLs and headers for it (no IO).

A call that creates something (an upload; a listing without a database) names where it goes as LiteLLM's
proxy reads it, first match wins:

1. a **model group**: ``model`` (form field / JSON body, ``?model=``, ``x-litellm-model`` header) or
   ``target_model_names`` (form field / body / query; LiteLLM's managed files): the group is resolved as a
   chat request's model is (aliases, the key's aliases, wildcards), the key's allow-list must cover it (401
   ``key_model_access_denied`` as LiteLLM), and one of its ``openai/`` or ``azure/`` deployments is picked at
   random (the group's load balancing; LiteLLM writes a ``target_model_names`` file to every deployment of
   the group, relaygate to one, and later calls on the id go to that one);
2. a **provider**: the ``/{provider}/v1/files`` path, the ``custom-llm-provider`` header, the
   ``custom_llm_provider`` query parameter or form / body field, else ``openai``: the first deployment of
   that provider, in config order, whose group the key may use.

Every later call on an id goes to the deployment the id names (``files.ids``); a batch goes to its input
file's deployment. Only ``openai`` and ``azure`` deployments hold files and batches (400 otherwise).

URLs: OpenAI-family deployments use ``{api_base}/files`` (``api_base`` ends in ``/v1``); Azure OpenAI uses
the resource's ``{api_base}/openai/files?api-version=...`` with its ``api-key`` header (files and batches
belong to the Azure resource, not to one model deployment), or ``{api_base}/files`` for a base that ends in
``/openai/v1``. Upstream ids go into the path quoted as one segment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from relaygate.auth.resolver import Principal
from relaygate.core import errors
from relaygate.router import ModelGroup, Router, Target

__all__ = ["FILE_PROVIDERS", "Where", "by_id", "choose", "headers_for", "segment", "url_for"]

FILE_PROVIDERS = frozenset({"openai", "azure"})
_RNG = random.Random()


class Where:
    """What a request said about where it goes (each None when not given)."""

    __slots__ = ("model", "provider")

    def __init__(self, model: str | None = None, provider: str | None = None) -> None:
        self.model = model
        self.provider = provider

    @classmethod
    def read(cls, path_provider: str | None, headers: Iterable[tuple[bytes, bytes]], query: Mapping[str, str],
             fields: Mapping[str, str]) -> Where:
        """The model group and provider a request names, in LiteLLM's order of sources."""
        hdr: dict[bytes, str] = {}
        for k, v in headers:
            if k in (b"x-litellm-model", b"custom-llm-provider"):
                hdr.setdefault(k, v.decode("latin-1").strip())
        model = fields.get("model") or query.get("model") or hdr.get(b"x-litellm-model") or None
        if not model:
            names = fields.get("target_model_names") or query.get("target_model_names") or ""
            listed = [n.strip() for n in names.split(",") if n.strip()]
            if len(set(listed)) > 1:
                raise errors.BadRequest(
                    "target_model_names: relaygate writes a file to one model group; name one (got "
                    f"{len(listed)})", param="target_model_names")
            model = listed[0] if listed else None
        provider = (path_provider or hdr.get(b"custom-llm-provider") or query.get("custom_llm_provider")
                    or fields.get("custom_llm_provider") or None)
        return cls(model.strip() if model else None, provider.strip().lower() if provider else None)


def _eligible(group: ModelGroup) -> list[Target]:
    return [t for t in group.targets if t.dep.provider in FILE_PROVIDERS]


def choose(router: Router, who: Principal, where: Where, rng: random.Random | None = None) -> Target:
    """The deployment a create (or a listing without a database) goes to; 400 / 401 as LiteLLM answers."""
    if where.model:
        model = where.model
        key = who.key
        if key is not None and key.aliases:
            model = key.aliases.get(model, model)
        group = router.resolve(model, "/files")
        who.check_model(model)
        targets = [t for t in _eligible(group) if by_id(router, t.dep.id) is t]  # wildcards: no stable id
        if not targets:
            raise errors.BadRequest(
                f"model={where.model} has no openai or azure deployment listed by name in model_list: files and "
                "batches are relayed to OpenAI and Azure OpenAI deployments only", param="model")
        return (rng or _RNG).choice(targets) if len(targets) > 1 else targets[0]
    provider = where.provider or "openai"
    if provider not in FILE_PROVIDERS:
        raise errors.BadRequest(
            f"custom_llm_provider={provider!r}: files and batches are relayed to openai and azure deployments only",
            param="custom_llm_provider")
    for name, group in router.groups.items():
        if not who.allows(name):
            continue
        for t in group.targets:
            if t.dep.provider == provider:
                return t
    raise errors.BadRequest(
        f"No {provider} deployment this key may use: add one to model_list, or pass `model` naming a model group "
        "with an openai or azure deployment", param="custom_llm_provider")


_BY_ID: dict[int, tuple[Router, dict[str, Target]]] = {}


def by_id(router: Router, deployment_id: str) -> Target | None:
    """The deployment ``deployment_id`` of ``router`` (an index built once per router), or None when the
    current config no longer serves it."""
    got = _BY_ID.get(id(router))
    if got is None or got[0] is not router:
        index: dict[str, Target] = {}
        for group in router.groups.values():
            for t in group.targets:
                index.setdefault(t.dep.id, t)
        _BY_ID.clear()  # one router at a time (a reload replaces it)
        got = _BY_ID[id(router)] = (router, index)
    return got[1].get(deployment_id)


def url_for(target: Target, path: str, query: Mapping[str, Any] | None = None) -> str:
    """The upstream URL of ``path`` (``/files``, ``/batches/{id}`` ...) on ``target``'s deployment, with
    ``query`` (None values left out) encoded."""
    prov: Any = target.provider
    base = prov.api_base or ""
    params = {k: str(v) for k, v in (query or {}).items() if v is not None}
    if target.dep.provider == "azure" and not getattr(prov, "v1", False):
        url = f"{base}/openai{path}"
        params = {**params, "api-version": prov.api_version}
    else:
        url = f"{base}{path}"
    return f"{url}?{urlencode(params)}" if params else url


def segment(upstream_id: str) -> str:
    """An upstream id as one URL path segment."""
    return quote(upstream_id, safe="")


def headers_for(target: Target, content_type: str | None = None) -> list[tuple[str, str]]:
    """The deployment's credentials and configured headers (never the client's), with ``content_type``."""
    out = list(target.provider.media_headers())
    if content_type is not None:
        out.append(("Content-Type", content_type))
    return out
