"""A worker's scheduled jobs on the store: LiteLLM's alert reports and its spend capture-rate check.

What it owns: :func:`start_store_jobs`, called once by ``Gateway.startup`` on a worker with a store. It spawns
``observe.spend_reports.run_forever`` when the alerter sends ``spend_reports``, ``daily_reports`` or
``fallback_reports``, and ``management.capture_rate.run_forever`` (which does nothing while
``general_settings.spend_capture_rate_check`` is unset: it reads the setting on every check, so a reload can
turn it on), and ``observe.cloudzero.run_forever`` with the ``cloudzero`` callback. Each job elects one worker
of the cluster per run through the store's job lock.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway


def start_store_jobs(gw: Gateway, alerter: Any) -> None:
    if gw.store is None:
        return
    if alerter is not None and alerter.kinds & {"spend_reports", "daily_reports", "fallback_reports"}:
        from relaygate.observe.fallback_reports import FallbackSource
        from relaygate.observe.spend_reports import deployment_names, run_forever  # LiteLLM's reports

        daily = (lambda: deployment_names(gw.config)) if "daily_reports" in alerter.kinds else None
        gw._spawn(run_forever(gw.store, alerter, gw.config.general.spend_report_days, daily,
                              fallbacks=FallbackSource.from_env(os.environ)))
    from relaygate.management import capture_rate

    gw._spawn(capture_rate.run_forever(gw))
    settings = gw.exporters.settings
    if settings is not None and "cloudzero" in (*settings.success_callbacks, *settings.failure_callbacks):
        from relaygate.observe import cloudzero  # LiteLLM's CloudZero export, hourly
        from relaygate.store.sealing import sealer_for

        gw._spawn(cloudzero.run_forever(gw.store, sealer_for(gw.config), os.environ))
