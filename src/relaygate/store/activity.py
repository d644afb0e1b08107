"""Activity aggregates over the spend logs: what the admin UI's overview draws (``/global/activity/*``).

What it owns: the read-only SQL that sums ``rg_spend_logs`` per time bucket (an hour or a UTC day), per model
group, per key and per team, and the latency percentiles of each bucket. Every sum is computed by the
database; the worker receives one row per bucket or per group, never the spend rows themselves.

Invariants:

- **One filter for every query.** :class:`Scope` is the date range (``start`` inclusive, ``end`` exclusive)
  and, for a caller that may only see its own traffic, its ``user_id`` or its key's hash: the series, the
  top lists, the percentiles and the spend of today / this month all read the same rows.
- **Errors** are the rows whose ``status`` is ``failure`` (the spend sink writes ``success`` or ``failure``).
- **Latency** is ``end_time - start_time`` in milliseconds, to the microsecond (SQLite: read from the fixed
  ISO spelling, seconds then microseconds); rows without ``end_time`` have none.
- **Exact percentiles, bounded memory.** PostgreSQL's ``percentile_cont`` and SQLite (which has no percentile
  function) give the same answer: a window query numbers each bucket's latencies in order
  (``ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY ms)``) and returns only the two rows around each rank
  ``1 + p * (n - 1)`` (at most six rows per bucket, whatever the bucket holds); :func:`interpolate` then
  interpolates linearly between them, as ``percentile_cont`` does. The sort happens in the database (SQLite
  spills a large one to its temporary files), so a year of logs costs the worker a few rows per bucket.
- **Both dialects.** Buckets are text keys: ``YYYY-MM-DD`` for a day and ``YYYY-MM-DDTHH`` for an hour, taken
  from SQLite's ISO text (``tables._iso`` writes UTC with a fixed spelling) or PostgreSQL's ``to_char`` of
  the UTC time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from relaygate.store import tables as t
from relaygate.store.daily import read_daily
from relaygate.store.spend import NANOS

if TYPE_CHECKING:
    from relaygate.store.base import Store

__all__ = ["PERCENTILES", "UNATTRIBUTED", "UNNAMED_KEY", "Scope", "activity_by_model", "cache_activity",
           "daily_activity", "daily_by_team", "daily_status", "deployment_report", "elapsed_ms", "entity_labels",
           "error_field", "interpolate", "key_labels", "key_metadata", "key_of_reporting", "keys_of_user",
           "latency_percentiles", "org_admin_of", "principal_counts", "reporting_key", "series", "spend_by_tag",
           "spend_log_facet", "spend_since", "tag_names", "team_aliases", "team_member_counts", "top_groups"]

PERCENTILES = (50, 95, 99)
"""The latency percentiles the overview shows (``p50_ms``, ``p95_ms``, ``p99_ms``)."""

_FAILED = "SUM(CASE WHEN s.status = 'failure' THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class Scope:
    """Which spend rows a query reads: ``start`` <= start_time < ``end``, and only the caller's own rows when
    ``user_id`` or ``api_key`` (a key's SHA-256 hex) is set."""

    start: datetime
    end: datetime
    user_id: str | None = None
    api_key: str | None = None

    def where(self, store: Store, start: datetime | None = None) -> tuple[str, list[Any]]:
        conds = ["s.start_time >= ?", "s.start_time < ?"]
        args: list[Any] = [_ts(store, start if start is not None else self.start), _ts(store, self.end)]
        if self.user_id is not None:
            conds.append("s.user_id = ?")
            args.append(self.user_id)
        if self.api_key is not None:
            conds.append("s.api_key = ?")
            args.append(self.api_key)
        return " AND ".join(conds), args


def _ts(store: Store, value: datetime) -> Any:
    return t.SPEND_LOGS.to_db("start_time", value, store.dialect)


def bucket_sql(dialect: str, bucket: str) -> str:
    """The SQL text key of a row's bucket: ``YYYY-MM-DD`` (``day``) or ``YYYY-MM-DDTHH`` (``hour``), UTC."""
    if dialect == "sqlite":
        return "substr(s.start_time, 1, 10)" if bucket == "day" else "substr(s.start_time, 1, 13)"
    fmt = "YYYY-MM-DD" if bucket == "day" else 'YYYY-MM-DD"T"HH24'
    return f"to_char(s.start_time AT TIME ZONE 'UTC', '{fmt}')"


def elapsed_ms(dialect: str, later: str, earlier: str) -> str:
    """The SQL milliseconds from the time column ``earlier`` to ``later`` (``s.end_time``, ``s.start_time`` ...)."""
    if dialect == "sqlite":
        # whole seconds, then microseconds, from the fixed ISO spelling (julianday() keeps milliseconds only)
        return (f"((CAST(strftime('%s', substr({later}, 1, 19)) AS INTEGER) - "
                f"CAST(strftime('%s', substr({earlier}, 1, 19)) AS INTEGER)) * 1000.0 + "
                f"(CAST(substr({later}, 21, 6) AS INTEGER) - CAST(substr({earlier}, 21, 6) AS INTEGER)) "
                "/ 1000.0)")
    return f"EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000.0"


def _latency_sql(dialect: str) -> str:
    return elapsed_ms(dialect, "s.end_time", "s.start_time")


def error_field(dialect: str, name: str) -> str:
    """The SQL text of a spend row's ``metadata.error_information.<name>`` (``error_class``, ``error_code`` ...)."""
    return (f"json_extract(s.metadata, '$.error_information.{name}')" if dialect == "sqlite"
            else f"(s.metadata->'error_information'->>'{name}')")


async def series(store: Store, scope: Scope, bucket: str) -> list[dict[str, Any]]:
    """Per bucket (in order): ``bucket`` (its text key), ``requests``, ``errors``, ``spend_nanos``,
    ``prompt_tokens``, ``completion_tokens``; buckets without rows are absent."""
    key = bucket_sql(store.dialect, bucket)
    where, args = scope.where(store)
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {key} AS b, COUNT(*) AS n, {_FAILED} AS e, SUM(s.spend_nanos) AS nanos, "
            "SUM(s.prompt_tokens) AS p, SUM(s.completion_tokens) AS comp, SUM(s.total_tokens) AS tot "
            f"FROM rg_spend_logs s WHERE {where} GROUP BY 1 ORDER BY 1", args)
    return [{"bucket": r["b"], "requests": int(r["n"]), "errors": int(r["e"] or 0),
             "spend_nanos": int(r["nanos"] or 0), "prompt_tokens": int(r["p"] or 0),
             "completion_tokens": int(r["comp"] or 0), "total_tokens": int(r["tot"] or 0)} for r in rows]


async def latency_percentiles(store: Store, scope: Scope, bucket: str | None
                              ) -> dict[str, dict[int, float | None]]:
    """``{bucket key: {50: ms, 95: ms, 99: ms}}`` (``bucket`` None: one entry ``""`` over the whole range);
    exact ``percentile_cont`` values, at most six rows fetched per bucket (see the module docstring)."""
    key = bucket_sql(store.dialect, bucket) if bucket is not None else "''"
    where, args = scope.where(store)
    ranks = " OR ".join(f"rn = {lo} + ({p} * (n - 1)) / 100" for p in PERCENTILES for lo in (1, 2))
    async with store._read() as c:
        rows = await c.fetch(
            f"WITH l AS (SELECT {key} AS b, {_latency_sql(store.dialect)} AS ms FROM rg_spend_logs s "
            f"WHERE {where} AND s.end_time IS NOT NULL), "
            "r AS (SELECT b, ms, ROW_NUMBER() OVER (PARTITION BY b ORDER BY ms) AS rn, "
            "COUNT(*) OVER (PARTITION BY b) AS n FROM l) "
            f"SELECT b, rn, n, ms FROM r WHERE {ranks} ORDER BY b, rn", args)
    ranked: dict[str, tuple[int, dict[int, float]]] = {}
    for r in rows:
        _, values = ranked.setdefault(str(r["b"]), (int(r["n"]), {}))
        values[int(r["rn"])] = float(r["ms"])
    return {b: {p: interpolate(values, n, p) for p in PERCENTILES} for b, (n, values) in ranked.items()}


def interpolate(values: dict[int, float], n: int, p: int) -> float | None:
    """``percentile_cont(p / 100)`` of ``n`` sorted values of which ``values`` holds those at the 1-based
    ranks around ``1 + p * (n - 1) / 100``; None without values."""
    if n <= 0:
        return None
    whole, part = divmod(p * (n - 1), 100)
    lo = values.get(1 + whole)
    if lo is None:
        return None
    hi = values.get(2 + whole, lo)
    return lo + (hi - lo) * part / 100


async def top_groups(store: Store, scope: Scope, by: str, limit: int) -> list[dict[str, Any]]:
    """The ``by`` groups (``model``: the model group, ``upstream_model``, ``key``, ``team``, ``provider``,
    ``end_user``; the last four without the rows that have none) with the most
    spend, then requests, in the range: ``id``, ``name`` (the key's or team's alias; the model itself),
    ``requests``, ``errors``, ``spend_nanos``, ``total_tokens``."""
    where, args = scope.where(store)
    if by == "model":
        col, name, join = "s.model_group", "MAX(s.model_group)", ""
    elif by == "upstream_model":
        col, name, join = "s.model", "MAX(s.model)", ""
    elif by == "key":
        col, name, join = "s.api_key", "MAX(k.key_alias)", " LEFT JOIN rg_keys k ON k.token = s.api_key"
        where += " AND s.api_key IS NOT NULL AND s.api_key <> ''"
    elif by == "team":
        col, name, join = "s.team_id", "MAX(g.team_alias)", " LEFT JOIN rg_teams g ON g.team_id = s.team_id"
        where += " AND s.team_id IS NOT NULL AND s.team_id <> ''"
    elif by in ("provider", "end_user"):
        col = "s.custom_llm_provider" if by == "provider" else "s.end_user"
        name, join = f"MAX({col})", ""
        where += f" AND {col} IS NOT NULL AND {col} <> ''"
    else:
        raise ValueError(f"unknown grouping {by!r}")
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {col} AS id, {name} AS name, COUNT(*) AS n, {_FAILED} AS e, SUM(s.spend_nanos) AS nanos, "
            f"SUM(s.total_tokens) AS tot FROM rg_spend_logs s{join} WHERE {where} GROUP BY {col} "
            f"ORDER BY nanos DESC, n DESC, {col} LIMIT ?", [*args, limit])
    return [{"id": r["id"], "name": r["name"], "requests": int(r["n"]), "errors": int(r["e"] or 0),
             "spend_nanos": int(r["nanos"] or 0), "total_tokens": int(r["tot"] or 0)} for r in rows]


def _tag_source(dialect: str) -> tuple[str, str]:
    """The spend rows, one per request tag of each (a row without tags is in none): the ``FROM`` clause and
    the tag's SQL."""
    if dialect == "sqlite":
        return "rg_spend_logs s, json_each(s.request_tags) AS tg", "tg.value"
    return "rg_spend_logs s CROSS JOIN LATERAL jsonb_array_elements_text(s.request_tags) AS tg(tag)", "tg.tag"


async def spend_by_tag(store: Store, scope: Scope, tags: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per request tag (only ``tags`` when given): ``tag``, ``requests``, ``spend_nanos``, the most spend
    first. A request with several tags counts for each (LiteLLM's ``DailyTagSpend``, likewise)."""
    src, tag = _tag_source(store.dialect)
    where, args = scope.where(store)
    if tags:
        where += f" AND {tag} IN ({', '.join('?' * len(tags))})"
        args = [*args, *tags]
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {tag} AS tag, COUNT(*) AS n, SUM(s.spend_nanos) AS nanos FROM {src} "
                             f"WHERE {where} GROUP BY {tag} ORDER BY nanos DESC, tag", args)
    return [{"tag": r["tag"], "requests": int(r["n"]), "spend_nanos": int(r["nanos"] or 0)} for r in rows]


async def tag_names(store: Store, scope: Scope, limit: int) -> list[str]:
    """The distinct request tags of the scope's rows, in order (at most ``limit``)."""
    src, tag = _tag_source(store.dialect)
    where, args = scope.where(store)
    async with store._read() as c:
        rows = await c.fetch(f"SELECT DISTINCT {tag} AS tag FROM {src} WHERE {where} ORDER BY tag LIMIT ?",
                             [*args, limit])
    return [str(r["tag"]) for r in rows]


async def daily_by_team(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Per UTC day and team (None: rows of no team): ``day``, ``team_id``, ``team_alias``, ``spend_nanos``,
    by day."""
    key = bucket_sql(store.dialect, "day")
    where, args = scope.where(store)
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {key} AS d, s.team_id AS team, MAX(g.team_alias) AS alias, SUM(s.spend_nanos) AS nanos "
            f"FROM rg_spend_logs s LEFT JOIN rg_teams g ON g.team_id = s.team_id WHERE {where} "
            "GROUP BY 1, 2 ORDER BY 1, 2", args)
    return [{"day": r["d"], "team_id": r["team"] or None, "team_alias": r["alias"],
             "spend_nanos": int(r["nanos"] or 0)} for r in rows]


async def spend_since(store: Store, scope: Scope, marks: Sequence[datetime]) -> list[int]:
    """The spend (nano-USD) of the scope's rows from each of ``marks`` (the earliest is the range's start) to
    the scope's end, in one pass."""
    first = min(marks)
    where, args = scope.where(store, first)
    sums = ", ".join(f"SUM(CASE WHEN s.start_time >= ? THEN s.spend_nanos ELSE 0 END) AS m{i}"
                     for i in range(len(marks)))
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {sums} FROM rg_spend_logs s WHERE {where}",
                             [*(_ts(store, m) for m in marks), *args])
    row = rows[0] if rows else {}
    return [int(row.get(f"m{i}") or 0) for i in range(len(marks))]


async def activity_by_model(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Per model group and UTC day: ``model``, ``day``, ``requests``, ``total_tokens`` (LiteLLM's
    ``/global/activity/model`` rows), ordered by model and day."""
    key = bucket_sql(store.dialect, "day")
    where, args = scope.where(store)
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.model_group AS model, {key} AS day, COUNT(*) AS n, SUM(s.total_tokens) AS tot "
            f"FROM rg_spend_logs s WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2", args)
    return [{"model": r["model"], "day": r["day"], "requests": int(r["n"]), "total_tokens": int(r["tot"] or 0)}
            for r in rows]


async def daily_status(store: Store, scope: Scope, status_code: int, model_group: str, *,
                       by_deployment: bool = False) -> list[dict[str, Any]]:
    """Per UTC day (and, ``by_deployment``, per deployment id: rows without one are left out) the rows of
    ``model_group`` answered ``status_code``: ``day``, ``deployment``, ``count``, in order."""
    key = bucket_sql(store.dialect, "day")
    where, args = scope.where(store)
    where += " AND s.status_code = ? AND s.model_group = ?"
    dep = "s.model_id" if by_deployment else "''"
    if by_deployment:
        where += " AND s.model_id IS NOT NULL AND s.model_id <> ''"
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {dep} AS dep, {key} AS d, COUNT(*) AS n FROM rg_spend_logs s WHERE {where} "
                             "GROUP BY 1, 2 ORDER BY 1, 2", [*args, status_code, model_group])
    return [{"deployment": r["dep"], "day": r["d"], "count": int(r["n"])} for r in rows]


async def deployment_report(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Per deployment id (rows without one are left out): ``deployment``, ``failed`` (requests not answered),
    ``per_token`` (mean seconds per output token of the answered ones with output, or None)."""
    where, args = scope.where(store)
    lat = _latency_sql(store.dialect)
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.model_id AS dep, SUM(CASE WHEN s.status = 'success' THEN 0 ELSE 1 END) AS failed, "
            f"AVG(CASE WHEN s.status = 'success' AND s.completion_tokens > 0 THEN {lat} / 1000.0 / "
            "s.completion_tokens END) AS per_token FROM rg_spend_logs s "
            f"WHERE {where} AND s.model_id IS NOT NULL AND s.model_id <> '' GROUP BY s.model_id", args)
    return [{"deployment": r["dep"], "failed": int(r["failed"] or 0),
             "per_token": float(r["per_token"]) if r["per_token"] is not None else None} for r in rows]


async def daily_activity(store: Store, scope: Scope, entity: str, *, ids: Sequence[str] | None = None,
                         exclude: Sequence[str] | None = None, model: str | None = None,
                         api_key: str | None = None) -> list[dict[str, Any]]:
    """Per UTC day, model group, upstream model, provider, key and ``entity`` (``store.daily.DAILY_KINDS``; only
    ``ids`` when given, never ``exclude``) of the scope's whole days: ``day``, ``model_group``, ``model``,
    ``provider``, ``api_key``, ``entity``, ``spend_nanos``, ``prompt_tokens``, ``completion_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``requests``, ``failed``; read from the daily rollup
    (``store.daily``), which outlives the spend logs. The rollup keeps no user per team, tag, organization or
    customer row, so a scope limited to a caller's own rows is refused (``ValueError``): the routes limit a
    caller through ``ids`` instead."""
    if scope.user_id is not None or scope.api_key is not None:
        raise ValueError("daily activity reads whole entities: limit the caller through ids")
    return await read_daily(store, scope.start, scope.end, entity, ids=ids, exclude=exclude, model=model,
                            api_key=api_key)


async def org_admin_of(store: Store, user_id: str) -> list[str]:
    """The organizations of which ``user_id`` is an ``org_admin``."""
    async with store._read() as c:
        rows = await c.fetch("SELECT organization_id FROM rg_organization_members WHERE user_id = ? AND "
                             "user_role = 'org_admin' ORDER BY organization_id", [user_id])
    return [r["organization_id"] for r in rows]


async def keys_of_user(store: Store, user_id: str) -> list[str]:
    """The hashes of the keys ``user_id`` owns."""
    async with store._read() as c:
        rows = await c.fetch("SELECT token FROM rg_keys WHERE user_id = ?", [user_id])
    return [r["token"] for r in rows]


async def spend_log_facet(store: Store, column: str, start: datetime, end: datetime, part: str | None,
                          user_id: str | None, teams: Sequence[str], scan: int, offset: int, limit: int) -> list[str]:
    """The distinct values of ``column`` (``end_user`` or ``user_id``) among the newest ``scan`` spend rows from
    ``start`` (included) to ``end`` (excluded) that have one, containing ``part`` in any case when given;
    ``user_id`` set: only that user's rows and those of ``teams``. In order, ``limit`` from ``offset``."""
    if column not in ("end_user", "user_id"):
        raise ValueError(column)
    conds = ["s.start_time >= ?", "s.start_time < ?", f"s.{column} IS NOT NULL", f"s.{column} <> ''"]
    args: list[Any] = [_ts(store, start), _ts(store, end)]
    if part:
        conds.append(f"LOWER(s.{column}) LIKE ? ESCAPE '\\'")
        args.append("%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if user_id is not None:
        own = ["s.user_id = ?"]
        args.append(user_id)
        if teams:
            own.append(f"s.team_id IN ({', '.join('?' * len(teams))})")
            args.extend(teams)
        conds.append("(" + " OR ".join(own) + ")")
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT DISTINCT v FROM (SELECT s.{column} AS v FROM rg_spend_logs s WHERE {' AND '.join(conds)} "
            "ORDER BY s.start_time DESC, s.request_id DESC LIMIT ?) AS scanned ORDER BY v LIMIT ? OFFSET ?",
            [*args, scan, limit, offset])
    return [r["v"] for r in rows]


UNNAMED_KEY = "Unnamed Key"
"""LiteLLM's alias of a key that has none (or is no longer stored) in the cache activity."""


async def cache_activity(store: Store, scope: Scope, key_aliases: Sequence[str],
                         models: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The scope's requests per call type for LiteLLM's cache dashboard (``/global/activity/cache_hits``), only
    those of keys whose alias (``Unnamed Key`` without one) is in ``key_aliases`` and of ``models`` when given:
    ``groups`` (``call_type``, ``api_requests`` answered by a provider, ``cache_hits``, ``failed_requests``,
    ``cached_completion_tokens``, ``generated_completion_tokens``; most requests first), ``errors`` (per call
    type, error code and error class of the failures, most first) and the filters' choices over the whole
    scope: ``key_aliases`` and ``models``."""
    where, args = scope.where(store)
    alias = f"COALESCE(k.key_alias, '{UNNAMED_KEY}')"
    joined = "FROM rg_spend_logs s LEFT JOIN rg_keys k ON k.token = s.api_key"
    filtered, fargs = where, list(args)
    if key_aliases:
        filtered += f" AND {alias} IN ({', '.join('?' * len(key_aliases))})"
        fargs.extend(key_aliases)
    if models:
        filtered += f" AND s.model IN ({', '.join('?' * len(models))})"
        fargs.extend(models)
    call = "CASE WHEN s.call_type IS NULL OR s.call_type = '' THEN 'Unknown' ELSE s.call_type END"
    hit = "CASE WHEN s.cache_hit THEN 1 ELSE 0 END"
    failed = "CASE WHEN s.status = 'failure' THEN 1 ELSE 0 END"
    async with store._read() as c:
        groups = await c.fetch(
            f"SELECT {call} AS call_type, COUNT(*) AS n, SUM({hit}) AS hits, SUM({failed}) AS failed, "
            f"SUM(CASE WHEN s.cache_hit THEN s.completion_tokens ELSE 0 END) AS cached, "
            f"SUM(CASE WHEN s.cache_hit THEN 0 ELSE s.completion_tokens END) AS generated {joined} "
            f"WHERE {filtered} GROUP BY 1 ORDER BY 2 DESC, 1", fargs)
        code, klass = (f"COALESCE(NULLIF({error_field(store.dialect, f)}, ''), 'Unknown')"
                       for f in ("error_code", "error_class"))
        errors = await c.fetch(
            f"SELECT {call} AS call_type, {code} AS code, {klass} AS klass, COUNT(*) AS n {joined} "
            f"WHERE {filtered} AND s.status = 'failure' GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3", fargs)
        aliases = await c.fetch(f"SELECT DISTINCT {alias} AS a {joined} WHERE {where} ORDER BY 1", args)
        names = await c.fetch(f"SELECT DISTINCT s.model AS m FROM rg_spend_logs s WHERE {where} AND s.model <> '' "
                              "ORDER BY 1", args)
    return {"groups": [{"call_type": r["call_type"], "api_requests": int(r["n"]) - int(r["hits"] or 0)
                        - int(r["failed"] or 0), "cache_hits": int(r["hits"] or 0),
                        "failed_requests": int(r["failed"] or 0), "cached_completion_tokens": int(r["cached"] or 0),
                        "generated_completion_tokens": int(r["generated"] or 0)} for r in groups],
            "errors": [{"call_type": r["call_type"], "error_code": str(r["code"]), "error_class": str(r["klass"]),
                        "count": int(r["n"])} for r in errors],
            "key_aliases": [r["a"] for r in aliases], "models": [r["m"] for r in names]}


async def key_labels(store: Store, tokens: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """``{token: (key_alias, team_id)}`` of the stored keys among ``tokens`` (in slices of 500)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    wanted = list(dict.fromkeys(t for t in tokens if t))
    async with store._read() as c:
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = await c.fetch(f"SELECT token, key_alias, team_id FROM rg_keys WHERE token IN "
                                 f"({', '.join('?' * len(part))})", part)
            out.update((r["token"], (r["key_alias"], r["team_id"])) for r in rows)
    return out


UNATTRIBUTED = "unattributed"
"""LiteLLM's reporting id of the empty key (requests no key paid for)."""


def reporting_key(token: str) -> str:
    """LiteLLM's reporting id of a key in the activity views: the empty key is ``unattributed``; a key that would
    read as that or as an escaped one gets ``raw:`` in front; any other key is itself."""
    if not token:
        return UNATTRIBUTED
    return "raw:" + token if token == UNATTRIBUTED or token.startswith("raw:") else token


def key_of_reporting(ident: str) -> str:
    """The stored key a reporting id names (:func:`reporting_key`'s inverse)."""
    if ident == UNATTRIBUTED:
        return ""
    return ident[4:] if ident.startswith("raw:") else ident


async def key_metadata(store: Store, tokens: Sequence[str]) -> dict[str, dict[str, Any]]:
    """LiteLLM's ``KeyMetadata`` of each of ``tokens``: ``key_alias``, ``team_id``, ``user_id`` (the key's owner),
    ``user_email`` (the owner's) and ``key_exists``; the empty key is ``Unattributed``, a key no longer stored
    exists no more (read in slices of 500)."""
    out: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(t for t in tokens if t))
    async with store._read() as c:
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = await c.fetch(f"SELECT k.token AS token, k.key_alias AS key_alias, k.team_id AS team_id, "
                                 f"k.user_id AS user_id, u.user_email AS user_email FROM rg_keys k "
                                 f"LEFT JOIN rg_users u ON u.user_id = k.user_id "
                                 f"WHERE k.token IN ({', '.join('?' * len(part))})", part)
            out.update((r["token"], {"key_alias": r["key_alias"], "team_id": r["team_id"], "user_id": r["user_id"],
                                     "user_email": r["user_email"], "key_exists": True}) for r in rows)
    gone = {"key_alias": None, "team_id": None, "user_id": None, "user_email": None, "key_exists": False}
    for token in tokens:
        if token not in out:
            out[token] = dict(gone, key_alias="Unattributed") if not token else dict(gone)
    return out


async def entity_labels(store: Store, entity: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The metadata LiteLLM shows beside an entity of the daily views: a user's ``user_email`` and
    ``user_alias``, a team's ``team_alias``, an organization's ``organization_alias``, a customer's ``alias``;
    nothing for a tag (read in slices of 500)."""
    query = {"user": ("SELECT user_id AS id, user_email, user_alias FROM rg_users", "user_id",
                      ("user_email", "user_alias")),
             "team": ("SELECT team_id AS id, team_alias FROM rg_teams", "team_id", ("team_alias",)),
             "organization": ("SELECT organization_id AS id, organization_alias FROM rg_organizations",
                              "organization_id", ("organization_alias",)),
             "customer": ("SELECT user_id AS id, alias FROM rg_customers", "user_id", ("alias",))}.get(entity)
    out: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(i for i in ids if i))
    if query is None or not wanted:
        return out
    sql, column, fields = query
    async with store._read() as c:
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = await c.fetch(f"{sql} WHERE {column} IN ({', '.join('?' * len(part))})", part)
            out.update((r["id"], {f: r[f] for f in fields}) for r in rows)
    return out


async def team_aliases(store: Store, limit: int = 100_000) -> dict[str, str | None]:
    """``{team_id: team_alias}`` of the stored teams (at most ``limit``)."""
    async with store._read() as c:
        rows = await c.fetch("SELECT team_id, team_alias FROM rg_teams ORDER BY team_id LIMIT ?", [limit])
    return {r["team_id"]: r["team_alias"] for r in rows}


async def team_member_counts(store: Store, limit: int) -> list[tuple[str, str, int]]:
    """``(team_id, team_alias or "", members)`` of at most ``limit`` teams, by team id: LiteLLM's
    ``litellm_team_members_metric`` (the members of ``members_with_roles``, which the team's membership rows
    mirror)."""
    async with store._read() as c:
        rows = await c.fetch(
            "SELECT t.team_id AS team_id, t.team_alias AS team_alias, COUNT(m.user_id) AS n FROM rg_teams t "
            "LEFT JOIN rg_team_members m ON m.team_id = t.team_id GROUP BY t.team_id, t.team_alias "
            "ORDER BY t.team_id LIMIT ?", [limit])
    return [(r["team_id"], r["team_alias"] or "", int(r["n"])) for r in rows]


async def principal_counts(store: Store) -> tuple[int, int]:
    """``(users, teams)`` in the store: LiteLLM's ``litellm_total_users`` and ``litellm_teams_count``."""
    async with store._read() as c:
        users = (await c.fetch("SELECT COUNT(*) AS n FROM rg_users", []))[0]["n"]
        teams = (await c.fetch("SELECT COUNT(*) AS n FROM rg_teams", []))[0]["n"]
    return int(users), int(teams)


async def team_user_spend(store: Store, start: datetime, end: datetime, team_ids: Sequence[str],
                          user_id: str | None = None) -> list[dict[str, Any]]:
    """Spend per user within each of ``team_ids`` between ``start`` (inclusive) and ``end`` (exclusive), from the
    spend logs (LiteLLM 1.110's ``/team/spend/by_user``): ``team_id``, ``user_id`` (None: requests of no user),
    the user's ``user_email`` / ``user_alias``, ``spend_nanos``, token sums, ``requests`` and ``failed``; only
    ``user_id``'s rows when given; the largest spend first."""
    if not team_ids:
        return []
    args: list[Any] = [_ts(store, start), _ts(store, end), *team_ids]
    mine = ""
    if user_id is not None:
        mine, args = " AND s.user_id = ?", [*args, user_id]
    async with store._read() as c:
        rows = await c.fetch(
            "SELECT s.team_id AS team_id, s.user_id AS user_id, MAX(u.user_email) AS email, MAX(u.user_alias) AS "
            "alias, SUM(s.spend_nanos) AS nanos, SUM(s.prompt_tokens) AS p, SUM(s.completion_tokens) AS comp, "
            "SUM(s.total_tokens) AS tot, COUNT(*) AS n, SUM(CASE WHEN s.status = 'failure' THEN 1 ELSE 0 END) AS f "
            "FROM rg_spend_logs s LEFT JOIN rg_users u ON u.user_id = s.user_id WHERE s.start_time >= ? AND "
            f"s.start_time < ? AND s.team_id IN ({', '.join('?' * len(team_ids))}){mine} "
            "GROUP BY s.team_id, s.user_id ORDER BY 5 DESC, 1, 2", args)
    return [{"team_id": r["team_id"], "user_id": r["user_id"], "user_email": r["email"], "user_alias": r["alias"],
             "spend_nanos": int(r["nanos"] or 0), "prompt_tokens": int(r["p"] or 0),
             "completion_tokens": int(r["comp"] or 0), "total_tokens": int(r["tot"] or 0), "requests": int(r["n"]),
             "failed": int(r["f"] or 0)} for r in rows]


async def scoped_spend_report(store: Store, start: datetime, end: datetime, *, column: str, value: str,
                              team_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """LiteLLM 1.110's scoped spend reports (``/key``, ``/user``, ``/team``, ``/organization/spend/report``): the
    spend logs between ``start`` and ``end`` whose ``column`` (``api_key``, ``user_id``, ``team_id`` or
    ``organization_id``) is ``value`` (for an organization, also those of no organization whose team is one of
    ``team_ids``), per key: ``api_key``, ``total_cost`` (nano-USD summed, in USD), input and output tokens and
    ``model_details`` per model (with its ``team_id`` for an organization), the largest cost first."""
    if column not in ("api_key", "user_id", "team_id", "organization_id"):
        raise ValueError(column)
    org = column == "organization_id"
    cond, args = f"s.{column} = ?", [_ts(store, start), _ts(store, end), value]
    if org and team_ids:
        cond = (f"({cond} OR ((s.organization_id IS NULL OR s.organization_id = '') AND s.team_id IN "
                f"({', '.join('?' * len(team_ids))})))")
        args.extend(team_ids)
    team = ", s.team_id AS team_id" if org else ""
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT s.api_key AS api_key, s.model AS model{team}, SUM(s.spend_nanos) AS nanos, "
            "SUM(s.prompt_tokens) AS p, SUM(s.completion_tokens) AS comp FROM rg_spend_logs s "
            f"WHERE s.start_time >= ? AND s.start_time < ? AND {cond} GROUP BY s.api_key, s.model"
            f"{team and ', s.team_id'} ORDER BY 1, 2", args)
    by_key: dict[str, dict[str, Any]] = {}
    for r in rows:
        nanos, p, comp = int(r["nanos"] or 0), int(r["p"] or 0), int(r["comp"] or 0)
        entry = by_key.setdefault(r["api_key"] or "", {"api_key": r["api_key"] or "", "nanos": 0,
                                                        "total_input_tokens": 0, "total_output_tokens": 0,
                                                        "model_details": []})
        entry["nanos"] += nanos
        entry["total_input_tokens"] += p
        entry["total_output_tokens"] += comp
        detail = {"team_id": r["team_id"]} if org else {}
        entry["model_details"].append({**detail, "model": r["model"], "total_cost": nanos / NANOS,
                                       "total_input_tokens": p, "total_output_tokens": comp})
    out = sorted(by_key.values(), key=lambda e: (-e["nanos"], e["api_key"]))
    for e in out:
        e["total_cost"] = e.pop("nanos") / NANOS
    return [{k: e[k] for k in ("api_key", "total_cost", "total_input_tokens", "total_output_tokens",
                               "model_details")} for e in out]
