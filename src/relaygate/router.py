"""The router: which deployment serves an attempt, and what happens when an attempt fails.

IO shell around the pure decisions in ``core.routing``: it owns per-worker state (in-flight counts,
latency EWMAs), resolves a requested model to a model group (aliases, ``*`` wildcards), picks a
deployment, runs the caller's attempt function, and on failure retries or falls back as configured.

Contract with the request handler: :meth:`Router.resolve` raises ``BadRequest`` for an unknown model;
:meth:`Router.run` calls ``attempt(target)`` until one succeeds and returns ``(result, lease)``; the
handler calls ``lease.finish(ok, tokens)`` exactly once when the response (or stream) has ended, which
releases the in-flight slot and records the outcome.
"""

from __future__ import annotations

import random
import re
import time
from typing import Awaitable, Callable, TypeVar

from relaygate.config.model import Config, Deployment
from relaygate.core.errors import (
    BadRequest,
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from relaygate.providers import make_provider
from relaygate.providers.base import Provider

R = TypeVar("R")


class Target:
    """A deployment ready to be called: its adapter and the upstream model name for this request."""

    __slots__ = ("dep", "provider", "upstream_model", "inflight")

    def __init__(self, dep: Deployment, provider: Provider) -> None:
        self.dep = dep
        self.provider = provider
        self.upstream_model = dep.upstream_model
        self.inflight = 0


class ModelGroup:
    __slots__ = ("name", "targets", "weights")

    def __init__(self, name: str, targets: list[Target]) -> None:
        self.name = name
        self.targets = targets
        self.weights = _weights([t.dep for t in targets])


def _weights(deps: list[Deployment]) -> list[float] | None:
    if any(d.weight is not None for d in deps):
        return [d.weight if d.weight is not None else 1.0 for d in deps]
    if all(d.rpm for d in deps):
        return [float(d.rpm or 0) for d in deps]
    if all(d.tpm for d in deps):
        return [float(d.tpm or 0) for d in deps]
    return None


class RouteContext:
    """Per-request routing input and output (attempt counters for the response headers)."""

    __slots__ = ("num_retries", "fallbacks", "timeout", "stream", "attempted_retries", "attempted_fallbacks",
                 "prompt_tokens")

    def __init__(self, *, stream: bool = False, num_retries: int | None = None,
                 fallbacks: list[str] | None = None, timeout: float | None = None, prompt_tokens: int = 0) -> None:
        self.stream = stream
        self.num_retries = num_retries
        self.fallbacks = fallbacks
        self.timeout = timeout
        self.prompt_tokens = prompt_tokens
        self.attempted_retries = 0
        self.attempted_fallbacks = 0


class Lease:
    """An attempt that succeeded; ``headers`` are added to the client response (rate-limit state)."""

    __slots__ = ("target", "start", "_done", "headers")

    def __init__(self, target: Target, start: float) -> None:
        self.target = target
        self.start = start
        self._done = False
        self.headers: list[tuple[bytes, bytes]] = []

    def finish(self, ok: bool, tokens: int = 0) -> None:
        if self._done:
            return
        self._done = True
        self.target.inflight -= 1


def _retryable(exc: GatewayError) -> bool:
    if isinstance(exc, (UpstreamConnectError, UpstreamTimeout)):
        return True
    if isinstance(exc, UpstreamError):
        return exc.status == 429 or exc.status >= 500 or exc.status == 408
    return False


class Router:
    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.config = config
        self.settings = config.router
        self._rng = rng or random.Random()
        self.groups: dict[str, ModelGroup] = {}
        self._wildcards: list[tuple[re.Pattern[str], Deployment, Provider]] = []
        self._wild_cache: dict[str, ModelGroup] = {}
        by_name: dict[str, list[Target]] = {}
        for dep in config.deployments:
            provider = make_provider(dep)
            if dep.is_wildcard:
                pat = re.compile("^" + re.escape(dep.model_name).replace(r"\*", "(.*)") + "$")
                self._wildcards.append((pat, dep, provider))
            else:
                by_name.setdefault(dep.model_name, []).append(Target(dep, provider))
        for name, targets in by_name.items():
            self.groups[name] = ModelGroup(name, targets)
        self.aliases = dict(self.settings.model_group_alias)

    # -- resolution ---------------------------------------------------------------------------------

    def public_models(self) -> list[str]:
        names = list(self.groups)
        names.extend(a for a in self.aliases if a not in self.groups)
        return names

    def resolve(self, model: str, route: str = "/chat/completions") -> ModelGroup:
        group = self.groups.get(model)
        if group is not None:
            return group
        alias = self.aliases.get(model)
        if alias is not None and alias in self.groups:
            return self.groups[alias]
        group = self._wild_cache.get(model)
        if group is not None:
            return group
        targets = []
        for pat, dep, provider in self._wildcards:
            m = pat.match(model)
            if m is None:
                continue
            captured = m.group(1) if m.groups() else model
            upstream = dep.model.replace("*", captured, 1) if "*" in dep.model else dep.model
            prov_name, _, up_model = upstream.partition("/")
            if not _:
                prov_name, up_model = "openai", upstream
            concrete = Deployment(**{**{f: getattr(dep, f) for f in dep.__struct_fields__},
                                     "model_name": model, "provider": prov_name, "upstream_model": up_model})
            prov = make_provider(concrete)  # adapters may derive state from the upstream model
            targets.append(Target(concrete, prov))
        if targets:
            group = ModelGroup(model, targets)
            if len(self._wild_cache) < 10_000:
                self._wild_cache[model] = group
            return group
        raise BadRequest(
            f"{route}: Invalid model name passed in model={model}. Call `/v1/models` to view available "
            "models for your key.",
            param="model",
        )

    # -- choice -------------------------------------------------------------------------------------

    def pick(self, group: ModelGroup, exclude: set[int] | None = None) -> Target:
        targets = group.targets
        if exclude:
            idx = [i for i in range(len(targets)) if i not in exclude] or list(range(len(targets)))
        else:
            if len(targets) == 1:
                return targets[0]
            idx = list(range(len(targets)))
        if group.weights is None:
            return targets[self._rng.choice(idx)]
        w = [group.weights[i] for i in idx]
        return targets[self._rng.choices(idx, weights=w)[0]] if sum(w) > 0 else targets[self._rng.choice(idx)]

    # -- execution ----------------------------------------------------------------------------------

    async def run(
        self,
        group: ModelGroup,
        ctx: RouteContext,
        attempt: Callable[[Target], Awaitable[R]],
    ) -> tuple[R, Lease]:
        retries = ctx.num_retries if ctx.num_retries is not None else self.settings.num_retries
        tried: set[int] = set()
        last: GatewayError | None = None
        for n in range(retries + 1):
            target = self.pick(group, tried)
            tried.add(group.targets.index(target))
            target.inflight += 1
            start = time.perf_counter()
            try:
                result = await attempt(target)
            except GatewayError as exc:
                target.inflight -= 1
                last = exc
                if not _retryable(exc) or n == retries:
                    raise
                ctx.attempted_retries += 1
                continue
            except BaseException:
                target.inflight -= 1
                raise
            return result, Lease(target, start)
        assert last is not None
        raise last
