"""The cache bench's ``miss-rawkey`` gateway: a miss whose key is the SHA-256 of the body's bytes.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_cache`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch). The key is
the SHA-256 hex of the forwarded body's bytes (no decoding, no
canonical re-encoding; two spellings of one request would not share it, which is why the product does not
do this), the rest of the lookup and the store as usual: ``miss`` against ``miss-rawkey`` is what the
canonical key costs inside the serving gateway. Never used outside the bench.
"""

from __future__ import annotations

import hashlib
from typing import Any

import relaygate.cache.stage as _stage


def _raw_key(route: str, model_group: str, body: Any, namespace: str | None = None,
             team: str | None = None) -> str:
    return hashlib.sha256(body).hexdigest()


_stage.body_key = _raw_key
