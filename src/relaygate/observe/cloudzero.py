"""LiteLLM's CloudZero export (the ``cloudzero`` callback, ``/cloudzero/*``): spend sent to CloudZero's AnyCost API.

What it owns: the credentials (the ``cloudzero_settings`` row the routes write, its API key sealed as model
credentials are, else ``CLOUDZERO_API_KEY`` / ``CLOUDZERO_CONNECTION_ID``), the CloudZero Billing Format records
made of the spend logs, the drops posted, and the hourly job.

- **Records**: the spend logs summed per hour, key, model group, model, provider, team and user
  (``store.usage_hours``), one CBF record each, in LiteLLM's mapping: ``time/usage_start`` (the hour, UTC),
  ``cost/cost``, ``usage/amount`` (prompt + completion tokens) in ``tokens``, ``resource/id`` a CloudZero resource
  name (``czrn:litellm:<provider>:cross-region:<team>:llm-usage:<model>``, each part but the model lower case with
  anything but letters, digits and ``-`` made ``-``, ``unknown`` when empty; the provider as LiteLLM maps it:
  ``bedrock`` is ``aws``, ``gemini`` ``google``), ``resource/service`` the model group, ``resource/account``
  ``<key alias>|<hash prefix>``, ``resource/region`` ``cross-region``, ``resource/usage_family`` the provider,
  ``action/operation`` the team, ``lineitem/type`` ``Usage``, and LiteLLM's ``resource/tag:*`` (provider, model,
  model group, team, key prefix and alias, user email, request counts, cache and token counts). Groups with no
  successful request are left out, as LiteLLM leaves them out. Every value is a string, numbers without an
  exponent. Where relaygate differs: LiteLLM sends a day's totals (its daily table) stamped at midnight; hourly
  records from the spend rows are what ``replace_hourly`` replaces hour by hour, so an export sent again replaces
  what it sent before instead of adding to it.
- **Drops**: one ``POST <CLOUDZERO_API_BASE or https://api.cloudzero.com>/v2/connections/billing/anycost/
  <connection id>/billing_drops`` per UTC day, ``{"month", "operation", "data"}``, ``Authorization: Bearer <key>``
  (LiteLLM's), retried twice on a lost connection, a 429 or a 5xx; a failure is :class:`ExportFailed` with
  CloudZero's status.
- **The job** (``litellm_settings.callbacks: ["cloudzero"]``): every ``CLOUDZERO_EXPORT_INTERVAL_MINUTES`` (60),
  one worker of the cluster (the store's job lock, the last export's end in the ``cloudzero_exported`` row) sends
  the hours from twice the interval before (LiteLLM's overlap, so a restart loses nothing) — or from the last
  export, if longer ago, up to 31 days — to now. A failure is one log line; the next run sends those hours again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from relaygate.core.errors import register_secrets
from relaygate.store.settings import read_settings, write_setting
from relaygate.store.usage_hours import hourly_usage

__all__ = ["MARK", "SETTING", "CloudZeroSettings", "ExportFailed", "cbf_records", "czrn", "drops", "dry_run",
           "export", "export_due", "interval_minutes", "run_forever", "settings_for"]

log = logging.getLogger("relaygate.cloudzero")

SETTING = "cloudzero_settings"
"""The ``rg_config`` row ``/cloudzero/init`` writes: ``{"api_key": sealed, "connection_id", "timezone"}``."""
MARK = "cloudzero_exported"
"""The ``rg_config`` row of the job: ``{"until": epoch seconds}``, the end of the last export."""
API = "https://api.cloudzero.com"
OPERATIONS = ("replace_hourly", "sum", "replace_drop")
"""AnyCost's drop operations."""
MAX_BACK = timedelta(days=31)
"""How far back the job sends at most, after a long outage."""
CHECK_EVERY = 300.0
"""Seconds between the job's checks of whether an export is due."""


@dataclass(frozen=True, slots=True)
class CloudZeroSettings:
    api_key: str
    connection_id: str
    timezone: str = "UTC"
    source: str = "environment"


class ExportFailed(Exception):
    """CloudZero did not take a drop (``status``: its HTTP status, 0 when no answer came)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def interval_minutes(env: Mapping[str, str]) -> float:
    raw = (env.get("CLOUDZERO_EXPORT_INTERVAL_MINUTES") or "").strip()
    try:
        value = float(raw) if raw else 60.0
    except ValueError:
        value = -1.0
    if not value >= 1.0:
        from relaygate.config.errors import ConfigError
        raise ConfigError("environment", "CLOUDZERO_EXPORT_INTERVAL_MINUTES", f"expected minutes >= 1, got {raw!r}")
    return value


async def settings_for(store: Any, sealer: Any, env: Mapping[str, str]) -> CloudZeroSettings | None:
    """The credentials an export uses: the stored row (``/cloudzero/init``), else the environment; None without
    either."""
    if store is not None:
        row = (await read_settings(store)).get(SETTING)
        if isinstance(row, dict) and row.get("api_key") and row.get("connection_id"):
            key = sealer.open(str(row["api_key"]))
            register_secrets([key])
            return CloudZeroSettings(key, str(row["connection_id"]), str(row.get("timezone") or "UTC"), "database")
    key, conn = (env.get("CLOUDZERO_API_KEY") or "").strip(), (env.get("CLOUDZERO_CONNECTION_ID") or "").strip()
    if key and conn:
        register_secrets([key])
        return CloudZeroSettings(key, conn, (env.get("CLOUDZERO_TIMEZONE") or "UTC").strip() or "UTC")
    return None


# -- records ---------------------------------------------------------------------------------------------

_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_PROVIDERS = {"bedrock": "aws", "gemini": "google"}
"""LiteLLM's provider names in resource names, where its map applies (its other entries are the names
themselves, or keyed with ``_`` after it turned ``_`` into ``-``, so they never apply: ``vertex_ai`` is
``vertex-ai`` in its resource names, and here)."""


def component(text: Any) -> str:
    """A resource name's part: lower case, runs of anything but letters, digits and ``-`` one ``-``."""
    out = _NOT_NAME.sub("-", str(text or "").lower()).strip("-")
    return re.sub(r"-{2,}", "-", out) or "unknown"


def czrn(provider: str | None, team_id: str | None, model: str | None) -> str:
    p = component((provider or "").lower().replace("_", "-"))
    return f"czrn:litellm:{_PROVIDERS.get(p, p)}:cross-region:{component(team_id)}:llm-usage:{model or 'unknown'}"


def number(value: float | int) -> str:
    """A number as CBF spells it: decimal, no exponent, no trailing zeros."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def cbf_records(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The CBF records of :func:`~relaygate.store.usage_hours.hourly_usage` rows (see the module docstring)."""
    out: list[dict[str, str]] = []
    for r in rows:
        ok = r["requests"] - r["failed"]
        if ok <= 0:
            continue
        key = r["api_key"] or ""
        prefix = key[:8]
        alias = r.get("key_alias")
        team = r.get("team_id")
        provider = r.get("provider") or ""
        rec = {"time/usage_start": f"{r['hour']}:00:00Z", "cost/cost": number(r["spend"]),
               "usage/amount": number(r["prompt_tokens"] + r["completion_tokens"]), "usage/units": "tokens",
               "resource/id": czrn(provider, team, r.get("model")),
               "resource/service": str(r.get("model_group") or r.get("model") or "unknown"),
               "resource/account": f"{alias}|{prefix}" if alias else prefix, "resource/region": "cross-region",
               "resource/usage_family": provider, "action/operation": team or "", "lineitem/type": "Usage"}
        tags = {"provider": provider, "model": r.get("model"), "model_group": r.get("model_group"),
                "entity_type": "team", "entity_id": r.get("team_alias") or team or "unknown",
                "team_alias": r.get("team_alias"), "api_key_prefix": prefix, "api_key_alias": alias,
                "user_email": r.get("user_email"), "api_requests": str(r["requests"]), "successful_requests": str(ok),
                "failed_requests": str(r["failed"]), "cache_creation_tokens": str(r["cache_write_tokens"]),
                "cache_read_tokens": str(r["cache_read_tokens"])}
        for name, value in tags.items():
            if value and value not in ("N/A", "unknown"):
                rec[f"resource/tag:{name}"] = str(value)
        for name in ("prompt_tokens", "completion_tokens"):
            if r[name] > 0:
                rec[f"resource/tag:{name}"] = str(r[name])
        out.append(rec)
    return out


def drops(records: Sequence[Mapping[str, str]], operation: str) -> list[dict[str, Any]]:
    """The records as AnyCost drops, one per UTC day (oldest first)."""
    by_day: dict[str, list[Mapping[str, str]]] = {}
    for rec in records:
        by_day.setdefault(rec["time/usage_start"][:10], []).append(rec)
    return [{"month": day[:7], "operation": operation, "data": by_day[day]} for day in sorted(by_day)]


def summary(records: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    return {"total_records": len(records), "total_cost": sum(float(r["cost/cost"]) for r in records),
            "total_tokens": sum(int(r["usage/amount"]) for r in records),
            "unique_accounts": len({r["resource/account"] for r in records}),
            "unique_services": len({r["resource/service"] for r in records})}


# -- sending ---------------------------------------------------------------------------------------------

async def send(settings: CloudZeroSettings, bodies: Sequence[Mapping[str, Any]], env: Mapping[str, str], *,
               retries: int = 2, backoff: float = 1.0) -> None:
    from relaygate.observe.post import Poster, PostError

    base = (env.get("CLOUDZERO_API_BASE") or "").strip().rstrip("/") or API
    url = (f"{base}/v2/connections/billing/anycost/{urllib.parse.quote(settings.connection_id, safe='')}"
           "/billing_drops")
    headers = [("content-type", "application/json"), ("authorization", f"Bearer {settings.api_key}")]
    poster = Poster(30.0, user_agent="relaygate-cloudzero")
    try:
        for body in bodies:
            wire = msgspec.json.encode(body)
            for attempt in range(retries + 1):
                try:
                    got = await poster.post(url, wire, headers)
                except PostError as exc:
                    why, status, again = str(exc), 0, True
                else:
                    if 200 <= got.status < 300:
                        break
                    why, status = f"HTTP {got.status}: {got.text[:300]}", got.status
                    again = got.status == 429 or got.status >= 500
                if not again or attempt == retries:
                    raise ExportFailed(f"CloudZero did not take the drop of {body['data'][0]['time/usage_start'][:10]}"
                                       f" ({why})", status)
                await asyncio.sleep(backoff * 2**attempt * (0.5 + random.random()))
    finally:
        await poster.aclose()


async def export(store: Any, settings: CloudZeroSettings, env: Mapping[str, str], start: datetime, end: datetime,
                 operation: str = "replace_hourly", limit: int | None = None) -> int:
    """Send the hours from ``start`` to ``end``; the records sent."""
    records = cbf_records(await hourly_usage(store, start, end, limit))
    if records:
        await send(settings, drops(records, operation), env)
    return len(records)


async def dry_run(store: Any, start: datetime, end: datetime, limit: int | None) -> dict[str, Any]:
    """What :func:`export` would send (LiteLLM's dry run: the first 50 usage rows, every record, a summary)."""
    rows = await hourly_usage(store, start, end, limit)
    records = cbf_records(rows)
    return {"usage_data": rows[:50], "cbf_data": records, "summary": summary(records)}


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def export_due(store: Any, sealer: Any, env: Mapping[str, str], now: datetime | None = None) -> int | None:
    """Export if the interval passed since the cluster's last export (under the job lock); the records sent, or
    None when nothing was due (or another worker holds the lock)."""
    now = now or datetime.now(UTC)
    every = timedelta(minutes=interval_minutes(env))
    async with store.job_lock("cloudzero_export") as mine:
        if not mine:
            return None
        mark = (await read_settings(store)).get(MARK)
        until = mark.get("until") if isinstance(mark, dict) else None
        last = datetime.fromtimestamp(until, UTC) if isinstance(until, int | float) else None
        if last is not None and now - last < every - timedelta(seconds=30):
            return None
        settings = await settings_for(store, sealer, env)
        if settings is None:
            log.warning("cloudzero: nothing exported: no credentials (POST /cloudzero/init, or set CLOUDZERO_API_KEY "
                        "and CLOUDZERO_CONNECTION_ID)")
            return None
        start = now - 2 * every
        if last is not None and last < start:
            start = max(last, now - MAX_BACK)
        n = await export(store, settings, env, _hour(start), now)
        await write_setting(store, MARK, {"until": now.timestamp(), "records": n}, "cloudzero_export")
        log.info("cloudzero: %d record(s) exported (%s to %s)", n, _hour(start).isoformat(), now.isoformat())
        return n


async def run_forever(store: Any, sealer: Any, env: Mapping[str, str], first: float | None = None) -> None:
    """The job: a first check 10 s to 1 min after start, then every five minutes; until cancelled."""
    await asyncio.sleep(first if first is not None else 10.0 + random.uniform(0.0, 50.0))
    while True:
        started = time.monotonic()
        try:
            await export_due(store, sealer, env)
        except ExportFailed as exc:
            log.warning("cloudzero: export failed, the next run sends those hours again: %s", exc)
        except Exception as exc:  # the database down, a sealed key that does not open
            log.warning("cloudzero: export not run: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(max(1.0, CHECK_EVERY - (time.monotonic() - started)))
