"""LiteLLM's ``fallback_reports`` alert: a day's fallbacks per requested model and fallback model, from Prometheus.

What it owns: :class:`FallbackSource` (where the figures come from: ``PROMETHEUS_URL``, the Prometheus server
that scrapes the gateways' ``/metrics``, and ``PROMETHEUS_SELECTED_INSTANCE``, LiteLLM's variables), its
:meth:`~FallbackSource.due` (once a day, from ``PROMETHEUS_FALLBACK_STATS_SEND_TIME_HOURS`` o'clock, 9 by
default, in America/Los_Angeles, as LiteLLM's cron job) and :func:`fallback_text` (LiteLLM's layout,
``*Fallback Statistics:*`` then ```n successful fallback requests` with primary model=`a` -> fallback
model=`b```). ``observe.spend_reports`` runs it beside the spend reports: checked every five minutes under
the store's job lock, sent once per cluster per day (its day in the mark of ``rg_config``).

Where relaygate is right and LiteLLM is not: LiteLLM asks Prometheus for each counter's samples over 24 hours
and reports the oldest one (the counter's value a day ago, not the day's fallbacks), names the primary model
from a ``primary_model`` label its counters do not have (always ``Unknown``), and calls failed fallbacks
successful. Here the day's ``increase`` of ``litellm_deployment_successful_fallbacks_total`` and
``litellm_deployment_failed_fallbacks_total`` is summed per ``requested_model`` and ``fallback_model``, and
each line says which it counts. A day without fallbacks sends nothing. Prometheus down or answering an error:
logged, tried again at the next check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from relaygate.observe.alert_rules import clean

__all__ = ["FallbackSource", "fallback_text"]

_ZONE = ZoneInfo("America/Los_Angeles")
_METRICS = (("successful", "litellm_deployment_successful_fallbacks_total"),
            ("failed", "litellm_deployment_failed_fallbacks_total"))
MAX_LINES = 50


def fallback_text(lines: list[tuple[str, int, str, str]]) -> str:
    """LiteLLM's fallback statistics: (which, count, requested model, fallback model) per line."""
    return "*Fallback Statistics:*\n" + "".join(
        f"`{n} {which} fallback requests` with primary model=`{clean(a)}` -> fallback model=`{clean(b)}`\n"
        for which, n, a, b in lines[:MAX_LINES])


class FallbackSource:
    """The Prometheus server the fallback report reads (see the module docstring)."""

    def __init__(self, url: str, instance: str | None = None, hour: int = 9, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.instance = instance
        self.hour = hour
        self.timeout = timeout
        self.transport = transport

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FallbackSource | None:
        """LiteLLM's variables; None without ``PROMETHEUS_URL`` (as LiteLLM, no report then)."""
        url = (env.get("PROMETHEUS_URL") or "").strip()
        if not url:
            return None
        raw = (env.get("PROMETHEUS_FALLBACK_STATS_SEND_TIME_HOURS") or "9").strip()
        hour = int(raw) if raw.isdigit() and int(raw) < 24 else 9
        return cls(url, (env.get("PROMETHEUS_SELECTED_INSTANCE") or "").strip() or None, hour)

    def due(self, last: Any, now: datetime) -> str | None:
        """The day (``YYYY-MM-DD`` in Los Angeles) whose report is due at ``now`` (its hour passed and ``last``,
        the day of the last report sent, is another), else None."""
        local = now.astimezone(_ZONE)
        day = local.strftime("%Y-%m-%d")
        return day if local.hour >= self.hour and last != day else None

    def _query(self, metric: str) -> str:
        selector = f'{{instance="{_quoted(self.instance)}"}}' if self.instance else ""
        return f"sum by (requested_model, fallback_model) (increase({metric}{selector}[24h]))"

    async def lines(self, now: datetime) -> list[tuple[str, int, str, str]]:
        """The day's fallbacks, most first (raises ``httpx.HTTPError`` or ``ValueError`` when Prometheus fails)."""
        out: list[tuple[str, int, str, str]] = []
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
            for which, metric in _METRICS:
                r = await client.get(f"{self.url}/api/v1/query",
                                     params={"query": self._query(metric), "time": f"{now.timestamp():.3f}"})
                r.raise_for_status()
                body = r.json()
                if not isinstance(body, dict) or body.get("status") != "success":
                    raise ValueError(f"Prometheus answered {str(body)[:200]}")
                for series in (body.get("data") or {}).get("result") or []:
                    labels, value = series.get("metric") or {}, (series.get("value") or [0, "0"])[1]
                    n = float(value)
                    if math.isfinite(n) and round(n) > 0:
                        out.append((which, round(n), str(labels.get("requested_model", "Unknown")),
                                    str(labels.get("fallback_model", "Unknown"))))
        return sorted(out, key=lambda line: (line[0] != "successful", -line[1]))


def _quoted(value: str) -> str:
    """``value`` inside a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

