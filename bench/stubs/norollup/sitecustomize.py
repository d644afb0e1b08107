"""The spend bench's ``on-norollup`` gateway: ``on`` with the spend rows inserted and nothing added up.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_spend`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch). The spend
sink's write (``store.spend.write_spend_values``) inserts the batch's rows as ever and skips the rollups: no
``rollups_of``, no counters, daily sums or entities' ``spend``. ``on`` against it is what the rollups cost the
gateway (their Python and their SQL); ``on-nosql`` tells the two apart. Never used outside the bench.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import relaygate.sinks.spend as _sink
import relaygate.store.spend as _spend


async def _rows_only(store: Any, rows: Sequence[Any], *, log_rows: bool = True) -> int:
    unique = list({r[0]: r for r in rows}.values())
    async with store._transaction() as c:
        await _spend._insert_new(c, store.dialect, unique)
    return len(unique)


if not callable(getattr(_spend, "_insert_new", None)):  # renamed: this stub would not insert the rows
    raise RuntimeError("bench/stubs/norollup: store.spend._insert_new is gone")
_sink.write_spend_values = _rows_only
