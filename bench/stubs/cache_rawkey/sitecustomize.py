"""The cache bench's ``miss-rawkey`` gateway: a miss whose key is the SHA-256 of the body's bytes.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_cache`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch). The canonical
body is the forwarded body's bytes as they came (no decoding, no canonical re-encoding; two spellings of one
request would not share a key, which is why the product does not do this); the scope head, the SHA-256, the
rest of the lookup and the store as usual. ``relaygate.cache.key.canonical_body`` is replaced before the gateway
is built, so both the compiled path (``cache.fast``, which takes the function when the cache is made) and the
Python path (``key.body_key``) use it: ``miss`` against ``miss-rawkey`` is what the canonical form costs inside
the serving gateway. Never used outside the bench.
"""

from __future__ import annotations

import relaygate.cache.key as _key

_key.canonical_body = bytes  # bytes(b) is b itself: the body as it came
