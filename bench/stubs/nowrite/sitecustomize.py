"""The spend bench's ``on-nowrite`` gateway: everything of ``on`` except the database write itself.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_spend`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch). The spend
sink still builds every row, counts its batches and hands them to the budget guard as written; only
``store.spend.write_spend_values`` (the transaction: rows, counters, entities' ``spend``) is replaced by a
coroutine that reports the rows written. The difference between ``on`` and ``on-nowrite`` is what the write
costs the gateway, measured in the gateway and not in a micro-benchmark. Never used outside the bench.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import relaygate.sinks.spend as _sink


async def _no_write(store: Any, rows: Sequence[Any], *, log_rows: bool = True) -> int:
    return len({r[0] for r in rows}) if log_rows else len(rows)


_sink.write_spend_values = _no_write
