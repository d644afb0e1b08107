"""LiteLLM's spend capture rate: the spend the gateway priced for a provider against that provider's own bill.

What it owns: ``GET /spend/capture_rate?provider=openai&start_date=&end_date=[&threshold=0.9][&project_ids=...]``
(the proxy admin and its viewer), and reading OpenAI's organization costs API.

- **The bill**: ``GET https://api.openai.com/v1/organization/costs`` with the organization's admin key
  (``OPENAI_ADMIN_KEY``; unset: a 503 ``OPENAI_ADMIN_KEY is not set on the proxy, so the openai bill cannot be
  read``), one-day buckets from the first day's UTC midnight to the one after the last day, 180 a page,
  ``project_ids[]`` when given, every page followed (at most :data:`MAX_PAGES`). USD per UTC day, summed over a
  day's results. The endpoint refusing, an unreachable host or an answer of another shape (a currency other than
  ``usd`` included) is a 502 ``Could not read the openai bill: <why>``. ``RELAYGATE_OPENAI_COSTS_URL`` points
  elsewhere (relaygate's own variable: a proxy of the billing API, a test); LiteLLM's URL is fixed.
- **The captured spend**: the spend rows (``rg_spend_logs``) of the same UTC days whose provider lands on
  OpenAI's bill (``openai``, ``text-completion-openai``; Azure bills apart). Where LiteLLM sums its per-user
  daily table, which leaves out every request of a key without a user, relaygate counts every request it
  priced. Rows retention has deleted (``maximum_spend_logs_retention_period``) or never wrote
  (``disable_spend_logs``) are not there to count: keep the window inside the retention.
- **The report** (LiteLLM's ``CaptureRateReport``): ``provider``, ``start_date``, ``end_date``,
  ``captured_spend``, ``provider_spend``, ``capture_rate`` (captured / billed; ``null`` when nothing was billed),
  ``threshold``, ``below_threshold``, and ``days`` (each day's same four figures, every day of the range).
- **Checks** (LiteLLM's wording): dates ``YYYY-MM-DD``, ``end_date`` not before ``start_date`` (``end_date must
  not be before start_date``), at most 180 days (``Date range too large; maximum is 180 days``), ``threshold``
  in (0, 1], ``provider`` ``openai``; each a 400 naming the field (LiteLLM's framework answers 422 for some).
- **The daily check** (``general_settings.spend_capture_rate_check``: ``providers``, ``threshold``,
  ``lookback_days``, ``openai_project_ids``; :func:`run_forever`, on every worker with a store): the report of
  the ``lookback_days`` closed UTC days before today, once a UTC day for the whole cluster (under the store's job
  lock, a ``rg_config`` mark saying which day ran), first about two minutes after the first start, then after
  01:15 UTC each day (LiteLLM's schedule, when the day's bill has settled). A rate under the threshold, a
  missing admin key or an unreadable bill is a ``failed_tracking_spend`` alert at level High, in LiteLLM's
  words. Every worker reads the mark every five minutes and shows the rates as LiteLLM's
  ``litellm_spend_capture_rate{api_provider}`` gauge (with ``prometheus``; a provider without a rate is left
  out, where LiteLLM writes NaN). The setting is read on every check: a reload that removes it stops the check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from typing import Any

from relaygate.core.errors import GatewayError, register_secrets
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.store.activity import bucket_sql
from relaygate.store.base import Store

__all__ = ["add_routes", "captured_by_day", "check_once", "daily_costs", "report", "run_forever"]

log = logging.getLogger("relaygate")

COSTS_URL = "https://api.openai.com/v1/organization/costs"
COSTS_URL_ENV = "RELAYGATE_OPENAI_COSTS_URL"
ADMIN_KEY_ENV = "OPENAI_ADMIN_KEY"
MAX_RANGE_DAYS = 180
PAGE_LIMIT = 180
MAX_PAGES = 100
"""Pages of the bill followed at most (a billing API that always says ``has_more`` cannot hold a request)."""
TIMEOUT = 30.0
BILLED = {"openai": ("openai", "text-completion-openai")}
"""A provider whose bill is read -> the relaygate providers whose spend lands on it."""


class BillUnread(Exception):
    """The provider's bill could not be read (the message says why)."""


def _day(raw: str | None, name: str) -> date:
    if not raw:
        raise bad_request(f"{name}: Field required (YYYY-MM-DD)", name)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} must be a date, YYYY-MM-DD, got {raw[:40]!r}", name) from None


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


async def daily_costs(start: date, end: date, admin_key: str, project_ids: list[str], *,
                      url: str | None = None, transport: Any = None) -> dict[str, float]:
    """USD OpenAI billed per UTC day (ISO date) over ``start`` .. ``end`` (inclusive); raises :class:`BillUnread`."""
    from relaygate.observe.post import Poster, PostError

    base = url or os.environ.get(COSTS_URL_ENV) or COSTS_URL
    window: list[tuple[str, Any]] = [("start_time", _midnight(start)), ("end_time", _midnight(end + timedelta(days=1))),
                                     ("bucket_width", "1d"), ("limit", PAGE_LIMIT)]
    window += [("project_ids[]", p) for p in project_ids]
    headers = [("authorization", f"Bearer {admin_key}")]
    poster = Poster(TIMEOUT, transport=transport, user_agent="relaygate-capture-rate")
    days: dict[str, float] = {}
    page: str | None = None
    try:
        for _ in range(MAX_PAGES):
            query = urllib.parse.urlencode(window + ([("page", page)] if page else []))
            try:
                got = await poster.post(f"{base}?{query}", b"", headers, "GET")
            except PostError as exc:
                raise BillUnread(f"request failed: {exc}") from None
            if got.status != 200:
                raise BillUnread(f"HTTP {got.status}: {got.text[:300]}")
            more, page = _read_page(got.content, days)
            if not more:
                return days
    finally:
        await poster.aclose()
    raise BillUnread(f"more than {MAX_PAGES} pages of costs")


def _read_page(raw: bytes, days: dict[str, float]) -> tuple[bool, str | None]:
    """Add one page's buckets to ``days``; whether another page follows, and its cursor."""
    import orjson

    try:
        body = orjson.loads(raw)
        buckets = body["data"]
        assert isinstance(buckets, list)
        for bucket in buckets:
            start = bucket["start_time"]
            assert isinstance(start, int) and not isinstance(start, bool)
            day = datetime.fromtimestamp(start, UTC).date().isoformat()
            total = days.get(day, 0.0)
            for result in bucket.get("results") or ():
                amount = result["amount"]
                value, currency = amount["value"], amount["currency"]
                assert currency == "usd" and isinstance(value, (int, float)) and not isinstance(value, bool)
                total += float(value)
            days[day] = total
        more, cursor = bool(body.get("has_more", False)), body.get("next_page")
    except (ValueError, KeyError, TypeError, AssertionError, OverflowError, OSError) as exc:
        raise BillUnread(f"unexpected response shape ({type(exc).__name__})") from None
    if more and isinstance(cursor, str) and cursor:
        return True, cursor
    return False, None


async def captured_by_day(store: Store, start: date, end: date, providers: tuple[str, ...]) -> dict[str, float]:
    """USD the spend rows of ``providers`` priced per UTC day (ISO date) over ``start`` .. ``end`` (inclusive)."""
    from relaygate.store import tables as t

    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    args = [t.SPEND_LOGS.to_db("start_time", lo, store.dialect), t.SPEND_LOGS.to_db("start_time", hi, store.dialect),
            *providers]
    key = bucket_sql(store.dialect, "day")
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {key} AS d, SUM(s.spend_nanos) AS nanos FROM rg_spend_logs s WHERE s.start_time >= ? AND "
            f"s.start_time < ? AND s.custom_llm_provider IN ({', '.join('?' * len(providers))}) GROUP BY 1", args)
    return {str(r["d"]): int(r["nanos"] or 0) / 1e9 for r in rows}


def _ratio(captured: float, billed: float) -> float | None:
    return None if billed <= 0 else captured / billed


def report(provider: str, start: date, end: date, captured: dict[str, float], billed: dict[str, float],
           threshold: float) -> dict[str, Any]:
    """LiteLLM's ``CaptureRateReport`` of the two per-day figures (every day of the range listed)."""
    days: list[dict[str, Any]] = []
    total_c = total_b = 0.0
    d = start
    while d <= end:
        iso = d.isoformat()
        c, b = captured.get(iso, 0.0), billed.get(iso, 0.0)
        days.append({"date": iso, "captured_spend": c, "provider_spend": b, "capture_rate": _ratio(c, b)})
        total_c, total_b = total_c + c, total_b + b
        d += timedelta(days=1)
    rate = _ratio(total_c, total_b)
    return {"provider": provider, "start_date": start.isoformat(), "end_date": end.isoformat(),
            "captured_spend": total_c, "provider_spend": total_b, "capture_rate": rate, "threshold": threshold,
            "below_threshold": rate is not None and rate < threshold, "days": days}


async def capture_rate(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    q = ctx.query
    provider = q.get("provider") or "openai"
    if provider not in BILLED:
        raise bad_request(f"provider must be one of {sorted(BILLED)}, got {provider[:40]!r}", "provider")
    start, end = _day(q.get("start_date"), "start_date"), _day(q.get("end_date"), "end_date")
    if end < start:
        raise bad_request("end_date must not be before start_date", "end_date")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise bad_request(f"Date range too large; maximum is {MAX_RANGE_DAYS} days", "end_date")
    raw = q.get("threshold") or "0.9"
    try:
        threshold = float(raw)
    except ValueError:
        threshold = float("nan")
    if not 0 < threshold <= 1:
        raise bad_request(f"threshold must be a number in (0, 1], got {raw[:40]!r}", "threshold")
    qs = urllib.parse.parse_qs((ctx.scope.get("query_string") or b"").decode("latin-1"))
    projects = [p for p in (*qs.get("project_ids", ()), *qs.get("project_ids[]", ())) if p][:100]
    admin_key = os.environ.get(ADMIN_KEY_ENV, "").strip()
    if admin_key:
        register_secrets([admin_key])  # never in a log line, whatever the billing API echoes
    else:
        raise GatewayError(f"{ADMIN_KEY_ENV} is not set on the proxy, so the {provider} bill cannot be read",
                           status=503, type="service_unavailable")
    try:
        billed = await daily_costs(start, end, admin_key, projects)
    except BillUnread as exc:
        raise GatewayError(f"Could not read the {provider} bill: {exc}", status=502, type="bad_gateway") from None
    captured = await captured_by_day(ctx.store, start, end, BILLED[provider])
    return report(provider, start, end, captured, billed, threshold)


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/spend/capture_rate", capture_rate)


# -- the daily check -------------------------------------------------------------------------------------

MARK = "spend_capture_rate_checked"
"""The ``rg_config`` row: ``{"day": the UTC day the check last ran, "rates": {provider: rate or null}}``."""
CHECK_EVERY = 300.0
RUN_AFTER = (1, 15)
"""The UTC hour and minute after which a day's check runs (LiteLLM's cron: 01:15 UTC)."""
DOCS = "https://docs.litellm.ai/docs/proxy/spend_capture_rate"


def check_due(mark: Any, now: datetime) -> bool:
    """Whether the check runs at ``now``: never run (its first run, soon after start), or not yet today and past
    01:15 UTC."""
    if not isinstance(mark, dict) or not isinstance(mark.get("day"), str):
        return True
    return mark["day"] != now.date().isoformat() and (now.hour, now.minute) >= RUN_AFTER


def rates_of(mark: Any) -> dict[str, float]:
    """The rates a mark holds (providers without one left out)."""
    rates = mark.get("rates") if isinstance(mark, dict) else None
    if not isinstance(rates, dict):
        return {}
    return {str(p): float(r) for p, r in rates.items() if isinstance(r, int | float) and not isinstance(r, bool)}


def alert_text(rep: dict[str, Any]) -> str | None:
    """LiteLLM's alert for a report under its threshold (None: healthy, or nothing billed)."""
    rate = rep["capture_rate"]
    if rate is None or not rep["below_threshold"]:
        return None
    p = rep["provider"]
    return (f"Spend capture rate for {p} is {rate:.1%}, under the {rep['threshold']:.0%} threshold: LiteLLM "
            f"captured ${rep['captured_spend']:,.2f} of the ${rep['provider_spend']:,.2f} {p} bill for "
            f"{rep['start_date']} to {rep['end_date']}. Requests reach {p} outside LiteLLM or cost tracking is "
            f"dropping spend. {DOCS}")


async def check_once(store: Store, settings: Any, alerter: Any, now: datetime | None = None) -> dict[str, float]:
    """Run the day's check if it is due (one worker of the cluster, under the job lock), alert, and return the
    rates the mark holds now."""
    from relaygate.store.settings import read_settings, write_setting

    now = now or datetime.now(UTC)
    messages: list[str] = []
    async with store.job_lock("spend_capture_rate") as mine:
        mark = (await read_settings(store)).get(MARK)
        if not mine or not check_due(mark, now):
            return rates_of(mark)
        end = now.date() - timedelta(days=1)
        start = end - timedelta(days=settings.lookback_days - 1)
        rates: dict[str, float | None] = {}
        for provider in settings.providers:
            rates[provider] = None
            admin_key = os.environ.get(ADMIN_KEY_ENV, "").strip()
            if not admin_key:
                messages.append(f"Spend capture-rate check: {ADMIN_KEY_ENV} is not set, so the {provider} bill cannot "
                                f"be read. Set it or remove general_settings.spend_capture_rate_check. {DOCS}")
                continue
            register_secrets([admin_key])
            try:
                billed = await daily_costs(start, end, admin_key, list(settings.openai_project_ids))
            except BillUnread as exc:
                messages.append(f"Spend capture-rate check: could not read the {provider} bill ({exc}). {DOCS}")
                continue
            rep = report(provider, start, end, await captured_by_day(store, start, end, BILLED[provider]), billed,
                         settings.threshold)
            rates[provider] = rep["capture_rate"]
            log.info("spend capture rate for %s, %s to %s: %s (captured $%.2f of $%.2f billed)", provider,
                     rep["start_date"], rep["end_date"], rep["capture_rate"], rep["captured_spend"],
                     rep["provider_spend"])
            text = alert_text(rep)
            if text is not None:
                messages.append(text)
        await write_setting(store, MARK, {"day": now.date().isoformat(), "rates": rates}, "spend_capture_rate_check")
    for text in messages:
        log.warning("%s", text)
        if alerter is not None:
            alerter.report(text, kind="failed_tracking_spend", level="High")
    return rates_of({"rates": rates})


async def run_forever(gw: Gateway, first: float = 120.0) -> None:
    """The daily check on this worker (see the module docstring); until cancelled."""
    await asyncio.sleep(first)
    while True:
        settings = gw.runtime.config.general.spend_capture_rate_check
        store = gw.store
        if settings is not None and store is not None:
            exporters = getattr(gw, "exporters", None)
            try:
                rates = await check_once(store, settings, getattr(exporters, "alerter", None))
                if getattr(exporters, "prometheus", None) is not None:
                    exporters.prometheus.capture_rates = rates  # type: ignore[union-attr]
            except Exception as exc:  # the database or the billing API down: the next check tries again
                log.warning("spend capture-rate check failed: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(CHECK_EVERY)
