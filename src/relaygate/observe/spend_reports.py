"""LiteLLM's ``spend_reports`` and ``daily_reports`` alerts: spend per team and tag; the failing and slow deployments.

What it owns: :func:`run_forever`, started by the gateway on every worker that has a store and an alerter that
sends ``spend_reports`` (in LiteLLM's default ``alert_types``), and :func:`report_text`, LiteLLM's layout
(``*💸 Spend Report for `MM-DD-YYYY - MM-DD-YYYY` (7 days)*``, then ``Team: `alias` | Spend: `$x```` and
``Tag: `tag` | Spend: `$x``` lines, level ``Low``; names cleaned as every alert's text is: a tag is a
client's word).

``spend_reports`` when: as LiteLLM, a first report soon after the gateway first starts (10 s to 5 min,
jittered), then one every ``general_settings.spend_report_frequency`` (``7d`` by default; ``Nd``) covering the
days before; and the past month's on the first days of the next (LiteLLM sends, on the 1st, a report of the
month just begun: here the month that ended, within its first week, so a gateway down on the 1st still sends
it). Once per cluster: every worker of every instance checks every five minutes, under the store's job lock,
when the last report was sent (a row of ``rg_config``, ``spend_report_sent``), so restarts and more instances
send no more. A period without spend sends nothing. Each report lists at most :data:`MAX_LINES` teams and
tags, the most spent first. A database or webhook failure is logged and the next check tries again; nothing
here is on a request's path.

``daily_reports``: every ``alerting_args.daily_report_frequency`` seconds (LiteLLM's 12 hours, or
``SLACK_DAILY_REPORT_FREQUENCY``), the five deployments with the most failed requests and the five slowest
(mean seconds per output token) over that period, LiteLLM's layout (``Here are today's key metrics 📈``,
``Deployment: `openai/gpt-4o`, Failed Requests: `3`,  API Base: `...``` ...). LiteLLM counts them in each
proxy's memory (or Redis) and sends a report per proxy; here they are read from the spend logs, for the whole
cluster, once, under the same lock and mark (checked every five minutes, LiteLLM's ``report_check_interval``).
A deployment no longer configured shows its id; the API base without credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from relaygate.core.urls import public_base
from relaygate.observe.alert_rules import clean
from relaygate.observe.fallback_reports import FallbackSource, fallback_text
from relaygate.store import Store
from relaygate.store.activity import Scope, deployment_report, spend_by_tag
from relaygate.store.settings import read_settings, write_setting
from relaygate.store.spend import spend_report

__all__ = ["MARK", "MAX_LINES", "daily_text", "due", "report_text", "run_forever", "send_due"]

log = logging.getLogger("relaygate.alerting")

MARK = "spend_report_sent"
"""The ``rg_config`` row saying when the last periodic report went and which month's report went last."""
MAX_LINES = 50
CHECK_EVERY = 300.0
_LOCK = "spend_reports"


def report_text(title: str, teams: list[tuple[str, float]], tags: list[tuple[str, float]]) -> str:
    """LiteLLM's spend report message: ``title``, then each team's and tag's spend in USD (4 decimals)."""
    text = f"*💸 {title}*\n"
    if teams:
        text += "\n*Team Spend Report:*\n" + "".join(f"Team: `{clean(t)}` | Spend: `${round(s, 4)}`\n"
                                                     for t, s in teams[:MAX_LINES])
    if tags:
        text += "\n*Tag Spend Report:*\n" + "".join(f"Tag: `{clean(t)}` | Spend: `${round(s, 4)}`\n"
                                                    for t, s in tags[:MAX_LINES])
    return text


Lines = list[tuple[str, float]]


async def _spend(store: Store, start: datetime, end: datetime) -> tuple[Lines, Lines]:
    teams: dict[str, float] = {}
    for row in await spend_report(store, "team", start, end):
        if row["group"]:
            name = row["alias"] or row["group"]
            teams[name] = teams.get(name, 0.0) + row["spend_nanos"] / 1e9
    tags = [(r["tag"], r["spend_nanos"] / 1e9) for r in await spend_by_tag(store, Scope(start, end)) if r["tag"]]
    return sorted(teams.items(), key=lambda kv: -kv[1]), tags


def deployment_names(config: Any) -> dict[str, tuple[str, str]]:
    """Each configured deployment's id -> its model (LiteLLM's ``litellm_params.model``) and API base without
    credentials, for the daily report."""
    return {d.id: (d.model, public_base(d.api_base) or "") for d in config.deployments}


def due(mark: Any, now: datetime, days: int) -> tuple[bool, str | None]:
    """Whether the periodic report is due at ``now`` (the last one ``days`` days ago, less an hour, or never),
    and the month (``YYYY-MM``) whose report is due (in the first 7 days of the next month), given the
    stored ``mark``."""
    last = mark.get("periodic") if isinstance(mark, dict) else None
    periodic = not isinstance(last, int | float) or now.timestamp() - last >= days * 86_400 - 3_600
    previous = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    sent_month = mark.get("monthly") if isinstance(mark, dict) else None
    month = previous if now.day <= 7 and sent_month != previous else None
    return periodic, month


def daily_text(failing: list[tuple[str, str, int]], slow: list[tuple[str, str, float]], next_at: float) -> str:
    """LiteLLM's daily report: (deployment model, API base, failures) and (model, API base, seconds per token)."""
    text = "\n\nTime: `" + repr(time.time()) + "`s\nHere are today's key metrics 📈: \n\n"
    text += "\n\n*❗️ Top Deployments with Most Failed Requests:*\n\n" + ("" if failing else "\tNone\n")
    text += "".join(f"\t{i}. Deployment: `{clean(m)}`, Failed Requests: `{n}`,  API Base: `{clean(b)}`\n"
                    for i, (m, b, n) in enumerate(failing, 1))
    text += "\n\n*😅 Top Slowest Deployments:*\n\n" + ("" if slow else "\tNone\n")
    text += "".join(f"\t{i}. Deployment: `{clean(m)}`, Latency per output token: `{round(v, 3)}s/token`,  "
                    f"API Base: `{clean(b)}`\n\n" for i, (m, b, v) in enumerate(slow, 1))
    return text + f"\n\nNext Run is at: `{next_at}`s"


async def _daily(store: Store, alerter: Any, start: datetime, end: datetime, every: float,
                 deployments: Callable[[], dict[str, tuple[str, str]]]) -> bool:
    rows = await deployment_report(store, Scope(start, end))
    names = deployments()

    def named(dep: str) -> tuple[str, str]:
        return names.get(dep, (dep, ""))

    failing = [(*named(r["deployment"]), r["failed"]) for r in sorted(rows, key=lambda r: -r["failed"])
               if r["failed"] > 0][:5]
    slow = [(*named(r["deployment"]), r["per_token"]) for r in sorted(
        (r for r in rows if r["per_token"]), key=lambda r: -r["per_token"])][:5]
    if not failing and not slow:
        return False
    alerter.report(daily_text(failing, slow, end.timestamp() + every), "daily_reports")
    return True


async def send_due(store: Store, alerter: Any, days: int, now: datetime | None = None, *,
                   daily: Callable[[], dict[str, tuple[str, str]]] | None = None,
                   fallbacks: FallbackSource | None = None) -> int:
    """Send the reports due (under the job lock, the mark updated in the same run); how many were sent.
    ``daily``: with ``daily_reports`` on, the configured deployments (id -> model and public API base);
    ``fallbacks``: with ``fallback_reports`` on, the Prometheus server to read the day's fallbacks from."""
    now = now or datetime.now(UTC)
    sent = 0
    async with store.job_lock(_LOCK) as mine:
        if not mine:
            return 0
        mark = (await read_settings(store)).get(MARK)
        periodic, month = due(mark, now, days) if "spend_reports" in alerter.kinds else (False, None)
        every = alerter.args.daily_report_frequency
        last_daily = mark.get("daily") if isinstance(mark, dict) else None
        daily_due = daily is not None and (not isinstance(last_daily, int | float)
                                           or now.timestamp() - last_daily >= every - 60)
        fallback_day = fallbacks.due(mark.get("fallback") if isinstance(mark, dict) else None, now) \
            if fallbacks is not None and "fallback_reports" in alerter.kinds else None
        if not periodic and month is None and not daily_due and fallback_day is None:
            return 0
        new = dict(mark) if isinstance(mark, dict) else {}
        if fallback_day is not None and fallbacks is not None:
            try:
                lines = await fallbacks.lines(now)
            except (httpx.HTTPError, ValueError, TypeError, AttributeError, IndexError) as exc:
                status = f" {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else ""
                log.warning("fallback report not sent (Prometheus at %s): %s%s", public_base(fallbacks.url),
                            type(exc).__name__, status)  # no message: an httpx error names the URL, credentials too
            else:
                if lines:
                    alerter.report(fallback_text(lines), "fallback_reports")
                    sent += 1
                new["fallback"] = fallback_day
        if daily_due and daily is not None:
            sent += await _daily(store, alerter, now - timedelta(seconds=every), now, every, daily)
            new["daily"] = now.timestamp()
        if periodic:
            start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
            teams, tags = await _spend(store, start, now)
            if teams or tags:
                title = f"Spend Report for `{start:%m-%d-%Y} - {now:%m-%d-%Y}` ({days} days)"
                alerter.report(report_text(title, teams, tags))
                sent += 1
            new["periodic"] = now.timestamp()
        if month is not None:
            first = datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=UTC)
            end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            teams, tags = await _spend(store, first, end)
            if teams or tags:
                last_day = end - timedelta(days=1)
                alerter.report(report_text(f"Monthly Spend Report for `{first:%m-%d-%Y} - {last_day:%m-%d-%Y}` ",
                                                 teams, tags))
                sent += 1
            new["monthly"] = month
        await write_setting(store, MARK, new, "spend_reports")
    return sent


async def run_forever(store: Store, alerter: Any, days: int, daily: Callable[[], dict[str, tuple[str, str]]] | None,
                      first: float | None = None, fallbacks: FallbackSource | None = None) -> None:
    """Check for due reports ``first`` seconds after start (10 s to 5 min), then every five minutes; until
    cancelled."""
    await asyncio.sleep(first if first is not None else 10.0 + random.uniform(0.0, 290.0))
    while True:
        started = time.monotonic()
        try:
            await send_due(store, alerter, days, daily=daily, fallbacks=fallbacks)
        except Exception as exc:  # the database down: the next hour tries again
            log.warning("spend report not sent: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(max(1.0, CHECK_EVERY - (time.monotonic() - started)))
