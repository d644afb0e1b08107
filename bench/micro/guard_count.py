"""The budget guard's completion side, in CPU per completion: counting and taking written spend off.

    python -m bench.micro.guard_count [--records 4096] [--drain 16] [--keys 500]

A ``BudgetGuard`` with a tally for each of ``--keys`` keys, 10 teams and 100 users (the spend bench's
shape: half the keys in a team, half owned by a user) takes ``--records`` priced completions round robin
over the keys: ``handle`` per drain of ``--drain`` records (what the completion queue hands it), then
``written`` once for the whole batch (what the spend sink reports after a write). Printed: the best of 20
rounds, per completion, with the tallies of each entity combination kept (``BudgetGuard._combo_tallies``,
as served) and with them looked up again every call (``cold``, the guard before they were kept).
"""

from __future__ import annotations

import argparse
import time

from relaygate.budgets import BudgetGuard
from relaygate.sinks.record import CompletionRecord, Outcome


def _record(i: int, keys: int, now: float) -> CompletionRecord:
    k = i % keys
    return CompletionRecord(
        call_id=f"call-{i}", route="chat", stream=False, model="m", model_group="m", deployment_id="d0",
        provider="openai", upstream_model="m", key_hash=f"k{k}", key_alias=None,
        team_id=f"t{k % 10}" if k % 2 == 0 else None, user_id=None if k % 2 == 0 else f"u{k % 100}",
        status=200, outcome=Outcome.OK, prompt_tokens=10, completion_tokens=5, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=0.0001, cache_hit=False, retries=0,
        fallbacks=0, start_time=now)


def measure(records: int, drain: int, keys: int, *, cold: bool, rounds: int = 20) -> float:
    """Best microseconds per completion over ``rounds``."""
    guard = BudgetGuard(None)
    now = time.time()
    for i in range(keys):
        guard._tally("key", f"k{i}", None, 0.0, now)
    for i in range(10):
        guard._tally("team", f"t{i}", None, 0.0, now)
    for i in range(100):
        guard._tally("user", f"u{i}", None, 0.0, now)
    batch = [_record(i, keys, now) for i in range(records)]
    kept = guard._combo_tallies
    best = float("inf")
    for _ in range(rounds):
        kept.clear()
        t0 = time.perf_counter()
        for j in range(0, records, drain):
            if cold:
                kept.clear()
            guard.handle(batch[j:j + drain])
        if cold:
            kept.clear()
        guard.written(batch)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.micro.guard_count", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=4096)
    p.add_argument("--drain", type=int, default=16)
    p.add_argument("--keys", type=int, default=500)
    a = p.parse_args(argv)
    warm = measure(a.records, a.drain, a.keys, cold=False)
    cold = measure(a.records, a.drain, a.keys, cold=True)
    print(f"budget guard, {a.records:,} completions over {a.keys} keys (drains of {a.drain}): "
          f"{warm:.2f} µs a completion with the combinations' tallies kept, {cold:.2f} µs cold")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
