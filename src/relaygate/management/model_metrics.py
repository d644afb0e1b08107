"""LiteLLM's model analytics routes (its Admin UI's model dashboard), read from the spend logs.

Every route takes LiteLLM's query: ``_selected_model_group`` (the model group; required: LiteLLM falls back to
``gpt-4-32k``, which only ever shows another group or nothing), ``startTime`` / ``endTime`` (``YYYY-MM-DD``, a
whole UTC day, or an ISO date-time, naive meaning UTC; a malformed one is a 400) and, where LiteLLM has them,
``api_key`` (a key or its hash) and ``customer`` (an end user); ``undefined`` and ``null`` mean unset, as the UI
sends them. The proxy admin and its viewer only, as in LiteLLM (these are not among the routes it opens to
other roles). Deployments are named as LiteLLM names them: the upstream model, or the deployment's
``api_base`` when that is an ``https://`` URL (cut before ``/openai/``, as for Azure); ``api_base`` is the
configured deployment's without credentials or query (``core.urls.public_base``), empty for one the config no
longer has.

- ``GET /model/metrics`` (default: the last 30 days): ``{"data": [{"date": "YYYY-MM-DD", <deployment>:
  mean seconds per output token, ...}], "all_api_bases": [<deployment>, ...]}``, days in order; answers from
  the cache and answers without output are not counted.
- ``GET /model/streaming_metrics`` (default: the last 7 days): the same shape with the mean seconds to the
  first streamed token; for a range within one UTC day, one entry per request (``date`` is its request id, as
  in LiteLLM), the :data:`~relaygate.store.model_metrics.MAX_REQUESTS` slowest.
- ``GET /model/metrics/slow_responses`` (default: the last 30 days): ``[{"api_base", "total_count",
  "slow_count"}]`` per ``api_base``, most slow first: requests that lasted at least
  ``general_settings.alerting_threshold`` seconds (300 by default), LiteLLM's hanging-request threshold.
- ``GET /model/metrics/exceptions`` (default: the last 30 days): ``{"data": [{"model": <model>-<api_base>,
  "total_exceptions": n, <error class>: count, ...}], "exception_types": [...]}``, the 200 deployments with
  most failures first. LiteLLM's ``total_exceptions`` counts the deployment's distinct error classes, not its
  failures (its query counts the rows of a per-class grouping); relaygate's is the number of failures. LiteLLM
  reads its error log (one row per failed deployment call); relaygate the failed requests' spend rows, with
  the class LiteLLM puts in ``error_information.error_class``.

Where two deployments get the same name, their figures are combined (means weighted by their requests);
LiteLLM keeps whichever its loop saw last.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.activity import deployment_bases
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.management.keys import token_of
from relaygate.management.spend import parse_date
from relaygate.store import model_metrics as q
from relaygate.store.activity import Scope

__all__ = ["add_routes", "deployment_name"]

MONTH_DAYS = 30
"""The default range of the routes but ``streaming_metrics`` (LiteLLM's ``DAYS_IN_A_MONTH``)."""
WEEK_DAYS = 7
EXCEPTION_ROWS = 200
ALERTING_THRESHOLD = 300.0
"""Seconds: ``general_settings.alerting_threshold`` when no alerting is configured (LiteLLM's default)."""
_UNSET = ("", "undefined", "null")


def deployment_name(api_base: str, model: str) -> str:
    """LiteLLM's name of a deployment in these charts: its ``api_base`` when that is an ``https://`` URL (up to
    ``/openai/``), else its model."""
    name = api_base if "https://" in api_base else model
    return name.split("/openai/")[0] if "/openai/" in name else name


def _query(ctx: Ctx, days: int) -> tuple[str, Scope, str | None, str | None]:
    """The model group, the rows' scope, the hashed ``api_key`` and the ``customer`` of the query."""
    admin_only(ctx, read=True)
    get = ctx.query.get
    group = get("_selected_model_group") or ""
    if group in _UNSET:
        raise bad_request("_selected_model_group is required: the model group to chart", "_selected_model_group")
    now = datetime.now(UTC)
    start = parse_date(get("startTime"), "startTime") or now - timedelta(days=days)
    end = parse_date(get("endTime"), "endTime", end=True) or now
    if start > end:
        raise bad_request(f"startTime={start.isoformat()} is after endTime={end.isoformat()}", "startTime")
    key = get("api_key")
    customer = get("customer")
    return (group, Scope(start, end), token_of(key, "api_key") if key not in (None, *_UNSET) else None,
            customer if customer not in (None, *_UNSET) else None)


def _chart(rows: list[dict[str, Any]], bases: dict[str, str], key: str, group: str) -> dict[str, Any]:
    """LiteLLM's chart shape from per-deployment rows: one entry per ``key`` (in order), one value per name."""
    sums: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        name = deployment_name(bases.get(r["deployment"], ""), r["model"] or group)
        acc = sums.setdefault(r[key], {}).setdefault(name, [0.0, 0])
        acc[0] += r["seconds"] * r["n"]
        acc[1] += r["n"]
    data = []
    for k, per in sorted(sums.items()):
        entry: dict[str, Any] = {"date": k}
        for name, (total, n) in sorted(per.items()):
            if n and name not in entry:  # a deployment named "date" cannot take the entry's own key
                entry[name] = total / n
        data.append(entry)
    return {"data": data, "all_api_bases": sorted({name for per in sums.values() for name in per})}


async def model_metrics(ctx: Ctx) -> Any:
    group, scope, api_key, customer = _query(ctx, MONTH_DAYS)
    rows = await q.latency_per_token(ctx.store, scope, group, api_key=api_key, end_user=customer)
    return _chart(rows, deployment_bases(ctx), "day", group)


async def streaming_metrics(ctx: Ctx) -> Any:
    group, scope, _, _ = _query(ctx, WEEK_DAYS)
    last = scope.end - timedelta(microseconds=1)
    one_day = scope.start.astimezone(UTC).date() == last.astimezone(UTC).date()
    if one_day:  # LiteLLM's: the requests of that whole day
        day = scope.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        scope = Scope(day, day + timedelta(days=1) if day.date() < date.max else scope.end)
    rows = await q.time_to_first_token(ctx.store, scope, group, per_request=one_day)
    return _chart(rows, deployment_bases(ctx), "key", group)


async def slow_responses(ctx: Ctx) -> Any:
    group, scope, api_key, customer = _query(ctx, MONTH_DAYS)
    observe = ctx.gw.runtime.config.observe
    threshold = observe.alerting_threshold if observe is not None else ALERTING_THRESHOLD
    bases = deployment_bases(ctx)
    per: dict[str, list[int]] = {}
    for r in await q.slow_responses(ctx.store, scope, group, threshold, api_key=api_key, end_user=customer):
        base = bases.get(r["deployment"], "")
        acc = per.setdefault(base.split("/openai/")[0], [0, 0])
        acc[0] += r["total"]
        acc[1] += r["slow"]
    return [{"api_base": base, "total_count": total, "slow_count": slow}
            for base, (total, slow) in sorted(per.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))]


async def exceptions(ctx: Ctx) -> Any:
    group, scope, api_key, _ = _query(ctx, MONTH_DAYS)
    bases = deployment_bases(ctx)
    per: dict[str, dict[str, int]] = {}
    for r in await q.exceptions(ctx.store, scope, group, api_key=api_key):
        base = bases.get(r["deployment"], "")
        model = r["model"] or group
        counts = per.setdefault(f"{model}-{base}" if base else model, {})
        counts[r["error_class"]] = counts.get(r["error_class"], 0) + r["count"]
    top = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:EXCEPTION_ROWS]
    data = []
    for name, counts in top:
        row: dict[str, Any] = {"model": name, "total_exceptions": sum(counts.values())}
        row.update((k, n) for k, n in sorted(counts.items()) if k not in row)  # a class cannot take those two keys
        data.append(row)
    return {"data": data,
            "exception_types": sorted({k for _, counts in top for k in counts})}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/model/metrics", model_metrics)
    route(t, gw, "GET", "/model/streaming_metrics", streaming_metrics)
    route(t, gw, "GET", "/model/metrics/slow_responses", slow_responses)
    route(t, gw, "GET", "/model/metrics/exceptions", exceptions)
