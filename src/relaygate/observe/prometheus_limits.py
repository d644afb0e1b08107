"""LiteLLM's virtual-key and team rate-limit gauges, from the limiter's headers an answer carried.

What it owns: reading LiteLLM's v3 limiter header pairs the gateway sends for a key's, team's and per-model
buckets (``x-ratelimit-api_key-limit-requests`` / ``x-ratelimit-api_key-remaining-requests`` ...,
``routing_limits.ratelimit_headers``), kept on the completion record only with Prometheus on
(``CompletionRecord.key_ratelimit``), into LiteLLM's gauges: ``litellm_api_key_rate_limit_allowed_metric`` /
``_used_metric`` (labels ``hashed_api_key``, ``api_key_alias``, ``rate_limit_type``), the team's
``litellm_team_rate_limit_allowed_metric`` / ``_used_metric`` (``team``, ``team_alias``, ``rate_limit_type``),
and a key's per-model ``litellm_remaining_api_key_requests_for_model`` / ``_tokens_for_model``
(``hashed_api_key``, ``api_key_alias``, ``model``, ``model_id``). Each series holds the latest reading of any
worker (merged by time); the families' names and labels are in ``prometheus_families``. Label values come
from the sink's bounded sets (keys, teams, configured groups and deployments), never from the headers, which
give numbers only.

Where it differs: LiteLLM sets the per-model pair after every request of every key, to 2^63 - 1 when the key
has no per-model limit; here a series exists only for a key and model with such a limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from relaygate.observe.prometheus_families import NONE
from relaygate.upstream.headers import remaining_of

__all__ = ["KeyLimits", "merge", "merge_remaining"]

_PREFIXES = {b"x-ratelimit-api_key-": "key", b"x-ratelimit-team-": "team", b"x-ratelimit-model_per_key-": "model"}
_MAX = 100_000


def _readings(headers: Iterable[tuple[bytes, bytes]]) -> dict[tuple[str, str], list[int]]:
    """(descriptor, unit) -> [limit, remaining] of the descriptors this module reports."""
    out: dict[tuple[str, str], list[int]] = {}
    for name, value in headers:
        if not name.startswith(b"x-ratelimit-") or not value.isdigit():
            continue
        for prefix, desc in _PREFIXES.items():
            if name.startswith(prefix):
                which, _, unit = name[len(prefix):].partition(b"-")
                if unit in (b"requests", b"tokens") and which in (b"limit", b"remaining"):
                    got = out.setdefault((desc, unit.decode()), [-1, -1])
                    got[0 if which == b"limit" else 1] = int(value)
                break
    return out


class KeyLimits:
    """One worker's latest readings: (family, label values) -> (value, when)."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, tuple[str, ...]], tuple[float, float]] = {}

    def add(self, headers: Sequence[tuple[bytes, bytes]], cells: Any, at: float) -> None:
        """An answer's limiter headers, read at ``at``, for the key, team, model group and deployment of the
        record whose label cells are ``cells`` (``prometheus_families.Cells``: its ``labels`` are (requested model,
        key hash, key alias, team, team alias, model id), ``remaining`` starts with the served group)."""
        requested, hk, alias, team_id, t_alias, model_id = cells.labels
        key = (hk, alias)
        team = (team_id, t_alias) if team_id != NONE else None
        model = cells.remaining[0] if cells.remaining else requested
        latest = self.latest
        if len(latest) >= _MAX:
            latest.clear()
        for (desc, unit), (limit, remaining) in _readings(headers).items():
            if limit < 0 or remaining < 0:
                continue
            if desc == "model":
                latest[(f"litellm_remaining_api_key_{unit}_for_model", (*key, model, model_id))] = (remaining, at)
                continue
            owner = key if desc == "key" else team
            if owner is None:
                continue
            family = "api_key" if desc == "key" else "team"
            latest[(f"litellm_{family}_rate_limit_allowed_metric", (*owner, unit))] = (limit, at)
            latest[(f"litellm_{family}_rate_limit_used_metric", (*owner, unit))] = (max(0, limit - remaining), at)

    def rows(self) -> list[list[Any]]:
        """The snapshot's rows: ``[family, *labels, value, when]``."""
        return [[name, *labels, value, at] for (name, labels), (value, at) in self.latest.items()]


def merge(parts: Sequence[dict[str, Any]], gauges: dict[str, dict[tuple[str, ...], float]]) -> None:
    """The workers' readings into ``gauges`` (family -> labels -> value): the latest of each series wins."""
    best: dict[tuple[str, tuple[str, ...]], tuple[float, float]] = {}
    for part in parts:
        for row in part.get("kl", ()):
            key = (row[0], tuple(row[1:-2]))
            seen = best.get(key)
            if seen is None or row[-1] >= seen[1]:
                best[key] = (row[-2], row[-1])
    for (name, labels), (value, _at) in best.items():
        gauges.setdefault(name, {})[labels] = value


def merge_remaining(known: dict[tuple[str, ...], tuple[float | None, float | None, float]],
                    latest: dict[tuple[str, ...], tuple[list[tuple[bytes, bytes]], float]]) -> None:
    """Each series' latest upstream reading of remaining requests and tokens into ``known`` (a unit the
    upstream did not name keeps its earlier reading, as LiteLLM's gauges do)."""
    for labels, (told, at) in latest.items():
        rem = remaining_of(told)
        if rem is None:
            continue
        old = known.get(labels)
        if old is not None and (rem[0] is None or rem[1] is None):
            rem = (old[0] if rem[0] is None else rem[0], old[1] if rem[1] is None else rem[1])
        known[labels] = (rem[0], rem[1], at)
