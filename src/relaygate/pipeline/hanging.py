"""LiteLLM's ``llm_requests_hanging`` alert: a request still unanswered ``alerting_threshold`` seconds after it came.

What it owns: :func:`watch`, a worker's task started by the gateway only when the alerter sends that kind
(``general_settings.alerting`` with ``llm_requests_hanging`` among ``alert_types``, as in LiteLLM's default
list). The pipeline then keeps its exchanges in flight in a dict (``Pipeline.hangs``: one insert and one
delete a request; ``None``, and nothing kept, otherwise), and the task looks at them every few seconds: an
exchange older than the threshold that has not completed is told to the alerter once
(``Alerter.request_hanging``, rate-limited per model group as ``llm_too_slow`` is). LiteLLM starts a sleeping
task per request for the same check; here one task a worker does it for all, and a request that completes
in time costs the dict operations only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["watch"]


async def watch(hangs: dict[Any, bool], alerter: Any, threshold: float) -> None:
    """Tell ``alerter`` of every exchange in ``hangs`` (exchange -> already told) that has been in flight longer
    than ``threshold`` seconds; runs until cancelled."""
    tick = min(max(threshold / 4.0, 0.2), 15.0)
    while True:
        await asyncio.sleep(tick)
        now = time.perf_counter()
        for ex, told in list(hangs.items()):
            if told or ex.done or now - ex.t0 < threshold:
                continue
            hangs[ex] = True
            group = ex.group.name if ex.group is not None else ""
            who = ex.who
            alerter.request_hanging(group, ex.model, ex.call_id.decode("latin-1"), now - ex.t0,
                                    who.key_alias if who is not None else None,
                                    who.team_id if who is not None else None)
