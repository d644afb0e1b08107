"""Routing decisions: which deployment of a model group serves the next attempt, and how failures count.

Sans-IO. The router (``relaygate.router``) owns one :class:`DeploymentStats` per deployment per worker and
hands them here with ``now`` and a random source; these functions return a choice or update the stats in
place. Nothing here awaits, reads a clock or logs, so every strategy is tested without IO.

Model of a group: deployments are split into priority *tiers* by ``order`` (lower first; no order = last).
A tier is used only when no deployment of a better tier is *available*. A deployment is available when it
is not in cooldown, not known to be out of rpm/tpm budget (``limited_until``), under its per-worker
``max_parallel_requests`` and not already tried by this request (``excluded`` bit mask over the group's
deployment indexes).

Strategies (LiteLLM's ``routing_strategy`` names):
- ``simple-shuffle``: weighted random by ``weight``, else by rpm, else by tpm, else uniform.
- ``least-busy``: fewest requests in flight in this worker.
- ``latency-based-routing``: lowest EWMA of latency (of time to first token for streams, once known);
  with probability ``exploration`` a uniform pick instead, so a deployment that recovered is noticed.
  A deployment never measured is tried first unless it already has a request in flight.
- ``usage-based-routing`` / ``-v2``: most headroom: the largest fraction left of its rpm/tpm budget as
  last reported by the limiter (unlimited = 1.0); ties go to fewer in flight.
- ``cost-based-routing``: cheapest ``input_cost_per_token + output_cost_per_token``.
Ties are broken at random (reservoir sampling, no allocation).

Cost: a decision is one or two passes over a tier (a handful of deployments) with no allocation; the
router prebuilds tiers once at startup, so nothing is sorted per request.

Cooldowns (LiteLLM's ``router_utils/cooldown_handlers.py``): failures and successes are counted per
deployment in fixed 60-second windows (``window_end``). A success costs the router one comparison with
``window_end`` and one integer increment (no clock read: it passes the attempt's start time); the window
rolls lazily on the first event past its end. Only failures that say something about the deployment count
(:func:`counts_for_cooldown`). :func:`record_failure` decides whether a failure cools the deployment:
- the default rule (``allowed_fails`` left at 3 and no ``allowed_fails_policy``): at once for 401, 403, 404
  and 429 (:func:`cools_at_once`); else when failures are more than half (``SHARE_THRESHOLD``) of this
  window's counted requests and there were at least ``SHARE_MIN_REQUESTS`` of them. So a 5xx, a timeout or
  a refused connection cools a deployment only when the failure share over a minimum volume says so;
- the count rule (``allowed_fails`` set to another value, or an ``allowed_fails_policy``): when this
  window's failures exceed the allowed number for the failure's class.
How long (:func:`cooldown_seconds`): the deployment's own ``cooldown_time``, else the failure's
``Retry-After`` (at most ``MAX_RETRY_AFTER``), else ``router_settings.cooldown_time``; 0 means no cooldown.
A group's only deployment is never cooled down (``solo``: the router never calls these for it).
"""

from __future__ import annotations

from typing import Callable, Sequence

from relaygate.core import ewma
from relaygate.core.errors import (
    ContentPolicyViolation,
    ContextWindowExceeded,
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)

SHUFFLE, LEAST_BUSY, LATENCY, USAGE, COST = range(5)

STRATEGIES: dict[str, int] = {
    "simple-shuffle": SHUFFLE,
    "least-busy": LEAST_BUSY,
    "latency-based-routing": LATENCY,
    "usage-based-routing": USAGE,
    "usage-based-routing-v2": USAGE,
    "cost-based-routing": COST,
}

_INF = float("inf")


class DeploymentStats:
    """Per-worker state of one deployment (mutated in place by the router and by these functions)."""

    __slots__ = ("index", "id", "order", "weight", "inflight", "max_inflight", "latency", "latency_n",
                 "ttft", "ttft_n", "cost", "cooldown_until", "limited_until", "window_end", "fails", "successes",
                 "rpm", "tpm", "rpm_left", "tpm_left", "solo", "cooldown_time")

    def __init__(self, index: int, id: str = "", *, order: int | None = None, weight: float = 1.0,
                 max_inflight: int = 0, cost: float = 0.0, rpm: int | None = None, tpm: int | None = None,
                 cooldown_time: float | None = None) -> None:
        self.index = index
        self.id = id
        self.order = order
        self.weight = weight
        self.inflight = 0
        self.max_inflight = max_inflight
        self.latency = 0.0
        self.latency_n = 0
        self.ttft = 0.0
        self.ttft_n = 0
        self.cost = cost
        self.cooldown_until = 0.0
        self.limited_until = 0.0
        self.solo = False
        """The only deployment of its group: never cooled down (there is nothing to fail over to)."""
        self.cooldown_time = cooldown_time
        """The deployment's own ``cooldown_time`` (``litellm_params``); ``None``: the router's."""
        self.window_end = 0.0
        """End of the 60-second window ``fails`` and ``successes`` count in (0: none started yet)."""
        self.fails = 0
        self.successes = 0
        self.rpm = rpm
        self.tpm = tpm
        self.rpm_left = float(rpm) if rpm else 0.0
        self.tpm_left = float(tpm) if tpm else 0.0

    def __repr__(self) -> str:
        return f"<DeploymentStats {self.index} {self.id!r} inflight={self.inflight} lat={self.latency:.4f}>"


Tiers = Sequence[Sequence[DeploymentStats]]


def build_tiers(stats: Sequence[DeploymentStats]) -> tuple[tuple[DeploymentStats, ...], ...]:
    """Group by ``order`` (ascending, ``None`` last), keeping config order inside a tier. Startup only."""
    orders = sorted({s.order for s in stats if s.order is not None})
    tiers = [tuple(s for s in stats if s.order == o) for o in orders]
    rest = tuple(s for s in stats if s.order is None)
    if rest:
        tiers.append(rest)
    return tuple(tiers)


def available(s: DeploymentStats, now: float, excluded: int) -> bool:
    return (s.cooldown_until <= now and s.limited_until <= now and not (excluded >> s.index) & 1
            and (s.max_inflight <= 0 or s.inflight < s.max_inflight))


def tag_filter(tags: Sequence[frozenset[str]], request: frozenset[str] | None) -> int | None:
    """LiteLLM's tag-based routing as a mask of the deployments a request may not use (bit i: ``tags[i]``'s):
    a request with tags may use the deployments sharing one, else those tagged ``default``; one without
    tags, those tagged ``default`` if any, else all. A group none of whose deployments has tags is not
    filtered (a request's tags may be spend tags). ``None``: no deployment may serve it."""
    if not any(tags):
        return 0
    if request:
        allowed = [i for i, t in enumerate(tags) if t & request] or [i for i, t in enumerate(tags) if "default" in t]
        if not allowed:
            return None
    else:
        allowed = [i for i, t in enumerate(tags) if "default" in t]
        if not allowed:
            return 0
    mask = (1 << len(tags)) - 1
    for i in allowed:
        mask &= ~(1 << i)
    return mask


def cached_tag_filter(cache: dict[frozenset[str] | None, int | None], tags: Sequence[frozenset[str]],
                      request: frozenset[str] | None) -> int | None:
    """:func:`tag_filter`, memoised per request tag set in ``cache`` (at most 1,024 sets a group)."""
    mask = cache.get(request, -1)
    if mask == -1:
        mask = tag_filter(tags, request)
        if len(cache) < 1024:
            cache[request] = mask
    return mask


def choose(strategy: int, tiers: Tiers, now: float, excluded: int, stream: bool, rand: Callable[[], float],
           exploration: float = 0.0) -> DeploymentStats | None:
    """The deployment for the next attempt, or ``None`` when no deployment of any tier is available."""
    for tier in tiers:
        if len(tier) == 1:
            s = tier[0]
            if available(s, now, excluded):
                return s
            continue
        if strategy == SHUFFLE:
            pick = _shuffle(tier, now, excluded, rand)
        elif strategy == LATENCY:
            if exploration > 0.0 and rand() < exploration:
                pick = _uniform(tier, now, excluded, rand)
            else:
                pick = _lowest_latency(tier, now, excluded, stream, rand)
        elif strategy == LEAST_BUSY:
            pick = _least_busy(tier, now, excluded, rand)
        elif strategy == USAGE:
            pick = _most_headroom(tier, now, excluded, rand)
        else:
            pick = _cheapest(tier, now, excluded, rand)
        if pick is not None:
            return pick
    return None


def _uniform(tier: Sequence[DeploymentStats], now: float, excluded: int,
             rand: Callable[[], float]) -> DeploymentStats | None:
    pick = None
    n = 0
    for s in tier:
        if available(s, now, excluded):
            n += 1
            if n == 1 or rand() * n < 1.0:
                pick = s
    return pick


def _shuffle(tier: Sequence[DeploymentStats], now: float, excluded: int,
             rand: Callable[[], float]) -> DeploymentStats | None:
    total = 0.0
    for s in tier:
        if available(s, now, excluded):
            total += s.weight
    if total <= 0.0:
        return _uniform(tier, now, excluded, rand)
    x = rand() * total
    last = None
    for s in tier:
        if available(s, now, excluded):
            last = s
            x -= s.weight
            if x < 0.0:
                return s
    return last


def _least_busy(tier: Sequence[DeploymentStats], now: float, excluded: int,
                rand: Callable[[], float]) -> DeploymentStats | None:
    pick = None
    best = 1 << 62
    n = 0
    for s in tier:
        if available(s, now, excluded):
            v = s.inflight
            if v < best:
                best, pick, n = v, s, 1
            elif v == best:
                n += 1
                if rand() * n < 1.0:
                    pick = s
    return pick


def _lowest_latency(tier: Sequence[DeploymentStats], now: float, excluded: int, stream: bool,
                    rand: Callable[[], float]) -> DeploymentStats | None:
    pick = None
    best = _INF
    n = 0
    for s in tier:
        if not available(s, now, excluded):
            continue
        if stream and s.ttft_n:
            v = s.ttft
        elif s.latency_n:
            v = s.latency
        else:
            # never measured: try it now, unless a first request is already on its way
            v = 0.0 if s.inflight == 0 else _INF
        if pick is None or v < best:
            best, pick, n = v, s, 1
        elif v == best:
            n += 1
            if rand() * n < 1.0:
                pick = s
    return pick


def headroom(s: DeploymentStats) -> float:
    h = 1.0
    if s.rpm:
        h = s.rpm_left / s.rpm
    if s.tpm:
        t = s.tpm_left / s.tpm
        if t < h:
            h = t
    return h


def _most_headroom(tier: Sequence[DeploymentStats], now: float, excluded: int,
                   rand: Callable[[], float]) -> DeploymentStats | None:
    pick = None
    best = -_INF
    busy = 0
    n = 0
    for s in tier:
        if not available(s, now, excluded):
            continue
        h = headroom(s)
        if pick is None or h > best or (h == best and s.inflight < busy):
            best, busy, pick, n = h, s.inflight, s, 1
        elif h == best and s.inflight == busy:
            n += 1
            if rand() * n < 1.0:
                pick = s
    return pick


def _cheapest(tier: Sequence[DeploymentStats], now: float, excluded: int,
              rand: Callable[[], float]) -> DeploymentStats | None:
    pick = None
    best = _INF
    n = 0
    for s in tier:
        if not available(s, now, excluded):
            continue
        v = s.cost
        if pick is None or v < best:
            best, pick, n = v, s, 1
        elif v == best:
            n += 1
            if rand() * n < 1.0:
                pick = s
    return pick


def next_free(tiers: Tiers, now: float) -> float:
    """Seconds until the first deployment leaves cooldown / budget exhaustion (for ``Try again in``)."""
    soonest = _INF
    for tier in tiers:
        for s in tier:
            t = max(s.cooldown_until, s.limited_until)
            if t < soonest:
                soonest = t
    return max(0.0, soonest - now) if soonest != _INF else 0.0


# ---------------------------------------------------------------------------------------- outcomes


def record_latency(s: DeploymentStats, seconds: float, alpha: float) -> None:
    s.latency = ewma.update(s.latency, s.latency_n, seconds, alpha)
    s.latency_n += 1


def record_ttft(s: DeploymentStats, seconds: float, alpha: float) -> None:
    s.ttft = ewma.update(s.ttft, s.ttft_n, seconds, alpha)
    s.ttft_n += 1


WINDOW = 60.0
"""Seconds of one failure/success counting window (LiteLLM: the current minute)."""
SHARE_THRESHOLD = 0.5
"""LiteLLM's ``DEFAULT_FAILURE_THRESHOLD_PERCENT``: cool when failures are more than this share."""
SHARE_MIN_REQUESTS = 5
"""LiteLLM's ``DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS``: the share rule needs this many requests."""
DEFAULT_ALLOWED_FAILS = 3
"""LiteLLM's default ``allowed_fails``: left at this value (and no policy), the share rule applies."""


def _roll(s: DeploymentStats, now: float) -> None:
    if now >= s.window_end:
        s.window_end = (now // WINDOW + 1.0) * WINDOW
        s.fails = 0
        s.successes = 0


def record_success(s: DeploymentStats, now: float) -> None:
    """Count a success. The router inlines the common case (``now < s.window_end``: one increment)."""
    _roll(s, now)
    s.successes += 1


def record_failure(s: DeploymentStats, now: float, allowed_fails: int | None, immediate: bool = False) -> bool:
    """Count a failure in this window; True when the deployment should cool down now.

    ``allowed_fails`` ``None`` (LiteLLM's default rule): when ``immediate``, or when this window's failures
    are more than ``SHARE_THRESHOLD`` of its counted requests and there were at least
    ``SHARE_MIN_REQUESTS``. An ``int`` (the count rule): when this window's failures exceed it."""
    _roll(s, now)
    s.fails += 1
    if allowed_fails is not None:
        return s.fails > allowed_fails
    if immediate:
        return True
    total = s.fails + s.successes
    return total >= SHARE_MIN_REQUESTS and s.fails > SHARE_THRESHOLD * total


def cooldown_seconds(deployment: float | None, retry_after: float | None, default: float) -> float:
    """How long a cooldown lasts, as LiteLLM's ``deployment_callback_on_failure`` decides it: the
    deployment's ``cooldown_time``, else the upstream's ``Retry-After`` (capped at ``MAX_RETRY_AFTER``),
    else ``router_settings.cooldown_time``. 0 (or less) means the deployment is not cooled down."""
    if deployment is not None and deployment >= 0.0:
        return deployment
    if retry_after is not None and retry_after >= 0.0:
        return retry_after if retry_after < MAX_RETRY_AFTER else MAX_RETRY_AFTER
    return default


def cool(s: DeploymentStats, now: float, seconds: float) -> None:
    """Take ``s`` out of rotation for ``seconds`` (never shortens a cooldown already running)."""
    until = now + seconds
    if until > s.cooldown_until:
        s.cooldown_until = until


# ------------------------------------------------------------------------------------ error classes

RATE_LIMIT = "RateLimitError"
TIMEOUT = "TimeoutError"
INTERNAL = "InternalServerError"
AUTH = "AuthenticationError"
BAD_REQUEST = "BadRequestError"
CONTENT_POLICY = "ContentPolicyViolationError"
CONTEXT_WINDOW = "ContextWindowExceededError"
NOT_FOUND = "NotFoundError"


def error_class(exc: GatewayError) -> str:
    """LiteLLM's exception class name for an attempt's failure (``retry_policy`` / ``allowed_fails_policy``
    keys are this name + ``Retries`` / ``AllowedFails``)."""
    if isinstance(exc, ContextWindowExceeded):
        return CONTEXT_WINDOW
    if isinstance(exc, ContentPolicyViolation):
        return CONTENT_POLICY
    if isinstance(exc, UpstreamTimeout):
        return TIMEOUT
    if isinstance(exc, UpstreamConnectError):
        return INTERNAL
    st = exc.status
    if st == 429:
        return RATE_LIMIT
    if st == 408 or st == 504:
        return TIMEOUT
    if st == 401 or st == 403:
        return AUTH
    if st == 404:
        return NOT_FOUND
    if st >= 500:
        return INTERNAL
    return BAD_REQUEST


def counts_for_cooldown(exc: GatewayError) -> bool:
    """Failures that say something about the deployment: 429, 401/403, 404, 408, 5xx, connect, timeout.
    A client's bad request (400, 413, 422, context window, content policy) never does."""
    if isinstance(exc, (UpstreamConnectError, UpstreamTimeout)):
        return True
    if not isinstance(exc, UpstreamError):
        return False
    st = exc.status
    return st == 429 or st == 401 or st == 403 or st == 404 or st == 408 or st >= 500


def cools_at_once(exc: GatewayError) -> bool:
    """Failures that cool a deployment at once under the default rule: the upstream's own rate limit (429)
    and errors that will not heal by retrying the same deployment (bad key, no permission, unknown model)."""
    return isinstance(exc, UpstreamError) and exc.status in (429, 401, 403, 404)


def retries_for(exc: GatewayError, default: int, policy: dict[str, int]) -> int:
    """How many retries this failure allows: the ``retry_policy`` entry for its class, else ``default``
    for retryable classes (rate limit, timeout, server and connection errors), else 0."""
    cls = error_class(exc)
    if policy:
        key = cls + "Retries"
        if key in policy:
            return policy[key]
        if cls == CONTEXT_WINDOW and "BadRequestErrorRetries" in policy:
            return 0
    if cls in (RATE_LIMIT, TIMEOUT, INTERNAL):
        return default
    if cls == AUTH and isinstance(exc, UpstreamError):
        return default  # another deployment may hold a valid key
    return 0


def allowed_fails_for(exc: GatewayError, default: int, policy: dict[str, int]) -> int | None:
    """Failures a minute this failure's class allows before a cooldown (the count rule), or ``None`` for
    LiteLLM's default share rule: ``allowed_fails`` left at ``DEFAULT_ALLOWED_FAILS`` and no policy."""
    if policy:
        v = policy.get(error_class(exc) + "AllowedFails")
        if v is not None:
            return v
    elif default == DEFAULT_ALLOWED_FAILS:
        return None
    return default


MAX_RETRY_AFTER = 30.0
INITIAL_DELAY = 0.5
MAX_DELAY = 8.0


def retry_delay(attempt: int, upstream_retry_after: float | None, min_wait: float, other_healthy: bool,
                jitter: float) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), as LiteLLM's router does: at once when
    another healthy deployment can take it; else the upstream's ``Retry-After`` when given (capped at
    ``MAX_RETRY_AFTER``), else exponential backoff 0.5 s * 2^attempt up to 8 s with up to 25 % jitter
    (``jitter`` in [0, 1)); never less than ``router_settings.retry_after``."""
    if other_healthy:
        return min_wait if min_wait > 0 else 0.0
    if upstream_retry_after is not None and upstream_retry_after > 0:
        wait = min(upstream_retry_after, MAX_RETRY_AFTER)
    else:
        wait = min(INITIAL_DELAY * (2.0 ** attempt), MAX_DELAY) * (1.0 - 0.25 * jitter)
    return wait if wait > min_wait else min_wait


def fallback_groups(table: Sequence[dict[str, list[str]]], group: str) -> list[str] | None:
    """The fallback list for ``group`` in a LiteLLM ``[{group: [fallbacks]}, ...]`` table; ``"*"`` matches
    any group when there is no specific entry."""
    star = None
    for entry in table:
        v = entry.get(group)
        if v is not None:
            return v
        if star is None:
            star = entry.get("*")
    return star
