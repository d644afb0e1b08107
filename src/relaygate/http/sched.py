"""A worker's threads on Linux's ``SCHED_BATCH`` scheduling policy (``server.batch_scheduling``, on by default).

Why: a worker is two busy threads on one core, Granian's runtime thread (sockets, HTTP framing) and the
event loop's (the gateway). Each request crosses between them several times, and under the default policy
every wakeup preempts the running thread at once: ~6-7 context switches per request at full load, and on
this VM most of a request's kernel time is switching (``perf`` on an uncached chat request at full load:
54% of the worker's CPU samples in the kernel, 32% in ``finish_task_switch`` alone). ``SCHED_BATCH`` keeps
the CPU-time fairness of the default policy but drops wakeup preemption: a woken thread waits until the
running one blocks or its time slice ends, so each switch carries the work of several requests across
(~1-1.3 switches per request). Measured with ``python -m bench.sched``: see ``bench/README.md``.

What it costs: at full load nothing but a wakeup's wait for the running thread's slice (a few
milliseconds at most, only when the core is saturated, when requests queue anyway); below saturation a
thread that blocks hands the core over at once, as before. On a core shared with other busy processes
the gateway no longer preempts them on wakeup; set ``batch_scheduling = false`` where that matters more.

How: every thread of the worker (``/proc/self/task``) under the default policy (``SCHED_OTHER``) moves to
``SCHED_BATCH`` when the worker's startup completes, and the check is repeated after 1 s, 10 s and then
every minute (a thread inherits its creator's policy, so threads started later — the exporters', the
database's — are batch from birth; the repeats catch any started from a thread the first pass missed).
A thread the operator put under another policy (``chrt`` real-time, ``SCHED_IDLE``) is left as it is.
Linux lets any process move its own threads to ``SCHED_BATCH`` (no capability needed); where the call is
refused (a seccomp profile) or missing (not Linux), one log line says so and nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("relaygate.server")

RECHECK_S = (1.0, 10.0)
"""Seconds after the first pass when the threads are checked again, then every :data:`EVERY_S`."""
EVERY_S = 60.0


def supported() -> bool:
    """This platform has ``SCHED_BATCH`` (Linux) and per-thread scheduling calls."""
    return hasattr(os, "SCHED_BATCH") and hasattr(os, "sched_setscheduler") and os.path.isdir("/proc/self/task")


def batch_threads() -> tuple[int, int]:
    """Move this process's ``SCHED_OTHER`` threads to ``SCHED_BATCH``: (threads moved, threads refused)."""
    if not supported():
        return 0, 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0, 0
    moved = refused = 0
    param = os.sched_param(0)
    for name in tids:
        tid = int(name)
        try:
            if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                continue  # batch already, or a policy the operator chose
            os.sched_setscheduler(tid, os.SCHED_BATCH, param)
            moved += 1
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except OSError:
            refused += 1
    return moved, refused


async def keep_batch(first: tuple[int, int] | None = None, recheck: tuple[float, ...] = RECHECK_S,
                     every: float = EVERY_S) -> None:
    """Keep the worker's threads batch (see the module docstring): ``first`` is the startup pass's result
    (made now when None); says once what happened, and stops at the first refusal."""
    moved, refused = first if first is not None else batch_threads()
    if refused:
        log.info("batch scheduling: the system refused SCHED_BATCH for %d thread(s) of worker %d; the worker "
                 "runs under the default policy", refused, os.getpid())
        return
    log.debug("batch scheduling: %d thread(s) of worker %d moved to SCHED_BATCH", moved, os.getpid())
    waits = list(recheck)
    while True:
        await asyncio.sleep(waits.pop(0) if waits else every)
        moved, refused = batch_threads()
        if refused:
            log.info("batch scheduling: the system refused SCHED_BATCH for %d new thread(s) of worker %d",
                     refused, os.getpid())
            return
        if moved:
            log.debug("batch scheduling: %d new thread(s) of worker %d moved to SCHED_BATCH", moved, os.getpid())


__all__ = ["EVERY_S", "RECHECK_S", "batch_threads", "keep_batch", "supported"]
