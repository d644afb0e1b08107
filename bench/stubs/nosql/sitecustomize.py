"""The spend bench's ``on-nosql`` gateway: ``on`` with the rollups summed (``rollups_of``) but not written.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_spend`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch). The spend
rows are inserted and the batch's counters, daily sums and entity amounts computed as ever; the statements
that add them to the database (``store.spend._add_rollups``) are skipped. ``on-nosql`` against
``on-norollup`` is what summing the rollups costs; ``on`` against ``on-nosql`` what writing them costs.
Never used outside the bench.
"""

from __future__ import annotations

from typing import Any

import relaygate.store.spend as _spend


async def _not_written(*args: Any, **kwargs: Any) -> None:
    return None


if not callable(getattr(_spend, "_add_rollups", None)):  # renamed: this stub would measure nothing
    raise RuntimeError("bench/stubs/nosql: store.spend._add_rollups is gone")
_spend._add_rollups = _not_written
